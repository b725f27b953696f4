"""A real SMTP server inside this process that files every message into a Maildir.

`digestbot demo` delivers to it (no network, no mail account needed) and the tests send to it, so both exercise
the same SMTP code path a production relay would see. It runs on the caller's event loop (no thread), listens on
127.0.0.1 only, and port 0 picks a free port (`sink.port` has the real one after `start()`).
"""

from __future__ import annotations

import asyncio
import email.policy
import logging
import mailbox
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path
from types import TracebackType
from typing import Any

from aiosmtpd.smtp import SMTP as SMTPServerProtocol

log = logging.getLogger(__name__)


class MaildirSink:
    """SMTP in, Maildir out. Use as `async with MaildirSink(dir) as sink:` or call start()/stop()."""

    protocol_class: Any = SMTPServerProtocol

    def __init__(self, directory: str | Path, *, host: str = "127.0.0.1", port: int = 0,
                 hostname: str = "digestbot-sink.localhost") -> None:
        self.directory = Path(directory)
        self.host = host
        self.port = port
        self.hostname = hostname
        self.connections = 0  # accepted so far; tests use it to prove connection reuse
        self._server: asyncio.Server | None = None
        self._protocols: list[Any] = []
        self._maildir: mailbox.Maildir | None = None
        self.protocol_options: dict[str, Any] = {}

    def __repr__(self) -> str:
        return f"MaildirSink({str(self.directory)!r}, {self.host}:{self.port})"

    @property
    def maildir(self) -> mailbox.Maildir:
        if self._maildir is None:
            self._maildir = mailbox.Maildir(self.directory, create=True)
        return self._maildir

    def messages(self) -> list[EmailMessage]:
        """Every delivered message, parsed, oldest first."""
        parser = BytesParser(policy=email.policy.default)
        found = []
        for key in sorted(self.maildir.keys(), key=lambda k: (self.maildir.get_message(k).get_date(), k)):
            parsed = parser.parsebytes(self.maildir.get_bytes(key))
            if isinstance(parsed, EmailMessage):
                found.append(parsed)
        return found

    def paths(self) -> list[Path]:
        """Files in the Maildir (new/ and cur/), for "the digest is at ..." messages."""
        return sorted(p for sub in ("new", "cur") for p in (self.directory / sub).glob("*") if p.is_file())

    async def start(self) -> MaildirSink:
        _ = self.maildir  # create new/ cur/ tmp/ before the first message arrives
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(self._make_protocol, host=self.host, port=self.port)
        self.port = self._server.sockets[0].getsockname()[1]
        log.info("mail sink listening on %s:%d, writing to %s", self.host, self.port, self.directory)
        return self

    async def stop(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        server.close()
        for protocol in self._protocols:
            transport = getattr(protocol, "transport", None)
            if transport is not None:
                transport.close()
        self._protocols.clear()
        await server.wait_closed()
        await asyncio.sleep(0)  # let connection_lost callbacks run before the loop may close

    async def __aenter__(self) -> MaildirSink:
        return await self.start()

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.stop()

    def make_protocol(self) -> Any:
        """One aiosmtpd protocol per connection; tests swap `protocol_class` / `protocol_options` for faults."""
        return self.protocol_class(SinkHandler(self), hostname=self.hostname, ident="digestbot mail sink",
                                   loop=asyncio.get_running_loop(), **self.protocol_options)

    def _make_protocol(self) -> Any:
        self.connections += 1
        protocol = self.make_protocol()
        self._protocols = [p for p in self._protocols if getattr(p, "transport", None) is not None]
        self._protocols.append(protocol)
        return protocol

    async def on_data(self, server: Any, envelope: Any) -> str:
        """Called after the final "."; the reply is what the client sees. Tests override it for 4xx/5xx."""
        self.deliver(envelope.mail_from, list(envelope.rcpt_tos), envelope.original_content or b"")
        return "250 2.0.0 Message accepted for delivery"

    def deliver(self, mail_from: str, rcpt_tos: list[str], content: bytes) -> str:
        """File one message the way an MDA would (Return-Path and Delivered-To first); returns its key."""
        trace = f"Return-Path: <{mail_from}>\r\nDelivered-To: {', '.join(rcpt_tos)}\r\n".encode("ascii", "replace")
        key = self.maildir.add(trace + content)
        log.debug("mail sink stored %s for %s", key, rcpt_tos)
        return key


class SinkHandler:
    """aiosmtpd calls the `handle_*` methods found on this object; keep it to exactly the hooks we mean."""

    def __init__(self, sink: MaildirSink) -> None:
        self.sink = sink

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        return await self.sink.on_data(server, envelope)
