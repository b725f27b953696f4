"""`digestbot run`: an APScheduler tick that runs one cycle at a time, reloads the config, stops cleanly.

APScheduler only ticks; whether anything is due comes from the database (source due times, outbox keys), so
a restart, a slow tick or a second process never causes a second digest. A config edit is picked up on the
next tick if it is valid; an invalid edit is reported once, by key, and the last good config stays in force.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import time
from contextlib import AsyncExitStack
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from bot.app import App, utcnow
from bot.config import Config, load_config
from bot.errors import BotError, ConfigError
from bot.metrics import Metrics
from bot.web import WebServer, make_app

log = logging.getLogger(__name__)

DRAIN_SECONDS = 60.0


class ConfigWatcher:
    """Polls the config file (mtime and size); hands back a new Config only when an edit is valid."""

    def __init__(self, path: Path, config: Config) -> None:
        self.path = path
        self.config = config
        self._seen = self._fingerprint()

    def _fingerprint(self) -> tuple[int, int] | None:
        try:
            stat = self.path.stat()
        except OSError:
            return None
        return stat.st_mtime_ns, stat.st_size

    def poll(self) -> Config | None:
        """A newly valid config, or None (unchanged, or changed but invalid: logged once per edit)."""
        seen = self._fingerprint()
        if seen is None or seen == self._seen:
            return None
        self._seen = seen
        try:
            config = load_config(self.path)
        except ConfigError as exc:
            log.error("config edit rejected, keeping the last good config: %s", "; ".join(exc.problems))
            return None
        self.config = config
        log.info("config reloaded from %s", self.path)
        return config


class Daemon:
    """One cycle at a time: a tick that finds the previous cycle still running is skipped, not queued."""

    def __init__(self, app: App, watcher: ConfigWatcher, *, tick_seconds: float = 60.0) -> None:
        self.app = app
        self.watcher = watcher
        self.tick_seconds = tick_seconds
        self.busy = asyncio.Lock()
        self.stopping = asyncio.Event()
        self.started_at: datetime | None = None
        self.metrics = Metrics()
        self.cycles = self.failed_cycles = self.sent = 0

    def health(self) -> dict[str, Any]:
        """For /healthz: not ok when no cycle has finished for several ticks (a stuck or failing bot)."""
        limit = 5 * self.tick_seconds + 60
        now = utcnow()
        last = self.app.store.get_meta("last_cycle")
        age = (now - datetime.fromisoformat(last)).total_seconds() if last else None
        running = (now - self.started_at).total_seconds() if self.started_at else 0.0
        stuck = running > limit and (age is None or age > limit)
        return {"ok": not stuck, "last_cycle": last, "stopping": self.stopping.is_set()}

    async def tick(self) -> None:
        if self.busy.locked() or self.stopping.is_set():
            log.info("previous cycle still running; skipping this tick")
            return
        async with self.busy:
            new = self.watcher.poll()
            if new is not None:
                self.app.reload(new)
            started = time.monotonic()
            try:
                report = await self.app.cycle(now=utcnow())
            except BotError as exc:  # e.g. the database is unreachable: report, try again next tick
                log.error("cycle failed: %s (%s)", exc.message, exc.hint)
                self.failed_cycles += 1
                return
            self.metrics.observe(report, time.monotonic() - started)
            self.cycles += 1
            self.sent += sum(d.status == "sent" for d in report.delivered)

    async def run(self) -> None:
        scheduler = AsyncIOScheduler(timezone=UTC)
        scheduler.add_job(self.tick, "interval", seconds=self.tick_seconds, coalesce=True, max_instances=1,
                          misfire_grace_time=int(self.tick_seconds * 10), next_run_time=datetime.now(UTC))
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.stopping.set)
        scheduler.start()
        self.started_at = utcnow()
        log.info("digestbot running; tick every %.0fs; config %s", self.tick_seconds, self.watcher.path)
        try:
            await self.stopping.wait()
        finally:
            scheduler.shutdown(wait=False)
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(sig)
            log.info("stopping: letting the current cycle finish (at most %.0fs)", DRAIN_SECONDS)
            try:
                async with asyncio.timeout(DRAIN_SECONDS):
                    async with self.busy:
                        pass
            except TimeoutError:
                log.warning("current cycle did not finish in %.0fs; its claimed deliveries will be retried",
                            DRAIN_SECONDS)
        log.info("digestbot stopped after %d cycle(s) (%d failed), %d message(s) sent", self.cycles,
                 self.failed_cycles, self.sent)


async def run_daemon(config_path: Path, *, tick_seconds: float = 60.0) -> None:
    """The daemon, with the HTTP endpoint (unsubscribe, health) when `bot.http_port` is set.

    The endpoint starts before the first tick and stops after the last cycle has drained, so unsubscribes are
    taken the whole time the bot could send.
    """
    config = load_config(config_path)
    async with App(config) as app, AsyncExitStack() as stack:
        daemon = Daemon(app, ConfigWatcher(config_path, config), tick_seconds=tick_seconds)
        if config.bot.http_port is not None:
            web_app = make_app(app.store, app.secret, health=daemon.health, metrics=daemon.metrics.render)
            server = await stack.enter_async_context(WebServer(web_app, host=config.bot.http_host,
                                                               port=config.bot.http_port))
            log.info("HTTP endpoint on %s (unsubscribe, /healthz)", server.url)
        await daemon.run()
