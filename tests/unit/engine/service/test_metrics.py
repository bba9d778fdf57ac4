"""Engine log formats (hft.engine.metrics)."""

from __future__ import annotations

import json
import logging

from hft.engine.config import parse_engine_settings
from hft.engine.metrics import JsonFormatter, TextFormatter


def _record(**fields: object) -> logging.LogRecord:
    record = logging.LogRecord("hft.engine", logging.INFO, __file__, 1, "recovered", None, None)
    if fields:
        record.fields = fields
    return record


def test_json_lines_carry_the_structured_fields() -> None:
    out = json.loads(JsonFormatter().format(_record(sequence=42, seconds=0.5)))
    assert out["msg"] == "recovered"
    assert out["level"] == "info"
    assert (out["sequence"], out["seconds"]) == (42, 0.5)


def test_text_lines_append_the_structured_fields() -> None:
    line = TextFormatter().format(_record(sequence=42, seconds=0.5))
    assert "INFO hft.engine: recovered sequence=42 seconds=0.5" in line
    assert TextFormatter().format(_record()).endswith("INFO hft.engine: recovered")


def test_log_json_is_a_setting_with_an_env_override() -> None:
    assert parse_engine_settings({}).log_json is True
    assert parse_engine_settings({"log_json": False}).log_json is False
    assert parse_engine_settings({}, {"HFT_ENGINE_LOG_JSON": "false"}).log_json is False
