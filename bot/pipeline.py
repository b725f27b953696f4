"""The one place where the stages meet: refresh sources, plan deliveries, deliver what is due.

fetch → parse → store (diff) → score → plan (outbox) → render → notify. Each function takes the clock as an
argument (`now`), so `digestbot once --now T` and the tests can walk time, and each one records failures
where they happened (on the source, on the outbox row) and carries on with the rest.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from email.utils import make_msgid
from functools import partial
from typing import Any

from bot.config import Config, SlackChannelConfig, SubscriberConfig
from bot.errors import FetchError, ParseError
from bot.models import Item, Reason, ScoredItem, Source
from bot.notices import plan_notices
from bot.scoring import Matcher
from bot.sources import fetch_all_pages
from bot.sources.fetch import Fetcher
from bot.store import PlannedDelivery, Store

log = logging.getLogger(__name__)

REFRESH_CONCURRENCY = 8
REFRESH_JITTER = 0.1
# A well-formed page with no items is a quiet day only where quiet days exist (arXiv announces nothing on
# weekends); elsewhere, zero items from a source that used to list this many is a broken scraper.
SUSPICIOUS_DROP = 3
QUIET_DAY_KINDS = frozenset({"arxiv_feed", "arxiv_list", "arxiv_api"})
CONFIGURED_ADDRESSES = "configured-addresses"  # meta: the subscriber addresses at the last planning


@dataclass(frozen=True, slots=True)
class RefreshResult:
    """What one source refresh did, for the cycle summary."""

    source: str
    status: str  # "ok", "not-modified", "failed", "skipped"
    fetched: int = 0
    new: int = 0
    error: str | None = None


@dataclass(slots=True)
class PlanResult:
    """Keys of the outbox rows this cycle created (rows that already existed are not counted)."""

    planned: list[str] = field(default_factory=list)
    matched: dict[str, int] = field(default_factory=dict)


def source_is_due(store: Store, source: Source, now: datetime) -> bool:
    state = store.get_source_state(source.name)
    if state.not_before is not None and state.not_before > now:
        return False
    return state.next_due_at is None or state.next_due_at <= now


def refresh_interval(source: Source) -> timedelta:
    """`every`, shortened by up to 10% by a fixed amount per source (jitter), so sources configured alike drift
    apart instead of all hitting their sites on the same tick; fixed per name, so a restart keeps the rhythm."""
    fraction = int(hashlib.sha256(source.name.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
    return source.every * (1 - REFRESH_JITTER * fraction)


async def refresh_source(store: Store, fetcher: Fetcher, source: Source, *, now: datetime) -> RefreshResult:
    """Fetch (every page, for sources that page), parse and diff one source.

    A failure is recorded on the source and never raised; nothing stored is touched by a failed refresh.
    Store calls run in a worker thread, so a busy database never stalls the other fetches in flight.
    """
    state = await asyncio.to_thread(store.get_source_state, source.name)
    next_due = now + refresh_interval(source)
    try:
        fetched = await fetch_all_pages(fetcher, source, etag=state.etag, last_modified=state.last_modified)
        if fetched is None:
            await asyncio.to_thread(partial(
                store.record_fetch_ok, source.name, at=now, etag=state.etag, last_modified=state.last_modified,
                item_count=state.last_item_count or 0, not_modified=True, next_due_at=next_due))
            return RefreshResult(source.name, "not-modified")
        page, parsed = fetched
        items = [replace(item, source=source.name) for item in parsed]
        if not items and (state.max_item_count or 0) >= SUSPICIOUS_DROP and source.kind not in QUIET_DAY_KINDS:
            raise ParseError(f"{source.url}: no items, where earlier fetches found up to {state.max_item_count}; "
                             "layout changed?")
    except (FetchError, ParseError) as exc:
        not_before = None
        if isinstance(exc, FetchError) and exc.retry_after:
            not_before = now + timedelta(seconds=exc.retry_after)
        message = f"{exc.message} ({exc.hint})" if exc.hint else exc.message
        await asyncio.to_thread(partial(store.record_fetch_error, source.name, at=now, error=message,
                                        next_due_at=next_due, not_before=not_before))
        log.warning("source %s failed: %s", source.name, exc.message)
        return RefreshResult(source.name, "failed", error=exc.message)
    new = await asyncio.to_thread(partial(store.save_items, source.name, items, seen_at=now))
    await asyncio.to_thread(partial(store.record_fetch_ok, source.name, at=now, etag=page.etag,
                                    last_modified=page.last_modified, item_count=len(items), next_due_at=next_due))
    log.info("source %s: %d items, %d new", source.name, len(items), len(new))
    return RefreshResult(source.name, "ok", fetched=len(items), new=len(new))


async def refresh_sources(store: Store, fetcher: Fetcher, sources: Sequence[Source], *, now: datetime,
                          only_due: bool = True) -> list[RefreshResult]:
    """Refresh every (due) source concurrently; the fetcher itself keeps each host polite."""
    semaphore = asyncio.Semaphore(REFRESH_CONCURRENCY)

    async def one(source: Source) -> RefreshResult:
        if only_due and not await asyncio.to_thread(source_is_due, store, source, now):
            return RefreshResult(source.name, "skipped")
        async with semaphore:
            return await refresh_source(store, fetcher, source, now=now)

    return list(await asyncio.gather(*(one(s) for s in sources)))


# --- planning ------------------------------------------------------------------------------------------------

Recipient = SubscriberConfig | SlackChannelConfig


def disabled_key(channel: str, address: str) -> str:
    """Meta key marking a destination disabled after a permanent error (a deleted channel, a revoked webhook)."""
    return f"disabled:{channel}:{address}"


def recipient_identity(recipient: Recipient) -> tuple[str, str, str]:
    """(name, channel, address) as the outbox knows a recipient."""
    if isinstance(recipient, SubscriberConfig):
        return recipient.name, "email", recipient.email
    address = f"webhook:{recipient.webhook_env}" if recipient.webhook_env else recipient.channel
    return recipient.label, "slack", address


class Matches:
    """Each stored item scored once per planning pass, however many recipients share it.

    Recipients' windows differ only in where they start (their last digest), so each distinct window is read
    once, and each item is scored against every profile at once (`Matcher.passing`): the cost of planning grows
    with items and distinct windows, not with recipients × profiles.
    """

    def __init__(self, matcher: Matcher, store: Store, now: datetime) -> None:
        self.matcher = matcher
        self.store = store
        self.now = now
        self._windows: dict[datetime, list[Item]] = {}
        self._scored: dict[str, dict[str, ScoredItem]] = {}

    def window(self, since: datetime) -> list[Item]:
        """Items first seen after `since`, up to now."""
        if since not in self._windows:
            self._windows[since] = self.store.items_first_seen_between(since, self.now)
        return self._windows[since]

    def best(self, since: datetime, profiles: Iterable[str]) -> list[ScoredItem]:
        """Each item once, with its best profile's score, best first (ties by id); each profile's own
        `max_items` respected."""
        wanted = set(profiles)
        best: list[ScoredItem] = []
        for item in self.window(since):
            scored = self._scored.get(item.id)
            if scored is None:
                scored = self._scored[item.id] = {s.profile: s for s in self.matcher.passing(item)}
            top = max((s for p, s in scored.items() if p in wanted), key=lambda s: s.score, default=None)
            if top is not None:
                best.append(top)
        best.sort(key=lambda s: (-s.score, s.item.id))
        return self._capped(best)

    def _capped(self, ranked: list[ScoredItem]) -> list[ScoredItem]:
        caps = {p: self.matcher.max_items(p) for p in {s.profile for s in ranked}}
        if not any(caps.values()):
            return ranked
        taken: dict[str, int] = {}
        kept = []
        for scored in ranked:
            cap = caps[scored.profile]
            if cap is None or taken.get(scored.profile, 0) < cap:
                kept.append(scored)
                taken[scored.profile] = taken.get(scored.profile, 0) + 1
        return kept


def _payload(matches: Sequence[ScoredItem], *, limit: int, alerted: set[str], since: datetime | None,
             profiles: Sequence[str]) -> dict[str, Any]:
    """The frozen content of a delivery: ids, scores and reasons (items themselves stay in the items table)."""
    return {
        "items": [{"id": m.item.id, "profile": m.profile, "score": round(m.score, 4),
                   "reasons": [r.to_json() for r in m.reasons], "alerted": m.item.id in alerted}
                  for m in matches[:limit]],
        "total_matched": len(matches),
        "since": since.isoformat() if since else None,
        "profiles": list(profiles),
    }


def payload_matches(payload: dict[str, Any], items: dict[str, Item]) -> list[ScoredItem]:
    """Turn a frozen payload back into ScoredItems; an item deleted from the store since is skipped."""
    out = []
    for entry in payload.get("items", []):
        item = items.get(entry["id"])
        if item is not None:
            out.append(ScoredItem(item=item, profile=entry["profile"], score=float(entry["score"]),
                                  reasons=tuple(Reason.from_json(r) for r in entry.get("reasons", []))))
    return out


def new_message_id(config: Config) -> str:
    """A Message-ID in the sender's domain, chosen at planning and reused on every retry."""
    sender = config.smtp.sender if config.smtp else "digestbot@localhost"
    domain = sender.rsplit("@", 1)[-1].rstrip(">").strip() or "localhost"
    return make_msgid(idstring="digestbot", domain=domain)


def first_seen(store: Store, channel: str, name: str, now: datetime) -> datetime:
    """When the planner first met this recipient (recorded on first call)."""
    key = f"first-seen:{channel}:{name}"
    held = store.get_meta(key)
    if held is None:
        store.set_meta(key, now.isoformat())
        return now
    return datetime.fromisoformat(held)


def plan_digest(config: Config, store: Store, matches: Matches, recipient: Recipient, *,
                now: datetime) -> PlannedDelivery | None:
    """The digest this recipient is owed now, if any: the latest scheduled period, once per period.

    A digest covers everything first seen since the previous digest's cut-off (never older than `bot.max_age`),
    so after downtime one digest covers the whole gap, and nothing falls between two digests or appears in two.
    A recipient the planner has never met gets its first digest at its first scheduled time after that meeting,
    not at once (a subscriber added at 06:59 for "daily 07:00" gets one digest at 07:00, not two).
    """
    due = recipient.parsed_schedule.latest_due(now, recipient.zone)
    if due is None:
        return None
    period_key, due_at = due
    name, channel, address = recipient_identity(recipient)
    key = f"digest:{channel}:{name}:{period_key}"
    if store.has_delivery(key):
        return None
    floor = now - config.bot.max_age_delta
    last = store.last_covered(name, channel, "digest")
    if last is None and due_at < first_seen(store, channel, name, now):
        return None  # a new recipient's first digest is at their first scheduled time, not at once
    since = max(last, floor) if last else floor
    found = matches.best(since, recipient.profiles)
    alerted = store.alerted_item_ids(name, channel) if recipient.alert_min_score else set()
    payload = _payload(found, limit=recipient.max_items, alerted=alerted, since=since,
                       profiles=recipient.profiles)
    payload["send_empty"] = recipient.send_empty
    return PlannedDelivery(key=key, kind="digest", channel=channel, recipient=name, address=address,
                           period_key=period_key, payload=payload, message_id=new_message_id(config),
                           covers_until=now)


def plan_alert(config: Config, store: Store, matches: Matches, recipient: Recipient, *,
               now: datetime) -> PlannedDelivery | None:
    """One alert message per cycle for the items at or above `alert_min_score` not alerted before."""
    if recipient.alert_min_score is None:
        return None
    name, channel, address = recipient_identity(recipient)
    floor = now - config.bot.max_age_delta
    last = store.last_covered(name, channel, "alert")
    since = max(last, floor) if last else floor
    already = store.alerted_item_ids(name, channel)
    hits = [m for m in matches.best(since, recipient.profiles)
            if m.score >= recipient.alert_min_score and m.item.id not in already]
    if not hits:
        return None
    ids = ",".join(sorted(m.item.id for m in hits))
    digest = hashlib.sha256(ids.encode()).hexdigest()[:16]
    payload = _payload(hits, limit=len(hits), alerted=set(), since=since, profiles=recipient.profiles)
    return PlannedDelivery(key=f"alert:{channel}:{name}:{digest}", kind="alert", channel=channel, recipient=name,
                           address=address, period_key=now.strftime("%Y-%m-%dT%H:%M"), payload=payload,
                           message_id=new_message_id(config), covers_until=now)


def honour_readded(config: Config, store: Store, unsubscribed: set[str]) -> set[str]:
    """An unsubscribe holds until the admin removes the subscriber from the config and adds them back.

    The addresses configured at the previous planning are remembered; one that was unsubscribed, then missing
    from the config, and now is back, is subscribed again. Returns the addresses still unsubscribed.
    """
    current = sorted({s.email.lower() for s in config.subscribers})
    held = store.get_meta(CONFIGURED_ADDRESSES)
    store.set_meta(CONFIGURED_ADDRESSES, json.dumps(current))
    if held is None:
        return unsubscribed
    previous = set(json.loads(held))
    for address in [a for a in unsubscribed if a.lower() in current and a.lower() not in previous]:
        store.resubscribe(address)
        unsubscribed.discard(address)
        log.info("%s was removed from the config and added again: subscribed again", address)
    return unsubscribed


def plan_deliveries(config: Config, store: Store, matcher: Matcher, *, now: datetime) -> PlanResult:
    """Decide every alert, then every digest, then every admin notice owed now, and write them to the outbox.

    Alerts go first (one transaction), so a digest planned in the same cycle already knows which of its items
    were alerted and marks them instead of repeating them as news.
    """
    unsubscribed = honour_readded(config, store, store.unsubscribed())
    everyone: list[Recipient] = [*config.subscribers, *config.slack_channels]
    recipients = [r for r in everyone if recipient_identity(r)[2].lower() not in unsubscribed
                  and not store.get_meta(disabled_key(*recipient_identity(r)[1:]))]
    failing = [h for h in store.source_health([s.name for s in config.sources if s.enabled]) if h.failing]
    matches = Matches(matcher, store, now)
    result = PlanResult()
    for plan in (plan_alert, plan_digest):
        batch: list[PlannedDelivery] = []
        for recipient in recipients:
            delivery = plan(config, store, matches, recipient, now=now)
            if delivery is None:
                continue
            payload = {**delivery.payload, "failing_sources": [
                {"name": h.name, "consecutive_failures": h.consecutive_failures, "last_error": h.last_error,
                 "last_success": h.last_success.isoformat() if h.last_success else None} for h in failing]}
            delivery = replace(delivery, payload=payload)
            batch.append(delivery)
            result.matched[f"{delivery.kind}:{delivery.recipient}"] = int(delivery.payload["total_matched"])
        result.planned.extend(store.plan(batch, now=now))
    notices = plan_notices(config, store, now=now, new_message_id=lambda: new_message_id(config))
    result.planned.extend(store.plan(notices, now=now))
    return result
