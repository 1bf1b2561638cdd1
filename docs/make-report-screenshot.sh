#!/usr/bin/env bash
# Re-creates docs/report-screenshot.png: a demo run against the calibration target, its
# report, and a headless Chromium screenshot of report.html at 1280 px (down to the end
# of the five charts). Needs Debian's `chromium` and `fonts-liberation` (text in the page).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
run=$(./target/release/wafload demo --duration 10s --results-dir "$tmp/results" --quiet)
./target/release/wafload report "$run" --format html --quiet
chromium --headless --no-sandbox --disable-gpu --no-first-run --disable-background-networking \
  --disable-component-update --disable-sync --hide-scrollbars --user-data-dir="$tmp/profile" \
  --window-size=1280,3560 --screenshot="$PWD/docs/report-screenshot.png" \
  "file://$(realpath "$run")/report/report.html"
