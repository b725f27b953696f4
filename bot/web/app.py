"""The small HTTP endpoint `digestbot run` serves: one-click unsubscribe (RFC 8058), 👍 / 👎 on papers, digests as
pages and a health check.

    GET  /unsubscribe/{token}   a confirmation page with a button; changes nothing (`bot.web.unsubscribe`)
    POST /unsubscribe/{token}   unsubscribes: the RFC 8058 body `List-Unsubscribe=One-Click` or the page's button
    GET  /rate/{token}/{up|down}, POST /rate/{token}, POST /slack/actions   ratings (`bot.web.rating`)
    GET  /digest/{token}        a digest with every paper that matched
    GET  /healthz               200 {"ok": true, ...health()}; 503 if health() raises or reports ok false

Tokens are the only authority (see bot/tokens.py), so there are no cookies, sessions or redirects. A refusal is
a short page, never a traceback. Store calls run in a thread so the event loop (the scheduler and the sends)
never waits on the database. Paths hold tokens, so the access log is off.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from types import TracebackType
from typing import Any

from aiohttp import web

from bot.errors import ConfigError
from bot.store import AsyncStore, Store
from bot.tokens import DIGEST_PAGE_MAX_AGE, TOKEN_MAX_AGE, InvalidToken, read_token
from bot.web import rating, unsubscribe
from bot.web.pages import DB, SETTINGS, Settings, html_page, problem_page, utcnow

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 16 * 1024  # a one-click body is 26 bytes; a Slack interaction a few KB
SHUTDOWN_SECONDS = 5.0


async def digest_view(request: web.Request) -> web.Response:
    """A digest with every paper that matched, as the mail looks: the link is its own proof (signed for that
    digest, expiring after DIGEST_PAGE_MAX_AGE), so it reads without a login and opens nothing else."""
    settings = request.app[SETTINGS]
    try:
        key = read_token(request.match_info["token"], settings.secret, now=settings.clock(),
                         max_age=DIGEST_PAGE_MAX_AGE, purpose="digest")
    except InvalidToken as exc:
        log.info("digest page refused: %s", exc.reason)
        if exc.reason == "expired":
            return problem_page(410, "This digest has expired", "Digests can be read here for "
                                 f"{DIGEST_PAGE_MAX_AGE.days} days; a more recent email has a fresh link.")
        return problem_page(400, "This link is not valid", "The link is incomplete or was changed. Copy the "
                             "whole link from the email.")
    render = settings.digest_page
    if render is None:
        return problem_page(404, "Not here", "This digestbot does not serve digests as pages.")
    try:
        page = await asyncio.to_thread(render, key, settings.secret)
    except Exception:  # the database is down, or a bug: the details go to the log
        log.exception("could not build a digest page")
        return problem_page(503, "Please try again", "We could not show this digest just now. Try again in "
                            "a few minutes.", retry_after=300)
    if page is None:
        return problem_page(404, "This digest is no longer kept", "It was removed from digestbot's records.")
    return html_page(page)


async def healthz(request: web.Request) -> web.Response:
    health = request.app[SETTINGS].health
    try:
        report = {"ok": True, **(await asyncio.to_thread(health) if health else {})}
    except Exception as exc:  # the details go to the log: this endpoint may be public
        log.exception("health check failed")
        report = {"ok": False, "error": type(exc).__name__}
    status = 200 if report.get("ok") is True else 503
    return web.json_response(report, status=status, dumps=lambda data: json.dumps(data, default=str),
                             headers={"Cache-Control": "no-store"})


def make_app(store: Store, secret: bytes, *, clock: Callable[[], datetime] = utcnow,
             health: Callable[[], dict[str, Any]] | None = None,
             max_age: timedelta = TOKEN_MAX_AGE,
             metrics: Callable[[], bytes] | None = None,
             digest_page: Callable[[str, bytes], str | None] | None = None,
             slack_signing_secret: bytes | None = None) -> web.Application:
    """The aiohttp application; `clock`, `health`, `metrics` and `digest_page` ((outbox key, secret) → the page's
    HTML, or None) are injected so the daemon (and tests) decide. With `slack_signing_secret`, Slack's 👍 / 👎 buttons
    post to /slack/actions."""
    if not secret:
        raise ValueError("an empty secret would accept forged tokens")
    app = web.Application(client_max_size=MAX_BODY_BYTES)
    app[DB] = AsyncStore(store)
    app[SETTINGS] = Settings(secret, clock, health, max_age, digest_page, slack_signing_secret)
    unsubscribe.add_routes(app)
    rating.add_routes(app)
    app.router.add_get("/digest/{token}", digest_view)
    app.router.add_get("/healthz", healthz)
    if metrics is not None:
        render = metrics

        async def metrics_page(_request: web.Request) -> web.Response:
            body = await asyncio.to_thread(render)
            return web.Response(body=body, headers={"Content-Type": "text/plain; version=0.0.4; charset=utf-8"})

        app.router.add_get("/metrics", metrics_page)
    return app


class WebServer:
    """Serves an app on host:port inside the caller's event loop; `port` is the real one once started.

    No signal handlers (the daemon owns SIGTERM) and no access log (paths carry tokens).
    """

    def __init__(self, app: web.Application, host: str = "127.0.0.1", port: int = 8080) -> None:
        self.app = app
        self.host = host
        self.port = port
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    async def start(self) -> None:
        if self._runner is not None:
            return
        runner = web.AppRunner(self.app, handle_signals=False, access_log=None, shutdown_timeout=SHUTDOWN_SECONDS)
        await runner.setup()
        try:
            await web.TCPSite(runner, self.host, self.port).start()
        except OSError as exc:
            await runner.cleanup()
            raise ConfigError(f"cannot listen on {self.host}:{self.port}: {exc.strerror or exc}",
                              hint="Choose another bot.http_port, or stop the program using that port.") from exc
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        address = runner.addresses[0]
        self.port = int(address[1])
        log.info("HTTP endpoint listening on %s", self.url)

    async def stop(self) -> None:
        """Stops accepting, lets requests in flight finish (a few seconds at most), closes."""
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    async def __aenter__(self) -> WebServer:
        await self.start()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.stop()
