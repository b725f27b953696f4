"""Unsubscribe tokens: only ours, only unchanged, only while fresh; the secret is stable across processes."""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

from bot.store import Store
from bot.tokens import (
    MAC_BYTES,
    InvalidToken,
    load_secret,
    make_token,
    read_token,
)

SECRET = b"s" * 32
T0 = datetime(2026, 3, 2, 6, 0, tzinfo=UTC)
ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.=+/ %"


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@pytest.mark.parametrize("address", ["ana@example.org", "Ana.Mixed+tag@Example.ORG", "ünï@exämple.org",
                                     "<script>alert(1)</script>@x.org", "a:b:c@x.org"])
def test_round_trip_gives_back_the_address(address: str) -> None:
    token = make_token(address, SECRET, issued=T0)
    assert read_token(token, SECRET, now=T0 + timedelta(days=1)) == address


def test_token_is_url_safe_and_carries_a_128_bit_mac() -> None:
    token = make_token("ana@example.org", SECRET, issued=T0)
    assert all(c.isalnum() or c in "-_." for c in token)
    assert MAC_BYTES >= 16
    assert len(base64.urlsafe_b64decode(token.split(".")[1] + "==")) == MAC_BYTES


def test_same_day_same_token_so_links_are_stable() -> None:
    assert make_token("a@x.org", SECRET, issued=T0) == make_token("a@x.org", SECRET, issued=T0 + timedelta(hours=17))


def test_every_changed_character_is_rejected() -> None:
    token = make_token("ana@example.org", SECRET, issued=T0)
    for index, original in enumerate(token):
        for replacement in ALPHABET:
            if replacement == original:
                continue
            tampered = token[:index] + replacement + token[index + 1:]
            with pytest.raises(InvalidToken):
                read_token(tampered, SECRET, now=T0)


def test_every_flipped_bit_of_the_decoded_parts_is_rejected() -> None:
    token = make_token("ana@example.org", SECRET, issued=T0)
    payload_text, mac_text = token.split(".")
    parts = [base64.urlsafe_b64decode(p + "=" * (-len(p) % 4)) for p in (payload_text, mac_text)]
    for which in (0, 1):
        for index in range(len(parts[which])):
            for bit in range(8):
                changed = bytearray(parts[which])
                changed[index] ^= 1 << bit
                pieces = [b64(p) for p in parts]
                pieces[which] = b64(bytes(changed))
                with pytest.raises(InvalidToken):
                    read_token(".".join(pieces), SECRET, now=T0)


@pytest.mark.parametrize(("token", "reason"), [
    ("", "malformed"),
    ("no-dot", "malformed"),
    ("a.b.c", "malformed"),
    ("YQ.", "malformed"),
    ("YQ==." + "A" * 22, "malformed"),  # padding is not ours
    ("YR." + "A" * 22, "malformed"),  # non-canonical base64 (unused bits set)
    ("YQ." + "A" * 10, "malformed"),  # MAC too short
    ("x" * 5000 + ".AA", "malformed"),
    ("YQ." + "A" * 22, "bad signature"),
])
def test_malformed_or_forged_tokens_say_why(token: str, reason: str) -> None:
    with pytest.raises(InvalidToken) as caught:
        read_token(token, SECRET, now=T0)
    assert caught.value.reason == reason


def test_signed_garbage_payload_is_malformed_not_a_crash() -> None:
    def signed(payload: bytes) -> str:
        mac = hmac.new(SECRET, b"digestbot/unsubscribe/v1\n" + payload, hashlib.sha256).digest()[:MAC_BYTES]
        return f"{b64(payload)}.{b64(mac)}"

    for payload in (b"20261399:a@x.org", b"2026030:a@x.org", b"20260302", b"20260302:", b"\xff\xfe:a",
                    "٢٠٢٦٠٣٠٢:a@x.org".encode()):
        with pytest.raises(InvalidToken) as caught:
            read_token(signed(payload), SECRET, now=T0)
        assert caught.value.reason == "malformed"


def test_wrong_secret_is_a_bad_signature() -> None:
    token = make_token("ana@example.org", SECRET, issued=T0)
    with pytest.raises(InvalidToken) as caught:
        read_token(token, b"t" * 32, now=T0)
    assert caught.value.reason == "bad signature"


def test_mac_is_bound_to_the_unsubscribe_purpose() -> None:
    """A plain HMAC of the same payload (what another feature might sign with the secret) is not a token."""
    payload = b"20260302:ana@example.org"
    bare = hmac.new(SECRET, payload, hashlib.sha256).digest()[:MAC_BYTES]
    with pytest.raises(InvalidToken):
        read_token(f"{b64(payload)}.{b64(bare)}", SECRET, now=T0)


def test_expiry_counts_from_the_issue_day() -> None:
    token = make_token("ana@example.org", SECRET, issued=T0)  # day starts 2026-03-02 00:00 UTC
    day_start = datetime(2026, 3, 2, tzinfo=UTC)
    assert read_token(token, SECRET, now=day_start + timedelta(days=90)) == "ana@example.org"
    with pytest.raises(InvalidToken) as caught:
        read_token(token, SECRET, now=day_start + timedelta(days=90, seconds=1))
    assert caught.value.reason == "expired"
    with pytest.raises(InvalidToken):
        read_token(token, SECRET, now=T0 + timedelta(days=2), max_age=timedelta(days=1))


def test_issued_in_the_future_beyond_the_skew_is_rejected() -> None:
    token = make_token("ana@example.org", SECRET, issued=T0 + timedelta(days=1))  # 2026-03-03
    tomorrow = datetime(2026, 3, 3, tzinfo=UTC)
    assert read_token(token, SECRET, now=tomorrow - timedelta(minutes=4)) == "ana@example.org"
    with pytest.raises(InvalidToken) as caught:
        read_token(token, SECRET, now=tomorrow - timedelta(minutes=6))
    assert caught.value.reason == "issued in the future"


def test_naive_and_other_zone_times_are_utc() -> None:
    from zoneinfo import ZoneInfo

    # 2026-03-02 23:30 in Los Angeles is 2026-03-03 07:30 UTC: the token's day is the UTC one.
    local = datetime(2026, 3, 2, 23, 30, tzinfo=ZoneInfo("America/Los_Angeles"))
    assert make_token("a@x.org", SECRET, issued=local) == make_token("a@x.org", SECRET,
                                                                      issued=datetime(2026, 3, 3, 7, 30))


def test_empty_secret_is_refused() -> None:
    with pytest.raises(ValueError):
        make_token("a@x.org", b"", issued=T0)


# -- the secret --------------------------------------------------------------------------------------------


def test_generated_secret_is_kept_and_shared_by_a_second_process(open_store: Callable[[], Store],
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DIGESTBOT_SECRET", raising=False)
    first, second = open_store(), open_store()
    secret = load_secret(first)
    assert len(secret) == 32
    assert first.secret() == secret.hex()
    assert load_secret(second) == secret
    assert load_secret(first) == secret  # and again after a "restart"
    token = make_token("ana@example.org", load_secret(first), issued=T0)
    assert read_token(token, load_secret(second), now=T0) == "ana@example.org"


def test_env_secret_wins_when_long_enough(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DIGESTBOT_SECRET", "correct horse battery staple")
    assert load_secret(store) == b"correct horse battery staple"
    assert store.secret() is None  # nothing generated


def test_short_env_secret_is_ignored_with_a_warning(store: Store, monkeypatch: pytest.MonkeyPatch,
                                                    caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setenv("DIGESTBOT_SECRET", "short")
    secret = load_secret(store)
    assert secret != b"short" and len(secret) == 32
    assert "DIGESTBOT_SECRET" in caplog.text and "short" not in caplog.text.replace("shorter", "")


def test_env_name_none_always_uses_the_store(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DIGESTBOT_SECRET", "correct horse battery staple")
    assert load_secret(store, env_name=None) == bytes.fromhex(store.secret() or "")
