"""Tables of the store, as SQLAlchemy Core.

Core rather than ORM: the store hands out dataclasses from `bot.models`, never rows, so a mapper would only add a
layer to translate twice. The naming convention gives every constraint a stable name, which Alembic's batch mode
on SQLite needs to alter tables later.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    CheckConstraint,
    Column,
    DateTime,
    Dialect,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
)

from bot.outbox.model import State

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


metadata = MetaData(naming_convention=NAMING_CONVENTION)


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp that goes in as aware UTC and always comes back aware UTC.

    PostgreSQL keeps `timestamptz` but returns it in the session time zone; SQLite has no time zone at all and
    returns naive values. Naive input is refused: the store never guesses what a naive time meant.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"naive datetime {value.isoformat()} given to the store; pass an aware UTC time")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if not isinstance(value, datetime):
            raise TypeError(f"expected a datetime from the database, got {type(value).__name__}")
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


sources = Table(
    "sources",
    metadata,
    Column("name", String, primary_key=True),
    Column("etag", Text),
    Column("last_modified", Text),
    Column("last_fetch_at", UTCDateTime),
    Column("last_success_at", UTCDateTime),
    Column("last_error", Text),
    Column("consecutive_failures", Integer, nullable=False, server_default="0"),
    Column("last_item_count", Integer),
    Column("max_item_count", Integer),
    Column("not_before", UTCDateTime),
    Column("next_due_at", UTCDateTime),
    Column("notified_streak", Text),  # the failure streak the admin was told of (`bot.outbox.notices`); NULL: none
)

items = Table(
    "items",
    metadata,
    Column("id", String, primary_key=True),
    Column("title", Text, nullable=False),
    Column("url", Text, nullable=False),
    Column("abstract", Text, nullable=False, server_default=""),
    Column("authors", JSON, nullable=False),
    Column("published", UTCDateTime),
    Column("metrics", JSON, nullable=False),
    Column("section", Text),
    Column("first_source", String, nullable=False),
    Column("first_seen_at", UTCDateTime, nullable=False),
    Column("last_seen_at", UTCDateTime, nullable=False),
    Index(None, "first_seen_at"),
    Index(None, "last_seen_at"),  # retention (`bot.store.retention`)
)

deliveries = Table(
    "deliveries",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("key", String, nullable=False, unique=True),
    Column("kind", String, nullable=False),
    Column("channel", String, nullable=False),
    Column("recipient", String, nullable=False),
    Column("address", Text, nullable=False),
    Column("period_key", String, nullable=False),
    Column("payload", JSON, nullable=False),
    Column("message_id", Text, nullable=False),
    Column("state", String, nullable=False),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("lease_until", UTCDateTime),
    Column("next_attempt_at", UTCDateTime, nullable=False),
    Column("covers_until", UTCDateTime),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Column("sent_at", UTCDateTime),
    Column("last_error", Text),
    Column("claimed_by", String),  # the process that holds the row (`claimed` or `sending`): see `bot.store.owner`
    Column("send_started_at", UTCDateTime),  # wall clock when its send began (to look for a Slack post of it)
    Column("parts_sent", Integer, nullable=False, server_default="0"),  # Slack parts posted so far, for a resume
    CheckConstraint(f"state IN ({', '.join(repr(str(s)) for s in State)})", name="state"),
    Index(None, "state", "next_attempt_at"),
    Index(None, "claimed_by"),
    Index(None, "recipient", "channel", "kind"),
    Index(None, "kind", "recipient", "channel", "covers_until"),
    Index(None, "created_at"),  # retention
)

# When the planner first met each recipient: a new subscriber's first digest is its first scheduled one after that.
recipients = Table(
    "recipients",
    metadata,
    Column("channel", String, primary_key=True),
    Column("name", String, primary_key=True),
    Column("first_met_at", UTCDateTime, nullable=False),
)

# Destinations that answered with a permanent error (a deleted channel, a revoked webhook); a row is removed when a
# person re-enables one (`digestbot outbox retry`).
disabled_destinations = Table(
    "disabled_destinations",
    metadata,
    Column("channel", String, primary_key=True),
    Column("address", String, primary_key=True),
    Column("reason", Text, nullable=False),
    Column("disabled_at", UTCDateTime, nullable=False),
)

# Retry-After holds per host, kept across restarts; only live ones are stored.
host_holds = Table(
    "host_holds",
    metadata,
    Column("host", String, primary_key=True),
    Column("not_before", UTCDateTime, nullable=False),
)

# The bot's own state: one row. `secret` signs links (`bot.tokens`) unless the environment gives one.
bot_state = Table(
    "bot_state",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("secret", Text),
    Column("last_cycle_at", UTCDateTime),
    Column("last_pruned_at", UTCDateTime),  # the last retention pass (`bot.retention`)
    CheckConstraint("id = 1", name="one_row"),
)

# One embedding per item (`bot.scoring.semantic`), computed once for the item's lifetime: `model` and `text_hash`
# say what it was computed by and from, so a new model or an edited abstract is embedded again; `vector` is
# little-endian float32 (384 of them, 1.5 KB, for all-MiniLM-L6-v2).
item_embeddings = Table(
    "item_embeddings",
    metadata,
    Column("item_id", String, ForeignKey("items.id", ondelete="CASCADE"), primary_key=True),
    Column("model", String, nullable=False),
    Column("text_hash", LargeBinary, nullable=False),
    Column("vector", LargeBinary, nullable=False),
)

# Readers' 👍 / 👎 (`bot.store.ratings`): one per (recipient, paper, profile it was shown for). No foreign key to
# items: a rating is kept as long as its reader, and the paper it names with it.
ratings = Table(
    "ratings",
    metadata,
    Column("channel", String, primary_key=True),
    Column("recipient", String, primary_key=True),
    Column("item_id", String, primary_key=True),
    Column("profile", String, primary_key=True),
    Column("rating", Integer, nullable=False),
    Column("rated_at", UTCDateTime, nullable=False),
    CheckConstraint("rating IN (-1, 1)", name="rating"),
)

unsubscribes = Table(
    "unsubscribes",
    metadata,
    Column("address", String, primary_key=True),
    Column("unsubscribed_at", UTCDateTime, nullable=False),
)
