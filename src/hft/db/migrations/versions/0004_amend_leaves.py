"""orders.amend_leaves_lots: the open lots an amend asked the engine for, held until the
projection applies the engine's answer.

An amend that raises an order's quantity is checked and reserved before the engine sees
it, but the order's `leaves_lots` only change when the projection applies the engine's
answer. The risk checks of orders entered in between count the larger of the two
(OrderRow.held_leaves_lots), so the amend and those orders cannot together pass
a position limit that each would only pass alone.

Revision ID: 0004_amend_leaves
Revises: 0003_entry_version
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004_amend_leaves"
down_revision = "0003_entry_version"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("orders", sa.Column("amend_leaves_lots", sa.BigInteger(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("orders") as batch:
        batch.drop_column("amend_leaves_lots")
