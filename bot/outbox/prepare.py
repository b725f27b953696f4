"""What a row says, rebuilt from its frozen payload and rendered for its channel before any network I/O.

The payload holds ids, scores and reasons; the items come from the store now (an item deleted since is left
out). A row that needs a secret the environment does not have is found here, before a send is attempted.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from bot.config import Config
from bot.models import Item, ScoredItem
from bot.outbox.keys import page_link, rating_links, unsubscribe_link, webhook_env
from bot.outbox.model import Channel, Delivery, Digest, Kind, RatingLinks
from bot.render import RenderedEmail, Renderer, SlackMessage

if TYPE_CHECKING:
    from bot.notify.mime import Outgoing


@dataclass(frozen=True, slots=True)
class Prepared:
    """A row's content, rendered for its channel before the send (so a send is only network I/O)."""

    email: RenderedEmail | None = None
    slack: list[SlackMessage] | None = None
    items: int = 0
    skip: bool = False
    wire: Outgoing | None = None  # the email as SMTP sends it, made ready off the event loop (`Deliverer`)


class ItemSource(Protocol):
    """Where a row's papers are read from: the `Store`, or a batch's papers read in one query (`BatchItems`)."""

    def get_items(self, ids: Sequence[str]) -> dict[str, Item]: ...


@dataclass(frozen=True, slots=True)
class BatchItems:
    """The papers of every row of a delivery batch, read in one query before the batch: a row's prepare then
    touches no database (10,000 digests were 10,000 reads). A paper deleted before the batch is absent, as it
    would be from the store."""

    items: Mapping[str, Item]

    def get_items(self, ids: Sequence[str]) -> dict[str, Item]:
        return {i: self.items[i] for i in dict.fromkeys(ids) if i in self.items}


def digest_for(store: ItemSource, row: Delivery, *, config: Config, secret: bytes | None) -> Digest:
    """Rebuild the frozen digest: items by id from the store, scores and reasons from the payload; its links
    signed with `secret` (none without it)."""
    payload = row.payload
    items = store.get_items(payload.item_ids)
    matches = tuple(payload.matches(items))
    slack = config.slack
    return Digest(recipient=row.recipient, channel=row.channel, kind=row.kind, period_key=row.period_key,
                  items=matches, generated_at=row.created_at,
                  ratings=ratings_of(matches, config=config, secret=secret, row=row),
                  rate_buttons=row.channel == Channel.SLACK and slack is not None and slack.interactive,
                  total_matched=payload.total_matched, failing_sources=payload.failing_sources,
                  since=payload.since, page_url=page_link(config, secret, row),
                  unsubscribe_url=unsubscribe_link(config, secret, row),
                  alerted=frozenset(e.id for e in payload.items if e.alerted))


def ratings_of(matches: Iterable[ScoredItem], *, config: Config, secret: bytes | None,
               row: Delivery) -> dict[str, RatingLinks]:
    """The 👍 / 👎 links of these papers in this row (none without `bot.public_url` and a secret)."""
    links = {s.item.id: rating_links(config, secret, row, s.item.id, s.profile) for s in matches}
    return {item_id: link for item_id, link in links.items() if link is not None}


def prepare(store: ItemSource, row: Delivery, renderer: Renderer, *, config: Config,
            secret: bytes | None) -> Prepared:
    """What to send for a row, rendered for its channel; digests with nothing to say are skipped."""
    notice = row.payload.notice
    if row.kind == Kind.NOTICE and notice is not None:
        if row.channel == Channel.EMAIL:
            return Prepared(email=renderer.render_notice_email(notice))
        return Prepared(slack=renderer.render_notice_slack(notice))
    digest = digest_for(store, row, config=config, secret=secret)
    if row.kind == Kind.DIGEST and not digest.items and not row.payload.send_empty and not digest.failing_sources:
        return Prepared(skip=True)
    if row.channel == Channel.EMAIL:
        return Prepared(email=renderer.render_email(digest), items=len(digest.items))
    return Prepared(slack=renderer.render_slack(digest), items=len(digest.items))


def missing_secret(config: Config, row: Delivery) -> str | None:
    """The environment variable this row needs and does not have, said with the key that names it."""
    smtp, slack = config.smtp, config.slack
    if row.channel == Channel.EMAIL:
        if smtp is not None and smtp.username and smtp.password_env and not os.environ.get(smtp.password_env):
            return f"{smtp.password_env} (smtp.password_env) is not set"
        return None
    env = webhook_env(row.address)
    if env is not None:
        return None if os.environ.get(env) else f"{env} (the webhook_env of {row.recipient}) is not set"
    if slack is not None and slack.token_env and not os.environ.get(slack.token_env):
        return f"{slack.token_env} (slack.token_env) is not set"
    return None
