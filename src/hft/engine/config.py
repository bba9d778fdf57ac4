"""Engine configuration: the `instruments:` and `engine:` sections of the platform config.

The file holds decimals (tick and lot sizes, quantities, prices, band in percent); the
engine works in integer ticks and lots. Everything is converted and checked here, once,
at start: a value that does not convert exactly is an error that names its field.
Every `engine:` value can be overridden by an environment variable
``HFT_ENGINE_<NAME>`` (for example ``HFT_ENGINE_QUEUE_CAPACITY=50000``).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import yaml

from hft.engine.types import Instrument, InstrumentStatus

DEFAULT_CONFIG_PATH = Path("config/default.yaml")
FSYNC_MODES = ("every", "interval", "none")
_SYMBOL_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,31}$")
_UINT32_MAX = (1 << 32) - 1
_INT64_MAX = (1 << 63) - 1


class ConfigError(ValueError):
    """The configuration is invalid; the message names the offending field."""


@dataclass(frozen=True, slots=True)
class InstrumentSpec:
    """One instrument: decimal sizes for the edges, integer ticks and lots for the core."""

    symbol_id: int
    symbol: str
    tick_size: Decimal
    lot_size: Decimal
    min_qty: int  # lots
    max_qty: int  # lots
    band_bps: int
    reference_price: int  # ticks; 0 = no reference (no band check)
    status: InstrumentStatus = InstrumentStatus.TRADING

    @property
    def tick_str(self) -> str:
        return _dec_str(self.tick_size)

    @property
    def lot_str(self) -> str:
        return _dec_str(self.lot_size)

    def to_core(self) -> Instrument:
        """The core's view of this instrument."""
        return Instrument(
            symbol_id=self.symbol_id,
            symbol=self.symbol,
            min_qty=self.min_qty,
            max_qty=self.max_qty,
            band_bps=self.band_bps,
            reference_price=self.reference_price,
            status=self.status,
            tick_size=self.tick_str,
            lot_size=self.lot_str,
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "symbol_id": self.symbol_id,
            "symbol": self.symbol,
            "tick_size": self.tick_str,
            "lot_size": self.lot_str,
            "min_qty": self.min_qty,
            "max_qty": self.max_qty,
            "band_bps": self.band_bps,
            "reference_price": self.reference_price,
            "status": int(self.status),
        }

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> InstrumentSpec:
        return cls(
            symbol_id=int(d["symbol_id"]),
            symbol=str(d["symbol"]),
            tick_size=Decimal(d["tick_size"]),
            lot_size=Decimal(d["lot_size"]),
            min_qty=int(d["min_qty"]),
            max_qty=int(d["max_qty"]),
            band_bps=int(d["band_bps"]),
            reference_price=int(d["reference_price"]),
            status=InstrumentStatus(int(d["status"])),
        )


@dataclass(frozen=True, slots=True)
class EngineSettings:
    """The `engine:` section. Sizes in commands unless stated otherwise."""

    max_orders: int = 1 << 20  # live orders the core can hold (preallocated)
    default_max_open_orders: int = 0  # per account, 0 = unlimited
    queue_capacity: int = 200_000  # commands waiting for the sequencer
    max_batch_orders: int = 10_000  # orders in one SubmitOrders request
    max_group_commit: int = 65_536  # commands per journal write
    fsync: str = "every"
    fsync_interval_ms: int = 10
    segment_bytes: int = 128 << 20
    snapshot_interval_s: float = 300.0  # 0 = no timer
    snapshot_every_commands: int = 5_000_000  # 0 = no count trigger
    snapshots_keep: int = 3
    subscriber_queue: int = 4096  # published batches buffered per subscriber
    stream_window: int = 4096  # orders in flight per StreamOrders call
    default_book_depth: int = 20
    shutdown_grace_s: float = 5.0
    log_level: str = "info"
    log_json: bool = True  # false: plain text lines (as `hft run` shows them)


@dataclass(frozen=True, slots=True)
class EngineConfig:
    instruments: tuple[InstrumentSpec, ...]
    engine: EngineSettings = field(default_factory=EngineSettings)


def _dec_str(d: Decimal) -> str:
    s = format(d, "f")
    if "." in s:
        s = s.rstrip("0").rstrip(".")
    return s or "0"


def parse_decimal(value: Any, where: str) -> Decimal:
    """A finite decimal from a YAML string or number; ConfigError naming `where` otherwise."""
    if isinstance(value, bool) or value is None:
        raise ConfigError(f"{where}: expected a decimal, got {value!r}")
    if isinstance(value, float):
        value = repr(value)
    if not isinstance(value, (str, int, Decimal)):
        raise ConfigError(f"{where}: expected a decimal, got {type(value).__name__}")
    try:
        d = Decimal(str(value).strip())
    except InvalidOperation:
        raise ConfigError(f"{where}: {value!r} is not a decimal number") from None
    if not d.is_finite():
        raise ConfigError(f"{where}: {value!r} is not a finite number")
    return d


def _to_units(value: Decimal, unit: Decimal, where: str, unit_name: str) -> int:
    q = value / unit
    if q != q.to_integral_value():
        raise ConfigError(
            f"{where}: {_dec_str(value)} is not a multiple of the {unit_name} {_dec_str(unit)}"
        )
    return int(q)


_INSTRUMENT_KEYS = {
    "symbol_id",
    "symbol",
    "tick_size",
    "lot_size",
    "min_quantity",
    "max_quantity",
    "price_band_pct",
    "reference_price",
    "status",
}


def parse_instrument(raw: Any, where: str) -> InstrumentSpec:
    """Validate one `instruments:` entry (decimals) and convert it to ticks and lots."""
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{where}: expected a mapping, got {type(raw).__name__}")
    unknown = sorted(set(map(str, raw)) - _INSTRUMENT_KEYS)
    if unknown:
        raise ConfigError(f"{where}: unknown field(s) {', '.join(unknown)}")
    for key in ("symbol_id", "symbol", "tick_size", "lot_size"):
        if key not in raw:
            raise ConfigError(f"{where}.{key}: required")
    sid = raw["symbol_id"]
    if isinstance(sid, bool) or not isinstance(sid, int) or not 1 <= sid <= _UINT32_MAX:
        raise ConfigError(
            f"{where}.symbol_id: expected an integer in 1..{_UINT32_MAX}, got {sid!r}"
        )
    symbol = raw["symbol"]
    if not isinstance(symbol, str) or not _SYMBOL_RE.match(symbol):
        raise ConfigError(
            f"{where}.symbol: {symbol!r} is not a valid symbol "
            "(1-32 characters: letters, digits, . _ / -, starting with a letter or digit)"
        )
    tick = parse_decimal(raw["tick_size"], f"{where}.tick_size")
    lot = parse_decimal(raw["lot_size"], f"{where}.lot_size")
    for name, d in (("tick_size", tick), ("lot_size", lot)):
        if d <= 0:
            raise ConfigError(f"{where}.{name}: must be positive, got {_dec_str(d)}")
    min_q = parse_decimal(raw.get("min_quantity", lot), f"{where}.min_quantity")
    min_lots = _to_units(min_q, lot, f"{where}.min_quantity", "lot size")
    if min_lots < 1:
        raise ConfigError(f"{where}.min_quantity: must be at least one lot ({_dec_str(lot)})")
    max_default = lot * 1_000_000_000
    max_q = parse_decimal(raw.get("max_quantity", max_default), f"{where}.max_quantity")
    max_lots = _to_units(max_q, lot, f"{where}.max_quantity", "lot size")
    if max_lots < min_lots:
        raise ConfigError(
            f"{where}.max_quantity: {_dec_str(max_q)} is below min_quantity {_dec_str(min_q)}"
        )
    if max_lots > _INT64_MAX:
        raise ConfigError(f"{where}.max_quantity: too large")
    band = parse_decimal(raw.get("price_band_pct", 0), f"{where}.price_band_pct")
    if band < 0 or band > 1000:
        raise ConfigError(f"{where}.price_band_pct: must be in 0..1000, got {_dec_str(band)}")
    bps = band * 100
    if bps != bps.to_integral_value():
        raise ConfigError(
            f"{where}.price_band_pct: {_dec_str(band)} is finer than one basis point (0.01)"
        )
    ref = parse_decimal(raw.get("reference_price", 0), f"{where}.reference_price")
    if ref < 0:
        raise ConfigError(f"{where}.reference_price: must not be negative, got {_dec_str(ref)}")
    ref_ticks = _to_units(ref, tick, f"{where}.reference_price", "tick size")
    if ref_ticks > _INT64_MAX:
        raise ConfigError(f"{where}.reference_price: too large")
    status_raw = raw.get("status", "trading")
    try:
        status = InstrumentStatus[str(status_raw).upper()]
    except KeyError:
        raise ConfigError(
            f"{where}.status: expected trading or halted, got {status_raw!r}"
        ) from None
    return InstrumentSpec(
        symbol_id=sid,
        symbol=symbol,
        tick_size=tick,
        lot_size=lot,
        min_qty=min_lots,
        max_qty=max_lots,
        band_bps=int(bps),
        reference_price=ref_ticks,
        status=status,
    )


def parse_instruments(raw: Any) -> tuple[InstrumentSpec, ...]:
    """Validate the `instruments:` list; duplicate ids or symbols are errors."""
    if not isinstance(raw, list) or not raw:
        raise ConfigError("instruments: expected a non-empty list of instruments")
    specs: list[InstrumentSpec] = []
    ids: dict[int, int] = {}
    symbols: dict[str, int] = {}
    for i, item in enumerate(raw):
        spec = parse_instrument(item, f"instruments[{i}]")
        if spec.symbol_id in ids:
            raise ConfigError(
                f"instruments[{i}].symbol_id: {spec.symbol_id} is already used by "
                f"instruments[{ids[spec.symbol_id]}]"
            )
        if spec.symbol in symbols:
            raise ConfigError(
                f"instruments[{i}].symbol: {spec.symbol!r} is already used by "
                f"instruments[{symbols[spec.symbol]}]"
            )
        ids[spec.symbol_id] = i
        symbols[spec.symbol] = i
        specs.append(spec)
    return tuple(specs)


def _coerce(name: str, default: Any, value: Any, where: str) -> Any:
    if isinstance(default, bool):
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in {
            "1",
            "true",
            "yes",
            "on",
            "0",
            "false",
            "no",
            "off",
        }:
            return value.lower() in {"1", "true", "yes", "on"}
        raise ConfigError(f"{where}: expected true or false, got {value!r}")
    if isinstance(default, int):
        try:
            if isinstance(value, (bool, float)):
                raise ValueError
            return int(str(value).replace("_", ""))
        except ValueError:
            raise ConfigError(f"{where}: expected an integer, got {value!r}") from None
    if isinstance(default, float):
        try:
            if isinstance(value, bool):
                raise ValueError
            return float(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{where}: expected a number, got {value!r}") from None
    if not isinstance(value, str):
        raise ConfigError(f"{where}: expected a string, got {value!r}")
    return value


def parse_engine_settings(raw: Any, env: Mapping[str, str] | None = None) -> EngineSettings:
    """Validate the `engine:` section, then apply HFT_ENGINE_<NAME> environment overrides."""
    if raw is None:
        raw = {}
    if not isinstance(raw, Mapping):
        raise ConfigError(f"engine: expected a mapping, got {type(raw).__name__}")
    defaults = EngineSettings()
    names = {f.name for f in fields(EngineSettings)}
    unknown = sorted(set(map(str, raw)) - names)
    if unknown:
        raise ConfigError(f"engine: unknown field(s) {', '.join(unknown)}")
    values: dict[str, Any] = {}
    for name in names:
        default = getattr(defaults, name)
        if name in raw:
            values[name] = _coerce(name, default, raw[name], f"engine.{name}")
        env_name = f"HFT_ENGINE_{name.upper()}"
        if env is not None and env_name in env:
            values[name] = _coerce(name, default, env[env_name], env_name)
    settings = replace(defaults, **values)
    _check_settings(settings)
    return settings


def _check_settings(s: EngineSettings) -> None:
    positive = (
        "max_orders",
        "queue_capacity",
        "max_batch_orders",
        "max_group_commit",
        "fsync_interval_ms",
        "snapshots_keep",
        "subscriber_queue",
        "stream_window",
        "default_book_depth",
    )
    for name in positive:
        if getattr(s, name) < 1:
            raise ConfigError(f"engine.{name}: must be at least 1, got {getattr(s, name)}")
    for name in ("default_max_open_orders", "snapshot_every_commands"):
        if getattr(s, name) < 0:
            raise ConfigError(f"engine.{name}: must not be negative, got {getattr(s, name)}")
    for name in ("snapshot_interval_s", "shutdown_grace_s"):
        if getattr(s, name) < 0:
            raise ConfigError(f"engine.{name}: must not be negative, got {getattr(s, name)}")
    if s.segment_bytes < 1 << 16:
        raise ConfigError(f"engine.segment_bytes: must be at least 65536, got {s.segment_bytes}")
    if s.fsync not in FSYNC_MODES:
        raise ConfigError(
            f"engine.fsync: expected one of {', '.join(FSYNC_MODES)}, got {s.fsync!r}"
        )
    if s.log_level.lower() not in {"debug", "info", "warning", "error"}:
        raise ConfigError(
            f"engine.log_level: expected debug, info, warning or error, got {s.log_level!r}"
        )


def load_config(path: str | os.PathLike[str], env: Mapping[str, str] | None = None) -> EngineConfig:
    """Read and validate the engine's parts of the platform config file.

    Raises ConfigError (with the file and field in the message) when the file is
    missing, is not YAML, or holds an invalid value.
    """
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{p}: cannot read config file: {exc.strerror or exc}") from None
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{p}: not valid YAML: {exc}") from None
    if not isinstance(doc, Mapping):
        raise ConfigError(f"{p}: expected a mapping at the top level")
    try:
        instruments = parse_instruments(doc.get("instruments"))
        settings = parse_engine_settings(doc.get("engine"), env)
        # The core refuses a max quantity whose level total could overflow int64.
        level_limit = _INT64_MAX // settings.max_orders
        for spec in instruments:
            if spec.max_qty > level_limit:
                raise ConfigError(
                    f"instruments.{spec.symbol}.max_quantity: {spec.max_qty} lots is more than "
                    f"{level_limit} lots (INT64_MAX // engine.max_orders), so a price level's "
                    "total could overflow; lower it or lower engine.max_orders"
                )
    except ConfigError as exc:
        raise ConfigError(f"{p}: {exc}") from None
    return EngineConfig(instruments=instruments, engine=settings)
