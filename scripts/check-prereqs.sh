#!/usr/bin/env bash
# Checks what `make` cannot install by itself and says exactly what is missing.
set -u
missing=()
py=${PYTHON:-python3}
if ! command -v "$py" >/dev/null; then
  missing+=("Python 3.11+ ($py not found): sudo apt-get install python3 python3-venv python3-dev")
elif ! "$py" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
  missing+=("Python 3.11+ (found $("$py" --version 2>&1))")
elif ! "$py" -c 'import venv, ensurepip' 2>/dev/null; then
  missing+=("the venv module: sudo apt-get install python3-venv")
fi
if ! command -v c++ >/dev/null && ! command -v g++ >/dev/null && ! command -v clang++ >/dev/null; then
  missing+=("a C++20 compiler: sudo apt-get install g++")
fi
if [ ${#missing[@]} -gt 0 ]; then
  echo "Cannot set up the platform; missing:" >&2
  printf '  - %s\n' "${missing[@]}" >&2
  exit 1
fi
