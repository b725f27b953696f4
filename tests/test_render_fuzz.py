"""Hostile items never break rendering: seeded digests and notices full of hostile text, URLs, numbers and dates
render to email and Slack without an exception, and what comes out stays inert and within limits.

Email: a one-line, capped subject; no tag, attribute or non-http(s) link in the HTML that the templates did not
write; no control characters; the footer kept. Slack: at most 50 blocks, texts within Block Kit limits, every `<`
part of a link built by `slack_link` (so no `<!channel>`), every `&` an escape, and JSON that round-trips.

Seeded, so a failure names the seed that reproduces it. Four bugs it found are kept as plain tests below: a lone
surrogate crashed `render_email`, a metric name was used as a format template, Slack text cut at its limit after
escaping broke a link or an `&amp;`, and one item with a 100 kB URL pushed the email past `HTML_LIMIT`.
"""

from __future__ import annotations

import json
import random
import re
import unicodedata
from datetime import UTC, datetime, timedelta, timezone
from html.parser import HTMLParser

import pytest

from bot.models import Item, Notice, Reason, ScoredItem, SourceHealth
from bot.outbox.model import Digest
from bot.render import (
    HTML_LIMIT,
    SLACK_HEADER_LIMIT,
    SLACK_SECTION_LIMIT,
    SUBJECT_LIMIT,
    Renderer,
    SlackMessage,
)
from bot.safetext import safe_url
from tests.support.fuzz import fuzz_case

NOW = datetime(2026, 11, 23, 7, 0, tzinfo=UTC)
LONG = 10_000

FRAGMENTS = [
    "", " ", "   ", "\t \r\n ", "\u00a0\u3000\u2003", "plain title", "Direct Preference Optimization",
    "\u202e", "\u202dltr\u202c", "\u2066isolate\u2069", "\u200b", "\u200c\u200d", "\ufeff", "\u00ad",
    "😀", "👨‍👩‍👧", "𝔘𝔫𝔦𝔠𝔬𝔡𝔢", "\U0010ffff", "\U000e0041", "\ue000", "\u0378", "e\u0301\u0301\u0301",
    "مرحبا بالعالم", "עברית", "می\u200cخواهم", "日本語のタイトル", "Lena Jäger",
    "<script>alert(1)</script>", "<SCRIPT SRC=//evil.example/x.js>", "<img src=x onerror=alert(2)>",
    '"><svg onload=alert(3)>', "'><iframe src=javascript:alert(4)>", "<a href=\"javascript:alert(5)\">x</a>",
    "&lt;script&gt;", "&amp;", "&", "<", ">", "]]>", "<!--", "-->", "<style>*{}</style>",
    "<!channel>", "<!here>", "<!everyone>", "<!subteam^S123>", "<@U12345>", "<#C12345|general>",
    "<https://evil.example|click me>", "<javascript:alert(1)|x>", "*bold*", "_it_", "~strike~", "`code`",
    "```block```", "> quote", ":warning:", "|", "\\", "@channel",
    "\r\n", "\r", "\n\n", "x\r\nBcc: a@evil.example", "x\nSubject: pwned", "\x00", "\x1b[31m", "\x07", "\x7f",
    "\x85", "\u2028", "\u2029", "\x0b\x0c",
    "{n}", "{0}", "%s%d", "{{ 7*7 }}", "{% raw %}", "${x}",
    "javascript:alert(1)", "data:text/html,<script>alert(1)</script>",
]
LONG_FRAGMENTS = ["a" * LONG, "word " * (LONG // 5), "&" * LONG, "<" * LONG, "😀" * LONG, "\u202e" * LONG,
                  " " * LONG, "<!channel>" * (LONG // 10), "x\r\n" * (LONG // 3), "-" * LONG]
SURROGATES = ["\ud800", "\udfff", "a\udc80b", "\udbff\udbff"]
URLS = [
    "", " ", "https://example.org/papers/1", "http://example.org", "HTTPS://EXAMPLE.ORG/A", " https://example.org/x ",
    "javascript:alert(1)", "JaVaScRiPt:alert(1)", " javascript:alert(1)", "\tjavascript:alert(1)",
    "java\nscript:alert(1)", "javascript://example.org/%0Aalert(1)", "data:text/html;base64,PHNjcmlwdD4=",
    "vbscript:msgbox(1)", "file:///etc/passwd", "ftp://example.org/x", "//evil.example/x", "https:evil.example",
    "https://exa mple.org/a b", "https://example.org/a\u00a0b", "https://例え.テスト/パス", "https://xn--r8jz45g.xn--zckzah/",
    "https://ex\u202eample.org/", "https://example.org/\u200b", "https://example.org/<script>alert(1)</script>",
    'https://example.org/"onmouseover="alert(1)', "https://example.org/'><b>x</b>", "https://example.org/a|b>c",
    "https://example.org/?q=<!channel>&x=1", "https://example.org/javascript:alert(1)", "http://[::1",
    "http://[::1]:99999/", "https://user:pass@example.org/", "https://example.org/😀", "https://example.org/%3Cx%3E",
    "https://example.org/x\r\nBcc: a@evil.example", "https://example.org/" + "&" * 1400,
    "https://example.org/" + "😀" * 1400, "https://example.org/" + "a" * LONG, "https://" + "a" * LONG,
]
METRIC_KEYS = ["upvotes", "comments", "github_stars", "stars", "", " ", "<!channel>", "<script>", "x\r\nBcc: y",
               "😀", "\u202eevil", "k" * LONG, "a&b", "*bold*"]
BRACE_KEYS = ["{x}", "{", "}", "{n.__class__}", "{0}"]
METRIC_VALUES = [0, 1, -1, 2**31, -(2**31), 2**63, -(2**63), 10**18, -(10**30), 10**100, -(10**100)]
DATES: list[datetime | None] = [
    None, NOW, datetime(1, 1, 1, tzinfo=UTC), datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
    datetime(1, 1, 1, 0, 0), datetime(9999, 12, 31, 23, 59),
    datetime(9999, 12, 31, 12, tzinfo=timezone(timedelta(hours=14))),
    datetime(1, 1, 1, 12, tzinfo=timezone(timedelta(hours=-12), "Etc/GMT+12 <!here>")),
    datetime(2026, 2, 28, 23, 59, 59, tzinfo=timezone(timedelta(minutes=-570))),
]
PROFILES = ["rlhf", "recsys", "", "  ", "<!channel>", "a&b <script>", "x\r\nBcc: y", "😀" * 80, "p" * LONG]
KINDS = ["keyword", "description", "semantic", "author", "weird", ""]
WEIGHTS = [0.0, 1.0, -1.0, 0.31, 1e308, -1e308, float("inf"), float("-inf"), float("nan")]

TEMPLATE_TAGS = {"html", "head", "meta", "title", "body", "div", "table", "tr", "td", "h1", "a", "strong", "span",
                 "br", "code", "p"}
TEMPLATE_ATTRS = {"lang", "charset", "name", "content", "style", "role", "width", "cellpadding", "cellspacing",
                  "border", "align", "href"}
BROADCASTS = ("<!channel>", "<!here>", "<!everyone>")
_LINK = re.compile(r"<https?://[^\s<>|]+\|[^<>]*>", re.IGNORECASE)
_BARE_AMP = re.compile(r"&(?!amp;|lt;|gt;)")
_CONTROLS = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u2028\u2029]")  # categories Cc, Zl, Zp but "\n"


class Fuzz:
    """Draws hostile values from one seeded generator."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.fragments = FRAGMENTS + SURROGATES
        self.keys = METRIC_KEYS + BRACE_KEYS

    def text(self, hostile: float = 0.7, *, long: float = 0.03) -> str:
        rng = self.rng
        if rng.random() > hostile:
            return f"Plain words {rng.randrange(10**6)}"
        if rng.random() < long:
            return rng.choice(LONG_FRAGMENTS) + rng.choice(self.fragments)
        return "".join(rng.choice(self.fragments) for _ in range(rng.randint(1, 5)))

    def url(self, hostile: float = 0.7) -> str:
        if self.rng.random() > hostile:
            return f"https://example.org/papers/{self.rng.randrange(10**6)}"
        return self.rng.choice(URLS) + (self.text(long=0.0) if self.rng.random() < 0.15 else "")

    def config_url(self) -> str | None:
        """Digest-page and unsubscribe links come from the config, not from items, but are fuzzed alike."""
        return self.rng.choice([None, self.url(0.3)])

    def metric_key(self) -> str:
        return self.rng.choice(self.keys) if self.rng.random() < 0.6 else self.text(long=0.01)

    def metrics(self) -> dict[str, int]:
        return {self.metric_key(): self.rng.choice(METRIC_VALUES) for _ in range(self.rng.choice([0, 0, 1, 2, 3, 12]))}

    def authors(self, hostile: float) -> tuple[str, ...]:
        if hostile > 0.5 and self.rng.random() < 0.05:  # every name goes through one_line: kept to small digests
            return tuple(self.text(0.1, long=0.0) for _ in range(1000))
        return tuple(self.text(hostile) for _ in range(self.rng.choice([0, 1, 2, 3, 4, 7])))

    def item(self, number: int, hostile: float) -> Item:
        rng = self.rng
        return Item(id=self.text(hostile) + f"#{number}", title=self.text(hostile), url=self.url(hostile),
                    abstract=self.text(hostile), authors=self.authors(hostile), published=rng.choice(DATES),
                    metrics=self.metrics(), section=rng.choice([None, self.text(hostile)]), source=self.text(hostile))

    def reasons(self, hostile: float) -> tuple[Reason, ...]:
        rng = self.rng
        return tuple(Reason(term=self.text(hostile, long=0.01), field=self.text(hostile, long=0.01),
                            count=rng.choice(METRIC_VALUES), weight=rng.choice(WEIGHTS), kind=rng.choice(KINDS))
                     for _ in range(rng.choice([0, 1, 2, 5, 20] if hostile > 0.5 else [0, 1, 2, 3])))

    def health(self) -> SourceHealth:
        rng = self.rng
        return SourceHealth(name=self.text(), failing=rng.random() < 0.7,
                            consecutive_failures=rng.choice(METRIC_VALUES),
                            last_error=rng.choice([None, self.text()]), last_success=rng.choice(DATES))

    def digest(self) -> Digest:
        rng = self.rng
        count = rng.choice([0, 1, 1, 2, 3, 5, 20, 21, 41, 200])
        hostile = 0.8 if count <= 5 else 0.15  # keeps 200-item digests fast; a few of their items stay hostile
        items = tuple(ScoredItem(self.item(n, hostile), rng.choice(PROFILES[:4]) if rng.random() < 0.8
                                 else rng.choice(PROFILES), rng.choice(WEIGHTS), self.reasons(hostile))
                      for n in range(count))
        kind = rng.choice(["digest", "digest", "alert"])
        alerted = frozenset(s.item.id for s in items if rng.random() < 0.3)
        return Digest(recipient=self.text(), channel=rng.choice(["email", "slack"]), kind=kind,
                      period_key=self.text(), items=items, generated_at=rng.choice(DATES) or NOW,
                      total_matched=rng.choice([0, count, count + 7, -5, 10**9]),
                      failing_sources=tuple(self.health() for _ in range(rng.choice([0, 0, 1, 3]))),
                      since=rng.choice(DATES), unsubscribe_url=self.config_url(), page_url=self.config_url(),
                      alerted=alerted)

    def notice(self) -> Notice:
        rng = self.rng
        return Notice(kind=rng.choice(["source-failing", "source-recovered", "config-rejected", self.text()]),
                      title=self.text(), lines=tuple(self.text() for _ in range(rng.choice([0, 1, 4, 30]))),
                      generated_at=rng.choice(DATES) or NOW)


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: set[str] = set()
        self.attrs: set[str] = set()
        self.hrefs: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.add(tag)
        for name, value in attrs:
            self.attrs.add(name)
            if name == "href":
                self.hrefs.append(value or "")


def check_subject(subject: str, where: str) -> None:
    assert subject.startswith("digestbot"), where
    assert 0 < len(subject) <= SUBJECT_LIMIT, where
    bad = [ch for ch in subject if unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp")]
    assert not bad, f"{where}: control/format characters in the subject: {bad!r}"


def check_html(html: str, where: str) -> None:
    parser = _Tags()
    parser.feed(html)
    parser.close()
    assert parser.tags <= TEMPLATE_TAGS, f"{where}: tags from item text: {parser.tags - TEMPLATE_TAGS}"
    assert parser.attrs <= TEMPLATE_ATTRS, f"{where}: attributes from item text: {parser.attrs - TEMPLATE_ATTRS}"
    assert "<script" not in html.lower(), where
    for href in parser.hrefs:
        assert href.lower().startswith(("http://", "https://")) and href == href.strip(), f"{where}: href {href!r}"
    assert html.rstrip().endswith("</html>"), where


def check_no_controls(text: str, where: str) -> None:
    bad = set(_CONTROLS.findall(text))
    assert not bad, f"{where}: control characters {bad!r}"


def check_email(renderer: Renderer, digest: Digest, where: str) -> None:
    email = renderer.render_email(digest)
    check_subject(email.subject, where)
    check_html(email.html, where)
    check_no_controls(email.html, where)
    check_no_controls(email.text, where)
    cards = email.html.count("border-bottom:1px solid #f0f1f3;")
    assert cards <= len(digest.items), where
    assert len(email.html.encode("utf-8")) <= HTML_LIMIT, f"{where}: HTML over the limit"
    if safe_url(digest.unsubscribe_url):
        assert "Unsubscribe</a>" in email.html and "Unsubscribe: " in email.text, f"{where}: footer lost"


def mrkdwn_problems(text: str) -> list[str]:
    """What makes Slack mrkdwn unsafe or broken: a `<` or `>` that is not part of one of our links (a broadcast,
    a mention, a link from item text) or a `&` that does not start one of the three escapes."""
    problems = [b for b in BROADCASTS if b in text]
    outside = _LINK.sub("", text)
    if "<" in outside or ">" in outside:
        problems.append(f"raw < or > outside a link: {outside[max(outside.find('<'), outside.find('>'), 0):][:80]!r}")
    if _BARE_AMP.search(text):
        problems.append("& that is not an escape")
    return problems


def check_mrkdwn(text: str, where: str) -> None:
    assert text.strip(), f"{where}: empty mrkdwn text"
    assert len(text) <= SLACK_SECTION_LIMIT, f"{where}: {len(text)} characters"
    problems = mrkdwn_problems(text)
    assert not problems, f"{where}: {problems} in {text[:300]!r}"


def check_slack(messages: list[SlackMessage], where: str) -> None:
    assert 1 <= len(messages) <= 5, where
    for number, message in enumerate(messages):
        at = f"{where} message {number}"
        assert message.text and "<" not in message.text and not _BARE_AMP.search(message.text), at
        assert len(message.blocks) <= 50, at
        for block in message.blocks:
            if block["type"] == "header":
                header = block["text"]
                assert header["type"] == "plain_text" and 0 < len(header["text"]) <= SLACK_HEADER_LIMIT, at
            elif block["type"] == "section":
                assert block["text"]["type"] == "mrkdwn", at
                check_mrkdwn(block["text"]["text"], at)
            else:
                assert block["type"] == "context" and 1 <= len(block["elements"]) <= 10, at
                for element in block["elements"]:
                    check_mrkdwn(element["text"], at)
        payload = {"text": message.text, "blocks": message.blocks}
        assert json.loads(json.dumps(payload)) == payload, at


def fuzz_digests(start: int, count: int) -> None:
    renderer = Renderer()
    for seed in range(start, start + count):
        digest = Fuzz(seed).digest()
        where = f"seed {seed} ({digest.kind}, {len(digest.items)} items)"
        with fuzz_case(f"Fuzz({seed}).digest()"):
            check_email(renderer, digest, where)
            check_slack(renderer.render_slack(digest), where)


@pytest.fixture(scope="module")
def renderer() -> Renderer:
    return Renderer()


@pytest.mark.parametrize("start", range(0, 250, 50))
def test_hostile_digests_render_safely(start: int) -> None:
    fuzz_digests(start, 50)


@pytest.mark.parametrize("start", range(0, 120, 40))
def test_hostile_notices_render_safely(renderer: Renderer, start: int) -> None:
    for seed in range(start, start + 40):
        notice = Fuzz(seed).notice()
        where = f"notice seed {seed}"
        with fuzz_case(f"Fuzz({seed}).notice()"):
            email = renderer.render_notice_email(notice)
            check_subject(email.subject, where)
            check_html(email.html, where)
            check_slack(renderer.render_notice_slack(notice), where)


def _with_title(digest: Digest, title: str) -> Digest:
    first = digest.items[0] if digest.items else ScoredItem(Item("x", "", "https://example.org/x"), "rlhf", 1.0)
    item = Item(id=first.item.id, title=title + first.item.title, url=first.item.url, metrics=first.item.metrics)
    return Digest(recipient=digest.recipient, channel=digest.channel, kind=digest.kind, period_key="p",
                  items=(ScoredItem(item, first.profile, first.score, first.reasons), *digest.items[1:]),
                  generated_at=digest.generated_at, total_matched=digest.total_matched)


@pytest.mark.parametrize("start", [1000, 1020])
def test_lone_surrogates_render_as_replacement_characters(start: int) -> None:
    """JSON "\ud800" reaches items as a lone surrogate, which no encoding carries: it once crashed render_email."""
    renderer = Renderer()
    for seed in range(start, start + 20):
        digest = _with_title(Fuzz(seed).digest(), "\ud800")
        where = f"surrogate seed {seed}"
        with fuzz_case(f"_with_title(Fuzz({seed}).digest(), lone surrogate)"):
            check_email(renderer, digest, where)
            check_slack(renderer.render_slack(digest), where)


def test_a_metric_name_is_text_not_a_format_template(renderer: Renderer) -> None:
    item = Item(id="arxiv:1", title="t", url="https://example.org/1", metrics={"{x}": 1, "upvotes": 2})
    digest = Digest(recipient="ada", channel="email", kind="digest", period_key="p",
                    items=(ScoredItem(item, "rlhf", 1.0),), generated_at=NOW, total_matched=1)
    email = renderer.render_email(digest)
    assert "1 {x}" in email.text


@pytest.mark.parametrize(("title", "url", "abstract"), [
    ("t", "https://example.org/" + "&" * 1400, ""),  # the quoted, escaped URL alone is 7000+ characters
    ("&" * 400, "https://example.org/1", "&" * 1000),  # alert: title and snippet escaped to 4000+
])
def test_slack_text_over_its_limit_is_cut_between_links_and_escapes(renderer: Renderer, title: str, url: str,
                                                                    abstract: str) -> None:
    item = Item(id="arxiv:1", title=title, url=url, abstract=abstract)
    digest = Digest(recipient="ada", channel="slack", kind="alert", period_key="p",
                    items=(ScoredItem(item, "rlhf", 1.0),), generated_at=NOW, total_matched=1)
    for message in renderer.render_slack(digest):
        for block in message.blocks:
            if block["type"] == "section":
                text = block["text"]["text"]
                assert len(text) <= SLACK_SECTION_LIMIT and not mrkdwn_problems(text), text[-80:]


def test_one_item_with_a_huge_url_keeps_the_email_within_its_limit(renderer: Renderer) -> None:
    item = Item(id="arxiv:1", title="t", url="https://example.org/" + "a" * 100_000)
    digest = Digest(recipient="ada", channel="email", kind="digest", period_key="p",
                    items=(ScoredItem(item, "rlhf", 1.0),), generated_at=NOW, total_matched=1,
                    unsubscribe_url="https://digest.example.org/unsubscribe/abc")
    html = renderer.render_email(digest).html
    assert len(html.encode("utf-8")) <= HTML_LIMIT and "Unsubscribe</a>" in html


def test_the_checks_catch_what_they_are_for() -> None:
    """The checkers are not vacuous: they reject the outputs they exist to catch."""
    with pytest.raises(AssertionError):
        check_html('<a href="javascript:alert(1)">x</a></html>', "probe")
    with pytest.raises(AssertionError):
        check_html("<script>alert(1)</script></html>", "probe")
    with pytest.raises(AssertionError):
        check_subject("digestbot: x\r\nBcc: a@evil.example", "probe")
    for bad in ("<!channel>", "a & b", "*<https://e.org/x|a>* <@U1>", "<https://e.org|a"):
        assert mrkdwn_problems(bad), bad
    assert not mrkdwn_problems("*<https://e.org/a?b=1&amp;c=2|&lt;!channel&gt; &amp; co>*")
