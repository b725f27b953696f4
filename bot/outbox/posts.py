"""Posting a digest to Slack from the outbox, and settling a post whose process died mid-way (`Deliverer`).

Slack has no idempotency key, so a digest split into several messages keeps its progress in the store, and a
post in doubt is looked for in the channel's history (by the metadata each part carries) before anything is
posted again.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import datetime
from typing import TYPE_CHECKING

from bot.config import Config, SlackSettings
from bot.errors import DeliveryError, Permanent, Retryable
from bot.notify.slack import SlackNotifier
from bot.outbox.keys import webhook_env
from bot.outbox.model import Delivery, DeliveryOutcome, Kind, Outcome, retry_delay
from bot.store import LEASE_LAPSED, AsyncStore, Store

if TYPE_CHECKING:
    from bot.outbox.prepare import Prepared

log = logging.getLogger(__name__)


class SlackPosts:
    """The Slack half of `Deliverer`."""

    config: Config
    db: AsyncStore
    owner: str
    _tell_admin: Callable[..., Awaitable[None]]  # `Deliverer._tell_admin`

    async def _send_slack(self, row: Delivery, prepared: Prepared) -> None:
        """Post every part of the digest; parts already posted (recorded one by one) are not posted again.

        Slack has no idempotency key, so a digest split into several messages keeps its progress in the store:
        a retry after part 3 of 5 failed resumes at part 3.
        """
        settings = self.config.slack
        hook = webhook_env(row.address)
        if settings is None and hook is None:
            raise Permanent("no [slack] section in the config")
        webhook_url = os.environ.get(hook) if hook else None
        if hook and not webhook_url:
            raise Retryable(f"environment variable {hook} (the webhook URL for {row.recipient}) is not set")
        notifier = self._slack_notifier()
        done = row.parts_sent
        for index, message in enumerate(prepared.slack or []):
            if index < done:
                continue
            if webhook_url:
                await notifier.post_webhook(webhook_url, message)
            else:
                await notifier.post(row.address, message, tag=(row.key, index))
            await self.db.run(Store.set_parts_sent, row.id, index + 1)

    def _slack_notifier(self) -> SlackNotifier:
        settings = self.config.slack
        return SlackNotifier(settings or SlackSettings(), token=settings.token() if settings else None)

    async def _settle_slack(self, row: Delivery, prepared: Prepared, *, now: datetime) -> DeliveryOutcome | Delivery:
        """A Slack row whose send had started when its process died: find out which parts went out before going
        on: the row with the parts found counted as posted (then post the rest), or the row's outcome (all there,
        or no way to tell)."""
        done = row.parts_sent
        parts = len(prepared.slack or [])
        try:
            if webhook_env(row.address) is not None:
                raise Permanent(f"{LEASE_LAPSED} mid-post to a Slack webhook",
                                    hint="A webhook cannot read the channel, so digestbot cannot tell.")
            found = await self._slack_notifier().find_posted(row.address, row.key, since=row.send_started_at)
        except DeliveryError as exc:
            if isinstance(exc, Retryable):  # ask again later; the row keeps its doubt (LEASE_LAPSED stays)
                await self.db.run(Store.release, owner=self.owner, now=now, ids=[row.id],
                                   next_attempt_at=now + retry_delay(1, exc.retry_after))
                return DeliveryOutcome(row.key, row.recipient, row.channel, row.kind, Outcome.RETRY, error=exc.message)
            error = f"{LEASE_LAPSED}; {exc.message}"
            await self.db.run(Store.mark_unknown, row.id, owner=self.owner, error=error, at=now)
            log.warning("%s to %s via slack: %s; marked unknown (`digestbot outbox retry %d` posts it)",
                        row.kind, row.recipient, error, row.id)
            if row.kind != Kind.NOTICE:  # a notice about a notice could go on for ever
                await self._tell_admin("slack-unknown", row, error, key=f"slack-unknown:{row.key}", now=now)
            return DeliveryOutcome(row.key, row.recipient, row.channel, row.kind, Outcome.UNKNOWN, error=error)
        while done in found:
            done += 1
        await self.db.run(Store.set_parts_sent, row.id, done)
        log.warning("%s to %s via slack: its process stopped mid-post; %d of %d parts found in the channel, %s",
                    row.kind, row.recipient, done, parts,
                    "nothing to post again" if done >= parts else "posting the rest")
        if done >= parts:
            await self.db.run(Store.mark_sent, row.id, owner=self.owner, at=now)
            return DeliveryOutcome(row.key, row.recipient, row.channel, row.kind, Outcome.SENT, items=prepared.items)
        return replace(row, parts_sent=done)
