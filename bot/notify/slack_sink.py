"""A local stand-in for Slack: the Web API `chat.postMessage` and `conversations.history` (with message metadata,
as digestbot uses it to find a post after a crash) and incoming-webhook URLs on 127.0.0.1.

`digestbot demo` points `[slack] base_url` (and webhook URLs) here to capture a channel without a workspace; the
tests subclass it (`respond`) to script 429s, API errors, 404s and dropped connections. Every request is
recorded; accepted posts are also appended to `record_to` as JSON lines when given.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import parse_qsl

from aiohttp import web

log = logging.getLogger(__name__)


@dataclass
class SlackRequest:
    """What the sink received: `kind` is "api" (with `method`) or "webhook" (with `hook`)."""

    kind: str
    method: str
    hook: str
    headers: dict[str, str]
    body: dict[str, Any]
    accepted: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


class SlackSink:
    """Accepts every post (`{"ok": true}` / `ok`) unless `respond` is overridden."""

    def __init__(self, *, host: str = "127.0.0.1", port: int = 0, record_to: str | Path | None = None,
                 history_scope: bool = True) -> None:
        self.host = host
        self.port = port
        self.record_to = Path(record_to) if record_to else None
        self.history_scope = history_scope  # False: conversations.history answers missing_scope, as Slack does
        self.requests: list[SlackRequest] = []
        self._runner: web.AppRunner | None = None

    def __repr__(self) -> str:
        return f"SlackSink({self.host}:{self.port})"

    @property
    def base_url(self) -> str:
        """For `[slack] base_url` / `AsyncWebClient(base_url=...)`."""
        return f"http://{self.host}:{self.port}/api/"

    def webhook_url(self, hook: str = "T000/B000/demo") -> str:
        return f"http://{self.host}:{self.port}/services/{hook}"

    @property
    def posts(self) -> list[SlackRequest]:
        """Accepted messages only, in arrival order."""
        return [r for r in self.requests if r.accepted]

    async def start(self) -> SlackSink:
        app = web.Application()
        app.router.add_post("/api/{method}", self._handle_api)
        app.router.add_get("/api/{method}", self._handle_api)
        app.router.add_post("/services/{hook:.+}", self._handle_webhook)
        self._runner = web.AppRunner(app, handle_signals=False, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        self.port = int(self._runner.addresses[0][1])
        log.info("slack sink listening on %s", self.base_url)
        return self

    async def stop(self) -> None:
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    async def __aenter__(self) -> SlackSink:
        return await self.start()

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.stop()

    async def respond(self, request: SlackRequest, http: web.Request) -> web.StreamResponse:
        """The reply to one recorded request. Override to script failures; call accept() for success."""
        return self.accept(request)

    def accept(self, request: SlackRequest) -> web.StreamResponse:
        if request.kind == "api" and request.method == "conversations.history":
            return self._history(request)
        request.accepted = True
        request.extra["ts"] = f"{time.time():.6f}"
        if self.record_to is not None:
            with self.record_to.open("a", encoding="utf-8") as out:
                out.write(json.dumps({"kind": request.kind, "method": request.method, "hook": request.hook,
                                      "body": request.body}, ensure_ascii=False) + "\n")
        if request.kind == "webhook":
            return web.Response(text="ok")
        channel = request.body.get("channel", "C000")
        return web.json_response({"ok": True, "channel": channel, "ts": request.extra["ts"],
                                  "message": {"text": request.body.get("text", "")}})

    def _history(self, request: SlackRequest) -> web.StreamResponse:
        """The channel's accepted posts, newest first, `limit` a page, from `oldest`, paged by a cursor (the offset);
        metadata only with `include_all_metadata`, as Slack does."""
        if not self.history_scope:
            return web.json_response({"ok": False, "error": "missing_scope", "needed": "channels:history"})
        query = request.body
        oldest = float(query.get("oldest") or 0)
        with_metadata = str(query.get("include_all_metadata", "")).lower() in ("1", "true")
        posts = [r for r in reversed(self.posts) if r.kind == "api" and r.body.get("channel") == query.get("channel")
                 and float(r.extra["ts"]) >= oldest]
        start, limit = int(query.get("cursor") or 0), int(query.get("limit") or 100)
        page = posts[start:start + limit]
        messages = [{"type": "message", "ts": r.extra["ts"], "text": r.body.get("text", ""),
                     **({"metadata": r.body["metadata"]} if with_metadata and r.body.get("metadata") else {})}
                    for r in page]
        more = start + limit < len(posts)
        return web.json_response({"ok": True, "messages": messages, "has_more": more,
                                  "response_metadata": {"next_cursor": str(start + limit) if more else ""}})

    async def _handle_api(self, http: web.Request) -> web.StreamResponse:
        body = dict(http.query) if http.method == "GET" else await _body(http)
        request = SlackRequest("api", http.match_info["method"], "", _headers(http), body)
        self.requests.append(request)
        return await self.respond(request, http)

    async def _handle_webhook(self, http: web.Request) -> web.StreamResponse:
        request = SlackRequest("webhook", "", http.match_info["hook"], _headers(http), await _body(http))
        self.requests.append(request)
        return await self.respond(request, http)


def _headers(http: web.Request) -> dict[str, str]:
    """Header names lower-cased; the Authorization value is kept so tests can check it is sent, not logged."""
    return {k.lower(): v for k, v in http.headers.items()}


async def _body(http: web.Request) -> dict[str, Any]:
    raw = await http.read()
    if http.content_type == "application/x-www-form-urlencoded":
        return dict(parse_qsl(raw.decode("utf-8", "replace")))
    try:
        data = json.loads(raw or b"{}")
    except ValueError:
        return {"_raw": raw.decode("utf-8", "replace")}
    return data if isinstance(data, dict) else {"_json": data}
