#!/usr/bin/env bash
# Open-loop accuracy: at each rate, achieved-rate error, send jitter (intended → actual
# send, p99) and latency self-overhead against a calibration target with a fixed 1 ms delay
# (p50 − 1 ms: what wafload itself adds, as wrk2 would measure it), and wafload's own CPU
# time (user + system) per request.
#
#   benches/rate_accuracy.sh [SECONDS] [RATES]        (defaults: 20 "1000 5000 20000")
#   WAFLOAD_ARGS="--threads 1" benches/rate_accuracy.sh …   (extra flags for every run)
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${1:-20}
RATES=${2:-"1000 5000 20000"}
WAFLOAD=${WAFLOAD:-target/release/wafload}
[ -x "$WAFLOAD" ] || { echo "build first: cargo build --release"; exit 2; }
WORK=$(mktemp -d /tmp/wafload-rate.XXXXXX)
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$WAFLOAD" target --listen "127.0.0.1:$PORT" --delay 1ms >/dev/null 2>&1 &
TPID=$!
trap 'kill $TPID 2>/dev/null || true' EXIT
for _ in $(seq 50); do (echo > /dev/tcp/127.0.0.1/$PORT) 2>/dev/null && break; sleep 0.1; done
echo "# $(date -Iseconds) · $(nproc) CPUs · ${SECS}s per rate · target delay 1 ms"
echo "| rate | sent | achieved req/s | rate error | send jitter p50 / p99 (µs) | late > 1 ms | latency p50 / p99 (ms) | self-overhead p50 (ms) | wafload CPU per request (µs) |"
echo "|---|---|---|---|---|---|---|---|---|"
for R in $RATES; do
    # Run under a small python wrapper that also reports wafload's CPU time (getrusage).
    dir=$(python3 -c 'import resource, subprocess, sys
r = subprocess.run(sys.argv[2:], stdout=subprocess.PIPE, check=True)
u = resource.getrusage(resource.RUSAGE_CHILDREN)
open(sys.argv[1], "w").write(f"{u.ru_utime + u.ru_stime}")
sys.stdout.write(r.stdout.decode())' "$WORK/cpu" "$WAFLOAD" run --target "http://127.0.0.1:$PORT/" --plain --rate "$R" --duration "${SECS}s" \
        -c 512 --timeout 5s --quiet --no-preflight --results-dir "$WORK" ${WAFLOAD_ARGS:-})
    python3 - "$dir" "$R" "$(cat "$WORK/cpu")" <<'PY'
import json, sys
s = json.load(open(sys.argv[1] + "/summary.json")); r = float(sys.argv[2]); cpu = float(sys.argv[3])
l, a = s["lateness"], s["latency"]["all"]
err = (s["achieved_rate"] - r) / r * 100
print(f"| {r:.0f} | {s['sent']} | {s['achieved_rate']:.1f} | {err:+.2f} % | {l['p50_us']} / {l['p99_us']} | {l['late']} | "
      f"{a['p50']/1e3:.3f} / {a['p99']/1e3:.3f} | {a['p50']/1e3 - 1.0:.3f} | {cpu / s['sent'] * 1e6:.1f} |")
PY
done
