"""A MaildirSink that fails on cue, for the SMTP fault tests (and the end-to-end test).

Faults are consumed one per message, in order: "ok", "drop-mid-data" (hang up after reading part of the body,
before the final "."), "drop-after-dot" (store the message, then hang up without replying), "hang-auth" (never
answer AUTH), or any SMTP reply such as "421 4.3.0 try later" / "550 5.7.1 rejected" given after the final ".".
"""

from __future__ import annotations

import asyncio
from collections import deque
from pathlib import Path
from typing import Any

from aiosmtpd.smtp import SMTP

from bot.notify.maildir import MaildirSink


class _FaultySMTP(SMTP):
    async def smtp_AUTH(self, arg: str) -> None:
        sink = self.event_handler.sink
        if sink.faults and sink.faults[0] == "hang-auth":  # a server that never answers the login
            sink.faults.popleft()
            await asyncio.sleep(3600)
            return
        await super().smtp_AUTH(arg)

    async def smtp_DATA(self, arg: str) -> None:
        sink = self.event_handler.sink
        if self.envelope.rcpt_tos and sink.faults and sink.faults[0] == "drop-mid-data":
            sink.faults.popleft()
            await self.push("354 End data with <CR><LF>.<CR><LF>")
            await self._reader.readline()  # the first header line, then hang up
            self.transport.close()
            return
        await super().smtp_DATA(arg)


class FaultySink(MaildirSink):
    protocol_class = _FaultySMTP

    def __init__(self, directory: str | Path, *faults: str, **options: Any) -> None:
        super().__init__(directory)
        self.faults: deque[str] = deque(faults)
        self.protocol_options.update(options)

    async def on_data(self, server: Any, envelope: Any) -> str:
        fault = self.faults.popleft() if self.faults else "ok"
        if fault == "ok":
            return await super().on_data(server, envelope)
        if fault == "drop-after-dot":
            await super().on_data(server, envelope)
            server.transport.close()
            await asyncio.Event().wait()  # cancelled by connection_lost: no reply ever goes out
        return fault

    def hang_up_all(self) -> None:
        """What an idle-timeout on a real server does to a kept-open client connection."""
        for protocol in self._protocols:
            if protocol.transport is not None:
                protocol.transport.close()
