"""The diff: items are upserted by canonical id and only the never-seen ones are reported as new.

Functions here take a Connection already inside a transaction; `Store` owns the transactions.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Row, bindparam, func, select, update

from bot.models import Item
from bot.store.engine import chunks, dialect_insert
from bot.store.schema import items


def save_items(connection: Connection, source_name: str, batch: Sequence[Item], seen_at: datetime) -> list[Item]:
    """Insert unseen items, refresh the others; return the inserted ones in input order.

    "New" is decided by the database (INSERT ... ON CONFLICT DO NOTHING RETURNING), so two processes saving the
    same paper at once cannot both report it. Rows are written in id order so that concurrent writers on
    PostgreSQL take row locks in the same order and cannot deadlock.
    """
    unique = _dedupe([_clean(item, source_name) for item in batch])
    by_id = sorted(unique, key=lambda item: item.id)
    inserted: set[str] = set()
    for part in chunks(by_id):
        rows = [_new_row(item, source_name, seen_at) for item in part]
        statement = dialect_insert(connection, items).values(rows).on_conflict_do_nothing(index_elements=["id"])
        inserted.update(connection.execute(statement.returning(items.c.id)).scalars())
    _refresh(connection, [item for item in by_id if item.id not in inserted], seen_at)
    return [item for item in unique if item.id in inserted]


def get_items(connection: Connection, ids: Sequence[str]) -> dict[str, Item]:
    wanted = list(dict.fromkeys(ids))
    found: dict[str, Item] = {}
    for part in chunks(wanted):
        for row in connection.execute(select(items).where(items.c.id.in_(part))):
            found[row.id] = _item(row)
    return {item_id: found[item_id] for item_id in wanted if item_id in found}


def items_first_seen_between(connection: Connection, start: datetime | None, end: datetime) -> list[Item]:
    query = select(items).where(items.c.first_seen_at <= end)
    if start is not None:
        query = query.where(items.c.first_seen_at > start)
    return [_item(row) for row in connection.execute(query.order_by(items.c.first_seen_at, items.c.id))]


def item_count(connection: Connection) -> int:
    return int(connection.execute(select(func.count()).select_from(items)).scalar_one())


def _refresh(connection: Connection, seen: list[Item], seen_at: datetime) -> None:
    """Merge a fresh observation into stored items: metrics update, empty fields get filled, the rest stays."""
    updates: list[dict[str, Any]] = []
    for part in chunks(seen):
        by_id = {item.id: item for item in part}
        query = select(items).where(items.c.id.in_(list(by_id))).order_by(items.c.id).with_for_update()
        for row in connection.execute(query):
            updates.append(_merged(row, by_id[row.id], seen_at))
    if not updates:
        return
    statement = (
        update(items)
        .where(items.c.id == bindparam("b_id"))
        .values({name: bindparam(f"b_{name}") for name in _MERGED_FIELDS})
    )
    connection.execute(statement, updates)


_MERGED_FIELDS = ("title", "abstract", "authors", "published", "metrics", "section", "last_seen_at")


def _merged(row: Row[Any], item: Item, seen_at: datetime) -> dict[str, Any]:
    return {
        "b_id": row.id,
        "b_title": row.title or item.title,
        "b_abstract": row.abstract or item.abstract,
        "b_authors": row.authors or list(item.authors),
        "b_published": row.published or _aware(item.published),
        "b_metrics": {**(row.metrics or {}), **item.metrics},
        "b_section": row.section if row.section is not None else item.section,
        "b_last_seen_at": seen_at,
    }


def _new_row(item: Item, source_name: str, seen_at: datetime) -> dict[str, Any]:
    return {
        "id": item.id,
        "title": item.title,
        "url": item.url,
        "abstract": item.abstract,
        "authors": list(item.authors),
        "published": _aware(item.published),
        "metrics": dict(item.metrics),
        "section": item.section,
        "first_source": source_name,
        "first_seen_at": seen_at,
        "last_seen_at": seen_at,
    }


def _item(row: Row[Any]) -> Item:
    return Item(
        id=row.id,
        title=row.title,
        url=row.url,
        abstract=row.abstract,
        authors=tuple(row.authors or ()),
        published=row.published,
        metrics={str(k): int(v) for k, v in (row.metrics or {}).items()},
        section=row.section,
        source=row.first_source,
    )


def _dedupe(batch: list[Item]) -> list[Item]:
    """First occurrence wins: one statement may not touch the same row twice on PostgreSQL."""
    first: dict[str, Item] = {}
    for item in batch:
        first.setdefault(item.id, item)
    return list(first.values())


def _aware(value: datetime | None) -> datetime | None:
    """Parsers may hand over naive publication dates; those are taken as UTC rather than refused."""
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


def _clean(item: Item, source_name: str) -> Item:
    """Drop NUL characters (PostgreSQL text cannot hold them; one hostile title must not sink the batch) and
    name the source on items whose parser left it empty."""
    fields = {
        "title": item.title,
        "url": item.url,
        "abstract": item.abstract,
        "section": item.section,
    }
    changed: dict[str, Any] = {
        name: value.replace("\x00", "") for name, value in fields.items() if value and "\x00" in value
    }
    if any("\x00" in author for author in item.authors):
        changed["authors"] = tuple(author.replace("\x00", "") for author in item.authors)
    if not item.source:
        changed["source"] = source_name
    return dataclasses.replace(item, **changed) if changed else item
