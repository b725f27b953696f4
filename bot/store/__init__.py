"""The store stage: the item diff, item embeddings, source state, the outbox, meta and unsubscribes, behind one
`Store`.

    store = Store.open("sqlite:///data/digestbot.db")   # or postgresql+psycopg://...; migrates to head
    new = store.save_items("hf-daily", items, seen_at=now)  # only items never seen from any source
"""

from bot.store.aio import AsyncStore
from bot.store.deliveries import HELD_STATES, LEASE_LAPSED
from bot.store.repo import SourceState, Store

__all__ = ["HELD_STATES", "LEASE_LAPSED", "AsyncStore", "SourceState", "Store"]
