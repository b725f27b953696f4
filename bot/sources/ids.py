"""Canonical item ids, URL normalisation, text and date helpers shared by every parser.

Identity is what lets the store recognise one paper seen on Hugging Face, in an arXiv feed and in a blog's
RSS as the same item: `arxiv:<id without version>` (new style `2607.23193`, old style `hep-th/9901001`),
else `doi:<lowercased doi>`, else the normalised URL.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from urllib.parse import parse_qsl, urlencode, urljoin, urlsplit, urlunsplit

from bot.models import Item

_NEW_ID = r"\d{4}\.\d{4,5}"
_OLD_ID = r"[a-z][a-z\-]*(?:\.[A-Z]{2})?/\d{7}"
_ID = rf"(?P<id>{_NEW_ID}|{_OLD_ID})(?:v\d+)?"
_BARE_ID = re.compile(rf"^{_ID}$")
_PREFIXED_ID = re.compile(rf"^(?:arxiv:|oai:arxiv\.org:){_ID}$", re.IGNORECASE)
_ARXIV_HOSTS = ("arxiv.org", "www.arxiv.org", "export.arxiv.org", "rss.arxiv.org")
_URL_ID = re.compile(rf"^/(?:abs|pdf|html|format)/{_ID}(?:\.pdf)?/?$")
_DOI = re.compile(r"10\.\d{4,9}/\S+")
_DOI_HOSTS = ("doi.org", "dx.doi.org", "www.doi.org")
_TRACKING = re.compile(r"^(?:utm_\w+|fbclid|gclid|mc_cid|mc_eid|ref_src)$")
_CONTROL = dict.fromkeys(c for c in range(32) if chr(c) not in "\t\n\r")

ARXIV_ABS = "https://arxiv.org/abs/"


def collapse(text: str | None) -> str:
    """Whitespace collapsed to single spaces, control characters dropped; content otherwise kept as text."""
    if not text:
        return ""
    if text.isprintable() and "  " not in text and text[0] != " " and text[-1] != " ":
        return text  # the common case (a name, a clean title): nothing to collapse or drop
    return " ".join(text.translate(_CONTROL).split())


def arxiv_id(text: str | None) -> str | None:
    """The version-less arXiv id in a bare id, `arXiv:…`, `oai:arXiv.org:…` or an arxiv.org abs/pdf URL."""
    if not text:
        return None
    text = text.strip()
    match = _BARE_ID.match(text) or _PREFIXED_ID.match(text)
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
    parsed: datetime | None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        try:
            parsed = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def dedupe(items: Iterable[Item]) -> list[Item]:
    """Items with duplicate ids dropped, keeping the first: pages list a paper once per section at most."""
    seen: set[str] = set()
    kept: list[Item] = []
    for item in items:
        if item.id not in seen:
            seen.add(item.id)
            kept.append(item)
    return kept
