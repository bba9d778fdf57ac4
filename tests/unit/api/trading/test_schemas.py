"""Timestamps in API documents: RFC 3339, UTC, microseconds, a Z."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from hft.api.trading.schemas import iso


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=UTC), "2026-01-02T03:04:05.000006Z"),
        (datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC), "2026-01-02T03:04:05.000000Z"),
        (
            datetime(2026, 1, 2, 1, 4, 5, 999999, tzinfo=timezone(timedelta(hours=2))),
            "2026-01-01T23:04:05.999999Z",
        ),
        (datetime(9, 1, 1, tzinfo=UTC), "0009-01-01T00:00:00.000000Z"),
    ],
)
def test_iso(value: datetime, text: str) -> None:
    assert iso(value) == text
