"""Bad input: hand-written hostile bodies, then schemathesis over the OpenAPI schema.

Every malformed request gets a 4xx with the error envelope and changes nothing; no
generated request (valid or not) produces a 5xx.
"""

from __future__ import annotations

import asyncio

import hypothesis
import schemathesis
from hypothesis import HealthCheck
from schemathesis import GenerationMode

from hft.api.trading.testing import (  # noqa: F401 - fixtures
    engine_fixture,
    place,
    settings_overrides_fixture,
    trading_overrides_fixture,
    with_trading_fixture,
)

VALID = '"symbol": "AAPL", "side": "buy", "type": "limit"'

HOSTILE = [
    (f'{{{VALID}, "quantity": "1", "price": NaN}}', "invalid_number"),
    (f'{{{VALID}, "quantity": "1", "price": Infinity}}', "invalid_number"),
    (f'{{{VALID}, "quantity": "1", "price": -Infinity}}', "invalid_number"),
    (f'{{{VALID}, "quantity": "1", "price": "NaN"}}', "invalid_price"),
    (f'{{{VALID}, "quantity": "1", "price": "Infinity"}}', "invalid_price"),
    (f'{{{VALID}, "quantity": "1", "price": "-0"}}', "invalid_price"),
    (f'{{{VALID}, "quantity": -0, "price": "190"}}', "invalid_quantity"),
    (f'{{{VALID}, "quantity": "-0.0", "price": "190"}}', "invalid_quantity"),
    (f'{{{VALID}, "quantity": 1e2, "price": "190"}}', "invalid_quantity"),
    (f'{{{VALID}, "quantity": "1E2", "price": "190"}}', "invalid_quantity"),
    (f'{{{VALID}, "quantity": "1", "price": 190.001}}', "price_not_on_tick"),
    (f'{{{VALID}, "quantity": "1", "price": "190.0000000000000000001"}}', "price_not_on_tick"),
    ('{{{}, "quantity": "1", "price": "1{}"}}'.format(VALID, "0" * 60), "invalid_price"),
    (f'{{{VALID}, "quantity": "99999999999999999999999", "price": "190"}}', "invalid_quantity"),
    (f'{{{VALID}, "quantity": 100001, "price": "190"}}', "quantity_out_of_range"),
    (f'{{{VALID}, "quantity": "1.5", "price": "190"}}', "quantity_not_on_lot"),
    (f'{{{VALID}, "quantity": "0", "price": "190"}}', "invalid_quantity"),
    (f'{{{VALID}, "quantity": "1", "price": "190", "leverage": 100}}', "unknown_field"),
    (f'{{{VALID}, "quantity": [1], "price": "190"}}', "invalid_quantity"),
    (f'{{{VALID}, "quantity": true, "price": "190"}}', "invalid_quantity"),
    (f'{{{VALID}, "quantity": "1", "price": {{"v": 1}}}}', "invalid_price"),
    ('{"symbol": 5, "side": "buy", "quantity": "1", "price": "190"}', "invalid_symbol"),
    (
        '{"symbol": "AAPL", "side": "buy", "quantity": "1", "price": "190", "post_only": "1"}',
        "invalid_post_only",
    ),
    ('{"symbol": "AAPL", "side": "short", "quantity": "1", "price": "190"}', "invalid_side"),
    ('{"symbol": "AAPL", "side": "buy", "quantity": "1"}', "price_required"),
    (
        '{"symbol": "AAPL", "side": "buy", "type": "market", "quantity": "1", "price": "1"}',
        "price_not_allowed",
    ),
    ('{"symbol": "ZZZZ", "side": "buy", "quantity": "1", "price": "1"}', "unknown_symbol"),
    ("[1, 2]", "invalid_body"),
    ('"just a string"', "invalid_body"),
    ("{not json", "malformed_json"),
    ("", "missing_body"),
    ('{"a": ' * 5000 + "1" + "}" * 5000, "body_too_large"),
]


async def test_hostile_order_bodies_are_refused_with_specific_codes(make_user):
    alice = await make_user()
    for raw, code in HOSTILE:
        r = await alice.post(
            "/api/v1/orders", content=raw, headers={"Content-Type": "application/json"}
        )
        assert 400 <= r.status_code < 500, (raw[:80], r.text)
        assert r.json()["error"]["code"] == code, (raw[:80], r.text)
    assert (await alice.get("/api/v1/orders")).json() == []
    assert (await alice.get("/api/v1/account")).json()["reserved_cash"] == "0"


async def test_hostile_amend_bodies(make_user):
    alice = await make_user()
    order = await place(alice, side="buy", quantity="5", price="180.00")
    for body, code in [
        ('{"quantity": NaN}', "invalid_number"),
        ('{"quantity": "-0"}', "invalid_quantity"),
        ('{"price": "180.001"}', "price_not_on_tick"),
        ('{"price": 1e3}', "invalid_price"),
        ("{}", "nothing_to_amend"),
        ('{"quantity": "5", "side": "sell"}', "unknown_field"),
    ]:
        r = await alice.patch(
            f"/api/v1/orders/{order['id']}",
            content=body,
            headers={"Content-Type": "application/json"},
        )
        assert r.status_code == 422, (body, r.text)
        assert r.json()["error"]["code"] == code, (body, r.text)
    after = (await alice.get(f"/api/v1/orders/{order['id']}")).json()
    assert (after["quantity"], after["price"], after["status"]) == ("5", "180.00", "new")


def _fuzz_operation(op, mode, base_url, headers, failures):
    @hypothesis.given(case=op.as_strategy(generation_mode=mode))
    @hypothesis.settings(
        max_examples=6,
        deadline=None,
        database=None,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
    )
    def check(case):
        resp = case.call(base_url=base_url, headers=headers, timeout=30)
        if resp.status_code >= 500:
            failures.append(
                f"{op.method.upper()} {op.path}: {resp.status_code} {resp.text[:200]} "
                f"for {case.body!r} {case.query!r} {case.path_parameters!r}"
            )

    try:
        check()
    except hypothesis.errors.Unsatisfiable:
        # Nothing to make invalid (an operation without inputs) in negative mode.
        if mode is not GenerationMode.NEGATIVE:
            raise


async def test_schemathesis_finds_no_server_errors(app, live_server, make_user):
    admin = await make_user(admin=True)
    trader = await make_user()
    await place(trader, side="sell", quantity="3", price="195.00")
    await place(admin, side="buy", quantity="1", price="185.00")
    spec = app.openapi()
    failures: list[str] = []

    def fuzz() -> None:
        schema = schemathesis.openapi.from_dict(spec)
        for result in schema.get_all_operations():
            op = result.ok()
            if op.path.startswith("/api/v1/auth") or op.path.startswith("/api/v1/admin"):
                continue  # the platform's own suite fuzzes these
            headers = {"Authorization": f"Bearer {admin.token}"}
            for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
                _fuzz_operation(op, mode, live_server, headers, failures)

    await asyncio.to_thread(fuzz)
    assert failures == []
    r = await trader.get("/api/v1/portfolio")
    assert r.status_code == 200
