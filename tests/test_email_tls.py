"""Email over real TLS: STARTTLS and implicit TLS against an in-process aiosmtpd with a trustme CA.

What these prove (RELIABILITY.md, Email): TLS is what the settings say it is; certificates are validated
(unknown CA and wrong hostname are refused before anything is sent); a server that does not do the STARTTLS we
require gets no AUTH, no MAIL and no password in plaintext — checked on the bytes the server actually received.
"""

from __future__ import annotations

import base64
import ssl
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import trustme

from bot.config import SmtpSettings
from bot.errors import DeliveryError
from bot.notify.email import EmailNotifier
from tests.support.tlssink import TLSSink
from tests.test_email import message, settings

PASSWORD = "hunter2-tls-secret"
PASSWORD_ENV = "TEST_SMTP_TLS_PASSWORD"
ACCEPT = {b"digest": PASSWORD.encode()}
MAIL_VERBS = {"AUTH", "MAIL", "RCPT", "DATA"}


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


def server_context(cert: trustme.LeafCert) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)  # no client certificates asked for
    cert.configure_cert(context)
    return context


@pytest.fixture(scope="module")
def good_server(ca: trustme.CA) -> ssl.SSLContext:
    return server_context(ca.issue_cert("127.0.0.1", "localhost"))


@pytest.fixture(scope="module")
def wrong_name_server(ca: trustme.CA) -> ssl.SSLContext:
    return server_context(ca.issue_cert("mail.example.org"))


@pytest.fixture
def trusting(ca: trustme.CA) -> ssl.SSLContext:
    """What a deployment with a private CA passes as tls_context: the default context plus that CA."""
    context = ssl.create_default_context()
    ca.configure_trust(context)
    return context


@pytest.fixture
def password(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    monkeypatch.setenv(PASSWORD_ENV, PASSWORD)
    yield PASSWORD


@pytest.fixture
async def starttls_sink(tmp_path: Path, good_server: ssl.SSLContext) -> AsyncIterator[TLSSink]:
    async with TLSSink(tmp_path / "Maildir", starttls=good_server, accept=ACCEPT, auth_required=True) as sink:
        yield sink


def leaked(password: str, wire: bytes) -> bool:
    """The password in any form an SMTP client sends it (raw, AUTH LOGIN, AUTH PLAIN) appears in `wire`."""
    secret = password.encode()
    forms = [secret, base64.b64encode(secret), base64.b64encode(b"\0digest\0" + secret)]
    return any(form in wire for form in forms)


async def send_expecting_refusal(smtp: SmtpSettings, tls_context: ssl.SSLContext | None) -> DeliveryError:
    async with EmailNotifier(smtp, tls_context=tls_context) as notifier:
        with pytest.raises(DeliveryError) as caught:
            await notifier.send(message())
    return caught.value


# 1. STARTTLS that works

@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
async def test_starttls_delivers_encrypted_and_authenticates_only_inside_tls(
        starttls_sink: TLSSink, trusting: ssl.SSLContext, password: str, host: str) -> None:
    smtp = settings(starttls_sink.port, host=host, security="starttls", username="digest", password_env=PASSWORD_ENV)
    async with EmailNotifier(smtp, tls_context=trusting) as notifier:
        await notifier.send(message())
    [received] = starttls_sink.messages()
    assert received["Message-ID"] == "<d-1@digest.example.org>"
    [delivery] = starttls_sink.deliveries
    assert delivery.encrypted and delivery.tls_version in {"TLSv1.2", "TLSv1.3"}
    assert [(login.username, login.encrypted) for login in starttls_sink.logins] == [(b"digest", True)]
    # In the clear: only the greeting exchange and the upgrade. Everything else, re-EHLO first (RFC 3207), inside.
    assert starttls_sink.verbs(encrypted=False) == ["EHLO", "STARTTLS"]
    assert starttls_sink.verbs(encrypted=True)[:2] == ["EHLO", "AUTH"]
    assert {"MAIL", "RCPT", "DATA"} <= set(starttls_sink.verbs(encrypted=True))
    assert not leaked(password, starttls_sink.wire(encrypted=False))


async def test_starttls_connection_is_reused_for_a_batch(starttls_sink: TLSSink, trusting: ssl.SSLContext,
                                                         password: str) -> None:
    smtp = settings(starttls_sink.port, security="starttls", username="digest", password_env=PASSWORD_ENV)
    async with EmailNotifier(smtp, tls_context=trusting) as notifier:
        await notifier.send(message(message_id="<a@x>"))
        await notifier.send(message(message_id="<b@x>"))
    assert [m["Message-ID"] for m in starttls_sink.messages()] == ["<a@x>", "<b@x>"]
    assert starttls_sink.connections == 1 and len(starttls_sink.logins) == 1
    assert all(delivery.encrypted for delivery in starttls_sink.deliveries)


# 2./3. STARTTLS to a certificate we must not trust

async def test_starttls_with_a_certificate_from_an_unknown_ca_sends_nothing(
        starttls_sink: TLSSink, password: str) -> None:
    smtp = settings(starttls_sink.port, security="starttls", username="digest", password_env=PASSWORD_ENV)
    error = await send_expecting_refusal(smtp, None)  # the default context: system CAs, not our trustme CA
    assert error.retry and error.stop_batch and not error.unknown
    assert "TLS" in str(error) and "certificate" in str(error).lower()
    assert starttls_sink.messages() == [] and starttls_sink.logins == []
    assert starttls_sink.verbs(encrypted=False) == ["EHLO", "STARTTLS"]
    assert not leaked(password, starttls_sink.wire(encrypted=False))


async def test_starttls_with_a_certificate_for_another_host_sends_nothing(
        tmp_path: Path, wrong_name_server: ssl.SSLContext, trusting: ssl.SSLContext, password: str) -> None:
    async with TLSSink(tmp_path / "Maildir", starttls=wrong_name_server, accept=ACCEPT) as sink:
        smtp = settings(sink.port, security="starttls", username="digest", password_env=PASSWORD_ENV)
        error = await send_expecting_refusal(smtp, trusting)  # trusted CA, but the name is mail.example.org
    assert error.retry and error.stop_batch
    assert "127.0.0.1" in str(error) and "TLS" in str(error)
    assert sink.messages() == [] and sink.logins == []
    assert sink.verbs(encrypted=False) == ["EHLO", "STARTTLS"]
    assert not leaked(password, sink.wire(encrypted=False))


# 4. Implicit TLS (port 465 style)

async def test_implicit_tls_delivers_with_a_trusted_certificate(
        tmp_path: Path, good_server: ssl.SSLContext, trusting: ssl.SSLContext, password: str) -> None:
    async with TLSSink(tmp_path / "Maildir", implicit=good_server, accept=ACCEPT) as sink:
        smtp = settings(sink.port, security="tls", username="digest", password_env=PASSWORD_ENV)
        async with EmailNotifier(smtp, tls_context=trusting) as notifier:
            await notifier.send(message())
    assert len(sink.messages()) == 1
    [delivery] = sink.deliveries
    assert delivery.encrypted and delivery.tls_version in {"TLSv1.2", "TLSv1.3"}
    assert [(login.username, login.encrypted) for login in sink.logins] == [(b"digest", True)]
    assert sink.wire(encrypted=False) == b""  # not one byte of SMTP outside TLS
    assert "STARTTLS" not in sink.verbs(encrypted=True)


@pytest.mark.parametrize("case", ["unknown-ca", "wrong-host"])
async def test_implicit_tls_to_an_untrusted_certificate_sends_nothing(
        tmp_path: Path, good_server: ssl.SSLContext, wrong_name_server: ssl.SSLContext,
        trusting: ssl.SSLContext, password: str, case: str) -> None:
    server, client = (good_server, None) if case == "unknown-ca" else (wrong_name_server, trusting)
    async with TLSSink(tmp_path / "Maildir", implicit=server, accept=ACCEPT) as sink:
        smtp = settings(sink.port, security="tls", username="digest", password_env=PASSWORD_ENV)
        error = await send_expecting_refusal(smtp, client)
    assert error.retry and not error.unknown
    assert sink.messages() == [] and sink.logins == [] and sink.received == []


async def test_implicit_tls_certificate_failure_stops_the_batch_like_starttls(
        tmp_path: Path, good_server: ssl.SSLContext) -> None:
    async with TLSSink(tmp_path / "Maildir", implicit=good_server) as sink:
        error = await send_expecting_refusal(settings(sink.port, security="tls"), None)
    assert error.stop_batch
    assert "TLS" in str(error)


# 5. STARTTLS required but not done: nothing in plaintext

async def test_starttls_required_but_not_offered_sends_no_auth_and_no_mail_in_plaintext(
        tmp_path: Path, password: str) -> None:
    # The downgrade case: no STARTTLS, but AUTH is offered in the clear (what a stripping MITM shows the client).
    async with TLSSink(tmp_path / "Maildir", accept=ACCEPT, auth_require_tls=False) as sink:
        smtp = settings(sink.port, security="starttls", username="digest", password_env=PASSWORD_ENV)
        error = await send_expecting_refusal(smtp, None)
    assert "STARTTLS" in str(error) and error.stop_batch and error.retry
    assert sink.messages() == [] and sink.logins == []
    assert sink.verbs(encrypted=False) == ["EHLO"]
    assert not MAIL_VERBS & set(sink.verbs(encrypted=False))
    assert not leaked(password, sink.wire(encrypted=False))


async def test_starttls_offered_but_refused_sends_no_auth_and_no_mail_in_plaintext(
        tmp_path: Path, good_server: ssl.SSLContext, trusting: ssl.SSLContext, password: str) -> None:
    async with TLSSink(tmp_path / "Maildir", starttls=good_server, accept=ACCEPT, refuse_starttls=True,
                       auth_require_tls=False) as sink:
        smtp = settings(sink.port, security="starttls", username="digest", password_env=PASSWORD_ENV)
        error = await send_expecting_refusal(smtp, trusting)
    assert error.retry and error.stop_batch and "454" in str(error)
    assert sink.messages() == [] and sink.logins == []
    assert sink.verbs(encrypted=False) == ["EHLO", "STARTTLS"]
    assert not leaked(password, sink.wire(encrypted=False))


# 6. security = "none": allowed only for a relay on this machine (the config refuses it elsewhere)

async def test_security_none_with_a_username_logs_in_in_plaintext_on_loopback_only(
        tmp_path: Path, password: str) -> None:
    """`security = "none"` plus a username logs in over plaintext, which is why the config accepts that only when
    the host is a loopback address (tests/test_config.py checks the refusal for any other host)."""
    async with TLSSink(tmp_path / "Maildir", accept=ACCEPT, auth_require_tls=False) as sink:
        smtp = settings(sink.port, security="none", username="digest", password_env=PASSWORD_ENV)
        async with EmailNotifier(smtp) as notifier:
            await notifier.send(message())
    assert len(sink.messages()) == 1
    assert [(login.username, login.encrypted) for login in sink.logins] == [(b"digest", False)]
    assert sink.verbs(encrypted=False)[:2] == ["EHLO", "AUTH"]
    assert sink.received and not any(chunk.encrypted for chunk in sink.received)
    assert leaked(password, sink.wire(encrypted=False))  # and the detector the other tests rely on sees it
