"""The outbox state machine against real servers with faults: each scenario asserts what the recipient got.

Rows are planned straight into the store (as the planner would) and delivered by the real Deliverer.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from bot.config import Config, parse_config
from bot.models import Item
from bot.outbox.deliver import Deliverer
from bot.outbox.model import Digest, Payload, PlannedDelivery
from bot.outbox.prepare import digest_for
from bot.render import RenderedEmail, Renderer, SlackMessage
from bot.store import Store
from tests.support.slackapi import ScriptedSlack
from tests.support.smtpsink import FaultySink

NOW = datetime(2026, 11, 23, 7, 0, tzinfo=UTC)
LEASE = timedelta(minutes=2)


@pytest.fixture(autouse=True)
def slack_token(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("TEST_SLACK_TOKEN", "xoxb-test")
    yield


def make_config(smtp_port: int = 1, slack_url: str = "http://127.0.0.1:1/api/", admin_email: str | None = None,
                ) -> Config:
    return parse_config({
        "bot": {"admin_email": admin_email} if admin_email else {},
        "smtp": {"host": "127.0.0.1", "port": smtp_port, "security": "none", "sender": "digest@example.org",
                 "timeout": 5},
        "slack": {"token_env": "TEST_SLACK_TOKEN", "base_url": slack_url},
        "profiles": {"p": {"keywords": ["DPO"]}},
    })


def seed(store: Store, n: int) -> list[dict[str, Any]]:
    items = [Item(id=f"arxiv:2611.{i:05d}", title=f"DPO paper {i}", url=f"https://arxiv.org/abs/2611.{i:05d}",
                  abstract="About DPO.") for i in range(n)]
    store.save_items("s", items, seen_at=NOW - timedelta(hours=1))
    return [{"id": it.id, "profile": "p", "score": 2.0 - i / 1000, "alerted": False,
             "reasons": [{"term": "DPO", "field": "title", "count": 1, "weight": 2.0}]} for i, it in enumerate(items)]


def plan(store: Store, *, channel: str = "email", address: str = "ada@example.org", n: int = 3,
         key: str = "digest:email:ada:2026-11-23") -> None:
    payload = Payload.from_json({"items": seed(store, n), "total_matched": n, "since": None, "profiles": ["p"]})
    store.plan([PlannedDelivery(key=key, kind="digest", channel=channel, recipient="ada", address=address,
                                period_key="2026-11-23", payload=payload, message_id="<fixed-id@example.org>",
                                covers_until=NOW)], now=NOW)


class SlowRelay(FaultySink):
    """A relay that takes `seconds` to accept each message."""

    def __init__(self, directory: Path, *, seconds: float) -> None:
        super().__init__(directory)
        self.seconds = seconds

    async def on_data(self, server: Any, envelope: Any) -> str:
        await asyncio.sleep(self.seconds)
        return await super().on_data(server, envelope)


def one_connection(smtp_port: int) -> Config:
    """`make_config` with one SMTP connection, so a batch's sends queue one after another."""
    base = make_config(smtp_port)
    assert base.smtp is not None
    return base.model_copy(update={"smtp": base.smtp.model_copy(update={"concurrency": 1})})


def plan_now(store: Store, n: int) -> datetime:
    """`n` one-paper digests to r0…r{n-1}, planned at the real time (so none is too old to send); that time."""
    now = datetime.now(UTC)
    payload = Payload.from_json({"items": seed(store, 1), "total_matched": 1, "since": None, "profiles": ["p"]})
    store.plan([PlannedDelivery(key=f"digest:email:r{i}", kind="digest", channel="email", recipient=f"r{i}",
                                address=f"r{i}@example.org", period_key="today", payload=payload,
                                message_id=f"<r{i}@example.org>") for i in range(n)], now=now)
    return now


def states(store: Store) -> list[str]:
    return [d.state for d in store.deliveries()]


async def deliver(config: Config, store: Store, at: datetime) -> list[str]:
    return [o.status for o in await Deliverer(config, store, Renderer()).deliver_due(now=at)]


async def test_email_sent_once_however_often_delivery_runs(store: Store, tmp_path: Path) -> None:
    async with FaultySink(tmp_path / "mail") as sink:
        config = make_config(sink.port)
        plan(store)
        assert await deliver(config, store, NOW) == ["sent"]
        assert await deliver(config, store, NOW) == []
        assert await deliver(config, store, NOW + timedelta(hours=2)) == []
        assert len(sink.messages()) == 1
        assert sink.messages()[0]["Message-ID"] == "<fixed-id@example.org>"


@pytest.mark.parametrize("fault", ["421 4.3.0 try again later", "drop-mid-data"])
async def test_temporary_failure_is_retried_later_and_sent_once(store: Store, tmp_path: Path, fault: str) -> None:
    async with FaultySink(tmp_path / "mail", fault) as sink:
        config = make_config(sink.port)
        plan(store)
        assert await deliver(config, store, NOW) == ["retry"]
        assert states(store) == ["pending"] and len(sink.messages()) == 0
        assert await deliver(config, store, NOW + timedelta(seconds=30)) == []  # backoff: not yet
        assert await deliver(config, store, NOW + timedelta(minutes=5)) == ["sent"]
        assert len(sink.messages()) == 1


async def test_permanent_rejection_fails_without_retry(store: Store, tmp_path: Path) -> None:
    async with FaultySink(tmp_path / "mail", "550 5.1.1 no such user") as sink:
        config = make_config(sink.port)
        plan(store)
        assert await deliver(config, store, NOW) == ["failed"]
        assert await deliver(config, store, NOW + timedelta(hours=1)) == []
        row = store.deliveries()[0]
        assert row.state == "failed" and row.last_error and "550" in row.last_error
        assert len(sink.messages()) == 0


async def test_lost_after_the_final_dot_retries_with_the_same_message_id(store: Store, tmp_path: Path) -> None:
    async with FaultySink(tmp_path / "mail", "drop-after-dot") as sink:
        config = make_config(sink.port)
        plan(store)
        assert await deliver(config, store, NOW) == ["retry"]
        assert await deliver(config, store, NOW + timedelta(minutes=5)) == ["sent"]
        ids = {m["Message-ID"] for m in sink.messages()}
        assert ids == {"<fixed-id@example.org>"}  # at most one duplicate, recognisable by its Message-ID


async def test_smtp_server_down_keeps_the_digest_pending(store: Store) -> None:
    config = make_config(smtp_port=9)  # nothing listens on the discard port here
    plan(store)
    assert await deliver(config, store, NOW) == ["retry"]
    assert states(store) == ["pending"]


async def test_split_slack_digest_resumes_where_it_failed(store: Store) -> None:
    async with ScriptedSlack("ok", "error:internal_error") as slack:
        config = make_config(slack_url=slack.base_url)
        plan(store, channel="slack", address="C0PAPERS", n=50, key="digest:slack:papers:2026-11-23")
        assert await deliver(config, store, NOW) == ["retry"]
        assert await deliver(config, store, NOW + timedelta(minutes=5)) == ["sent"]
        texts = [p.body["blocks"][1] for p in slack.posts]
        assert len(slack.posts) >= 3
        assert len({str(t) for t in texts}) == len(texts)  # no part posted twice


async def test_a_long_slack_rate_limit_leaves_the_rest_of_the_batch_for_later(store: Store) -> None:
    """Slack answers 429 with Retry-After 120 s: the row waits for a later cycle, and the batch's other Slack rows
    are not thrown at a workspace that is rate-limited (each would earn a 429 of its own); they stay pending."""
    async with ScriptedSlack("429:120") as slack:
        config = make_config(slack_url=slack.base_url)
        plan(store, channel="slack", address="C0PAPERS", key="digest:slack:papers:2026-11-23")
        plan(store, channel="slack", address="C0OTHER", key="digest:slack:other:2026-11-23")
        assert await deliver(config, store, NOW) == ["retry"]
        assert len(slack.requests) == 1
        assert sorted(d.state for d in store.deliveries()) == ["pending", "pending"]
        waiting = next(d for d in store.deliveries() if d.key == "digest:slack:papers:2026-11-23")
        assert waiting.next_attempt_at >= NOW + timedelta(seconds=120)
        assert await deliver(config, store, NOW + timedelta(seconds=1)) == ["sent"]  # the other one, next cycle


async def test_slack_connection_lost_mid_post_is_unknown_and_never_reposted(store: Store) -> None:
    async with ScriptedSlack("drop") as slack:
        config = make_config(slack_url=slack.base_url)
        plan(store, channel="slack", address="C0PAPERS", key="digest:slack:papers:2026-11-23")
        assert await deliver(config, store, NOW) == ["unknown"]
        assert await deliver(config, store, NOW + timedelta(hours=1)) == []
        assert len(slack.requests) == 1


async def test_channel_not_found_disables_the_destination_and_tells_the_admin(store: Store, tmp_path: Path) -> None:
    async with ScriptedSlack("error:channel_not_found") as slack, FaultySink(tmp_path / "mail") as sink:
        config = make_config(smtp_port=sink.port, slack_url=slack.base_url, admin_email="ops@example.org")
        plan(store, channel="slack", address="C0GONE", key="digest:slack:gone:2026-11-23")
        assert await deliver(config, store, NOW) == ["failed"]
        row = next(d for d in store.deliveries() if d.key == "digest:slack:gone:2026-11-23")
        assert row.last_error and "channel_not_found" in row.last_error

        assert await deliver(config, store, NOW + timedelta(minutes=1)) == ["sent"]  # the admin notice
        [notice] = sink.messages()
        assert notice["To"] == "ops@example.org" and "C0GONE is disabled" in str(notice["Subject"])

        plan(store, channel="slack", address="C0GONE", key="digest:slack:gone:2026-11-24")
        assert await deliver(config, store, NOW + timedelta(minutes=2)) == ["failed"]  # not posted again
        assert len(slack.requests) == 1


async def test_too_old_to_be_useful_is_expired_not_sent(store: Store, tmp_path: Path) -> None:
    async with FaultySink(tmp_path / "mail") as sink:
        config = make_config(sink.port)
        plan(store)
        assert await deliver(config, store, NOW + timedelta(days=3)) == ["expired"]
        assert len(sink.messages()) == 0


async def test_empty_digest_is_skipped_unless_asked(store: Store, tmp_path: Path) -> None:
    async with FaultySink(tmp_path / "mail") as sink:
        config = make_config(sink.port)
        store.plan([PlannedDelivery(key="digest:email:ada:2026-11-23", kind="digest", channel="email",
                                    recipient="ada", address="ada@example.org", period_key="2026-11-23",
                                    payload=Payload(profiles=("p",)),
                                    message_id="<e@example.org>", covers_until=NOW)], now=NOW)
        assert await deliver(config, store, NOW) == ["skipped"]
        assert len(sink.messages()) == 0


async def test_send_empty_sends_a_short_all_clear(store: Store, tmp_path: Path) -> None:
    async with FaultySink(tmp_path / "mail") as sink:
        config = make_config(sink.port)
        store.plan([PlannedDelivery(key="digest:email:ada:2026-11-23", kind="digest", channel="email",
                                    recipient="ada", address="ada@example.org", period_key="2026-11-23",
                                    payload=Payload(profiles=("p",), send_empty=True),
                                    message_id="<e@example.org>", covers_until=NOW)], now=NOW)
        assert await deliver(config, store, NOW) == ["sent"]
        body = sink.messages()[0].get_body(("plain",))
        assert body is not None and "every source was fetched fine" in body.get_content()


DEAD = "elsewhere/ns/4242/1"  # a holder on another machine: only its lease says when its rows are free again


async def test_rows_claimed_but_never_started_go_out_plainly_after_a_crash(store: Store, tmp_path: Path,
                                                                           caplog: pytest.LogCaptureFixture) -> None:
    """A process claims email and Slack rows and dies before starting them: nothing about them is in doubt, so
    once the lease is over both go out, once, with no warning (before, the Slack row lapsed to `unknown`)."""
    async with FaultySink(tmp_path / "mail") as sink, ScriptedSlack() as slack:
        config = make_config(sink.port, slack.base_url)
        plan(store)
        plan(store, channel="slack", address="C0PAPERS", key="digest:slack:papers:2026-11-23")
        claimed = store.claim(now=NOW, limit=10, lease=LEASE, owner=DEAD)  # ... and the process dies
        assert {d.state for d in claimed} == {"claimed"}
        assert await deliver(config, store, NOW + timedelta(minutes=1)) == []  # lease still held
        outcomes = await deliver(config, store, NOW + LEASE + timedelta(seconds=1))
        assert sorted(outcomes) == ["sent", "sent"]
        assert [m["Message-ID"] for m in sink.messages()] == ["<fixed-id@example.org>"]
        assert len(slack.posts) == 1
        assert "lease lapsed" not in caplog.text


async def test_email_whose_send_had_started_goes_again_with_its_message_id(store: Store, tmp_path: Path,
                                                                           caplog: pytest.LogCaptureFixture) -> None:
    async with FaultySink(tmp_path / "mail") as sink:
        config = make_config(sink.port)
        plan(store)
        (row,) = store.claim(now=NOW, limit=10, lease=LEASE, owner=DEAD)
        assert store.begin_send(row.id, owner=DEAD, now=NOW, lease=LEASE)  # ... and the process dies mid-send
        assert await deliver(config, store, NOW + LEASE + timedelta(seconds=1)) == ["sent"]
        assert [m["Message-ID"] for m in sink.messages()] == ["<fixed-id@example.org>"]
        assert "same Message-ID <fixed-id@example.org>" in caplog.text
        assert store.deliveries()[0].attempts == 2


@pytest.mark.parametrize("posted", [True, False])
async def test_slack_post_in_doubt_is_looked_for_in_the_channel_before_posting(store: Store, posted: bool) -> None:
    """A Slack row whose post had started when its process died: digestbot reads the channel's history for the
    metadata its posts carry. Found: recorded as sent, not posted again. Not found: posted, once."""
    async with ScriptedSlack() as slack:
        config = make_config(slack_url=slack.base_url)
        plan(store, channel="slack", address="C0PAPERS", key="digest:slack:papers:2026-11-23")
        (row,) = store.claim(now=NOW, limit=10, lease=LEASE, owner=DEAD)
        assert store.begin_send(row.id, owner=DEAD, now=NOW, lease=LEASE)
        if posted:  # the dead process's post reached Slack before it died
            deliverer = Deliverer(config, store, Renderer())
            message = Renderer().render_slack(digest_for(store, row, config=config, secret=None))[0]
            await deliverer._slack_notifier().post("C0PAPERS", message, tag=(row.key, 0))
        assert await deliver(config, store, NOW + LEASE + timedelta(seconds=1)) == ["sent"]
        assert len(slack.posts) == 1
        assert [r.method for r in slack.requests] == (["chat.postMessage", "conversations.history"] if posted
                                                       else ["conversations.history", "chat.postMessage"])
        assert slack.posts[0].body["metadata"] == {"event_type": "digestbot_post",
                                                   "event_payload": {"key": row.key, "part": 0}}
        assert states(store) == ["sent"]


@pytest.mark.parametrize("where", ["no history scope", "webhook"])
async def test_slack_post_in_doubt_that_cannot_be_checked_is_unknown_and_the_admin_told(
        store: Store, tmp_path: Path, where: str, monkeypatch: pytest.MonkeyPatch) -> None:
    async with FaultySink(tmp_path / "mail") as sink, ScriptedSlack() as slack:
        slack.history_scope = False
        monkeypatch.setenv("TEST_WEBHOOK", slack.webhook_url())
        config = make_config(sink.port, slack.base_url, admin_email="admin@example.org")
        address = "webhook:TEST_WEBHOOK" if where == "webhook" else "C0PAPERS"
        plan(store, channel="slack", address=address, key="digest:slack:papers:2026-11-23")
        (row,) = store.claim(now=NOW, limit=10, lease=LEASE, owner=DEAD)
        assert store.begin_send(row.id, owner=DEAD, now=NOW, lease=LEASE)
        later = NOW + LEASE + timedelta(seconds=1)
        assert await deliver(config, store, later) == ["unknown"]
        assert slack.posts == []  # never posted again blindly
        (unknown,) = store.deliveries(states={"unknown"})
        assert "lease lapsed" in (unknown.last_error or "")
        assert ("missing_scope" in (unknown.last_error or "")) == (where != "webhook")
        assert await deliver(config, store, later) == ["sent"]  # the admin notice
        (notice,) = sink.messages()
        assert notice["To"] == "admin@example.org" and "may or may not have gone out" in notice["Subject"]


async def test_two_healthy_processes_never_send_the_same_mail_when_a_batch_outlives_the_lease(
        store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A slow relay (0.4 s a message, one connection) makes process A's batch last ~2.4 s with a 0.5 s lease.
    A renews its lease while the batch is alive, so process B, delivering every 0.1 s, never takes A's queued
    rows; and had it taken one, A would not send it (only the holder starts a send)."""

    from bot.outbox import deliver as delivery

    monkeypatch.setattr(delivery, "LEASE", timedelta(seconds=0.5))
    monkeypatch.setattr(delivery, "RENEW_EVERY", 0.1)

    async with SlowRelay(tmp_path / "mail", seconds=0.4) as sink:
        config = one_connection(sink.port)
        plan_now(store, 6)
        first, second = Deliverer(config, store, Renderer()), Deliverer(config, store, Renderer())
        first.owner, second.owner = "process-a", "process-b"
        batch = asyncio.create_task(first.deliver_due(now=datetime.now(UTC)))
        taken_by_b = []
        while not batch.done():
            await asyncio.sleep(0.1)
            taken_by_b += await second.deliver_due(now=datetime.now(UTC))
        assert [o.status for o in await batch] == ["sent"] * 6
        assert taken_by_b == []
        received = sorted(str(m["To"]) for m in sink.messages())
        assert received == [f"r{i}@example.org" for i in range(6)]  # each once


async def test_a_stopped_batch_gives_back_at_once_what_it_had_not_started(store: Store, tmp_path: Path) -> None:
    """Cancelled mid-batch (what a daemon's shutdown does to a cycle that outlives the drain): the rows it had
    not started are pending again at once, for any process; only the one in flight stays in doubt."""

    async with SlowRelay(tmp_path / "mail", seconds=2) as sink:
        config = one_connection(sink.port)
        now = plan_now(store, 4)
        batch = asyncio.create_task(Deliverer(config, store, Renderer()).deliver_due(now=now))
        while not store.deliveries(states={"sending"}):
            await asyncio.sleep(0.05)
        batch.cancel()
        with pytest.raises(asyncio.CancelledError):
            await batch
        assert sorted(d.state for d in store.deliveries()) == ["pending", "pending", "pending", "sending"]
        again = store.claim(now=now, limit=10, lease=timedelta(minutes=2), owner="another")
        assert len(again) == 3  # at once, without waiting for a lease


async def test_a_cycle_delivers_everything_due_in_batches_each_once(store: Store, tmp_path: Path) -> None:
    """A morning bigger than a batch (it used to send 200 and leave the rest for later ticks): every row goes out
    in this call, each exactly once, in batches of the size given."""
    async with FaultySink(tmp_path / "mail") as sink:
        config = make_config(sink.port)
        now = plan_now(store, 23)
        seen: list[int] = []
        outcomes = await Deliverer(config, store, Renderer()).deliver_all(
            now=now, batch=5, on_outcome=lambda outcome, total: seen.append(total))
        assert [o.status for o in outcomes] == ["sent"] * 23
        assert sorted(str(m["To"]) for m in sink.messages()) == sorted(f"r{i}@example.org" for i in range(23))
        assert seen[-1] == 23  # the progress total counts every batch so far


class BrokenFor(Renderer):
    """A renderer with a bug that only one reader's digest hits (a template error, say)."""

    def __init__(self, recipient: str) -> None:
        super().__init__()
        self.recipient = recipient

    def render_email(self, digest: Digest) -> RenderedEmail:
        if digest.recipient == self.recipient:
            raise ValueError("unexpected '}' in template")
        return super().render_email(digest)

    def render_slack(self, digest: Digest) -> list[SlackMessage]:
        if digest.recipient == self.recipient:
            raise ValueError("unexpected '}' in template")
        return super().render_slack(digest)


@pytest.mark.parametrize("channel", ["email", "slack"])
async def test_a_digest_that_cannot_be_rendered_fails_alone_and_the_admin_is_told(
        store: Store, tmp_path: Path, channel: str) -> None:
    """One reader's digest hitting a rendering bug used to raise out of the batch: nobody else got theirs, and
    the next cycle claimed it first and failed the same way. Now it fails alone, with the error, and says so."""
    async with FaultySink(tmp_path / "mail") as sink, ScriptedSlack() as slack:
        config = make_config(sink.port, slack.base_url, admin_email="admin@example.org")
        now = datetime.now(UTC)
        payload = Payload.from_json({"items": seed(store, 1), "total_matched": 1, "since": None, "profiles": ["p"]})
        store.plan([PlannedDelivery(key=f"digest:{channel}:r{i}", kind="digest", channel=channel, recipient=f"r{i}",
                                    address=f"r{i}@example.org" if channel == "email" else f"C{i}",
                                    period_key="today", payload=payload, message_id=f"<r{i}@example.org>")
                    for i in range(6)], now=now)
        outcomes = await Deliverer(config, store, BrokenFor("r3")).deliver_all(now=now)
        assert sorted(o.status for o in outcomes) == ["failed"] + ["sent"] * 5
        (failed,) = store.deliveries(states={"failed"})
        assert failed.recipient == "r3"
        assert failed.last_error == "could not be rendered: ValueError: unexpected '}' in template"
        got = ([str(m["To"]) for m in sink.messages()] if channel == "email"
               else [r.body["channel"] for r in slack.requests])
        assert sorted(got) == sorted(f"r{i}@example.org" if channel == "email" else f"C{i}"
                                     for i in range(6) if i != 3)

        assert await deliver(config, store, now + timedelta(minutes=1)) == ["sent"]  # the admin's notice
        notice = sink.messages()[-1]
        assert notice["To"] == "admin@example.org"
        assert "could not be written" in str(notice["Subject"])
        assert "unexpected '}' in template" in notice.get_body(("plain",)).get_content()  # type: ignore[union-attr]


async def test_a_stop_between_rows_finishes_what_is_in_flight_and_leaves_the_rest_claimable(
        store: Store, tmp_path: Path) -> None:
    """SIGTERM during a big morning: the send in flight finishes, nothing new starts, and every row not started
    is pending again at once, for this process's next start or another process."""
    async with SlowRelay(tmp_path / "mail", seconds=0.3) as sink:
        config = one_connection(sink.port)
        now = plan_now(store, 12)
        stop = asyncio.Event()
        deliverer = Deliverer(config, store, Renderer())
        run = asyncio.create_task(deliverer.deliver_all(now=now, batch=4, stop=stop))
        while not store.deliveries(states={"sending"}):
            await asyncio.sleep(0.02)
        stop.set()
        outcomes = await run
        assert [o.status for o in outcomes] == ["sent"]  # the one in flight
        assert sorted(d.state for d in store.deliveries()) == ["pending"] * 11 + ["sent"]
        assert len(store.claim(now=now, limit=20, lease=LEASE, owner="another")) == 11
        assert len(sink.messages()) == 1


async def test_mail_owed_to_an_address_that_unsubscribed_since_is_cancelled_not_sent(store: Store,
                                                                                      tmp_path: Path) -> None:
    """A digest planned, refused once with a 451 (so it waits in the outbox), then its reader unsubscribes: the
    retry must not go out (it did, in the fault run). Slack rows and admin notices are not affected."""
    async with FaultySink(tmp_path / "mail", "451 4.3.0 try again later") as sink:
        config = make_config(sink.port)
        plan(store)
        assert await deliver(config, store, NOW) == ["retry"]
        store.unsubscribe("Ada@Example.org", at=NOW + timedelta(minutes=1))
        assert await deliver(config, store, NOW + timedelta(hours=1)) == ["cancelled"]
        assert sink.messages() == []
        (row,) = store.deliveries()
        assert (row.state, row.last_error) == ("cancelled", "the reader unsubscribed before it was sent")
        assert store.requeue(row.id, now=NOW) is False  # not something to try again


async def test_list_unsubscribe_reaches_the_server_as_plain_angle_bracketed_uris(store: Store, tmp_path: Path) -> None:
    """Read from the raw bytes the SMTP server received, as Gmail and Yahoo read them: `List-Unsubscribe` must
    hold `<mailto:…>, <https://…>` as they are, not RFC 2047 encoded-words (which the email package made of any
    URI longer than a folded line), and the other structured headers too."""
    async with FaultySink(tmp_path / "mail") as sink:
        config = parse_config({
            "bot": {"public_url": "https://digest.example.org/papers", "admin_email": "admin@example.org"},
            "smtp": {"host": "127.0.0.1", "port": sink.port, "security": "none", "sender": "Paper digest "
                     "<digest@example.org>"},
            "profiles": {"p": {"keywords": ["DPO"]}},
        })
        plan(store, address="ada.lovelace-and-a-long-name@example.org")
        outcomes = await Deliverer(config, store, Renderer(), secret=b"k" * 32).deliver_due(now=NOW)
        assert [o.status for o in outcomes] == ["sent"]
        (path,) = sink.paths()
        raw = path.read_bytes()
    head = raw.split(b"\n\n", 1)[0].split(b"\r\n\r\n", 1)[0].decode("ascii")
    unfolded = re.sub(r"\r?\n[ \t]", " ", head)  # folding whitespace, as a reader of the header undoes it
    (unsubscribe,) = [line for line in unfolded.splitlines() if line.startswith("List-Unsubscribe:")]
    assert re.fullmatch(r"List-Unsubscribe: <mailto:admin@example\.org\?subject=unsubscribe%20\S+>, "
                        r"<https://digest\.example\.org/papers/unsubscribe/[A-Za-z0-9._-]+>", unsubscribe), unsubscribe
    assert "List-Unsubscribe-Post: List-Unsubscribe=One-Click" in unfolded.splitlines()
    for name in ("List-Unsubscribe", "List-Id", "Message-ID", "From", "To"):
        (line,) = [x for x in unfolded.splitlines() if x.startswith(f"{name}:")]
        assert "=?" not in line, line


async def test_a_missing_token_holds_the_post_tells_the_admin_and_disables_nothing(
        store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """SLACK_BOT_TOKEN unset: the digest waits (no attempt counted), the admin is told once, and once the variable
    is set the post goes out. It used to fail the digest and disable the channel until `outbox retry`."""
    monkeypatch.delenv("TEST_SLACK_TOKEN")
    async with FaultySink(tmp_path / "mail") as sink, ScriptedSlack() as slack:
        config = make_config(sink.port, slack.base_url, admin_email="admin@example.org")
        plan(store, channel="slack", address="C0PAPERS", key="digest:slack:papers:2026-11-23")
        assert await deliver(config, store, NOW) == ["retry"]  # held, and the admin notice planned
        assert await deliver(config, store, NOW + timedelta(minutes=1)) == ["sent"]  # the notice; the post waits
        assert await deliver(config, store, NOW + timedelta(minutes=6)) == ["retry"]  # told once a day, not again
        (notice,) = sink.messages()
        assert "a secret is not set" in str(notice["Subject"])
        body = notice.get_body(("plain",))
        assert body is not None and "TEST_SLACK_TOKEN (slack.token_env) is not set" in body.get_content()
        (held,) = [d for d in store.deliveries() if d.channel == "slack"]
        assert (held.state, held.attempts) == ("pending", 0)
        assert store.disabled_destinations() == {}
        monkeypatch.setenv("TEST_SLACK_TOKEN", "xoxb-test")
        assert await deliver(config, store, NOW + timedelta(minutes=12)) == ["sent"]
        assert len(slack.posts) == 1


def test_each_kind_of_delivery_error_has_one_outcome() -> None:
    """The error tree (bot.errors) and the one table that maps it to the row's next state."""
    from bot.errors import (
        AuthFailed,
        DeliveryError,
        DestinationGone,
        MaybeSent,
        Permanent,
        Retryable,
        SessionRefused,
        UnknownOutcome,
    )
    from bot.outbox.deliver import OUTCOMES

    def outcome(kind: type[DeliveryError]) -> str:
        return next(state for cls, state in OUTCOMES if issubclass(kind, cls))

    assert {kind.__name__: outcome(kind) for kind in (Retryable, MaybeSent, SessionRefused, Permanent, AuthFailed,
                                                       DestinationGone, UnknownOutcome)} == {
        "Retryable": "retry", "MaybeSent": "retry", "SessionRefused": "retry", "Permanent": "failed",
        "AuthFailed": "failed", "DestinationGone": "failed", "UnknownOutcome": "unknown"}
    assert SessionRefused.stop_batch and AuthFailed.stop_batch and not Retryable.stop_batch
    assert DestinationGone.disable_destination and MaybeSent.unknown and not Permanent.retry
