"""Item embeddings: read the vectors of many items in one query, save many in one statement per chunk.

Functions here take a Connection already inside a transaction; `Store` owns the transactions. Vectors are opaque
bytes here (the store needs no NumPy); `bot.scoring.semantic` turns them into arrays.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Connection, func, select

from bot.models import ItemVector
from bot.store.engine import chunks, dialect_insert
from bot.store.schema import item_embeddings, items


def get_vectors(connection: Connection, ids: Sequence[str], model: str) -> dict[str, ItemVector]:
    """The stored vectors of `ids` computed by `model` (other models' vectors count as missing)."""
    found: dict[str, ItemVector] = {}
    table = item_embeddings.c
    for part in chunks(list(dict.fromkeys(ids))):
        query = select(table.item_id, table.text_hash, table.vector).where(table.item_id.in_(part),
                                                                           table.model == model)
        for row in connection.execute(query):
            found[row.item_id] = ItemVector(row.item_id, bytes(row.text_hash), bytes(row.vector))
    return found


def save_vectors(connection: Connection, model: str, vectors: Sequence[ItemVector]) -> int:
    """Upsert vectors of stored items (an item the store does not hold is skipped: the rows are keyed to items);
    return how many were written.

    Rows are written in id order, as `items.save_items` locks items, so that on PostgreSQL the foreign-key
    checks here and a concurrent save of the same items take their locks in the same order and cannot deadlock.
    """
    latest = {vector.item_id: vector for vector in vectors}  # the last one wins, as it would one by one
    written = 0
    for part in chunks(sorted(latest)):
        stored = set(connection.execute(select(items.c.id).where(items.c.id.in_(part))).scalars())
        rows = [{"item_id": item_id, "model": model, "text_hash": latest[item_id].text_hash,
                 "vector": latest[item_id].vector} for item_id in part if item_id in stored]
        if not rows:
            continue
        statement = dialect_insert(connection, item_embeddings).values(rows)
        excluded = statement.excluded
        connection.execute(statement.on_conflict_do_update(
            index_elements=["item_id"],
            set_={"model": excluded.model, "text_hash": excluded.text_hash, "vector": excluded.vector}))
        written += len(rows)
    return written


def vector_count(connection: Connection, model: str | None = None) -> int:
    """How many items have a stored vector (by `model`, if given)."""
    query = select(func.count()).select_from(item_embeddings)
    if model is not None:
        query = query.where(item_embeddings.c.model == model)
    return int(connection.execute(query).scalar_one())
