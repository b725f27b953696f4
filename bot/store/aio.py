"""The one rule for the event loop: a coroutine never calls the store, it awaits `AsyncStore.run`.

The loop that sends mail and Slack posts also serves the web endpoint (unsubscribes, digest pages, /healthz);
a database call made on it stalls all of them for as long as the database takes (a busy SQLite file, a
PostgreSQL failover). So async code holds an `AsyncStore`, whose only door to the database runs a `Store` method,
or any function taking the store first, in a worker thread:

    rows = await db.run(Store.claim, now=now, limit=200, lease=LEASE, owner=owner)
    page = await db.run(render_page, key)  # def render_page(store: Store, key: str) -> str

Sync code (the CLI, planning, rendering) takes a `Store` and calls it directly. `tests/test_structure.py` checks
that no `async def` in `bot/` calls a store method itself.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Concatenate, ParamSpec, TypeVar, cast

from bot.store.repo import Store

P = ParamSpec("P")
T = TypeVar("T")


class AsyncStore:
    """A `Store` for async code: every call goes through `run`, in a worker thread."""

    __slots__ = ("_store",)

    def __init__(self, store: Store) -> None:
        self._store = store

    async def run(self, call: Callable[Concatenate[Store, P], T], /, *args: P.args, **kwargs: P.kwargs) -> T:
        """`call(store, *args, **kwargs)` in a worker thread; the loop goes on meanwhile. A `Store` method is taken
        from the store itself, so what the instance overrides (a benchmark's instrumentation, a test's patch)
        applies as it would to a direct call."""
        name = getattr(call, "__name__", "")
        if getattr(type(self._store), name, None) is call:
            method = cast(Callable[P, T], getattr(self._store, name))
            return await asyncio.to_thread(method, *args, **kwargs)
        return await asyncio.to_thread(call, self._store, *args, **kwargs)
