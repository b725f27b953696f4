"""One-click unsubscribe (RFC 8058): GET asks, POST unsubscribes, and the page's button undoes it.

Mail scanners and link previews follow GET links, so a GET never changes anything. The token is the only
authority (`bot.tokens`): a token that is malformed, forged or issued in the future gets 400, an expired one 410.
"""

from __future__ import annotations

import logging

from aiohttp import web

from bot.store import Store
from bot.tokens import InvalidToken, read_token
from bot.web.pages import DB, SETTINGS, problem_page, render

log = logging.getLogger(__name__)


def _address_from(request: web.Request) -> str | web.Response:
    """The token's address, or the refusal page to send instead."""
    settings = request.app[SETTINGS]
    try:
        return read_token(request.match_info["token"], settings.secret, now=settings.clock(),
                          max_age=settings.max_age)
    except InvalidToken as exc:
        log.info("unsubscribe %s refused: %s", request.method, exc.reason)
        if exc.reason == "expired":
            return problem_page(410, "This link has expired",
                                "Use the unsubscribe link in a more recent email, or reply to one with the word "
                                "unsubscribe.")
        return problem_page(400, "This link is not valid",
                            "The unsubscribe link is incomplete or was changed. Copy the whole link from the "
                            "email, or reply to it with the word unsubscribe.")


async def confirm_page(request: web.Request) -> web.Response:
    address = _address_from(request)
    if isinstance(address, web.Response):
        return address
    return render(request, "unsubscribe_confirm.html.j2", address=address)


async def unsubscribe(request: web.Request) -> web.Response:
    address = _address_from(request)
    if isinstance(address, web.Response):
        return address
    db, at = request.app[DB], request.app[SETTINGS].clock()
    try:
        await db.run(Store.unsubscribe, address, at=at)
    except Exception:  # the database is down: say so, and let a one-click sender retry
        log.exception("could not record an unsubscribe")
        return problem_page(503, "Please try again",
                            "We could not record this just now. Try the link again in a few minutes.",
                            retry_after=300)
    log.info("unsubscribed an address by link")  # not the address itself: logs get shared
    return render(request, "unsubscribe_done.html.j2", address=address, token=request.match_info["token"])


async def resubscribe(request: web.Request) -> web.Response:
    """The reader changed their mind (the button on the unsubscribed page): the same signed token undoes it."""
    address = _address_from(request)
    if isinstance(address, web.Response):
        return address
    db = request.app[DB]
    try:
        await db.run(Store.resubscribe, address)
    except Exception:  # the database is down
        log.exception("could not record a resubscribe")
        return problem_page(503, "Please try again", "We could not record this just now. Try again in a few "
                            "minutes.")
    log.info("subscribed an address again by link")
    return render(request, "resubscribe_done.html.j2", address=address)


def add_routes(app: web.Application) -> None:
    app.router.add_get("/unsubscribe/{token}", confirm_page)
    app.router.add_post("/unsubscribe/{token}", unsubscribe)
    app.router.add_post("/resubscribe/{token}", resubscribe)
