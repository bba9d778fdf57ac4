"""Route templates for metric labels."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from hft.api.middleware import route_template


@pytest.mark.parametrize(
    ("template", "path", "params", "expected"),
    [
        ("/auth/me", "/api/v1/auth/me", {}, "/api/v1/auth/me"),
        (
            "/orders/{order_id}",
            "/api/v1/orders/42",
            {"order_id": "42"},
            "/api/v1/orders/{order_id}",
        ),
        (
            "/m/{symbol}/book",
            "/api/v1/m/BTC-USD/book",
            {"symbol": "BTC-USD"},
            "/api/v1/m/{symbol}/book",
        ),
        ("/k/{key}", "/api/v1/k/a\\\\b", {"key": "a\\\\b"}, "/api/v1/k/{key}"),
        ("/{path:path}", "/portfolio/x", {"path": "portfolio/x"}, "/{path:path}"),
        # A converter that normalizes the value: fall back to the route's own template.
        ("/u/{user_id:int}", "/api/v1/u/007", {"user_id": 7}, "/u/{user_id:int}"),
    ],
)
def test_route_template(template: str, path: str, params: dict[str, object], expected: str) -> None:
    scope = {"route": SimpleNamespace(path=template), "path": path, "path_params": params}
    assert route_template(scope) == expected


def test_unmatched() -> None:
    assert route_template({"path": "/nope"}) == "unmatched"
