"""When the last retention pass ran (`bot.retention`), so that it runs once a day whichever process leads.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-04
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from bot.store.schema import UTCDateTime

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("bot_state") as batch:
        batch.add_column(sa.Column("last_pruned_at", UTCDateTime(), nullable=True))
    op.create_index("ix_deliveries_created_at", "deliveries", ["created_at"])
    op.create_index("ix_items_last_seen_at", "items", ["last_seen_at"])


def downgrade() -> None:
    op.drop_index("ix_items_last_seen_at", table_name="items")
    op.drop_index("ix_deliveries_created_at", table_name="deliveries")
    with op.batch_alter_table("bot_state") as batch:
        batch.drop_column("last_pruned_at")
