#!/usr/bin/env bash
# Measures what docs/extproc.md reports, on loopback only:
#  1. direct mode (wafload → ext_proc processor, no Envoy) against the calibration processor
#     and against the Python processor (tests/python, needs tests/python/setup.sh first);
#  2. STREAMED vs BUFFERED through the gateway EMULATION across body sizes 1k … 1 MiB;
#  3. the x-envoy-upstream-service-time decomposition with known processor delays.
# Usage: docs/extproc-bench.sh [path/to/wafload]   (default target/release/wafload)
# Every run is bounded (--duration); every server started here is stopped on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
W="${1:-target/release/wafload}"
OUT="${OUT:-$(mktemp -d /tmp/wafload-extproc-bench.XXXXXX)}"
mkdir -p "$OUT"
DUR="${DUR:-10s}"
PY=tests/python/.venv/bin/python
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT

start() { # name, then the command; waits for its port
    local name=$1 port=$2; shift 2
    "$@" >"$OUT/$name.log" 2>&1 &
    pids+=($!)
    for _ in $(seq 100); do
        (exec 3<>/dev/tcp/127.0.0.1/"$port") 2>/dev/null && return 0
        sleep 0.1
    done
    echo "$name did not start; see $OUT/$name.log" >&2
    exit 1
}

corpus() { # size in bytes → corpus dir with one benign POST of that body size
    local dir="$OUT/corpus-$1"
    [ -d "$dir" ] && { echo "$dir"; return; }
    mkdir -p "$dir/bench-false-pos"
    python3 - "$1" "$dir/bench-false-pos/body.yml" <<'PYEOF'
import sys
n, path = int(sys.argv[1]), sys.argv[2]
open(path, "w").write(
    'payload:\n  - "' + "a" * n + '"\nencoder: [Plain]\nplaceholder:\n'
    "  - RawRequest:\n      method: POST\n      path: /upload\n"
    "      headers: {Content-Type: application/octet-stream}\n"
    '      body: "{{payload}}"\ntype: bench\n')
PYEOF
    echo "$dir"
}

row() { # label, summary.json → one markdown row of the direct-mode table
    jq -r --arg l "$1" '
      def ms(x): if x == null then "—" else ((x / 10 | round) / 100 | tostring) end;
      .ext_proc.phases as $p |
      "| \($l) | \(.achieved_rate | round) | \(ms($p.request_headers.p50)) / \(ms($p.request_headers.p99)) | \(ms($p.request_body.p50)) / \(ms($p.request_body.p99)) | \(ms($p.processor_total.p50)) / \(ms($p.processor_total.p99)) | \(.counts.passed) / \(.counts.blocked) / \(.counts.failed + .counts.unresolved) |"' "$2"
}

direct() { # label, url, extra flags…
    local label=$1 url=$2; shift 2
    local dir="$OUT/direct-$(echo "$label" | tr -c 'a-zA-Z0-9' '-')"
    "$W" run --ext-proc "$url" --out "$dir" --quiet "$@" >/dev/null
    row "$label" "$dir/summary.json"
}

echo "# results in $OUT" >&2
start proc0 15000 "$W" target --ext-proc-listen 127.0.0.1:15000
start proc12 15001 "$W" target --ext-proc-listen 127.0.0.1:15001 --headers-delay 1ms --body-delay 2ms
have_py=0
if [ -x "$PY" ]; then
    start pyproc 15002 "$PY" tests/python/extproc_server.py --port 15002
    have_py=1
fi

c1k=$(corpus 1024)
c64k=$(corpus 65536)
echo
echo "## Direct mode (closed loop, $DUR each)"
echo
echo "| processor, body, concurrency | req/s | request_headers p50 / p99 ms | request_body (per message) p50 / p99 ms | processor total p50 / p99 ms | passed / blocked / other |"
echo "|---|---|---|---|---|---|"
direct "calibration, no delay, 1 KiB buffered, c=1" grpc://127.0.0.1:15000 --corpus "$c1k" --max -c 1 --duration "$DUR"
direct "calibration, no delay, 1 KiB buffered, c=32" grpc://127.0.0.1:15000 --corpus "$c1k" --max -c 32 --duration "$DUR"
direct "calibration, no delay, 64 KiB streamed 16k, c=32" grpc://127.0.0.1:15000 --corpus "$c64k" --max -c 32 --duration "$DUR" --body-mode streamed
direct "calibration, 1 ms + 2 ms, 1 KiB buffered, c=1" grpc://127.0.0.1:15001 --corpus "$c1k" --max -c 1 --duration "$DUR"
direct "calibration, 1 ms + 2 ms, 1 KiB buffered, c=32" grpc://127.0.0.1:15001 --corpus "$c1k" --max -c 32 --duration "$DUR"
direct "calibration, 1 ms + 2 ms, 64 KiB streamed 16k, c=32" grpc://127.0.0.1:15001 --corpus "$c64k" --max -c 32 --duration "$DUR" --body-mode streamed
direct "calibration, attack corpus (payloads/), streamed, c=32" grpc://127.0.0.1:15000 --corpus payloads --max -c 32 --duration "$DUR" --body-mode streamed
if [ $have_py = 1 ]; then
    direct "python, 1 KiB buffered, c=1" grpc://127.0.0.1:15002 --corpus "$c1k" --max -c 1 --duration "$DUR"
    direct "python, 1 KiB buffered, c=32" grpc://127.0.0.1:15002 --corpus "$c1k" --max -c 32 --duration "$DUR"
    direct "python, 64 KiB streamed 16k, c=32" grpc://127.0.0.1:15002 --corpus "$c64k" --max -c 32 --duration "$DUR" --body-mode streamed
    direct "python, attack corpus (payloads/), streamed, c=32" grpc://127.0.0.1:15002 --corpus payloads --max -c 32 --duration "$DUR" --body-mode streamed
fi

echo
echo "## Through the gateway emulation: STREAMED vs BUFFERED by body size (open loop 100 req/s, $DUR each)"
echo
echo "Processor: calibration, 1 ms per headers, 2 ms per body message; upstream: calibration target, no delay."
echo
start app 15100 "$W" target --listen 127.0.0.1:15100 --marker 'wafload-upstream-never-blocks'
start gw-b 15201 "$W" target --gateway --listen 127.0.0.1:15201 --ext-proc grpc://127.0.0.1:15001 --upstream http://127.0.0.1:15100 --body-mode buffered
start gw-s 15202 "$W" target --gateway --listen 127.0.0.1:15202 --ext-proc grpc://127.0.0.1:15001 --upstream http://127.0.0.1:15100 --body-mode streamed
echo "| body | mode | client latency p50 / p99 ms | total − upstream (\"gateway\") p50 / p99 ms | upstream p50 ms | passed | other |"
echo "|---|---|---|---|---|---|---|"
for size in 1024 16384 65536 262144 1048576; do
    c=$(corpus $size)
    for mode in buffered streamed; do
        port=15201; [ $mode = streamed ] && port=15202
        dir="$OUT/gw-$mode-$size"
        "$W" run --target "http://127.0.0.1:$port/" --corpus "$c" --rate 100 --duration "$DUR" -c 64 --out "$dir" --quiet >/dev/null
        jq -r --arg s "$size" --arg m "$mode" '
          def ms(x): if x == null then "—" else ((x / 10 | round) / 100 | tostring) end;
          "| \($s) | \($m) | \(ms(.latency.all.p50)) / \(ms(.latency.all.p99)) | \(ms(.upstream.gateway.p50)) / \(ms(.upstream.gateway.p99)) | \(ms(.upstream.upstream.p50)) | \(.counts.passed) | \(.counts.unresolved + .counts.failed) |"' "$dir/summary.json"
    done
done

echo
echo "## Decomposition: same gateway, processor without delay vs 1 ms + 2 ms (1 KiB, buffered)"
echo
start gw-0 15203 "$W" target --gateway --listen 127.0.0.1:15203 --ext-proc grpc://127.0.0.1:15000 --upstream http://127.0.0.1:15100 --body-mode buffered
echo "| processor delay | total − upstream p50 ms | client latency p50 ms |"
echo "|---|---|---|"
for port in 15203 15201; do
    dir="$OUT/decomp-$port"
    "$W" run --target "http://127.0.0.1:$port/" --corpus "$c1k" --rate 100 --duration "$DUR" -c 64 --out "$dir" --quiet >/dev/null
    label="none"; [ $port = 15201 ] && label="1 ms headers + 2 ms body"
    jq -r --arg l "$label" 'def ms(x): ((x / 10 | round) / 100 | tostring);
      "| \($l) | \(ms(.upstream.gateway.p50)) | \(ms(.latency.all.p50)) |"' "$dir/summary.json"
done

echo
echo "## With the compare tooling: wafload sweep, BUFFERED (A) vs STREAMED (B) through the emulation"
echo
for m in buffered streamed; do
    port=15201; [ $m = streamed ] && port=15202
    printf 'name: gw-%s\ntarget:\n  url: http://127.0.0.1:%s/\nrate: 100\nconnections: 64\nresults_dir: %s\n' \
        "$m" "$port" "$OUT/sweep" > "$OUT/gw-$m.yaml"
done
echo '```'
"$W" sweep --profile "$OUT/gw-buffered.yaml" --profile-b "$OUT/gw-streamed.yaml" \
    --label-a buffered --label-b streamed --body-sizes 1k,16k,64k,256k,1m --duration "$DUR"
echo '```'
