"""Email: build the MIME message, send it over one reused SMTP connection, classify every failure.

The outbox decides what happens next from the DeliveryError flags, so the classification here is the contract
(RELIABILITY.md): nothing sent yet → `retry`; 4xx → `retry`; 5xx → no retry; auth or a server that will not do
the TLS we require → `stop_batch`; connection lost once the message body is on the wire → `unknown` (the
retry reuses the Message-ID, so a receiving system can drop the duplicate).
"""

from __future__ import annotations

import asyncio
import io
import logging
import ssl
from dataclasses import dataclass
from datetime import UTC, datetime
from email.generator import BytesGenerator
from email.message import EmailMessage
from email.policy import SMTP as SMTP_POLICY
from email.utils import format_datetime
from types import TracebackType

from aiosmtplib import (
    SMTP,
    SMTPAuthenticationError,
    SMTPException,
    SMTPResponseException,
    SMTPServerDisconnected,
    SMTPTimeoutError,
)
from aiosmtplib.email import extract_recipients, extract_sender

from bot.config import SmtpSettings
from bot.errors import AuthFailed, DeliveryError, MaybeSent, Permanent, Retryable, SessionRefused
from bot.render import SUBJECT_LIMIT, RenderedEmail
from bot.safetext import one_line

log = logging.getLogger(__name__)

_URI_UNSAFE = str.maketrans({"<": "%3C", ">": "%3E", ",": "%2C", " ": "%20", '"': "%22"})


def _uri(value: str) -> str:
    """A URI that cannot break out of its `<...>` in List-Unsubscribe."""
    return one_line(value).replace(" ", "").translate(_URI_UNSAFE)


def build_message(rendered: RenderedEmail, *, sender: str, to: str, message_id: str, date: datetime, list_id: str,
                  unsubscribe_mailto: str | None, unsubscribe_url: str | None) -> EmailMessage:
    """multipart/alternative (text first, HTML last) with list headers; every header value made one-line."""
    message = EmailMessage()
    message["Subject"] = one_line(rendered.subject, SUBJECT_LIMIT)
    message["From"] = one_line(sender)
    message["To"] = one_line(to)
    message["Date"] = format_datetime(date if date.tzinfo else date.replace(tzinfo=UTC))
    message["Message-ID"] = one_line(message_id)
    message["List-Id"] = one_line(list_id)
    links = []
    if unsubscribe_mailto:
        mailto = _uri(unsubscribe_mailto)
        links.append(f"<{mailto if mailto.lower().startswith('mailto:') else 'mailto:' + mailto}>")
    url = _uri(unsubscribe_url) if unsubscribe_url else ""
    if url.lower().startswith(("https://", "http://")):
        links.append(f"<{url}>")
    if links:
        message["List-Unsubscribe"] = ", ".join(links)
    if url.lower().startswith("https://"):  # RFC 8058 one-click needs HTTPS
        message["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    message["Auto-Submitted"] = "auto-generated"  # RFC 3834: no vacation replies to a bot
    message.set_content(rendered.text, subtype="plain", cte="quoted-printable")
    message.add_alternative(rendered.html, subtype="html", cte="quoted-printable")
    return message


# RFC 5322's line limit, not the 78 characters it recommends: the email package folds a header whose word does not
# fit 78 characters by turning it into RFC 2047 encoded-words, and a `List-Unsubscribe` of
# `=?utf-8?q?=3Chttps=3A//…?=` is no link to Gmail or Yahoo (RFC 2369 wants angle-bracketed URIs, folded only at
# whitespace). Headers here are one line, far below 998 characters; bodies are quoted-printable already.
WIRE_POLICY = SMTP_POLICY.clone(cte_type="7bit", max_line_length=998)


def flatten(message: EmailMessage) -> bytes:
    """The bytes that go over SMTP: CRLF line ends, 7-bit, structured headers as plain ASCII."""
    with io.BytesIO() as out:
        BytesGenerator(out, policy=WIRE_POLICY).flatten(message)
        return out.getvalue()


@dataclass(frozen=True, slots=True)
class Outgoing:
    """A message as SMTP sends it: envelope sender and recipients, and the bytes."""

    sender: str | None
    recipients: tuple[str, ...]
    data: bytes
    message_id: str


def outgoing(message: EmailMessage) -> Outgoing:
    """The envelope and wire bytes of `message` (the CPU part of a send: ~1 ms for a digest)."""
    return Outgoing(extract_sender(message), tuple(extract_recipients(message)), flatten(message),
                    str(message.get("Message-ID", "?")))


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

    async def send(self, message: EmailMessage) -> None:
        """One SMTP transaction; raises DeliveryError with the outbox flags set."""
        await self.send_outgoing(outgoing(message))

    async def send_outgoing(self, mail: Outgoing) -> None:
        """`send` of a message made ready beforehand (`outgoing`, in a worker thread: the event loop then only
        does the SMTP conversation)."""
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
