"""Every source kind in one table: its parser, its paging rules, whether quiet days exist, the options it reads.

Adding a kind is one entry here plus its parser. Parsers and paging rules are named "module:function" and
imported when first used, so loading a config (which checks kinds against this table) imports neither httpx nor
selectolax.

    hf_papers   huggingface.co/papers pages (daily, weekly, search) or one paper's page
    hf_api      huggingface.co/api/daily_papers JSON, paged with `p` and `limit`
    arxiv_feed  rss.arxiv.org RSS or Atom: quiet (empty) on days without announcements
    arxiv_api   export.arxiv.org/api/query Atom, paged with `start` and `max_results`
    arxiv_list  arxiv.org/list/<category>/{new,recent,pastweek} HTML, paged with `skip` and `show`
    feed        any RSS or Atom feed
    css         any HTML listing, read with `selectors`
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

from bot.errors import ParseError
from bot.models import Item, Page, Source, SourceOptions

Parser = Callable[[Page, SourceOptions], list[Item]]
NextPage = Callable[[Page, list[Item]], "str | None"]  # the URL after this page, or None when it was the last
FirstPage = Callable[[Source], str]  # the URL page 1 is fetched from


@dataclass(frozen=True, slots=True)
class SourceKind:
    """One kind of source. `options` names the `SourceOptions` fields it reads (the config warns about others)."""

    name: str
    parser: str  # "module:function" (a `Parser`)
    next_page: str | None = None  # "module:function" (a `NextPage`); None: a single page
    first_page: str | None = None  # "module:function" (a `FirstPage`); None: the configured URL
    quiet_days: bool = False  # an empty page is normal on days without announcements, whatever it listed before
    options: frozenset[str] = frozenset()

    @property
    def paged(self) -> bool:
        return self.next_page is not None

    def parse(self, page: Page, options: SourceOptions) -> list[Item]:
        return cast(Parser, _resolve(self.parser))(page, options)

    def page_after(self, page: Page, items: list[Item]) -> str | None:
        return cast(NextPage, _resolve(self.next_page))(page, items) if self.next_page else None

    def first_url(self, source: Source) -> str:
        return cast(FirstPage, _resolve(self.first_page))(source) if self.first_page else source.url


def _resolve(target: str) -> Any:
    """The function named "module:function", looked up on every call (imports are cached; tests may patch it)."""
    module, _, name = target.partition(":")
    return getattr(importlib.import_module(module), name)


_ARXIV = frozenset({"announce_types"})

KINDS: dict[str, SourceKind] = {kind.name: kind for kind in (
    SourceKind("hf_papers", "bot.sources.hf:parse_hf_papers"),
    SourceKind("hf_api", "bot.sources.hf:parse_hf_api", next_page="bot.sources.paging:next_hf_api",
               first_page="bot.sources.paging:first_hf_api", options=frozenset({"max_pages"})),
    SourceKind("arxiv_feed", "bot.sources.arxiv:parse_arxiv_feed", quiet_days=True, options=_ARXIV),
    SourceKind("arxiv_api", "bot.sources.arxiv:parse_arxiv_api", next_page="bot.sources.paging:next_arxiv_api",
               quiet_days=True, options=frozenset({"max_pages"})),
    SourceKind("arxiv_list", "bot.sources.arxiv_list:parse_arxiv_list",
               next_page="bot.sources.paging:next_arxiv_list", quiet_days=True, options=_ARXIV | {"max_pages"}),
    SourceKind("feed", "bot.sources.feeds:parse_feed"),
    SourceKind("css", "bot.sources.feeds:parse_css", options=frozenset({"selectors"})),
)}


def source_kind(name: str) -> SourceKind:
    """The kind called `name`; a clear error for any other name."""
    kind = KINDS.get(name)
    if kind is None:
        raise ParseError(f"unknown source kind {name!r}; expected one of: {', '.join(KINDS)}",
                         hint="Set `kind` in the [[sources]] entry to one of the kinds listed.")
    return kind
