"""Settings: YAML `api:` section, environment, explicit values, generated secrets."""

from __future__ import annotations

import os
import threading
from decimal import Decimal
from pathlib import Path

import pytest
from pydantic import ValidationError

from hft.api.settings import Settings, _load_or_create_secret, load_settings

REPO = Path(__file__).resolve().parents[3]


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("HFT_"):
            monkeypatch.delenv(name)


def _config(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(text)
    return path


def test_defaults(tmp_path: Path) -> None:
    s = load_settings(REPO / "config" / "default.yaml", data_dir=tmp_path)
    assert s.database_url == f"sqlite+aiosqlite:///{tmp_path.resolve() / 'hft.db'}"
    assert s.engine_address == "localhost:50051"
    assert s.port == 8000
    assert s.host == "127.0.0.1"
    assert s.jwt_algorithm == "HS256"
    assert s.starting_cash == Decimal("1000000")
    assert s.jwt_secret is None
    assert s.trading.taker_fee_bps >= 0


def test_precedence_yaml_env_explicit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = _config(
        tmp_path,
        "api:\n  port: 9001\n  starting_cash: '5000.50'\n  engine_address: 'e:1'\n"
        "  rate_limits:\n    rest_per_user: {rate: 3, burst: 4}\n"
        "  trading: {taker_fee_bps: '3'}\n",
    )
    s = load_settings(cfg)
    assert s.port == 9001
    assert s.starting_cash == Decimal("5000.50")
    assert s.rate_limits.rest_per_user.burst == 4
    assert s.trading.taker_fee_bps == Decimal("3")
    monkeypatch.setenv("HFT_API_PORT", "9002")
    monkeypatch.setenv("HFT_ENGINE_ADDRESS", "env:2")
    monkeypatch.setenv("HFT_RATE_LIMITS__ENABLED", "false")
    s = load_settings(cfg)
    assert (s.port, s.engine_address, s.rate_limits.enabled) == (9002, "env:2", False)
    s = load_settings(cfg, port=9003, engine_address=None)
    assert (s.port, s.engine_address) == (9003, "env:2")
    monkeypatch.setenv("HFT_CONFIG", str(cfg))
    monkeypatch.delenv("HFT_API_PORT")
    assert load_settings().port == 9001


@pytest.mark.parametrize(
    "yaml_text",
    [
        "api:\n  starting_cash: 'NaN'\n",
        "api:\n  starting_cash: '-1'\n",
        "api:\n  jwt_algorithm: none\n",
        "api:\n  jwt_algorithm: RS256\n",
        "api:\n  no_such_option: 1\n",
        "api:\n  port: 70000\n",
        "api:\n  database_url: 'mysql://x'\n",
        "api:\n  rate_limits: {rest_per_user: {rate: 0, burst: 1}}\n",
    ],
)
def test_invalid_values_are_rejected(tmp_path: Path, yaml_text: str) -> None:
    with pytest.raises((ValidationError, ValueError)):
        load_settings(_config(tmp_path, yaml_text))


def test_api_section_must_be_a_mapping(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="mapping"):
        load_settings(_config(tmp_path, "api: [1, 2]\n"))


def test_database_url_normalization(tmp_path: Path) -> None:
    s = load_settings(None, database_url="postgresql://u@h:5432/db", data_dir=tmp_path)
    assert s.database_url == "postgresql+asyncpg://u@h:5432/db"
    assert not s.is_sqlite
    s = load_settings(None, database_url="sqlite:////tmp/x.db", data_dir=tmp_path)
    assert s.database_url == "sqlite+aiosqlite:////tmp/x.db"


def test_generated_secrets_are_random_private_and_stable(tmp_path: Path) -> None:
    a = Settings(data_dir=tmp_path / "a")
    b = Settings(data_dir=tmp_path / "b")
    assert a.jwt_key() != b.jwt_key()
    assert a.api_key_master() != b.api_key_master()
    assert a.jwt_key() != a.api_key_master().decode()
    for name in ("jwt_secret", "api_key_master_key"):
        assert (tmp_path / "a" / name).stat().st_mode & 0o777 == 0o600
    again = Settings(data_dir=tmp_path / "a")
    assert again.jwt_key() == a.jwt_key()
    assert again.api_key_master() == a.api_key_master()


def test_configured_secret_wins_and_is_not_written(tmp_path: Path) -> None:
    s = Settings(data_dir=tmp_path, jwt_secret="configured-secret-value-0123456789")
    assert s.jwt_key() == "configured-secret-value-0123456789"
    assert not (tmp_path / "jwt_secret").exists()
    assert "configured-secret" not in repr(s)


def test_concurrent_secret_creation_agrees(tmp_path: Path) -> None:
    path = tmp_path / "secret"
    results: list[str] = []
    threads = [
        threading.Thread(target=lambda: results.append(_load_or_create_secret(path)))
        for _ in range(8)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(results)) == 1
    assert [p.name for p in tmp_path.iterdir()] == ["secret"]


def test_config_file_documents_the_defaults(tmp_path: Path) -> None:
    """The `api:` section of config/default.yaml restates the built-in defaults; a
    value changed in one place but not the other would mislead operators."""
    import yaml

    section = yaml.safe_load((REPO / "config" / "default.yaml").read_text())["api"]
    from_file = load_settings(REPO / "config" / "default.yaml", data_dir=tmp_path)
    builtin = load_settings(tmp_path / "missing.yaml", data_dir=tmp_path)
    for key in section:
        if key in {"data_dir", "database_url"}:
            continue
        got, want = getattr(from_file, key), getattr(builtin, key)
        if key == "rate_limits":
            for name, bucket in section[key].items():
                if isinstance(bucket, dict):
                    assert getattr(got, name).burst == getattr(want, name).burst, name
                    assert getattr(got, name).rate == pytest.approx(
                        getattr(want, name).rate, rel=1e-2
                    ), name
            continue
        assert got == want, key


@pytest.mark.parametrize(("value", "enabled"), [("false", False), ("true", True)])
def test_opentelemetry_switches_fastapis_native_instrumentation(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, value: str, enabled: bool
) -> None:
    from hft.api.app import create_app

    monkeypatch.setenv("HFT_OPENTELEMETRY", value)
    settings = load_settings(REPO / "config" / "default.yaml", data_dir=tmp_path)
    assert settings.opentelemetry is enabled
    telemetry = create_app(settings, with_trading=False)._telemetry
    assert (telemetry["tracing"], telemetry["metrics"], telemetry["logs"]) == (enabled,) * 3
