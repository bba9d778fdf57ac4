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
# grpc has no type information, so the stubs' own `type: ignore`s look unused to mypy.
for f in "$out/hft/engine/pb/engine_pb2_grpc.pyi"; do
  { echo '# mypy: disable-error-code="unused-ignore, overload-cannot-match"'; cat "$f"; } > "$f.tmp" && mv "$f.tmp" "$f"
done
touch "$out/hft/engine/pb/__init__.py"
