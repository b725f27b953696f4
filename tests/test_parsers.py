"""Parsers against real page copies (tests/data/fixtures) with reviewed expected outputs (tests/data/expected).

DIGESTBOT_REGEN=1 writes the expected files from the current parser output and skips: review them by eye (ids,
titles, dates, authors, metrics); a changed one shows up as a diff. A missing expected file fails the test.
"""

from __future__ import annotations

import json
import os
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from bot.errors import ParseError
from bot.models import Item, Page, Source, SourceOptions
from bot.sources.arxiv_list import _heading_day
from bot.sources.ids import arxiv_id, canonical_id, doi, names, normalise_url, parse_date
from bot.sources.kinds import KINDS
from bot.sources.parse import parse_page

DATA = Path(__file__).parent / "data"
FIXTURES = DATA / "fixtures"
EXPECTED = DATA / "expected"

# fixture file, kind, source options, fetched_at (the capture date: /list pages infer years from it)
CASES: list[tuple[str, str, dict[str, Any], str]] = [
    ("hf_papers_daily_2024-08-01.html", "hf_papers", {}, "2024-08-01T12:00:00+00:00"),
    ("hf_paper_page_2509.24002_bs4-prettified.html", "hf_papers", {}, "2025-10-02T12:00:00+00:00"),
    ("hf_api_daily_papers_2026-06-12.json", "hf_api", {}, "2026-06-12T12:00:00+00:00"),
    ("hf_api_daily_papers_2026-07-31.json", "hf_api", {}, "2026-07-31T12:00:00+00:00"),
    ("hf_api_daily_papers_2026-08-03.json", "hf_api", {}, "2026-08-03T12:00:00+00:00"),
    ("arxiv_rss_cs.LG+cs.AI+cs.CL+stat.ML_2026-09-24_trimmed.xml", "arxiv_feed", {}, "2026-09-24T12:00:00+00:00"),
    ("arxiv_rss-atom_cs.LG_2026-09-25_trimmed.xml", "arxiv_feed", {}, "2026-09-25T12:00:00+00:00"),
    ("arxiv_rss_cs.CL_weekend_empty_2026-08-01.xml", "arxiv_feed", {}, "2026-08-01T12:00:00+00:00"),
    ("arxiv_api_query_all-transformer_cat-cs.LG_2026-06-14.atom.xml", "arxiv_api", {}, "2026-06-14T12:00:00+00:00"),
    ("arxiv_api_query_cat-cs.CL_max3_2026-09-24.atom.xml", "arxiv_api", {}, "2026-09-24T12:00:00+00:00"),
    ("arxiv_api_query_id_list-1601.00001_2020-09-04_legacy-format.atom.xml", "arxiv_api", {},
     "2020-09-04T12:00:00+00:00"),
    ("arxiv_list_cs.CL_recent_2026-07-28.html", "arxiv_list", {}, "2026-07-28T12:00:00+00:00"),
]


def page_of(body: bytes | str, url: str = "https://example.org/page", fetched_at: str = "2026-07-28T12:00:00+00:00",
            ) -> Page:
    raw = body.encode() if isinstance(body, str) else body
    return Page(url=url, body=raw, fetched_at=datetime.fromisoformat(fetched_at))


def parse(kind: str, body: bytes | str, **options: Any) -> list[Item]:
    return parse_page(kind, page_of(body), Source(name="t", kind=kind, url="https://example.org/",
                                                  options=SourceOptions(**options)))


def fixture_items(name: str) -> list[Item]:
    case = next(c for c in CASES if c[0] == name)
    page = page_of((FIXTURES / name).read_bytes(), url=f"https://example.org/{name}", fetched_at=case[3])
    return parse_page(case[1], page, Source(name="t", kind=case[1], url=page.url, options=SourceOptions(**case[2])))


# -- every real page against its expected output ------------------------------------------------------------

def test_every_fixture_has_a_case() -> None:
    on_disk = {p.name for p in FIXTURES.iterdir() if p.name != "SOURCES.md"}
    assert on_disk == {c[0] for c in CASES}


@pytest.mark.parametrize(("name", "kind", "options", "fetched_at"), CASES, ids=[c[0] for c in CASES])
def test_fixture_matches_expected(name: str, kind: str, options: dict[str, Any], fetched_at: str) -> None:
    got = [item.to_json() for item in fixture_items(name)]
    expected_file = EXPECTED / f"{name}.jsonl"
    if os.environ.get("DIGESTBOT_REGEN") == "1":
        EXPECTED.mkdir(parents=True, exist_ok=True)
        expected_file.write_text("".join(json.dumps(d, ensure_ascii=False) + "\n" for d in got), encoding="utf-8")
        pytest.skip(f"wrote {expected_file.relative_to(DATA.parent)}: review it, then rerun")
    if not expected_file.exists():  # a deleted file must not pass unnoticed
        pytest.fail(f"{expected_file.relative_to(DATA.parent)} is missing: run with DIGESTBOT_REGEN=1, review it")
    expected = [json.loads(line) for line in expected_file.read_text(encoding="utf-8").splitlines() if line]
    assert [d["id"] for d in got] == [d["id"] for d in expected]
    for got_item, expected_item in zip(got, expected, strict=True):
        assert got_item == expected_item, got_item["id"]
    for item in fixture_items(name):  # invariants every parser promises
        assert item.title == " ".join(item.title.split()) and not item.title.startswith("Title:")
        assert item.published is None or item.published.utcoffset() is not None
        assert item.source == ""
        assert all(isinstance(v, int) for v in item.metrics.values())


# -- Hugging Face -------------------------------------------------------------------------------------------

def test_hf_daily_page_reads_the_embedded_json() -> None:
    items = fixture_items("hf_papers_daily_2024-08-01.html")
    assert len(items) == 13
    llama = items[0]
    assert llama.id == "arxiv:2407.21783" and llama.title == "The Llama 3 Herd of Models"
    assert llama.url == "https://huggingface.co/papers/2407.21783"
    assert len(llama.authors) == 533 and llama.authors[:2] == ("Abhimanyu Dubey", "Abhinav Jauhri")
    assert llama.metrics == {"upvotes": 94, "comments": 5}
    assert llama.published == datetime(2024, 7, 31, 17, 54, 27, tzinfo=UTC)
    assert llama.abstract.startswith("Modern artificial intelligence (AI) systems are powered by foundation models.")


def test_hf_daily_page_falls_back_to_cards() -> None:
    html = (FIXTURES / "hf_papers_daily_2024-08-01.html").read_text(encoding="utf-8")
    without_json = re.sub(r'(data-target="DailyPapers") data-props="[^"]*"', r"\1", html)
    assert without_json != html
    cards = parse("hf_papers", without_json)
    from_json = fixture_items("hf_papers_daily_2024-08-01.html")
    assert [(i.id, i.title, i.url) for i in cards] == [(i.id, i.title, i.url) for i in from_json]
    assert [i.metrics for i in cards] == [{"upvotes": i.metrics["upvotes"], "comments": i.metrics["comments"]}
                                          for i in from_json]


def test_hf_single_paper_page() -> None:
    [item] = fixture_items("hf_paper_page_2509.24002_bs4-prettified.html")
    assert item.id == "arxiv:2509.24002"
    assert item.title == "MCPMark: A Benchmark for Stress-Testing Realistic and Comprehensive MCP Use"
    assert item.metrics == {"upvotes": 118, "github_stars": 182, "comments": 1}  # the spam comment is hidden
    assert len(item.authors) == 15 and item.authors[-1] == "Michael Qizhe Shieh"
    assert "\n" not in item.abstract and item.abstract.startswith("MCP standardizes how LLMs interact")


def test_hf_api_upvotes_come_from_the_paper_object() -> None:
    by_id = {i.id: i for i in fixture_items("hf_api_daily_papers_2026-06-12.json")}
    assert len(by_id) == 30
    assert by_id["arxiv:2606.13392"].metrics == {"upvotes": 103, "comments": 4, "github_stars": 251}
    assert by_id["arxiv:2606.00467"].metrics == {"upvotes": 0, "comments": 2}
    # an author marked `hidden` (a profile setting) is still an author
    assert by_id["arxiv:2606.12575"].authors[:2] == ("Dongyang Liu", "Ruoyi Du")
    assert "Dengyang Jiang" in by_id["arxiv:2606.12575"].authors and len(by_id["arxiv:2606.12575"].authors) == 10
    entry = {"upvotes": 999, "numComments": 1, "title": "T", "paper": {"id": "2601.00001", "title": "T", "upvotes": 7}}
    [item] = parse("hf_api", json.dumps([entry]))
    assert item.metrics == {"upvotes": 7, "comments": 1}
    # counts are integers, never booleans (`True` is an `int` to Python, and would show as "True comments")
    entry = {"numComments": True, "paper": {"id": "2601.00001", "title": "T", "upvotes": False, "githubStars": 2.5}}
    [item] = parse("hf_api", json.dumps([entry]))
    assert item.metrics == {}


def test_hf_api_non_arxiv_paper_gets_its_page_url_as_id() -> None:
    [item] = parse("hf_api", json.dumps([{"paper": {"id": "some-paper", "title": "Not on arXiv"}}]))
    assert item.id == "https://huggingface.co/papers/some-paper" == item.url


@pytest.mark.parametrize("body", ["<html><body>We are down</body></html>", '{"error": "x"}', "[1, 2, 3]", "   "])
def test_hf_api_garbage_is_a_parse_error(body: str) -> None:
    with pytest.raises(ParseError, match="layout changed"):
        parse("hf_api", body)


def test_hf_api_empty_day_is_empty() -> None:
    assert parse("hf_api", "[]") == []


def test_hf_papers_garbage_is_a_parse_error() -> None:
    with pytest.raises(ParseError, match="layout changed"):
        parse("hf_papers", "<html><body><h1>Welcome to the new papers page</h1></body></html>")


# -- arXiv announcement feeds -------------------------------------------------------------------------------

RSS = "arxiv_rss_cs.LG+cs.AI+cs.CL+stat.ML_2026-09-24_trimmed.xml"
ATOM = "arxiv_rss-atom_cs.LG_2026-09-25_trimmed.xml"


@pytest.mark.parametrize("name", [RSS, ATOM])
def test_arxiv_feed_replacements_filtered_by_default(name: str) -> None:
    items = fixture_items(name)
    assert [i.section for i in items] == (["new", "new", "cross"] if name == RSS else ["new", "cross"])
    body = (FIXTURES / name).read_bytes()
    everything = parse("arxiv_feed", body, announce_types=None)
    assert everything[-1].section == "replace" and len(everything) == len(items) + 1
    assert [i.section for i in parse("arxiv_feed", body, announce_types=frozenset({"replace"}))] == ["replace"]


def test_arxiv_rss_item_fields() -> None:
    items = fixture_items(RSS)
    second = items[1]
    assert second.id == "arxiv:2609.26820" and second.url == "https://arxiv.org/abs/2609.26820"
    assert second.authors == ("Naser Mansour", "Sidahmed Benabderrahmane", "Ameer Rahwan")
    assert second.abstract.startswith("Physiological time series such as electrocardiograms")
    assert second.published == datetime(2026, 9, 24, 4, 0, tzinfo=UTC)
    assert items[2].id == "arxiv:2205.06398"  # version dropped from oai:arXiv.org:2205.06398v2
    assert not any(i.abstract.startswith(("arXiv:", "Abstract:")) for i in items)


def test_arxiv_weekend_feed_is_a_quiet_day() -> None:
    assert fixture_items("arxiv_rss_cs.CL_weekend_empty_2026-08-01.xml") == []


@pytest.mark.parametrize("kind", ["arxiv_feed", "arxiv_api", "feed"])
@pytest.mark.parametrize("body", ["", "<html><body>Service Unavailable</body>", "not xml at all", "<foo/>",
                                  '<rss version="2.0"><channel><item><title>x</title></item></channel></rss>'])
def test_feed_garbage_is_a_parse_error(kind: str, body: str) -> None:
    with pytest.raises(ParseError, match="layout changed"):
        parse(kind, body)


HOSTILE = ["x\r\nBcc: a@evil", "<script>alert(1)</script>", "<!channel> & <https://evil|x>"]


def _rss(titles: list[str]) -> str:
    from xml.sax.saxutils import escape

    items = "".join(
        f"<item><title>{escape(t)}</title><link>https://arxiv.org/abs/2601.0000{n}</link>"
        f"<description>arXiv:2601.0000{n}v1 Announce Type: new \nAbstract: A {escape(t)}</description></item>"
        for n, t in enumerate(titles, start=1)
    )
    return f'<?xml version="1.0"?><rss version="2.0"><channel><title>t</title>{items}</channel></rss>'


@pytest.mark.parametrize("kind", ["arxiv_feed", "feed"])
def test_hostile_titles_survive_as_text(kind: str) -> None:
    items = parse(kind, _rss(HOSTILE))
    assert [i.title for i in items] == ["x Bcc: a@evil", "<script>alert(1)</script>", "<!channel> & <https://evil|x>"]
    assert [i.section for i in items] == (["new"] * 3 if kind == "arxiv_feed" else [None] * 3)


def test_duplicates_within_a_page_keep_the_first() -> None:
    body = _rss(["First", "Second"]).replace("2601.00002", "2601.00001")
    assert [i.title for i in parse("arxiv_feed", body)] == ["First"]


# -- arXiv API ----------------------------------------------------------------------------------------------

def test_arxiv_api_legacy_format() -> None:
    [item] = fixture_items("arxiv_api_query_id_list-1601.00001_2020-09-04_legacy-format.atom.xml")
    assert item.title == "Inelastic effects in molecular transport junctions: The probe technique at high bias"
    assert item.authors == ("Michael Kilgour", "Dvira Segal")
    assert item.published == datetime(2015, 12, 26, 21, 19, 45, tzinfo=UTC)
    assert item.abstract.startswith("We extend the Landauer-B") and "\n" not in item.abstract


def test_arxiv_api_error_entry_and_empty_result() -> None:
    error = ('<feed xmlns="http://www.w3.org/2005/Atom"><entry><id>http://arxiv.org/api/errors#incorrect_id</id>'
             "<title>Error</title><summary>incorrect id format for 1234</summary></entry></feed>")
    with pytest.raises(ParseError, match="incorrect id format"):
        parse("arxiv_api", error)
    empty = ('<feed xmlns="http://www.w3.org/2005/Atom" xmlns:opensearch="http://a9.com/-/spec/opensearch/1.1/">'
             "<opensearch:totalResults>0</opensearch:totalResults></feed>")
    assert parse("arxiv_api", empty) == []


# -- arXiv list pages ---------------------------------------------------------------------------------------

def test_arxiv_list_recent_days() -> None:
    items = fixture_items("arxiv_list_cs.CL_recent_2026-07-28.html")
    assert len(items) == 50
    assert items[0].id == "arxiv:2607.22529"
    assert items[0].title == "Skill Self-Play: Pushing the Frontier of LLM Capability with Co-Evolving Skills"
    assert items[2].authors == ("Varun Ghat Ravikumar", "Sina Ahmadi", "Lena Jäger", "Rico Sennrich")
    assert {i.published for i in items[:47]} == {datetime(2026, 7, 27, 4, tzinfo=UTC)}
    assert {i.published for i in items[47:]} == {datetime(2026, 7, 24, 4, tzinfo=UTC)}


@pytest.mark.parametrize(("heading", "fetched", "expected"), [
    ("Thu, 31 Dec (showing 5 of 5 entries)", "2027-01-02T09:00:00+00:00", "2026-12-31"),
    ("Fri, 1 Jan", "2027-01-02T09:00:00+00:00", "2027-01-01"),
    ("31 Dec", "2027-01-02T09:00:00+00:00", "2026-12-31"),
    ("Wed, 31 Dec", "2027-01-02T09:00:00+00:00", "2026-12-31"),  # a wrong weekday: still the nearest year
    ("Fri, 2 Jan", "2026-12-29T09:00:00+00:00", "2026-01-02"),  # not in the future; the weekday fits 2026
    ("Mon, 27 Jul 26", "2030-01-01T00:00:00+00:00", "2026-07-27"),
    ("Showing new listings for Tuesday, 28 July 2026", "2026-07-28T09:00:00+00:00", "2026-07-28"),
])
def test_arxiv_list_heading_year(heading: str, fetched: str, expected: str) -> None:
    day = _heading_day(heading, datetime.fromisoformat(fetched))
    assert day is not None and day.astimezone(UTC).date().isoformat() == expected


NEW_PAGE = """<html><body><div id="dlpage"><h3>Showing new listings for Tuesday, 28 July 2026</h3>
<dl id="articles"><h3>New submissions (showing 1 of 1 entries)</h3>
<dt><a href="/abs/2607.30001" title="Abstract">arXiv:2607.30001</a></dt>
<dd><div class="list-title"><span class="descriptor">Title:</span> A   new one</div>
<div class="list-authors"><a href="#">Ann Author</a>, <a href="#">Bo Bauthor</a></div>
<p class="mathjax">Its abstract.</p></dd></dl>
<dl id="articles"><h3>Cross submissions (showing 1 of 1 entries)</h3>
<dt><a href="/abs/hep-th/9901001" title="Abstract">arXiv:hep-th/9901001</a> (cross-list from hep-th)</dt>
<dd><div class="list-title"><span class="descriptor">Title:</span> Old style</div></dd></dl>
<dl id="articles"><h3>Replacement submissions (showing 2 of 2 entries)</h3>
<dt><a href="/abs/2601.00001" title="Abstract">arXiv:2601.00001</a> (replaced)</dt>
<dd><div class="list-title"><span class="descriptor">Title:</span> Revised</div></dd>
<dt><a href="/abs/2601.00002" title="Abstract">arXiv:2601.00002</a> (cross-list from cs.LG) (replaced)</dt>
<dd><div class="list-title"><span class="descriptor">Title:</span> Revised cross</div></dd></dl>
</div></body></html>"""


def test_arxiv_list_new_page_sections() -> None:
    items = parse("arxiv_list", NEW_PAGE, announce_types=None)
    assert [(i.id, i.section) for i in items] == [
        ("arxiv:2607.30001", "new"), ("arxiv:hep-th/9901001", "cross"),
        ("arxiv:2601.00001", "replace"), ("arxiv:2601.00002", "replace-cross")]
    assert items[0].title == "A new one" and items[0].abstract == "Its abstract."
    assert items[0].authors == ("Ann Author", "Bo Bauthor")
    assert items[0].published == datetime(2026, 7, 28, 4, tzinfo=UTC)
    assert [i.section for i in parse("arxiv_list", NEW_PAGE)] == ["new", "cross"]


def test_arxiv_list_sections_in_one_dl_keep_their_own_headings() -> None:
    """arXiv gives each section its own `dl`; a page that puts every heading in one `dl` must not read the
    replacements as new submissions (they would reach digests that leave replacements out)."""
    one_dl = NEW_PAGE.replace('</dd></dl>\n<dl id="articles"><h3>', '</dd>\n<h3>')
    assert one_dl.count('<dl id="articles">') == 1 and one_dl.count("<h3>") == 4
    assert parse("arxiv_list", one_dl, announce_types=None) == parse("arxiv_list", NEW_PAGE, announce_types=None)
    assert [i.section for i in parse("arxiv_list", one_dl)] == ["new", "cross"]
    cut = one_dl.replace("<dt><a href=\"/abs/2601.00002\"", "<x><a href=\"/abs/2601.00002\"", 1)
    with pytest.raises(ParseError, match="has 1 of the 2 entries it announces"):
        parse("arxiv_list", cut)
    quiet = re.sub(r"(<h3>Cross submissions[^<]*</h3>).*?(?=<h3>)", r"\g<1><p>No updates for this time period.</p>",
                   one_dl, flags=re.DOTALL)
    assert [i.id for i in parse("arxiv_list", quiet, announce_types=None)] == [
        "arxiv:2607.30001", "arxiv:2601.00001", "arxiv:2601.00002"]
    first_heading_later = one_dl.replace('<h3>New submissions (showing 1 of 1 entries)</h3>\n', "", 1).replace(
        "</dd>\n<h3>Cross", "</dd>\n<h3>New submissions (showing 0 of 0 entries)</h3><h3>Cross", 1)
    assert [(i.id, i.section) for i in parse("arxiv_list", first_heading_later, announce_types=None)][:2] == [
        ("arxiv:2607.30001", None), ("arxiv:hep-th/9901001", "cross")]
    nested = one_dl.replace("<h3>", "<div><h3>").replace("</h3>", "</h3></div>")
    assert nested.count("<div><h3>") == 4
    assert parse("arxiv_list", nested, announce_types=None) == parse("arxiv_list", NEW_PAGE, announce_types=None)


# -- generic feeds and css pages ----------------------------------------------------------------------------

GENERIC_ATOM = """<?xml version="1.0" encoding="utf-8"?>
<feed xmlns="http://www.w3.org/2005/Atom"><title>Blog</title>
<entry><title type="html">&lt;b&gt;Bold&lt;/b&gt; claims</title><id>tag:blog,2026:1</id>
<link rel="alternate" href="/posts/1?utm_source=rss#top"/><updated>2026-07-01T10:00:00+02:00</updated>
<author><name>Jo Writer</name></author>
<summary type="html">&lt;p&gt;Hello &lt;em&gt;world&lt;/em&gt;&lt;/p&gt;</summary></entry>
<entry><title>A paper</title><id>urn:x</id><link href="https://doi.org/10.1000/ABC.123"/></entry>
</feed>"""


def test_generic_atom_feed() -> None:
    page = page_of(GENERIC_ATOM, url="https://Blog.example.org/feed.atom")
    first, second = parse_page("feed", page)
    assert first.id == "https://blog.example.org/posts/1"
    assert first.url == "https://Blog.example.org/posts/1?utm_source=rss#top"  # the link as published
    assert first.title == "Bold claims" and first.abstract == "Hello world" and first.authors == ("Jo Writer",)
    assert first.published == datetime(2026, 7, 1, 8, tzinfo=UTC)
    assert second.id == "doi:10.1000/abc.123"


def test_generic_feed_without_entries_is_empty() -> None:
    assert parse("feed", '<rss version="2.0"><channel><title>quiet</title></channel></rss>') == []
    assert parse("feed", '<feed xmlns="http://www.w3.org/2005/Atom"><title>quiet</title></feed>') == []


LISTING = """<html><body><ul>
<li class="post"><h2><a href="/p/1">First &amp; foremost</a></h2><p class="s">One.</p>
  <time datetime="2026-07-01">x</time></li>
<li class="post"><h2><a href="https://arxiv.org/abs/2607.11111v2">On arXiv</a></h2></li>
<li class="post"><h2>No link here</h2></li>
</ul></body></html>"""


def test_css_listing() -> None:
    page = page_of(LISTING, url="https://lab.example.org/news/")
    def css(**selectors: str) -> Source:
        return Source(name="t", kind="css", url=page.url, options=SourceOptions(selectors=selectors))

    source = css(item="li.post", title="h2", summary="p.s", date="time")
    first, second = parse_page("css", page, source)
    assert (first.id, first.title, first.url) == ("https://lab.example.org/p/1", "First & foremost",
                                                  "https://lab.example.org/p/1")
    assert first.abstract == "One." and first.published == datetime(2026, 7, 1, tzinfo=UTC)
    assert second.id == "arxiv:2607.11111"
    with pytest.raises(ParseError, match="layout changed"):
        parse_page("css", page, css(item="article", title="h2"))
    broken = css(item="li.post", title="h2", date="time[[")
    with pytest.raises(ParseError, match=r"not a CSS selector: date = 'time\[\['") as caught:
        parse_page("css", page, broken)
    assert "check-config" in caught.value.hint


def test_unknown_kind() -> None:
    assert list(KINDS)[:3] == ["hf_papers", "hf_api", "arxiv_feed"]
    with pytest.raises(ParseError, match="unknown source kind 'rdf'"):
        parse("rdf", "<x/>")


# -- ids ----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("text", "expected"), [
    ("2607.23193", "2607.23193"), ("2607.23193v12", "2607.23193"), ("arXiv:2609.26811v1", "2609.26811"),
    ("oai:arXiv.org:2205.06398v2", "2205.06398"), ("http://arxiv.org/abs/1601.00001v1", "1601.00001"),
    ("https://arxiv.org/pdf/2509.24002", "2509.24002"), ("hep-th/9901001", "hep-th/9901001"),
    ("http://arxiv.org/abs/math.GT/0309136v2", "math.GT/0309136"), ("https://example.org/abs/2607.23193", None),
    ("1234", None), ("", None),
])
def test_arxiv_id(text: str, expected: str | None) -> None:
    assert arxiv_id(text) == expected


def test_doi_and_url_normalisation() -> None:
    assert doi("https://dx.doi.org/10.1063/1.4944470") == "10.1063/1.4944470"
    assert doi("DOI:10.1093/Bioinformatics/btac431") == "10.1093/bioinformatics/btac431"
    assert doi("https://example.org/10.1000/x") is None
    assert normalise_url("HTTPS://Example.ORG:443/a?b=2&utm_medium=rss&a=1#frag") == "https://example.org/a?a=1&b=2"
    assert canonical_id(arxiv="x", doi_text="10.1/A", url="https://arxiv.org/abs/2601.00001") == "arxiv:2601.00001"
    assert parse_date("Thu, 24 Sep 2026 00:00:00 -0400") == datetime(2026, 9, 24, 4, tzinfo=UTC)
    assert parse_date("2024-08-01T01:21:47.935Z") == datetime(2024, 8, 1, 1, 21, 47, 935000, tzinfo=UTC)
    assert parse_date("yesterday") is None
    # a date without a year is never given one here (a wrong year is worse than none); only /list headings, which
    # know their fetch time and weekday, infer it (`_heading_day`)
    for yearless in ("Apr 21", "21 Apr", "Mon, 21 Apr", "Apr 21, 10:00", "April 21"):
        assert parse_date(yearless) is None, yearless
    # dates that exist but have no UTC time, or years no datetime holds, are no date (they once raised)
    for beyond in ("9999-12-31T23:59:59-23:59", "0001-01-01T00:00:00+23:59", "Fri, 31 Dec 9999 23:59:59 -2359",
                   "Mon, 01 Jan 99999999999999999999 00:00:00 +0000", "Sat, 1 Jan 0001 00:00:00 +2359"):
        assert parse_date(beyond) is None, beyond


def test_control_characters_and_spaces_in_ids_and_urls_are_percent_encoded() -> None:
    entries = [{"paper": {"id": "abc\u0000def", "title": "Nul"}}, {"paper": {"id": " gh i\tj\r\nk\t", "title": "Gaps"}},
               {"paper": {"id": "2601.00001", "title": "Clean"}}]
    nul, gaps, clean = parse("hf_api", json.dumps(entries))
    assert nul.id == nul.url == "https://huggingface.co/papers/abc%00def"
    assert gaps.url == "https://huggingface.co/papers/gh%20ijk"  # stripped; tabs and line breaks dropped
    assert clean.id == "arxiv:2601.00001" and clean.url == "https://huggingface.co/papers/2601.00001"


def test_lone_surrogates_from_json_become_replacement_characters() -> None:
    """JSON may write a lone surrogate ("\\ud800"); `json.loads` keeps it, and no database can store it."""
    entries = [{"paper": {"id": "2601.00001", "title": "A \ud800 B", "summary": "x\udfffy",
                          "authors": [{"name": "N\ud83d"}]}},
               {"paper": {"id": "2601.00002", "title": "Emoji \U0001F600 kept"}}]  # written as a pair: one emoji
    body = json.dumps(entries)
    assert "\\ud800" in body and "\\ud83d\\ude00" in body
    lone, pair = parse("hf_api", body)
    assert (lone.title, lone.abstract, lone.authors) == ("A \ufffd B", "x\ufffdy", ("N\ufffd",))
    [odd_id] = parse("hf_api", json.dumps([{"paper": {"id": "x\udc00y", "title": "T"}}]))
    assert odd_id.id == odd_id.url == "https://huggingface.co/papers/x%EF%BF%BDy"
    assert pair.title == "Emoji \U0001F600 kept"
    real = (FIXTURES / "hf_papers_daily_2024-08-01.html").read_text(encoding="utf-8")
    assert "The Llama 3 Herd of Models" in real
    [llama] = [i for i in parse("hf_papers", real.replace("The Llama 3 Herd", "The Llama \\ud800 Herd"))
               if "Llama" in i.title]
    assert llama.title == "The Llama \ufffd Herd of Models"


def test_author_names_that_collapse_to_nothing_are_dropped() -> None:
    assert names(["Ann  Author", " ", "", "\n", "Bo"]) == ("Ann Author", "Bo")
    clean = ["Ann Author", "Bo"]
    assert names(clean) == ("Ann Author", "Bo")
    page = NEW_PAGE.replace('<a href="#">Bo Bauthor</a>', '<a href="#"> </a>, <a href="#">Bo Bauthor</a>')
    assert parse("arxiv_list", page)[0].authors == ("Ann Author", "Bo Bauthor")


def test_xml_entity_bomb_is_refused_quickly() -> None:
    levels = "".join(f'<!ENTITY l{n} "{f"&l{n - 1};" * 10}">' for n in range(1, 10))
    body = (f'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY l0 "lol">{levels}]>'
            '<rss version="2.0"><channel><item><title>&l9;</title><link>https://x.org/</link></item></channel></rss>')
    with pytest.raises(ParseError, match="not well-formed XML"):
        parse("feed", body)


def test_hf_search_page_reads_search_results() -> None:
    """`/papers?q=...` embeds its hits as `searchResults` in the same `DailyPapers` widget, each hit shaped like a
    daily entry (`title`, `paper.id`, `paper.title`, as another public project's tests of that page show). No real
    copy of a search page is kept here, so this is the real daily page with its list under that key: the same
    items, and no fall back to the cards."""
    real = (FIXTURES / "hf_papers_daily_2024-08-01.html").read_text(encoding="utf-8")
    assert real.count("&quot;dailyPapers&quot;") == 1
    search = real.replace("&quot;dailyPapers&quot;", "&quot;searchResults&quot;")
    items = parse("hf_papers", search)
    assert [i.to_json() for i in items] == [i.to_json() for i in parse("hf_papers", real)]
    assert len(items) == 13 and all(i.abstract and i.authors for i in items)  # JSON items; cards have neither


@pytest.mark.parametrize("fraction", [0.2, 0.5, 0.9, 0.96, 0.9999])
def test_arxiv_list_cut_short_is_an_error_not_fewer_items(fraction: float) -> None:
    """A page cut short but served as a whole 200 (a proxy's partial answer) must not look like a short listing:
    paging would go on past the entries it lost, and the last entry read could be cut mid-title."""
    real = (FIXTURES / "arxiv_list_cs.CL_recent_2026-07-28.html").read_bytes()
    with pytest.raises(ParseError, match=r"truncated page\?"):
        parse("arxiv_list", real[: int(len(real) * fraction)])


def test_arxiv_list_section_with_fewer_entries_than_its_heading_says_is_an_error() -> None:
    """The whole page, but the first section lost an entry (its heading still says 47)."""
    real = (FIXTURES / "arxiv_list_cs.CL_recent_2026-07-28.html").read_text(encoding="utf-8")
    first_entry = re.search(r"<dt>.*?</dd>", real, flags=re.DOTALL)
    assert first_entry is not None
    with pytest.raises(ParseError, match=r"has 46 of the 47 entries it announces"):
        parse("arxiv_list", real.replace(first_entry.group(0), "", 1))


# What arXiv prints in place of entries, as its list templates write it (arxiv-browse, `browse/templates/list/new.html`
# and `list_macros.html`): a /new page with no visible section says "No updates today." where the sections would be,
# and a section without entries keeps its `dl` and heading and says "No updates for this time period." No real copy
# of either page is kept here, so each is the real list page with its entries taken out the way the template would.
_NEW_PAGE_EMPTY = "\n    <p>No updates today.</p>\n"
_SECTION_EMPTY = "\n    <p>No updates for this time period.</p>\n"


def _list_page_without_entries(section_body: str | None) -> str:
    """The real list page with every section emptied: `section_body` in place of its entries (keeping the `dl` and
    its heading), or with no section at all when `section_body` is None."""
    real = (FIXTURES / "arxiv_list_cs.CL_recent_2026-07-28.html").read_text(encoding="utf-8")
    if section_body is None:
        return re.sub(r"<dl id='articles'>.*</dl>", _NEW_PAGE_EMPTY, real, flags=re.DOTALL)
    emptied = re.sub(r"(<dl id='articles'>\s*<h3>[^<]*</h3>).*?</dl>", rf"\g<1>{section_body}</dl>", real,
                     flags=re.DOTALL)
    return re.sub(r"\(showing (?:first )?\d+ of", "(showing 0 of", emptied)


def test_arxiv_list_new_page_saying_no_updates_today_is_empty_not_broken() -> None:
    emptied = _list_page_without_entries(None)
    assert "dl id='articles'" not in emptied
    assert parse("arxiv_list", emptied) == []
    older_wording = emptied.replace("No updates today.", "No new submissions for Tue, 28 Jul 26.")
    assert parse("arxiv_list", older_wording) == []
    for broken in (emptied.replace("No updates today.", "Service unavailable"),
                   emptied.replace("<p>No updates today.</p>", "<script>// No updates today.</script>"),
                   emptied.replace("<p>No updates today.</p>", "<!-- <p>No updates today.</p> -->")):
        with pytest.raises(ParseError, match="no dl#articles section found; layout changed"):
            parse("arxiv_list", broken)


def test_arxiv_list_sections_saying_no_updates_are_empty_not_broken() -> None:
    emptied = _list_page_without_entries(_SECTION_EMPTY)
    assert emptied.count("No updates for this time period.") == emptied.count("<dl id='articles'>") == 2
    assert "<dt>" not in emptied
    assert parse("arxiv_list", emptied) == []
    with pytest.raises(ParseError, match="2 article sections but no entries read; layout changed"):
        parse("arxiv_list", _list_page_without_entries("\n"))
    one_silent = emptied.replace(_SECTION_EMPTY, "\n", 1)  # one section neither lists entries nor says why
    with pytest.raises(ParseError, match="layout changed"):
        parse("arxiv_list", one_silent)


def test_arxiv_list_an_empty_section_beside_full_ones_is_skipped() -> None:
    real = (FIXTURES / "arxiv_list_cs.CL_recent_2026-07-28.html").read_text(encoding="utf-8")
    first = re.search(r"(<dl id='articles'>\s*<h3>)([^<]*)(</h3>).*?</dl>", real, flags=re.DOTALL)
    assert first is not None
    heading = re.sub(r"\(showing (?:first )?\d+ of", "(showing 0 of", first.group(2))
    page = real.replace(first.group(0), f"{first.group(1)}{heading}{first.group(3)}{_SECTION_EMPTY}</dl>", 1)
    items, all_items = parse("arxiv_list", page), parse("arxiv_list", real)
    assert items and items == all_items[len(all_items) - len(items):]
    assert len(items) == len(all_items) - 47  # the first section's 47 entries, and nothing else, are gone
