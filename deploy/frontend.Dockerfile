# syntax=docker/dockerfile:1
# The web UI on nginx, proxying /api (REST and the WebSocket /api/v1/ws) to the backend.
# Build from the repository root:  docker build -f deploy/frontend.Dockerfile -t hft/frontend .

FROM node:22.12.0-bookworm-slim AS web
WORKDIR /web
COPY web/package*.json ./
RUN npm install --no-audit --no-fund
COPY web/ ./
RUN npm run build

# The unprivileged variant runs as uid 101 and listens on 8080, so no root is needed.
FROM nginxinc/nginx-unprivileged:1.27.3-alpine AS runtime
# host:port of the backend; substituted into the config at container start.
ENV HFT_BACKEND_UPSTREAM=backend:8000
COPY deploy/nginx/default.conf.template /etc/nginx/templates/default.conf.template
COPY --from=web /web/dist /usr/share/nginx/html
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
  CMD ["wget", "-q", "-O", "/dev/null", "http://127.0.0.1:8080/healthz"]
