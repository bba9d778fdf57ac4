"""Trading tables: instruments, orders, fills, positions, risk limits, engine cursor,
trade tape, candles.

Revision ID: 0002_trading
Revises: 0001_identity
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from hft.db.base import BigIntId, Numeric, UtcDateTime

revision = "0002_trading"
down_revision = "0001_identity"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "instruments",
        sa.Column("symbol", sa.String(32), nullable=False),
        sa.Column("symbol_id", sa.Integer(), nullable=False),
        sa.Column("tick_size", Numeric(), nullable=False),
        sa.Column("lot_size", Numeric(), nullable=False),
        sa.Column("min_qty", sa.BigInteger(), nullable=False),
        sa.Column("max_qty", sa.BigInteger(), nullable=False),
        sa.Column("band_bps", sa.Integer(), nullable=False),
        sa.Column("reference_price", sa.BigInteger(), nullable=False),
        sa.Column("last_price", sa.BigInteger(), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("updated_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("symbol", name="pk_instruments"),
        sa.UniqueConstraint("symbol_id", name="uq_instruments_symbol_id"),
    )
    op.create_table(
        "orders",
        sa.Column("id", BigIntId, nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("client_order_id", sa.String(64), nullable=True),
        sa.Column("symbol", sa.String(32), nullable=False),
        sa.Column("side", sa.String(4), nullable=False),
        sa.Column("type", sa.String(8), nullable=False),
        sa.Column("time_in_force", sa.String(4), nullable=False),
        sa.Column("post_only", sa.Boolean(), nullable=False),
        sa.Column("price", Numeric(), nullable=True),
        sa.Column("price_ticks", sa.BigInteger(), nullable=False),
        sa.Column("quantity", Numeric(), nullable=False),
        sa.Column("quantity_lots", sa.BigInteger(), nullable=False),
        sa.Column("filled_lots", sa.BigInteger(), nullable=False),
        sa.Column("leaves_lots", sa.BigInteger(), nullable=False),
        sa.Column("filled_quantity", Numeric(), nullable=False),
        sa.Column("filled_notional", Numeric(), nullable=False),
        sa.Column("average_price", Numeric(), nullable=True),
        sa.Column("fees", Numeric(), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("reason", sa.String(40), nullable=True),
        sa.Column("reserved", Numeric(), nullable=False),
        sa.Column("last_sequence", sa.BigInteger(), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("updated_at", UtcDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name="fk_orders_account_id_accounts"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_orders"),
        sa.UniqueConstraint(
            "account_id", "client_order_id", name="uq_orders_account_id_client_order_id"
        ),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_orders_account_id_status", "orders", ["account_id", "status"])
    op.create_index("ix_orders_account_id_id", "orders", ["account_id", "id"])
    op.create_index("ix_orders_status_created_at", "orders", ["status", "created_at"])
    op.create_table(
        "fills",
        sa.Column("id", BigIntId, nullable=False),
        sa.Column("trade_id", sa.BigInteger(), nullable=False),
        sa.Column("order_id", sa.BigInteger(), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("symbol", sa.String(32), nullable=False),
        sa.Column("side", sa.String(4), nullable=False),
        sa.Column("price", Numeric(), nullable=False),
        sa.Column("quantity", Numeric(), nullable=False),
        sa.Column("liquidity", sa.String(5), nullable=False),
        sa.Column("fee", Numeric(), nullable=False),
        sa.Column("sequence", sa.BigInteger(), nullable=False),
        sa.Column("time", UtcDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["order_id"], ["orders.id"], name="fk_fills_order_id_orders"),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name="fk_fills_account_id_accounts"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_fills"),
        sa.UniqueConstraint("trade_id", "order_id", name="uq_fills_trade_id_order_id"),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_fills_account_id_id", "fills", ["account_id", "id"])
    op.create_index("ix_fills_order_id", "fills", ["order_id"])
    op.create_table(
        "positions",
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("symbol", sa.String(32), nullable=False),
        sa.Column("quantity", Numeric(), nullable=False),
        sa.Column("cost_basis", Numeric(), nullable=False),
        sa.Column("realized_pnl", Numeric(), nullable=False),
        sa.Column("fees", Numeric(), nullable=False),
        sa.Column("updated_at", UtcDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name="fk_positions_account_id_accounts"
        ),
        sa.PrimaryKeyConstraint("account_id", "symbol", name="pk_positions"),
    )
    op.create_table(
        "risk_limits",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=True),
        sa.Column("max_order_quantity", Numeric(), nullable=True),
        sa.Column("max_order_notional", Numeric(), nullable=True),
        sa.Column("max_position", Numeric(), nullable=True),
        sa.Column("max_open_orders", sa.Integer(), nullable=True),
        sa.Column("short_limit", Numeric(), nullable=True),
        sa.Column("trading_halted", sa.Boolean(), nullable=False),
        sa.Column("updated_at", UtcDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name="fk_risk_limits_account_id_accounts"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_risk_limits"),
        sa.UniqueConstraint("account_id", name="uq_risk_limits_account_id"),
    )
    op.create_table(
        "engine_cursor",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("sequence", sa.BigInteger(), nullable=False),
        sa.Column("idx", sa.Integer(), nullable=False),
        sa.Column("updated_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_engine_cursor"),
    )
    op.create_table(
        "trades",
        sa.Column("trade_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("symbol", sa.String(32), nullable=False),
        sa.Column("price", Numeric(), nullable=False),
        sa.Column("quantity", Numeric(), nullable=False),
        sa.Column("taker_side", sa.String(4), nullable=False),
        sa.Column("sequence", sa.BigInteger(), nullable=False),
        sa.Column("time", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("trade_id", name="pk_trades"),
    )
    op.create_index("ix_trades_symbol_trade_id", "trades", ["symbol", "trade_id"])
    op.create_table(
        "candles",
        sa.Column("symbol", sa.String(32), nullable=False),
        sa.Column("interval", sa.String(4), nullable=False),
        sa.Column("start", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("open", Numeric(), nullable=False),
        sa.Column("high", Numeric(), nullable=False),
        sa.Column("low", Numeric(), nullable=False),
        sa.Column("close", Numeric(), nullable=False),
        sa.Column("volume", Numeric(), nullable=False),
        sa.Column("trades", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("symbol", "interval", "start", name="pk_candles"),
    )


def downgrade() -> None:
    op.drop_table("candles")
    op.drop_index("ix_trades_symbol_trade_id", table_name="trades")
    op.drop_table("trades")
    op.drop_table("engine_cursor")
    op.drop_table("risk_limits")
    op.drop_table("positions")
    op.drop_index("ix_fills_order_id", table_name="fills")
    op.drop_index("ix_fills_account_id_id", table_name="fills")
    op.drop_table("fills")
    op.drop_index("ix_orders_status_created_at", table_name="orders")
    op.drop_index("ix_orders_account_id_id", table_name="orders")
    op.drop_index("ix_orders_account_id_status", table_name="orders")
    op.drop_table("orders")
    op.drop_table("instruments")
