#!/usr/bin/env bash
# Long-run memory: RSS over time and results size per request. Per-request records are
# streamed to disk, so RSS must not grow with the request count.
#
#   benches/long_run.sh [SECONDS] [RATE]     (documented run: 600 5000; CI: 60 2000)
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${1:-600}
RATE=${2:-5000}
WAFLOAD=${WAFLOAD:-target/release/wafload}
[ -x "$WAFLOAD" ] || { echo "build first: cargo build --release"; exit 2; }
WORK=$(mktemp -d /tmp/wafload-long.XXXXXX)
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$WAFLOAD" target --listen "127.0.0.1:$PORT" >/dev/null 2>&1 &
TPID=$!
trap 'kill $TPID 2>/dev/null || true' EXIT
for _ in $(seq 50); do (echo > /dev/tcp/127.0.0.1/$PORT) 2>/dev/null && break; sleep 0.1; done
"$WAFLOAD" run --target "http://127.0.0.1:$PORT/" --corpus payloads --benign-share 0.5 \
    --rate "$RATE" --duration "${SECS}s" -c 256 --quiet --out "$WORK/run" >/dev/null &
PID=$!
: >"$WORK/rss.txt"
while kill -0 "$PID" 2>/dev/null; do
    awk '/VmRSS/ {print $2}' "/proc/$PID/status" 2>/dev/null >>"$WORK/rss.txt" || true
    sleep 1
done
wait "$PID"
python3 - "$WORK/rss.txt" "$WORK/run" <<'PY'
import json, os, sys
rss = [int(x) for x in open(sys.argv[1]) if x.strip()]
s = json.load(open(sys.argv[2] + "/summary.json"))
n = len(rss)
at = lambda f: rss[min(n - 1, max(0, int(n * f)))]
early, late = at(0.1), max(rss[int(n * 0.5):] or rss)
size = sum(os.path.getsize(os.path.join(sys.argv[2], f)) for f in os.listdir(sys.argv[2]))
rec = os.path.getsize(os.path.join(sys.argv[2], "requests.jsonl.zst"))
print(f"requests {s['sent']} at {s['achieved_rate']:.0f} req/s over {s['duration_s']:.0f} s")
print(f"RSS at 10 %: {early/1024:.1f} MiB, max after 50 %: {late/1024:.1f} MiB, growth {(late-early)/early*100:+.1f} %")
print(f"results: {size/1e6:.1f} MB in all, records {rec/s['sent']:.1f} bytes per request")
PY
