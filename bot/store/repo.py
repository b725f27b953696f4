"""`Store`: the one object the rest of digestbot uses to reach the database.

Every method is one short transaction (BEGIN IMMEDIATE on SQLite when it writes) and takes the time it should
record as an argument: the store never reads the clock, so tests and `digestbot once --now` control time.
SQL for items, their embeddings and the outbox lives in `items.py`, `vectors.py` and `deliveries.py`; this module holds
sources, recipients, destinations, host holds, the bot's own state and unsubscribes, which are a few lines each.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import Any

from alembic.util import CommandError
from sqlalchemy import Engine, Row, case, select, update

from bot.errors import StoreError
from bot.models import Item, ItemVector, SourceHealth
from bot.outbox.model import Delivery, Kind, PlannedDelivery, State
from bot.store import deliveries as outbox
from bot.store import items as item_sql
from bot.store import vectors
from bot.store.bookkeeping import _clip
from bot.store.deliveries import RETRYABLE_STATES
from bot.store.engine import create_store_engine, dialect_insert, migrate
from bot.store.ratings import RatingBook
from bot.store.retention import Retention
from bot.store.schema import deliveries, sources


@dataclass(frozen=True, slots=True)
class SourceState:
    """What the store remembers about one source between fetches.

    `max_item_count` is the most items one fetch ever returned, so the fetch stage can call a sudden drop to zero
    a layout change. `not_before` is a hold (Retry-After, host back-off): no request to the source before then.
    """

    name: str
    etag: str | None = None
    last_modified: str | None = None
    last_fetch_at: datetime | None = None
    last_success_at: datetime | None = None
    last_error: str | None = None
    consecutive_failures: int = 0
    last_item_count: int | None = None
    max_item_count: int | None = None
    not_before: datetime | None = None
    next_due_at: datetime | None = None
    notified_streak: str | None = None  # the failure streak the admin was told of (`bot.outbox.notices`)

    @property
    def failing(self) -> bool:
        return self.consecutive_failures > 0


class Store(RatingBook, Retention):
    """The database behind digestbot: the item diff, source state, the outbox, what it knows of recipients and
    destinations, and unsubscribes."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    @classmethod
    def open(cls, url: str) -> Store:
        """Connect and migrate to head (safe when several processes open the same database at once)."""
        engine = create_store_engine(url)
        try:
            migrate(engine)
        except CommandError as exc:
            engine.dispose()
            raise StoreError(f"cannot migrate the database: {exc}",
                             hint="Was it created by a newer digestbot? Upgrade digestbot, or use another "
                                  "database.") from exc
        except BaseException:
            engine.dispose()
            raise
        return cls(engine)

    def close(self) -> None:
        self._engine.dispose()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    # -- sources -------------------------------------------------------------------------------------------

    def get_source_state(self, name: str) -> SourceState:
        """The stored state, or a blank one for a source never fetched."""
        with self._read() as connection:
            row = connection.execute(select(sources).where(sources.c.name == name)).first()
        return _source_state(row) if row is not None else SourceState(name=name)

    def source_states(self) -> list[SourceState]:
        with self._read() as connection:
            return [_source_state(row) for row in connection.execute(select(sources).order_by(sources.c.name))]

    def source_health(self, names: Iterable[str]) -> list[SourceHealth]:
        """Health of the named sources, in the order given; a source never fetched is not failing."""
        states = {state.name: state for state in self.source_states()}
        return [_health(states.get(name) or SourceState(name=name)) for name in names]

    def record_fetch_ok(self, name: str, *, at: datetime, etag: str | None, last_modified: str | None,
                        item_count: int | None, not_modified: bool = False, next_due_at: datetime | None) -> None:
        """A successful fetch resets the failure count and clears the hold.

        On "not modified" the validators are kept unless new ones are given and item counts are untouched;
        otherwise the validators are replaced as received (a server that stopped sending an ETag loses it).
        """
        values: dict[str, Any] = {"last_fetch_at": at, "last_success_at": at, "last_error": None,
                                  "consecutive_failures": 0, "not_before": None, "next_due_at": next_due_at}
        if not_modified:
            values.update({k: v for k, v in (("etag", etag), ("last_modified", last_modified)) if v is not None})
            self._upsert_source(name, values, values)
            return
        values.update(etag=etag, last_modified=last_modified, last_item_count=item_count)
        highest = case(
            (sources.c.max_item_count.is_(None), item_count),
            (sources.c.max_item_count < item_count, item_count),
            else_=sources.c.max_item_count,
        )
        self._upsert_source(name, {**values, "max_item_count": item_count}, {**values, "max_item_count": highest})

    def record_fetch_error(self, name: str, *, at: datetime, error: str, next_due_at: datetime | None,
                           not_before: datetime | None = None) -> None:
        """Count one more consecutive failure; validators and item counts are left as they were."""
        values: dict[str, Any] = {"last_fetch_at": at, "last_error": _clip(error), "next_due_at": next_due_at,
                                  "not_before": not_before}
        self._upsert_source(name, {**values, "consecutive_failures": 1},
                            {**values, "consecutive_failures": sources.c.consecutive_failures + 1})

    def record_fetch_held(self, name: str, *, not_before: datetime, next_due_at: datetime | None) -> None:
        """Not fetched because its host asked us to wait (another source's Retry-After): a hold, not a failure;
        the failure count, error and validators stay as they were."""
        values: dict[str, Any] = {"not_before": not_before, "next_due_at": next_due_at}
        self._upsert_source(name, values, values)

    def _upsert_source(self, name: str, insert: dict[str, Any], update: dict[str, Any]) -> None:
        with self._write() as connection:
            statement = dialect_insert(connection, sources).values(name=name, **insert)
            connection.execute(statement.on_conflict_do_update(index_elements=["name"], set_=update))

    # -- items ---------------------------------------------------------------------------------------------

    def save_items(self, source_name: str, items: Sequence[Item], *, seen_at: datetime) -> list[Item]:
        """Upsert by canonical id in one transaction; return only items no source had delivered before.

        Known items are refreshed (metrics merged, empty abstract/authors/section/published filled) and not
        returned. NUL characters are dropped from text fields (PostgreSQL cannot store them) and an empty
        `Item.source` becomes `source_name`; the returned items are these cleaned ones. Repeated ids within one
        batch: the first wins.
        """
        with self._write() as connection:
            return item_sql.save_items(connection, source_name, items, seen_at)

    def get_items(self, ids: Sequence[str]) -> dict[str, Item]:
        """Stored items by id (missing ids are absent); `Item.source` is the source that first had it."""
        with self._read() as connection:
            return item_sql.get_items(connection, ids)

    def items_first_seen_between(self, start: datetime | None, end: datetime) -> list[Item]:
        """Items with start < first_seen_at <= end (no lower bound if start is None), oldest first."""
        with self._read() as connection:
            return item_sql.items_first_seen_between(connection, start, end)

    def item_count(self) -> int:
        with self._read() as connection:
            return item_sql.item_count(connection)

    # -- item embeddings (`bot.scoring.semantic`) ---------------------------------------------------------

    def get_vectors(self, ids: Sequence[str], *, model: str) -> dict[str, ItemVector]:
        """The stored vectors of these items computed by `model`, in one query per 200 ids; missing ids are
        absent. The caller compares `text_hash` with the item's current text."""
        with self._read() as connection:
            return vectors.get_vectors(connection, ids, model)

    def save_vectors(self, item_vectors: Sequence[ItemVector], *, model: str) -> int:
        """Upsert these vectors (replacing another model's or an older text's) in one transaction; vectors of
        items the store does not hold are skipped. Returns how many were written."""
        if not item_vectors:
            return 0
        with self._write() as connection:
            return vectors.save_vectors(connection, model, item_vectors)

    def vector_count(self, model: str | None = None) -> int:
        with self._read() as connection:
            return vectors.vector_count(connection, model)

    # -- outbox --------------------------------------------------------------------------------------------

    def plan(self, deliveries: Sequence[PlannedDelivery], *, now: datetime,
             notified: Mapping[str, str | None] | None = None) -> list[str]:
        """Insert all planned deliveries in one transaction; return the keys that did not exist yet.

        `notified` ({source: failure streak told, or None}) is recorded in the same transaction: a marker saying
        "the admin was told" is then never saved without the notice it stands for (a crash between the two would
        lose it for good)."""
        with self._write() as connection:
            inserted = outbox.plan(connection, deliveries, now)
            for name, streak in (notified or {}).items():
                connection.execute(update(sources).where(sources.c.name == name).values(notified_streak=streak))
            return inserted

    def last_covered(self, recipient: str, channel: str, kind: Kind = Kind.DIGEST) -> datetime | None:
        """The latest `covers_until` planned for this recipient and channel: where the next digest starts."""
        with self._read() as connection:
            return outbox.last_covered(connection, recipient, channel, kind)

    def last_covered_all(self, kind: Kind = Kind.DIGEST) -> dict[tuple[str, str], datetime]:
        """{(recipient, channel): last covers_until} for every recipient with a delivery of `kind`."""
        with self._read() as connection:
            return outbox.last_covered_all(connection, kind)

    def existing_keys(self, keys: Sequence[str]) -> set[str]:
        """Which of `keys` already have an outbox row (one query per 500 keys)."""
        with self._read() as connection:
            return outbox.existing_keys(connection, keys)

    def has_delivery(self, key: str) -> bool:
        with self._read() as connection:
            return outbox.has_delivery(connection, key)

    def claim(self, *, now: datetime, limit: int, lease: timedelta, owner: str,
              gone: Collection[str] = ()) -> list[Delivery]:
        """Atomically move up to `limit` due rows to `claimed` for `owner`, with a lease (`outbox.claim`); rows of
        the processes in `gone` are due whatever their lease says."""
        with self._write() as connection:
            return outbox.claim(connection, now, limit, lease, owner, gone)

    def begin_send(self, delivery_id: int, *, owner: str, now: datetime, lease: timedelta) -> bool:
        """`claimed` → `sending` (an attempt): False if `owner` no longer holds the row (then do not send it)."""
        with self._write() as connection:
            return outbox.begin_send(connection, delivery_id, owner, now=now, lease=lease, wall=datetime.now(UTC))

    def begin_send_after(self, delivery_id: int, *, sent: Collection[int], sent_at: datetime, owner: str,
                         now: datetime, lease: timedelta) -> tuple[bool, set[int]]:
        """`begin_send`, recording in the same transaction the rows `sent` since the last write as sent at
        `sent_at` (a group commit: a morning's emails cost one write each, not two); also which it recorded."""
        with self._write() as connection:
            recorded = outbox.mark_sent_many(connection, sent, owner, sent_at)
            began = outbox.begin_send(connection, delivery_id, owner, now=now, lease=lease, wall=datetime.now(UTC))
            return began, recorded

    def mark_sent_many(self, ids: Collection[int], *, owner: str, at: datetime) -> set[int]:
        """`mark_sent` for many rows in one transaction; the ids it applied to."""
        with self._write() as connection:
            return outbox.mark_sent_many(connection, ids, owner, at)

    def renew(self, *, owner: str, until: datetime) -> int:
        """Extend the lease of every row `owner` holds to `until`; how many it holds."""
        with self._write() as connection:
            return outbox.renew(connection, owner, until)

    def release(self, *, owner: str, now: datetime, ids: Collection[int] | None = None,
                next_attempt_at: datetime | None = None) -> int:
        """Give back the `claimed` rows of `owner` (all, or `ids`) that it did not start; how many."""
        with self._write() as connection:
            return outbox.release(connection, owner, now, ids, next_attempt_at)

    def set_parts_sent(self, delivery_id: int, parts: int) -> None:
        """How many parts of a Slack digest are posted: a retry resumes after them (Slack has no idempotency key)."""
        with self._write() as connection:
            connection.execute(update(deliveries).where(deliveries.c.id == delivery_id).values(parts_sent=parts))

    def holders(self) -> list[str]:
        """The processes holding outbox rows now."""
        with self._read() as connection:
            return outbox.holders(connection)

    def mark_sent(self, delivery_id: int, *, owner: str, at: datetime) -> bool:
        """Record a send (or a skip: nothing to say). Like every mark_*, applies only to a row `owner` still holds
        (`claimed` or `sending`) and says whether it did."""
        return self._transition(delivery_id, owner, state=State.SENT, sent_at=at, updated_at=at)

    def mark_retry(self, delivery_id: int, *, owner: str, error: str, next_attempt_at: datetime) -> bool:
        """Back to pending, due again at `next_attempt_at`."""
        return self._transition(delivery_id, owner, state=State.PENDING, last_error=_clip(error),
                                next_attempt_at=next_attempt_at)

    def mark_failed(self, delivery_id: int, *, owner: str, error: str, at: datetime) -> bool:
        """Permanent failure: not retried unless someone requeues it."""
        return self._transition(delivery_id, owner, state=State.FAILED, last_error=_clip(error), updated_at=at)

    def mark_unknown(self, delivery_id: int, *, owner: str, error: str, at: datetime) -> bool:
        """The send may or may not have happened (connection lost after the data went out): no blind retry."""
        return self._transition(delivery_id, owner, state=State.UNKNOWN, last_error=_clip(error), updated_at=at)

    def mark_expired(self, delivery_id: int, *, owner: str, at: datetime, error: str = "expired") -> bool:
        """Too old to be worth sending (catch-up policy)."""
        return self._transition(delivery_id, owner, state=State.EXPIRED, last_error=_clip(error), updated_at=at)

    def mark_cancelled(self, delivery_id: int, *, owner: str, at: datetime, error: str) -> bool:
        """Not sent, and never to be: its reader unsubscribed before it went out."""
        return self._transition(delivery_id, owner, state=State.CANCELLED, last_error=_clip(error), updated_at=at)

    def requeue(self, delivery_id: int, *, now: datetime) -> bool:
        """A person's "try again": failed/unknown/expired back to pending, due now, attempts counted afresh."""
        current = self.get_delivery(delivery_id)
        note = _clip(f"requeued by hand; before: {current.last_error if current is not None else None}")
        with self._write() as connection:
            return outbox.transition(connection, delivery_id, RETRYABLE_STATES, state=State.PENDING,
                                     next_attempt_at=now, attempts=0, updated_at=now, last_error=note)

    def _transition(self, delivery_id: int, owner: str, **values: Any) -> bool:
        with self._write() as connection:
            return outbox.transition(connection, delivery_id, outbox.HELD_STATES, owner, **values)

    def deliveries(self, states: Collection[State] | None = None, limit: int = 100) -> list[Delivery]:
        """Outbox rows, newest first, optionally only in the given states."""
        with self._read() as connection:
            return outbox.list_deliveries(connection, states, limit)

    def delivery_counts(self) -> dict[State, int]:
        """Outbox rows per state, for `digestbot status`."""
        with self._read() as connection:
            return outbox.state_counts(connection)

    def delivery_by_key(self, key: str) -> Delivery | None:
        with self._read() as connection:
            return outbox.delivery_by_key(connection, key)

    def get_delivery(self, delivery_id: int) -> Delivery | None:
        with self._read() as connection:
            return outbox.get_delivery(connection, delivery_id)

    def alerted_item_ids(self, recipient: str, channel: str) -> set[str]:
        """Ids of the items of alert rows for this recipient and channel that were not failed/expired."""
        with self._read() as connection:
            return outbox.alerted_item_ids(connection, recipient, channel)


def _source_state(row: Row[Any]) -> SourceState:
    return SourceState(
        name=row.name,
        etag=row.etag,
        last_modified=row.last_modified,
        last_fetch_at=row.last_fetch_at,
        last_success_at=row.last_success_at,
        last_error=row.last_error,
        consecutive_failures=row.consecutive_failures,
        last_item_count=row.last_item_count,
        max_item_count=row.max_item_count,
        not_before=row.not_before,
        next_due_at=row.next_due_at,
        notified_streak=row.notified_streak,
    )


def _health(state: SourceState) -> SourceHealth:
    return SourceHealth(name=state.name, failing=state.failing, consecutive_failures=state.consecutive_failures,
                        last_error=state.last_error, last_success=state.last_success_at)
