"""Email against a real SMTP server in this process (aiosmtpd → Maildir), including the faults that lose mail."""

from __future__ import annotations

import email
import email.policy
import logging
import socket
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from aiosmtpd.smtp import AuthResult

from bot.config import SmtpSettings
from bot.errors import DeliveryError
from bot.notify.email import EmailNotifier
from bot.notify.maildir import MaildirSink
from bot.notify.mime import Outgoing, compose
from bot.render import RenderedEmail, Renderer
from tests.support.smtpsink import FaultySink
from tests.test_render import make_digest, scored

SENDER = "digestbot <digest@example.org>"


def settings(port: int, **overrides: object) -> SmtpSettings:
    values: dict[str, object] = {"host": "127.0.0.1", "port": port, "security": "none", "sender": SENDER,
                                 "timeout": 5.0}
    values.update(overrides)
    return SmtpSettings.model_validate(values)


def message(n: int = 1, *, title: str | None = None, message_id: str = "<d-1@digest.example.org>",
            kind: str = "digest") -> Outgoing:
    digest = make_digest(items=tuple(scored(i, title=title) for i in range(n)), kind=kind)
    return compose(Renderer().render_email(digest), sender=SENDER, to="ada@example.org",
                   message_id=message_id, date=datetime(2026, 11, 23, 7, 0, tzinfo=UTC),
                   list_id="digestbot rlhf <rlhf.digest.example.org>",
                   unsubscribe_mailto="unsubscribe+abc@digest.example.org",
                   unsubscribe_url="https://digest.example.org/unsubscribe/abc")


@pytest.fixture
async def sink(tmp_path: Path) -> AsyncIterator[FaultySink]:
    async with FaultySink(tmp_path / "Maildir") as server:
        yield server


async def test_send_is_received_with_both_parts_and_list_headers(sink: FaultySink) -> None:
    sent = message(3)
    async with EmailNotifier(settings(sink.port)) as notifier:
        await notifier.send(sent)
    [received] = sink.messages()
    assert received["Message-ID"] == "<d-1@digest.example.org>"
    assert received["Date"] == "Mon, 23 Nov 2026 07:00:00 +0000"
    assert received["List-Id"] == "digestbot rlhf <rlhf.digest.example.org>"
    assert received["List-Unsubscribe"] == ("<mailto:unsubscribe+abc@digest.example.org>, "
                                            "<https://digest.example.org/unsubscribe/abc>")
    assert received["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert received["Subject"] == "digestbot: 3 new papers for rlhf — Mon 23 Nov"
    assert received["Delivered-To"] == "ada@example.org"
    assert received.get_content_type() == "multipart/alternative"
    text, html = received.iter_parts()
    assert (text.get_content_type(), html.get_content_type()) == ("text/plain", "text/html")
    for i in range(3):
        url = f"https://huggingface.co/papers/2411.{i:05d}"
        assert url in text.get_content() and url in html.get_content()


async def test_hostile_title_cannot_add_headers(sink: FaultySink) -> None:
    async with EmailNotifier(settings(sink.port)) as notifier:
        await notifier.send(message(title="x\r\nBcc: a@evil", kind="alert"))
    [received] = sink.messages()
    assert "Bcc" not in received and "a@evil" not in received["Delivered-To"]
    subject = received["Subject"]
    assert subject == "digestbot alert: x Bcc: a@evil"


async def test_one_connection_is_reused_for_a_batch(sink: FaultySink) -> None:
    async with EmailNotifier(settings(sink.port)) as notifier:
        await notifier.send(message(message_id="<a@x>"))
        await notifier.send(message(message_id="<b@x>"))
    assert [m["Message-ID"] for m in sink.messages()] == ["<a@x>", "<b@x>"]
    assert sink.connections == 1 and notifier.connections == 1


async def test_reconnects_when_the_server_closed_an_idle_connection(sink: FaultySink) -> None:
    async with EmailNotifier(settings(sink.port)) as notifier:
        await notifier.send(message(message_id="<a@x>"))
        sink.hang_up_all()
        await notifier.send(message(message_id="<b@x>"))
    assert len(sink.messages()) == 2 and sink.connections == 2


async def test_drop_before_final_dot_is_retried_and_delivered_once(sink: FaultySink) -> None:
    sink.faults.append("drop-mid-data")
    sent = message()
    async with EmailNotifier(settings(sink.port)) as notifier:
        with pytest.raises(DeliveryError) as caught:
            await notifier.send(sent)
        assert caught.value.retry and not caught.value.stop_batch
        assert sink.messages() == []
        await notifier.send(sent)  # the outbox's retry: same message, same Message-ID
    assert [m["Message-ID"] for m in sink.messages()] == ["<d-1@digest.example.org>"]


async def test_drop_after_final_dot_is_unknown(sink: FaultySink) -> None:
    sink.faults.append("drop-after-dot")
    async with EmailNotifier(settings(sink.port)) as notifier:
        with pytest.raises(DeliveryError) as caught:
            await notifier.send(message())
    assert caught.value.unknown and caught.value.retry
    assert len(sink.messages()) == 1  # it did arrive; the retry reuses the Message-ID


@pytest.mark.parametrize(("reply", "retry"), [
    ("421 4.3.0 Try again later", True),
    ("451 4.7.1 Greylisted", True),
    ("550 5.7.1 Rejected as spam", False),
    ("554 5.6.0 Message refused", False),
])
async def test_replies_after_data_are_classified(sink: FaultySink, reply: str, retry: bool) -> None:
    sink.faults.append(reply)
    async with EmailNotifier(settings(sink.port)) as notifier:
        with pytest.raises(DeliveryError) as caught:
            await notifier.send(message(message_id="<first@x>"))
        assert caught.value.retry is retry and not caught.value.unknown and not caught.value.stop_batch
        assert reply.split()[0] in str(caught.value)
        await notifier.send(message(message_id="<second@x>"))  # the batch goes on
    assert [m["Message-ID"] for m in sink.messages()] == ["<second@x>"]


async def test_starttls_required_but_not_offered_sends_nothing(sink: FaultySink) -> None:
    async with EmailNotifier(settings(sink.port, security="starttls")) as notifier:
        with pytest.raises(DeliveryError) as caught:
            await notifier.send(message())
    assert "STARTTLS" in str(caught.value) and caught.value.stop_batch
    assert sink.messages() == []


async def test_connect_refused_is_retried_later() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    async with EmailNotifier(settings(port)) as notifier:
        with pytest.raises(DeliveryError) as caught:
            await notifier.send(message())
    assert caught.value.retry and not caught.value.unknown


async def test_auth_failure_stops_the_batch_and_never_shows_the_password(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    monkeypatch.setenv("TEST_SMTP_PASSWORD", "hunter2-secret")
    seen: list[bytes] = []

    def authenticator(server: object, session: object, envelope: object, mechanism: str,
                      auth_data: object) -> AuthResult:
        seen.append(getattr(auth_data, "password", b""))
        return AuthResult(success=False, handled=False)

    async with FaultySink(tmp_path / "Maildir", auth_require_tls=False, authenticator=authenticator) as server:
        smtp = settings(server.port, username="digest", password_env="TEST_SMTP_PASSWORD")
        async with EmailNotifier(smtp) as notifier:
            with pytest.raises(DeliveryError) as caught:
                await notifier.send(message())
            assert "hunter2" not in repr(notifier)
        assert server.messages() == []
    assert set(seen) == {b"hunter2-secret"}  # it was sent, read from the environment at connect time ...
    assert caught.value.stop_batch and not caught.value.retry
    assert "hunter2" not in str(caught.value) + (caught.value.hint or "") + caplog.text  # ... and shown nowhere


async def test_login_timeout_is_retried_later_not_a_permanent_failure(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A relay that never answers AUTH (overloaded, a network hiccup): a timeout is a connection problem, so the
    digest is retried later; it was counted a failed login for good before."""
    monkeypatch.setenv("TEST_SMTP_PASSWORD", "pw")
    async with FaultySink(tmp_path / "Maildir", "hang-auth", auth_require_tls=False,
                          authenticator=lambda *args: AuthResult(success=True)) as server:
        smtp = settings(server.port, username="digest", password_env="TEST_SMTP_PASSWORD", timeout=1.0)
        async with EmailNotifier(smtp) as notifier:
            with pytest.raises(DeliveryError) as caught:
                await notifier.send(message())
    assert caught.value.retry and not caught.value.unknown and not caught.value.stop_batch
    assert "timed out" in str(caught.value).lower() or "timeout" in str(caught.value).lower(), str(caught.value)


def test_compose_sanitises_every_header() -> None:
    rendered = RenderedEmail(subject="a\nb", text="t", html="<p>h</p>")
    wire = compose(rendered, sender=SENDER, to="ada@example.org\r\nBcc: x@evil", message_id="<m@x>\n",
                   date=datetime(2026, 1, 1), list_id="l <l.x>\r", unsubscribe_mailto="mailto:u@x",
                   unsubscribe_url="http://x.org/u?a=<b>")
    built = email.message_from_bytes(wire.data, policy=email.policy.default)
    assert built["Subject"] == "a b" and "Bcc" not in built
    assert built["List-Unsubscribe"] == "<mailto:u@x>, <http://x.org/u?a=%3Cb%3E>"
    assert "List-Unsubscribe-Post" not in built  # one-click needs https
    assert built["Date"] == "Thu, 01 Jan 2026 00:00:00 +0000"
    assert wire.data.count(b"\nBcc:") == 0


async def test_plain_maildir_sink_serves_the_demo(tmp_path: Path) -> None:
    async with MaildirSink(tmp_path / "demo") as demo, EmailNotifier(settings(demo.port)) as notifier:
        await notifier.send(message())
    assert len(demo.paths()) == 1 and demo.messages()[0]["To"] == "ada@example.org"
