"""A MaildirSink that speaks TLS (STARTTLS or implicit) and records what reached it, and whether encrypted.

Every chunk the SMTP protocol receives is recorded with a flag saying whether the connection was encrypted
at that moment: bytes recorded with `encrypted=False` are exactly what crossed the wire in plaintext, so a test
can prove that no AUTH or MAIL (and no password) was ever sent in the clear. Each delivered message and each
AUTH attempt also records whether its session was encrypted.
"""

from __future__ import annotations

import asyncio
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiosmtpd.smtp import SMTP, AuthResult, TLSSetupException

from bot.notify.maildir import MaildirSink


@dataclass(frozen=True)
class Chunk:
    encrypted: bool
    data: bytes


@dataclass(frozen=True)
class Delivery:
    mail_from: str
    rcpt_tos: tuple[str, ...]
    encrypted: bool
    tls_version: str | None


@dataclass(frozen=True)
class Login:
    username: bytes
    password: bytes
    encrypted: bool


def _encrypted(transport: asyncio.BaseTransport | None) -> bool:
    return transport is not None and transport.get_extra_info("ssl_object") is not None


class _RecordingSMTP(SMTP):
    """aiosmtpd's server protocol, noting every received chunk with the connection's encryption state."""

    def data_received(self, data: bytes) -> None:
        # Before STARTTLS this is called by the socket transport (the bytes were plaintext on the wire); after
        # it, or on an implicit-TLS listener, by the SSL protocol with decrypted bytes.
        self.event_handler.sink.received.append(Chunk(_encrypted(self.transport), bytes(data)))
        super().data_received(data)

    async def handle_exception(self, error: Exception) -> str:
        # A client that rejects our certificate aborts the handshake: expected in these tests, so note it
        # instead of letting aiosmtpd log an ERROR with a traceback.
        if isinstance(error, TLSSetupException):
            self.event_handler.sink.tls_failures.append(error.__cause__ or error)
            return "454 4.7.0 TLS handshake failed"
        return await super().handle_exception(error)


class _RefusingStartTLS(_RecordingSMTP):
    """Advertises STARTTLS (it has a tls_context) but answers it with 454, as a broken or stripped server does."""

    async def smtp_STARTTLS(self, arg: str) -> None:
        await self.push("454 4.7.0 TLS not available due to temporary reason")


class TLSSink(MaildirSink):
    """`starttls=ctx` offers STARTTLS with that server context; `implicit=ctx` wraps the whole listener in TLS.

    `accept={b"user": b"password"}` turns on AUTH (offered in plaintext only with `auth_require_tls=False`).
    """

    protocol_class = _RecordingSMTP

    def __init__(self, directory: str | Path, *, starttls: ssl.SSLContext | None = None,
                 implicit: ssl.SSLContext | None = None, accept: dict[bytes, bytes] | None = None,
                 refuse_starttls: bool = False, **options: Any) -> None:
        super().__init__(directory)
        self.implicit = implicit
        self.accept = accept
        self.received: list[Chunk] = []
        self.deliveries: list[Delivery] = []
        self.logins: list[Login] = []
        self.tls_failures: list[BaseException] = []  # server-side handshake failures (client refused our cert)
        if refuse_starttls:
            self.protocol_class = _RefusingStartTLS
        if starttls is not None:
            self.protocol_options.update(tls_context=starttls, require_starttls=True)
        if implicit is not None:
            # aiosmtpd only counts STARTTLS as TLS; on an implicit-TLS listener every byte is already encrypted
            # (and Login.encrypted checks it), so let it offer AUTH.
            self.protocol_options["auth_require_tls"] = False
        if accept is not None:
            self.protocol_options["authenticator"] = self._authenticate
        self.protocol_options.update(options)

    async def start(self) -> TLSSink:
        if self.implicit is None:
            await super().start()
            return self
        _ = self.maildir
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(self._make_protocol, host=self.host, port=self.port,
                                                ssl=self.implicit)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aenter__(self) -> TLSSink:
        return await self.start()

    def _authenticate(self, server: SMTP, session: Any, envelope: Any, mechanism: str,
                      auth_data: Any) -> AuthResult:
        username, password = bytes(auth_data.login), bytes(auth_data.password)
        self.logins.append(Login(username, password, _encrypted(server.transport)))
        assert self.accept is not None
        return AuthResult(success=self.accept.get(username) == password, handled=False)

    async def on_data(self, server: Any, envelope: Any) -> str:
        ssl_object = server.transport.get_extra_info("ssl_object")
        self.deliveries.append(Delivery(envelope.mail_from, tuple(envelope.rcpt_tos), ssl_object is not None,
                                        ssl_object.version() if ssl_object is not None else None))
        return await super().on_data(server, envelope)

    def wire(self, *, encrypted: bool) -> bytes:
        """Everything received in plaintext (or inside TLS), concatenated."""
        return b"".join(chunk.data for chunk in self.received if chunk.encrypted is encrypted)

    def verbs(self, *, encrypted: bool) -> list[str]:
        """The SMTP command verbs received in that state, in order (message bodies skipped)."""
        verbs, in_body = [], False
        for line in self.wire(encrypted=encrypted).split(b"\r\n"):
            if in_body:
                in_body = line != b"."
            elif line:
                verb = line.split(b" ", 1)[0].upper().decode("ascii", "replace")
                verbs.append(verb)
                in_body = verb == "DATA"
        return verbs
