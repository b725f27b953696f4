"""Signed, expiring tokens for the links in a message (unsubscribe, the digest as a page, 👍 / 👎 on a paper):
the link is its own proof, no token table to look up.

A token is `<payload>.<mac>`, both base64url without padding, so it fits in a URL path as it is:

    payload = "<issue day YYYYMMDD>:<address>"                     (utf-8)
    mac     = HMAC-SHA256(secret, PURPOSE + payload)[:16]          (128 bits)

PURPOSE names the token type and format version inside the signed message, so a MAC made for anything else
with the same secret can never pass as an unsubscribe token (and a v2 format can't be confused with v1). Only
the issue *day* is kept: every email sent to an address on one day carries the same link, and the token is
short. Decoding is strict (the alphabet, and the canonical encoding: base64's unused trailing bits could
otherwise let a changed character decode to the same bytes).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import logging
import os
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Literal, Protocol

from bot.errors import StoreError

log = logging.getLogger(__name__)

PURPOSE = b"digestbot/unsubscribe/v1\n"
PURPOSES = {"unsubscribe": PURPOSE, "digest": b"digestbot/digest-page/v1\n",  # what a token opens
            "rate": b"digestbot/rate/v1\n"}
Purpose = Literal["unsubscribe", "digest", "rate"]
MAC_BYTES = 16
TOKEN_MAX_AGE = timedelta(days=90)
DIGEST_PAGE_MAX_AGE = timedelta(days=30)  # how long "see them all" works: a month of reading back
CLOCK_SKEW = timedelta(minutes=5)
RATING_MAX_AGE = TOKEN_MAX_AGE  # 👍 / 👎 on a paper from an email up to three months old
MAX_TOKEN_CHARS = 1024  # an email address is at most 254 characters; anything far longer is not ours
MIN_ENV_SECRET_CHARS = 16

_B64URL = re.compile(r"^[A-Za-z0-9_-]+$")

Reason = Literal["malformed", "bad signature", "expired", "issued in the future"]


class InvalidToken(ValueError):
    """A token that must not unsubscribe anyone; `reason` says which check it failed (for the page and logs)."""

    def __init__(self, reason: Reason) -> None:
        super().__init__(f"invalid token: {reason}")
        self.reason: Reason = reason


class SecretStore(Protocol):
    """The Store method `load_secret` needs (a Protocol, so tokens.py does not import the store)."""

    def setdefault_secret(self, value: str) -> str: ...


def _b64encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64decode(text: str) -> bytes:
    """Strict: only the base64url alphabet, and only the one canonical spelling of the bytes."""
    if not _B64URL.match(text):
        raise InvalidToken("malformed")
    try:
        data = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        raise InvalidToken("malformed") from None
    if _b64encode(data) != text:
        raise InvalidToken("malformed")
    return data


def _utc(moment: datetime) -> datetime:
    """Naive datetimes are UTC (what SQLite hands back); aware ones are converted."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _mac(secret: bytes, payload: bytes, purpose: Purpose = "unsubscribe") -> bytes:
    return hmac.new(secret, PURPOSES[purpose] + payload, hashlib.sha256).digest()[:MAC_BYTES]


def make_token(address: str, secret: bytes, *, issued: datetime, purpose: Purpose = "unsubscribe") -> str:
    """The token for `address` (for a "digest" token: an outbox key), valid from the (UTC) day of `issued` for
    `read_token`'s max_age; a token made for one purpose never opens another."""
    if not secret:
        raise ValueError("an empty secret would make every token forgeable")
    payload = f"{_utc(issued):%Y%m%d}:{address}".encode()
    return f"{_b64encode(payload)}.{_b64encode(_mac(secret, payload, purpose))}"


def read_token(token: str, secret: bytes, *, now: datetime, max_age: timedelta = TOKEN_MAX_AGE,
               purpose: Purpose = "unsubscribe") -> str:
    """The address a genuine, current token was made for; otherwise InvalidToken with the reason.

    Age counts from the start of the issue day (UTC), so a token lives between max_age - 1 day and max_age.
    """
    if len(token) > MAX_TOKEN_CHARS or token.count(".") != 1:
        raise InvalidToken("malformed")
    payload_text, mac_text = token.split(".")
    payload, mac = _b64decode(payload_text), _b64decode(mac_text)
    if len(mac) != MAC_BYTES:
        raise InvalidToken("malformed")
    if not hmac.compare_digest(mac, _mac(secret, payload, purpose)):
        raise InvalidToken("bad signature")
    # Signed by us from here on, so a parse failure means a bug or a leaked secret; still never a crash.
    day_text, sep, address = payload.decode("utf-8", errors="replace").partition(":")
    if not sep or not address or len(day_text) != 8 or not day_text.isascii() or not day_text.isdigit():
        raise InvalidToken("malformed")
    try:
        issued = datetime.combine(date(int(day_text[:4]), int(day_text[4:6]), int(day_text[6:8])), time(), UTC)
    except ValueError:
        raise InvalidToken("malformed") from None
    current = _utc(now)
    if issued > current + CLOCK_SKEW:
        raise InvalidToken("issued in the future")
    if current - issued > max_age:
        raise InvalidToken("expired")
    return address


_SEP = "\x1f"  # ASCII unit separator: in none of a channel, a recipient name, a profile name or an item id


@dataclass(frozen=True, slots=True)
class RatingSubject:
    """What a 👍 / 👎 link is for: one recipient, one paper, as shown for one profile (signed as a whole, so no
    part can be swapped for another recipient's or paper's)."""

    channel: str
    recipient: str
    profile: str
    item_id: str

    def encode(self) -> str:
        parts = (self.channel, self.recipient, self.profile, self.item_id)
        if any(_SEP in part or not part for part in parts):
            raise ValueError(f"cannot sign a rating for {parts!r}: an empty part or a control character")
        return _SEP.join(parts)

    @classmethod
    def decode(cls, text: str) -> RatingSubject:
        parts = text.split(_SEP)
        if len(parts) != 4 or not all(parts):
            raise InvalidToken("malformed")
        return cls(*parts)


def rating_token(subject: RatingSubject, secret: bytes, *, issued: datetime) -> str:
    """The token of a 👍 / 👎 link (the rating itself is chosen on the page, so one token serves both)."""
    return make_token(subject.encode(), secret, issued=issued, purpose="rate")


def read_rating_token(token: str, secret: bytes, *, now: datetime) -> RatingSubject:
    """The subject of a genuine, current rating token; otherwise InvalidToken with the reason."""
    return RatingSubject.decode(read_token(token, secret, now=now, max_age=RATING_MAX_AGE, purpose="rate"))


def load_secret(store: SecretStore, env_name: str | None = "DIGESTBOT_SECRET") -> bytes:
    """The signing secret: the env var if it is long enough, else one generated once and kept in the store.

    Keeping it in the database means tokens survive restarts and every process on that database agrees;
    two processes creating it at the same moment end up with the one that was stored first.
    """
    if env_name:
        value = os.environ.get(env_name)
        if value and len(value) >= MIN_ENV_SECRET_CHARS:
            return value.encode("utf-8")
        if value:
            log.warning("%s is shorter than %d characters; ignoring it and using the secret kept in the database",
                        env_name, MIN_ENV_SECRET_CHARS)
    stored = store.setdefault_secret(secrets.token_hex(32))
    try:
        secret = bytes.fromhex(stored or "")
    except ValueError:
        secret = b""
    if len(secret) < MIN_ENV_SECRET_CHARS:
        raise StoreError("the secret kept in the database (bot_state.secret) is not usable",
                         hint=f"Set that column to NULL to generate a new one, or set {env_name or 'a secret'}.")
    return secret
