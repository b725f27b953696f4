"""Item embeddings: each paper's vector kept with it, so a restart or a second process never embeds it again.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-24

The vector is float32 bytes; `model` and `text_hash` say what it was computed by and from (a new model or an
edited abstract means embedding again). Rows go with their item (ON DELETE CASCADE).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "item_embeddings",
        sa.Column("item_id", sa.String(), nullable=False),
        sa.Column("model", sa.String(), nullable=False),
        sa.Column("text_hash", sa.LargeBinary(), nullable=False),
        sa.Column("vector", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(["item_id"], ["items.id"], name="fk_item_embeddings_item_id_items",
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("item_id", name="pk_item_embeddings"),
    )


def downgrade() -> None:
    op.drop_table("item_embeddings")
