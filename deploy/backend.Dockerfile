# syntax=docker/dockerfile:1
# The backend (FastAPI broker) serving the built web UI at /.
# Build from the repository root:  docker build -f deploy/backend.Dockerfile -t hft/backend .

# --- web: build the React UI into /web/dist --------------------------------------------
FROM node:22.12.0-bookworm-slim AS web
WORKDIR /web
# The manifest first, so the dependency layer is reused while only sources change.
COPY web/package*.json ./
RUN npm install --no-audit --no-fund
COPY web/ ./
RUN npm run build

# --- build: the Python package with its C++ core ---------------------------------------
FROM python:3.11.11-slim-bookworm AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends g++ \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY pyproject.toml CMakeLists.txt README.md ./
COPY core/ core/
COPY src/ src/
RUN python -m venv /opt/venv \
 && /opt/venv/bin/pip install --no-cache-dir . \
 && /opt/venv/bin/python -c "import hft._core"

# --- runtime ---------------------------------------------------------------------------
FROM python:3.11.11-slim-bookworm AS runtime
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HFT_CONFIG=/etc/hft/config.yaml \
    HFT_API_HOST=0.0.0.0 \
    HFT_API_PORT=8000 \
    HFT_DATA_DIR=/var/lib/hft \
    HFT_WEB_DIR=/usr/share/hft/web \
    HFT_ENGINE_ADDRESS=engine:50051
RUN groupadd --system --gid 10001 hft \
 && useradd --system --uid 10001 --gid hft --home-dir /var/lib/hft --shell /usr/sbin/nologin hft \
 && mkdir -p /var/lib/hft \
 && chown -R hft:hft /var/lib/hft
COPY --from=build /opt/venv /opt/venv
COPY --from=web /web/dist /usr/share/hft/web
COPY config/default.yaml /etc/hft/config.yaml
COPY deploy/healthcheck.py /usr/local/lib/hft/healthcheck.py
USER 10001:10001
WORKDIR /var/lib/hft
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 \
  CMD ["python", "/usr/local/lib/hft/healthcheck.py", "http"]
# Migrations run at start; with several replicas they serialize on the database.
ENTRYPOINT ["hft", "api"]
