# syntax=docker/dockerfile:1
# The engine service: C++ matching core + gRPC server, journal and snapshots.
# Build from the repository root:  docker build -f deploy/engine.Dockerfile -t hft/engine .

# --- build: compile the C++ core into the wheel and install it into a venv --------------
FROM python:3.11.11-slim-bookworm AS build
# A compiler only here; the runtime image carries none.
RUN apt-get update \
 && apt-get install -y --no-install-recommends g++ \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY pyproject.toml CMakeLists.txt README.md ./
COPY core/ core/
COPY src/ src/
# Build isolation fetches the pinned scikit-build-core, nanobind and, when missing, cmake/ninja.
RUN python -m venv /opt/venv \
 && /opt/venv/bin/pip install --no-cache-dir . \
 && /opt/venv/bin/python -c "import hft._core"

# --- runtime ---------------------------------------------------------------------------
FROM python:3.11.11-slim-bookworm AS runtime
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HFT_CONFIG=/etc/hft/config.yaml \
    HFT_ENGINE_HOST=0.0.0.0 \
    HFT_ENGINE_PORT=50051 \
    HFT_ENGINE_METRICS_PORT=9101 \
    HFT_ENGINE_DATA_DIR=/var/lib/hft/engine \
    HFT_ENGINE_FSYNC=every
RUN groupadd --system --gid 10001 hft \
 && useradd --system --uid 10001 --gid hft --home-dir /var/lib/hft --shell /usr/sbin/nologin hft \
 && mkdir -p /var/lib/hft/engine \
 && chown -R hft:hft /var/lib/hft
COPY --from=build /opt/venv /opt/venv
COPY config/default.yaml /etc/hft/config.yaml
COPY deploy/healthcheck.py /usr/local/lib/hft/healthcheck.py
USER 10001:10001
WORKDIR /var/lib/hft
# Journal segments and snapshots: everything the engine acknowledged lives here.
VOLUME ["/var/lib/hft"]
EXPOSE 50051 9101
# SIGTERM: the engine stops accepting, drains, writes a snapshot and exits 0.
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=10s --timeout=5s --start-period=60s --retries=3 \
  CMD ["python", "/usr/local/lib/hft/healthcheck.py", "grpc"]
ENTRYPOINT ["hft", "engine"]
