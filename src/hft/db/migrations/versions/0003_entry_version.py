"""accounts.entry_version: how many order-entry transactions wrote the account.

Order entry reads an account's open orders in the statement that locks the account; a
changed counter tells it that another entry committed orders meanwhile (see
hft.api.trading.entry.lock_accounts_with_exposure).

Revision ID: 0003_entry_version
Revises: 0002_trading
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003_entry_version"
down_revision = "0002_trading"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "accounts",
        sa.Column("entry_version", sa.BigInteger(), server_default="0", nullable=False),
    )


def downgrade() -> None:
    with op.batch_alter_table("accounts") as batch:
        batch.drop_column("entry_version")
