"""Generic sources: RSS 2.0 / RSS 1.0 / Atom feeds (`feed`) and listing pages read with CSS selectors (`css`).

The XML reading here (`read_feed` → `Entry`) is shared with the arXiv parsers, which add arXiv's own
conventions on top. Titles are kept as text (a title `<script>` stays the literal string, escaping is
the renderer's job); summaries that feeds declare or serve as HTML are reduced to their text.
"""

from __future__ import annotations

import logging
import xml.etree.ElementTree as ET
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urljoin

from selectolax.lexbor import LexborHTMLParser, LexborNode, SelectolaxError

from bot.errors import ParseError
from bot.models import Item, Page, SourceOptions
from bot.sources.ids import canonical_id, collapse, date_reader, names, parse_date

log = logging.getLogger(__name__)

ATOM = "{http://www.w3.org/2005/Atom}"
DC = "{http://purl.org/dc/elements/1.1/}"
ARXIV = "{http://arxiv.org/schemas/atom}"
CONTENT = "{http://purl.org/rss/1.0/modules/content/}"
PRISM = "{http://prismstandard.org/namespaces/basic/2.0/}"
RSS1 = "{http://purl.org/rss/1.0/}"
RDF = "{http://www.w3.org/1999/02/22-rdf-syntax-ns#}"
_CSS_KEYS = ("item", "title", "link", "summary", "date")


@dataclass(slots=True)
class Entry:
    """One feed entry with the fields every flavour has, before any source-specific reading.

    Not frozen, only for speed (a frozen dataclass costs about three times as much to build, one per entry, as
    `bot.models.Reason` explains): treat it as immutable. `authors` are `collapse`d, empty ones dropped.
    """

    element: ET.Element
    title: str
    link: str
    guid: str
    summary: str
    published: str
    authors: tuple[str, ...]
    doi: str


def parse_xml(page: Page) -> ET.Element:
    """The document root; bytes go to expat so the XML declaration's encoding is honoured."""
    try:
        return ET.fromstring(page.body)
    except ET.ParseError as exc:
        raise ParseError(f"{page.url}: not well-formed XML ({exc}); layout changed?") from exc


def read_feed(page: Page) -> list[Entry]:
    """Entries of an RSS 2.0, RSS 1.0 (RDF) or Atom document; [] when the feed has no entries at all."""
    root = parse_xml(page)
    if root.tag == "rss":
        channel = root.find("channel")
        if channel is None:
            raise ParseError(f"{page.url}: RSS without a <channel>; layout changed?")
        return [_rss_entry(e, page.url) for e in channel.findall("item")]
    if root.tag == f"{ATOM}feed":
        return [_atom_entry(e, page.url) for e in root.findall(f"{ATOM}entry")]
    if root.tag == f"{RDF}RDF":
        return [_rss_entry(e, page.url) for e in root.findall(f"{RSS1}item")]
    raise ParseError(f"{page.url}: XML root <{root.tag}> is not RSS or Atom; layout changed?")


# Namespaced tag names, spelled out once (an entry looks up a dozen of them).
_RSS1_LINK, _RSS1_DESCRIPTION, _RSS1_TITLE = f"{RSS1}link", f"{RSS1}description", f"{RSS1}title"
_RDF_ABOUT, _CONTENT_ENCODED, _PRISM_DOI = f"{RDF}about", f"{CONTENT}encoded", f"{PRISM}doi"
_DC_CREATOR, _DC_DATE, _DC_IDENTIFIER = f"{DC}creator", f"{DC}date", f"{DC}identifier"
_ARXIV_DOI, _ARXIV_DOI_LOWER = f"{ARXIV}DOI", f"{ARXIV}doi"
_ATOM_LINK, _ATOM_AUTHOR, _ATOM_NAME, _ATOM_ID = f"{ATOM}link", f"{ATOM}author", f"{ATOM}name", f"{ATOM}id"
_ATOM_TITLE, _ATOM_SUMMARY, _ATOM_CONTENT = f"{ATOM}title", f"{ATOM}summary", f"{ATOM}content"
_ATOM_PUBLISHED, _ATOM_UPDATED = f"{ATOM}published", f"{ATOM}updated"


def _children(element: ET.Element) -> dict[str, ET.Element]:
    """The first child element of each tag, in one pass (what `element.find(tag)` returns, for every tag at once)."""
    return {child.tag: child for child in reversed(element)}


def _text(element: ET.Element | None) -> str:
    """All text inside an element (its own, its descendants' and their tails), "" for a missing element."""
    if element is None:
        return ""
    if len(element) == 0:  # the usual leaf: its own text is all of it
        return element.text or ""
    return "".join(element.itertext())


def _rss_entry(item: ET.Element, base: str) -> Entry:
    """RSS 2.0 elements are un-namespaced, RSS 1.0 ones live in the RSS 1.0 namespace."""
    child = _children(item).get
    guid_el = child("guid")
    guid = (guid_el.text or "").strip() if guid_el is not None else ""
    link = (_text(child("link")) or _text(child(_RSS1_LINK))).strip() or item.get(_RDF_ABOUT, "")
    if not link and guid_el is not None and guid_el.get("isPermaLink", "true") != "false":
        link = guid
    creators = item.findall(_DC_CREATOR)
    authors = names([el.text or "" for el in creators] if creators else [_rss_author(child("author"))])
    return Entry(
        element=item,
        title=collapse(_text(child("title")) or _text(child(_RSS1_TITLE))),
        link=_absolute(base, link),
        guid=guid,
        summary=_text(child("description")) or _text(child(_RSS1_DESCRIPTION)) or _text(child(_CONTENT_ENCODED)),
        published=_text(child("pubDate")) or _text(child(_DC_DATE)),
        authors=authors,
        doi=_text(child(_ARXIV_DOI)) or _text(child(_PRISM_DOI)) or _text(child(_DC_IDENTIFIER)),
    )


def _rss_author(author: ET.Element | None) -> str:
    """RSS 2.0 `<author>` is `email (Name)`; keep the name."""
    raw = collapse(_text(author))
    if raw.endswith(")") and "(" in raw:
        return raw[raw.index("(") + 1 : -1].strip()
    return raw


def _atom_entry(entry: ET.Element, base: str) -> Entry:
    child = _children(entry).get
    alternate = next((ln for ln in entry.findall(_ATOM_LINK) if ln.get("rel", "alternate") == "alternate"), None)
    href = alternate.get("href", "") if alternate is not None else ""
    summary_el = child(_ATOM_SUMMARY)
    if summary_el is None:
        summary_el = child(_ATOM_CONTENT)
    author_names = [_text(author.find(_ATOM_NAME)) for author in entry.findall(_ATOM_AUTHOR)]
    author_names += [el.text or "" for el in entry.findall(_DC_CREATOR)]
    return Entry(
        element=entry,
        title=_atom_text(child(_ATOM_TITLE)),
        link=_absolute(base, href),
        guid=_text(child(_ATOM_ID)).strip(),
        summary=_text(summary_el),
        published=_text(child(_ATOM_PUBLISHED)) or _text(child(_ATOM_UPDATED)),
        authors=names(author_names),
        doi=_text(child(_ARXIV_DOI_LOWER)) or _text(child(_ARXIV_DOI)),
    )


def _atom_text(element: ET.Element | None) -> str:
    """An Atom text construct as plain text: markup removed only where `type` says it is markup."""
    if element is None:
        return ""
    text = _text(element)
    return html_text(text) if element.get("type") == "html" else collapse(text)


def html_text(markup: str) -> str:
    """The visible text of an HTML fragment, whitespace collapsed (scripts and styles dropped)."""
    if "<" not in markup and "&" not in markup:
        return collapse(markup)
    tree = LexborHTMLParser(f"<div>{markup}</div>")
    tree.strip_tags(["script", "style"])
    body = tree.body
    return collapse(body.text(separator=" ") if body is not None else "")


def parse_feed(page: Page, options: SourceOptions) -> list[Item]:
    """Any RSS/Atom feed. Ids: arXiv or DOI when the entry's link/guid/doi names one, else the link."""
    entries = read_feed(page)
    if not entries:
        return []  # a well-formed feed with no entries says itself that there is nothing new
    read_date = date_reader()
    items = [item for entry in entries if (item := _feed_item(entry, read_date)) is not None]
    if not items:
        raise ParseError(f"{page.url}: {len(entries)} feed entries, none with a title and link; layout changed?")
    return items


def _feed_item(entry: Entry, read_date: Callable[[str], datetime | None]) -> Item | None:
    url = entry.link or (entry.guid if "://" in entry.guid else "")
    if not entry.title or not url:
        log.warning("feed entry without title or link skipped (guid %r)", entry.guid)
        return None
    return Item(
        id=canonical_id(arxiv=entry.guid, doi_text=entry.doi, url=url),
        title=entry.title,
        url=url,
        abstract=html_text(entry.summary),
        authors=entry.authors,
        published=read_date(entry.published),
    )


def is_css_selector(css: str) -> bool:
    """Whether lexbor can read `css` as a selector (config validation: a typo is a config error, not a failing
    source)."""
    try:
        LexborHTMLParser("<p>").css_first(css)
    except SelectolaxError:
        return False
    return True


def parse_css(page: Page, options: SourceOptions) -> list[Item]:
    """A listing page read with the source's `selectors`: `item`, `title`, optional `link`, `summary`, `date` (each
    relative to the item element)."""
    selectors = options.selectors
    item_sel, title_sel = selectors.get("item"), selectors.get("title")
    if not item_sel or not title_sel:
        raise ParseError(f"{page.url}: a css source needs selectors `item` and `title`",
                         hint="Add selectors = { item = \"...\", title = \"...\" } to the [[sources]] entry.")
    bad = [f"{key} = {css!r}" for key in _CSS_KEYS if (css := selectors.get(key)) and not is_css_selector(css)]
    if bad:
        raise ParseError(f"{page.url}: not a CSS selector: {', '.join(bad)}",
                         hint="Fix the source's `selectors` (`digestbot check-config` checks them) or `--select`.")
    tree = LexborHTMLParser(page.text())
    nodes = tree.css(item_sel)
    if not nodes:
        raise ParseError(f"{page.url}: no element matches item selector {item_sel!r}; layout changed?")
    items = [item for item in (_css_item(node, selectors, page.url) for node in nodes) if item is not None]
    if not items:
        raise ParseError(f"{page.url}: {len(nodes)} {item_sel!r} elements but none with a title and link; "
                         "layout changed?")
    return items


def _css_item(node: LexborNode, selectors: Mapping[str, str], base: str) -> Item | None:
    title_node = node.css_first(selectors["title"])
    if title_node is None:
        return None
    title = collapse(title_node.text())
    href = _css_href(node, title_node, selectors.get("link"))
    if not title or not href:
        return None
    url = _absolute(base, href)
    summary_node = node.css_first(selectors["summary"]) if selectors.get("summary") else None
    date_node = node.css_first(selectors["date"]) if selectors.get("date") else None
    date_text = (date_node.attributes.get("datetime") or date_node.text()) if date_node is not None else None
    return Item(
        id=canonical_id(url=url),
        title=title,
        url=url,
        abstract=collapse(summary_node.text(separator=" ")) if summary_node is not None else "",
        published=parse_date(date_text),
    )


def _css_href(node: LexborNode, title_node: LexborNode, link_sel: Any) -> str:
    """The item's link: the `link` selector's href, else the title's own link, else the item's first link."""
    if isinstance(link_sel, str) and link_sel:
        candidates = [node.css_first(link_sel)]
    else:
        candidates = [title_node if title_node.tag == "a" else title_node.css_first("a[href]"),
                      node if node.tag == "a" else node.css_first("a[href]")]
    for candidate in candidates:
        if candidate is not None and candidate.attributes.get("href"):
            return (candidate.attributes.get("href") or "").strip()
    return ""


def _absolute(base: str, link: str | None) -> str:
    """`link` resolved against the page; most feed links are already absolute, which needs no parsing."""
    if not link:
        return ""
    if link.startswith(("https://", "http://")):
        return link
    return urljoin(base, link)
