"""The runtime that `once`, `run` and `demo` share: one store, one HTTP client, one cycle function.

A cycle is: refresh the sources that are due, embed the new papers (with semantic similarity on), compile the
profiles against the stored corpus, plan what is owed (outbox), send what the outbox holds. Each step's failures
stay inside that step (a source, a row), so one broken source or one bad SMTP answer never costs the rest of the
run.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from types import TracebackType

from bot.config import Config, redact_url, semantic_profiles
from bot.models import Item
from bot.outbox.deliver import Deliverer
from bot.outbox.matches import Matches
from bot.outbox.model import DeliveryOutcome, Kind
from bot.outbox.plan import PlanResult, plan_deliveries
from bot.outbox.prepare import digest_for, ratings_of
from bot.outbox.tastes import Tastes, libraries
from bot.render import Renderer
from bot.retention import prune_if_due
from bot.scoring import Matcher, compile_profiles, semantic
from bot.sources.fetch import Fetcher
from bot.sources.refresh import RefreshResult, refresh_sources
from bot.store import AsyncStore, Store
from bot.store.retention import Pruned
from bot.tokens import load_secret

log = logging.getLogger(__name__)

CORPUS_WINDOW = timedelta(days=30)
SEMANTIC_SWITCH: dict[str, bool | None] = {"auto": None, "on": True, "off": False}  # `compile_profiles(semantic=)`


@dataclass(slots=True)
class CycleReport:
    """What one cycle did, for the command's summary table and the logs."""

    now: datetime
    refreshed: list[RefreshResult] = field(default_factory=list)
    planned: PlanResult = field(default_factory=PlanResult)
    delivered: list[DeliveryOutcome] = field(default_factory=list)
    pruned: Pruned | None = None  # the retention pass, when this cycle ran it


Progress = Callable[[str, int, int], None]  # (what is happening, done, total; 0 total: no count)


def utcnow() -> datetime:
    return datetime.now(UTC)


def scoring_corpus(store: Store, now: datetime) -> list[Item]:
    """What scoring measures rarity and the centre of meaning on: the items first seen in the last
    `CORPUS_WINDOW`. Planning and `digestbot preview` both use it, so they give a paper the same score."""
    return store.items_first_seen_between(now - CORPUS_WINDOW, now)


def attached_embedder(config: Config, store: Store) -> tuple[semantic.Embedder | None, str | None]:
    """The shared embedding model, attached to `store` (vectors stored there are reused, new ones kept), when
    scoring with `config` will use it: `bot.semantic` is not "off", a profile has a description, the extra is
    installed and the model loads. Otherwise None, with what went wrong when the config asked for it ("on")."""
    mode = config.bot.semantic
    if mode == "off" or not semantic_profiles(config) or (mode == "auto" and not semantic.available()):
        return None, None
    embedder = semantic.shared_embedder()
    if embedder is None:
        return None, semantic.unavailable_reason() if mode == "on" else None
    embedder.attach(store)
    return embedder, None


class App:
    """Owns the long-lived resources; `async with App(config) as app: await app.cycle(now=...)`."""

    def __init__(self, config: Config, *, store: Store | None = None, fetcher: Fetcher | None = None,
                 renderer: Renderer | None = None) -> None:
        self.config = config
        self._store = store
        self._own_store = store is None
        self._fetcher = fetcher
        self._own_fetcher = fetcher is None
        self.renderer = renderer or Renderer()
        self._secret: bytes | None = None
        self._compiled: tuple[Config, Matcher] | None = None
        self._fresh: list[Item] = []  # items the last refresh found new, for `_embed_new`
        self._embedder: semantic.Embedder | None = None  # the shared model, once attached to this store
        self._semantic_error_logged = False

    @property
    def store(self) -> Store:
        assert self._store is not None, "App used outside `async with`"
        return self._store

    @property
    def db(self) -> AsyncStore:
        """The store for this App's coroutines: calls run in a worker thread (`bot.store.aio`)."""
        return AsyncStore(self.store)

    @property
    def fetcher(self) -> Fetcher:
        assert self._fetcher is not None, "App used outside `async with`"
        return self._fetcher

    async def __aenter__(self) -> App:
        if self._store is None:
            self._store = await asyncio.to_thread(Store.open, self.config.bot.database)
        if self._fetcher is None:
            self._fetcher = Fetcher(self.config.bot.user_agent)
            await self._fetcher.__aenter__()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        if self._embedder is not None and self._store is not None:
            self._embedder.detach(self._store)  # the model outlives this App; its store may not
            self._embedder = None
        if self._own_fetcher and self._fetcher is not None:
            await self._fetcher.__aexit__(exc_type, exc, tb)
            self._fetcher = None
        if self._own_store and self._store is not None:
            await asyncio.to_thread(self._store.close)
            self._store = None

    async def secret(self) -> bytes:
        """The secret links are signed with: from the environment, or generated once and kept in the database."""
        if self._secret is None:
            self._secret = await self.db.run(load_secret, self.config.bot.secret_env)
        return self._secret

    # Settings a running process cannot change: it holds the database and the HTTP endpoint open.
    RESTART_KEYS = ("database", "http_port", "http_host")

    def reload(self, config: Config) -> None:
        """Use a new (already validated) config from the next cycle on. The database and the HTTP endpoint stay
        as they are until a restart, and the log says so rather than ignoring the edit."""
        before = self.config.bot
        kept = {key: getattr(before, key) for key in self.RESTART_KEYS}
        for key, value in kept.items():
            if getattr(config.bot, key) != value:
                shown = value if key != "database" else redact_url(str(value))
                log.warning("bot.%s changed in the config: it takes effect after a restart; until then %s stays "
                            "in use", key, shown)
        self.config = config.model_copy(update={"bot": config.bot.model_copy(update=kept)})

    def digest_page(self, key: str, secret: bytes) -> str | None:
        """The digest with outbox key `key` as a web page, with every paper that matched (the mail shows the best
        `max_items`): its window scored again as planning scored it, so the same papers in the same order, the
        recipient's other matching profiles named, each paper with its 👍 / 👎 links (signed with `secret`, the
        endpoint's). An alert shows what it carried. None if there is no such row.
        """
        row = self.store.delivery_by_key(key)
        if row is None or row.kind == Kind.NOTICE:
            return None
        digest = digest_for(self.store, row, config=self.config, secret=secret)
        digest = replace(digest, page_url=None)  # the page itself: no "view in a browser"
        if row.kind == Kind.DIGEST:
            since = row.payload.since
            until = row.covers_until or row.created_at
            known = [name for name in row.payload.profiles if name in self.config.profiles]
            if known:
                floor = until - self.config.bot.max_age_delta
                window = max(since, floor) if since else floor
                matches = Matches(self.matcher(until), self.store, until)
                tastes = Tastes(matches, self.store, self.store.ratings_for([(row.channel, row.recipient)]),
                                libraries(self.config, self.store))
                if tastes.has(row.channel, row.recipient):  # as the reader's ratings move it now
                    everything, total = tastes.best(row.channel, row.recipient, window, known)
                else:
                    everything, total = matches.best(window, known)
                digest = replace(digest, items=tuple(everything), total_matched=total,
                                 ratings=ratings_of(everything, config=self.config, secret=secret, row=row))
        return self.renderer.render_email(digest).html

    def matcher(self, now: datetime) -> Matcher:
        """The profiles, compiled once per config (a reload recompiles), with the corpus (`scoring_corpus`)
        refreshed every cycle. `bot.semantic` decides on semantic similarity."""
        if self._compiled is None or self._compiled[0] is not self.config:
            self.embedder()  # attach the store first, so vectors embedded while scoring are kept
            matcher = compile_profiles(self.config.profiles, semantic=SEMANTIC_SWITCH[self.config.bot.semantic])
            self._compiled = (self.config, matcher)
        return self._compiled[1].with_corpus(scoring_corpus(self.store, now))

    def embedder(self) -> semantic.Embedder | None:
        """`attached_embedder` for this config and store; with "on" and no model, one error is logged and scoring
        goes on with keywords only. Loads the model: call it off the event loop."""
        embedder, problem = attached_embedder(self.config, self.store)  # every time: another App may have
        if problem is not None and not self._semantic_error_logged:     # attached its own store since
            self._semantic_error_logged = True
            log.error("bot.semantic is \"on\", but %s: scoring with keywords only. Install or repair the extra "
                      "(%s), or set bot.semantic = \"auto\"", problem, semantic.INSTALL)
        self._embedder = embedder or self._embedder
        return embedder

    def _embed_new(self, items: list[Item]) -> None:
        """Embed the cycle's new papers in one batch and store their vectors, so that planning (here or in another
        process) finds them; a failure costs the semantic signal of these papers for now, never the cycle."""
        embedder = self.embedder()
        if embedder is None or not items:
            return
        started, before = time.monotonic(), embedder.embedded
        try:
            embedder.embed_items(items)
        except Exception as exc:  # noqa: BLE001 - planning embeds what is still missing, or scores keywords only
            log.warning("could not embed the %d new items (%s: %s)", len(items), type(exc).__name__, exc)
            return
        log.info("embedded %d new items in %.1f s", embedder.embedded - before, time.monotonic() - started)

    def _plan(self, now: datetime) -> PlanResult:
        """Scoring and planning: CPU and short transactions, run off the event loop by `cycle`."""
        return plan_deliveries(self.config, self.store, self.matcher(now), now=now)

    async def refresh(self, *, now: datetime, only_due: bool = True,
                      on_result: Callable[[RefreshResult], None] | None = None) -> list[RefreshResult]:
        """Fetch the due sources. Retry-After holds per host survive restarts: no request to a host that asked us
        to wait, whichever process it asked."""
        sources = [s.to_source() for s in self.config.sources if s.enabled]
        holds = self.fetcher.host_not_before
        for host, until in (await self.db.run(Store.host_holds)).items():
            if host not in holds or holds[host] < until:
                holds[host] = until
        try:
            return await refresh_sources(self.db, self.fetcher, sources, now=now, only_due=only_due,
                                         new_items=self._fresh, on_result=on_result)
        finally:
            current = utcnow()
            await self.db.run(Store.save_host_holds, {host: until for host, until in holds.items() if until > current})

    async def cycle(self, *, now: datetime | None = None, only_due: bool = True, schedule: bool = True,
                    progress: Progress | None = None, stop: asyncio.Event | None = None) -> CycleReport:
        """One full cycle as if the clock read `now` (default: the real clock).

        `schedule=False` only delivers: with several processes on one database, only the one holding the
        scheduling lead refreshes and plans; every process sends (claims are exclusive). `progress(stage, done,
        total)` hears of each step ("fetching", "planning", "sending"), for a display on a terminal. Everything
        due is delivered, in batches; once `stop` is set (SIGTERM), sends in flight finish and the rest stays
        claimable.
        """
        now = now or utcnow()
        report = CycleReport(now=now)
        tell = progress or (lambda stage, done, total: None)
        if schedule:
            sources = [s for s in self.config.sources if s.enabled]
            fetched = [0]

            def one_fetched(result: RefreshResult) -> None:
                fetched[0] += 1
                tell(f"{'not due' if result.status == 'skipped' else 'fetched'}: {result.source}", fetched[0],
                     len(sources))

            tell("fetching sources", 0, len(sources))
            report.refreshed = await self.refresh(now=now, only_due=only_due, on_result=one_fetched)
            fresh, self._fresh = self._fresh, []
            if fresh:
                tell(f"embedding {len(fresh)} new papers", 0, 0)
                await asyncio.to_thread(self._embed_new, fresh)
            tell("planning digests and alerts", 0, 0)
            report.planned = await asyncio.to_thread(self._plan, now)
        deliverer = Deliverer(self.config, self.store, self.renderer, secret=await self.secret())
        sent = [0]

        def one_sent(outcome: DeliveryOutcome, total: int) -> None:
            sent[0] += 1
            tell(f"{outcome.status}: {outcome.kind} to {outcome.recipient} via {outcome.channel}", sent[0], total)

        report.delivered = await deliverer.deliver_all(now=now, on_outcome=one_sent, stop=stop)
        if schedule and not (stop is not None and stop.is_set()):  # the leader, once a day, after the sends
            report.pruned = await self.db.run(prune_if_due, self.config, now=now)
        await self.db.run(Store.set_last_cycle, now)
        refreshed = sum(r.status != "skipped" for r in report.refreshed)
        busy = refreshed or report.planned.planned or report.delivered
        log.log(logging.INFO if busy else logging.DEBUG,
                "cycle at %s: %d sources refreshed, %d deliveries planned, %d sent", now.isoformat(), refreshed,
                len(report.planned.planned), sum(d.status == "sent" for d in report.delivered))
        return report
