#!/usr/bin/env bash
# Makes a venv with grpcio, grpcio-tools, grpcio-reflection and grpcio-health-checking from PyPI
# and generates Strata's Python stubs from proto/strata.proto into it, for example.py (stubs) and
# generic_client.py (no stubs: reflection and health only) and the tests that run them.
#
#   tests/grpc-python/install.sh VENV_DIR
#
# Prints `python=PATH` and `stubs=DIR`, or one `missing: ...` line when it could not.
set -uo pipefail
venv="${1:?usage: install.sh VENV_DIR}"
proto_dir="$(cd "$(dirname "$0")/../../proto" && pwd)"
python="$venv/bin/python"
modules='import grpc, grpc_tools, grpc_reflection.v1alpha.proto_reflection_descriptor_database, grpc_health.v1.health_pb2'
if [ ! -x "$python" ] || ! "$python" -c "$modules" >/dev/null 2>&1; then
    { python3 -m venv "$venv" && "$venv/bin/pip" install -q "grpcio>=1.60,<2" "grpcio-tools>=1.60,<2" \
        "grpcio-reflection>=1.60,<2" "grpcio-health-checking>=1.60,<2"; } \
        >"${venv%/}.pip-install.log" 2>&1
fi
if ! "$python" -c "$modules" >/dev/null 2>&1; then
    echo "missing: grpcio, grpcio-tools, grpcio-reflection and grpcio-health-checking (PyPI install failed; see ${venv%/}.pip-install.log)"
    exit 0
fi
stubs="$venv/strata-stubs"
mkdir -p "$stubs"
if "$python" -m grpc_tools.protoc -I "$proto_dir" --python_out="$stubs" --grpc_python_out="$stubs" \
    "$proto_dir/strata.proto" >"${venv%/}.protoc.log" 2>&1; then
    echo "python=$python"
    echo "stubs=$stubs"
else
    echo "missing: Python stubs (grpc_tools.protoc failed; see ${venv%/}.protoc.log)"
fi
