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


def test_generated_request_ids_are_unique_and_differ_in_a_forked_child() -> None:
    import os

    from hft.api.middleware import new_request_id

    ids = {new_request_id() for _ in range(1000)}
    assert len(ids) == 1000
    assert all(len(i) == 32 and int(i, 16) >= 0 for i in ids)
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.write(write, new_request_id().encode())
        os._exit(0)
    os.waitpid(pid, 0)
    child = os.read(read, 64).decode()
    os.close(read)
    os.close(write)
    assert child[:16] != new_request_id()[:16]
