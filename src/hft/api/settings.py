"""Backend settings: the `api:` section of the YAML config, overridden by HFT_* environment
variables, overridden by explicit keyword arguments (the CLI flags).

Secrets are never hard-coded: when `jwt_secret` or `api_key_master_key` is not given, a
random one is generated on first use and kept in `<data_dir>` with mode 0600, so restarts
and several workers share it.
"""

from __future__ import annotations

import contextlib
import contextvars
import os
import secrets
from decimal import Decimal
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    SecretStr,
    model_validator,
)
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from hft.api.trading.config import TradingSettings

DEFAULT_CONFIG = Path("config/default.yaml")
JWT_SECRET_FILE = "jwt_secret"  # noqa: S105 (a file name)
API_KEY_MASTER_FILE = "api_key_master_key"

# Which YAML file the settings being built read; set by `load_settings`.
_config_path: contextvars.ContextVar[Path | None] = contextvars.ContextVar(
    "hft_api_config_path", default=None
)


class TokenBucket(BaseModel):
    """A token bucket: `rate` tokens per second refill, at most `burst` stored."""

    model_config = ConfigDict(extra="forbid")

    rate: float = Field(gt=0, description="sustained requests (or messages) per second")
    burst: int = Field(ge=1, description="how many may arrive at once")


class RateLimitSettings(BaseModel):
    """Limits per authenticated user and per client IP, for REST and WebSocket."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = True
    rest_per_user: TokenBucket = TokenBucket(rate=100, burst=200)
    rest_per_ip: TokenBucket = TokenBucket(rate=500, burst=1000)
    # Login and registration are the brute-force surface, so they get their own tighter bucket.
    auth_per_ip: TokenBucket = TokenBucket(rate=5, burst=30)
    # Failed logins per username, from any address: slows password guessing spread over
    # many IPs. Only failures cost a token; a locked name answers 429 until it refills.
    login_failures_per_username: TokenBucket = TokenBucket(rate=1 / 60, burst=10)
    ws_messages_per_user: TokenBucket = TokenBucket(rate=20, burst=50)
    ws_messages_per_ip: TokenBucket = TokenBucket(rate=100, burst=200)
    ws_connections_per_ip: TokenBucket = TokenBucket(rate=5, burst=20)
    # Clients never limited per IP (e.g. a co-located simulator); users are still limited.
    exempt_ips: list[str] = Field(default_factory=list)


class _YamlApiSection(PydanticBaseSettingsSource):
    """The `api:` mapping of the YAML config file (lowest priority above the defaults)."""

    def __init__(self, settings_cls: type[BaseSettings]) -> None:
        super().__init__(settings_cls)
        path = _config_path.get()
        if path is None:
            env = os.environ.get("HFT_CONFIG")
            path = Path(env) if env else DEFAULT_CONFIG
        self._data: dict[str, Any] = {}
        if path.is_file():
            loaded = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
            section = loaded.get("api") if isinstance(loaded, dict) else None
            if section is not None and not isinstance(section, dict):
                raise ValueError(f"{path}: the `api:` section must be a mapping")
            self._data = dict(section or {})
        self._data.setdefault("config_path", str(path))

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return self._data.get(field_name), field_name, False

    def __call__(self) -> dict[str, Any]:
        return dict(self._data)


class Settings(BaseSettings):
    """Everything the backend needs to start. Money is `Decimal`, durations in seconds."""

    model_config = SettingsConfigDict(
        env_prefix="HFT_",
        env_nested_delimiter="__",
        extra="forbid",
        validate_default=True,
    )

    config_path: Path | None = Field(default=None, description="the YAML file read")
    host: str = Field(
        default="127.0.0.1", validation_alias=AliasChoices("host", "HFT_API_HOST", "hft_api_host")
    )
    port: int = Field(
        default=8000,
        ge=0,
        le=65535,
        validation_alias=AliasChoices("port", "HFT_API_PORT", "hft_api_port"),
    )
    workers: int = Field(
        default=1,
        ge=1,
        le=64,
        validation_alias=AliasChoices("workers", "HFT_API_WORKERS", "hft_api_workers"),
    )
    data_dir: Path = Path("data")
    database_url: str = Field(
        default="",
        description="SQLAlchemy async URL; empty means sqlite+aiosqlite:///<data_dir>/hft.db",
    )
    database_pool_size: int = Field(default=10, ge=1, le=200)
    engine_address: str = "localhost:50051"
    web_dir: Path = Path("web/dist")
    run_migrations: bool = Field(
        default=True, description="apply `alembic upgrade head` when the app starts"
    )

    jwt_secret: SecretStr | None = None
    # Pinned: tokens claiming any other algorithm (including `none`) are rejected.
    jwt_algorithm: Literal["HS256"] = "HS256"
    jwt_issuer: str = "hft"
    access_token_expire_seconds: int = Field(default=3600, ge=30, le=7 * 24 * 3600)
    api_key_master_key: SecretStr | None = None
    signature_window_seconds: float = Field(default=5.0, gt=0, le=300)
    # How long an authenticated user is served from memory; a deactivation or role change
    # made through another backend process takes effect within this time (0: always read).
    auth_cache_ttl_s: float = Field(default=2.0, ge=0, le=60)
    password_min_length: int = Field(default=8, ge=6, le=128)
    # argon2id cost (RFC 9106 "low memory" profile by default); the floors keep it sound.
    argon2_time_cost: int = Field(default=3, ge=1, le=20)
    argon2_memory_kib: int = Field(default=65536, ge=8192, le=4 * 1024 * 1024)
    # Proxies whose X-Forwarded-For is trusted for the client IP (uvicorn's setting).
    forwarded_allow_ips: str = "127.0.0.1"

    # Requests with a larger body are refused with 413 before they are read into memory.
    max_body_bytes: int = Field(default=1024 * 1024, ge=1024, le=64 * 1024 * 1024)
    starting_cash: Decimal = Field(default=Decimal("1000000"), ge=0, allow_inf_nan=False)
    cors_origins: list[str] = Field(
        default_factory=lambda: ["http://localhost:5173", "http://127.0.0.1:5173"]
    )
    rate_limits: RateLimitSettings = Field(default_factory=RateLimitSettings)

    log_level: Literal["debug", "info", "warning", "error"] = "info"
    log_json: bool = True
    access_log: bool = True
    # FastAPI's native OpenTelemetry traces, metrics and logs, through the providers the
    # process configures (e.g. under `opentelemetry-instrument`). Off by default:
    # Prometheus at /metrics is the backend's own telemetry, and FastAPI then skips
    # looking the global providers up in the environment on every request (3-4 us).
    opentelemetry: bool = False

    trading: TradingSettings = Field(default_factory=TradingSettings)

    _jwt_key: str | None = PrivateAttr(default=None)
    _api_key_master: bytes | None = PrivateAttr(default=None)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings, _YamlApiSection(settings_cls), file_secret_settings)

    @model_validator(mode="after")
    def _default_database(self) -> Settings:
        if not self.database_url:
            self.database_url = f"sqlite+aiosqlite:///{(self.data_dir / 'hft.db').resolve()}"
        self.database_url = normalize_database_url(self.database_url)
        return self

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    def jwt_key(self) -> str:
        """The HMAC key for access tokens: configured, or generated once into the data dir."""
        if self._jwt_key is None:
            if self.jwt_secret is not None and self.jwt_secret.get_secret_value():
                self._jwt_key = self.jwt_secret.get_secret_value()
            else:
                self._jwt_key = _load_or_create_secret(self.data_dir / JWT_SECRET_FILE)
        return self._jwt_key

    def api_key_master(self) -> bytes:
        """The server key that API-key secrets are derived from (never stored in the DB)."""
        if self._api_key_master is None:
            if self.api_key_master_key is not None and self.api_key_master_key.get_secret_value():
                raw = self.api_key_master_key.get_secret_value()
            else:
                raw = _load_or_create_secret(self.data_dir / API_KEY_MASTER_FILE)
            self._api_key_master = raw.encode()
        return self._api_key_master

    def ensure_secrets(self) -> None:
        """Create the generated secrets now (before forking workers, so they share them)."""
        self.jwt_key()
        self.api_key_master()


_DRIVERS = {
    "sqlite": "sqlite+aiosqlite",
    "sqlite+aiosqlite": "sqlite+aiosqlite",
    "postgres": "postgresql+asyncpg",
    "postgresql": "postgresql+asyncpg",
    "postgresql+asyncpg": "postgresql+asyncpg",
}


def normalize_database_url(url: str) -> str:
    """`url` with the async driver this backend uses (`postgresql://` ->
    `postgresql+asyncpg://`, `sqlite://` -> `sqlite+aiosqlite://`).

    Raises ValueError for other databases or drivers.
    """
    scheme, sep, rest = url.partition("://")
    driver = _DRIVERS.get(scheme.lower())
    if not sep or driver is None:
        raise ValueError(
            "database_url must be sqlite+aiosqlite:///PATH or postgresql+asyncpg://..., "
            f"not {scheme or url!r}"
        )
    return f"{driver}://{rest}"


def _load_or_create_secret(path: Path) -> str:
    """Read a secret file, or create it atomically with 0600 permissions.

    Several workers may start at once: the new secret is written to a private temporary
    file and hard-linked into place, so exactly one wins and the others read its value.
    """
    try:
        value = path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        value = ""
    if value:
        return value
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(secrets.token_urlsafe(48) + "\n")
            f.flush()
            os.fsync(f.fileno())
        # Losing the race is fine: the winner's secret is read below.
        with contextlib.suppress(FileExistsError):
            os.link(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    value = path.read_text(encoding="utf-8").strip()
    if not value:
        raise RuntimeError(f"secret file {path} is empty; delete it to generate a new one")
    return value


def load_settings(config_path: str | Path | None = None, **overrides: Any) -> Settings:
    """Build settings from `config_path` (or HFT_CONFIG, or config/default.yaml), the
    environment, and `overrides` (highest priority; None values are ignored).

    Raises pydantic.ValidationError on invalid values and ValueError on a malformed file.
    """
    token = _config_path.set(Path(config_path) if config_path is not None else None)
    try:
        return Settings(**{k: v for k, v in overrides.items() if v is not None})
    finally:
        _config_path.reset(token)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings (from the default config file and the environment)."""
    return load_settings()
