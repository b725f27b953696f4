"""Refreshing sources: fetch every due source, parse it, store what is new, and record how it went.

The first stages of fetch → parse → store (diff) → score → plan (outbox) → render → notify; they meet the others
in `bot.app`. The clock is an argument (`now`), so `digestbot once --now T` and the tests can walk time. A source
that fails is recorded as failing (its error on its row) and the others carry on.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from bot.errors import BotError, FetchError, ParseError, StoreError
from bot.models import Item, Source
from bot.sources.fetch import Fetcher
from bot.sources.kinds import source_kind
from bot.sources.paging import fetch_all_pages
from bot.store import AsyncStore, SourceState, Store

log = logging.getLogger(__name__)

REFRESH_CONCURRENCY = 8
REFRESH_JITTER = 0.1
# A well-formed page with no items is a quiet day only where quiet days exist (arXiv announces nothing on
# weekends); elsewhere, zero items from a source that used to list this many is a broken scraper.
SUSPICIOUS_DROP = 3
_HINT_BUG = ("This is a digestbot bug: please report it with the log's traceback. The other sources are not affected, "
             "and this one is retried on its next refresh.")


@dataclass(frozen=True, slots=True)
class RefreshResult:
    """What one source refresh did, for the cycle summary."""

    source: str
    status: str  # "ok", "not-modified", "failed", "skipped"
    fetched: int = 0
    new: int = 0
    error: str | None = None


def source_is_due(state: SourceState, now: datetime) -> bool:
    """Due when its next refresh time has come and no Retry-After hold is still running."""
    if state.not_before is not None and state.not_before > now:
        return False
    return state.next_due_at is None or state.next_due_at <= now


def refresh_interval(source: Source) -> timedelta:
    """`every`, shortened by up to 10% by a fixed amount per source (jitter), so sources configured alike drift
    apart instead of all hitting their sites on the same tick; fixed per name, so a restart keeps the rhythm."""
    fraction = int(hashlib.sha256(source.name.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
    return source.every * (1 - REFRESH_JITTER * fraction)


async def refresh_source(db: AsyncStore, fetcher: Fetcher, source: Source, *, now: datetime,
                         state: SourceState | None = None, new_items: list[Item] | None = None) -> RefreshResult:
    """Fetch (every page, for sources that page), parse and diff one source; the items that were new are
    appended to `new_items` when it is given (the cycle embeds them in one batch).

    A failure is recorded on the source and never raised; nothing stored is touched by a failed refresh.
    Store calls run in a worker thread, so a busy database never stalls the other fetches in flight.
    """
    if state is None:
        state = await db.run(Store.get_source_state, source.name)
    next_due = now + refresh_interval(source)
    try:
        fetched = await fetch_all_pages(fetcher, source, etag=state.etag, last_modified=state.last_modified)
        if fetched is None:
            await db.run(Store.record_fetch_ok, source.name, at=now, etag=state.etag,
                         last_modified=state.last_modified, item_count=state.last_item_count or 0, not_modified=True,
                         next_due_at=next_due)
            return RefreshResult(source.name, "not-modified")
        page, parsed = fetched
        items = [replace(item, source=source.name) for item in parsed]
        if not items and (state.max_item_count or 0) >= SUSPICIOUS_DROP and not source_kind(source.kind).quiet_days:
            raise ParseError(f"{source.url}: no items, where earlier fetches found up to {state.max_item_count}; "
                             "layout changed?")
    except FetchError as exc:
        if exc.held and exc.retry_at is not None:  # the host asked us to wait: not this source's failure
            await db.run(Store.record_fetch_held, source.name, not_before=exc.retry_at, next_due_at=next_due)
            log.info("source %s waits: %s", source.name, exc.message)
            return RefreshResult(source.name, "skipped")
        return await _failed(db, source, exc, now=now, next_due=next_due)
    except ParseError as exc:
        return await _failed(db, source, exc, now=now, next_due=next_due)
    except Exception as exc:  # a bug of ours, met on a page nobody foresaw, costs this source, not the whole cycle
        return await _failed(db, source, _bug(source, exc, "reading this source"), now=now, next_due=next_due)
    try:
        new = await db.run(Store.save_items, source.name, items, seen_at=now)
    except StoreError as exc:  # these items refused (a database that is down fails recording this too, and stops)
        return await _failed(db, source, exc, now=now, next_due=next_due)
    except Exception as exc:  # text no driver can encode, or another bug of ours: this source only
        error = _bug(source, exc, "saving this source's items")
        return await _failed(db, source, error, now=now, next_due=next_due)
    await db.run(Store.record_fetch_ok, source.name, at=now, etag=page.etag, last_modified=page.last_modified,
                 item_count=len(items), next_due_at=next_due)
    log.info("source %s: %d items, %d new", source.name, len(items), len(new))
    if new_items is not None:
        new_items.extend(new)
    return RefreshResult(source.name, "ok", fetched=len(items), new=len(new))


def _bug(source: Source, exc: Exception, doing: str) -> BotError:
    """An exception nobody foresaw, logged with its traceback and told as a bug to report."""
    log.exception("source %s: unexpected error while %s", source.name, doing)
    return BotError(f"{source.url}: unexpected error while {doing} ({exc!r})", hint=_HINT_BUG)


async def _failed(db: AsyncStore, source: Source, exc: BotError, *, now: datetime,
                  next_due: datetime) -> RefreshResult:
    """Record a failed refresh (with the hold a Retry-After asks for) and say so; nothing stored is touched."""
    not_before = None
    if isinstance(exc, FetchError) and exc.retry_after:
        # an HTTP date is a time; seconds count from the answer, which is this cycle's `now`
        not_before = exc.retry_at or now + timedelta(seconds=exc.retry_after)
    message = f"{exc.message} ({exc.hint})" if exc.hint else exc.message
    await db.run(Store.record_fetch_error, source.name, at=now, error=message, next_due_at=next_due,
                 not_before=not_before)
    log.warning("source %s failed: %s", source.name, exc.message)
    return RefreshResult(source.name, "failed", error=exc.message)


async def refresh_sources(db: AsyncStore, fetcher: Fetcher, sources: Sequence[Source], *, now: datetime,
                          only_due: bool = True, new_items: list[Item] | None = None,
                          on_result: Callable[[RefreshResult], None] | None = None) -> list[RefreshResult]:
    """Refresh every (due) source concurrently; the fetcher itself keeps each host polite. The items new to the
    store are appended to `new_items` when it is given; `on_result` hears of each source as it finishes.

    What the store knows of the sources is read once, in one query, for the due check and the refresh alike.
    """
    semaphore = asyncio.Semaphore(REFRESH_CONCURRENCY)
    known = {state.name: state for state in await db.run(Store.source_states)}

    async def one(source: Source) -> RefreshResult:
        state = known.get(source.name) or SourceState(name=source.name)
        if only_due and not source_is_due(state, now):
            result = RefreshResult(source.name, "skipped")
        else:
            async with semaphore:
                result = await refresh_source(db, fetcher, source, now=now, state=state, new_items=new_items)
        if on_result is not None:
            on_result(result)
        return result

    return list(await asyncio.gather(*(one(s) for s in sources)))
