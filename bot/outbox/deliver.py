"""The outbox state machine: claim → begin → send → record, with no transaction held across a send.

pending ─claim→ claimed ─begin_send→ sending ─ok→ sent
   ▲               │ (expired, destination disabled, unsubscribed, nothing to say: recorded without a send)
   └──release──────┘ (not started when the process stops, or the batch stopped)
sending ├─ retryable (connect error, 4xx, 429, email lost after ".") → pending, later (backoff)
        ├─ permanent (5xx, invalid channel, auth) → failed
        ├─ Slack connection lost mid-post → unknown (never re-posted blindly; the admin is told)
        └─ too old to be useful → expired
Rows are held by this process (`bot.store.owner`) under a lease it renews while the batch is alive; what it did
not start goes back at once when it stops, and the rows of a process that died on this machine are taken back
at once by the next one. Only a row whose send had started can be in doubt: an email is sent again with the
Message-ID chosen at planning (a receiving server or mail client can spot the duplicate); a Slack post is looked
for in the channel's history by the metadata it carries, and posted only if it is not there.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from contextlib import AsyncExitStack, suppress
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from bot.config import Config
from bot.errors import DeliveryError, DestinationGone, Permanent, Retryable, UnknownOutcome
from bot.notify.email import EmailNotifier
from bot.notify.mime import Outgoing, compose
from bot.outbox.keys import destination, new_message_id, unsubscribe_link, unsubscribe_mailto
from bot.outbox.model import Channel, Delivery, DeliveryOutcome, Kind, Outcome, retry_delay
from bot.outbox.notices import admin_destinations, delivery_problem_notice, notice_rows
from bot.outbox.posts import SlackPosts
from bot.outbox.prepare import BatchItems, Prepared, missing_secret, prepare
from bot.render import RenderedEmail, Renderer
from bot.store import LEASE_LAPSED, AsyncStore, Store
from bot.store.owner import owner_gone, process_owner

log = logging.getLogger(__name__)

LEASE = timedelta(minutes=2)  # renewed every RENEW_EVERY while the batch is alive: a crash costs at most this
RENEW_EVERY = 30.0  # seconds
MAX_ATTEMPTS = 8
# What the outbox does with a row whose send raised, by kind of error (the first that matches; `bot.errors`).
# MaybeSent is Retryable: an email in doubt goes again with its Message-ID. A retry past MAX_ATTEMPTS fails.
OUTCOMES: tuple[tuple[type[DeliveryError], Outcome], ...] = (
    (UnknownOutcome, Outcome.UNKNOWN),  # a Slack post in doubt: never again blindly
    (Retryable, Outcome.RETRY),
    (DeliveryError, Outcome.FAILED),  # Permanent, AuthFailed, DestinationGone
)
SLACK_PAUSE_MAX = 60.0  # seconds a batch waits out Slack's rate limit before leaving the rest to the next cycle
BATCH = 500  # rows claimed at once: a batch's lease is renewed as one, and other processes share the rest
SECRET_WAIT = timedelta(minutes=5)  # a row held for a missing secret is looked at again this often
MAX_AGE = {Kind.DIGEST: timedelta(hours=36), Kind.ALERT: timedelta(hours=6), Kind.NOTICE: timedelta(days=3)}


def utcnow_aware() -> datetime:
    return datetime.now(UTC)


class Deliverer(SlackPosts):
    """Sends what the outbox holds for now, one short store call before and after each send."""

    def __init__(self, config: Config, store: Store, renderer: Renderer, *, secret: bytes | None = None) -> None:
        self.config = config
        self.db = AsyncStore(store)  # every store call runs in a worker thread (`bot.store.aio`)
        self.renderer = renderer
        self.secret = secret
        self._disabled: dict[tuple[str, str], str] = {}  # destinations disabled after a permanent error, read per batch
        self._unsubscribed: set[str] = set()  # addresses unsubscribed when the batch began
        self._items = BatchItems({})  # the batch's papers (`BatchItems`)
        self._sent: dict[int, list[int]] = {}  # per SMTP lane, emails sent and not yet recorded (`_deliver_one`)
        self.owner = process_owner()  # this process, as holder of the outbox rows it claims
        self._now: Callable[[], datetime] = utcnow_aware  # the batch's clock: its `now` plus the time since
        self._on_outcome: Callable[[DeliveryOutcome], None] | None = None

    async def deliver_all(self, *, now: datetime, batch: int = BATCH,
                          on_outcome: Callable[[DeliveryOutcome, int], None] | None = None,
                          stop: asyncio.Event | None = None) -> list[DeliveryOutcome]:
        """Everything due now, in batches of `batch` rows (`deliver_due`), until nothing is left or `stop` is set
        (SIGTERM): a morning of 10,000 digests goes out in one cycle, not 200 a minute. A row is claimed at most
        once per call: one that fails is due again only later (backoff), so this ends."""
        outcomes: list[DeliveryOutcome] = []
        while stop is None or not stop.is_set():
            before = len(outcomes)
            counted = (lambda outcome, rows, before=before: on_outcome(outcome, before + rows)) if on_outcome else None
            done = await self.deliver_due(now=now, limit=batch, on_outcome=counted, stop=stop)
            outcomes.extend(done)
            if any(o.stop_batch for o in done):
                break  # the relay refused the login: the rest waits for a person (the admin is told)
            if len(done) < batch and not any(o.status == Outcome.LOST for o in done):
                break  # the last batch was not full: nothing more was due when it was claimed
        return outcomes

    async def deliver_due(self, *, now: datetime, limit: int = BATCH,
                          on_outcome: Callable[[DeliveryOutcome, int], None] | None = None,
                          stop: asyncio.Event | None = None) -> list[DeliveryOutcome]:
        """Claim up to `limit` due rows and send them: email over `smtp.concurrency` reused SMTP connections while
        Slack posts one by one.

        The rows are held under a lease renewed while this runs; whatever was not started when it ends (done,
        `stop` set, cancelled, or an exception) goes back to pending at once."""
        owner = self.owner
        gone = [holder for holder in await self.db.run(Store.holders) if holder != owner and owner_gone(holder)]
        if gone:
            log.warning("taking back the outbox rows of %d stopped process(es) (%s): rows they had not started "
                        "go out as usual; one whose send had started is checked first", len(gone), ", ".join(gone))
        rows = await self.db.run(Store.claim, now=now, limit=limit, lease=LEASE, owner=owner, gone=gone)
        if not rows:
            return []
        started = time.monotonic()
        self._now = lambda: now + timedelta(seconds=time.monotonic() - started)
        self._disabled = await self.db.run(Store.disabled_destinations)
        # What every row of the batch needs from the store, in two reads instead of two per row.
        self._unsubscribed = await self.db.run(Store.unsubscribed)
        wanted = sorted({item_id for row in rows for item_id in row.payload.item_ids})
        self._items = BatchItems(await self.db.run(Store.get_items, wanted))
        outcomes: list[DeliveryOutcome] = []
        email_rows = [r for r in rows if r.channel == Channel.EMAIL]
        slack_rows = [r for r in rows if r.channel == Channel.SLACK]
        self._on_outcome = (lambda outcome: on_outcome(outcome, len(rows))) if on_outcome else None
        renewing = asyncio.create_task(self._renew_leases())
        try:
            async with AsyncExitStack() as stack:

                async def emails() -> None:
                    if email_rows:
                        outcomes.extend(await self._send_email_batch(stack, email_rows, now=now, halt=stop))

                async def posts() -> None:
                    for row in slack_rows:
                        if stop is not None and stop.is_set():
                            break  # not started: released below, claimable by the next process or start
                        outcome = self._heard(await self._deliver_one(row, now=now, send=self._send_slack))
                        outcomes.append(outcome)
                        if outcome.retry_after is not None:  # Slack is rate-limiting this workspace: pace the rest
                            if outcome.retry_after > SLACK_PAUSE_MAX:
                                break  # the rest waits for the next cycle (released below), not for a 429 each
                            await asyncio.sleep(outcome.retry_after)

                await asyncio.gather(emails(), posts())
        finally:
            renewing.cancel()
            with suppress(asyncio.CancelledError):
                await renewing
            await self._record_sent(now=now)
            released = await self.db.run(Store.release, owner=owner, now=now)
            if released:
                log.info("gave back %d claimed deliveries not started; the next cycle sends them", released)
        return outcomes

    def _heard(self, outcome: DeliveryOutcome) -> DeliveryOutcome:
        """Tell the caller's progress display (`deliver_due(on_outcome=...)`) of one row done."""
        if self._on_outcome is not None:
            self._on_outcome(outcome)
        return outcome

    async def _renew_leases(self) -> None:
        """Keep this process's rows held while its batch is alive (a slow relay must not let another process
        take them over)."""
        while True:
            await asyncio.sleep(RENEW_EVERY)
            try:
                await self.db.run(Store.renew, owner=self.owner, until=self._now() + LEASE)
            except Exception as exc:  # noqa: BLE001 - the store is down: the sends go on, the lease may lapse
                log.warning("could not renew the outbox lease (%s: %s)", type(exc).__name__, exc)

    async def _send_email_batch(self, stack: AsyncExitStack, rows: Sequence[Delivery], *, now: datetime,
                                halt: asyncio.Event | None = None) -> list[DeliveryOutcome]:
        smtp = self.config.smtp
        if smtp is None:
            return [await self._record(r, Permanent("no [smtp] section in the config"), now=now) for r in rows]
        lanes = min(smtp.concurrency, len(rows))
        notifiers = [await stack.enter_async_context(EmailNotifier(smtp)) for _ in range(lanes)]
        queue: asyncio.Queue[Delivery] = asyncio.Queue()
        for row in rows:
            queue.put_nowait(row)
        outcomes: list[DeliveryOutcome] = []
        stop = asyncio.Event()

        async def lane(number: int, notifier: EmailNotifier) -> None:
            while not queue.empty() and not (halt is not None and halt.is_set()):
                row = queue.get_nowait()
                if stop.is_set():  # authentication failed: give the row back untouched, try next cycle
                    await self.db.run(Store.release, owner=self.owner, now=now, ids=[row.id],
                                      next_attempt_at=now + retry_delay(1))
                    continue
                outcome = await self._deliver_one(row, now=now, send=lambda r, p: self._send_email(notifier, r, p),
                                                  lane=number)
                outcomes.append(self._heard(outcome))
                if outcome.stop_batch:
                    stop.set()

        await asyncio.gather(*(lane(number, n) for number, n in enumerate(notifiers)))
        return outcomes

    async def _send_email(self, notifier: EmailNotifier, row: Delivery, prepared: Prepared) -> None:
        await notifier.send(prepared.wire or self._wire(row, prepared.email))

    def _wire(self, row: Delivery, rendered: RenderedEmail | None) -> Outgoing:
        """The email of a row as SMTP sends it (in a worker thread, with the rendering)."""
        smtp = self.config.smtp
        assert smtp is not None and rendered is not None
        sender_address = smtp.sender_address
        domain = sender_address.rsplit("@", 1)[-1]
        return compose(rendered, sender=smtp.sender, to=row.address, message_id=row.message_id,
                       date=row.created_at, list_id=f"digestbot <digest.{domain}>",
                       unsubscribe_mailto=unsubscribe_mailto(self.config, row, sender_address),
                       unsubscribe_url=unsubscribe_link(self.config, self.secret, row))

    def _prepare(self, row: Delivery) -> Prepared:
        """What to send for a row, ready for the wire: rendered (and an email written as its bytes) in one go, in a
        worker thread, from the batch's papers."""
        prepared = prepare(self._items, row, self.renderer, config=self.config, secret=self.secret)
        if prepared.email is not None and row.channel == Channel.EMAIL and self.config.smtp is not None:
            prepared = replace(prepared, wire=self._wire(row, prepared.email))
        return prepared

    async def _not_to_send(self, row: Delivery, *, now: datetime) -> DeliveryOutcome | None:
        """The outcome of a row that must not be sent now (too old, destination disabled, reader unsubscribed as
        the batch began, a secret missing), recorded; None when it may go."""
        owner = self.owner
        if row.created_at + MAX_AGE[row.kind] < now:
            await self.db.run(Store.mark_expired, row.id, owner=owner, error="too old to be useful; not sent",
                              at=now)
            return DeliveryOutcome(row.key, row.recipient, row.channel, row.kind, Outcome.EXPIRED)
        disabled = self._disabled.get(destination(row))
        if disabled:
            await self.db.run(Store.mark_failed, row.id, owner=owner, error=f"destination disabled: {disabled}",
                              at=now)
            return DeliveryOutcome(row.key, row.recipient, row.channel, row.kind, Outcome.FAILED, error=disabled)
        if (row.channel == Channel.EMAIL and row.kind != Kind.NOTICE
                and row.address.strip().lower() in self._unsubscribed):
            await self.db.run(Store.mark_cancelled, row.id, owner=owner,
                              error="the reader unsubscribed before it was sent", at=now)
            log.info("%s to %s not sent: unsubscribed since it was planned", row.kind, row.recipient)
            return DeliveryOutcome(row.key, row.recipient, row.channel, row.kind, Outcome.CANCELLED)
        missing = missing_secret(self.config, row)
        if missing is not None:  # a configuration problem, not the destination's: wait for it, tell the admin
            await self.db.run(Store.release, owner=owner, now=now, ids=[row.id], next_attempt_at=now + SECRET_WAIT)
            log.error("%s to %s via %s held: %s", row.kind, row.recipient, row.channel, missing)
            if row.kind != Kind.NOTICE:
                await self._tell_admin("secret-missing", row, missing, key=f"secret-missing:{now:%Y-%m-%d}", now=now)
            return DeliveryOutcome(row.key, row.recipient, row.channel, row.kind, Outcome.RETRY, error=missing)
        return None

    async def _deliver_one(self, row: Delivery, *, now: datetime, send: Any, lane: int = 0) -> DeliveryOutcome:
        refused = await self._not_to_send(row, now=now)
        if refused is not None:
            return refused
        if row.channel == Channel.EMAIL:
            # Begun before it is rendered: the write that begins it also records the lane's previous email, and
            # the sooner it follows that send the fewer a crash can send twice (at most one per lane, ever).
            # (Rendering the next row during this send instead was slower: a render thread holding the GIL
            # kept the other lanes' store writes waiting, 8 ms instead of 3 on PostgreSQL.)
            if not await self._begin(row, now=now, lane=lane):
                return DeliveryOutcome(row.key, row.recipient, row.channel, row.kind, Outcome.LOST)
            prepared = await self._ready(row, now=now)
            if isinstance(prepared, DeliveryOutcome):
                return prepared
            if row.last_error == LEASE_LAPSED:
                log.warning("%s to %s via email: %s; sending again with the same Message-ID %s, so at most one "
                            "duplicate arrives and mail clients can tell", row.kind, row.recipient, LEASE_LAPSED,
                            row.message_id)
        else:
            prepared = await self._ready(row, now=now)
            if isinstance(prepared, DeliveryOutcome):
                return prepared
            if row.last_error == LEASE_LAPSED:  # Slack has no idempotency key: look before posting again
                settled = await self._settle_slack(row, prepared, now=now)
                if isinstance(settled, DeliveryOutcome):
                    return settled
                row = settled
            if not await self._begin(row, now=now, lane=None):
                return DeliveryOutcome(row.key, row.recipient, row.channel, row.kind, Outcome.LOST)
        row = replace(row, attempts=row.attempts + 1)
        try:
            await send(row, prepared)
        except DeliveryError as exc:
            return await self._record(row, exc, now=now)
        if row.channel == Channel.EMAIL:
            # Recorded with the lane's next write (at the latest when the batch ends): a crash in between sends it
            # again with its Message-ID, which an email survives; a Slack post is recorded at once (below).
            self._sent.setdefault(lane, []).append(row.id)
        elif not await self.db.run(Store.mark_sent, row.id, owner=self.owner, at=now):
            log.warning("%s to %s via %s was sent, but another process had taken the row over (this one's lease "
                        "lapsed); it records the outcome", row.kind, row.recipient, row.channel)
        log.info("sent %s to %s via %s (%d items)", row.kind, row.recipient, row.channel, prepared.items)
        return DeliveryOutcome(row.key, row.recipient, row.channel, row.kind, Outcome.SENT, items=prepared.items)

    async def _ready(self, row: Delivery, *, now: datetime) -> Prepared | DeliveryOutcome:
        """The row rendered for sending (in a worker thread), or the recorded outcome of one not to send: a
        digest with nothing to say, or one that cannot be rendered."""
        try:
            prepared = await asyncio.to_thread(self._prepare, row)
        except Exception as exc:  # noqa: BLE001 - one digest that cannot be written must not stop the others
            return await self._unrenderable(row, exc, now=now)
        if prepared.skip:
            await self.db.run(Store.mark_sent, row.id, owner=self.owner, at=now)
            return DeliveryOutcome(row.key, row.recipient, row.channel, row.kind, Outcome.SKIPPED)
        return prepared

    async def _unrenderable(self, row: Delivery, exc: Exception, *, now: datetime) -> DeliveryOutcome:
        """A row whose content could not be rendered (a bug, not the destination's fault): failed with the error,
        not retried blindly, the admin told; `digestbot outbox retry ID` sends it once the cause is fixed."""
        error = f"could not be rendered: {type(exc).__name__}: {exc}"
        log.error("%s to %s via %s %s; the others go out", row.kind, row.recipient, row.channel, error, exc_info=exc)
        await self.db.run(Store.mark_failed, row.id, owner=self.owner, error=error, at=now)
        if row.kind != Kind.NOTICE:
            await self._tell_admin("render-failed", row, error, key=f"render-failed:{now:%Y-%m-%d}", now=now)
        return DeliveryOutcome(row.key, row.recipient, row.channel, row.kind, Outcome.FAILED, error=error)

    async def _begin(self, row: Delivery, *, now: datetime, lane: int | None) -> bool:
        """Mark the row as being sent (from here a crash leaves it ambiguous), recording with the same write what
        the SMTP `lane` sent last; False if another process has taken it over."""
        sent = self._sent.pop(lane, []) if lane is not None else []
        began, recorded = await self.db.run(Store.begin_send_after, row.id, sent=sent, sent_at=now, owner=self.owner,
                                            now=self._now(), lease=LEASE)
        self._lost_marks(sent, recorded)
        if not began:
            log.warning("%s to %s via %s: taken over by another process before it was sent; not sent here",
                        row.kind, row.recipient, row.channel)
        return bool(began)

    async def _record_sent(self, *, now: datetime) -> None:
        """Record the emails sent since each lane's last write (the batch's end, or a stop)."""
        sent = [row_id for pending in self._sent.values() for row_id in pending]
        self._sent = {}
        if sent:
            self._lost_marks(sent, await self.db.run(Store.mark_sent_many, sent, owner=self.owner, at=now))

    @staticmethod
    def _lost_marks(sent: Sequence[int], recorded: set[int]) -> None:
        if len(recorded) < len(sent):
            log.warning("%d email(s) were sent, but another process had taken their rows over (this one's lease "
                        "lapsed); it records the outcome", len(sent) - len(recorded))

    async def _tell_admin(self, kind: str, row: Delivery, error: str, *, key: str, now: datetime) -> None:
        """Plan a notice to the admin (once per key): sending is stuck in a way only a person can fix."""
        notice = delivery_problem_notice(kind, row.channel, row.address, error, now)
        rows = notice_rows(admin_destinations(self.config), notice, key, now=now,
                           new_message_id=lambda: new_message_id(self.config))
        if rows:
            await self.db.run(Store.plan, rows, now=now)

    async def _record(self, row: Delivery, exc: DeliveryError, *, now: datetime) -> DeliveryOutcome:
        """Turn a failed send into the row's next state; the message says where and what."""
        error, owner = exc.message, self.owner
        status = next(state for kind, state in OUTCOMES if isinstance(exc, kind))
        if status == Outcome.RETRY and row.attempts >= MAX_ATTEMPTS:
            status = Outcome.FAILED
        if status == Outcome.UNKNOWN:
            await self.db.run(Store.mark_unknown, row.id, owner=owner, error=error, at=now)
        elif status == Outcome.RETRY:
            await self.db.run(Store.mark_retry, row.id, owner=owner, error=error,
                              next_attempt_at=now + retry_delay(row.attempts, exc.retry_after))
        else:
            await self.db.run(Store.mark_failed, row.id, owner=owner, error=error, at=now)
        log.warning("%s to %s via %s: %s (%s)", row.kind, row.recipient, row.channel, status, error)
        if status == Outcome.UNKNOWN and row.channel == Channel.SLACK and row.kind != Kind.NOTICE:
            await self._tell_admin("slack-unknown", row, error, key=f"slack-unknown:{row.key}", now=now)
        if isinstance(exc, DestinationGone) and row.kind != Kind.NOTICE:
            await self.db.run(Store.disable_destination, row.channel, row.address, reason=error, at=now)
            self._disabled[destination(row)] = error
            await self._tell_admin("destination-disabled", row, error, key=f"disabled:{row.channel}:{row.address}",
                                   now=now)
        elif exc.stop_batch and row.kind != Kind.NOTICE:
            await self._tell_admin("auth-failed", row, error, key=f"auth-failed:{row.channel}:{now:%Y-%m-%d}",
                                   now=now)
        return DeliveryOutcome(row.key, row.recipient, row.channel, row.kind, status, error=error,
                               stop_batch=exc.stop_batch, retry_after=exc.retry_after)
