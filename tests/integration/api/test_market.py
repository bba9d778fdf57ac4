"""Public market data endpoints: instruments, book, trades, candles."""

from __future__ import annotations

from hft.api.trading.testing import (  # noqa: F401 - fixtures
    engine_fixture,
    place,
    settings_overrides_fixture,
    trading_overrides_fixture,
    with_trading_fixture,
)


async def test_instruments_book_trades_candles(client, make_user):
    r = await client.get("/api/v1/instruments")
    assert r.status_code == 200
    inst = {i["symbol"]: i for i in r.json()}
    assert inst["AAPL"] == {
        "symbol": "AAPL",
        "tick_size": "0.01",
        "lot_size": "1",
        "min_quantity": "1",
        "max_quantity": "100000",
        "price_band_pct": "10",
        "reference_price": "190.00",
        "last_price": None,
        "status": "trading",
    }
    assert inst["BTC-USD"]["lot_size"] == "0.0001"
    alice, bob = await make_user(), await make_user()
    for price in ("65000.00", "65001.50", "65010.00"):
        await place(alice, symbol="BTC-USD", side="sell", quantity="0.0010", price=price)
    await place(alice, symbol="BTC-USD", side="buy", quantity="0.5", price="64000.00")
    r = await client.get("/api/v1/markets/BTC-USD/book?depth=2")
    book = r.json()
    assert book["asks"] == [["65000.00", "0.0010"], ["65001.50", "0.0010"]]
    assert book["bids"] == [["64000.00", "0.5000"]]
    taken = await place(
        bob, symbol="BTC-USD", side="buy", quantity="0.0015", type="market", price=None
    )
    assert taken["status"] == "filled"
    assert taken["average_price"] == "65000.50"
    trades = (await client.get("/api/v1/markets/BTC-USD/trades?limit=1")).json()
    assert [(t["price"], t["quantity"]) for t in trades] == [("65001.50", "0.0005")]
    candles = (await client.get("/api/v1/markets/BTC-USD/candles?interval=1s")).json()
    assert candles[-1]["high"] == "65001.5"
    assert sum(float(c["volume"]) for c in candles) == 0.0015
    for path, code in [
        ("/api/v1/markets/NOPE/book", 404),
        ("/api/v1/markets/NOPE/trades", 404),
        ("/api/v1/markets/AAPL/candles?interval=7m", 422),
        ("/api/v1/markets/AAPL/book?depth=0", 422),
        ("/api/v1/markets/AAPL/trades?limit=100000", 422),
    ]:
        r = await client.get(path)
        assert r.status_code == code, (path, r.text)
        assert "error" in r.json()
