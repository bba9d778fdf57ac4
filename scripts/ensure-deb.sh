#!/usr/bin/env bash
# Installs Debian packages that nothing on PyPI or npm provides, when they are missing.
set -u
need=()
for pkg in "$@"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || need+=("$pkg")
done
[ ${#need[@]} -eq 0 ] && exit 0
if ! command -v apt-get >/dev/null; then
  echo "Missing system packages: ${need[*]} (install them with your package manager)" >&2
  exit 1
fi
sudo=""
if [ "$(id -u)" != 0 ]; then
  if command -v sudo >/dev/null; then sudo="sudo"; else
    echo "Missing system packages: ${need[*]}; run: apt-get install ${need[*]} as root" >&2
    exit 1
  fi
fi
echo "Installing Debian packages: ${need[*]}"
$sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need[@]}" >/dev/null \
  || { echo "Could not install: ${need[*]}" >&2; exit 1; }
