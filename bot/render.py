"""Digest → email (HTML + plain text) and Slack Block Kit messages.

Pure apart from reading templates. Everything scraped is hostile: HTML goes through Jinja's autoescape, Slack
text through `escape_slack()`, header text through `one_line()`. The size limits that would silently damage a
message (Gmail clips HTML above ~102 KB and hides the footer; Block Kit rejects > 50 blocks or long sections)
are enforced here, so the notifiers never need to cut anything.
"""

from __future__ import annotations

import importlib.resources
import logging
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import quote

import jinja2

import bot
from bot.models import Notice, ScoredItem, SourceHealth, meaning_label, shown_related
from bot.outbox.model import Digest, Kind, RatingLinks
from bot.safetext import MRKDWN_LOOKALIKES, escape_slack, one_line, plain_slack, safe_url, short_authors, truncate

log = logging.getLogger(__name__)

HTML_LIMIT = 90_000  # bytes; Gmail clips at ~102 KB
MAX_EMAIL_ITEMS = 100
MAX_SLACK_ITEMS = 100
SLACK_ITEMS_PER_MESSAGE = 20
SUBJECT_LIMIT = 150
SLACK_SECTION_LIMIT = 3000
SLACK_HEADER_LIMIT = 150
SLACK_VALUE_LIMIT = 2000  # a button's value; a rating token is far shorter
SLACK_LINK_LIMIT = 1500  # a `<url|title>` longer than this, once quoted and escaped, is shown as the title alone
_METRIC_LABELS = {"upvotes": "▲ {n}", "comments": "{n} comment{s}", "github_stars": "★ {n}"}


@dataclass(frozen=True, slots=True)
class RenderedEmail:
    subject: str
    text: str
    html: str


@dataclass(frozen=True, slots=True)
class SlackMessage:
    text: str
    blocks: list[dict[str, Any]]


@dataclass(frozen=True, slots=True)
class ItemView:
    """One item as every template sees it: cleaned, capped and with its reasons grouped."""

    title: str
    url: str | None
    authors: str
    snippet: str
    metrics: tuple[str, ...]
    reasons: tuple[tuple[str, str], ...]  # keyword matches: (term, "title and abstract"), strongest first
    related: tuple[str, ...]  # words from the profile's description, shown apart and lighter
    meaning: str  # what similarity to the description added ("close to your description +1.2"), or ""
    explain: str
    profile: str
    score: float
    alerted: bool = False
    learned: str = ""  # what the reader's 👍 / 👎 did to this paper ("like 3 papers you rated 👍 (e.g. …)"), or ""
    rate_up: str | None = None  # the 👍 / 👎 links (`bot.web.rating`), and the token Slack's buttons carry
    rate_down: str | None = None
    rate_token: str | None = None


def item_view(scored: ScoredItem, snippet_chars: int = 300, *, alerted: bool = False,
              rating: RatingLinks | None = None) -> ItemView:
    item = scored.item
    groups: dict[str, list[str]] = {}
    related: list[str] = []
    meaning = learned = ""
    for reason in sorted(scored.reasons, key=lambda r: -r.weight):
        if reason.kind == "feedback":  # the reader's ratings (`bot.scoring.feedback`): a chip of its own
            learned = one_line(reason.term, 120)
            continue
        term = one_line(reason.term, 60)
        if reason.kind == "author":  # a followed person: a chip of its own, no field
            groups.setdefault(f"by {term}", [])
            continue
        if reason.kind == "semantic":  # similarity to the description, with what it added
            meaning = meaning_label(reason)
            continue
        if reason.kind != "keyword":
            if term not in related and shown_related(reason):
                related.append(term)
            continue
        fields = groups.setdefault(term, [])
        if one_line(reason.field, 30) not in fields:
            fields.append(one_line(reason.field, 30))
    metrics = tuple(_METRIC_LABELS[k].format(n=v, s="" if v == 1 else "s") if k in _METRIC_LABELS
                    else f"{v} {one_line(k, 30)}"
                    for k, v in item.metrics.items())  # a metric's name is text, never a format template
    return ItemView(
        title=one_line(item.title, 300) or "(untitled)",
        url=safe_url(item.url),
        authors=short_authors(item.authors),
        snippet=one_line(item.abstract, snippet_chars),
        metrics=metrics,
        reasons=tuple((term, " and ".join(fields)) for term, fields in groups.items()),
        related=tuple(related[:3]),
        meaning=meaning,
        explain=one_line(scored.explain(), 500),
        profile=one_line(", ".join(scored.profiles), 120),
        score=scored.score,
        alerted=alerted,
        learned=learned,
        rate_up=safe_url(rating.up) if rating else None,
        rate_down=safe_url(rating.down) if rating else None,
        rate_token=rating.token if rating else None,
    )


@lru_cache(maxsize=1 << 14)
def wrap(text: str, width: int = 79, break_long_words: bool = True, wrapstring: str | None = None,
         break_on_hyphens: bool = False) -> str:
    """Jinja's `wordwrap` for the text part, greedy on spaces (a hyphenated term or a URL stays whole): textwrap
    cost ~10 ms per digest of 20 papers, the largest part of rendering a mail when a morning sends 10,000 (which
    also repeat the same papers' texts, hence the cache). A word longer than `width` is cut into pieces of
    `width` when `break_long_words`."""
    del break_on_hyphens  # accepted for the filter's signature; never breaks at hyphens
    out: list[str] = []
    for paragraph in text.split("\n"):
        line = ""
        for word in paragraph.split():
            if line and len(line) + 1 + len(word) <= width:
                line = f"{line} {word}"
                continue
            if line:
                out.append(line)
            while break_long_words and len(word) > width:
                out.append(word[:width])
                word = word[width:]
            line = word
        out.append(line)
    return (wrapstring or "\n").join(out)


def _day(when: datetime) -> str:
    return f"{when:%a} {when.day} {when:%b}"


def _moment(when: datetime) -> str:
    zone = when.tzname()
    return f"{_day(when)} {when:%H:%M}" + (f" {zone}" if zone else "")


def _profiles(digest: Digest) -> list[str]:
    return list(dict.fromkeys(one_line(name, 60) for s in digest.items for name in s.profiles))


def _source_problem(health: SourceHealth) -> str:
    """A source as a reader needs it: its name and since when; the error and its fix are the admin's (notices)."""
    since = f" (last read {_moment(health.last_success)})" if health.last_success is not None else ""
    return f"{one_line(health.name, 60)}{since}"


def failing_notice(digest: Digest) -> str | None:
    """ "2 sources could not be read: hf-daily (last read …), arxiv-cl — this digest may be incomplete." """
    failing = [h for h in digest.failing_sources if h.failing] or list(digest.failing_sources)
    if not failing:
        return None
    count = f"{len(failing)} source{'s' if len(failing) != 1 else ''} could not be read"
    return f"{count}: {', '.join(_source_problem(h) for h in failing)} — this digest may be incomplete."


def headline(digest: Digest) -> str:
    """ "12 new papers for rlhf, recsys" (no date): the subject, the email title and the Slack header."""
    profiles = ", ".join(_profiles(digest))
    if digest.kind == Kind.ALERT:
        return f"New match for {profiles}" if profiles else "New match"
    count = max(digest.total_matched, len(digest.items))
    noun = "paper" if count == 1 else "papers"
    lead = f"{count} new {noun}" if count else "No new papers"
    return f"{lead} for {profiles}" if profiles else lead


def subject(digest: Digest) -> str:
    if digest.kind == Kind.ALERT:
        title = digest.items[0].item.title if digest.items else headline(digest)
        return one_line(f"digestbot alert: {one_line(title)}", SUBJECT_LIMIT)
    return one_line(f"digestbot: {headline(digest)} — {_day(digest.generated_at)}", SUBJECT_LIMIT)


def default_templates_dir() -> Path:
    """Installed wheels ship `templates/` as `bot/templates`; a checkout keeps it at the top of the repo."""
    packaged = importlib.resources.files("bot") / "templates"
    if packaged.is_dir() and (packaged / "digest.html.j2").is_file():
        return Path(str(packaged))
    return Path(bot.__file__).resolve().parent.parent / "templates"


class Renderer:
    """Jinja over `templates/`: autoescape for `*.html.j2`, none for `*.txt.j2`, undefined names are errors."""

    def __init__(self, templates_dir: Path | None = None) -> None:
        self.templates_dir = templates_dir or default_templates_dir()
        self._env = jinja2.Environment(
            loader=jinja2.FileSystemLoader(str(self.templates_dir)),
            autoescape=jinja2.select_autoescape(enabled_extensions=("html.j2",), default_for_string=False,
                                                default=False),
            undefined=jinja2.StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
            keep_trailing_newline=True,
        )
        self._env.filters["wordwrap"] = wrap

    def render_email(self, digest: Digest) -> RenderedEmail:
        """HTML and text with the same items; drops items from the end until the HTML fits HTML_LIMIT."""
        name = "alert" if digest.kind == Kind.ALERT else "digest"
        html_template = self._env.get_template(f"{name}.html.j2")
        views = [item_view(s, alerted=s.item.id in digest.alerted, rating=digest.ratings.get(s.item.id))
                 for s in digest.items[:MAX_EMAIL_ITEMS]]
        shown = len(views)
        while True:
            context = self._context(digest, views[:shown])
            html = html_template.render(context)
            size = len(html.encode("utf-8"))
            if size <= HTML_LIMIT or shown <= 1:
                break
            shown = max(1, min(shown - 1, int(shown * HTML_LIMIT / size * 0.95)))
        if shown < len(digest.items):
            log.debug("email for %s capped at %d of %d items", digest.recipient, shown, len(digest.items))
        text = self._env.get_template(f"{name}.txt.j2").render(context)
        return RenderedEmail(subject=context["subject"], text=text, html=html)

    def render_slack(self, digest: Digest) -> list[SlackMessage]:
        """Block Kit, split into messages of SLACK_ITEMS_PER_MESSAGE items, each with a `text` fallback."""
        alert = digest.kind == Kind.ALERT
        views = [item_view(s, snippet_chars=500, alerted=s.item.id in digest.alerted,
                           rating=digest.ratings.get(s.item.id)) for s in digest.items[:MAX_SLACK_ITEMS]]
        chunks = [views[i: i + SLACK_ITEMS_PER_MESSAGE] for i in range(0, len(views), SLACK_ITEMS_PER_MESSAGE)]
        chunks = chunks or [[]]
        summary = escape_slack(subject(digest))
        messages = []
        for index, chunk in enumerate(chunks):
            blocks: list[dict[str, Any]] = []
            if index == 0:
                blocks.extend(self._slack_intro(digest))
            else:
                blocks.append(_context(f"{escape_slack(headline(digest))} (continued, {index + 1}/{len(chunks)})"))
            for view in chunk:
                blocks.append(_section(_slack_item(view, with_snippet=alert, links=not digest.rate_buttons)))
                if digest.rate_buttons and view.rate_token and len(view.rate_token) <= SLACK_VALUE_LIMIT:
                    blocks.append(_rate_buttons(view.rate_token))
            if index == len(chunks) - 1:
                blocks.extend(_slack_outro(digest, len(views)))
            part = f" ({index + 1}/{len(chunks)})" if len(chunks) > 1 else ""
            messages.append(SlackMessage(text=summary + part, blocks=blocks))
        return messages

    def render_notice_email(self, notice: Notice) -> RenderedEmail:
        """An admin notice (source failing / recovered) as email."""
        title = one_line(f"digestbot: {notice.title}", SUBJECT_LIMIT)
        context = {"subject": title, "title": one_line(notice.title), "date": _moment(notice.generated_at),
                   "lines": list(notice.lines), "failing": notice.kind != "source-recovered"}
        return RenderedEmail(subject=title, text=self._env.get_template("notice.txt.j2").render(context),
                             html=self._env.get_template("notice.html.j2").render(context))

    def render_notice_slack(self, notice: Notice) -> list[SlackMessage]:
        """An admin notice as one Slack message."""
        icon = ":white_check_mark:" if notice.kind == "source-recovered" else ":warning:"
        text = f"{icon} *{escape_slack(notice.title)}*\n" + "\n".join(escape_slack(line) for line in notice.lines)
        return [SlackMessage(text=escape_slack(f"digestbot: {notice.title}"),
                             blocks=[_section(text)])]

    def _context(self, digest: Digest, views: list[ItemView]) -> dict[str, Any]:
        total = max(digest.total_matched, len(digest.items))
        return {
            "kind": digest.kind,
            "subject": subject(digest),
            "headline": headline(digest),
            "date": _day(digest.generated_at) + f" {digest.generated_at.year}",
            "since": _moment(digest.since) if digest.since else None,
            "items": views,
            "more": total - len(views),
            "total": total,
            "notice": failing_notice(digest),
            "profiles": _profiles(digest),
            "recipient": one_line(digest.recipient, 100),
            "page_url": safe_url(digest.page_url),
            "unsubscribe_url": safe_url(digest.unsubscribe_url),
        }

    def _slack_intro(self, digest: Digest) -> list[dict[str, Any]]:
        title = ("digestbot alert: " if digest.kind == Kind.ALERT else "digestbot: ") + headline(digest)
        when = _day(digest.generated_at) + (f" · new since {_moment(digest.since)}" if digest.since else "")
        blocks = [
            {"type": "header", "text": {"type": "plain_text", "text": truncate(title, SLACK_HEADER_LIMIT)}},
            _context(escape_slack(when)),
        ]
        notice = failing_notice(digest)
        if notice:
            blocks.append(_section(f":warning: {escape_slack(notice)}"))
        if not digest.items:
            healthy = "" if notice else "; every source was fetched fine"
            blocks.append(_section(f"Nothing new matched your profiles this time{healthy}."))
        return blocks


def slack_link(url: str, label: str) -> str:
    """`<url|label>` built by us: the URL cannot close the link early and the label is escaped."""
    safe = quote(url, safe=":/?#[]@!$&'()*+,;=%~-._")
    return f"<{escape_slack(safe)}|{escape_slack(label)}>"


def _rate_buttons(token: str) -> dict[str, Any]:
    """👍 / 👎 as Block Kit buttons: a click posts the token to /slack/actions (`bot.web.rating`)."""
    return {"type": "actions", "elements": [
        {"type": "button", "action_id": action, "value": token,
         "text": {"type": "plain_text", "text": label, "emoji": True}}
        for action, label in (("digestbot_rate_up", "👍 More like this"), ("digestbot_rate_down", "👎 Fewer"))]}


def _slack_item(view: ItemView, *, with_snippet: bool, links: bool = True) -> str:
    title = view.title.translate(MRKDWN_LOOKALIKES)
    link = slack_link(view.url, title) if view.url else ""
    if not link or len(link) > SLACK_LINK_LIMIT:  # quoting and escaping can grow a URL many times over
        link = escape_slack(title)
    lines = [f"*{link}*"]
    byline = " · ".join(x for x in (view.authors, *view.metrics) if x)
    if byline:
        lines.append(plain_slack(byline))
    if view.explain:
        alerted = " · already sent as an alert" if view.alerted else ""
        lines.append(f"_{plain_slack(view.explain)}_ · {plain_slack(view.profile)}{alerted}")
    if with_snippet and view.snippet:
        lines.append(plain_slack(view.snippet))
    if links and view.rate_up and view.rate_down:
        lines.append(f"{slack_link(view.rate_up, '👍 more like this')} · {slack_link(view.rate_down, '👎 fewer')}")
    return "\n".join(lines)


def _slack_outro(digest: Digest, shown: int) -> list[dict[str, Any]]:
    more = max(digest.total_matched, len(digest.items)) - shown
    public = safe_url(digest.page_url)
    parts = []
    if more > 0:
        parts.append(f"{more} more matched" + (f" — {slack_link(public, 'see all')}" if public else ""))
    unsubscribe = safe_url(digest.unsubscribe_url)
    if unsubscribe:
        parts.append(slack_link(unsubscribe, "unsubscribe"))
    return [_context(" · ".join(parts))] if parts else []


def fit_mrkdwn(text: str, limit: int = SLACK_SECTION_LIMIT) -> str:
    """`text` cut to `limit` characters, if longer, where the cut breaks no link (`<…>`) and no escape (`&amp;`).

    The per-field caps count characters before escaping and URL quoting, which can grow text several times over
    (an `&` becomes `&amp;`, an emoji in a URL twelve characters), so long hostile text does reach Slack's limit.
    """
    if len(text) <= limit:
        return text
    cut = text[: limit - 1]
    opened = cut.rfind("<")
    if opened > cut.rfind(">"):  # inside a link: drop the whole link
        cut = cut[:opened]
    amp = cut.rfind("&")
    if amp > cut.rfind(";"):  # inside an escape
        cut = cut[:amp]
    return cut + "…"


def _section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": fit_mrkdwn(text)}}


def _context(text: str) -> dict[str, Any]:
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": fit_mrkdwn(text)}]}
