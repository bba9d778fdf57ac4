#!/usr/bin/env bash
# Generate the Python gRPC modules and typed stubs from proto/ into src/hft/engine/pb/.
# The output is committed; tests/unit/engine/test_pb_current.py fails when it is stale.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
# The mypy-protobuf plugins live beside the interpreter.
export PATH="$(dirname "$PY"):$PATH"
out=${1:-src}
mkdir -p "$out/hft/engine/pb"
"$PY" -m grpc_tools.protoc \
  -I hft/engine/pb=proto/trading/pb \
  --python_out="$out" --grpc_python_out="$out" --mypy_out="$out" --mypy_grpc_out="$out" \
  proto/trading/pb/engine.proto
touch "$out/hft/engine/pb/__init__.py"
