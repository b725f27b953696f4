"""Canonical item ids, URL normalisation, text and date helpers shared by every parser.

Identity is what lets the store recognise one paper seen on Hugging Face, in an arXiv feed and in a blog's
RSS as the same item: `arxiv:<id without version>` (new style `2607.23193`, old style `hep-th/9901001`),
else `doi:<lowercased doi>`, else the normalised URL.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from email.utils import parsedate_to_datetime
from functools import cache
from urllib.parse import parse_qsl, urlencode, urljoin, urlsplit, urlunsplit

from bot.models import Item

_NEW_ID = r"\d{4}\.\d{4,5}"
_OLD_ID = r"[a-z][a-z\-]*(?:\.[A-Z]{2})?/\d{7}"
_ID = rf"(?P<id>{_NEW_ID}|{_OLD_ID})(?:v\d+)?"
ARXIV_ID_PATTERN = _ID  # an arXiv id with an optional version; the group `id` is the id without it
_BARE_ID = re.compile(rf"^{_ID}$")
_PREFIXED_ID = re.compile(rf"^(?:arxiv:|oai:arxiv\.org:){_ID}$", re.IGNORECASE)
_ARXIV_HOSTS = ("arxiv.org", "www.arxiv.org", "export.arxiv.org", "rss.arxiv.org")
_URL_ID = re.compile(rf"^/(?:abs|pdf|html|format)/{_ID}(?:\.pdf)?/?$")
# The plain arXiv URL feeds and APIs use (`http://arxiv.org/abs/2606.13677v1`), read without `urlsplit`: any URL
# this matches, `urlsplit` + `_URL_ID` read the same way; anything else takes that general road.
_PLAIN_URL_ID = re.compile(rf"^https?://(?:www\.|export\.|rss\.)?arxiv\.org/(?:abs|pdf|html|format)/{_ID}(?:\.pdf)?/?$")
_DOI = re.compile(r"10\.\d{4,9}/\S+")
_DOI_HOSTS = ("doi.org", "dx.doi.org", "www.doi.org")
_TRACKING = re.compile(r"^(?:utm_\w+|fbclid|gclid|mc_cid|mc_eid|ref_src)$")
_CONTROL = dict.fromkeys(c for c in range(32) if chr(c) not in "\t\n\r")
_DROPPED = bytes(c for c in range(32) if chr(c) not in "\t\n\r")  # `_CONTROL` as bytes
_TO_SPACE = bytes.maketrans(b"\t\n\r", b"   ")
_C0 = bytes(range(32))
# `re` finds a double space several times faster than `in` does in long text (`in` stops at every single space)
_DOUBLE_SPACE = re.compile("  ")
_DOUBLE_SPACE_BYTES = re.compile(b"  ")
_RFC822 = re.compile(r"(?:[A-Z][a-z]{2}, )?(?P<day>[0-9]{1,2}) (?P<month>[A-Z][a-z]{2}) (?P<year>[1-9][0-9]{3}) "
                     r"(?P<h>[0-9]{2}):(?P<m>[0-9]{2}):(?P<s>[0-9]{2}) (?P<sign>[+-])(?P<oh>[0-9]{2})(?P<om>[0-9]{2})")
_ZERO_YEAR = re.compile(r"[A-Za-z]\.?\s+0\d{3}(?![\d:])")  # a four-digit year below 1000 after the month ("Jan 0001")
_UNSAFE_IN_LINK = re.compile("[\x00-\x20\x7f\ud800-\udfff]")  # controls, space, DEL, lone surrogates: encoded
_SURROGATE = re.compile("[\ud800-\udfff]")  # a `str` holds one only if lone (json.loads keeps "\ud800")
_TAB_AND_NEWLINES = dict.fromkeys(map(ord, "\t\r\n"))
_MONTH_NUMBERS = {name: number for number, name in enumerate(
    ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"), start=1)}
_SHORT = 64  # below this many characters the plain `isprintable` check is the cheaper one

ARXIV_ABS = "https://arxiv.org/abs/"


def collapse(text: str | None) -> str:
    """Whitespace collapsed to single spaces, control characters dropped, a lone surrogate made U+FFFD; content
    otherwise kept as text. (Text with either is not `isprintable`, so the common case never looks for them.)"""
    if not text:
        return ""
    if len(text) > _SHORT and text.isascii():
        return _collapse_ascii(text)
    if text.isprintable() and text[0] != " " and text[-1] != " " and not _DOUBLE_SPACE.search(text):
        return text  # the common case (a name, a clean title): nothing to collapse or drop
    if text.isascii():
        return _collapse_ascii(text)
    raw = text.encode("utf-8", "surrogatepass")  # control characters are the only bytes below 32 in UTF-8
    if len(raw.translate(None, _DROPPED)) != len(raw):
        text = text.translate(_CONTROL)
    if _SURROGATE.search(text):  # a lone one, from JSON's "\ud800": no encoding or database can carry it
        text = _SURROGATE.sub("\ufffd", text)
    return " ".join(text.split())


def _collapse_ascii(text: str) -> str:
    """`collapse` of ASCII text as bytes: one C pass drops controls and turns tab, CR and LF into spaces (the
    only whitespace ASCII has once those controls are gone), and runs of spaces are split only if there are any."""
    raw = text.encode("ascii")
    flat = raw.translate(_TO_SPACE, _DROPPED)
    flat = b" ".join(flat.split()) if _DOUBLE_SPACE_BYTES.search(flat) else flat.strip(b" ")
    return text if flat == raw else flat.decode("ascii")


def collapse_each(texts: Sequence[str]) -> tuple[str, ...]:
    """`collapse` of every text, checked in one go when all are clean already (an HF paper can list 500 authors)."""
    joined = " ".join(texts)
    if joined.isascii():
        raw = joined.encode("ascii")
        clean = len(raw.translate(None, _C0)) == len(raw)
    else:
        clean = joined.isprintable()
    # with no control characters in any text, `collapse` changes a text only if it has a double, leading or
    # trailing space, and then (or for an empty text) `joined` shows a double space or starts or ends with one
    if clean and joined[:1] != " " and joined[-1:] != " " and not _DOUBLE_SPACE.search(joined):
        return tuple(texts)
    return tuple(map(collapse, texts))


def names(texts: Sequence[str]) -> tuple[str, ...]:
    """Author names: `collapse_each`, without the names that collapse to nothing (an empty author link)."""
    collapsed = collapse_each(texts)
    return tuple(filter(None, collapsed)) if "" in collapsed else collapsed


def arxiv_id(text: str | None) -> str | None:
    """The version-less arXiv id in a bare id, `arXiv:…`, `oai:arXiv.org:…` or an arxiv.org abs/pdf URL."""
    if not text:
        return None
    text = text.strip()
    match = _BARE_ID.match(text) or _PREFIXED_ID.match(text)
    if match is None and "://" in text:
        match = _PLAIN_URL_ID.match(text)
    if match is None and "://" in text:
        parts = urlsplit(text)
        if (parts.hostname or "") in _ARXIV_HOSTS:
            match = _URL_ID.match(parts.path)
    return match.group("id") if match else None


def doi(text: str | None) -> str | None:
    """A lowercased DOI from `10.…`, `doi:10.…` or a doi.org URL; None when there is none."""
    if not text:
        return None
    text = text.strip()
    if "://" in text:
        parts = urlsplit(text)
        if (parts.hostname or "") not in _DOI_HOSTS:
            return None
        text = parts.path.lstrip("/")
    elif text.lower().startswith("doi:"):
        text = text[4:].strip()
    match = _DOI.fullmatch(text)
    return match.group(0).lower() if match else None


def normalise_url(url: str, base: str | None = None) -> str:
    """A stable form of a URL for identity: lowercase scheme/host, no default port, fragment or tracking query."""
    if base:
        url = urljoin(base, url)
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    port = parts.port
    netloc = host if port is None or (scheme, port) in (("http", 80), ("https", 443)) else f"{host}:{port}"
    query = sorted((k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if not _TRACKING.match(k))
    return urlunsplit((scheme, netloc, parts.path or "/", urlencode(query), ""))


def canonical_id(*, arxiv: str | None = None, doi_text: str | None = None, url: str | None = None) -> str:
    """`arxiv:<id>` if any hint names an arXiv paper, else `doi:<doi>`, else the normalised URL."""
    found = arxiv_id(arxiv) or arxiv_id(url)
    if found:
        return f"arxiv:{found}"
    found = doi(doi_text) or doi(url)
    if found:
        return f"doi:{found}"
    if not url:
        raise ValueError("an item needs an arXiv id, a DOI or a URL")
    return normalise_url(url)


def parse_date(value: str | None) -> datetime | None:
    """ISO 8601 or RFC 822 text as an aware UTC datetime (naive input is taken as UTC); None if unparseable."""
    if not value or not value.strip():
        return None
    value = value.strip()
    parsed = _iso_date(value) if value[:4].isdigit() else None  # ISO 8601 text starts with the year
    if parsed is None:
        parsed = _feed_date(value)
    if parsed is None:
        if _ZERO_YEAR.search(value):
            return None  # `email.utils` reads years below 100 as two-digit ones: "0001" would be 2001
        try:
            parsed = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError, OverflowError):
            return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    try:
        return parsed.astimezone(UTC)
    except OverflowError:  # "31 Dec 9999 23:59 -2359" is past the last UTC datetime: no date, like any unreadable one
        return None


def _iso_date(value: str) -> datetime | None:
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


def _feed_date(value: str) -> datetime | None:
    """The RFC 822 date every feed writes ("Thu, 24 Sep 2026 00:00:00 -0400"), read as `parsedate_to_datetime`
    reads it but without its general tokenizer; None for any other form, left to that."""
    match = _RFC822.fullmatch(value)
    month = _MONTH_NUMBERS.get(match.group("month")) if match else None
    if match is None or month is None:
        return None
    offset = timedelta(hours=int(match.group("oh")), minutes=int(match.group("om")))
    try:
        return datetime(int(match.group("year")), month, int(match.group("day")), int(match.group("h")),
                        int(match.group("m")), int(match.group("s")),
                        tzinfo=timezone(-offset if match.group("sign") == "-" else offset))
    except ValueError:
        return None


def date_reader() -> Callable[[str | None], datetime | None]:
    """`parse_date` remembering its answers, for one page: a feed gives every entry the same announcement date."""
    return cache(parse_date)


def dedupe(items: Iterable[Item]) -> list[Item]:
    """Items with duplicate ids dropped, keeping the first: pages list a paper once per section at most.

    Every parser's items pass here, so this is also where a control character or space that reached an id or a
    URL (a JSON paper id "abc\\u0000", a feed link with a tab) is cleaned as a browser reads a link
    (`_encode_unsafe`): PostgreSQL cannot store a NUL, and nobody can click one."""
    seen: set[str] = set()
    kept: list[Item] = []
    for item in items:
        if _UNSAFE_IN_LINK.search(item.id) or _UNSAFE_IN_LINK.search(item.url):
            item = replace(item, id=_encode_unsafe(item.id), url=_encode_unsafe(item.url))
        if item.id not in seen:
            seen.add(item.id)
            kept.append(item)
    return kept


def _encode_unsafe(link: str) -> str:
    """As a browser reads a link: the ends stripped, tabs and line breaks dropped, other controls and spaces
    percent-encoded."""
    link = link.strip().translate(_TAB_AND_NEWLINES)
    return _UNSAFE_IN_LINK.sub(lambda match: "".join(f"%{byte:02X}" for byte in _utf8(match.group())), link)


def _utf8(char: str) -> bytes:
    return "\ufffd".encode() if _SURROGATE.match(char) else char.encode()


def url_problem(url: str) -> str | None:
    """Why `url` can never be fetched (not a URL, an unsupported scheme, an http(s) URL without a host), or None.
    What `fetch` reads: http(s), file:// and plain paths (a one-letter scheme is a Windows drive). Config
    validation asks the same, so a typo is caught when the config is loaded."""
    try:
        parts = urlsplit(url.strip())
    except ValueError as exc:  # "http://[::1"
        return f"not a valid URL ({exc})"
    scheme = parts.scheme.lower()
    if scheme in ("http", "https"):
        return None if parts.hostname else "a URL without a host"
    if scheme in ("file", "") or len(scheme) == 1:
        return None
    return f"unsupported URL scheme {scheme!r}"
