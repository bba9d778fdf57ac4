#!/usr/bin/env bash
# The web UI needs Node.js >= 20.19 with npm; say so plainly when it is missing.
set -u
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  echo "The web UI needs Node.js >= 20.19 and npm (https://nodejs.org or your distribution's nodejs package)." >&2
  exit 1
fi
if ! node -e 'const [a,b]=process.versions.node.split(".").map(Number); process.exit(a>20||(a===20&&b>=19)?0:1)'; then
  echo "The web UI needs Node.js >= 20.19; found $(node --version)." >&2
  exit 1
fi
