"""One page to items, by the parser its source's kind names (`bot.sources.kinds`)."""

from __future__ import annotations

from bot.errors import ParseError
from bot.models import Item, Page, Source, SourceOptions
from bot.sources.ids import dedupe
from bot.sources.kinds import source_kind


def parse_page(kind: str, page: Page, source: Source | None = None) -> list[Item]:
    """Items on `page` as the parser for `kind` reads them, deduplicated by canonical id (first kept)."""
    parser = source_kind(kind)
    if not page.body or page.body.isspace():
        raise ParseError(f"{page.url}: empty body where a {kind} page was expected; layout changed?")
    options = source.options if source is not None else SourceOptions()
    try:
        items = parser.parse(page, options)
    except ParseError:
        raise
    except (ValueError, KeyError, TypeError, AttributeError, IndexError) as exc:
        # A page shaped unlike anything the parser knows must mark the source failing, not crash the run.
        raise ParseError(f"{page.url}: cannot read this {kind} page ({exc!r}); layout changed?") from exc
    return dedupe(items)
