"""Claimed is not sending: an owner per outbox row, and a state for mail cancelled by an unsubscribe.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-03

`claimed` rows are taken by one process (`claimed_by`) but not yet started: after a crash they go out again with
no doubt about them. Only a `sending` row, whose send had started (`send_started_at`, wall clock), can be
ambiguous. `cancelled`: owed mail whose reader unsubscribed before it went out.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from bot.store.schema import UTCDateTime

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OLD = "state IN ('pending', 'sending', 'sent', 'failed', 'unknown', 'expired')"
NEW = "state IN ('pending', 'claimed', 'sending', 'sent', 'failed', 'unknown', 'expired', 'cancelled')"


def upgrade() -> None:
    with op.batch_alter_table("deliveries") as batch:
        batch.add_column(sa.Column("claimed_by", sa.String(), nullable=True))
        batch.add_column(sa.Column("send_started_at", UTCDateTime(), nullable=True))
        batch.drop_constraint("ck_deliveries_state", type_="check")
        batch.create_check_constraint("state", NEW)
        batch.create_index("ix_deliveries_claimed_by", ["claimed_by"])


def downgrade() -> None:
    op.execute("UPDATE deliveries SET state = 'pending' WHERE state = 'claimed'")
    op.execute("UPDATE deliveries SET state = 'expired' WHERE state = 'cancelled'")
    with op.batch_alter_table("deliveries") as batch:
        batch.drop_index("ix_deliveries_claimed_by")
        batch.drop_constraint("ck_deliveries_state", type_="check")
        batch.create_check_constraint("state", OLD)
        batch.drop_column("send_started_at")
        batch.drop_column("claimed_by")
