"""Hugging Face papers: the `hf_papers` HTML pages and the `hf_api` `/api/daily_papers` JSON.

Choices, so every HF item looks the same whichever way it was fetched:
- `url` is the HF paper page, `https://huggingface.co/papers/<id>` (where the upvotes and discussion are);
  `id` is still `arxiv:<id>` so the same paper from an arXiv feed is one item.
- `published` is the paper's own date (`paper.publishedAt`), falling back to the daily-list entry's date.
- `metrics`: `upvotes` from `paper.upvotes` (there is no top-level `upvotes`), `comments` from the entry's
  `numComments` (on a single paper page: its visible comments), `github_stars` where the paper has a repo.

HTML pages are read from the JSON the page embeds for hydration (`data-props` of `DailyPapers`, or
`PaperContent` on a single paper page) and only fall back to the `<article>` cards when that is missing.
A listing's `DailyPapers` element is read without building the DOM of the whole page (`_listing_node`).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from itertools import repeat
from typing import Any

from selectolax.lexbor import LexborHTMLParser, LexborNode

from bot.errors import ParseError
from bot.models import Item, Page, SourceOptions
from bot.sources.ids import arxiv_id, canonical_id, collapse, names, parse_date

log = logging.getLogger(__name__)

HF_BASE = "https://huggingface.co"
_LIST_KEYS = ("dailyPapers", "searchResults", "papers")
_LISTING = 'data-target="DailyPapers"'
_LISTING_PROPS = f'{_LISTING} data-props="'.encode()


def parse_hf_api(page: Page, options: SourceOptions) -> list[Item]:
    """`/api/daily_papers`: a JSON array of entries, each with a nested `paper`."""
    try:
        data = json.loads(page.body)
    except ValueError as exc:
        raise ParseError(f"{page.url}: not JSON ({exc}); layout changed?") from exc
    if isinstance(data, dict):
        data = next((data[key] for key in _LIST_KEYS if isinstance(data.get(key), list)), data)
    if not isinstance(data, list):
        raise ParseError(f"{page.url}: expected a JSON array of papers, got {type(data).__name__}; layout changed?")
    if not data:
        return []  # the API answers [] for a day with no papers yet: the page itself says it is empty
    return _items_from_entries(data, page.url)


def parse_hf_papers(page: Page, options: SourceOptions) -> list[Item]:
    """A papers listing (daily, weekly, search) or a single paper page."""
    tree: LexborHTMLParser | None = None
    listing = _listing_node(page.body)
    if listing is None:
        tree = LexborHTMLParser(page.body)  # lexbor decodes the UTF-8 itself, as `Page.text` would
        listing = tree.css_first(f"[{_LISTING}]")
    entries = _entries(_props(listing, "DailyPapers"))
    if entries is not None:
        return _items_from_entries(entries, page.url) if entries else []
    if tree is None:
        tree = LexborHTMLParser(page.body)
    content = _props(tree.css_first('[data-target="PaperContent"]'), "PaperContent")
    if content is not None and isinstance(content.get("paper"), dict):
        return [_paper_page_item(content)]
    return _items_from_cards(tree, page.url)


def _listing_node(body: bytes) -> LexborNode | None:
    """The page's first `DailyPapers` element, parsed without the rest of the page; None to search the whole DOM.

    The JSON in its `data-props` is most of a listing page, and what follows it (the cards) is not needed. So
    the page is parsed only to the end of that value, which is the next double quote after `data-props="`; the
    element found is used only if it is the one the parse ends with (not an earlier one, not text that merely
    looks like it inside a comment or a script).
    """
    start = body.find(_LISTING_PROPS)
    value_end = body.find(b'"', start + len(_LISTING_PROPS)) if start >= 0 else -1
    if value_end < 0:
        return None
    node = LexborHTMLParser(body[: value_end + 1] + b">").css_first(f"[{_LISTING}]")
    return node if node is not None and _ends_document(node) else None


def _ends_document(node: LexborNode) -> bool:
    """Whether nothing follows `node` in document order."""
    if node.first_child is not None:
        return False
    current: LexborNode | None = node
    while current is not None:
        if current.next is not None:
            return False
        current = current.parent
    return True


def _entries(props: dict[str, Any] | None) -> list[Any] | None:
    """The paper list of a listing's props (`dailyPapers`, or `searchResults` on a search page)."""
    if props is None:
        return None
    return next((props[key] for key in _LIST_KEYS if isinstance(props.get(key), list)), None)


def _props(node: LexborNode | None, target: str) -> dict[str, Any] | None:
    """The hydration JSON of one widget, or None when the widget or its JSON is not there."""
    raw = node.attributes.get("data-props") if node is not None else None
    if not raw:
        return None
    try:
        data = json.loads(raw)
    except ValueError:
        log.warning("HF page: %s data-props is not JSON; trying the HTML cards", target)
        return None
    return data if isinstance(data, dict) else None


def _items_from_entries(entries: list[Any], where: str) -> list[Item]:
    """Items from daily-list entries; a malformed entry is skipped, all of them malformed is an error."""
    items: list[Item] = []
    for entry in entries:
        try:
            items.append(_entry_item(entry))
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            log.warning("%s: skipping a malformed paper entry (%r)", where, exc)
    if not items:
        raise ParseError(f"{where}: {len(entries)} entries but none with a paper id and title; layout changed?")
    return items


def _entry_item(entry: Mapping[str, Any]) -> Item:
    """One daily-list entry (`{paper: {...}, numComments, ...}`) or a bare paper object."""
    paper = entry["paper"] if isinstance(entry.get("paper"), dict) else entry
    metrics = _paper_metrics(paper)
    if type(comments := entry.get("numComments")) is int:  # not a bool
        metrics["comments"] = comments
    return _paper_item(paper, metrics, entry.get("title"), entry.get("publishedAt"))


def _paper_page_item(content: Mapping[str, Any]) -> Item:
    """The single `/papers/<id>` page: its `PaperContent` props carry the paper and its comments."""
    paper = content["paper"]
    metrics = _paper_metrics(paper)
    comments = content.get("comments")
    if isinstance(comments, list):
        metrics["comments"] = sum(1 for c in comments if isinstance(c, dict) and not _hidden(c))
    return _paper_item(paper, metrics)


def _hidden(comment: Mapping[str, Any]) -> bool:
    data = comment.get("data")
    return bool(isinstance(data, dict) and data.get("hidden"))


def _paper_metrics(paper: Mapping[str, Any]) -> dict[str, int]:
    """`upvotes` and `github_stars` where the paper has them as integers (`type` is `int`: not a bool)."""
    metrics: dict[str, int] = {}
    if type(upvotes := paper.get("upvotes")) is int:
        metrics["upvotes"] = upvotes
    if type(stars := paper.get("githubStars")) is int:
        metrics["github_stars"] = stars
    return metrics


def _paper_item(paper: Mapping[str, Any], metrics: dict[str, int], fallback_title: Any = None,
                fallback_date: Any = None) -> Item:
    paper_id = str(paper["id"]).strip()
    title = collapse(paper.get("title") or fallback_title)
    if not paper_id or not title:
        raise ValueError("paper without id or title")
    url = f"{HF_BASE}/papers/{paper_id}"
    # Every listed author counts: `hidden` is an author's profile setting (seen on a claimed, verified author).
    authors = names(_author_names(paper.get("authors") or ()))
    arxiv = arxiv_id(paper_id)
    return Item(
        id=f"arxiv:{arxiv}" if arxiv else canonical_id(url=url),
        title=title,
        url=url,
        abstract=collapse(paper.get("summary")),
        authors=authors,
        published=parse_date(paper.get("publishedAt")) or parse_date(fallback_date),
        metrics=metrics,
    )


def _author_names(authors: Any) -> list[Any]:
    """The `name` of every author object that has one (a 500-author paper is read at C speed)."""
    try:
        return list(filter(None, map(dict.get, authors, repeat("name"))))
    except TypeError:  # an author that is not an object (skipped here, one by one)
        return [name for author in authors if isinstance(author, dict) and (name := author.get("name"))]


def _items_from_cards(tree: LexborHTMLParser, where: str) -> list[Item]:
    """Fallback when the embedded JSON is gone: the `<article>` cards (id, title, upvotes, comments only)."""
    items: list[Item] = []
    for card in tree.css("article"):
        item = _card_item(card)
        if item is not None:
            items.append(item)
    if not items:
        raise ParseError(f"{where}: no DailyPapers data and no paper cards found; layout changed?")
    return items


def _card_item(card: LexborNode) -> Item | None:
    link = card.css_first('h3 a[href^="/papers/"]') or card.css_first('a[href^="/papers/"]')
    heading = card.css_first("h3")
    if link is None or heading is None:
        return None
    href = (link.attributes.get("href") or "").split("#")[0]
    paper_id = href.rsplit("/", 1)[-1]
    title = collapse(heading.text())
    if not paper_id or not title:
        return None
    url = f"{HF_BASE}/papers/{paper_id}"
    metrics: dict[str, int] = {}
    votes = next((n.text().strip() for n in card.css("div.leading-none") if n.text().strip().isdigit()), None)
    if votes is not None:  # the upvote box is the only all-digits `leading-none` block on a card
        metrics["upvotes"] = int(votes)
    comments = card.css_first('a[href$="#community"]')
    if comments is not None and comments.text().strip().isdigit():
        metrics["comments"] = int(comments.text().strip())
    return Item(id=canonical_id(arxiv=arxiv_id(paper_id), url=url), title=title, url=url, metrics=metrics)


def api_entry_count(page: Page) -> int | None:
    """How many entries an `/api/daily_papers` page holds, malformed ones included: the page size paging compares
    with `limit` (parsed items can be fewer). None when the body is not a list the parser would read."""
    try:
        data = json.loads(page.body)
    except ValueError:
        return None
    if isinstance(data, dict):
        data = next((data[key] for key in _LIST_KEYS if isinstance(data.get(key), list)), data)
    return len(data) if isinstance(data, list) else None
