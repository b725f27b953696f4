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
from bot.errors import BotError, ConfigError, StoreUnreachable
from bot.lead import AlwaysLeader, Leadership
from bot.metrics import Metrics
from bot.models import Notice
from bot.outbox.keys import new_message_id
from bot.outbox.model import State
from bot.outbox.notices import admin_destinations, notice_rows
from bot.web import WebServer, make_app

log = logging.getLogger(__name__)
START_RETRY_FIRST, START_RETRY_MAX = 1.0, 30.0  # seconds between tries to reach the database at start-up

DRAIN_SECONDS = 60.0


class ConfigWatcher:
    """Polls the config file (mtime and size); hands back a new Config only when an edit is valid."""

    def __init__(self, path: Path, config: Config) -> None:
        self.path = path
        self.config = config
        self._seen = self._fingerprint()
        self.rejected: tuple[str, list[str]] | None = None  # (edit id, problems) of the last rejected edit

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
            self.rejected = (f"{seen[0]}", exc.problems)
            return None
        self.config = config
        log.info("config reloaded from %s", self.path)
        return config


class Daemon:
    """One cycle at a time: a tick that finds the previous cycle still running is skipped, not queued."""

    def __init__(self, app: App, watcher: ConfigWatcher, *, tick_seconds: float = 60.0,
                 leadership: Leadership | None = None) -> None:
        self.app = app
        self.leadership = leadership or AlwaysLeader()
        self.watcher = watcher
        self.tick_seconds = tick_seconds
        self.busy = asyncio.Lock()
        self.stopping = asyncio.Event()
        self.started_at: datetime | None = None
        self.last_cycle_at: datetime | None = None
        self.metrics = Metrics()
        self.cycles = self.failed_cycles = self.sent = 0

    def _tell_admin_config_rejected(self, edit: str, problems: list[str]) -> None:
        """Once per rejected edit (keyed by the file's mtime), through the outbox like any notice."""
        config, now = self.app.config, utcnow()
        notice = Notice(kind="config-rejected", title=f"Config edit rejected: {self.watcher.path.name}",
                        lines=(f"The edit to {self.watcher.path} was not applied; the last good config stays in force.",
                               *problems), generated_at=now)
        rows = notice_rows(admin_destinations(config), notice, f"config-rejected:{edit}", now=now,
                           new_message_id=lambda: new_message_id(config))
        if rows:
            self.app.store.plan(rows, now=now)

    def health(self) -> dict[str, Any]:
        """For /healthz: not ok when this process has finished no cycle for several ticks (stuck or failing).

        Judged from this process's own last cycle, not the database's: with several processes on one database,
        another one's progress must not make a stuck one look healthy.
        """
        limit = 5 * self.tick_seconds + 60
        now = utcnow()
        since = self.last_cycle_at or self.started_at
        stuck = since is not None and (now - since).total_seconds() > limit
        report: dict[str, Any] = {"ok": not stuck,
                                  "last_cycle": self.last_cycle_at.isoformat() if self.last_cycle_at else None,
                                  "leading": self.leadership.leading, "stopping": self.stopping.is_set()}
        try:  # deliveries nobody can vouch for (a Slack post in doubt): for monitoring; liveness does not hang on it
            report["unknown_deliveries"] = self.app.store.delivery_counts().get(State.UNKNOWN, 0)
        except BotError as exc:
            log.warning("health: cannot count unknown deliveries (%s)", exc.message)
        return report

    async def tick(self) -> None:
        if self.stopping.is_set():
            return
        if self.busy.locked():
            log.info("previous cycle still running; skipping this tick")
            return
        async with self.busy:
            if self.stopping.is_set():  # SIGTERM arrived while this tick waited for its turn
                return
            new = self.watcher.poll()
            if new is not None:
                self.app.reload(new)
            if self.watcher.rejected is not None:
                edit, problems = self.watcher.rejected
                self.watcher.rejected = None
                await asyncio.to_thread(self._tell_admin_config_rejected, edit, problems)
            started = time.monotonic()
            try:
                lead = await asyncio.to_thread(self.leadership.try_lead)
                report = await self.app.cycle(now=utcnow(), schedule=lead, stop=self.stopping)
            except BotError as exc:  # e.g. the database is unreachable: report, try again next tick
                log.error("cycle failed: %s (%s)", exc.message, exc.hint)
                self.failed_cycles += 1
                return
            self.metrics.observe(report, time.monotonic() - started)
            self.last_cycle_at = utcnow()
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
        log.info("digestbot running; tick every %gs; config %s", self.tick_seconds, self.watcher.path)
        try:
            await self.stopping.wait()
        finally:
            # Pause, drain, then shut down: APScheduler's shutdown cancels a job still running, which would cut
            # the current cycle off mid-send.
            self.stopping.set()
            scheduler.pause()
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
            scheduler.shutdown(wait=False)
            self.leadership.release()
        log.info("digestbot stopped after %d cycle(s) (%d failed), %d message(s) sent", self.cycles,
                 self.failed_cycles, self.sent)


async def run_daemon(config_path: Path, *, tick_seconds: float = 60.0) -> None:
    """The daemon, with the HTTP endpoint (unsubscribe, health) when `bot.http_port` is set.

    The endpoint starts before the first tick and stops after the last cycle has drained, so unsubscribes are
    taken the whole time the bot could send.
    """
    config = load_config(config_path)
    delay = START_RETRY_FIRST
    while True:
        try:
            with Leadership.for_url(config.bot.database, purpose="run") as leadership:  # SQLite: one per file
                await _serve(config_path, config, leadership, tick_seconds)
            return
        except StoreUnreachable as exc:  # e.g. started while PostgreSQL restarts: wait for it, as cycles do
            log.error("%s; digestbot starts once it answers (trying again in %.0fs)", exc.message, delay)
            if await _stop_requested_within(delay):
                log.info("stopped before the database answered")
                return
            delay = min(delay * 2, START_RETRY_MAX)
            config = _reread(config_path, config)


def _reread(config_path: Path, config: Config) -> Config:
    """The config file again (the admin may be fixing `bot.database`), or the last good one."""
    try:
        return load_config(config_path)
    except ConfigError as exc:
        log.error("config edit rejected, keeping the last good config: %s", "; ".join(exc.problems))
        return config


async def _stop_requested_within(seconds: float) -> bool:
    """Wait, and say whether SIGTERM or SIGINT came meanwhile."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        async with asyncio.timeout(seconds):
            await stop.wait()
    except TimeoutError:
        pass
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
    return stop.is_set()


async def _serve(config_path: Path, config: Config, leadership: Leadership, tick_seconds: float) -> None:
    async with App(config) as app, AsyncExitStack() as stack:
        daemon = Daemon(app, ConfigWatcher(config_path, config), tick_seconds=tick_seconds, leadership=leadership)
        if config.bot.http_port is not None:
            web_app = make_app(app.store, await app.secret(), health=daemon.health, metrics=daemon.metrics.render,
                               digest_page=app.digest_page,
                               slack_signing_secret=config.slack.signing_secret() if config.slack else None)
            server = await stack.enter_async_context(WebServer(web_app, host=config.bot.http_host,
                                                               port=config.bot.http_port))
            log.info("HTTP endpoint on %s (unsubscribe, ratings, /healthz)", server.url)
        await daemon.run()
