#!/usr/bin/env bash
# Side-by-side throughput against wrk, oha and h2load on loopback.
#
#   benches/peers.sh [SECONDS] [CONNECTIONS] [ROUNDS] [THREADS]   (defaults: 10 64 3 nproc)
#
# Starts two fixed targets — nginx `return 200` with 1 worker (from the WAF lab set-up)
# and wafload's calibration target — then, for each target, runs every peer and wafload
# with the same connections, threads and duration, alternating A B A B … for ROUNDS
# rounds. Prints req/s, CPU µs per request (user+sys of the load generator process), max
# RSS, p50/p99, the target's CPU µs per request, and the median ratio wafload / peer.
# Peers come from Debian (`apt-get install -y wrk nghttp2-client`) and crates (`cargo
# install oha --locked`); a missing peer is skipped with a line saying how to get it.
# Needs a release build: `cargo build --release`.
#
# wrk-hdr is wrk sending the headers every wafload request carries (user-agent, accept
# and a request id of the same length): the same request bytes for the target, so
# wafload / wrk-hdr compares the clients alone, where wafload / wrk also counts the
# target's work on wafload's larger requests. There is no h2load-hdr: h2load can only
# send one fixed id, which HPACK then indexes on both sides (the calibration target
# echoes it), making its requests and answers cheaper than unique ids — measured
# 1.12× h2load's own throughput, not a like-for-like peer.
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${1:-10}
CONNS=${2:-64}
ROUNDS=${3:-3}
# Every tool gets the same number of threads (wrk -t, h2load -t, oha --worker-threads,
# wafload --threads). On 2 cores shared with the target, 1 is faster for all of them.
THREADS=${4:-$(nproc)}
WAFLOAD=${WAFLOAD:-target/release/wafload}
WORK=$(mktemp -d /tmp/wafload-peers.XXXXXX)
LAB="$WORK/lab"
RESULTS="$WORK/results"
TARGET_PID=""
cleanup() {
    [ -n "$TARGET_PID" ] && kill "$TARGET_PID" 2>/dev/null || true
    [ -f "$LAB/nginx.pid" ] && lab/lab.sh stop "$LAB" >/dev/null 2>&1 || true
}
trap cleanup EXIT

[ -x "$WAFLOAD" ] || { echo "build first: cargo build --release"; exit 2; }
have() { command -v "$1" >/dev/null 2>&1; }
PEERS=()
have wrk && PEERS+=(wrk wrk-hdr) || echo "skip wrk: not installed (apt-get install -y wrk)"
have oha && PEERS+=(oha) || echo "skip oha: not installed (cargo install oha --locked)"
have h2load && PEERS+=(h2load) || echo "skip h2load: not installed (apt-get install -y nghttp2-client)"

TARGETS=()
if lab/lab.sh check >/dev/null 2>&1; then
    PORTS=$(lab/lab.sh start "$LAB" --workers 1 --error-log-level crit)
    NGINX_PORT=$(echo "$PORTS" | sed -n 's/^backend=//p')
    TARGETS+=("nginx=http://127.0.0.1:$NGINX_PORT/")
else
    echo "skip nginx target: lab packages missing (apt-get install -y nginx libnginx-mod-http-modsecurity modsecurity-crs)"
fi
CAL_PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$WAFLOAD" target --listen "127.0.0.1:$CAL_PORT" >/dev/null 2>&1 &
TARGET_PID=$!
for _ in $(seq 50); do (echo > /dev/tcp/127.0.0.1/$CAL_PORT) 2>/dev/null && break; sleep 0.1; done
TARGETS+=("calibration=http://127.0.0.1:$CAL_PORT/")

# The headers of a wafload request, for wrk-hdr (the id as long as a run's).
SAME_HEADERS=(-H "user-agent: wafload/$("$WAFLOAD" --version | awk '{print $2}')" -H 'accept: */*' -H 'x-request-id: wla01234567a-123456')

# CPU ticks (user + system) the target's processes have used: nginx's workers or the
# calibration target. Read around each run, it shows how much of a throughput difference
# is the target's own work on a tool's requests.
target_ticks() {
    local pids
    case $1 in
        nginx) pids=$(pgrep -P "$(cat "$LAB/nginx.pid")" || true) ;;
        *) pids=$TARGET_PID ;;
    esac
    # A process gone meanwhile counts as nothing (the column then reads low, never fails).
    for p in $pids; do awk '{print $14 + $15}' "/proc/$p/stat" 2>/dev/null || true; done |
        awk '{t += $1} END {print t + 0}'
}

# run TOOL URL TARGET → one line: tool req/s cpu_us_per_req maxrss_kb p50_ms p99_ms target_cpu_us_per_req
run_one() {
    local tool=$1 url=$2 out="$WORK/out.txt" tm="$WORK/time.txt" before
    before=$(target_ticks "$3")
    case $tool in
        wrk|wrk-hdr)
            local headers=()
            [ "$tool" = wrk-hdr ] && headers=("${SAME_HEADERS[@]}")
            /usr/bin/time -o "$tm" -f "%U %S %M" wrk -t"$THREADS" -c"$CONNS" -d"${SECS}s" --latency "${headers[@]}" "$url" >"$out" 2>&1 ;;
        oha) /usr/bin/time -o "$tm" -f "%U %S %M" oha -z "${SECS}s" -c "$CONNS" --worker-threads "$THREADS" --no-tui --output-format json "$url" >"$out" 2>&1 ;;
        h2load) /usr/bin/time -o "$tm" -f "%U %S %M" h2load -D "$SECS" -c "$CONNS" -m 10 -t "$THREADS" "$url" >"$out" 2>&1 ;;
        wafload|wafload-h2|wafload-corpus)
            local extra=(--plain)
            [ "$tool" = wafload-h2 ] && extra=(--plain --http h2 --streams 10)
            [ "$tool" = wafload-corpus ] && extra=(--corpus payloads --benign-share 0.5)
            /usr/bin/time -o "$tm" -f "%U %S %M" "$WAFLOAD" run --target "$url" "${extra[@]}" --max --no-preflight \
                -c "$CONNS" --threads "$THREADS" --duration "${SECS}s" --timeout 5s --quiet --results-dir "$RESULTS" >"$out" 2>&1 ;;
    esac
    python3 - "$tool" "$out" "$tm" "$(( $(target_ticks "$3") - before ))" "$(getconf CLK_TCK)" <<'PY'
import json, re, sys
tool, out, tm = sys.argv[1], open(sys.argv[2]).read(), open(sys.argv[3]).read().split()
user, sys_, rss = float(tm[0]), float(tm[1]), int(tm[2])
rps = n = p50 = p99 = float("nan")
def ms(v, unit):
    return float(v) * {"us": 1e-3, "ms": 1.0, "s": 1e3}[unit]
if tool.startswith("wrk"):
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    n = int(re.search(r"(\d+) requests in", out).group(1))
    lat = dict((q, ms(v, u)) for q, v, u in re.findall(r"\s(50|99)%\s+([\d.]+)(us|ms|s)", out))
    p50, p99 = lat.get("50", p50), lat.get("99", p99)
elif tool == "oha":
    j = json.loads(out[out.index("{"):])
    s = j["summary"]; rps = s["requestsPerSec"]
    n = sum(j.get("statusCodeDistribution", {}).values())
    pct = j.get("latencyPercentiles", {})
    p50, p99 = pct.get("p50", p50) * 1e3, pct.get("p99", p99) * 1e3
elif tool == "h2load":
    rps = float(re.search(r"finished in [\d.]+\w+, ([\d.]+) req/s", out).group(1))
    n = int(re.search(r"requests: \d+ total, \d+ started, (\d+) done", out).group(1))
    m = re.search(r"time for request:\s+([\d.]+)(us|ms|s)\s+([\d.]+)(us|ms|s)\s+([\d.]+)(us|ms|s)", out)
    if m: p50 = ms(m.group(5), m.group(6))  # mean (h2load prints no percentiles)
else:
    d = out.strip().splitlines()[-1]
    s = json.load(open(d + "/summary.json"))
    n = s["sent"]; rps = s["achieved_rate"]
    p50, p99 = s["latency"]["all"]["p50"] / 1e3, s["latency"]["all"]["p99"] / 1e3
cpu = (user + sys_) / max(n, 1) * 1e6
target_cpu = int(sys.argv[4]) / int(sys.argv[5]) / max(n, 1) * 1e6
print(f"{tool} {rps:.0f} {cpu:.2f} {rss} {p50:.3f} {p99:.3f} {target_cpu:.2f}")
PY
}

echo "# $(date -Iseconds) · $(nproc) CPUs · ${SECS}s × ${ROUNDS} rounds · ${CONNS} connections · ${THREADS} threads per tool"
ALL="$WORK/all.txt"
: >"$ALL"
for t in "${TARGETS[@]}"; do
    name=${t%%=*}; url=${t#*=}
    for r in $(seq "$ROUNDS"); do
        for tool in "${PEERS[@]}" wafload wafload-h2 wafload-corpus; do
            # nginx's plain-text backend speaks HTTP/1.1 only: HTTP/2 is compared on the
            # calibration target (h2c prior knowledge).
            case "$name:$tool" in nginx:h2load|nginx:wafload-h2) continue ;; esac
            line=$(run_one "$tool" "$url" "$name") || { echo "  $tool failed on $name"; continue; }
            echo "$name $r $line" | tee -a "$ALL"
        done
    done
done
python3 - "$ALL" <<'PY'
import sys, statistics as st, collections
rows = [l.split() for l in open(sys.argv[1]) if l.strip()]
by = collections.defaultdict(list)
for target, rnd, tool, rps, cpu, rss, p50, p99, target_cpu in rows:
    by[(target, tool)].append((int(rnd), float(rps), float(cpu), int(rss), float(p50), float(p99), float(target_cpu)))
print("\n| target | tool | req/s (median) | CPU µs/req | max RSS MB | p50 ms | p99 ms | target CPU µs/req |")
print("|---|---|---|---|---|---|---|---|")
for (target, tool), v in sorted(by.items()):
    med = lambda i: st.median(x[i] for x in v)
    print(f"| {target} | {tool} | {med(1):,.0f} | {med(2):.2f} | {max(x[3] for x in v)/1024:.1f} | {med(4):.3f} | {med(5):.3f} | {med(6):.2f} |")
print("\n| target | wafload variant / peer | median throughput ratio | median CPU/req ratio |")
print("|---|---|---|---|")
for target in sorted({k[0] for k in by}):
    for ours, peer in [("wafload", "wrk"), ("wafload", "wrk-hdr"), ("wafload", "oha"), ("wafload-h2", "h2load"), ("wafload-corpus", "wrk")]:
        a, b = by.get((target, ours)), by.get((target, peer))
        if not a or not b: continue
        # Pair rounds (A B A B): ratio per round, then the median.
        pa = {x[0]: x for x in a if x[1] > 0}; pb = {x[0]: x for x in b if x[1] > 0}
        rounds = sorted(set(pa) & set(pb))
        if not rounds:
            print(f"| {target} | {ours} / {peer} | n/a (a tool failed on this target) | |")
            continue
        thr = st.median(pa[r][1] / pb[r][1] for r in rounds)
        cpu = st.median(pa[r][2] / pb[r][2] for r in rounds)
        print(f"| {target} | {ours} / {peer} | {thr:.2f}× | {cpu:.2f}× |")
PY
