"""The email written directly (`bot.notify.mime`) against the same email built by the `email` package.

The reference below is how digestbot built mail before (EmailMessage, set_content/add_alternative, flattened with
the wire policy); the bytes differ (boundary, where quoted-printable breaks lines) but a mail reader must see the
same message: the same headers with the same values, the same two parts with the same text.
"""

from __future__ import annotations

import email
import io
import random
from datetime import UTC, datetime
from email.generator import BytesGenerator
from email.message import EmailMessage
from email.policy import default as default_policy

import pytest
from aiosmtplib.email import extract_recipients, extract_sender

from bot.notify.mime import WIRE_POLICY, Outgoing, compose, header_line, headers
from bot.render import RenderedEmail, Renderer
from tests.test_render import make_digest, scored

SENDER = "Digest <digest@example.org>"
WHEN = datetime(2026, 12, 4, 7, 0, tzinfo=UTC)


def reference(rendered: RenderedEmail, **fields: str | None) -> bytes:
    """What the `email` package writes for the same message."""
    message = EmailMessage()
    for name, value in headers(rendered, date=WHEN, **fields):  # type: ignore[arg-type]
        message[name] = value
    message.set_content(rendered.text, subtype="plain", cte="quoted-printable")
    message.add_alternative(rendered.html, subtype="html", cte="quoted-printable")
    with io.BytesIO() as out:
        BytesGenerator(out, policy=WIRE_POLICY).flatten(message)
        return out.getvalue()


def fields(**overrides: str | None) -> dict[str, str | None]:
    values: dict[str, str | None] = {
        "sender": SENDER, "to": "ada@example.org", "message_id": "<d-1.abc@digest.example.org>",
        "list_id": "digestbot <digest.example.org>", "unsubscribe_mailto": "digest@example.org?subject=unsubscribe",
        "unsubscribe_url": "https://digest.example.org/unsubscribe/abc"}
    values.update(overrides)
    return values


def parse(data: bytes) -> EmailMessage:
    parsed = email.message_from_bytes(data, policy=default_policy)
    assert isinstance(parsed, EmailMessage)
    return parsed


def assert_same_message(ours: Outgoing, theirs: bytes) -> None:
    mine, ref = parse(ours.data), parse(theirs)
    assert not mine.defects and all(not p.defects for p in mine.walk())
    assert list(mine.keys()) == list(ref.keys())
    for name in ref:
        if name != "Content-Type":  # the boundary is random
            assert mine[name] == ref[name], name
    assert mine.get_content_type() == ref.get_content_type() == "multipart/alternative"
    for part, ref_part in zip(mine.iter_parts(), ref.iter_parts(), strict=True):
        assert part.get_content_type() == ref_part.get_content_type()
        assert part.get_content_charset() == ref_part.get_content_charset() == "utf-8"
        assert part["Content-Transfer-Encoding"] == "quoted-printable"
        assert part.get_content() == ref_part.get_content()
    # The envelope is what aiosmtplib would have taken from the headers.
    assert ours.sender == extract_sender(ref)
    assert list(ours.recipients) == extract_recipients(ref)


def assert_wire_safe(data: bytes) -> None:
    """7-bit, CRLF line ends only, no line over RFC 5322's 998 characters."""
    assert max(data) < 128
    assert b"\r" not in data.replace(b"\r\n", b"") and b"\n" not in data.replace(b"\r\n", b"")
    assert max(len(line) for line in data.split(b"\r\n")) <= 998


def test_a_digest_reads_as_the_email_package_would_write_it() -> None:
    rendered = Renderer().render_email(make_digest(20))
    ours = compose(rendered, date=WHEN, **fields())  # type: ignore[arg-type]
    assert_same_message(ours, reference(rendered, **fields()))
    assert_wire_safe(ours.data)
    assert ours.sender == "digest@example.org" and ours.recipients == ("ada@example.org",)
    assert ours.message_id == "<d-1.abc@digest.example.org>"
    assert max(len(line) for line in ours.data.split(b"\r\n\r\n", 1)[1].split(b"\r\n")) <= 76


HOSTILE = [
    "Attention Is All You Need — again 🎉",
    "=?utf-8?q?not_an_encoded_word?= in a title",
    "Ünïcödé everywhere: 日本語のタイトル and עברית",
    "a" * 400,  # one word longer than a header line should be
    "x\r\nBcc: evil@example.org",
    "tabs\tand  double  spaces ",
    "\u202eright-to-left override",
    "word " * 60,
]


@pytest.mark.parametrize("title", HOSTILE)
def test_hostile_titles_read_the_same(title: str) -> None:
    rendered = Renderer().render_email(make_digest(items=(scored(0, title=title), scored(1))))
    ours = compose(rendered, date=WHEN, **fields())  # type: ignore[arg-type]
    assert_same_message(ours, reference(rendered, **fields()))
    assert_wire_safe(ours.data)
    assert b"\nBcc:" not in ours.data


@pytest.mark.parametrize("sender,to", [
    ('"Lab, ML digest" <digest@example.org>', "ada@example.org"),
    ("Lab Digest — ML <digest@example.org>", "Ada Lovelace <ada@example.org>"),
    ("digest@example.org", "ada@example.org\r\nBcc: x@evil.example"),
])
def test_senders_and_recipients_with_names_quotes_and_non_ascii(sender: str, to: str) -> None:
    rendered = Renderer().render_email(make_digest(2))
    ours = compose(rendered, date=WHEN, **fields(sender=sender, to=to))  # type: ignore[arg-type]
    assert_same_message(ours, reference(rendered, **fields(sender=sender, to=to)))
    assert_wire_safe(ours.data)


def test_bodies_with_awkward_lines_decode_to_what_was_rendered() -> None:
    """Trailing spaces, a lone dot, "From ", bare CR, lines far over 998 characters, every kind of line end."""
    text = ("trailing spaces   \n.\n..\nFrom here\nbare\rcr\r\ncrlf\n" + "z" * 3000 + "\n\tindented\n= sign =3D\n"
            "form\x0cfeed and \u2028line separator\n" + "é" * 500 + "\n\n\n")
    rendered = RenderedEmail(subject="s", text=text, html=f"<p>{text}</p>")
    ours = compose(rendered, date=WHEN, **fields())  # type: ignore[arg-type]
    assert_same_message(ours, reference(rendered, **fields()))
    assert_wire_safe(ours.data)


def test_without_unsubscribe_links_or_with_plain_http() -> None:
    rendered = Renderer().render_email(make_digest(1))
    for extra in ({"unsubscribe_mailto": None, "unsubscribe_url": None},
                  {"unsubscribe_url": "http://digest.example.org/u/a b,<c>"}):
        ours = compose(rendered, date=WHEN, **fields(**extra))  # type: ignore[arg-type]
        assert_same_message(ours, reference(rendered, **fields(**extra)))
        mine = parse(ours.data)
        assert ("List-Unsubscribe-Post" in mine) is False


def test_random_header_values_are_written_as_the_email_package_folds_them() -> None:
    """The fast path (a plain value written as it is) never differs from the email package's own folding."""
    rng = random.Random(17)
    alphabet = [chr(c) for c in range(32, 127)] + ["é", "—", "🎉", "\t", "=?", "?=", "=?utf-8?q?abc?="]
    values = ["=?utf-8?q?abc?=", "x =?utf-8?b?4oCU?= y", "a" * 1200, "two  spaces", " lead", "trail "]
    for _ in range(3000):
        value = " ".join("".join(rng.choices(alphabet, k=rng.randint(1, 12))) for _ in range(rng.randint(1, 8)))
        values.append(value.strip())
    for value in values:
        for name in ("Subject", "List-Id", "List-Unsubscribe"):
            folded = WIRE_POLICY.header_factory(name, value).fold(policy=WIRE_POLICY)
            assert header_line(name, value) == folded, (name, value)


def test_every_message_has_its_own_boundary() -> None:
    rendered = Renderer().render_email(make_digest(1))
    first, second = (compose(rendered, date=WHEN, **fields()) for _ in range(2))  # type: ignore[arg-type]
    assert parse(first.data).get_boundary() != parse(second.data).get_boundary()
