"""Mutated real pages: a parser either reads well-formed items or raises `ParseError`, never anything else.

Anything else would escape `parse_page` (only the pipeline's last guard would keep it from stopping the cycle).
The mutations are seeded, so a failure names a seed that reproduces it: cut, repeated and flipped bytes, and
hostile text (out-of-range dates, NULs, broken entities, huge numbers) dropped into the markup or the JSON.
"""

from __future__ import annotations

import html
import json
import random
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from bot.errors import ParseError
from bot.models import Item, Page, Source, SourceOptions
from bot.sources.parse import parse_page
from tests.support.fuzz import fuzz_case

FIXTURES = Path(__file__).parent / "data" / "fixtures"
PAGES = [
    ("hf_papers", "hf_papers_daily_2024-08-01.html"),
    ("hf_papers", "hf_paper_page_2509.24002_bs4-prettified.html"),
    ("hf_api", "hf_api_daily_papers_2026-07-31.json"),
    ("arxiv_feed", "arxiv_rss_cs.LG+cs.AI+cs.CL+stat.ML_2026-09-24_trimmed.xml"),
    ("arxiv_feed", "arxiv_rss-atom_cs.LG_2026-09-25_trimmed.xml"),
    ("arxiv_api", "arxiv_api_query_cat-cs.CL_max3_2026-09-24.atom.xml"),
    ("arxiv_api", "arxiv_api_query_id_list-1601.00001_2020-09-04_legacy-format.atom.xml"),
    ("arxiv_list", "arxiv_list_cs.CL_recent_2026-07-28.html"),
    ("feed", "arxiv_rss_cs.LG+cs.AI+cs.CL+stat.ML_2026-09-24_trimmed.xml"),
    ("feed", "arxiv_api_query_cat-cs.CL_max3_2026-09-24.atom.xml"),
    ("css", "arxiv_list_cs.CL_recent_2026-07-28.html"),
]
CSS = Source(name="fuzz", kind="css", url="https://arxiv.org/list/cs.CL/recent",
             options=SourceOptions(selectors={"item": "dd", "title": "div.list-title", "link": "a", "summary": "p",
                                               "date": "span"}))
HOSTILE_TEXT = [
    b"9999-12-31T23:59:59-23:59", b"Fri, 31 Dec 9999 23:59:59 -2359", b"Mon, 01 Jan 99999999999999999999 00:00 +0000",
    b"Sat, 1 Jan 0001 00:00:00 +2359", b"\x00", b"\xff\xfe", b"&#0;", b"&#x110000;", b"&bogus;", b"<", b"]]>", b"&",
    b'"', b"1e999", b"9" * 400, b"\xf0\x9f\x98\x80", b"javascript:alert(1)", b"http://[::1", b" " * 40, b"\r\n" * 10,
]
HOSTILE_JSON: list[Any] = [None, True, 0, -1, 1.5, 10**30, "", " ", "9999-12-31T23:59:59-23:59", "2026-13-01", [],
                           {}, [None], [{}], {"name": None}, "\x00", "1" * 5000, {"id": "2607.00001"}, "\ud800",
                           "a\udfff b", "\U0001F600"]
FETCHED_AT = datetime(2026, 11, 23, tzinfo=UTC)


DATE_FIELDS = [b"<pubDate>", b"<published>", b"<updated>", b"<dc:date>", b"publishedAt&quot;:&quot;",
               b'"publishedAt": "', b'"publishedAt":"', b"<h3>"]
HOSTILE_DATES = [b"9999-12-31T23:59:59-23:59", b"Fri, 31 Dec 9999 23:59:59 -2359", b"Sat, 1 Jan 0001 00:00:00 +2359",
                 b"Mon, 01 Jan 99999999999999999999 00:00 +0000", b"0000-00-00", b"Thu, 31 Feb 2026", b"Apr 21"]


def mutate_date(rng: random.Random, body: bytes) -> bytes:
    """`body` with the value of one of its date fields (up to 30 bytes of it) replaced by a hostile date; dates
    are where range errors hide."""
    marker = rng.choice([m for m in DATE_FIELDS if m in body] or DATE_FIELDS)
    found: list[int] = []
    index = body.find(marker)
    while index >= 0 and len(found) < 50:
        found.append(index)
        index = body.find(marker, index + 1)
    if not found:
        return body
    start = rng.choice(found) + len(marker)
    return body[:start] + rng.choice(HOSTILE_DATES) + body[start + rng.randint(0, 30) :]


def mutate_bytes(rng: random.Random, body: bytes) -> bytes:
    out = bytearray(body)
    for _ in range(rng.randint(1, 6)):
        at = rng.randrange(len(out)) if out else 0
        roll = rng.random()
        if roll < 0.15:
            out = bytearray(mutate_date(rng, bytes(out)))
        elif roll < 0.3:
            out[at : at + rng.randint(1, 40)] = rng.choice(HOSTILE_TEXT)
        elif roll < 0.5:
            del out[at : at + rng.randint(1, 200)]
        elif roll < 0.7:
            start = rng.randrange(len(out)) if out else 0
            out[at:at] = out[start : start + rng.randint(1, 300)]
        elif roll < 0.85:
            out[at : at + 1] = bytes([rng.randrange(256)])
        else:  # the text between two tags
            gt = out.find(b">", at)
            lt = out.find(b"<", gt + 1) if gt >= 0 else -1
            if 0 <= gt < lt:
                out[gt + 1 : lt] = rng.choice(HOSTILE_TEXT)
    return bytes(out)


def mutate_json(rng: random.Random, data: Any) -> Any:
    """`data` with a few values anywhere in it swapped for values of the wrong type or range."""
    data = json.loads(json.dumps(data))
    for _ in range(rng.randint(1, 5)):
        paths = list(json_paths(data))
        path = rng.choice(paths)
        if not path:
            continue
        holder = data
        for key in path[:-1]:
            holder = holder[key]
        holder[path[-1]] = rng.choice(HOSTILE_JSON)
    return data


def json_paths(value: Any, path: tuple[Any, ...] = ()) -> Any:
    """Every path (keys and indexes) into a JSON value, its root `()` first."""
    yield path
    if isinstance(value, dict):
        for key, child in value.items():
            yield from json_paths(child, (*path, key))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            yield from json_paths(child, (*path, index))


def assert_well_formed(items: list[Item]) -> None:
    for item in items:
        assert item.id and item.title == " ".join(item.title.split()) and item.title, item
        assert all(name and name == " ".join(name.split()) for name in item.authors), item.authors
        assert item.published is None or item.published.utcoffset() is not None, item.published
        assert all(type(count) is int for count in item.metrics.values()), item.metrics
        for text in (item.id, item.url, item.title, item.abstract, *item.authors):
            text.encode("utf-8")  # storable: no lone surrogate
            assert "\x00" not in text
        json.dumps(item.to_json())


def read(kind: str, body: bytes) -> None:
    page = Page(url=CSS.url if kind == "css" else "https://example.org/page", body=body, fetched_at=FETCHED_AT)
    try:
        items = parse_page(kind, page, CSS if kind == "css" else None)
    except ParseError:
        return
    assert_well_formed(items)


@pytest.mark.parametrize("seed", range(0, 1200, 100))
def test_mutated_pages_give_items_or_a_parse_error(seed: int) -> None:
    for case in range(seed, seed + 100):
        kind, name = PAGES[case % len(PAGES)]
        with fuzz_case(f"mutate_bytes(random.Random({case}), {name}) read as {kind}"):
            read(kind, mutate_bytes(random.Random(case), (FIXTURES / name).read_bytes()))


@pytest.mark.parametrize("seed", range(0, 600, 100))
def test_mistyped_hf_json_gives_items_or_a_parse_error(seed: int) -> None:
    entries = json.loads((FIXTURES / "hf_api_daily_papers_2026-07-31.json").read_bytes())
    for case in range(seed, seed + 100):
        data = mutate_json(random.Random(case), entries)
        with fuzz_case(f"mutate_json(random.Random({case}), hf_api_daily_papers_2026-07-31.json)"):
            read("hf_api", json.dumps(data).encode())
            props = html.escape(json.dumps({"dailyPapers": data}), quote=True).encode()
            read("hf_papers", b'<html><body><div data-target="DailyPapers" data-props="' + props + b'"></div>')
