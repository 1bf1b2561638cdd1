#!/usr/bin/env bash
# Measures the "Measuring a real WAF" tables on the lab (docs/lab-results.md):
#  1. for CRS paranoia levels 1..4: the stock gotestwaf corpus and our payloads/, each
#     request once, at RATE req/s against the blocking front (waf);
#  2. at paranoia 1: WAF vs baseline latency at 200 req/s, benign traffic, interleaved
#     blocks (`wafload overhead`).
# Prints the Markdown tables on stdout; run folders stay in OUT.
#
#   cargo build --release && lab/measure.sh > /tmp/tables.md
#
# Env: WAFLOAD (binary, default target/release/wafload), STOCK (gotestwaf testcases,
# default ../shared/corpora/gotestwaf/testcases), OUT (default /tmp/wafload-measure),
# RATE (default 300), LATENCY_DURATION (default 60s), PARTS (default "detection latency";
# name one to rerun only it, e.g. PARTS=latency when the machine was busy).
set -euo pipefail
cd "$(dirname "$0")/.."

BIN=${WAFLOAD:-target/release/wafload}
STOCK=${STOCK:-../shared/corpora/gotestwaf/testcases}
OUT=${OUT:-/tmp/wafload-measure}
RATE=${RATE:-300}
LATENCY_DURATION=${LATENCY_DURATION:-60s}
PARTS=${PARTS:-detection latency}

[ -x "$BIN" ] || { echo "measure: $BIN missing (cargo build --release)" >&2; exit 2; }
[ -d "$STOCK" ] || { echo "measure: stock corpus $STOCK missing" >&2; exit 2; }
bash lab/lab.sh check >/dev/null
mkdir -p "$OUT"

LAB=""
stop_lab() { if [ -n "$LAB" ]; then bash lab/lab.sh stop "$LAB" >/dev/null 2>&1 || true; LAB=""; fi; }
trap stop_lab EXIT

start_lab() { # paranoia
    LAB="$OUT/lab-pl$1"
    bash lab/lab.sh start "$LAB" --paranoia "$1" --error-log-level crit >"$OUT/ports-pl$1.env"
    waf=$(sed -n 's/^waf=//p' "$OUT/ports-pl$1.env")
    baseline=$(sed -n 's/^baseline=//p' "$OUT/ports-pl$1.env")
}

run_corpus() { # name corpus
    "$BIN" run --target "http://127.0.0.1:$waf/" --corpus "$2" --rate "$RATE" \
        --connections 32 --timeout 10s --no-preflight --quiet --out "$OUT/$1" >/dev/null
}

if [[ " $PARTS " == *" detection "* ]]; then
    for pl in 1 2 3 4; do
        echo "measure: paranoia $pl" >&2
        rm -rf "$OUT/pl$pl-stock" "$OUT/pl$pl-payloads"
        start_lab "$pl"
        run_corpus "pl$pl-stock" "$STOCK"
        run_corpus "pl$pl-payloads" payloads
        stop_lab
    done
fi

if [[ " $PARTS " == *" latency "* ]]; then
    echo "measure: latency at paranoia 1, $LATENCY_DURATION at 200 req/s" >&2
    uptime >"$OUT/load-before-latency.txt"
    rm -rf "$OUT/overhead"
    start_lab 1
    "$BIN" overhead --target "http://127.0.0.1:$waf/" --baseline "http://127.0.0.1:$baseline/" \
        --corpus payloads --benign-share 1 --rate 200 --duration "$LATENCY_DURATION" \
        --connections 32 --results-dir "$OUT/overhead" --json >"$OUT/overhead.json"
    stop_lab
    uptime >"$OUT/load-after-latency.txt"
fi

python3 lab/measure_tables.py "$OUT"
