"""Planning: which digests, alerts and notices are owed now, written to the outbox with unique keys.

One planning pass reads what the store knows about every recipient in a handful of queries (last digests,
existing keys, first meetings, disabled destinations) and scores each stored item once, so its cost grows with
recipients and items, not with recipients × queries or recipients × profiles.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from email.utils import make_msgid
from typing import Any, cast

import numpy as np
from numpy.typing import NDArray

from bot.config import Config, SlackChannelConfig, SubscriberConfig
from bot.models import Item, ScoredItem
from bot.notices import plan_notices
from bot.outbox.model import Channel, Kind, Payload, PlannedDelivery
from bot.scoring import Matcher
from bot.scoring.batch import NO_PAIRS, QUANTUM, Pairs
from bot.store import Store

log = logging.getLogger(__name__)


Recipient = SubscriberConfig | SlackChannelConfig
# every scored pair grouped by profile: positions, profile ids, quanta, meaning quanta, and each profile's start
_PickKey = tuple[datetime, tuple[str, ...], int | None]  # `_pick_key`
_Picked = tuple[NDArray[np.int64], int, dict[int, tuple[int, ...]]]  # `Matches._pick`
_Grouped = tuple[NDArray[np.int32], NDArray[np.int32], NDArray[np.float64], NDArray[np.float64], NDArray[np.int64]]


@dataclass(slots=True)
class PlanResult:
    """Keys of the outbox rows this cycle created (rows that already existed are not counted)."""

    planned: list[str] = field(default_factory=list)
    matched: dict[str, int] = field(default_factory=dict)


def recipient_identity(recipient: Recipient) -> tuple[str, Channel, str]:
    """(name, channel, address) as the outbox knows a recipient."""
    if isinstance(recipient, SubscriberConfig):
        return recipient.name, Channel.EMAIL, recipient.email
    address = f"webhook:{recipient.webhook_env}" if recipient.webhook_env else recipient.channel
    return recipient.label, Channel.SLACK, address


class Matches:
    """The stored items of one planning pass, scored once against every profile, explained only where shown.

    Recipients' windows differ only in where they start (their last digest): each item of any window is scored
    once, against every profile at once, as arrays (`Matcher.pairs`), and a recipient's digest picks its pairs
    from those. `ScoredItem`s and their reasons are built only for the items a digest or an alert carries, once
    per (item, profile) however many recipients share them, so the cost of planning grows with items and profiles
    (in arrays) and with what is sent, not with every match of every profile.
    """

    def __init__(self, matcher: Matcher, store: Store, now: datetime) -> None:
        self.matcher = matcher
        self.store = store
        self.now = now
        self._windows: dict[datetime, list[Item]] = {}
        self._items: list[Item] = []  # every item scored so far; pairs point into it
        self._position: dict[str, int] = {}
        self._pairs: list[Pairs] = []
        # explained pairs (`_explain`): sorted pair numbers and their `ScoredItem`s, and a dict for late additions
        self._known_keys: NDArray[np.int64] = np.zeros(0, dtype=np.int64)
        self._known: list[ScoredItem] = []
        self._extra: dict[int, ScoredItem] = {}
        self._grouped: _Grouped | None = None
        self._insides: dict[datetime, NDArray[np.bool_]] = {}
        self._covered: set[datetime] = set()
        self._picked: dict[_PickKey, _Picked] = {}
        self._version = self._picked_at = 0  # batches scored so far; and when `_picked` was picked
        self._id_rank: NDArray[np.int64] = np.zeros(0, dtype=np.int64)  # per position: its id's rank among all
        self._memos: dict[int, dict[Any, Any]] = {}  # per position: reasons shared by its profiles (`explain`)

    def window(self, since: datetime) -> list[Item]:
        """Items first seen after `since`, up to now."""
        if since not in self._windows:
            self._windows[since] = self.store.items_first_seen_between(since, self.now)
        return self._windows[since]

    def best(self, since: datetime, profiles: Iterable[str], *, limit: int | None = None, at_least: float = 0.0,
             skip: Collection[str] = ()) -> tuple[list[ScoredItem], int]:
        """The items first seen since `since` that pass one of `profiles`, each once with its best profile's score
        (ties: the profile listed first in the config), best first, ties by id; each profile's own `max_items`
        respected; only scores ≥ `at_least` and ids not in `skip`. Returns the first `limit` (all with None),
        explained, and how many there are."""
        key = _pick_key(since, profiles, limit)
        fresh = self._version == self._picked_at  # no window scored since the picks
        picked = self._picked.pop(key, None) if at_least <= 0 and not skip and fresh else None
        if picked is None:
            picked = self._pick(since, key[1], limit=limit, at_least=at_least, skip=skip)
        chosen, total, also = picked
        positions, found, _, meaning, _ = self._by_profile()
        explained = self._explain(positions[chosen], found[chosen], meaning[chosen])
        if also:  # the item's other profiles among this recipient's, named beside the best one
            names = self.matcher.profiles
            explained = [replace(scored, also=tuple(names[p] for p in also[pair])) if pair in also else scored
                         for pair, scored in zip(chosen.tolist(), explained, strict=True)]
        return explained, total

    def prefetch(self, digests: Sequence[tuple[datetime, Iterable[str], int]], also: Iterable[datetime] = ()) -> None:
        """Pick the pairs of these digests ((since, profiles, limit) each) and explain them all in one pass, item
        by item, so that what one item's keywords add is worked out once for every profile and recipient. Every
        window (and those starting at `also`, for alerts) is scored first: the picks stay valid until a later
        window brings new items."""
        for since in [*(d[0] for d in digests), *also]:
            self._cover(since)
        self._picked_at = self._version
        for since, profiles, limit in digests:
            key = _pick_key(since, profiles, limit)
            self._picked[key] = self._pick(since, key[1], limit=limit)
        if self._picked:
            positions, found, _, meaning, _ = self._by_profile()
            chosen = np.unique(np.concatenate([pairs for pairs, _, _ in self._picked.values()]))
            self._explain_all(positions[chosen], found[chosen], meaning[chosen])

    def _pick(self, since: datetime, profiles: Sequence[str], *, limit: int | None, at_least: float = 0.0,
              skip: Collection[str] = ()) -> _Picked:
        """`best` without explaining: the indices of the chosen pairs (into `_by_profile`), how many pass, and for
        a chosen pair whose item passes other profiles of the recipient too, those (best first)."""
        none = np.zeros(0, dtype=np.int64)
        self._cover(since)
        positions, found, quanta, _, ptr = self._by_profile()
        ids = sorted(self.matcher.profile_id(name) for name in profiles)
        if not ids or not len(positions):
            return none, 0, {}
        keep = np.concatenate([np.arange(ptr[p], ptr[p + 1]) for p in ids])
        keep = keep[self._inside(since)[positions[keep]] & (quanta[keep] * QUANTUM + 1e-9 >= at_least)]
        if not len(keep):
            return none, 0, {}
        order = np.lexsort((found[keep], -quanta[keep], positions[keep]))  # by item, its best profile first
        at = positions[keep[order]]
        first = np.concatenate(([True], at[1:] != at[:-1]))
        best = keep[order[first]]
        also: dict[int, tuple[int, ...]] = {}
        if len(ids) > 1 and not first.all():  # some item passes several of the recipient's profiles
            starts = np.flatnonzero(first)
            grouped = found[keep[order]].tolist()
            for pair, start, end in zip(best.tolist(), starts.tolist(), [*starts[1:].tolist(), len(order)],
                                        strict=True):
                if end - start > 1:
                    also[pair] = tuple(grouped[start + 1:end])
        ranked = best[np.lexsort((self._id_rank[positions[best]], -quanta[best]))].tolist()  # ties by id
        if skip:
            items = self._items
            ranked = [pair for pair in ranked if items[positions[pair]].id not in skip]
        ranked = self._capped(ranked, found, ids)
        chosen = ranked if limit is None else ranked[:limit]
        return np.asarray(chosen, dtype=np.int64), len(ranked), {pair: also[pair] for pair in chosen if pair in also}

    def _by_profile(self) -> _Grouped:
        """Every pair scored so far, grouped by profile (best first within one), and where each profile's run
        starts (`ptr[p]` to `ptr[p + 1]`): a recipient reads only its profiles' runs."""
        if self._grouped is None:
            grouped: list[NDArray[Any]]
            if len(self._pairs) == 1:  # one batch (the usual pass): `Matcher.pairs` grouped it already
                grouped = list(self._pairs[0])
            else:
                arrays = [np.concatenate([pairs[i] for pairs in self._pairs]) if self._pairs else NO_PAIRS[i]
                          for i in range(4)]
                order = np.lexsort((-arrays[2], arrays[1]))
                grouped = [a[order] for a in arrays]
            ptr = np.searchsorted(grouped[1], np.arange(len(self.matcher.profiles) + 1))
            self._grouped = cast(_Grouped, (*grouped, ptr))
        return self._grouped

    def _inside(self, since: datetime) -> NDArray[np.bool_]:
        """Per scored item (by position), whether it is in the window that starts at `since`."""
        inside = self._insides.get(since)
        if inside is None:
            inside = self._insides[since] = np.zeros(len(self._items), dtype=bool)
            inside[[self._position[item.id] for item in self.window(since)]] = True
        return inside

    def _cover(self, since: datetime) -> None:
        """Score the items of the window that starts at `since` not scored yet, in one batch."""
        if since in self._covered:
            return
        self._covered.add(since)
        new = [item for item in self.window(since) if item.id not in self._position]
        if not new:
            return
        ordered, (positions, profiles, quanta, meaning) = self.matcher.pairs(new)
        offset = len(self._items)
        self._position.update((item.id, offset + i) for i, item in enumerate(ordered))
        self._items.extend(ordered)
        positions += offset  # in place: the arrays are this pass's own
        self._pairs.append((positions, profiles, quanta, meaning))
        self._grouped, self._insides = None, {}
        self._version += 1  # pair indices from before point elsewhere now
        by_id = sorted(range(len(self._items)), key=[item.id for item in self._items].__getitem__)
        self._id_rank = np.empty(len(self._items), dtype=np.int64)
        self._id_rank[by_id] = np.arange(len(self._items))

    def _explain(self, positions: NDArray[np.int32], profiles: NDArray[np.int32],
                 meaning: NDArray[np.float64]) -> list[ScoredItem]:
        """The `ScoredItem`s of these pairs, each built once per planning pass (see `_explain_all`); pairs not
        explained yet (alerts, a digest `prefetch` did not see) are kept in a small dict."""
        keys = self._keys(positions, profiles)
        found: list[ScoredItem | None] = [None] * len(keys)
        known, explained, extra = self._known_keys, self._known, self._extra
        missed = np.ones(len(keys), dtype=bool)
        if len(known):
            at = np.minimum(np.searchsorted(known, keys), len(known) - 1)
            hit = np.flatnonzero(known[at] == keys)
            for i, j in zip(hit.tolist(), at[hit].tolist(), strict=True):
                found[i] = explained[j]
            missed[hit] = False
        missing = []
        for i, key in zip(np.flatnonzero(missed).tolist(), keys[missed].tolist(), strict=True):
            found[i] = extra.get(key)
            if found[i] is None:
                missing.append(i)
        if missing:
            new_keys, built = self._build(positions[missing], profiles[missing], meaning[missing])
            extra.update(zip(new_keys.tolist(), built, strict=True))
            for i in missing:
                found[i] = extra[int(keys[i])]
        return cast(list[ScoredItem], found)

    def _explain_all(self, positions: NDArray[np.int32], profiles: NDArray[np.int32],
                     meaning: NDArray[np.float64]) -> None:
        """Explain these pairs (most of a pass: ~250,000 for 10,000 digests) and keep them as a sorted array of
        pair numbers beside a list of their `ScoredItem`s: a tenth of the memory of a dict of them."""
        keys = self._keys(positions, profiles)
        if len(self._known_keys):
            keep = ~np.isin(keys, self._known_keys)
            positions, profiles, meaning = positions[keep], profiles[keep], meaning[keep]
        if not len(positions):
            return
        new_keys, built = self._build(positions, profiles, meaning)
        if not len(self._known_keys):  # the usual pass: one prefetch
            self._known_keys, self._known = new_keys, built
            return
        merged = np.concatenate((self._known_keys, new_keys))
        order = np.argsort(merged, kind="stable")
        everything = [*self._known, *built]
        self._known_keys, self._known = merged[order], [everything[i] for i in order.tolist()]

    def _keys(self, positions: NDArray[np.int32], profiles: NDArray[np.int32]) -> NDArray[np.int64]:
        """Each pair as one number: position × profiles + profile id."""
        return positions.astype(np.int64) * len(self.matcher.profiles) + profiles

    def _build(self, positions: NDArray[np.int32], profiles: NDArray[np.int32],
               meaning: NDArray[np.float64]) -> tuple[NDArray[np.int64], list[ScoredItem]]:
        """The distinct pairs among these, in key order, and their `ScoredItem`s (`Matcher.explain`)."""
        keys, first = np.unique(self._keys(positions, profiles), return_index=True)
        return keys, self.matcher.explain(self._items, positions[first], profiles[first], meaning[first])

    def _capped(self, ranked: list[int], profiles: NDArray[np.int32], ids: Sequence[int]) -> list[int]:
        """`ranked` without the pairs past their profile's own `max_items` (`ids`: the profiles asked for)."""
        names = self.matcher.profiles
        caps = {p: self.matcher.max_items(names[p]) for p in ids}
        if not any(caps.values()):
            return ranked
        taken: dict[int, int] = {}
        kept = []
        for pair in ranked:
            p = int(profiles[pair])
            cap = caps[p]
            if cap is None or taken.get(p, 0) < cap:
                kept.append(pair)
                taken[p] = taken.get(p, 0) + 1
        return kept


def _pick_key(since: datetime, profiles: Iterable[str], limit: int | None) -> _PickKey:
    """What makes two digests' picks the same: their window, their set of profiles and their limit."""
    return since, tuple(sorted(set(profiles))), limit


def new_message_id(config: Config) -> str:
    """A Message-ID in the sender's domain, chosen at planning and reused on every retry."""
    sender = config.smtp.sender_address if config.smtp else "digestbot@localhost"
    domain = sender.rsplit("@", 1)[-1] or "localhost"
    return make_msgid(idstring="digestbot", domain=domain)


class Planner:
    """One planning pass. What the store knows about every recipient is read up front in a few queries."""

    def __init__(self, config: Config, store: Store, matcher: Matcher, now: datetime) -> None:
        self.config = config
        self.store = store
        self.now = now
        self.matches = Matches(matcher, store, now)
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
        return f"digest:{channel}:{name}:{due[0]}", due[0], due[1]

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
        hits, total = self.matches.best(since, recipient.profiles, at_least=recipient.alert_min_score, skip=already)
        if not hits:
            return None
        ids = ",".join(sorted(m.item.id for m in hits))
        digest = hashlib.sha256(ids.encode()).hexdigest()[:16]
        payload = Payload.of(hits, total=total, since=since, profiles=recipient.profiles)
        return PlannedDelivery(key=f"alert:{channel}:{name}:{digest}", kind=Kind.ALERT, channel=channel,
                               recipient=name, address=address, period_key=self.now.strftime("%Y-%m-%dT%H:%M"),
                               payload=payload, message_id=new_message_id(self.config), covers_until=self.now)

    def prefetch(self, recipients: Sequence[Recipient], dues: Sequence[tuple[str, str, datetime] | None]) -> None:
        """Explain the papers of every digest owed now in one pass (`Matches.prefetch`), before they are planned
        one by one."""
        owed, alerts = [], []
        for recipient, due in zip(recipients, dues, strict=True):
            name, channel, _address = recipient_identity(recipient)
            if due is not None and due[0] not in self.existing:
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
    planner = Planner(config, store, matcher, now)
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
