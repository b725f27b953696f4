"""The outbox state machine: claim → send → record, with no transaction held across a send.

pending ─claim→ sending ─ok→ sent
                  ├─ retryable (connect error, 4xx, 429, email lost after ".") → pending, later (backoff)
                  ├─ permanent (5xx, invalid channel, auth) → failed
                  ├─ Slack connection lost mid-post → unknown (never re-posted blindly)
                  └─ too old to be useful → expired
A process killed mid-send leaves the row `sending` with a lease; when the lease runs out another claim takes
it again. An email retry reuses the Message-ID chosen at planning, so a receiving server can spot a duplicate.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import quote

from bot.config import Config, SlackSettings
from bot.errors import DeliveryError
from bot.models import Delivery, Digest, Notice, SourceHealth
from bot.notices import admin_destinations, delivery_problem_notice, notice_rows
from bot.notify.email import EmailNotifier, build_message
from bot.notify.slack import SlackNotifier
from bot.planning import DISABLED, disabled_key, new_message_id, payload_matches
from bot.render import RenderedEmail, Renderer, SlackMessage
from bot.store import LEASE_LAPSED, Store
from bot.tokens import make_token
from bot.web import unsubscribe_url

log = logging.getLogger(__name__)

LEASE = timedelta(minutes=10)
MAX_ATTEMPTS = 8
MAX_AGE = {"digest": timedelta(hours=36), "alert": timedelta(hours=6), "notice": timedelta(days=3)}


@dataclass(frozen=True, slots=True)
class DeliveryOutcome:
    """What happened to one outbox row in this cycle."""

    key: str
    recipient: str
    channel: str
    kind: str
    status: str  # sent, skipped, retry, failed, unknown, expired
    items: int = 0
    error: str | None = None
    stop_batch: bool = False


@dataclass(frozen=True, slots=True)
class Prepared:
    """A row's content, rendered for its channel before the send (so a send is only network I/O)."""

    email: RenderedEmail | None = None
    slack: list[SlackMessage] | None = None
    items: int = 0
    skip: bool = False


def retry_delay(attempts: int, retry_after: float | None = None) -> timedelta:
    """Exponential backoff from one minute, capped at an hour; a server's Retry-After wins if longer."""
    delay = timedelta(minutes=min(60, 2 ** max(0, attempts - 1)))
    if retry_after:
        delay = max(delay, timedelta(seconds=retry_after))
    return delay


def _failing(payload: dict[str, Any]) -> tuple[SourceHealth, ...]:
    return tuple(
        SourceHealth(name=f["name"], failing=True, consecutive_failures=int(f.get("consecutive_failures") or 0),
                     last_error=f.get("last_error"),
                     last_success=datetime.fromisoformat(f["last_success"]) if f.get("last_success") else None)
        for f in payload.get("failing_sources", []))


class Deliverer:
    """Sends what the outbox holds for now, one short store call before and after each send."""

    def __init__(self, config: Config, store: Store, renderer: Renderer, *, secret: bytes | None = None) -> None:
        self.config = config
        self.store = store
        self.renderer = renderer
        self.secret = secret
        self._disabled: dict[str, str] = {}  # destinations disabled after a permanent error, read per batch

    def unsubscribe_link(self, row: Delivery) -> str | None:
        """The one-click link for an email row, signed for its address; stable across retries (planning time).

        Only with `bot.public_url` (somewhere the endpoint is reachable) and only for email: on a Slack channel
        anyone reading could unsubscribe it.
        """
        public_url = self.config.bot.public_url
        if row.channel != "email" or not public_url or not self.secret:
            return None
        return unsubscribe_url(public_url, make_token(row.address, self.secret, issued=row.created_at))

    def digest_for(self, row: Delivery) -> Digest:
        """Rebuild the frozen digest: items by id from the store, scores and reasons from the payload."""
        payload = dict(row.payload)
        items = self.store.get_items([entry["id"] for entry in payload.get("items", [])])
        since = payload.get("since")
        return Digest(recipient=row.recipient, channel=row.channel, kind=row.kind, period_key=row.period_key,
                      items=tuple(payload_matches(payload, items)), generated_at=row.created_at,
                      total_matched=int(payload.get("total_matched") or 0), failing_sources=_failing(payload),
                      since=datetime.fromisoformat(since) if since else None,
                      public_url=self.config.bot.public_url, unsubscribe_url=self.unsubscribe_link(row),
                      alerted=frozenset(e["id"] for e in payload.get("items", []) if e.get("alerted")))

    async def deliver_due(self, *, now: datetime, limit: int = 200) -> list[DeliveryOutcome]:
        """Claim due rows and send them: email over a few reused SMTP connections, Slack one by one."""
        rows = self.store.claim(now=now, limit=limit, lease=LEASE)
        if not rows:
            return []
        self._disabled = {k: v for k, v in self.store.meta_with_prefix(DISABLED).items() if v}
        outcomes: list[DeliveryOutcome] = []
        email_rows = [r for r in rows if r.channel == "email"]
        slack_rows = [r for r in rows if r.channel == "slack"]
        async with AsyncExitStack() as stack:
            if email_rows:
                outcomes += await self._send_email_batch(stack, email_rows, now=now)
            for row in slack_rows:
                outcomes.append(await self._deliver_one(row, now=now, send=self._send_slack))
        return outcomes

    async def _send_email_batch(self, stack: AsyncExitStack, rows: Sequence[Delivery], *,
                                now: datetime) -> list[DeliveryOutcome]:
        smtp = self.config.smtp
        if smtp is None:
            return [self._record(r, DeliveryError("no [smtp] section in the config", retry=False), now=now)
                    for r in rows]
        lanes = min(smtp.concurrency, len(rows))
        notifiers = [await stack.enter_async_context(EmailNotifier(smtp)) for _ in range(lanes)]
        queue: asyncio.Queue[Delivery] = asyncio.Queue()
        for row in rows:
            queue.put_nowait(row)
        outcomes: list[DeliveryOutcome] = []
        stop = asyncio.Event()

        async def lane(notifier: EmailNotifier) -> None:
            while not queue.empty():
                row = queue.get_nowait()
                if stop.is_set():  # authentication failed: give the row back untouched, try next cycle
                    self.store.mark_retry(row.id, error="batch stopped", next_attempt_at=now + retry_delay(1))
                    continue
                outcome = await self._deliver_one(row, now=now, send=lambda r, p: self._send_email(notifier, r, p))
                outcomes.append(outcome)
                if outcome.stop_batch:
                    stop.set()

        await asyncio.gather(*(lane(n) for n in notifiers))
        return outcomes

    async def _send_email(self, notifier: EmailNotifier, row: Delivery, prepared: Prepared) -> None:
        smtp = self.config.smtp
        assert smtp is not None and prepared.email is not None
        rendered = prepared.email
        sender_address = smtp.sender_address
        domain = sender_address.rsplit("@", 1)[-1]
        message = build_message(rendered, sender=smtp.sender, to=row.address, message_id=row.message_id,
                                date=row.created_at, list_id=f"digestbot <digest.{domain}>",
                                unsubscribe_mailto=self._unsubscribe_mailto(row, sender_address),
                                unsubscribe_url=self.unsubscribe_link(row))
        await notifier.send(message)

    def _unsubscribe_mailto(self, row: Delivery, sender: str) -> str:
        """A mailto a person reads: the admin's address if there is one, else the sender's."""
        to = self.config.bot.admin_email or sender
        return f"mailto:{to}?subject=" + quote(f"unsubscribe {row.address}")

    async def _send_slack(self, row: Delivery, prepared: Prepared) -> None:
        """Post every part of the digest; parts already posted (recorded one by one) are not posted again.

        Slack has no idempotency key, so a digest split into several messages keeps its progress in the store:
        a retry after part 3 of 5 failed resumes at part 3.
        """
        settings = self.config.slack
        webhook_env = row.address.removeprefix("webhook:") if row.address.startswith("webhook:") else None
        if settings is None and webhook_env is None:
            raise DeliveryError("no [slack] section in the config", retry=False)
        webhook_url = os.environ.get(webhook_env) if webhook_env else None
        if webhook_env and not webhook_url:
            raise DeliveryError(f"environment variable {webhook_env} (the webhook URL for {row.recipient}) is not set",
                                retry=True)
        notifier = SlackNotifier(settings or SlackSettings(), token=settings.token() if settings else None)
        progress = f"slack-parts-sent:{row.key}"
        done = int(self.store.get_meta(progress) or 0)
        for index, message in enumerate(prepared.slack or []):
            if index < done:
                continue
            if webhook_url:
                await notifier.post_webhook(webhook_url, message)
            else:
                await notifier.post(row.address, message)
            self.store.set_meta(progress, str(index + 1))

    def prepare(self, row: Delivery) -> Prepared:
        """What to send for a row, rendered for its channel; digests with nothing to say are skipped."""
        if row.kind == "notice":
            notice = Notice.from_json(row.payload["notice"])
            if row.channel == "email":
                return Prepared(email=self.renderer.render_notice_email(notice))
            return Prepared(slack=self.renderer.render_notice_slack(notice))
        digest = self.digest_for(row)
        if (row.kind == "digest" and not digest.items and not row.payload.get("send_empty", False)
                and not digest.failing_sources):
            return Prepared(skip=True)
        if row.channel == "email":
            return Prepared(email=self.renderer.render_email(digest), items=len(digest.items))
        return Prepared(slack=self.renderer.render_slack(digest), items=len(digest.items))

    async def _deliver_one(self, row: Delivery, *, now: datetime, send: Any) -> DeliveryOutcome:
        if row.created_at + MAX_AGE.get(row.kind, MAX_AGE["digest"]) < now:
            self.store.mark_expired(row.id, error="too old to be useful; not sent", at=now)
            return DeliveryOutcome(row.key, row.recipient, row.channel, row.kind, "expired")
        if row.last_error == LEASE_LAPSED:
            if row.channel == "slack":  # Slack has no idempotency key: never post again blindly
                self.store.mark_unknown(row.id, error=LEASE_LAPSED, at=now)
                log.warning("%s to %s via slack: %s; marked unknown (`digestbot outbox retry %d` posts it)",
                            row.kind, row.recipient, LEASE_LAPSED, row.id)
                return DeliveryOutcome(row.key, row.recipient, row.channel, row.kind, "unknown", error=LEASE_LAPSED)
            log.warning("%s to %s via email: %s; sending again with the same Message-ID %s, so at most one "
                        "duplicate arrives and mail clients can tell", row.kind, row.recipient, LEASE_LAPSED,
                        row.message_id)
        disabled = self._disabled.get(disabled_key(row.channel, row.address))
        if disabled:
            self.store.mark_failed(row.id, error=f"destination disabled: {disabled}", at=now)
            return DeliveryOutcome(row.key, row.recipient, row.channel, row.kind, "failed", error=disabled)
        prepared = self.prepare(row)
        if prepared.skip:
            self.store.mark_sent(row.id, at=now)
            return DeliveryOutcome(row.key, row.recipient, row.channel, row.kind, "skipped")
        try:
            await send(row, prepared)
        except DeliveryError as exc:
            return self._record(row, exc, now=now)
        self.store.mark_sent(row.id, at=now)
        log.info("sent %s to %s via %s (%d items)", row.kind, row.recipient, row.channel, prepared.items)
        return DeliveryOutcome(row.key, row.recipient, row.channel, row.kind, "sent", items=prepared.items)

    def _tell_admin(self, kind: str, row: Delivery, error: str, *, key: str, now: datetime) -> None:
        """Plan a notice to the admin (once per key): sending is stuck in a way only a person can fix."""
        notice = delivery_problem_notice(kind, row.channel, row.address, error, now)
        rows = notice_rows(admin_destinations(self.config), notice, key, now=now,
                           new_message_id=lambda: new_message_id(self.config))
        if rows:
            self.store.plan(rows, now=now)

    def _record(self, row: Delivery, exc: DeliveryError, *, now: datetime) -> DeliveryOutcome:
        """Turn a failed send into the row's next state; the message says where and what."""
        error = exc.message
        if exc.unknown and not exc.retry:
            self.store.mark_unknown(row.id, error=error, at=now)
            status = "unknown"
        elif exc.retry and row.attempts < MAX_ATTEMPTS:
            self.store.mark_retry(row.id, error=error, next_attempt_at=now + retry_delay(row.attempts, exc.retry_after))
            status = "retry"
        else:
            self.store.mark_failed(row.id, error=error, at=now)
            status = "failed"
        log.warning("%s to %s via %s: %s (%s)", row.kind, row.recipient, row.channel, status, error)
        if exc.disable_destination and row.kind != "notice":
            self.store.set_meta(disabled_key(row.channel, row.address), error)
            self._disabled[disabled_key(row.channel, row.address)] = error
            self._tell_admin("destination-disabled", row, error, key=f"disabled:{row.channel}:{row.address}", now=now)
        elif exc.stop_batch and row.kind != "notice":
            self._tell_admin("auth-failed", row, error, key=f"auth-failed:{row.channel}:{now:%Y-%m-%d}", now=now)
        return DeliveryOutcome(row.key, row.recipient, row.channel, row.kind, status, error=error,
                               stop_batch=exc.stop_batch)
