#!/usr/bin/env bash
# WAF lab: one nginx master with ModSecurity + OWASP CRS on loopback, for wafload's tests.
#
#   lab/lab.sh start RUN_DIR [--paranoia 1..4] [--workers N] [--base-port P | --ports B,W,D,L,T]
#                            [--error-log-level LEVEL] [--access-log]
#   lab/lab.sh stop RUN_DIR
#   lab/lab.sh check            # exit 0 when nginx, the ModSecurity module, CRS and openssl exist
#
# `start` renders lab/templates/ into RUN_DIR, makes a self-signed cert, starts nginx with
# `-p RUN_DIR -c RUN_DIR/nginx.conf`, waits until every front answers, then prints
# key=value lines (also written to RUN_DIR/ports.env). Nothing is written outside RUN_DIR.
# Port order for --ports: backend,waf,detect,baseline,tls.
set -euo pipefail

LAB_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
TEMPLATES="$LAB_DIR/templates"
NGINX_BIN="${NGINX_BIN:-$(command -v nginx || echo /usr/sbin/nginx)}"
CRS_RULES_DIR="${CRS_RULES_DIR:-/usr/share/modsecurity-crs/rules}"
FRONTS=(backend waf detect baseline tls)

die() { echo "lab.sh: $*" >&2; exit 1; }

find_module() {
    local candidate
    for candidate in "${MODSEC_MODULE:-}" /usr/lib/nginx/modules/ngx_http_modsecurity_module.so; do
        [[ -n "$candidate" && -f "$candidate" ]] && { echo "$candidate"; return 0; }
    done
    # Debian's module snippet names the .so relative to nginx's modules path.
    local snippet=/usr/share/nginx/modules-available/mod-http-modsecurity.conf
    if [[ -f "$snippet" ]]; then
        candidate="$(sed -n 's/^ *load_module *\([^;]*\);.*/\1/p' "$snippet" | head -n1)"
        [[ "$candidate" != /* ]] && candidate="/usr/lib/nginx/$candidate"
        [[ -f "$candidate" ]] && { echo "$candidate"; return 0; }
    fi
    return 1
}

check() {
    [[ -x "$NGINX_BIN" ]] || die "nginx not found (apt-get install -y nginx)"
    find_module >/dev/null || die "ModSecurity nginx module not found (apt-get install -y libnginx-mod-http-modsecurity)"
    [[ -f "$CRS_RULES_DIR/REQUEST-949-BLOCKING-EVALUATION.conf" ]] \
        || die "OWASP CRS not found in $CRS_RULES_DIR (apt-get install -y modsecurity-crs)"
    command -v openssl >/dev/null || die "openssl not found (apt-get install -y openssl)"
}

# True when something accepts TCP connections on 127.0.0.1:$1.
port_in_use() {
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# Sends one HTTP/1.0 GET to 127.0.0.1:$1 and prints the status code (empty on failure).
http_status() {
    local port="$1" line
    # shellcheck disable=SC2016  # $0 is expanded by the inner bash
    line="$(timeout 2 bash -c '
        exec 3<>"/dev/tcp/127.0.0.1/$0" || exit 1
        printf "GET /lab-ready HTTP/1.0\r\nHost: localhost\r\nUser-Agent: wafload-lab-ready\r\nAccept: */*\r\nX-Request-Id: lab-ready\r\n\r\n" >&3
        head -n1 <&3' "$port" 2>/dev/null || true)"
    awk '{print $2}' <<<"$line"
}

# True when the TLS front completes a handshake.
tls_ready() {
    timeout 3 openssl s_client -connect "127.0.0.1:$1" -servername localhost </dev/null >/dev/null 2>&1
}

read_pid() {
    local pid_file="$1/nginx.pid"
    [[ -s "$pid_file" ]] || return 1
    local pid
    pid="$(tr -dc '0-9' <"$pid_file")"
    [[ -n "$pid" ]] || return 1
    echo "$pid"
}

# True while pid $1 runs; a zombie (exited, not yet reaped) counts as gone.
alive() {
    kill -0 "$1" 2>/dev/null || return 1
    local state
    state="$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -c1)"
    [[ "$state" != Z ]]
}

stop() {
    local run_dir="$1" pid children waited=0
    pid="$(read_pid "$run_dir")" || { echo "lab.sh: no pid file in $run_dir; nothing to stop" >&2; return 0; }
    if ! alive "$pid"; then
        rm -f "$run_dir/nginx.pid"
        return 0
    fi
    # Sanity: only signal an nginx master (pid files can outlive their process).
    if [[ -r "/proc/$pid/cmdline" ]] && ! tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q nginx; then
        die "pid $pid from $run_dir/nginx.pid is not nginx; refusing to kill it"
    fi
    children="$(cat /proc/"$pid"/task/*/children 2>/dev/null || true)"
    kill -TERM "$pid" 2>/dev/null || true
    # Fast shutdown: the master waits for its workers, then exits. Bounded: 10 s, then KILL.
    while alive "$pid" && ((waited < 100)); do
        sleep 0.1
        waited=$((waited + 1))
    done
    if alive "$pid"; then
        echo "lab.sh: nginx $pid ignored TERM for 10 s; sending KILL" >&2
        kill -KILL "$pid" 2>/dev/null || true
    fi
    local child
    for child in $children; do
        if alive "$child"; then kill -KILL "$child" 2>/dev/null || true; fi
    done
    waited=0
    while alive "$pid" && ((waited < 50)); do
        sleep 0.1
        waited=$((waited + 1))
    done
    alive "$pid" && die "nginx $pid still alive after KILL"
    rm -f "$run_dir/nginx.pid"
}

render() {
    local template="$1" out="$2"
    shift 2
    local sed_args=() kv key value
    for kv in "$@"; do
        key="${kv%%=*}"
        value="${kv#*=}"
        value="${value//\\/\\\\}"
        value="${value//|/\\|}"
        value="${value//&/\\&}"
        sed_args+=(-e "s|@${key}@|${value}|g")
    done
    sed "${sed_args[@]}" "$template" >"$out"
    if grep -n '@[A-Z_]*@' "$out" >&2; then
        die "unrendered placeholder in $out"
    fi
}

start() {
    local pid="" run_dir="" paranoia=1 workers=2 base_port="" ports_csv="" error_log_level=warn access_log=0
    [[ $# -ge 1 ]] || die "start needs RUN_DIR"
    run_dir="$1"
    shift
    while [[ $# -gt 0 ]]; do
        case "$1" in
            --paranoia) paranoia="${2:?--paranoia needs a value}"; shift 2 ;;
            --workers) workers="${2:?--workers needs a value}"; shift 2 ;;
            --base-port) base_port="${2:?--base-port needs a value}"; shift 2 ;;
            --ports) ports_csv="${2:?--ports needs a value}"; shift 2 ;;
            --error-log-level) error_log_level="${2:?--error-log-level needs a value}"; shift 2 ;;
            --access-log) access_log=1; shift ;;
            *) die "start: unknown argument '$1'" ;;
        esac
    done
    [[ "$paranoia" =~ ^[1-4]$ ]] || die "--paranoia must be 1..4, got '$paranoia'"
    [[ "$workers" =~ ^[1-9][0-9]?$ ]] || die "--workers must be 1..99, got '$workers'"
    [[ "$error_log_level" =~ ^(debug|info|notice|warn|error|crit)$ ]] \
        || die "--error-log-level must be an nginx level, got '$error_log_level'"
    [[ -n "$base_port" && -n "$ports_csv" ]] && die "--base-port and --ports are exclusive"
    check

    mkdir -p "$run_dir"
    run_dir="$(cd "$run_dir" && pwd -P)"
    [[ "$run_dir" =~ ^[A-Za-z0-9_./-]+$ ]] || die "RUN_DIR '$run_dir' must be a plain path (letters, digits, _ . / -)"
    if pid="$(read_pid "$run_dir")" && alive "$pid"; then
        die "a lab is already running from $run_dir (pid $pid)"
    fi

    local -a ports=()
    local p i
    if [[ -n "$ports_csv" ]]; then
        IFS=, read -r -a ports <<<"$ports_csv"
        [[ ${#ports[@]} -eq ${#FRONTS[@]} ]] || die "--ports needs ${#FRONTS[@]} ports (backend,waf,detect,baseline,tls)"
        for p in "${ports[@]}"; do
            # Same wording as nginx's bind error, so callers can retry with other ports.
            port_in_use "$p" && die "127.0.0.1:$p: Address already in use (--ports)"
        done
    else
        # Default: the first run of 5 consecutive free ports from --base-port (18080), bounded.
        local base="${base_port:-18080}" tries=0
        [[ "$base" =~ ^[0-9]+$ ]] || die "--base-port must be a number, got '$base'"
        while :; do
            ports=()
            for i in "${!FRONTS[@]}"; do ports+=($((base + i))); done
            local busy=""
            for p in "${ports[@]}"; do port_in_use "$p" && busy=1; done
            [[ -z "$busy" ]] && break
            [[ -n "$base_port" ]] && die "a port in ${ports[0]}..${ports[-1]} is in use (--base-port $base_port)"
            tries=$((tries + 1))
            ((tries < 20)) || die "no 5 consecutive free ports from 18080 in 20 tries"
            base=$((base + ${#FRONTS[@]}))
        done
    fi
    for p in "${ports[@]}"; do
        if ! [[ "$p" =~ ^[0-9]+$ ]] || ((p < 1 || p > 65535)); then die "bad port '$p'"; fi
    done

    mkdir -p "$run_dir/logs" "$run_dir/tmp/modsec" "$run_dir/tls"
    local user_line="# (not root: workers run as the invoking user)"
    [[ "$(id -u)" == 0 ]] && user_line="user root;  # workers must write the run dir's logs"
    local module
    module="$(find_module)"
    local -a vars=(
        "RUN_DIR=$run_dir" "MODSEC_MODULE=$module" "USER_LINE=$user_line" "WORKERS=$workers"
        "ERROR_LOG_LEVEL=$error_log_level" "ACCESS_LOG=$access_log" "PARANOIA=$paranoia" "CRS_RULES_DIR=$CRS_RULES_DIR"
        "PORT_BACKEND=${ports[0]}" "PORT_WAF=${ports[1]}" "PORT_DETECT=${ports[2]}"
        "PORT_BASELINE=${ports[3]}" "PORT_TLS=${ports[4]}"
    )
    render "$TEMPLATES/nginx.conf.tmpl" "$run_dir/nginx.conf" "${vars[@]}"
    render "$TEMPLATES/proxy_backend.conf.tmpl" "$run_dir/proxy_backend.conf" "${vars[@]}"
    render "$TEMPLATES/modsec_common.conf.tmpl" "$run_dir/modsec_common.conf" "${vars[@]}"
    render "$TEMPLATES/modsec_front.conf.tmpl" "$run_dir/modsec_waf.conf" "${vars[@]}" FRONT=waf RULE_ENGINE=On
    render "$TEMPLATES/modsec_front.conf.tmpl" "$run_dir/modsec_detect.conf" "${vars[@]}" FRONT=detect RULE_ENGINE=DetectionOnly
    render "$TEMPLATES/modsec_front.conf.tmpl" "$run_dir/modsec_tls.conf" "${vars[@]}" FRONT=tls RULE_ENGINE=On

    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 7 \
        -subj "/CN=localhost" -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" \
        -keyout "$run_dir/tls/key.pem" -out "$run_dir/tls/cert.pem" >"$run_dir/logs/openssl.log" 2>&1 \
        || die "openssl could not make the self-signed cert (see $run_dir/logs/openssl.log)"

    # -e: nginx's own early errors go to the run dir too, not to the compiled-in default.
    local -a nginx_cmd=("$NGINX_BIN" -p "$run_dir/" -c "$run_dir/nginx.conf" -e "$run_dir/logs/error.log")
    if ! (cd "$run_dir" && "${nginx_cmd[@]}") >"$run_dir/logs/nginx-start.log" 2>&1; then
        cat "$run_dir/logs/nginx-start.log" >&2
        tail -n 5 "$run_dir/logs/error.log" >&2 2>/dev/null || true
        die "nginx failed to start from $run_dir"
    fi

    # nginx daemonizes after binding the sockets; wait for the pid file and for every front.
    local waited=0 ready
    while ((waited < 300)); do
        ready=1
        pid="$(read_pid "$run_dir")" || ready=""
        if [[ -n "$ready" ]]; then
            for i in 0 1 2 3; do
                [[ "$(http_status "${ports[$i]}")" == 200 ]] || { ready=""; break; }
            done
        fi
        [[ -n "$ready" ]] && tls_ready "${ports[4]}" || ready=""
        [[ -n "$ready" ]] && break
        sleep 0.1
        waited=$((waited + 1))
    done
    if [[ -z "$ready" ]]; then
        tail -n 20 "$run_dir/logs/error.log" >&2 2>/dev/null || true
        stop "$run_dir" || true
        die "fronts did not all answer within 30 s"
    fi

    {
        for i in "${!FRONTS[@]}"; do echo "${FRONTS[$i]}=${ports[$i]}"; done
        echo "pid=$pid"
        echo "paranoia=$paranoia"
        echo "workers=$workers"
        echo "dir=$run_dir"
    } | tee "$run_dir/ports.env"
}

case "${1:-}" in
    start) shift; start "$@" ;;
    stop) [[ $# -eq 2 ]] || die "usage: lab.sh stop RUN_DIR"; stop "$2" ;;
    check) check ;;
    *) die "usage: lab.sh start RUN_DIR [--paranoia 1..4] [--workers N] [--base-port P | --ports B,W,D,L,T] [--error-log-level L] [--access-log] | stop RUN_DIR | check" ;;
esac
