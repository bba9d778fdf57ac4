from decimal import Decimal

import pytest

from hft.services.errors import RiskRejectedError
from hft.services.instruments import InstrumentInfo
from hft.services.risk import AccountSnapshot, RiskLimits, check_order, collar_price, reservation

AAPL = InstrumentInfo(1, "AAPL", Decimal("0.01"), Decimal("1"), 1, 100000, 1000, 19000)
D = Decimal


def snap(cash="10000", reserved="0", enabled=True, position="0", buy="0", sell="0", n=0):
    return AccountSnapshot(D(cash), D(reserved), enabled, D(position), D(buy), D(sell), n)


def check(side="buy", price=19000, qty=10, account=None, limits=None, halt=False):
    return check_order(
        side=side,
        price_ticks=price,
        quantity_lots=qty,
        inst=AAPL,
        account=account or snap(),
        limits=limits or RiskLimits(short_limit=D(100)),
        global_halt=halt,
        taker_fee_bps=D(2),
        places=8,
    )


def test_buy_reserves_notional_plus_taker_fee_rounded_up():
    # 10 x 190.00 = 1900; 2 bps = 0.38
    assert check() == D("1900.38")
    assert reservation("buy", 19001, 3, AAPL, D("2.5"), 2) == D("570.03") + D("0.15")
    assert check(side="sell") == 0


def test_buying_power_is_cash_minus_reservations():
    assert check(account=snap(cash="1900.38")) == D("1900.38")
    with pytest.raises(RiskRejectedError) as exc:
        check(account=snap(cash="2000", reserved="100"))
    assert exc.value.code == "insufficient_buying_power"


@pytest.mark.parametrize(
    ("kwargs", "code"),
    [
        ({"halt": True}, "trading_halted"),
        ({"account": snap(enabled=False)}, "kill_switch"),
        ({"limits": RiskLimits(max_order_quantity=D(5))}, "order_quantity_limit"),
        ({"limits": RiskLimits(max_order_notional=D(1000))}, "order_notional_limit"),
        ({"limits": RiskLimits(max_open_orders=2), "account": snap(n=2)}, "max_open_orders"),
        (
            {"limits": RiskLimits(max_position=D(15)), "account": snap(position="3", buy="3")},
            "position_limit",
        ),
        (
            {"side": "sell", "limits": RiskLimits(short_limit=D(0)), "account": snap(position="9")},
            "insufficient_position",
        ),
        (
            {
                "side": "sell",
                "limits": RiskLimits(short_limit=D(5)),
                "account": snap(position="10", sell="6"),
            },
            "insufficient_position",
        ),
        (
            {"side": "sell", "limits": RiskLimits(short_limit=D(100), max_position=D(5))},
            "position_limit",
        ),
    ],
)
def test_limits(kwargs, code):
    with pytest.raises(RiskRejectedError) as exc:
        check(**kwargs)
    assert exc.value.code == code


def test_sell_within_position_and_short_limit_passes():
    assert check(side="sell", limits=RiskLimits(short_limit=D(0)), account=snap(position="10")) == 0
    assert (
        check(
            side="sell", limits=RiskLimits(short_limit=D(5)), account=snap(position="10", sell="5")
        )
        == 0
    )


def test_collar_price_rounds_conservatively_and_stays_in_band():
    # 5% above an ask of 190.01 = 199.5105 -> 199.51 (down), clamped by the 10% band
    assert collar_price("buy", 19001, AAPL, D(5)) == 19951
    assert collar_price("sell", 19001, AAPL, D(5)) == 18051
    assert collar_price("buy", 20800, AAPL, D(5)) == 20900  # band top: 190 + 10%
    assert collar_price("sell", 1, InstrumentInfo(2, "X", D("0.01"), D(1), 1, 10, 0, 0), D(50)) == 1


def test_amend_limits():
    from hft.services.risk import check_amend_limits

    def amend(**kw):
        args = dict(
            side="buy",
            price_ticks=19000,
            total_lots=10,
            leaves_delta_lots=5,
            inst=AAPL,
            account=snap(position="0", buy="5"),
            limits=RiskLimits(short_limit=D(10), max_position=D(12), max_order_quantity=D(20)),
            global_halt=False,
            reducing=False,
        )
        args.update(kw)
        check_amend_limits(**args)

    amend(leaves_delta_lots=7)  # 0 + 5 open + 7 = 12
    with pytest.raises(RiskRejectedError) as exc:
        amend(leaves_delta_lots=8)
    assert exc.value.code == "position_limit"
    with pytest.raises(RiskRejectedError) as exc:
        amend(total_lots=21, leaves_delta_lots=1)
    assert exc.value.code == "order_quantity_limit"
    with pytest.raises(RiskRejectedError) as exc:
        amend(side="sell", leaves_delta_lots=11, account=snap())
    assert exc.value.code == "insufficient_position"
    with pytest.raises(RiskRejectedError) as exc:
        amend(global_halt=True)
    assert exc.value.code == "trading_halted"
    # a reduction always passes, even halted or over limits
    amend(global_halt=True, total_lots=99, leaves_delta_lots=-3, reducing=True)
