"""The small HTTP endpoint `digestbot run` serves: one-click unsubscribe (RFC 8058) and a health check.

    GET  /unsubscribe/{token}   a confirmation page with a button; changes nothing (mail scanners and link
                                previews follow GET links, and must not unsubscribe anyone)
    POST /unsubscribe/{token}   unsubscribes: the RFC 8058 body `List-Unsubscribe=One-Click` or the page's
                                button; any POST with a genuine token counts, again and again (200 each time)
    GET  /healthz               200 {"ok": true, ...health()}; 503 if health() raises or reports ok false

The token is the only authority (see bot/tokens.py), so there are no cookies, sessions or redirects. A token
that is malformed, forged or issued in the future gets 400; an expired one 410 (the page says to use a newer
email). Both are a short page, never a traceback. Store calls are short and synchronous; they run in a thread
so the event loop (the scheduler and the sends) never waits on the database. Paths hold tokens, so the access
log is off.
"""

from __future__ import annotations

import asyncio
import html
import json
import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import Any

import jinja2
from aiohttp import web

from bot.errors import ConfigError
from bot.render import default_templates_dir
from bot.store import AsyncStore, Store
from bot.tokens import DIGEST_PAGE_MAX_AGE, TOKEN_MAX_AGE, InvalidToken, read_token

log = logging.getLogger(__name__)

HTML_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; "
                               "frame-ancestors 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}
MAX_BODY_BYTES = 16 * 1024  # a one-click body is 26 bytes
SHUTDOWN_SECONDS = 5.0

def utcnow() -> datetime:
    return datetime.now(UTC)


class _Settings:
    """What the handlers need besides the store; one object under one AppKey."""

    def __init__(self, secret: bytes, clock: Callable[[], datetime], health: Callable[[], dict[str, Any]] | None,
                 max_age: timedelta, digest_page: Callable[[str], str | None] | None = None) -> None:
        self.secret = secret
        self.digest_page = digest_page
        self.clock = clock
        self.health = health
        self.max_age = max_age
        self.templates = jinja2.Environment(
            loader=jinja2.FileSystemLoader(str(default_templates_dir())),
            autoescape=True,
            undefined=jinja2.StrictUndefined,
        )


_DB = web.AppKey("db", AsyncStore)
_SETTINGS = web.AppKey("settings", _Settings)


def _html(body: str, status: int = 200) -> web.Response:
    return web.Response(text=body, status=status, content_type="text/html", charset="utf-8", headers=HTML_HEADERS)


def _problem_page(status: int, title: str, detail: str) -> web.Response:
    """The short page for every refusal: fixed text only, nothing from the request."""
    body = (f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{html.escape(title)}</title>"
            "</head><body style=\"font-family:sans-serif;max-width:480px;margin:32px auto;padding:0 16px;"
            f"color:#1f2328;\"><h1 style=\"font-size:20px;\">{html.escape(title)}</h1>"
            f"<p style=\"line-height:1.5;\">{html.escape(detail)}</p></body></html>\n")
    return _html(body, status)


def _address_from(request: web.Request) -> str | web.Response:
    """The token's address, or the refusal page to send instead."""
    settings = request.app[_SETTINGS]
    try:
        return read_token(request.match_info["token"], settings.secret, now=settings.clock(),
                          max_age=settings.max_age)
    except InvalidToken as exc:
        log.info("unsubscribe %s refused: %s", request.method, exc.reason)
        if exc.reason == "expired":
            return _problem_page(410, "This link has expired",
                                 "Use the unsubscribe link in a more recent email, or reply to one with the word "
                                 "unsubscribe.")
        return _problem_page(400, "This link is not valid",
                             "The unsubscribe link is incomplete or was changed. Copy the whole link from the "
                             "email, or reply to it with the word unsubscribe.")


def _render(request: web.Request, template: str, **context: Any) -> web.Response:
    return _html(request.app[_SETTINGS].templates.get_template(template).render(**context))


async def confirm_page(request: web.Request) -> web.Response:
    address = _address_from(request)
    if isinstance(address, web.Response):
        return address
    return _render(request, "unsubscribe_confirm.html.j2", address=address)


async def unsubscribe(request: web.Request) -> web.Response:
    address = _address_from(request)
    if isinstance(address, web.Response):
        return address
    db, at = request.app[_DB], request.app[_SETTINGS].clock()
    try:
        await db.run(Store.unsubscribe, address, at=at)
    except Exception:  # the database is down: say so, and let a one-click sender retry
        log.exception("could not record an unsubscribe")
        response = _problem_page(503, "Please try again",
                                 "We could not record this just now. Try the link again in a few minutes.")
        response.headers["Retry-After"] = "300"
        return response
    log.info("unsubscribed an address by link")  # not the address itself: logs get shared
    return _render(request, "unsubscribe_done.html.j2", address=address, token=request.match_info["token"])


async def resubscribe(request: web.Request) -> web.Response:
    """The reader changed their mind (the button on the unsubscribed page): the same signed token undoes it."""
    address = _address_from(request)
    if isinstance(address, web.Response):
        return address
    db = request.app[_DB]
    try:
        await db.run(Store.resubscribe, address)
    except Exception:  # the database is down
        log.exception("could not record a resubscribe")
        return _problem_page(503, "Please try again", "We could not record this just now. Try again in a few "
                             "minutes.")
    log.info("subscribed an address again by link")
    return _render(request, "resubscribe_done.html.j2", address=address)


async def digest_view(request: web.Request) -> web.Response:
    """A digest with every paper that matched, as the mail looks: the link is its own proof (signed for that
    digest, expiring after DIGEST_PAGE_MAX_AGE), so it reads without a login and opens nothing else."""
    settings = request.app[_SETTINGS]
    try:
        key = read_token(request.match_info["token"], settings.secret, now=settings.clock(),
                         max_age=DIGEST_PAGE_MAX_AGE, purpose="digest")
    except InvalidToken as exc:
        log.info("digest page refused: %s", exc.reason)
        if exc.reason == "expired":
            return _problem_page(410, "This digest has expired", "Digests can be read here for "
                                 f"{DIGEST_PAGE_MAX_AGE.days} days; a more recent email has a fresh link.")
        return _problem_page(400, "This link is not valid", "The link is incomplete or was changed. Copy the "
                             "whole link from the email.")
    render = settings.digest_page
    if render is None:
        return _problem_page(404, "Not here", "This digestbot does not serve digests as pages.")
    try:
        page = await asyncio.to_thread(render, key)
    except Exception:  # the database is down, or a bug: the details go to the log
        log.exception("could not build a digest page")
        response = _problem_page(503, "Please try again", "We could not show this digest just now. Try again in "
                                 "a few minutes.")
        response.headers["Retry-After"] = "300"
        return response
    if page is None:
        return _problem_page(404, "This digest is no longer kept", "It was removed from digestbot's records.")
    return _html(page)


async def healthz(request: web.Request) -> web.Response:
    health = request.app[_SETTINGS].health
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
             digest_page: Callable[[str], str | None] | None = None) -> web.Application:
    """The aiohttp application; `clock`, `health`, `metrics` and `digest_page` (outbox key → the page's HTML, or
    None) are injected so the daemon (and tests) decide."""
    if not secret:
        raise ValueError("an empty secret would accept forged tokens")
    app = web.Application(client_max_size=MAX_BODY_BYTES)
    app[_DB] = AsyncStore(store)
    app[_SETTINGS] = _Settings(secret, clock, health, max_age, digest_page)
    app.router.add_get("/unsubscribe/{token}", confirm_page)
    app.router.add_post("/unsubscribe/{token}", unsubscribe)
    app.router.add_post("/resubscribe/{token}", resubscribe)
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
