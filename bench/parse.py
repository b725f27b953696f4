"""Parsing speed of `bot.sources.parse_page` on the real page copies, beside two references in the same run.

    python bench/parse.py [--seconds 0.1] [--rounds 15] [--kind KIND] [--profile KIND]

For every parser kind with a real copy in `tests/data/fixtures/`, three things are timed on the same bytes:

- `ours`: `parse_page(kind, page)`, the whole extraction to deduplicated `Item`s (decode, parse, select, ids,
  dates, metrics);
- `bs4`: the same extraction written with BeautifulSoup (parser `lxml` for HTML, `xml` i.e. lxml-xml for XML),
  producing the same `Item`s and checked field by field against ours. It shares digestbot's string helpers
  (`collapse`, `arxiv_id`, `canonical_id`, `parse_date`, the list-heading date reader), so what differs is the
  document work. For the JSON kind bs4 does not apply: the reference is `json.loads` plus the same dict walking;
- `bare`: only the parse our parser starts with: `LexborHTMLParser(body)` for HTML (lexbor decoding the UTF-8
  bytes itself, as our parsers let it), `xml.etree.ElementTree.fromstring(body)` for XML, `json.loads(body)` for
  JSON;
- `floor`: the per-item work the issue asks of every parser and no parse does for us (the id, whitespace-collapsed
  title, abstract and authors, a timezone-aware date read once per distinct string, the `Item`), run on the
  strings of our own output, which are clean already, so every helper takes its cheapest road. It reads nothing
  from the document, so `bare + floor` is a lower bound on any extraction built on that parse: where it exceeds
  1.5x the bare parse the target cannot be met with that parse, and where it does not, what is left of 1.5x is
  the whole budget for finding and reading ~10 fields per item in the parsed document.

Each figure is the best of `--rounds` measurements of about `--seconds` each (the loop count is calibrated
first), with the garbage collector off while timing, as `timeit` does. The four are measured in turn within each
round, so a machine whose speed drifts during the run (a shared VM) weighs on all four alike. Targets (issue 3):
ours ≥ 10× the bs4 items/s, and ours ≤ 1.5× the bare parse time. `--profile KIND` prints a cProfile of `ours` on
that kind's first file.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import io
import json
import pstats
import re
import sys
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bs4 import BeautifulSoup, Tag  # noqa: E402
from selectolax.lexbor import LexborHTMLParser  # noqa: E402

from bot.models import Item, Page  # noqa: E402
from bot.sources.arxiv_list import _heading_day, _heading_section  # noqa: E402 (pure string helpers, shared)
from bot.sources.ids import (  # noqa: E402
    ARXIV_ABS,
    arxiv_id,
    canonical_id,
    collapse,
    collapse_each,
    date_reader,
    dedupe,
    parse_date,
)
from bot.sources.parse import parse_page  # noqa: E402

FIXTURES = Path(__file__).resolve().parents[1] / "tests" / "data" / "fixtures"
FETCHED_AT = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
HF_BASE = "https://huggingface.co"
KEEP_SECTIONS = frozenset({"new", "cross"})  # digestbot's default `announce_types`
HTML_KINDS = frozenset({"hf_papers", "arxiv_list"})
JSON_KINDS = frozenset({"hf_api"})
SPEEDUP_TARGET = 10.0
BARE_RATIO_TARGET = 1.5
_PREFIX = re.compile(r"^\s*arXiv:\S+\s+Announce Type:\s*(?P<type>[\w-]+)\s*(?:Abstract:\s*)?", re.IGNORECASE)

CASES: tuple[tuple[str, str], ...] = (
    ("hf_papers", "hf_papers_daily_2024-08-01.html"),
    ("hf_papers", "hf_paper_page_2509.24002_bs4-prettified.html"),
    ("hf_api", "hf_api_daily_papers_2026-06-12.json"),
    ("hf_api", "hf_api_daily_papers_2026-07-31.json"),
    ("hf_api", "hf_api_daily_papers_2026-08-03.json"),
    ("arxiv_feed", "arxiv_rss_cs.LG+cs.AI+cs.CL+stat.ML_2026-09-24_trimmed.xml"),
    ("arxiv_feed", "arxiv_rss-atom_cs.LG_2026-09-25_trimmed.xml"),
    ("arxiv_api", "arxiv_api_query_all-transformer_cat-cs.LG_2026-06-14.atom.xml"),
    ("arxiv_api", "arxiv_api_query_cat-cs.CL_max3_2026-09-24.atom.xml"),
    ("arxiv_api", "arxiv_api_query_id_list-1601.00001_2020-09-04_legacy-format.atom.xml"),
    ("arxiv_list", "arxiv_list_cs.CL_recent_2026-07-28.html"),
    ("feed", "arxiv_rss_cs.LG+cs.AI+cs.CL+stat.ML_2026-09-24_trimmed.xml"),
)


# --- the reference extraction: dict walking (HF JSON), shared by the bs4 and the stdlib-json baselines ----------

def ref_hf_entries(entries: Sequence[Any]) -> list[Item]:
    return dedupe(ref_hf_paper(e["paper"] if isinstance(e.get("paper"), dict) else e, e) for e in entries)


def ref_hf_paper(paper: Mapping[str, Any], entry: Mapping[str, Any], comments: int | None = None) -> Item:
    metrics = {name: paper[key] for key, name in (("upvotes", "upvotes"), ("githubStars", "github_stars"))
               if isinstance(paper.get(key), int) and not isinstance(paper.get(key), bool)}
    if isinstance(entry.get("numComments"), int):
        metrics["comments"] = entry["numComments"]
    if comments is not None:
        metrics["comments"] = comments
    paper_id = str(paper["id"]).strip()
    url = f"{HF_BASE}/papers/{paper_id}"
    names = (a.get("name") for a in paper.get("authors") or () if isinstance(a, dict))
    return Item(id=canonical_id(arxiv=paper_id, url=url), title=collapse(paper.get("title") or entry.get("title")),
                url=url, abstract=collapse(paper.get("summary")), authors=tuple(collapse(n) for n in names if n),
                published=parse_date(paper.get("publishedAt")) or parse_date(entry.get("publishedAt")),
                metrics=metrics)


def json_hf_api(page: Page) -> list[Item]:
    data = json.loads(page.body)
    return ref_hf_entries(data)


# --- BeautifulSoup + lxml baselines ------------------------------------------------------------------------------

def bs4_hf_papers(page: Page) -> list[Item]:
    soup = BeautifulSoup(page.text(), "lxml")
    widget = soup.find(attrs={"data-target": "DailyPapers"})
    if isinstance(widget, Tag):
        props = json.loads(str(widget["data-props"]))
        return ref_hf_entries(next(props[k] for k in ("dailyPapers", "searchResults", "papers") if k in props))
    widget = soup.find(attrs={"data-target": "PaperContent"})
    if not isinstance(widget, Tag):
        raise ValueError("no DailyPapers / PaperContent widget")
    content = json.loads(str(widget["data-props"]))
    comments = [c for c in content.get("comments") or () if not (c.get("data") or {}).get("hidden")]
    return [ref_hf_paper(content["paper"], {}, comments=len(comments))]


def bs4_arxiv_list(page: Page) -> list[Item]:
    soup = BeautifulSoup(page.text(), "lxml")
    page_day = next((_heading_day(collapse(h.get_text()), page.fetched_at) for h in soup.find_all("h3")
                     if collapse(h.get_text()).lower().startswith("showing new listings for")), None)
    items: list[Item] = []
    for dl in soup.find_all("dl", id="articles"):
        heading = dl.find("h3")
        text = collapse(heading.get_text()) if heading is not None else ""
        day = _heading_day(text, page.fetched_at) or page_day
        section = _heading_section(text)
        for dt, dd in zip(dl.find_all("dt"), dl.find_all("dd"), strict=False):
            item = _bs4_list_item(dt, dd, day, section)
            if item is not None:
                items.append(item)
    return dedupe(i for i in items if i.section is None or i.section in KEEP_SECTIONS)


def _bs4_list_item(dt: Tag, dd: Tag, day: datetime | None, section: str | None) -> Item | None:
    link = dt.find("a", title="Abstract") or dt.find("a", href=re.compile("/abs/"))
    paper_id = arxiv_id(urljoin("https://arxiv.org/", str(link.get("href") or ""))) if link else None
    title_node = dd.find("div", class_="list-title")
    title = re.sub(r"^Title:\s*", "", collapse(title_node.get_text())) if title_node is not None else ""
    if paper_id is None or not title:
        return None
    if section == "replace" and "cross-list" in dt.get_text().lower():
        section = "replace-cross"
    abstract = dd.find("p", class_="mathjax")
    authors = dd.find("div", class_="list-authors")
    return Item(id=f"arxiv:{paper_id}", title=title, url=ARXIV_ABS + paper_id,
                abstract=collapse(abstract.get_text()) if abstract is not None else "",
                authors=tuple(collapse(a.get_text()) for a in authors.find_all("a")) if authors else (),
                published=day, section=section)


@dataclass(frozen=True, slots=True)
class _Entry:
    title: str
    link: str
    guid: str
    summary: str
    published: str
    authors: tuple[str, ...]
    doi: str
    announce_type: str


def _child_text(tag: Tag, name: str) -> str:
    found = tag.find(name, recursive=False)
    return found.get_text() if found is not None else ""


def bs4_entries(page: Page) -> list[_Entry]:
    """RSS 2.0 items or Atom entries, read with BeautifulSoup's lxml-xml parser."""
    soup = BeautifulSoup(page.body, "xml")
    channel = soup.rss.find("channel", recursive=False) if soup.rss is not None else None
    if channel is not None:
        return [_bs4_rss_entry(item, page.url) for item in channel.find_all("item", recursive=False)]
    return [_bs4_atom_entry(entry, page.url) for entry in soup.feed.find_all("entry", recursive=False)]


def _bs4_rss_entry(item: Tag, base: str) -> _Entry:
    guid = _child_text(item, "guid").strip()
    link = _child_text(item, "link").strip()
    authors = [collapse(c.get_text()) for c in item.find_all("dc:creator", recursive=False)]
    return _Entry(title=collapse(_child_text(item, "title")), link=urljoin(base, link) if link else "", guid=guid,
                  summary=_child_text(item, "description"), published=_child_text(item, "pubDate"),
                  authors=tuple(a for a in authors if a),
                  doi=_child_text(item, "arxiv:DOI"), announce_type=_child_text(item, "arxiv:announce_type"))


def _bs4_atom_entry(entry: Tag, base: str) -> _Entry:
    alternate = next((ln for ln in entry.find_all("link", recursive=False) if ln.get("rel", "alternate")
                      == "alternate"), None)
    href = str(alternate.get("href", "")) if alternate is not None else ""
    title = entry.find("title", recursive=False)
    title_text = title.get_text() if title is not None else ""
    authors = [collapse(_child_text(a, "name")) for a in entry.find_all("author", recursive=False)]
    authors += [collapse(c.get_text()) for c in entry.find_all("dc:creator", recursive=False)]
    return _Entry(title=bs4_html_text(title_text) if title is not None and title.get("type") == "html"
                  else collapse(title_text), link=urljoin(base, href) if href else "",
                  guid=_child_text(entry, "id").strip(), summary=_child_text(entry, "summary"),
                  published=_child_text(entry, "published") or _child_text(entry, "updated"),
                  authors=tuple(a for a in authors if a),
                  doi=_child_text(entry, "arxiv:doi") or _child_text(entry, "arxiv:DOI"),
                  announce_type=_child_text(entry, "arxiv:announce_type"))


def bs4_html_text(markup: str) -> str:
    if "<" not in markup and "&" not in markup:
        return collapse(markup)
    soup = BeautifulSoup(f"<div>{markup}</div>", "lxml")
    for tag in soup.find_all(["script", "style"]):
        tag.decompose()
    return collapse(soup.get_text(" "))


def bs4_arxiv_feed(page: Page) -> list[Item]:
    items = []
    for entry in bs4_entries(page):
        paper_id = arxiv_id(entry.guid) or arxiv_id(entry.link)
        if paper_id is None or not entry.title:
            continue
        prefix = _PREFIX.match(entry.summary)
        section = collapse(entry.announce_type) or (prefix.group("type") if prefix else "")
        items.append(Item(
            id=f"arxiv:{paper_id}", title=entry.title, url=ARXIV_ABS + paper_id,
            abstract=collapse(entry.summary[prefix.end():] if prefix else entry.summary),
            authors=tuple(n for names in entry.authors for n in map(collapse, names.split(",")) if n),
            published=parse_date(entry.published), section=section.lower() or None))
    return dedupe(i for i in items if i.section is None or i.section in KEEP_SECTIONS)


def bs4_arxiv_api(page: Page) -> list[Item]:
    items = []
    for entry in bs4_entries(page):
        paper_id = arxiv_id(entry.guid) or arxiv_id(entry.link)
        if paper_id is None or not entry.title:
            continue
        items.append(Item(id=f"arxiv:{paper_id}", title=entry.title, url=ARXIV_ABS + paper_id,
                          abstract=collapse(entry.summary), authors=entry.authors,
                          published=parse_date(entry.published)))
    return dedupe(items)


def bs4_feed(page: Page) -> list[Item]:
    items = []
    for entry in bs4_entries(page):
        url = entry.link or (entry.guid if "://" in entry.guid else "")
        if not entry.title or not url:
            continue
        items.append(Item(id=canonical_id(arxiv=entry.guid, doi_text=entry.doi, url=url), title=entry.title,
                          url=url, abstract=bs4_html_text(entry.summary), authors=entry.authors,
                          published=parse_date(entry.published)))
    return dedupe(items)


BASELINES: dict[str, Callable[[Page], list[Item]]] = {
    "hf_papers": bs4_hf_papers, "hf_api": json_hf_api, "arxiv_feed": bs4_arxiv_feed,
    "arxiv_api": bs4_arxiv_api, "arxiv_list": bs4_arxiv_list, "feed": bs4_feed,
}


def bare_parse(kind: str, page: Page) -> Callable[[], object]:
    """The bare parse our parser starts from, as a no-argument callable on the page's body."""
    if kind in HTML_KINDS:
        return lambda: LexborHTMLParser(page.body)
    if kind in JSON_KINDS:
        return lambda: json.loads(page.body)
    return lambda: ET.fromstring(page.body)


def floor_work(items: Sequence[Item]) -> Callable[[], list[Item]]:
    """The required per-item normalisation alone, on the clean strings of `items` (see the module docstring); the
    callable rebuilds `items` exactly, which `measure` checks, so it does all of that work and no more."""
    raw = [(item.id.removeprefix("arxiv:") if item.id.startswith("arxiv:") else None, item.url, item.title,
            item.abstract, item.authors, item.published.isoformat() if item.published else "", dict(item.metrics),
            item.section) for item in items]

    def rebuild() -> list[Item]:
        read_date = date_reader()
        return [Item(id=canonical_id(arxiv=paper_id, url=url), title=collapse(title), url=url,
                     abstract=collapse(abstract), authors=collapse_each(authors), published=read_date(published),
                     metrics=metrics, section=section)
                for paper_id, url, title, abstract, authors, published, metrics, section in raw]

    return rebuild


# --- timing ------------------------------------------------------------------------------------------------------

def seconds_per_call(fn: Callable[[], object], seconds: float, repeats: int = 5) -> float:
    """Best of `repeats` measurements of about `seconds` each, per call; gc off while timing (as timeit)."""
    loops = _loops_for(fn, seconds)
    return min(_timed(fn, loops) for _ in range(repeats)) / loops


def best_per_call(fns: Sequence[Callable[[], object]], seconds: float, rounds: int) -> list[float]:
    """For each function, per call, the best of `rounds` measurements of about `seconds` each; the functions take
    turns within each round, so drift in the machine's speed weighs on all of them alike."""
    loops = [_loops_for(fn, seconds) for fn in fns]
    best = [float("inf")] * len(fns)
    for _ in range(rounds):
        for i, (fn, count) in enumerate(zip(fns, loops, strict=True)):
            best[i] = min(best[i], _timed(fn, count) / count)
    return best


def _loops_for(fn: Callable[[], object], seconds: float) -> int:
    """How many calls take about `seconds`."""
    loops = 1
    while True:
        elapsed = _timed(fn, loops)
        if elapsed >= min(0.05, seconds):
            break
        loops *= 4
    return max(1, round(loops * seconds / elapsed))


def _timed(fn: Callable[[], object], loops: int) -> float:
    gc.collect()
    gc.disable()
    try:
        start = time.perf_counter()
        for _ in range(loops):
            fn()
        return time.perf_counter() - start
    finally:
        gc.enable()


# --- running -----------------------------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Row:
    kind: str
    file: str
    items: int
    ours_s: float
    base_s: float
    bare_s: float
    floor_s: float
    same: str

    @property
    def speedup(self) -> float:
        return self.base_s / self.ours_s

    @property
    def ratio(self) -> float:
        return self.ours_s / self.bare_s

    @property
    def floor(self) -> float:
        """`(bare + floor work) / bare`: the lowest ratio any extraction on this parse can have."""
        return 1 + self.floor_s / self.bare_s

    @property
    def room(self) -> float:
        """Seconds per item that 1.5x the bare parse leaves, beyond the floor, for reading an item's fields."""
        return (BARE_RATIO_TARGET - self.floor) * self.bare_s / self.items


def load_page(name: str) -> Page:
    return Page(url=f"https://example.org/{name}", body=(FIXTURES / name).read_bytes(), fetched_at=FETCHED_AT)


def compare(ours: Sequence[Item], theirs: Sequence[Item]) -> str:
    """'yes' when both extractions agree on every field, else which fields differ."""
    if len(ours) != len(theirs):
        return f"no: {len(ours)} vs {len(theirs)} items"
    differing = sorted({key for a, b in zip(ours, theirs, strict=True)
                        for key, value in a.to_json().items() if b.to_json()[key] != value})
    return "yes" if not differing else "no: " + ",".join(differing)


def measure(kind: str, name: str, seconds: float, rounds: int) -> Row:
    page = load_page(name)
    ours_items = parse_page(kind, page)
    baseline = BASELINES[kind]
    same = compare(ours_items, baseline(page))
    floor = floor_work(ours_items)
    if floor() != ours_items:
        raise AssertionError(f"{name}: the floor work does not rebuild our items")
    ours_s, base_s, bare_s, floor_s = best_per_call(
        [lambda: parse_page(kind, page), lambda: baseline(page), bare_parse(kind, page), floor], seconds, rounds)
    return Row(kind, name, len(ours_items), ours_s, base_s, bare_s, floor_s, same)


def verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def print_table(rows: Sequence[Row]) -> None:
    header = (f"{'kind':<11} {'file':<44} {'items':>5} {'ours it/s':>10} {'ref it/s':>9} {'speed-up':>8} "
              f"{'bare ms':>8} {'ours ms':>8} {'ratio':>6} {'floor':>6}  {'10x':<5} {'1.5x':<5} same output")
    print(header)
    print("-" * len(header))
    for r in rows:
        ref = "json" if r.kind in JSON_KINDS else "bs4"
        speed_target = "n/a" if r.kind in JSON_KINDS else verdict(r.speedup >= SPEEDUP_TARGET)
        short = r.file if len(r.file) <= 44 else r.file[:41] + "..."
        print(f"{r.kind:<11} {short:<44} {r.items:>5} {r.items / r.ours_s:>10,.0f} {r.items / r.base_s:>9,.0f} "
              f"{r.speedup:>7.1f}x {r.bare_s * 1e3:>8.3f} {r.ours_s * 1e3:>8.3f} {r.ratio:>5.2f}x {r.floor:>5.2f}x  "
              f"{speed_target:<5} {verdict(r.ratio <= BARE_RATIO_TARGET):<5} {r.same} ({ref})")


def print_summary(rows: Sequence[Row]) -> None:
    html = [r for r in rows if r.kind in HTML_KINDS]
    xml = [r for r in rows if r.kind not in HTML_KINDS | JSON_KINDS]
    print()
    for label, group in (("HTML kinds", html), ("XML kinds", xml)):
        if group:
            worst = min(group, key=lambda r: r.speedup)
            print(f"{label}: >= {SPEEDUP_TARGET:g}x bs4+lxml: {verdict(worst.speedup >= SPEEDUP_TARGET)} "
                  f"(lowest {worst.speedup:.1f}x, {worst.kind} {worst.file})")
    worst = max(rows, key=lambda r: r.ratio)
    print(f"all kinds: within {BARE_RATIO_TARGET:g}x of the bare parse: {verdict(worst.ratio <= BARE_RATIO_TARGET)} "
          f"(highest {worst.ratio:.2f}x, {worst.kind} {worst.file})")
    missed = [r for r in rows if r.ratio > BARE_RATIO_TARGET]
    if missed:
        beyond = [r for r in missed if r.floor > BARE_RATIO_TARGET]
        tight = min(missed, key=lambda r: r.room)
        reading = (tight.ours_s - tight.bare_s - tight.floor_s) / tight.items
        print(f"  of the {len(missed)} missed: the required per-item work alone (floor) is over "
              f"{BARE_RATIO_TARGET:g}x on {len(beyond)}; the least room it leaves for reading one item's fields "
              f"from the parsed document is {max(tight.room, 0.0) * 1e6:.1f} us ({tight.kind} {tight.file}), "
              f"where ours spends {reading * 1e6:.1f} us per item beyond the floor")


def profile(kind: str, seconds: float) -> None:
    name = next(n for k, n in CASES if k == kind)
    page = load_page(name)
    loops = max(1, round(seconds / seconds_per_call(lambda: parse_page(kind, page), 0.1, repeats=1)))
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(loops):
        parse_page(kind, page)
    profiler.disable()
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(15)
    print(f"cProfile of parse_page({kind!r}) on {name}, {loops} calls\n{out.getvalue()}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=0.1, help="length of one measurement (default 0.1)")
    parser.add_argument("--rounds", type=int, default=15, help="measurements of each, best kept (default 15)")
    parser.add_argument("--kind", action="append", help="only these kinds (repeatable)")
    parser.add_argument("--profile", metavar="KIND", help="print a cProfile of parse_page on KIND and stop")
    args = parser.parse_args()
    if args.profile:
        profile(args.profile, max(args.seconds, 1.0))
        return
    started = time.perf_counter()
    rows = [measure(kind, name, args.seconds, args.rounds) for kind, name in CASES
            if not args.kind or kind in args.kind]
    print(f"Python {sys.version.split()[0]}; 'ref' is bs4+lxml (HTML, XML) or stdlib json (hf_api); "
          f"best of {args.rounds} rounds x ~{args.seconds:g} s each, taken in turn\n")
    print_table(rows)
    print_summary(rows)
    print(f"({time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    main()
