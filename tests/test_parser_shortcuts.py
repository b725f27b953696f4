"""The parsers' quick roads against the general ones they skip (issue 3's parse speed).

Each shortcut must read exactly what the general road reads, and hand the page to that road whenever it is not
the plain case the shortcut knows: the tables below are those other cases.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from pathlib import Path

import pytest
from selectolax.lexbor import LexborHTMLParser

from bot.models import Item, Page
from bot.sources import hf
from bot.sources.arxiv_list import _abs_id, _parts_by_dd
from bot.sources.ids import arxiv_id, collapse, collapse_each, parse_date
from bot.sources.parse import parse_page

FIXTURES = Path(__file__).parent / "data" / "fixtures"
HF_DAILY = (FIXTURES / "hf_papers_daily_2024-08-01.html").read_bytes()
ARXIV_LIST = (FIXTURES / "arxiv_list_cs.CL_recent_2026-07-28.html").read_bytes()
_CONTROL = dict.fromkeys(c for c in range(32) if chr(c) not in "\t\n\r")


def page(body: bytes, fetched_at: str = "2026-07-28T12:00:00+00:00") -> Page:
    return Page(url="https://example.org/page", body=body, fetched_at=datetime.fromisoformat(fetched_at))


# -- collapse: its definition is `" ".join(text.translate(_CONTROL).split())` ---------------------------------

TEXTS = [
    "", " ", "a", " a", "a ", "a  b", "a b", "a\tb", "a\nb", "a\r\nb", "a\x00b", "a\x0bb", "a\x1fb", "a\x7fb",
    "Title:\n          Skill Self-Play\n        ", "x" * 100, "word " * 30, ("word " * 30).strip(), "w\n" * 40,
    "é", " é ", "é  é", "é\né", "a\xa0b", "a\u2028b", "a\u3000b", "a\x85b", "é\x01" * 40, "é " * 40,
    ("Lena Jäger " * 10).strip(), "\ud800 x", "a\u200bb", "é\udfff", "\U0001F600 \ud83d",
]


@pytest.mark.parametrize("text", TEXTS)
def test_collapse_is_its_definition(text: str) -> None:
    assert collapse(text) == " ".join(re.sub("[\ud800-\udfff]", "\ufffd", text.translate(_CONTROL)).split())


@pytest.mark.parametrize("texts", [
    [], [""], ["a", ""], ["a", "b"], ["a ", "b"], ["a", " b"], [" a"], ["a"] * 600, ["Ann", "Lena Jäger"],
    ["a\nb", "c"], ["a", "b\x00"], ["é", "é\xa0é"], ["x  y"], TEXTS,
])
def test_collapse_each_is_collapse_of_each(texts: list[str]) -> None:
    assert collapse_each(texts) == tuple(map(collapse, texts))


@pytest.mark.parametrize("value", [
    "Thu, 24 Sep 2026 00:00:00 -0400", "24 Sep 2026 00:00:00 +0000", "Thu, 24 Sep 2026 00:00:00 -0000",
    "Thu, 24 Sep 2026 23:59:59 +0530", "Thu, 24 sep 2026 00:00:00 -0400", "Thu, 24 Sep 0099 00:00:00 -0400",
    "Thu, 24 Sep 2026 00:00:00 GMT", "Thu, 24 Sep 2026 00:00 -0400", "Thu, 31 Feb 2026 00:00:00 -0400",
    "Thu, 24 Sep 2026 24:00:00 -0400", "Thu, 24 Sep 2026 00:00:00 +2400",
])
def test_feed_dates_read_as_email_utils_reads_them(value: str) -> None:
    """...except a four-digit year below 1000, which `email.utils` takes for a two-digit one (0099 as 1999)."""
    try:
        parsed = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        expected = None
    else:
        expected = (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).astimezone(UTC)
    if " 0099 " in value:
        assert expected is not None and expected.year == 1999 and parse_date(value) is None
    else:
        assert parse_date(value) == expected


@pytest.mark.parametrize(("text", "expected"), [
    ("http://arxiv.org/abs/2606.13677v1", "2606.13677"),
    ("https://export.arxiv.org/pdf/2606.13677.pdf", "2606.13677"),
    ("https://rss.arxiv.org/abs/hep-th/9901001/", "hep-th/9901001"),
    ("HTTPS://ARXIV.ORG/abs/2606.13677", "2606.13677"),
    ("https://arxiv.org:443/abs/2606.13677", "2606.13677"),
    ("https://arxiv.org/abs/2606.13677?context=cs", "2606.13677"),
    ("https://notarxiv.org/abs/2606.13677", None), ("https://arxiv.org/list/2606.13677", None),
])
def test_arxiv_urls(text: str, expected: str | None) -> None:
    assert arxiv_id(text) == expected


@pytest.mark.parametrize(("href", "expected"), [
    ("/abs/2607.22529", "2607.22529"), ("/abs/2607.22529v3", "2607.22529"), ("/abs/2607.22529 ", "2607.22529"),
    ("https://arxiv.org/abs/hep-th/9901001", "hep-th/9901001"), ("/abs/2607.22529.pdf", "2607.22529"),
    ("/abs/x", None), ("/pdf/2607.22529", "2607.22529"),
])
def test_listing_links(href: str, expected: str | None) -> None:
    assert _abs_id(href) == expected


# -- HF listings: the DailyPapers widget read from the page up to it, not from the whole DOM ------------------

def _hf_variants() -> list[tuple[str, bytes]]:
    widget = b'<div class="SVELTE_HYDRATER contents" data-target="DailyPapers" data-props="'
    at = HF_DAILY.index(widget)
    value_end = HF_DAILY.index(b'"', at + len(widget))
    props = HF_DAILY[at + len(widget) : value_end]
    props_first = (HF_DAILY[:at] + b'<div class="SVELTE_HYDRATER contents" data-props="' + props
                   + b'" data-target="DailyPapers"' + HF_DAILY[value_end + 1 :])
    decoy = b'<div data-target="DailyPapers" data-props="{&quot;dailyPapers&quot;:[]}"></div>'
    title = b"The Llama 3 Herd of Models"
    entities = b"R&amp;D &lt;3 &#39;Herd&#39; \\&quot;quoted\\&quot; &eacute;"
    return [
        ("as served", HF_DAILY),
        ("marker in a comment first", HF_DAILY[:at] + b"<!-- " + decoy + b" -->" + HF_DAILY[at:]),
        ("marker in a script first", HF_DAILY[:at] + b"<script>let s = '" + decoy + b"';</script>" + HF_DAILY[at:]),
        ("an earlier widget, single-quoted", HF_DAILY[:at] + decoy.replace(b'"DailyPapers"', b"'DailyPapers'")
         + HF_DAILY[at:]),
        ("an earlier widget, same form", HF_DAILY[:at] + decoy + HF_DAILY[at:]),
        ("entities and CRs in the JSON", HF_DAILY.replace(title, entities).replace(
            b"&quot;dailyPapers&quot;:[", b"&quot;dailyPapers&quot;:\r\n[", 1)),
        ("props before target", props_first),
        ("JSON cut short", HF_DAILY.replace(b"&quot;dailyPapers&quot;:[", b"&quot;dailyPapers&quot;:[[", 1)),
        ("no closing quote", HF_DAILY[: at + len(widget) + 50]),
        ("invalid UTF-8 in the JSON", HF_DAILY.replace(title, b"The Llama \xff Herd")),
    ]


def _dom_road(body: bytes, monkeypatch: pytest.MonkeyPatch) -> list[Item] | str:
    with monkeypatch.context() as patch:
        patch.setattr(hf, "_listing_node", lambda body: None)
        return _items_or_error(body)


def _items_or_error(body: bytes) -> list[Item] | str:
    try:
        return parse_page("hf_papers", page(body))
    except Exception as exc:  # the error itself is what is compared
        return f"{type(exc).__name__}: {exc}"


@pytest.mark.parametrize(("name", "body"), _hf_variants(), ids=[name for name, _ in _hf_variants()])
def test_hf_listing_shortcut_reads_what_the_dom_reads(name: str, body: bytes, monkeypatch: pytest.MonkeyPatch) -> None:
    assert _items_or_error(body) == _dom_road(body, monkeypatch)


def test_hf_listing_shortcut_is_taken_on_the_real_page_only() -> None:
    variants = dict(_hf_variants())
    assert hf._listing_node(variants["as served"]) is not None
    assert hf._listing_node(variants["entities and CRs in the JSON"]) is not None
    for name in ("marker in a comment first", "marker in a script first", "an earlier widget, single-quoted",
                 "props before target", "no closing quote"):
        assert hf._listing_node(variants[name]) is None, name
    assert parse_page("hf_papers", page(variants["an earlier widget, same form"])) == []  # it is the first one
    items = parse_page("hf_papers", page(variants["entities and CRs in the JSON"]))
    assert items[0].title == "R&D <3 'Herd' \"quoted\" é"


# -- arXiv listings: each section's entries read with one query, not one per entry ---------------------------

@pytest.mark.parametrize(("name", "edit"), [
    ("an Abstract link not a child of its dt", lambda b: b.replace(b'<a href ="/abs/2607.22529"',
                                                                 b'<span><a href ="/abs/2607.22529"', 1)),
    ("a dt without an Abstract link", lambda b: b.replace(b'title="Abstract" id="2607.22456"', b'id="2607.22456"', 1)),
    ("a dd wrapped in a div", lambda b: b.replace(b"<dd>", b"<div><dd>", 1)),
    ("the sections inside a dd", lambda b: b.replace(b"<dl id='articles'>", b"<dl><dd><dl id='articles'>")),
])
def test_arxiv_list_other_layouts_read_the_same(name: str, edit: Callable[[bytes], bytes]) -> None:
    fetched = "2026-07-28T12:00:00+00:00"
    expected = parse_page("arxiv_list", page(ARXIV_LIST, fetched))
    assert parse_page("arxiv_list", page(edit(ARXIV_LIST), fetched)) == expected


def test_arxiv_list_section_query_is_used_on_the_real_page_only() -> None:
    sections = LexborHTMLParser(ARXIV_LIST).css("dl#articles")
    assert all(_parts_by_dd(dl) is not None for dl in sections)
    wrapped = LexborHTMLParser(ARXIV_LIST.replace(b"<dl id='articles'>", b"<dl><dd><dl id='articles'>"))
    assert all(_parts_by_dd(dl) is None for dl in wrapped.css("dl#articles"))
