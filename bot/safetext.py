"""Text from the outside world, made safe for where it goes: a mail header, a link, Slack mrkdwn.

Everything scraped is hostile: a title may hold a line break (a forged header), `<!channel>` (a Slack broadcast),
`javascript:` (a link), a lone surrogate or a bidi override. `bot.render` and the notifiers pass scraped text
through these before it reaches a message.
"""

from __future__ import annotations

import unicodedata
from functools import lru_cache
from urllib.parse import urlsplit

MAX_URL = 2000  # a longer link is dropped (the title stays): no real paper URL is this long, and one item's link
#                 must not push an email past `bot.render.HTML_LIMIT`


@lru_cache(maxsize=1 << 15)
def one_line(text: str, limit: int | None = None) -> str:
    """Header-safe text: CR, LF, NUL and other control/format characters go, whitespace collapses, capped.
    Kept for the texts seen lately: a morning's digests repeat the same papers thousands of times."""
    if text.isascii() and text.isprintable() and "  " not in text:
        flat = text.strip()  # the common case: nothing to drop, nothing to collapse
        return truncate(flat, limit) if limit is not None else flat
    kept = []
    for ch in text:
        category = unicodedata.category(ch)
        if category in ("Cc", "Zl", "Zp"):
            kept.append(" ")
        elif category == "Cs":  # a lone surrogate (JSON "\ud800"): no encoding can carry it
            kept.append("\ufffd")
        elif category != "Cf":  # bidi overrides, zero-width tricks
            kept.append(ch)
    flat = " ".join("".join(kept).split())
    return truncate(flat, limit) if limit is not None else flat


def truncate(text: str, limit: int) -> str:
    """Cut at a word boundary when there is one near the end, and say so with "…"."""
    if len(text) <= limit:
        return text
    cut = text[: max(limit - 1, 0)]
    space = cut.rfind(" ")
    if space > limit * 0.6:
        cut = cut[:space]
    return cut.rstrip(" ,;:.-–—") + "…"


def escape_slack(text: str) -> str:
    """Slack's three control characters, so scraped `<!channel>` or `<https://evil|x>` show literally."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


# mrkdwn has no escape for its formatting characters: in scraped text they become look-alikes, so a title like
# "*Not* bold: `x`" reads the same and formats nothing (nor breaks the bold we put around titles)
MRKDWN_LOOKALIKES = str.maketrans({"*": "\u2217", "_": "\u02cd", "~": "\u223c", "`": "\u02cb"})


def plain_slack(text: str) -> str:
    """Scraped text for a Slack message: `escape_slack`, and no formatting characters (see above)."""
    return escape_slack(text.translate(MRKDWN_LOOKALIKES))


def safe_url(url: str | None) -> str | None:
    """Only absolute http(s) links survive (no `javascript:`, no whitespace tricks)."""
    if not url:
        return None
    url = url.strip()
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
        return None
    if len(url) > MAX_URL or any(unicodedata.category(ch)[0] in "CZ" for ch in url):
        return None
    return url


def short_authors(authors: tuple[str, ...] | list[str], keep: int = 3) -> str:
    """The first `keep` names, "et al." for the rest (only the names shown are cleaned: a paper can list 500)."""
    names: list[str] = []
    rest = iter(authors)
    for author in rest:
        name = one_line(author, 60)
        if name:
            names.append(name)
            if len(names) == keep:
                break
    more = any(one_line(author) for author in rest)
    return ", ".join(names) + (" et al." if more else "")
