"""Retention: what a daily pass deletes (`bot.retention`), and what `digestbot status` says of the database's size.

Deletes go in small transactions (PRUNE_CHUNK rows each), so a pass never holds a lock a delivery waits on for
long, and on PostgreSQL several processes can run one at once (a row already gone is simply not found). What
correctness needs is never deleted:

- outbox rows not final (pending, claimed, sending) or in doubt (unknown: a person decides);
- per recipient, channel and kind, the digest or alert row that covers the furthest (where the next one starts);
- papers readers rated, or named in a library (`keep`), and papers seen on a source within the window;
- unsubscribes, recipients met, disabled destinations and ratings (not touched here).
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Column, ColumnElement, Connection, Table, and_, delete, func, not_, or_, select, text, update
from sqlalchemy.orm import aliased

from bot.outbox.model import Kind, State
from bot.store.bookkeeping import Bookkeeping
from bot.store.schema import bot_state, deliveries, item_embeddings, items, ratings

PRUNE_CHUNK = 500
PRUNABLE = (State.SENT, State.FAILED, State.EXPIRED, State.CANCELLED)


@dataclass(frozen=True, slots=True)
class Pruned:
    items: int = 0
    deliveries: int = 0


@dataclass(frozen=True, slots=True)
class Footprint:
    """How big the database is and how far back it reaches (`digestbot status`)."""

    bytes: int | None  # live data: SQLite's used pages, PostgreSQL's tables with their indexes and TOAST
    oldest_item: datetime | None
    oldest_delivery: datetime | None
    items: int
    deliveries: int


class Retention(Bookkeeping):
    """The retention half of `Store` (see the module docstring)."""

    def prune_deliveries(self, cutoff: datetime) -> int:
        """Delete final outbox rows created before `cutoff`, except each recipient's furthest-covering digest and
        alert; how many went."""
        later = aliased(deliveries)
        furthest = (select(func.max(later.c.covers_until))
                    .where(later.c.kind == deliveries.c.kind, later.c.recipient == deliveries.c.recipient,
                           later.c.channel == deliveries.c.channel)
                    .scalar_subquery())
        needed = and_(deliveries.c.kind.in_([Kind.DIGEST, Kind.ALERT]), deliveries.c.covers_until == furthest)
        old = and_(deliveries.c.created_at < cutoff, deliveries.c.state.in_(list(PRUNABLE)), not_(needed))
        return self._delete_in_chunks(deliveries, deliveries.c.id, old)

    def prune_items(self, cutoff: datetime, keep: Collection[str] = ()) -> int:
        """Delete papers neither first nor last seen since `cutoff` (their embeddings go with them), except
        those rated by a reader and those in `keep`; how many went."""
        rated = select(ratings.c.item_id)
        old = and_(items.c.last_seen_at < cutoff, items.c.first_seen_at < cutoff, items.c.id.not_in(rated))
        if keep:
            kept = list(keep)
            old = and_(old, or_(*(items.c.id.not_in(kept[i:i + 500]) for i in range(0, len(kept), 500))))
        return self._delete_in_chunks(items, items.c.id, old)

    def _delete_in_chunks(self, table: Table, key: Column[Any], where: ColumnElement[bool]) -> int:
        total = 0
        while True:
            with self._write() as connection:
                ids = list(connection.execute(select(key).where(where).limit(PRUNE_CHUNK)).scalars())
                if not ids:
                    return total
                total += int(connection.execute(delete(table).where(key.in_(ids))).rowcount or 0)
            if len(ids) < PRUNE_CHUNK:
                return total

    def reclaim(self) -> None:
        """Make the space of deleted and superseded rows reusable. PostgreSQL keeps dead row versions until a
        VACUUM (every outbox row is updated three times on its way to sent), and a server may run without
        autovacuum: a plain VACUUM, which blocks neither reads nor writes, keeps the tables from growing.
        SQLite reuses freed pages by itself."""
        if self._engine.dialect.name != "postgresql":
            return
        with self._engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            for table in (deliveries, items, item_embeddings):
                connection.execute(text(f"VACUUM (ANALYZE) {table.name}"))

    def last_pruned(self) -> datetime | None:
        with self._read() as connection:
            at: datetime | None = connection.execute(select(bot_state.c.last_pruned_at)).scalar()
            return at

    def set_last_pruned(self, at: datetime) -> None:
        with self._write() as connection:
            if not connection.execute(update(bot_state).values(last_pruned_at=at)).rowcount:
                connection.execute(bot_state.insert().values(id=1, last_pruned_at=at))

    def footprint(self) -> Footprint:
        with self._read() as connection:
            return Footprint(
                bytes=_live_bytes(connection),
                oldest_item=connection.execute(select(func.min(items.c.first_seen_at))).scalar(),
                oldest_delivery=connection.execute(select(func.min(deliveries.c.created_at))).scalar(),
                items=int(connection.execute(select(func.count()).select_from(items)).scalar() or 0),
                deliveries=int(connection.execute(select(func.count()).select_from(deliveries)).scalar() or 0),
            )


def _live_bytes(connection: Connection) -> int | None:
    """The space the data takes: SQLite's pages in use (free pages are reused, so the file does not grow past
    this for long); PostgreSQL's tables of the current schema with their indexes."""
    if connection.dialect.name == "sqlite":
        pages = connection.execute(text("PRAGMA page_count")).scalar() or 0
        free = connection.execute(text("PRAGMA freelist_count")).scalar() or 0
        size = connection.execute(text("PRAGMA page_size")).scalar() or 0
        return (int(pages) - int(free)) * int(size)
    if connection.dialect.name == "postgresql":
        found = connection.execute(text(
            "SELECT sum(pg_total_relation_size(c.oid)) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = current_schema() AND c.relkind = 'r'")).scalar()
        return int(found) if found is not None else None
    return None
