"""orders.amends_in_flight, orders.amend_sent_at: how many amends of an order await the
engine's answer, and when the latest was sent.

The engine answers each amend it sequenced with one event (Amended or AmendRejected).
While any amend is in flight, the projection keeps the order's held leaves
(`amend_leaves_lots`) and never lowers its reservation: two amends raising an order one
after the other must both stay counted until both are answered, not only until the
first answer. An amend whose outcome is unknown (the engine did not answer) is released
by reconciliation once it is proven the engine never sequenced it; the partial index
finds those few orders without scanning the table.

Revision ID: 0005_amends_in_flight
Revises: 0004_amend_leaves
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from hft.db.base import UtcDateTime

revision = "0005_amends_in_flight"
down_revision = "0004_amend_leaves"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "orders",
        sa.Column("amends_in_flight", sa.Integer(), server_default="0", nullable=False),
    )
    op.add_column("orders", sa.Column("amend_sent_at", UtcDateTime(), nullable=True))
    op.create_index(
        "ix_orders_amend_sent_at_in_flight",
        "orders",
        ["amend_sent_at"],
        postgresql_where=sa.text("amends_in_flight > 0"),
        sqlite_where=sa.text("amends_in_flight > 0"),
    )


def downgrade() -> None:
    op.drop_index("ix_orders_amend_sent_at_in_flight", table_name="orders")
    with op.batch_alter_table("orders") as batch:
        batch.drop_column("amend_sent_at")
        batch.drop_column("amends_in_flight")
