"""The outbox: planned deliveries, keyed for exactly-once, claimed by one process with a lease, then recorded.

States::

    pending ──claim──► claimed ──begin_send──► sending ──mark_sent──► sent
       ▲  ▲              │  (not sent yet)          ├──mark_failed──► failed ──┐
       │  └──release─────┤                          ├──mark_unknown─► unknown ─┼─requeue─► pending
       │                 └──mark_* (expired, failed,├──mark_expired─► expired ─┘
       └───mark_retry────────────────────────────────┘    cancelled (unsubscribed before it went out)

Only a `sending` row can be ambiguous: its send had started. A `claimed` row whose holder is gone (its lease ran
out, or `claim` was told the holder died) is simply taken again; a `sending` one is taken with `LEASE_LAPSED` as
its last error, and the deliverer decides (email: send again with the same Message-ID; Slack: look for the post).
Every change of a held row names its holder (`claimed_by`) and applies only if that process still holds it: a
process whose lease lapsed cannot record an outcome over the one that took the row over. Holders renew their
lease while their batch is alive (`renew`) and give back what they did not start when they stop (`release`).

The payload is a `bot.outbox.model.Payload`, stored as its JSON; `alerted_item_ids` reads the item ids of alert
rows from it.

Functions here take a Connection already inside a transaction; `Store` owns the transactions.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Row, and_, case, func, or_, select, update

from bot.outbox.model import Channel, Delivery, Kind, Payload, PlannedDelivery, State
from bot.store.engine import chunks, dialect_insert
from bot.store.schema import deliveries

RETRYABLE_STATES = (State.FAILED, State.UNKNOWN, State.EXPIRED)
# An alert that never went out did not alert anyone, so the digest should not say it did.
UNDELIVERED_STATES = (State.FAILED, State.EXPIRED)


def plan(connection: Connection, planned: Sequence[PlannedDelivery], now: datetime) -> list[str]:
    """Insert all, skipping keys that exist; return the keys inserted now, in input order."""
    first: dict[str, PlannedDelivery] = {}
    for p in planned:
        first.setdefault(p.key, p)
    unique = list(first.values())
    inserted: set[str] = set()
    for part in chunks(unique):
        rows = [_row(p, now) for p in part]
        statement = dialect_insert(connection, deliveries).values(rows).on_conflict_do_nothing(index_elements=["key"])
        inserted.update(connection.execute(statement.returning(deliveries.c.key)).scalars())
    return [p.key for p in unique if p.key in inserted]


# Set on a row taken over from a process that died mid-send: whether that send went out is unknown.
LEASE_LAPSED = "lease lapsed: the process sending this stopped before recording the outcome"


HELD_STATES = (State.CLAIMED, State.SENDING)


def claim(connection: Connection, now: datetime, limit: int, lease: timedelta, owner: str,
          gone: Collection[str] = ()) -> list[Delivery]:
    """Take up to `limit` due rows for `owner`: pending and due, or held by a process whose lease ran out or that
    is `gone`. SKIP LOCKED lets processes share work. A taken-over `sending` row is marked `LEASE_LAPSED`."""
    lapsed = or_(deliveries.c.lease_until < now, deliveries.c.claimed_by.in_(list(gone))) if gone else (
        deliveries.c.lease_until < now)
    due = or_(
        and_(deliveries.c.state == State.PENDING, deliveries.c.next_attempt_at <= now),
        and_(deliveries.c.state.in_(HELD_STATES), lapsed),
    )
    ids = (
        select(deliveries.c.id)
        .where(due)
        .order_by(deliveries.c.next_attempt_at, deliveries.c.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
        .scalar_subquery()
    )
    statement = (
        update(deliveries)
        .where(deliveries.c.id.in_(ids))
        .values(state=State.CLAIMED, claimed_by=owner, lease_until=now + lease, updated_at=now,
                last_error=case((deliveries.c.state == State.SENDING, LEASE_LAPSED), else_=deliveries.c.last_error))
        .returning(*deliveries.c)
    )
    claimed = [_delivery(row) for row in connection.execute(statement)]
    return sorted(claimed, key=lambda d: (d.next_attempt_at, d.id))


def begin_send(connection: Connection, delivery_id: int, owner: str, *, now: datetime, lease: timedelta,
               wall: datetime) -> bool:
    """`claimed` → `sending` for its holder, counted as an attempt: from here on a crash leaves it ambiguous."""
    statement = (
        update(deliveries)
        .where(deliveries.c.id == delivery_id, deliveries.c.state == State.CLAIMED, deliveries.c.claimed_by == owner)
        .values(state=State.SENDING, attempts=deliveries.c.attempts + 1, lease_until=now + lease, send_started_at=wall,
                updated_at=now)
    )
    return connection.execute(statement).rowcount == 1


def renew(connection: Connection, owner: str, until: datetime) -> int:
    """Extend the lease of every row `owner` holds; how many it renewed. Rows locked at that moment are skipped
    (on PostgreSQL): they are the holder's own sends being recorded, which set their lease themselves, and
    waiting for them while holding the others' locks is how two of its own transactions deadlock (a send
    recording the previous one's "sent" locks two rows)."""
    held = (select(deliveries.c.id)
            .where(deliveries.c.claimed_by == owner, deliveries.c.state.in_(HELD_STATES))
            .order_by(deliveries.c.id)
            .with_for_update(skip_locked=True)
            .scalar_subquery())
    statement = update(deliveries).where(deliveries.c.id.in_(held)).values(lease_until=until)
    return int(connection.execute(statement).rowcount)


def release(connection: Connection, owner: str, now: datetime, ids: Collection[int] | None = None,
            next_attempt_at: datetime | None = None) -> int:
    """Give back `claimed` rows of `owner` (all, or `ids`) not started: pending again, no attempt counted."""
    condition = [deliveries.c.claimed_by == owner, deliveries.c.state == State.CLAIMED]
    if ids is not None:
        condition.append(deliveries.c.id.in_(list(ids)))
    values: dict[str, Any] = {"state": State.PENDING, "claimed_by": None, "lease_until": None, "updated_at": now}
    if next_attempt_at is not None:
        values["next_attempt_at"] = next_attempt_at
    return int(connection.execute(update(deliveries).where(*condition).values(**values)).rowcount)


def holders(connection: Connection) -> list[str]:
    """Every process holding a row now (for `bot.store.owner.owner_gone`)."""
    query = (select(deliveries.c.claimed_by).distinct()
             .where(deliveries.c.state.in_(HELD_STATES), deliveries.c.claimed_by.is_not(None)))
    return [str(owner) for owner in connection.execute(query).scalars()]


def transition(connection: Connection, delivery_id: int, from_states: Collection[State], owner: str | None = None,
               **values: Any) -> bool:
    """Move one row to a new state if it is in one of `from_states` (and, with `owner`, held by it); False if not.
    Leaving a held state drops the holder and the lease."""
    condition = [deliveries.c.id == delivery_id, deliveries.c.state.in_(list(from_states))]
    if owner is not None:
        condition.append(deliveries.c.claimed_by == owner)
    if values.get("state") not in HELD_STATES:
        values = {"claimed_by": None, "lease_until": None, **values}
    return connection.execute(update(deliveries).where(*condition).values(**values)).rowcount == 1


def mark_sent_many(connection: Connection, ids: Collection[int], owner: str, at: datetime) -> set[int]:
    """`transition` to sent for many rows of `owner` at once; the ids it applied to."""
    if not ids:
        return set()
    statement = (update(deliveries)
                 .where(deliveries.c.id.in_(list(ids)), deliveries.c.state.in_(list(HELD_STATES)),
                        deliveries.c.claimed_by == owner)
                 .values(state=State.SENT, sent_at=at, updated_at=at, claimed_by=None, lease_until=None)
                 .returning(deliveries.c.id))
    return {int(i) for i in connection.execute(statement).scalars()}


def last_covered(connection: Connection, recipient: str, channel: str, kind: Kind) -> datetime | None:
    query = select(func.max(deliveries.c.covers_until)).where(
        deliveries.c.recipient == recipient, deliveries.c.channel == channel, deliveries.c.kind == kind
    )
    value: datetime | None = connection.execute(query).scalar_one_or_none()
    return value


def last_covered_all(connection: Connection, kind: Kind) -> dict[tuple[str, str], datetime]:
    """`last_covered` for every (recipient, channel) at once: one query per planning pass, not one per recipient."""
    query = (select(deliveries.c.recipient, deliveries.c.channel, func.max(deliveries.c.covers_until))
             .where(deliveries.c.kind == kind).group_by(deliveries.c.recipient, deliveries.c.channel))
    return {(str(r), str(c)): at for r, c, at in connection.execute(query) if at is not None}


def existing_keys(connection: Connection, keys: Sequence[str]) -> set[str]:
    found: set[str] = set()
    for chunk in chunks(list(keys)):
        found.update(connection.execute(select(deliveries.c.key).where(deliveries.c.key.in_(chunk))).scalars())
    return found


def has_delivery(connection: Connection, key: str) -> bool:
    return connection.execute(select(deliveries.c.id).where(deliveries.c.key == key)).first() is not None


def list_deliveries(connection: Connection, states: Collection[State] | None, limit: int) -> list[Delivery]:
    query = select(deliveries).order_by(deliveries.c.id.desc()).limit(limit)
    if states is not None:
        query = query.where(deliveries.c.state.in_(list(states)))
    return [_delivery(row) for row in connection.execute(query)]


def state_counts(connection: Connection) -> dict[State, int]:
    query = select(deliveries.c.state, func.count()).group_by(deliveries.c.state)
    return {State(state): int(count) for state, count in connection.execute(query)}


def delivery_by_key(connection: Connection, key: str) -> Delivery | None:
    row = connection.execute(select(deliveries).where(deliveries.c.key == key)).first()
    return _delivery(row) if row is not None else None


def get_delivery(connection: Connection, delivery_id: int) -> Delivery | None:
    row = connection.execute(select(deliveries).where(deliveries.c.id == delivery_id)).first()
    return _delivery(row) if row is not None else None


def alerted_item_ids(connection: Connection, recipient: str, channel: str) -> set[str]:
    query = select(deliveries.c.payload).where(
        deliveries.c.kind == Kind.ALERT,
        deliveries.c.recipient == recipient,
        deliveries.c.channel == channel,
        deliveries.c.state.not_in(UNDELIVERED_STATES),
    )
    found: set[str] = set()
    for payload in connection.execute(query).scalars():
        found.update(Payload.from_json(payload).item_ids)
    return found


def _row(planned: PlannedDelivery, now: datetime) -> dict[str, Any]:
    return {
        "key": planned.key,
        "kind": planned.kind,
        "channel": planned.channel,
        "recipient": planned.recipient,
        "address": planned.address,
        "period_key": planned.period_key,
        "payload": planned.payload.to_json(),
        "message_id": planned.message_id,
        "state": State.PENDING,
        "attempts": 0,
        "next_attempt_at": now,
        "covers_until": planned.covers_until,
        "created_at": now,
        "updated_at": now,
    }


def _delivery(row: Row[Any]) -> Delivery:
    return Delivery(
        id=row.id,
        key=row.key,
        kind=Kind(row.kind),
        channel=Channel(row.channel),
        recipient=row.recipient,
        address=row.address,
        period_key=row.period_key,
        payload=Payload.from_json(row.payload),
        message_id=row.message_id,
        state=State(row.state),
        attempts=row.attempts,
        created_at=row.created_at,
        next_attempt_at=row.next_attempt_at,
        last_error=row.last_error,
        covers_until=row.covers_until,
        claimed_by=row.claimed_by,
        send_started_at=row.send_started_at,
        parts_sent=row.parts_sent,
    )
