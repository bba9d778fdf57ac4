"""A small async client of the backend's REST API, as one simulated user sees it.

Every failure surfaces as `ApiError` (with the HTTP status, the error code of the body
and, for 429/503, how long to wait) so that agents can back off instead of crashing.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import os
import secrets
from pathlib import Path
from typing import Any

import httpx

API_PREFIX = "/api/v1"


class ApiError(Exception):
    """A request that did not succeed.

    `status` is the HTTP status (0 when the backend could not be reached), `code` the
    `error.code` of the body (or a synthetic one such as `unreachable`), `retry_after`
    seconds to wait when the backend said so (429) or when it is unavailable.
    """

    def __init__(
        self, status: int, code: str, message: str, retry_after: float | None = None
    ) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.retry_after = retry_after

    @property
    def transient(self) -> bool:
        """True for errors that go away by waiting: unreachable, 429, 5xx."""
        return self.status == 0 or self.status == 429 or self.status >= 500


def _error_from_response(resp: httpx.Response) -> ApiError:
    code = f"http_{resp.status_code}"
    message = resp.reason_phrase
    try:
        body = resp.json()
    except ValueError:
        body = None
    if isinstance(body, dict):
        err = body.get("error")
        if isinstance(err, dict):
            code = str(err.get("code") or code)
            message = str(err.get("message") or message)
        elif "detail" in body:
            message = str(body["detail"])
    retry: float | None = None
    header = resp.headers.get("retry-after")
    if header is not None:
        try:
            retry = max(0.0, float(header))
        except ValueError:
            retry = None
    if retry is None and resp.status_code in (429, 503):
        retry = 1.0
    return ApiError(resp.status_code, code, message, retry)


def load_secret(path: Path) -> bytes:
    """Read the simulation's secret from `path`, creating it (mode 0600) on first use.

    The secret derives every simulated user's password, so a restarted simulation logs
    back in as the same users; it never leaves the data directory.
    """
    try:
        text = path.read_text().strip()
        if text:
            return bytes.fromhex(text)
    except FileNotFoundError:
        pass
    except ValueError as exc:
        raise ValueError(f"{path}: not a hex secret; delete it to create a new one") from exc
    path.parent.mkdir(parents=True, exist_ok=True)
    secret = secrets.token_bytes(32)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(secret.hex() + "\n")
        fh.flush()
        os.fsync(fh.fileno())
    try:
        # Two simulations starting together must agree on one secret: the first link wins.
        os.link(tmp, path)
    except FileExistsError:
        os.unlink(tmp)
        return bytes.fromhex(path.read_text().strip())
    os.unlink(tmp)
    return secret


def derive_password(secret: bytes, username: str) -> str:
    """The password of simulated user `username`: HMAC-SHA256(secret, username), 32 chars."""
    digest = hmac.new(secret, b"hft-sim-user:" + username.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")[:32]


class UserSession:
    """One logged-in user: registers on first use, logs in, re-logs in on 401."""

    def __init__(self, http: httpx.AsyncClient, username: str, password: str) -> None:
        self.http = http
        self.username = username
        self.password = password
        self.token: str | None = None
        self.user_id: str | None = None
        self.register_first = False

    async def _send(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: dict[str, Any] | None = None,
        data: dict[str, str] | None = None,
        auth: bool = True,
    ) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.token}"} if auth and self.token else {}
        try:
            return await self.http.request(
                method, API_PREFIX + path, json=json, params=params, data=data, headers=headers
            )
        except httpx.TimeoutException as exc:
            raise ApiError(0, "timeout", f"{method} {path}: {exc!r}", 1.0) from exc
        except httpx.TransportError as exc:
            raise ApiError(0, "unreachable", f"{method} {path}: {exc!r}", 1.0) from exc

    async def ensure_user(self) -> None:
        """Log in, registering the user first when it does not exist; ApiError on failure.

        Login comes first because after the first start every simulated user exists and
        each attempt costs the backend a password hash; with `register_first` (a new
        secret, so the users cannot exist yet) registration comes first instead.
        """
        if self.register_first:
            self.register_first = False
            if await self._register():
                await self.login()
                return
        try:
            await self.login()
            return
        except ApiError as err:
            if err.status != 401:
                raise
        if not await self._register():
            # Someone registered the name meanwhile (another simulation with the same secret?).
            try:
                await self.login()
                return
            except ApiError as err:
                if err.status != 401:
                    raise
            raise ApiError(
                409,
                "credentials_mismatch",
                f"user {self.username} exists but the derived password does not log in "
                "(was the simulation secret replaced?)",
            )
        await self.login()

    async def _register(self) -> bool:
        """POST /auth/register: True when created, False when the name is taken."""
        resp = await self._send(
            "POST",
            "/auth/register",
            json={"username": self.username, "password": self.password},
            auth=False,
        )
        if resp.status_code == 409:
            return False
        if resp.status_code not in (200, 201):
            raise _error_from_response(resp)
        return True

    async def login(self) -> None:
        """Obtain a bearer token (OAuth2 password form); ApiError(401) on bad credentials."""
        resp = await self._send(
            "POST",
            "/auth/token",
            data={"username": self.username, "password": self.password},
            auth=False,
        )
        if resp.status_code != 200:
            raise _error_from_response(resp)
        self.token = str(resp.json()["access_token"])

    async def call(
        self, method: str, path: str, *, json: Any = None, params: dict[str, Any] | None = None
    ) -> Any:
        """One authenticated request; returns the decoded JSON body (None when empty).

        A 401 triggers one fresh login and a retry (tokens expire); anything else that is
        not 2xx raises ApiError.
        """
        if self.token is None:
            await self.ensure_user()
        resp = await self._send(method, path, json=json, params=params)
        if resp.status_code == 401:
            await self.login()
            resp = await self._send(method, path, json=json, params=params)
        if resp.status_code >= 400:
            raise _error_from_response(resp)
        if not resp.content:
            return None
        return resp.json()


async def wait_for_backend(
    http: httpx.AsyncClient, stop: asyncio.Event, max_wait: float | None = None
) -> bool:
    """Poll GET /health until the backend answers 200; False if `stop` is set or time runs out."""
    loop = asyncio.get_running_loop()
    deadline = None if max_wait is None else loop.time() + max_wait
    while not stop.is_set():
        try:
            resp = await http.get("/health")
            if resp.status_code == 200:
                return True
        except httpx.HTTPError:
            pass
        if deadline is not None and loop.time() >= deadline:
            return False
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 0.5)
    return False
