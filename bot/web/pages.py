"""What every handler of the endpoint shares: its settings, the store, and the one way to answer with a page.

Pages are short HTML with inline styles and a strict Content-Security-Policy; a refusal is fixed text only, never
anything from the request and never a traceback.
"""

from __future__ import annotations

import html
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import jinja2
from aiohttp import web

from bot.render import default_templates_dir
from bot.store import AsyncStore

HTML_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; "
                               "frame-ancestors 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


def utcnow() -> datetime:
    return datetime.now(UTC)


class Settings:
    """What the handlers need besides the store; one object under one AppKey."""

    def __init__(self, secret: bytes, clock: Callable[[], datetime], health: Callable[[], dict[str, Any]] | None,
                 max_age: timedelta, digest_page: Callable[[str, bytes], str | None] | None = None,
                 slack_signing_secret: bytes | None = None) -> None:
        self.secret = secret
        self.digest_page = digest_page
        self.clock = clock
        self.health = health
        self.max_age = max_age
        self.slack_signing_secret = slack_signing_secret
        self.templates = jinja2.Environment(
            loader=jinja2.FileSystemLoader(str(default_templates_dir())),
            autoescape=True,
            undefined=jinja2.StrictUndefined,
        )


DB = web.AppKey("db", AsyncStore)
SETTINGS = web.AppKey("settings", Settings)


def html_page(body: str, status: int = 200) -> web.Response:
    return web.Response(text=body, status=status, content_type="text/html", charset="utf-8", headers=HTML_HEADERS)


def problem_page(status: int, title: str, detail: str, *, retry_after: int | None = None) -> web.Response:
    """The short page for every refusal: fixed text only, nothing from the request."""
    body = (f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            f"<title>{html.escape(title)}</title>"
            "</head><body style=\"font-family:sans-serif;max-width:480px;margin:32px auto;padding:0 16px;"
            f"color:#1f2328;\"><h1 style=\"font-size:20px;\">{html.escape(title)}</h1>"
            f"<p style=\"line-height:1.5;\">{html.escape(detail)}</p></body></html>\n")
    response = html_page(body, status)
    if retry_after is not None:
        response.headers["Retry-After"] = str(retry_after)
    return response


def render(request: web.Request, template: str, **context: Any) -> web.Response:
    return html_page(request.app[SETTINGS].templates.get_template(template).render(**context))
