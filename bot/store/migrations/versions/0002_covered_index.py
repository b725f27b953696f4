"""Index for the planner's per-pass `last_covered_all` (max covers_until per recipient and channel, by kind).

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23

Without it that GROUP BY scans the whole outbox, which grows with every digest ever sent.
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_deliveries_kind_recipient_channel_covers_until", "deliveries",
                    ["kind", "recipient", "channel", "covers_until"])


def downgrade() -> None:
    op.drop_index("ix_deliveries_kind_recipient_channel_covers_until", table_name="deliveries")
