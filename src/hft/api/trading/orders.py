"""Order entry and management: POST/GET/PATCH/DELETE /orders, GET /fills.

Write path of a new order: validation (no I/O) -> one serialized write transaction
(risk checks under the account lock, `pending_new` insert, reservation, audit) -> engine
SubmitOrder -> wait until the projection has applied the command's events -> answer with
the order as the database now has it (final for market/IOC/FOK orders, with its fills).
The handler itself never writes executions; the projection is their only writer.
"""

from __future__ import annotations

import logging
from decimal import Decimal
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from hft.api.audit import record
from hft.api.deps import ClientIp, CurrentUser, RequestId, SessionDep
from hft.api.direct import direct_route
from hft.api.errors import ApiError
from hft.api.trading import metrics
from hft.api.trading.body import JsonNumber, check_fields, read_object
from hft.api.trading.common import (
    FastJSON,
    RuntimeDep,
    api_error,
    body_doc,
    engine_unavailable,
    errors,
    parse_id,
)
from hft.api.trading.entry import AccountMissingError, EntryRequest
from hft.api.trading.projection import reject_reason
from hft.api.trading.reconcile import reject_unsequenced, release_amends
from hft.api.trading.repo import (
    account_of_user,
    fills_of,
    lock_order_and_account,
    open_exposure,
    order_by_client_id,
    own_order,
    own_order_status,
    position_quantity,
)
from hft.api.trading.runtime import TradingRuntime
from hft.api.trading.schemas import (
    CancelAllResult,
    FillPublic,
    OrderAmend,
    OrderCreate,
    OrderPublic,
    fill_public,
    order_public,
)
from hft.db.base import utcnow
from hft.db.models.trading import FillRow, OrderRow
from hft.db.session import write_transaction
from hft.engine.client import EngineRequestError, EngineUnavailable, order_request
from hft.engine.pb import engine_pb2 as pb
from hft.services.errors import ServiceError
from hft.services.orders import OPEN_STATUSES, OrderSpec, validate_amend, validate_order
from hft.services.risk import (
    AccountSnapshot,
    check_amend_limits,
    check_amend_reserve,
    collar_price,
    reservation,
)

log = logging.getLogger("hft.api.trading.orders")

router = APIRouter(tags=["orders"])

_ORDER_FIELDS: dict[str, tuple[type, ...]] = {
    "symbol": (str,),
    "side": (str,),
    "type": (str,),
    "time_in_force": (str,),
    "quantity": (str, JsonNumber),
    "price": (str, JsonNumber),
    "post_only": (bool,),
    "client_order_id": (str,),
}
_AMEND_FIELDS: dict[str, tuple[type, ...]] = {
    "quantity": (str, JsonNumber),
    "price": (str, JsonNumber),
}
_SIDE = {"buy": pb.SIDE_BUY, "sell": pb.SIDE_SELL}
_TIF = {
    "gtc": pb.TIME_IN_FORCE_GTC,
    "day": pb.TIME_IN_FORCE_DAY,
    "ioc": pb.TIME_IN_FORCE_IOC,
    "fok": pb.TIME_IN_FORCE_FOK,
}


def engine_refused(exc: EngineRequestError) -> ApiError:
    """The engine refused a request before sequencing it: nothing changed there."""
    log.error("engine refused a request: %s", exc)
    return ApiError(
        502, "engine_refused", f"the matching engine refused the request: {exc.message}"
    )


async def _account_id(rt: TradingRuntime, session: Any, user_id: int) -> int:
    # user id -> account id never changes once the account exists.
    cached = rt.account_ids.get(user_id)
    if cached is not None:
        return cached
    account = await account_of_user(session, user_id)
    if account is None:
        raise ApiError(404, "account_not_found", "this user has no trading account")
    if len(rt.account_ids) > 100_000:
        rt.account_ids.clear()
    rt.account_ids[user_id] = account.id
    return account.id


async def _best_opposite(rt: TradingRuntime, symbol: str, side: str) -> int | None:
    """Best opposite price (ticks) for a market order: the relay's live book, else ask
    the engine. Raises EngineUnavailable."""
    best = rt.relay.best(symbol) if rt.relay is not None else None
    if best is None:
        book = await rt.call("get_order_book", lambda: rt.client.get_order_book(symbol, 1))
        levels = book.asks if side == "buy" else book.bids
        return int(levels[0].price) if levels else None
    price: int | None = best[1] if side == "buy" else best[0]
    return price


async def order_view(rt: TradingRuntime, order_id: int, *, with_fills: bool) -> dict[str, Any]:
    async with rt.db.session() as session:
        order = await session.get(OrderRow, order_id)
        assert order is not None
        fills = await fills_of(session, order_id) if with_fills else None
    return order_public(order, rt.instruments.get(order.symbol), fills)


def _same_request(order: OrderRow, spec: OrderSpec) -> bool:
    tif = spec.time_in_force
    return (
        order.symbol == spec.symbol
        and order.side == spec.side
        and order.type == spec.type
        and order.time_in_force == tif
        and order.quantity_lots == spec.quantity_lots
        and (spec.type == "market" or order.price_ticks == spec.price_ticks)
        and order.post_only == spec.post_only
    )


async def _replay(rt: TradingRuntime, order: OrderRow, spec: OrderSpec) -> FastJSON:
    if not _same_request(order, spec):
        raise ApiError(
            409,
            "duplicate_client_order_id",
            f"client_order_id {spec.client_order_id!r} was used for a different order",
            "client_order_id",
        )
    view = await order_view(rt, order.id, with_fills=True)
    return FastJSON(view, status_code=200, headers={"Idempotent-Replay": "true"})


@direct_route(
    router,
    "/orders",
    methods=["POST"],
    status_code=201,
    response_model=None,
    summary="Place an order",
    openapi_extra=body_doc(OrderCreate),
    responses={
        201: {"model": OrderPublic, "description": "the order (final for market/IOC/FOK)"},
        200: {"model": OrderPublic, "description": "a retry of a known client_order_id"},
        **errors(400, 403, 404, 409, 413, 422, 503),
    },
)
async def create_order(
    request: Request,
    user: CurrentUser,
    rt: RuntimeDep,
    ip: ClientIp,
    request_id: RequestId,
) -> FastJSON:
    """Validate, risk-check and reserve, send to the engine, and answer with the order
    once its executions are in the database."""
    body = await read_object(request)
    check_fields(body, _ORDER_FIELDS)
    try:
        spec = validate_order(body, rt.instruments)
    except ServiceError as exc:
        raise api_error(exc) from None
    account_id = rt.account_ids.get(user.id)
    if account_id is None or spec.client_order_id is not None:
        async with rt.db.session() as session:
            account_id = await _account_id(rt, session, user.id)
            if spec.client_order_id is not None:
                known = await order_by_client_id(session, account_id, spec.client_order_id)
                if known is not None:
                    return await _replay(rt, known, spec)
    if rt.engine_status() != "ok":
        raise engine_unavailable()
    inst = rt.instruments[spec.symbol]
    tif = spec.time_in_force
    engine_type, engine_price = pb.ORDER_TYPE_LIMIT, spec.price_ticks
    no_liquidity = False
    if spec.type == "market":
        # Sent as an IOC/FOK limit at the collar price, so it cannot sweep past what the
        # reservation covers; the order stays "market" for the user.
        tif = "fok" if tif == "fok" else "ioc"
        try:
            best = await _best_opposite(rt, spec.symbol, spec.side)
        except EngineUnavailable:
            raise engine_unavailable() from None
        if best is None:
            no_liquidity = True
            engine_price = inst.reference_price or 1
        else:
            engine_price = collar_price(spec.side, best, inst, rt.settings.market_collar_pct)
    now = utcnow()
    values: dict[str, Any] = {
        "account_id": account_id,
        "client_order_id": spec.client_order_id,
        "symbol": spec.symbol,
        "side": spec.side,
        "type": spec.type,
        "time_in_force": tif,
        "post_only": spec.post_only,
        "price": spec.price,
        "price_ticks": engine_price,
        "quantity": spec.quantity,
        "quantity_lots": spec.quantity_lots,
        "filled_lots": 0,
        "leaves_lots": 0 if no_liquidity else spec.quantity_lots,
        "amend_leaves_lots": None,
        "filled_quantity": Decimal(0),
        "filled_notional": Decimal(0),
        "fees": Decimal(0),
        "status": "rejected" if no_liquidity else "pending_new",
        "reason": "market_no_liquidity" if no_liquidity else None,
        "reserved": Decimal(0),
        "last_sequence": 0,
        "created_at": now,
        "updated_at": now,
    }

    def engine_request(order_id: int) -> pb.OrderRequest:
        return order_request(
            order_id,
            account_id,
            spec.symbol,
            _SIDE[spec.side],
            engine_type,
            _TIF[tif],
            engine_price,
            spec.quantity_lots,
            post_only=spec.post_only,
        )

    entry = EntryRequest(
        values=values,
        inst=inst,
        check_risk=not no_liquidity,
        user_id=user.id,
        audit={
            "symbol": spec.symbol,
            "side": spec.side,
            "type": spec.type,
            "tif": tif,
            "quantity": str(spec.quantity),
            "price": None if spec.price is None else str(spec.price),
            "client_order_id": spec.client_order_id,
        },
        ip=ip,
        request_id=request_id,
        # Handed to the engine sender by order entry as its batch commits.
        engine_request=None if no_liquidity else engine_request,
    )
    try:
        order = await rt.entry.submit(entry)
    except ServiceError as exc:
        raise api_error(exc) from None
    except AccountMissingError:
        raise ApiError(404, "account_not_found", "this user has no trading account") from None
    except IntegrityError:
        # Two retries of one client_order_id raced; the other one won.
        async with rt.db.session() as s2:
            known = await order_by_client_id(s2, account_id, spec.client_order_id or "")
        if known is None:
            raise
        return await _replay(rt, known, spec)
    order_id = order.id
    metrics.ORDERS_BY(order.status).inc()
    sent = order.sent
    if sent is None:
        return FastJSON(await order_view(rt, order_id, with_fills=True), status_code=201)
    try:
        resp = await rt.call("submit_order", lambda: sent)
    except EngineUnavailable:
        raise engine_unavailable(
            f"the matching engine did not answer; order {order_id} is pending_new and will "
            "be resolved automatically (query it by id or client_order_id)"
        ) from None
    except EngineRequestError as exc:
        # Refused before sequencing: the engine never had it.
        await reject_unsequenced(rt, order_id, "engine_refused")
        log.error("engine refused order %s: %s", order_id, exc)
        return FastJSON(await order_view(rt, order_id, with_fills=True), status_code=201)
    if resp.events:
        await rt.projection.wait_applied(resp.sequence, rt.settings.response_wait_s)
        cached = rt.recent.get(order_id, resp.sequence)
        if cached is not None:
            return FastJSON(cached, status_code=201)
    return FastJSON(await order_view(rt, order_id, with_fills=True), status_code=201)


@router.get(
    "/orders",
    response_model=list[OrderPublic],
    summary="The caller's orders, newest first",
    responses=errors(422),
)
async def list_orders(
    user: CurrentUser,
    session: SessionDep,
    rt: RuntimeDep,
    status: Annotated[str, Query(pattern="^(open|closed|all)$")] = "all",
    symbol: Annotated[str | None, Query(max_length=32)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> FastJSON:
    account_id = await _account_id(rt, session, user.id)
    stmt = select(OrderRow).where(OrderRow.account_id == account_id)
    if status == "open":
        stmt = stmt.where(OrderRow.status.in_(OPEN_STATUSES))
    elif status == "closed":
        stmt = stmt.where(OrderRow.status.not_in(OPEN_STATUSES))
    if symbol:
        stmt = stmt.where(OrderRow.symbol == symbol)
    rows = (await session.execute(stmt.order_by(OrderRow.id.desc()).limit(limit))).scalars()
    return FastJSON([order_public(o, rt.instruments.get(o.symbol)) for o in rows])


async def _order_or_404(session: Any, account_id: int, order_id: str) -> OrderRow:
    oid = parse_id(order_id)
    order = None if oid is None else await own_order(session, account_id, oid)
    if order is None:
        raise ApiError(404, "order_not_found", "no such order")
    return order


@direct_route(
    router,
    "/orders/by-client-id/{client_order_id}",
    methods=["GET"],
    response_model=OrderPublic,
    summary="One of the caller's orders by client_order_id, with its fills",
    responses=errors(404),
)
async def get_order_by_client_id(
    client_order_id: str, user: CurrentUser, session: SessionDep, rt: RuntimeDep
) -> FastJSON:
    account_id = await _account_id(rt, session, user.id)
    order = (
        await order_by_client_id(session, account_id, client_order_id)
        if len(client_order_id) <= 64
        else None
    )
    if order is None:
        raise ApiError(404, "order_not_found", "no such order")
    fills = await fills_of(session, order.id)
    return FastJSON(order_public(order, rt.instruments.get(order.symbol), fills))


@direct_route(
    router,
    "/orders/{order_id}",
    methods=["GET"],
    response_model=OrderPublic,
    summary="One of the caller's orders, with its fills",
    responses=errors(404),
)
async def get_order(
    order_id: str, user: CurrentUser, session: SessionDep, rt: RuntimeDep
) -> FastJSON:
    account_id = await _account_id(rt, session, user.id)
    order = await _order_or_404(session, account_id, order_id)
    fills = await fills_of(session, order.id)
    return FastJSON(order_public(order, rt.instruments.get(order.symbol), fills))


def _not_open(order_id: int, status: str) -> ApiError:
    return ApiError(409, "order_not_open", f"order {order_id} is {status}")


@direct_route(
    router,
    "/orders/{order_id}",
    methods=["DELETE"],
    response_model=OrderPublic,
    summary="Cancel one of the caller's orders",
    responses=errors(404, 409, 503),
)
async def cancel_order(
    order_id: str,
    user: CurrentUser,
    session: SessionDep,
    rt: RuntimeDep,
    ip: ClientIp,
    request_id: RequestId,
) -> FastJSON:
    account_id = await _account_id(rt, session, user.id)
    oid = parse_id(order_id)
    status = None if oid is None else await own_order_status(session, account_id, oid)
    if oid is None or status is None:
        raise ApiError(404, "order_not_found", "no such order")
    if status not in OPEN_STATUSES:
        raise _not_open(oid, status)
    await session.commit()
    await rt.audit.write(
        "order.cancel", user_id=user.id, target=f"order:{oid}", ip=ip, request_id=request_id
    )
    try:
        resp = await rt.call("cancel_order", lambda: rt.client.cancel_order(oid, account_id))
    except EngineUnavailable:
        raise engine_unavailable() from None
    except EngineRequestError as exc:
        raise engine_refused(exc) from None
    view = None
    if resp.events:
        await rt.projection.wait_applied(resp.sequence, rt.settings.response_wait_s)
        view = rt.recent.get(oid, resp.sequence)
    if view is None:
        view = await order_view(rt, oid, with_fills=True)
    if not resp.accepted and view["status"] not in ("canceled",):
        raise ApiError(409, "order_not_open", f"order {oid} is {view['status']}; not canceled")
    return FastJSON(view)


@router.delete(
    "/orders",
    response_model=CancelAllResult,
    summary="Cancel all the caller's open orders (optionally of one symbol)",
    responses=errors(422, 503),
)
async def cancel_all(
    user: CurrentUser,
    session: SessionDep,
    rt: RuntimeDep,
    ip: ClientIp,
    request_id: RequestId,
    symbol: Annotated[str | None, Query(max_length=32)] = None,
) -> FastJSON:
    account_id = await _account_id(rt, session, user.id)
    if symbol and symbol not in rt.instruments:
        raise ApiError(422, "unknown_symbol", f"unknown symbol {symbol!r}", "symbol")
    await session.commit()
    await rt.audit.write(
        "order.cancel_all",
        user_id=user.id,
        target=f"account:{account_id}",
        details={"symbol": symbol},
        ip=ip,
        request_id=request_id,
    )
    try:
        resp = await rt.call("cancel_all", lambda: rt.client.cancel_all(account_id, symbol or ""))
    except EngineUnavailable:
        raise engine_unavailable() from None
    except EngineRequestError as exc:
        raise engine_refused(exc) from None
    ids = [e.order_id for e in resp.events if e.type == pb.EVENT_TYPE_CANCELED]
    if resp.events:
        await rt.projection.wait_applied(resp.sequence, rt.settings.response_wait_s)
    async with rt.db.session() as s2:
        rows = (
            (
                (
                    await s2.execute(
                        select(OrderRow).where(
                            OrderRow.id.in_(ids), OrderRow.account_id == account_id
                        )
                    )
                )
                .scalars()
                .all()
            )
            if ids
            else []
        )
    return FastJSON(
        {
            "canceled": int(resp.canceled_count),
            "orders": [order_public(o, rt.instruments.get(o.symbol)) for o in rows],
        }
    )


@direct_route(
    router,
    "/orders/{order_id}",
    methods=["PATCH"],
    response_model=OrderPublic,
    summary="Amend an open order: new total quantity and/or price",
    openapi_extra=body_doc(OrderAmend),
    responses=errors(400, 403, 404, 409, 413, 422, 503),
)
async def amend_order(
    order_id: str,
    request: Request,
    user: CurrentUser,
    session: SessionDep,
    rt: RuntimeDep,
    ip: ClientIp,
    request_id: RequestId,
) -> FastJSON:
    """Reducing the quantity at the same price keeps the order's queue place; a price
    change or an increase re-queues it (and it may trade)."""
    body = await read_object(request)
    check_fields(body, _AMEND_FIELDS)
    account_id = await _account_id(rt, session, user.id)
    order = await _order_or_404(session, account_id, order_id)
    if order.status not in ("new", "partially_filled"):
        raise _not_open(order.id, order.status)
    inst = rt.instruments.get(order.symbol)
    if inst is None:
        raise ApiError(422, "unknown_symbol", f"unknown symbol {order.symbol!r}", "symbol")
    oid = order.id
    async with write_transaction(session):
        account, fresh = await lock_order_and_account(session, oid, account_id)
        if account is None or fresh is None or fresh.status not in ("new", "partially_filled"):
            raise _not_open(order.id, order.status)
        # Validated against the order as read under the lock: a fill or another amend
        # committed since the first read changes the filled quantity and the leaves the
        # engine must be given.
        try:
            spec = validate_amend(
                body,
                inst,
                order_type=fresh.type,
                price_ticks=fresh.price_ticks,
                quantity_lots=fresh.quantity_lots,
                filled_lots=fresh.filled_lots,
            )
        except ServiceError as exc:
            raise api_error(exc) from None
        held = fresh.held_leaves_lots
        _n_open, open_buy, open_sell = await open_exposure(session, account_id, fresh.symbol)
        limits, halted = await rt.limits_for(session, account_id)
        try:
            check_amend_limits(
                side=fresh.side,
                price_ticks=spec.price_ticks,
                total_lots=spec.quantity_lots,
                leaves_delta_lots=spec.leaves_lots - held,
                inst=inst,
                account=AccountSnapshot(
                    account.cash,
                    account.reserved_cash,
                    account.trading_enabled,
                    await position_quantity(session, account_id, fresh.symbol),
                    inst.quantity(open_buy),
                    inst.quantity(open_sell),
                    0,
                ),
                limits=limits,
                global_halt=halted,
                reducing=spec.price_ticks == fresh.price_ticks
                and spec.quantity_lots <= fresh.quantity_lots,
            )
        except ServiceError as exc:
            raise api_error(exc) from None
        needed = reservation(
            fresh.side,
            spec.price_ticks,
            spec.leaves_lots,
            inst,
            rt.settings.taker_fee_bps,
            rt.settings.money_decimals,
        )
        extra = needed - fresh.reserved
        if extra > 0:
            try:
                check_amend_reserve(
                    extra,
                    AccountSnapshot(
                        account.cash,
                        account.reserved_cash,
                        account.trading_enabled,
                        Decimal(0),
                        Decimal(0),
                        Decimal(0),
                        0,
                    ),
                )
            except ServiceError as exc:
                raise api_error(exc) from None
            # Held before the engine sees the amend; the projection sets the exact amount
            # from the engine's answer.
            fresh.reserved = needed
            account.reserved_cash = account.reserved_cash + extra
        if spec.leaves_lots > held:
            # Held until the projection applies the engine's answer, so orders entered
            # meanwhile are checked against the new quantity; order entry that read the
            # account's open orders before this commit reads them again (its
            # `entry_version` check, see lock_accounts_with_exposure).
            fresh.amend_leaves_lots = spec.leaves_lots
            account.entry_version = account.entry_version + 1
        # Counted until the engine's answer is applied (or the engine is proven never to
        # have had it): the hold and the reservation stay while any amend is in flight.
        fresh.amends_in_flight = fresh.amends_in_flight + 1
        fresh.amend_sent_at = utcnow()
        record(
            session,
            "order.amend",
            user_id=user.id,
            target=f"order:{oid}",
            details={
                "quantity": str(inst.quantity(spec.quantity_lots)),
                "price": str(inst.price(spec.price_ticks)),
            },
            ip=ip,
            request_id=request_id,
        )
    try:
        resp = await rt.call(
            "amend_order",
            lambda: rt.client.amend_order(oid, account_id, spec.price_ticks, spec.leaves_lots),
        )
    except EngineUnavailable:
        raise engine_unavailable() from None
    except EngineRequestError as exc:
        # Refused before sequencing: no answer will come, so this amend is not in flight.
        await release_amends(rt, oid, sent_before=None)
        raise engine_refused(exc) from None
    if resp.events:
        await rt.projection.wait_applied(resp.sequence, rt.settings.response_wait_s)
    if not resp.accepted:
        reason = reject_reason(resp.reject_reason)
        if reason == "unknown_order":
            raise ApiError(409, "order_not_open", f"order {oid} is no longer open")
        status = 403 if reason == "kill_switch" else 422
        raise ApiError(status, reason, f"amend rejected by the engine: {reason}")
    return FastJSON(await order_view(rt, oid, with_fills=True))


@router.get(
    "/fills",
    response_model=list[FillPublic],
    summary="The caller's fills, newest first",
    responses=errors(422),
)
async def list_fills(
    user: CurrentUser,
    session: SessionDep,
    rt: RuntimeDep,
    symbol: Annotated[str | None, Query(max_length=32)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> FastJSON:
    account_id = await _account_id(rt, session, user.id)
    stmt = select(FillRow).where(FillRow.account_id == account_id)
    if symbol:
        stmt = stmt.where(FillRow.symbol == symbol)
    rows = (await session.execute(stmt.order_by(FillRow.id.desc()).limit(limit))).scalars()
    return FastJSON([fill_public(f, rt.instruments.get(f.symbol)) for f in rows])


__all__ = ["router"]
