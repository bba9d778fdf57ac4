"""Serving the built web UI (web/dist) with single-page-app fallback."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, JSONResponse, Response

from hft import __version__
from hft.api.errors import error_response

_NO_CACHE = {"Cache-Control": "no-cache"}
# Vite names built assets by content hash, so they never change under the same name.
_IMMUTABLE = {"Cache-Control": "public, max-age=31536000, immutable"}


def _is_api_path(path: str) -> bool:
    return path == "api" or path.startswith("api/")


def install_web(app: FastAPI, web_dir: Path) -> None:
    """Serve `web_dir` at `/`: files as they are, `index.html` for any other non-API GET
    (client-side routes), a JSON 404 under /api. Without a built UI, `/` answers with a
    short JSON description of the service."""
    root = web_dir.resolve()
    index = root / "index.html"

    if not index.is_file():

        @app.get("/", include_in_schema=False)
        async def service_info() -> JSONResponse:
            return JSONResponse(
                {
                    "service": "hft backend",
                    "version": __version__,
                    "api": "/api/v1",
                    "docs": "/docs",
                    "openapi": "/openapi.json",
                    "health": "/health",
                    "web_ui": f"not built (no {index}); build it with `npm run build` in web/",
                }
            )

        return

    @app.get("/{path:path}", include_in_schema=False)
    async def web_ui(path: str, request: Request) -> Response:
        if _is_api_path(path):
            return error_response(404, "not_found", f"no API endpoint {request.url.path}")
        if path:
            candidate = (root / path).resolve()
            # Never serve anything outside the web directory (e.g. `..` segments).
            if candidate.is_relative_to(root) and candidate.is_file():
                headers = _IMMUTABLE if path.startswith("assets/") else _NO_CACHE
                return FileResponse(candidate, headers=headers)
        return FileResponse(index, headers=_NO_CACHE)
