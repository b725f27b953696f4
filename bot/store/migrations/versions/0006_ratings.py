"""Readers' 👍 / 👎: one row per (recipient, paper, profile the paper was shown for).

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-04

A changed rating replaces the old one (the primary key); no foreign key to items, since a rating is kept as long
as its reader is.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from bot.store.schema import UTCDateTime

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "ratings",
        sa.Column("channel", sa.String(), nullable=False),
        sa.Column("recipient", sa.String(), nullable=False),
        sa.Column("item_id", sa.String(), nullable=False),
        sa.Column("profile", sa.String(), nullable=False),
        sa.Column("rating", sa.Integer(), nullable=False),
        sa.Column("rated_at", UTCDateTime(), nullable=False),
        sa.CheckConstraint("rating IN (-1, 1)", name="ck_ratings_rating"),
        sa.PrimaryKeyConstraint("channel", "recipient", "item_id", "profile", name="pk_ratings"),
    )


def downgrade() -> None:
    op.drop_table("ratings")
