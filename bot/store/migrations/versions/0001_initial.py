"""Initial schema: sources, items, deliveries (the outbox), meta, unsubscribes.

Revision ID: 0001
Revises:
Create Date: 2026-01-01

Constraint and index names are spelled out (they follow `schema.NAMING_CONVENTION`) so that later batch
migrations on SQLite can find them by name.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "sources",
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("etag", sa.Text()),
        sa.Column("last_modified", sa.Text()),
        sa.Column("last_fetch_at", TS),
        sa.Column("last_success_at", TS),
        sa.Column("last_error", sa.Text()),
        sa.Column("consecutive_failures", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("last_item_count", sa.Integer()),
        sa.Column("max_item_count", sa.Integer()),
        sa.Column("not_before", TS),
        sa.Column("next_due_at", TS),
        sa.PrimaryKeyConstraint("name", name="pk_sources"),
    )
    op.create_table(
        "items",
        sa.Column("id", sa.String(), nullable=False),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("abstract", sa.Text(), nullable=False, server_default=""),
        sa.Column("authors", sa.JSON(), nullable=False),
        sa.Column("published", TS),
        sa.Column("metrics", sa.JSON(), nullable=False),
        sa.Column("section", sa.Text()),
        sa.Column("first_source", sa.String(), nullable=False),
        sa.Column("first_seen_at", TS, nullable=False),
        sa.Column("last_seen_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_items"),
    )
    op.create_index("ix_items_first_seen_at", "items", ["first_seen_at"])
    op.create_table(
        "deliveries",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("key", sa.String(), nullable=False),
        sa.Column("kind", sa.String(), nullable=False),
        sa.Column("channel", sa.String(), nullable=False),
        sa.Column("recipient", sa.String(), nullable=False),
        sa.Column("address", sa.Text(), nullable=False),
        sa.Column("period_key", sa.String(), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("message_id", sa.Text(), nullable=False),
        sa.Column("state", sa.String(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("lease_until", TS),
        sa.Column("next_attempt_at", TS, nullable=False),
        sa.Column("covers_until", TS),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.Column("sent_at", TS),
        sa.Column("last_error", sa.Text()),
        sa.PrimaryKeyConstraint("id", name="pk_deliveries"),
        sa.UniqueConstraint("key", name="uq_deliveries_key"),
        sa.CheckConstraint(
            "state IN ('pending', 'sending', 'sent', 'failed', 'unknown', 'expired')", name="ck_deliveries_state"
        ),
    )
    op.create_index("ix_deliveries_state_next_attempt_at", "deliveries", ["state", "next_attempt_at"])
    op.create_index("ix_deliveries_recipient_channel_kind", "deliveries", ["recipient", "channel", "kind"])
    op.create_table(
        "meta",
        sa.Column("key", sa.String(), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("key", name="pk_meta"),
    )
    op.create_table(
        "unsubscribes",
        sa.Column("address", sa.String(), nullable=False),
        sa.Column("unsubscribed_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("address", name="pk_unsubscribes"),
    )


def downgrade() -> None:
    op.drop_table("unsubscribes")
    op.drop_table("meta")
    op.drop_index("ix_deliveries_recipient_channel_kind", table_name="deliveries")
    op.drop_index("ix_deliveries_state_next_attempt_at", table_name="deliveries")
    op.drop_table("deliveries")
    op.drop_index("ix_items_first_seen_at", table_name="items")
    op.drop_table("items")
    op.drop_table("sources")
