"""The daily retention pass: what is older than `bot.retention` (default 180 days) goes, in small transactions.

Run by the process that leads scheduling, at most once a day (`bot_state.last_pruned_at`); it runs after the
cycle's deliveries, so it never delays a digest. See `bot.store.retention` for exactly what is kept: everything
the next digest, the once-per-period keys, unsubscribes and readers' ratings need.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from bot.config import Config
from bot.store import Store
from bot.store.retention import Pruned

log = logging.getLogger(__name__)

EVERY = timedelta(days=1)


def library_ids(config: Config) -> set[str]:
    """The arXiv ids readers' libraries name (`library = [...]`): stored papers a library needs are kept."""
    entries = [e for p in config.profiles.values() for e in p.library]
    entries += [e for r in (*config.subscribers, *config.slack_channels) for e in r.library]
    if not entries:
        return set()
    from bot.scoring.library import is_file_entry
    from bot.sources.ids import arxiv_id

    return {f"arxiv:{arxiv_id(e)}" for e in entries if not is_file_entry(e)}


def prune_if_due(store: Store, config: Config, *, now: datetime) -> Pruned | None:
    """The pass, if a day has gone by since the last one (by any process); None when it was not due."""
    last = store.last_pruned()
    if last is not None and now - last < EVERY:
        return None
    return prune(store, config, now=now)


def prune(store: Store, config: Config, *, now: datetime) -> Pruned:
    cutoff = now - config.bot.retention_delta
    deliveries = store.prune_deliveries(cutoff)
    items = store.prune_items(cutoff, keep=library_ids(config))
    store.reclaim()
    store.set_last_pruned(now)
    if items or deliveries:
        log.info("retention: deleted %d papers and %d outbox rows older than %s (bot.retention = %s)", items,
                 deliveries, cutoff.date().isoformat(), config.bot.retention)
    return Pruned(items=items, deliveries=deliveries)
