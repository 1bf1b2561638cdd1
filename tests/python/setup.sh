#!/usr/bin/env bash
# Creates tests/python/.venv with the interop fixture's packages (xds-protos, grpcio).
# Called by .ci/run; safe to run again (it only installs what is missing).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
venv="$here/.venv"
python="${PYTHON:-python3}"
if [ ! -x "$venv/bin/python" ]; then
    "$python" -m venv "$venv"
fi
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$here/requirements.txt"
"$venv/bin/python" -c "import grpc; from envoy.service.ext_proc.v3 import external_processor_pb2_grpc" \
    && echo "tests/python/.venv ready: $("$venv/bin/python" -m pip freeze | grep -E '^(grpcio|xds-protos)==' | tr '\n' ' ')"
