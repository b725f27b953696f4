"""Planning: which digests, alerts and notices are owed now, written to the outbox with unique keys.

One planning pass reads what the store knows about every recipient in a handful of queries (last digests,
existing keys, first meetings, disabled destinations) and scores each stored item once, so its cost grows with
recipients and items, not with recipients × queries or recipients × profiles.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime

from bot.config import Config
from bot.models import Item
from bot.outbox.keys import Recipient, alert_key, digest_key, new_message_id, recipient_identity
from bot.outbox.matches import Matches
from bot.outbox.model import Kind, Payload, PlannedDelivery
from bot.outbox.notices import plan_notices
from bot.outbox.tastes import Tastes, libraries
from bot.scoring import Matcher
from bot.store import Store
from bot.store.ratings import StoredRating

log = logging.getLogger(__name__)


@dataclass(slots=True)
class PlanResult:
    """Keys of the outbox rows this cycle created (rows that already existed are not counted)."""

    planned: list[str] = field(default_factory=list)
    matched: dict[str, int] = field(default_factory=dict)


class Planner:
    """One planning pass. What the store knows about every recipient is read up front in a few queries."""

    def __init__(self, config: Config, store: Store, matcher: Matcher, now: datetime,
                 ratings: Mapping[tuple[str, str], Sequence[StoredRating]] | None = None,
                 library: Mapping[tuple[str, str], Mapping[str, Sequence[Item]]] | None = None) -> None:
        self.config = config
        self.store = store
        self.now = now
        self.matches = Matches(matcher, store, now)
        self.tastes = Tastes(self.matches, store, ratings or {}, library)
        self.floor = now - config.bot.max_age_delta
        self.covered = {kind: store.last_covered_all(kind) for kind in (Kind.DIGEST, Kind.ALERT)}
        self.met = store.first_met()
        self.newly_met: dict[tuple[str, str], datetime] = {}
        self.existing: set[str] = set()

    def _since(self, kind: Kind, name: str, channel: str) -> datetime:
        last = self.covered[kind].get((name, channel))
        return max(last, self.floor) if last else self.floor

    def due_key(self, recipient: Recipient) -> tuple[str, str, datetime] | None:
        """(outbox key, period key, due instant) of the latest period the schedule has reached, if any."""
        due = recipient.parsed_schedule.latest_due(self.now, recipient.zone)
        if due is None:
            return None
        name, channel, _address = recipient_identity(recipient)
        return digest_key(channel, name, due[0]), due[0], due[1]

    def first_met(self, channel: str, name: str) -> datetime:
        """When the planner first met this recipient (recorded now if never)."""
        key = (channel, name)
        if key not in self.met:
            self.met[key] = self.newly_met[key] = self.now
        return self.met[key]

    def digest(self, recipient: Recipient, due: tuple[str, str, datetime] | None) -> PlannedDelivery | None:
        """The digest this recipient is owed now, if any: the latest scheduled period, once per period.

        A digest covers everything first seen since the previous digest's cut-off (never older than
        `bot.max_age`), so after downtime one digest covers the whole gap, and nothing falls between two digests
        or appears in two. A recipient the planner has never met gets its first digest at its first scheduled
        time after that meeting, not at once (a subscriber added at 06:59 for "daily 07:00" gets one digest at
        07:00, not two).
        """
        if due is None or due[0] in self.existing:
            return None
        key, period_key, due_at = due
        name, channel, address = recipient_identity(recipient)
        if (name, channel) not in self.covered[Kind.DIGEST] and due_at < self.first_met(channel, name):
            return None
        since = self._since(Kind.DIGEST, name, channel)
        if self.tastes.has(channel, name):  # a reader who rated papers: their profiles' rankings, moved by that
            found, total = self.tastes.best(channel, name, since, recipient.profiles, limit=recipient.max_items)
        else:
            found, total = self.matches.best(since, recipient.profiles, limit=recipient.max_items)
        alerted = self.store.alerted_item_ids(name, channel) if recipient.alert_min_score else set()
        payload = Payload.of(found, total=total, alerted=alerted, since=since, profiles=recipient.profiles,
                             send_empty=recipient.send_empty)
        return PlannedDelivery(key=key, kind=Kind.DIGEST, channel=channel, recipient=name, address=address,
                               period_key=period_key, payload=payload, message_id=new_message_id(self.config),
                               covers_until=self.now)

    def alert(self, recipient: Recipient) -> PlannedDelivery | None:
        """One alert message per cycle for the items at or above `alert_min_score` not alerted before."""
        if recipient.alert_min_score is None:
            return None
        name, channel, address = recipient_identity(recipient)
        already = self.store.alerted_item_ids(name, channel)
        since = self._since(Kind.ALERT, name, channel)
        if self.tastes.has(channel, name):
            hits, total = self.tastes.best(channel, name, since, recipient.profiles,
                                           at_least=recipient.alert_min_score, skip=already)
        else:
            hits, total = self.matches.best(since, recipient.profiles, at_least=recipient.alert_min_score,
                                            skip=already)
        if not hits:
            return None
        payload = Payload.of(hits, total=total, since=since, profiles=recipient.profiles)
        key = alert_key(channel, name, (m.item.id for m in hits))
        return PlannedDelivery(key=key, kind=Kind.ALERT, channel=channel, recipient=name, address=address,
                               period_key=self.now.strftime("%Y-%m-%dT%H:%M"), payload=payload,
                               message_id=new_message_id(self.config), covers_until=self.now)

    def prefetch(self, recipients: Sequence[Recipient], dues: Sequence[tuple[str, str, datetime] | None]) -> None:
        """Explain the papers of every digest owed now in one pass (`Matches.prefetch`), before they are planned
        one by one."""
        owed, alerts = [], []
        for recipient, due in zip(recipients, dues, strict=True):
            name, channel, _address = recipient_identity(recipient)
            if due is not None and due[0] not in self.existing and not self.tastes.has(channel, name):
                owed.append((self._since(Kind.DIGEST, name, channel), recipient.profiles, recipient.max_items))
            if recipient.alert_min_score is not None:
                alerts.append(self._since(Kind.ALERT, name, channel))
        self.matches.prefetch(owed, also=alerts)

    def finish(self) -> None:
        """Record the recipients met for the first time in this pass (one transaction)."""
        self.store.record_first_met(self.newly_met)


def plan_deliveries(config: Config, store: Store, matcher: Matcher, *, now: datetime) -> PlanResult:
    """Decide every alert, then every digest, then every admin notice owed now, and write them to the outbox.

    Alerts go first (one transaction), so a digest planned in the same cycle already knows which of its items
    were alerted and marks them instead of repeating them as news.
    """
    unsubscribed = store.unsubscribed()  # a reader's decision: undone only by the reader or `digestbot resubscribe`
    disabled = store.disabled_destinations()
    everyone: list[Recipient] = [*config.subscribers, *config.slack_channels]
    recipients = [r for r in everyone if recipient_identity(r)[2].lower() not in unsubscribed
                  and recipient_identity(r)[1:] not in disabled]
    failing = tuple(h for h in store.source_health([s.name for s in config.sources if s.enabled]) if h.failing)
    identities = [recipient_identity(r)[1::-1] for r in everyone]  # (channel, name)
    for (channel, name), count in store.forget_ratings_except(identities).items():
        log.warning("forgot %d ratings of %s recipient %r: it is no longer in the config", count, channel, name)
    ratings = store.ratings_for([recipient_identity(r)[1::-1] for r in recipients])
    planner = Planner(config, store, matcher, now, ratings, libraries(config, store))
    dues = [planner.due_key(r) for r in recipients]
    planner.existing = store.existing_keys([due[0] for due in dues if due is not None])
    result = PlanResult()
    planner.prefetch(recipients, dues)
    for kind in (Kind.ALERT, Kind.DIGEST):
        batch: list[PlannedDelivery] = []
        for recipient, due in zip(recipients, dues, strict=True):
            delivery = planner.alert(recipient) if kind == Kind.ALERT else planner.digest(recipient, due)
            if delivery is not None:
                batch.append(replace(delivery, payload=replace(delivery.payload, failing_sources=failing)))
                result.matched[f"{delivery.kind}:{delivery.recipient}"] = delivery.payload.total_matched
        result.planned.extend(store.plan(batch, now=now))
    planner.finish()
    notices, told = plan_notices(config, store, now=now, new_message_id=lambda: new_message_id(config))
    result.planned.extend(store.plan(notices, now=now, notified=told))
    return result
