"""The outbox's types: what a planned row says, what the delivery stage reads back, and their frozen payload.

The payload is stored as JSON in `deliveries.payload`; `Payload.to_json`/`from_json` are its only writer and
reader, so a renamed field fails in mypy rather than at 07:00. `from_json` reads every payload any release has
written (a missing key takes its default).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from bot.models import Item, Notice, Reason, ScoredItem, SourceHealth


class State(StrEnum):
    """Where an outbox row is in its life (`bot.store.deliveries` draws the state machine)."""

    PENDING = "pending"
    CLAIMED = "claimed"
    SENDING = "sending"
    SENT = "sent"
    FAILED = "failed"
    UNKNOWN = "unknown"
    EXPIRED = "expired"
    CANCELLED = "cancelled"


class Outcome(StrEnum):
    """What one delivery attempt of this cycle came to (`bot.outbox.deliver.DeliveryOutcome`)."""

    SENT = "sent"
    SKIPPED = "skipped"  # a digest with nothing to say (and no `send_empty`): recorded as sent, not sent
    RETRY = "retry"  # back to pending, due later
    FAILED = "failed"
    UNKNOWN = "unknown"  # a Slack post in doubt
    EXPIRED = "expired"
    CANCELLED = "cancelled"  # its reader unsubscribed before it went out
    LOST = "lost"  # another process had taken the row over


class Kind(StrEnum):
    """What a row carries: a scheduled digest, an instant alert, or a notice to the bot's admin."""

    DIGEST = "digest"
    ALERT = "alert"
    NOTICE = "notice"


class Channel(StrEnum):
    """Where a row goes."""

    EMAIL = "email"
    SLACK = "slack"


@dataclass(frozen=True, slots=True)
class PayloadItem:
    """One paper of a digest or alert as frozen at planning: which item, for which profile, its score and why.
    The item itself stays in the items table."""

    id: str
    profile: str
    score: float
    reasons: tuple[Reason, ...] = ()
    alerted: bool = False  # already sent as an alert: the digest marks it instead of presenting it as news
    also: tuple[str, ...] = ()  # the reader's other profiles it matched

    @classmethod
    def of(cls, match: ScoredItem, *, alerted: bool = False) -> PayloadItem:
        return cls(id=match.item.id, profile=match.profile, score=round(match.score, 4), reasons=match.reasons,
                   alerted=alerted, also=match.also)

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"id": self.id, "profile": self.profile, "score": self.score,
                                "reasons": [r.to_json() for r in self.reasons], "alerted": self.alerted}
        if self.also:
            data["also"] = list(self.also)
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> PayloadItem:
        return cls(id=str(data["id"]), profile=str(data.get("profile") or ""), score=float(data.get("score") or 0),
                   reasons=tuple(Reason.from_json(r) for r in data.get("reasons", ())),
                   alerted=bool(data.get("alerted", False)), also=tuple(str(name) for name in data.get("also", ())))


def _health_to_json(health: SourceHealth) -> dict[str, Any]:
    return {"name": health.name, "consecutive_failures": health.consecutive_failures,
            "last_error": health.last_error,
            "last_success": health.last_success.isoformat() if health.last_success else None}


def _health_from_json(data: Mapping[str, Any]) -> SourceHealth:
    success = data.get("last_success")
    return SourceHealth(name=str(data["name"]), failing=True,
                        consecutive_failures=int(data.get("consecutive_failures") or 0),
                        last_error=data.get("last_error"),
                        last_success=datetime.fromisoformat(success) if success else None)


@dataclass(frozen=True, slots=True)
class Payload:
    """The frozen content of one outbox row, decided at planning and never recomputed at send time.

    A digest or alert has `items` (capped by `max_items`; `total_matched` counts them before the cap, for "N
    more"), the window it covers (`since`), the reader's profiles and the sources failing when it was planned;
    a notice has only `notice`.
    """

    items: tuple[PayloadItem, ...] = ()
    total_matched: int = 0
    since: datetime | None = None
    profiles: tuple[str, ...] = ()
    send_empty: bool = False
    failing_sources: tuple[SourceHealth, ...] = ()
    notice: Notice | None = None

    @property
    def item_ids(self) -> list[str]:
        return [entry.id for entry in self.items]

    def matches(self, items: Mapping[str, Item]) -> list[ScoredItem]:
        """The frozen matches as ScoredItems, with the items read now; an item deleted from the store since is
        skipped."""
        return [ScoredItem(item=items[e.id], profile=e.profile, score=e.score, reasons=e.reasons, also=e.also)
                for e in self.items if e.id in items]

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "items": [entry.to_json() for entry in self.items],
            "total_matched": self.total_matched,
            "since": self.since.isoformat() if self.since else None,
            "profiles": list(self.profiles),
            "send_empty": self.send_empty,
            "failing_sources": [_health_to_json(h) for h in self.failing_sources],
        }
        if self.notice is not None:
            data["notice"] = self.notice.to_json()
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | None) -> Payload:
        data = data or {}
        since, notice = data.get("since"), data.get("notice")
        return cls(items=tuple(PayloadItem.from_json(e) for e in data.get("items", ()) if "id" in e),
                   total_matched=int(data.get("total_matched") or 0),
                   since=datetime.fromisoformat(since) if since else None,
                   profiles=tuple(str(name) for name in data.get("profiles", ())),
                   send_empty=bool(data.get("send_empty", False)),
                   failing_sources=tuple(_health_from_json(f) for f in data.get("failing_sources", ())),
                   notice=Notice.from_json(notice) if notice else None)

    @classmethod
    def of(cls, matches: Iterable[ScoredItem], *, total: int, since: datetime | None, profiles: Sequence[str],
           alerted: Iterable[str] = (), send_empty: bool = False) -> Payload:
        shown = set(alerted)
        return cls(items=tuple(PayloadItem.of(m, alerted=m.item.id in shown) for m in matches), total_matched=total,
                   since=since, profiles=tuple(profiles), send_empty=send_empty)


@dataclass(frozen=True, slots=True)
class RatingLinks:
    """👍 / 👎 for one paper of one message: the signed token (Slack's buttons carry it) and the two web links."""

    token: str
    up: str
    down: str


@dataclass(frozen=True, slots=True)
class Digest:
    """Everything one message needs, decided at planning time and frozen in the outbox: what the renderer gets.

    `total_matched` counts matches before `max_items` capped them, so the message can say "N more".
    """

    recipient: str
    channel: Channel
    kind: Kind
    period_key: str
    items: tuple[ScoredItem, ...]
    generated_at: datetime
    total_matched: int = 0
    failing_sources: tuple[SourceHealth, ...] = ()
    since: datetime | None = None
    unsubscribe_url: str | None = None
    page_url: str | None = None  # the whole digest (every match) as a web page on the bot's endpoint, signed
    alerted: frozenset[str] = frozenset()  # ids of items already sent as alerts: marked, not news again
    ratings: Mapping[str, RatingLinks] = field(default_factory=dict)  # item id → its 👍 / 👎 (with public_url)
    rate_buttons: bool = False  # Slack: 👍 / 👎 as Block Kit buttons (interactivity configured), not links


@dataclass(frozen=True, slots=True)
class PlannedDelivery:
    """One outbox row as the planner decides it; `key` makes planning the same thing twice a no-op.

    `covers_until`: every item first seen up to this instant is covered by this digest (the next digest for
    the same recipient and channel starts after it). `message_id` is chosen now and reused on every retry.
    """

    key: str
    kind: Kind
    channel: Channel
    recipient: str
    address: str
    period_key: str
    payload: Payload
    message_id: str
    covers_until: datetime | None = None


@dataclass(frozen=True, slots=True)
class Delivery:
    """One outbox row as the delivery stage sees it."""

    id: int
    key: str
    kind: Kind
    channel: Channel
    recipient: str
    address: str
    period_key: str
    payload: Payload
    message_id: str
    state: State
    attempts: int
    created_at: datetime
    next_attempt_at: datetime
    last_error: str | None = None
    covers_until: datetime | None = None  # a digest covers the items first seen up to here (from its `since`)
    claimed_by: str | None = None  # the process holding it (`claimed`, `sending`)
    send_started_at: datetime | None = None  # wall clock when its last send began
    parts_sent: int = 0  # Slack parts already posted: a retry resumes after them


@dataclass(frozen=True, slots=True)
class DeliveryOutcome:
    """What happened to one outbox row in this cycle."""

    key: str
    recipient: str
    channel: Channel
    kind: Kind
    status: Outcome
    items: int = 0
    error: str | None = None
    stop_batch: bool = False
    retry_after: float | None = None  # what the destination asked for (a 429's Retry-After), when it did


def retry_delay(attempts: int, retry_after: float | None = None) -> timedelta:
    """Exponential backoff from one minute, capped at an hour; a server's Retry-After wins if longer."""
    delay = timedelta(minutes=min(60, 2 ** max(0, attempts - 1)))
    if retry_after:
        delay = max(delay, timedelta(seconds=retry_after))
    return delay
