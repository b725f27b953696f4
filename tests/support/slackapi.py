"""A SlackSink that answers from a script, for the Slack fault tests (and the end-to-end test).

Script entries are consumed one per request: "ok", "429:<seconds>", "error:<slack error>" (HTTP 200,
ok=false, as Slack does), "http:<status>:<body>", "drop" (read the request, hang up without answering),
"hang" (never answer; released on stop).
"""

from __future__ import annotations

import asyncio
from collections import deque

from aiohttp import web

from bot.notify.slack_sink import SlackRequest, SlackSink


class ScriptedSlack(SlackSink):
    def __init__(self, *script: str) -> None:
        super().__init__()
        self.script: deque[str] = deque(script)
        self._release = asyncio.Event()

    async def respond(self, request: SlackRequest, http: web.Request) -> web.StreamResponse:
        action, _, arg = (self.script.popleft() if self.script else "ok").partition(":")
        webhook = request.kind == "webhook"
        if action == "ok":
            return self.accept(request)
        if action == "429":
            headers = {"Retry-After": arg}
            if webhook:
                return web.Response(status=429, text="rate_limited", headers=headers)
            return web.json_response({"ok": False, "error": "ratelimited"}, status=429, headers=headers)
        if action == "error":
            return web.json_response({"ok": False, "error": arg})
        if action == "http":
            status, _, body = arg.partition(":")
            return web.Response(status=int(status), text=body)
        if action == "drop":
            assert http.transport is not None
            http.transport.close()
            return web.Response(text="never sent")
        if action == "hang":
            await self._release.wait()
            return web.Response(status=503, text="too late")
        raise AssertionError(f"unknown script action {action!r}")

    async def stop(self) -> None:
        self._release.set()
        await super().stop()
