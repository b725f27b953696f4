"""Who and what an outbox row is: its key, its recipient's identity, its Message-ID and its signed links.

Everything that makes a row exactly-once or addressable lives here, so planning, delivery and the web endpoint
agree on one spelling of each:

    digest:<channel>:<recipient>:<period>      one per schedule period (`digestbot outbox` shows them)
    alert:<channel>:<recipient>:<hash of ids>  one per set of alerted papers
    notice:<channel>:<what>                    one per admin notice (e.g. a source's failure streak)

A destination is (channel, address): what is disabled after a permanent error.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from email.utils import make_msgid
from urllib.parse import quote

from bot.config import Config, SlackChannelConfig, SubscriberConfig
from bot.outbox.model import Channel, Delivery, Kind, RatingLinks
from bot.tokens import RatingSubject, make_token, rating_token

Recipient = SubscriberConfig | SlackChannelConfig
Destination = tuple[str, str]  # (channel, address)
WEBHOOK = "webhook:"  # a Slack destination posted to by webhook: "webhook:<the variable holding its URL>"


def recipient_identity(recipient: Recipient) -> tuple[str, Channel, str]:
    """(name, channel, address) as the outbox knows a recipient."""
    if isinstance(recipient, SubscriberConfig):
        return recipient.name, Channel.EMAIL, recipient.email
    address = f"{WEBHOOK}{recipient.webhook_env}" if recipient.webhook_env else recipient.channel
    return recipient.label, Channel.SLACK, address


def digest_key(channel: str, name: str, period: str) -> str:
    return f"{Kind.DIGEST}:{channel}:{name}:{period}"


def alert_key(channel: str, name: str, item_ids: Iterable[str]) -> str:
    """The same papers alerted to the same recipient twice are one alert."""
    digest = hashlib.sha256(",".join(sorted(item_ids)).encode()).hexdigest()[:16]
    return f"{Kind.ALERT}:{channel}:{name}:{digest}"


def notice_key(channel: str, what: str) -> str:
    return f"{Kind.NOTICE}:{channel}:{what}"


def webhook_env(address: str) -> str | None:
    """The environment variable holding a webhook destination's URL; None for a channel the bot token posts to."""
    return address.removeprefix(WEBHOOK) if address.startswith(WEBHOOK) else None


def destination(row: Delivery) -> Destination:
    return row.channel, row.address


def new_message_id(config: Config) -> str:
    """A Message-ID in the sender's domain, chosen at planning and reused on every retry."""
    sender = config.smtp.sender_address if config.smtp else "digestbot@localhost"
    domain = sender.rsplit("@", 1)[-1] or "localhost"
    return make_msgid(idstring="digestbot", domain=domain)


def unsubscribe_url(public_url: str, token: str) -> str:
    """The link for emails and List-Unsubscribe; `public_url` may carry a path prefix (behind a proxy)."""
    return f"{public_url.rstrip('/')}/unsubscribe/{quote(token, safe='')}"


def digest_url(public_url: str, token: str) -> str:
    """The link to a digest as a web page ("N more matched — see them all", "View in a browser")."""
    return f"{public_url.rstrip('/')}/digest/{quote(token, safe='')}"


def unsubscribe_link(config: Config, secret: bytes | None, row: Delivery) -> str | None:
    """The one-click link for an email row, signed for its address; stable across retries (planning time).

    Only with `bot.public_url` (somewhere the endpoint is reachable) and only for email: on a Slack channel
    anyone reading could unsubscribe it.
    """
    public_url = config.bot.public_url
    if row.channel != Channel.EMAIL or not public_url or not secret:
        return None
    return unsubscribe_url(public_url, make_token(row.address, secret, issued=row.created_at))


def page_link(config: Config, secret: bytes | None, row: Delivery) -> str | None:
    """The digest as a web page, signed for this row (`bot.web`'s /digest/): with `bot.public_url` only."""
    public_url = config.bot.public_url
    if row.kind == Kind.NOTICE or not public_url or not secret:
        return None
    return digest_url(public_url, make_token(row.key, secret, issued=row.created_at, purpose="digest"))


def rating_url(public_url: str, token: str, choice: str) -> str:
    """A 👍 (`up`) or 👎 (`down`) link: a page that asks, on the bot's endpoint (`bot.web.rating`)."""
    return f"{public_url.rstrip('/')}/rate/{quote(token, safe='')}/{choice}"


def rating_links(config: Config, secret: bytes | None, row: Delivery, item_id: str,
                 profile: str) -> RatingLinks | None:
    """👍 / 👎 for one paper of a digest or alert, signed for its recipient and the profile it was shown for;
    stable across retries (signed with the row's planning day). Only with `bot.public_url`."""
    public_url = config.bot.public_url
    if row.kind == Kind.NOTICE or not public_url or not secret:
        return None
    try:
        token = rating_token(RatingSubject(row.channel, row.recipient, profile, item_id), secret,
                             issued=row.created_at)
    except ValueError:  # a part that cannot be signed (an empty name): no links rather than no digest
        return None
    return RatingLinks(token, rating_url(public_url, token, "up"), rating_url(public_url, token, "down"))


def unsubscribe_mailto(config: Config, row: Delivery, sender: str) -> str:
    """The List-Unsubscribe mailto, which a person reads: the admin's address if there is one, else the sender's."""
    to = config.bot.admin_email or sender
    return f"mailto:{to}?subject=" + quote(f"unsubscribe {row.address}")
