"""Email: send a message (`bot.notify.mime` writes it) over one reused SMTP connection, classify every failure.

The outbox decides what happens next from the DeliveryError flags, so the classification here is the contract
(RELIABILITY.md): nothing sent yet → `retry`; 4xx → `retry`; 5xx → no retry; auth or a server that will not do
the TLS we require → `stop_batch`; connection lost once the message body is on the wire → `unknown` (the
retry reuses the Message-ID, so a receiving system can drop the duplicate).
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from types import TracebackType

from aiosmtplib import (
    SMTP,
    SMTPAuthenticationError,
    SMTPException,
    SMTPResponseException,
    SMTPServerDisconnected,
    SMTPTimeoutError,
)

from bot.config import SmtpSettings
from bot.errors import AuthFailed, DeliveryError, MaybeSent, Permanent, Retryable, SessionRefused
from bot.notify.mime import Outgoing
from bot.safetext import one_line

log = logging.getLogger(__name__)


class EmailNotifier:
    """Sends messages over ONE SMTP connection per batch (`async with`), reconnecting after a drop.

    Sends on one notifier are serialised (one SMTP transaction at a time); run several notifiers for
    concurrency. The password is read from the environment at connect time and never stored or logged.
    """

    def __init__(self, settings: SmtpSettings, *, tls_context: ssl.SSLContext | None = None) -> None:
        self._settings = settings
        self._tls_context = tls_context
        self._smtp: SMTP | None = None
        self._lock = asyncio.Lock()
        self.connections = 0  # opened so far; lets tests and logs see reuse

    def __repr__(self) -> str:
        s = self._settings
        return f"EmailNotifier({s.host}:{s.port}, security={s.security!r}, user={s.username!r})"

    async def __aenter__(self) -> EmailNotifier:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """QUIT politely; a server that is already gone just gets its socket closed."""
        smtp, self._smtp = self._smtp, None
        if smtp is None or not smtp.is_connected:
            return
        try:
            await smtp.quit(timeout=min(self._settings.timeout, 10.0))
        except (SMTPException, OSError):
            smtp.close()

    async def send(self, mail: Outgoing) -> None:
        """One SMTP transaction of a message made ready beforehand (`mime.compose`, in a worker thread: the event
        loop only does the SMTP conversation); raises DeliveryError with the outbox flags set."""
        sender, recipients, data = mail.sender, list(mail.recipients), mail.data
        if not sender or not recipients:
            raise Permanent("message has no From or no To address")
        async with self._lock:
            reused = self._smtp is not None and self._smtp.is_connected
            smtp = await self._connection()
            try:
                await self._transaction(smtp, sender, recipients, data)
            except _StaleConnection:
                if not reused:
                    raise Retryable(f"SMTP server {self._where} closed the connection before MAIL FROM") from None
                # An idle connection the server had already closed: nothing was sent, so one reconnect is safe.
                log.info("SMTP connection to %s went stale; reconnecting", self._where)
                smtp = await self._connection()
                try:
                    await self._transaction(smtp, sender, recipients, data)
                except _StaleConnection:
                    raise Retryable(f"SMTP server {self._where} closed the connection before MAIL FROM") from None
        log.info("sent %s via %s", mail.message_id, self._where)

    @property
    def _where(self) -> str:
        return f"{self._settings.host}:{self._settings.port}"

    async def _transaction(self, smtp: SMTP, sender: str, recipients: list[str], data: bytes) -> None:
        phase = "MAIL FROM"
        try:
            await smtp.mail(sender)
            phase = "RCPT TO"
            for recipient in recipients:
                await smtp.rcpt(recipient)
            phase = "DATA"
            await smtp.data(data)
        except SMTPResponseException as exc:
            await self._reset(smtp)
            kind = Retryable if 400 <= exc.code < 500 else Permanent  # 4xx: try again later; 5xx: never
            raise kind(f"SMTP server {self._where} refused {phase}: {exc.code} {one_line(exc.message, 200)}") from None
        except (SMTPServerDisconnected, OSError) as exc:  # includes aiosmtplib timeouts (TimeoutError)
            smtp.close()
            self._smtp = None
            if phase == "MAIL FROM" and isinstance(exc, SMTPServerDisconnected):
                raise _StaleConnection from None
            if phase == "DATA":
                raise MaybeSent(
                    f"connection to SMTP server {self._where} lost during DATA; the message may or may not "
                    f"have been accepted ({_reason(exc)})",
                    hint="It will be retried with the same Message-ID; a duplicate is possible.") from None
            raise Retryable(f"connection to SMTP server {self._where} lost during {phase}: {_reason(exc)}") from None
        except SMTPException as exc:  # e.g. SMTPUTF8 needed but not offered: this message can never go
            await self._reset(smtp)
            raise Permanent(f"SMTP {phase} failed: {one_line(str(exc), 200)}") from None

    async def _reset(self, smtp: SMTP) -> None:
        """RSET so the connection can carry the next message; drop it if even that fails."""
        if not smtp.is_connected:
            self._smtp = None
            return
        try:
            await smtp.rset()
        except (SMTPException, OSError):
            smtp.close()
            self._smtp = None

    async def _connection(self) -> SMTP:
        if self._smtp is not None and self._smtp.is_connected:
            return self._smtp
        self._smtp = await self._connect()
        return self._smtp

    async def _connect(self) -> SMTP:
        s = self._settings
        smtp = SMTP(hostname=s.host, port=s.port, timeout=s.timeout, use_tls=s.security == "tls", start_tls=False,
                     tls_context=self._tls_context, validate_certs=True)
        try:
            await smtp.connect()
            self.connections += 1
            if s.security == "starttls":
                await smtp.ehlo()
                if not smtp.supports_extension("starttls"):
                    raise SessionRefused(f"SMTP server {self._where} does not offer STARTTLS, which [smtp] security "
                                         f"= \"starttls\" requires; nothing was sent",
                                         hint="Check the server's port and TLS set-up (or use security = \"tls\" "
                                              "on port 465); digestbot never falls back to plaintext.")
                try:
                    await smtp.starttls()
                except SMTPResponseException as exc:  # a refused STARTTLS is a failed TLS, whatever the code
                    raise SessionRefused(f"SMTP server {self._where} refused STARTTLS: {exc.code} "
                                         f"{one_line(exc.message, 200)}; nothing was sent") from None
            if s.username:
                await self._login(smtp)
        except DeliveryError:
            smtp.close()
            raise
        except ssl.SSLError as exc:
            smtp.close()
            raise self._tls_failed(exc) from None
        except SMTPResponseException as exc:
            smtp.close()
            kind = SessionRefused if exc.code >= 500 else Retryable
            raise kind(f"SMTP server {self._where} refused the session: {exc.code} "
                       f"{one_line(exc.message, 200)}") from None
        except (SMTPException, OSError) as exc:  # connect refused, DNS, timeouts, AUTH not offered
            smtp.close()
            if isinstance(exc.__cause__, ssl.SSLError):  # implicit TLS: aiosmtplib wraps the handshake failure
                raise self._tls_failed(exc.__cause__) from None
            raise Retryable(f"cannot reach SMTP server {self._where}: {_reason(exc)}") from None
        return smtp

    def _tls_failed(self, exc: ssl.SSLError) -> DeliveryError:
        return SessionRefused(f"TLS with SMTP server {self._where} failed: {_reason(exc)}",
                              hint="Check the server certificate and [smtp] security.")

    async def _login(self, smtp: SMTP) -> None:
        """Auth problems are the same for every message: stop the batch and tell a person."""
        s = self._settings
        hint = f"Check [smtp] username and the {s.password_env or 'password'} environment variable."
        try:
            await smtp.login(s.username or "", s.password() or "")
        except SMTPAuthenticationError as exc:
            raise AuthFailed(f"SMTP login as {s.username!r} refused by {self._where}: {exc.code}", hint=hint) from None
        except SMTPResponseException as exc:
            kind = SessionRefused if exc.code < 500 else AuthFailed
            raise kind(f"SMTP login as {s.username!r} failed at {self._where}: {exc.code}", hint=hint) from None
        except SMTPException as exc:  # AUTH not offered, no common mechanism
            if isinstance(exc, SMTPServerDisconnected | SMTPTimeoutError):
                raise  # the connection, not the login: retried later like any connection problem
            raise AuthFailed(f"SMTP login at {self._where} impossible: {_reason(exc)}", hint=hint) from None


class _StaleConnection(Exception):
    """The server hung up before MAIL FROM was answered: provably nothing was sent."""


def _reason(exc: BaseException) -> str:
    return one_line(str(exc), 200) or type(exc).__name__
