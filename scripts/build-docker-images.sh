#!/usr/bin/env bash
# Build the platform's three images (engine, backend, frontend) and optionally push them.
#
#   scripts/build-docker-images.sh REGISTRY TAG [--push]
#
# Images: REGISTRY/engine:TAG, REGISTRY/backend:TAG, REGISTRY/frontend:TAG, built from the
# repository root with deploy/<name>.Dockerfile. REGISTRY is e.g. ghcr.io/acme/hft or a
# plain local prefix such as hft. DOCKER (default: docker) selects the client binary;
# DOCKER_BUILD_ARGS adds options to every `docker build` (e.g. "--platform linux/amd64").
set -euo pipefail

usage() {
  echo "usage: $0 REGISTRY TAG [--push]" >&2
  echo "  builds REGISTRY/{engine,backend,frontend}:TAG from deploy/*.Dockerfile" >&2
}

push=0
positional=()
for arg in "$@"; do
  case "$arg" in
    --push) push=1 ;;
    -h|--help) usage; exit 0 ;;
    -*) echo "error: unknown option $arg" >&2; usage; exit 2 ;;
    *) positional+=("$arg") ;;
  esac
done
if [ ${#positional[@]} -ne 2 ]; then
  usage
  exit 2
fi
registry=${positional[0]%/}
tag=${positional[1]}
# Docker's own rules: a tag is [A-Za-z0-9_][A-Za-z0-9_.-]{0,127}; repository paths are lowercase.
if ! [[ "$tag" =~ ^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$ ]]; then
  echo "error: invalid tag '$tag' (letters, digits, '_', '.', '-'; at most 128; not starting with '.' or '-')" >&2
  exit 2
fi
if ! [[ "$registry" =~ ^[a-z0-9]([a-z0-9._:/-]*[a-z0-9])?$ ]]; then
  echo "error: invalid registry '$registry' (lowercase host[:port]/path, e.g. ghcr.io/acme/hft)" >&2
  exit 2
fi

root=$(cd "$(dirname "$0")/.." && pwd)
docker=${DOCKER:-docker}
if ! command -v "$docker" >/dev/null 2>&1; then
  echo "error: '$docker' not found. Install Docker (https://docs.docker.com/engine/install/) or set DOCKER to a compatible client." >&2
  exit 3
fi
if ! "$docker" info >/dev/null 2>&1; then
  echo "error: '$docker' is installed but cannot reach a container engine (is the daemon running? is DOCKER_HOST right? may this user use the socket?)." >&2
  echo "       '$docker info' says:" >&2
  "$docker" info 2>&1 | sed 's/^/         /' | tail -n 5 >&2 || true
  exit 3
fi

# Lint first when hadolint is at hand (the dev extras install it into .venv).
hadolint=""
if [ -x "$root/.venv/bin/hadolint" ]; then hadolint="$root/.venv/bin/hadolint";
elif command -v hadolint >/dev/null 2>&1; then hadolint=$(command -v hadolint); fi

read -r -a extra <<< "${DOCKER_BUILD_ARGS:-}"
revision=$(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown)
built=()
for name in engine backend frontend; do
  dockerfile="$root/deploy/$name.Dockerfile"
  image="$registry/$name:$tag"
  if [ -n "$hadolint" ]; then
    "$hadolint" --config "$root/deploy/hadolint.yaml" "$dockerfile"
  fi
  echo "==> building $image"
  "$docker" build "${extra[@]}" \
    --file "$dockerfile" \
    --tag "$image" \
    --label "org.opencontainers.image.title=hft-$name" \
    --label "org.opencontainers.image.version=$tag" \
    --label "org.opencontainers.image.revision=$revision" \
    "$root"
  built+=("$image")
done

if [ "$push" -eq 1 ]; then
  for image in "${built[@]}"; do
    echo "==> pushing $image"
    "$docker" push "$image"
  done
fi
echo "built: ${built[*]}"
[ "$push" -eq 1 ] && echo "pushed: ${built[*]}"
exit 0
