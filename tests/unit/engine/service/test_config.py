from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from hft.engine.config import ConfigError, load_config, parse_engine_settings, parse_instruments
from hft.engine.types import InstrumentStatus

REPO = Path(__file__).resolve().parents[4]


def inst(**kw: object) -> dict[str, object]:
    base: dict[str, object] = {
        "symbol_id": 1,
        "symbol": "ABC",
        "tick_size": "0.05",
        "lot_size": "0.001",
        "min_quantity": "0.01",
        "max_quantity": "10",
        "price_band_pct": "2.5",
        "reference_price": "100.05",
    }
    base.update(kw)
    return base


def test_default_config_converts_to_ticks_and_lots() -> None:
    cfg = load_config(REPO / "config" / "default.yaml")
    by = {s.symbol: s for s in cfg.instruments}
    assert by["AAPL"].reference_price == 19000
    assert by["AAPL"].band_bps == 1000
    assert by["BTC-USD"].lot_str == "0.0001"
    assert by["BTC-USD"].max_qty == 1_000_000
    assert cfg.engine.fsync == "every"


def test_instrument_conversion() -> None:
    (s,) = parse_instruments([inst()])
    assert (s.min_qty, s.max_qty, s.band_bps, s.reference_price) == (10, 10_000, 250, 2001)
    assert s.tick_size == Decimal("0.05")
    assert s.status is InstrumentStatus.TRADING
    core = s.to_core()
    assert (core.tick_size, core.lot_size) == ("0.05", "0.001")


@pytest.mark.parametrize(
    ("change", "needle"),
    [
        (
            {"reference_price": "100.07"},
            "reference_price: 100.07 is not a multiple of the tick size 0.05",
        ),
        ({"min_quantity": "0.0105"}, "min_quantity"),
        ({"max_quantity": "0.001"}, "max_quantity: 0.001 is below min_quantity"),
        ({"price_band_pct": "2.555"}, "price_band_pct"),
        ({"price_band_pct": "-1"}, "price_band_pct"),
        ({"tick_size": "0"}, "tick_size: must be positive"),
        ({"tick_size": "abc"}, "tick_size: 'abc' is not a decimal"),
        ({"tick_size": "NaN"}, "not a finite number"),
        ({"lot_size": True}, "lot_size: expected a decimal"),
        ({"symbol_id": 0}, "symbol_id"),
        ({"symbol_id": "1"}, "symbol_id"),
        ({"symbol": ""}, "symbol"),
        ({"symbol": "A B"}, "symbol"),
        ({"status": "open"}, "status"),
        ({"colour": "red"}, "unknown field(s) colour"),
        ({"reference_price": "-1"}, "reference_price: must not be negative"),
    ],
)
def test_instrument_errors_name_the_field(change: dict[str, object], needle: str) -> None:
    with pytest.raises(ConfigError) as ei:
        parse_instruments([inst(**change)])
    assert "instruments[0]" in str(ei.value)
    assert needle in str(ei.value)


def test_duplicates_and_empty() -> None:
    with pytest.raises(
        ConfigError, match=r"instruments\[1\]\.symbol_id: 1 is already used by instruments\[0\]"
    ):
        parse_instruments([inst(), inst(symbol="XYZ")])
    with pytest.raises(ConfigError, match=r"instruments\[1\]\.symbol: 'ABC' is already used"):
        parse_instruments([inst(), inst(symbol_id=2)])
    with pytest.raises(ConfigError, match="non-empty list"):
        parse_instruments([])


def test_engine_settings_and_env_overrides() -> None:
    s = parse_engine_settings(
        {"fsync": "interval", "queue_capacity": 5}, {"HFT_ENGINE_QUEUE_CAPACITY": "7"}
    )
    assert s.fsync == "interval"
    assert s.queue_capacity == 7
    with pytest.raises(ConfigError, match=r"engine\.fsync"):
        parse_engine_settings({"fsync": "always"})
    with pytest.raises(ConfigError, match="HFT_ENGINE_MAX_ORDERS: expected an integer"):
        parse_engine_settings({}, {"HFT_ENGINE_MAX_ORDERS": "lots"})
    with pytest.raises(ConfigError, match="engine: unknown field"):
        parse_engine_settings({"fsnyc": "every"})
    with pytest.raises(ConfigError, match=r"engine\.max_batch_orders: must be at least 1"):
        parse_engine_settings({"max_batch_orders": 0})


def test_missing_file_and_bad_yaml(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read config file"):
        load_config(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("instruments: [\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)


def test_max_quantity_must_keep_level_totals_in_int64(tmp_path: Path) -> None:
    cfg = tmp_path / "hft.yaml"
    cfg.write_text(
        "instruments:\n"
        '  - {symbol_id: 1, symbol: ABC, tick_size: "0.01", lot_size: "1",'
        ' max_quantity: "9000000000000000000"}\n'
        "engine: {max_orders: 2}\n"
    )
    with pytest.raises(ConfigError, match=r"instruments\.ABC\.max_quantity: .*engine\.max_orders"):
        load_config(cfg)
    cfg.write_text(cfg.read_text().replace("9000000000000000000", "4000000000000000000"))
    assert load_config(cfg).instruments[0].max_qty == 4_000_000_000_000_000_000
