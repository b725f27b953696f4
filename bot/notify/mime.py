"""An email as the bytes SMTP sends, written directly rather than built with `EmailMessage` and flattened.

Why: building a 20-paper digest with the `email` package and flattening it took ~3.5 ms, a third of the CPU of a
10,000-digest morning (BENCHMARKS.md); here it takes a fraction of a millisecond. The bodies are quoted-printable
through `binascii` (C) and the fixed headers are written as they are. Every header a reader or the config controls
(From, To, Subject), or whose value is not plain ASCII, still goes through the `email` package's own parsing and
folding (RFC 2047 encoded words, address quoting), cached, so what is sent parses to the same message the `email`
package would have built (tests/test_mime.py holds the two side by side).
"""

from __future__ import annotations

import binascii
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from email.headerregistry import AddressHeader
from email.policy import SMTP as SMTP_POLICY
from email.utils import format_datetime
from functools import lru_cache

from bot.render import SUBJECT_LIMIT, RenderedEmail
from bot.safetext import one_line

# RFC 5322's line limit, not the 78 characters it recommends: the email package folds a header whose word does not
# fit 78 characters by turning it into RFC 2047 encoded-words, and a `List-Unsubscribe` of
# `=?utf-8?q?=3Chttps=3A//…?=` is no link to Gmail or Yahoo (RFC 2369 wants angle-bracketed URIs, folded only at
# whitespace). Headers here are one line, far below 998 characters; bodies are quoted-printable (76 a line).
WIRE_POLICY = SMTP_POLICY.clone(cte_type="7bit", max_line_length=998)
LINE_LIMIT = 998

_URI_UNSAFE = str.maketrans({"<": "%3C", ">": "%3E", ",": "%2C", " ": "%20", '"': "%22"})
# Headers the email package parses into structure (addresses, dates, ids): never written as they come.
_PARSED = frozenset({"from", "to", "date", "message-id"})
# Printable ASCII words, one space apart: what an unstructured header writes unchanged.
_PLAIN = re.compile(r"[!-~]+(?: [!-~]+)*\Z")


@dataclass(frozen=True, slots=True)
class Outgoing:
    """A message as SMTP sends it: envelope sender and recipients, and the bytes."""

    sender: str | None
    recipients: tuple[str, ...]
    data: bytes
    message_id: str


def _uri(value: str) -> str:
    """A URI that cannot break out of its `<...>` in List-Unsubscribe."""
    return one_line(value).replace(" ", "").translate(_URI_UNSAFE)


def headers(rendered: RenderedEmail, *, sender: str, to: str, message_id: str, date: datetime, list_id: str,
            unsubscribe_mailto: str | None, unsubscribe_url: str | None) -> list[tuple[str, str]]:
    """The message's own headers, in order, every value made one line (a hostile title cannot add a header)."""
    values = [
        ("Subject", one_line(rendered.subject, SUBJECT_LIMIT)),
        ("From", one_line(sender)),
        ("To", one_line(to)),
        ("Date", format_datetime(date if date.tzinfo else date.replace(tzinfo=UTC))),
        ("Message-ID", one_line(message_id)),
        ("List-Id", one_line(list_id)),
    ]
    links = []
    if unsubscribe_mailto:
        mailto = _uri(unsubscribe_mailto)
        links.append(f"<{mailto if mailto.lower().startswith('mailto:') else 'mailto:' + mailto}>")
    url = _uri(unsubscribe_url) if unsubscribe_url else ""
    if url.lower().startswith(("https://", "http://")):
        links.append(f"<{url}>")
    if links:
        values.append(("List-Unsubscribe", ", ".join(links)))
    if url.lower().startswith("https://"):  # RFC 8058 one-click needs HTTPS
        values.append(("List-Unsubscribe-Post", "List-Unsubscribe=One-Click"))
    values.append(("Auto-Submitted", "auto-generated"))  # RFC 3834: no vacation replies to a bot
    return values


@lru_cache(maxsize=4096)
def _parsed(name: str, value: str) -> tuple[str, tuple[str, ...]]:
    """`name: value` as the email package folds it for the wire, and the addresses in it (address headers)."""
    header = WIRE_POLICY.header_factory(name, value)
    addresses = tuple(a.addr_spec for a in header.addresses) if isinstance(header, AddressHeader) else ()
    return header.fold(policy=WIRE_POLICY), addresses


def header_line(name: str, value: str) -> str:
    """One header, CRLF-terminated: written as it is when the email package would write it so, else folded by it."""
    if name.lower() not in _PARSED and len(name) + 2 + len(value) <= LINE_LIMIT and _PLAIN.match(value) \
            and "=?" not in value:
        return f"{name}: {value}\r\n"
    return _parsed(name, value)[0]


def quoted_printable(text: str) -> bytes:
    """UTF-8 text as a quoted-printable body with CRLF line ends (lines of at most 76 characters, 7-bit)."""
    body = b"\n".join(text.encode("utf-8").splitlines()) + b"\n"
    return binascii.b2a_qp(body, istext=True).replace(b"\n", b"\r\n")


def compose(rendered: RenderedEmail, *, sender: str, to: str, message_id: str, date: datetime, list_id: str,
            unsubscribe_mailto: str | None, unsubscribe_url: str | None) -> Outgoing:
    """multipart/alternative (text first, HTML last) with list headers, as the bytes and envelope SMTP sends."""
    fields = headers(rendered, sender=sender, to=to, message_id=message_id, date=date, list_id=list_id,
                     unsubscribe_mailto=unsubscribe_mailto, unsubscribe_url=unsubscribe_url)
    # "=_" never occurs in quoted-printable ("=" is always followed by two hex digits or a line end), so no body
    # can contain the boundary.
    boundary = f"=_{secrets.token_hex(16)}"
    head = "".join(header_line(name, value) for name, value in fields)
    head += f'MIME-Version: 1.0\r\nContent-Type: multipart/alternative; boundary="{boundary}"\r\n\r\n'
    chunks = [head.encode("ascii")]
    for subtype, text in (("plain", rendered.text), ("html", rendered.html)):
        chunks.append(f'--{boundary}\r\nContent-Type: text/{subtype}; charset="utf-8"\r\n'
                      f"Content-Transfer-Encoding: quoted-printable\r\n\r\n".encode("ascii"))
        chunks.append(quoted_printable(text))
        chunks.append(b"\r\n")
    chunks.append(f"--{boundary}--\r\n".encode("ascii"))
    values = dict(fields)
    senders = _parsed("From", values["From"])[1]
    return Outgoing(senders[0] if senders else None, _parsed("To", values["To"])[1], b"".join(chunks),
                    values["Message-ID"])
