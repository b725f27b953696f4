"""The store on real databases: SQLite always, PostgreSQL when DIGESTBOT_TEST_DATABASE_URL is set."""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import event, inspect, text

import bot.store
from bot.errors import StoreError, StoreUnreachable
from bot.models import Item
from bot.outbox.model import Payload, PayloadItem, PlannedDelivery
from bot.store import LEASE_LAPSED, AsyncStore, Store
from bot.store.engine import create_store_engine
from bot.store.schema import metadata

T0 = datetime(2026, 3, 2, 6, 0, tzinfo=UTC)
LEASE = timedelta(minutes=5)
OWNER, OTHER = "here/ns/101/1", "there/ns/202/2"  # holders of outbox rows (never judged gone: not this host)
TABLES = {"sources", "items", "deliveries", "recipients", "disabled_destinations", "host_holds", "bot_state",
          "unsubscribes", "alembic_version"}

HEAD = ScriptDirectory(str(Path(bot.store.__file__).parent / "migrations")).get_current_head()


def item(n: int | str, **fields: Any) -> Item:
    return Item(id=f"arxiv:2601.{n}", title=fields.pop("title", f"Paper {n}"), url=f"https://arxiv.org/abs/2601.{n}",
                **fields)


def planned(key: str, *, kind: str = "digest", recipient: str = "ana", channel: str = "email",
            item_ids: tuple[str, ...] = (), covers_until: datetime | None = None) -> PlannedDelivery:
    payload = Payload(items=tuple(PayloadItem(id=i, profile="p", score=1.5) for i in item_ids))
    return PlannedDelivery(key=key, kind=kind, channel=channel, recipient=recipient, address="ana@example.org",
                           period_key="2026-03-02", payload=payload,
                           message_id=f"<{key}@digestbot>", covers_until=covers_until)


def engine_of(store: Store) -> Any:
    return store._engine  # tests of the store itself may look inside


# -- opening and migrations --------------------------------------------------------------------------------


def test_open_migrates_empty_db_and_reopen_is_idempotent(db_url: str) -> None:
    store = Store.open(db_url)
    try:
        assert set(inspect(engine_of(store)).get_table_names()) >= TABLES
        store.save_items("s", [item(1)], seen_at=T0)
    finally:
        store.close()
    with Store.open(db_url) as again:
        assert again.item_count() == 1
        with engine_of(again).connect() as connection:
            assert connection.execute(text("SELECT version_num FROM alembic_version")).scalars().all() == [HEAD]


def test_migrations_match_schema_module(store: Store) -> None:
    with engine_of(store).connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        assert compare_metadata(context, metadata) == []


def test_sqlite_creates_missing_directory(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "digestbot.db"
    with Store.open(f"sqlite:///{path}") as store:
        assert store.item_count() == 0
    assert path.exists()


def open_together(url: str, openers: int) -> list[BaseException]:
    """`Store.open(url)` from `openers` threads released at once; what they raised."""
    errors: list[BaseException] = []
    stores: list[Store] = []
    barrier = threading.Barrier(openers)

    def open_one() -> None:
        barrier.wait()
        try:
            stores.append(Store.open(url))
        except BaseException as exc:  # collected, returned
            errors.append(exc)

    threads = [threading.Thread(target=open_one) for _ in range(openers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for store in stores:
        store.close()
    return errors


def test_concurrent_open_of_empty_db_migrates_once(db_url: str) -> None:
    assert open_together(db_url, 4) == []


def test_openers_creating_one_sqlite_file_together_all_open_it(tmp_path: Path) -> None:
    """Switching a new file to WAL needs it to itself, and SQLite says "locked" at once, busy timeout or not: the
    openers that lose the race must wait their turn, not fail (it failed about one race in four before)."""
    for trial in range(12):
        assert open_together(f"sqlite:///{tmp_path / f'new{trial}.db'}", 6) == [], trial


@pytest.mark.parametrize(("url", "needle"), [
    ("not a url", "invalid database URL"),
    ("nosuchdb://x/y", "no database driver"),
    ("postgresql+psycopg://nobody@127.0.0.1:1/none?connect_timeout=2", "database unreachable"),
])
def test_open_errors_are_store_errors_with_hints(url: str, needle: str) -> None:
    with pytest.raises(StoreError) as caught:
        Store.open(url)
    assert needle in caught.value.message
    assert caught.value.hint
    assert isinstance(caught.value, StoreUnreachable) == ("unreachable" in needle)  # what `run` waits for


def test_database_from_newer_version_is_refused(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    with Store.open(url) as store, engine_of(store).begin() as connection:
        connection.execute(text("UPDATE alembic_version SET version_num = '9999'"))
    with pytest.raises(StoreError, match="cannot migrate") as caught:
        Store.open(url)
    assert "newer digestbot" in caught.value.hint


def test_sqlite_writes_begin_immediate_and_reads_deferred(tmp_path: Path) -> None:
    with Store.open(f"sqlite:///{tmp_path / 'db.sqlite'}") as store:
        begins: list[str] = []

        @event.listens_for(engine_of(store), "before_cursor_execute")
        def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
            if statement.startswith("BEGIN"):
                begins.append(statement)

        store.set_last_cycle(T0)
        assert store.last_cycle() == T0
        assert begins == ["BEGIN IMMEDIATE", "BEGIN"]
        with engine_of(store).connect() as connection:
            assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
            assert connection.exec_driver_sql("PRAGMA busy_timeout").scalar() >= 5000


# -- items: the diff ---------------------------------------------------------------------------------------


def test_save_items_returns_only_new_items_in_input_order(store: Store) -> None:
    first = store.save_items("hf", [item(3), item(1)], seen_at=T0)
    assert [i.id for i in first] == ["arxiv:2601.3", "arxiv:2601.1"]
    assert store.save_items("hf", [item(3), item(1)], seen_at=T0 + timedelta(hours=1)) == []
    again = store.save_items("hf", [item(1), item(2), item(3)], seen_at=T0 + timedelta(hours=2))
    assert [i.id for i in again] == ["arxiv:2601.2"]
    assert store.item_count() == 3


def test_same_paper_from_another_source_is_not_new_but_refreshes(store: Store) -> None:
    store.save_items("hf", [item(1, metrics={"upvotes": 3}, abstract="")], seen_at=T0)
    seen_again = item(1, title="Another title", abstract="Now with abstract", metrics={"upvotes": 9, "comments": 2},
                      authors=("A. Author",))
    assert store.save_items("arxiv", [seen_again], seen_at=T0 + timedelta(hours=1)) == []
    stored = store.get_items(["arxiv:2601.1"])["arxiv:2601.1"]
    assert stored.metrics == {"upvotes": 9, "comments": 2}
    assert stored.abstract == "Now with abstract"
    assert stored.authors == ("A. Author",)
    assert stored.title == "Paper 1"  # the first title is kept: digests already sent show it
    assert stored.source == "hf"
    store.save_items("arxiv", [item(1, abstract="different")], seen_at=T0 + timedelta(hours=2))
    assert store.get_items(["arxiv:2601.1"])["arxiv:2601.1"].abstract == "Now with abstract"


def test_save_items_duplicates_in_one_batch_and_large_batches(store: Store) -> None:
    batch = [item(i) for i in range(450)] + [item(7, title="dup")]
    new = store.save_items("s", batch, seen_at=T0)
    assert len(new) == 450 and new[7].title == "Paper 7"
    assert store.save_items("s", batch, seen_at=T0 + timedelta(minutes=1)) == []
    assert len(store.get_items([i.id for i in batch])) == 450


def test_returned_and_stored_items_name_their_source(store: Store) -> None:
    (new,) = store.save_items("hf-daily", [item(1)], seen_at=T0)
    assert new.source == "hf-daily"
    assert store.get_items([new.id])[new.id].source == "hf-daily"


def test_items_first_seen_between_is_start_exclusive_end_inclusive(store: Store) -> None:
    for hour in range(4):
        store.save_items("s", [item(hour)], seen_at=T0 + timedelta(hours=hour))
    window = store.items_first_seen_between(T0, T0 + timedelta(hours=2))
    assert [i.id for i in window] == ["arxiv:2601.1", "arxiv:2601.2"]
    assert len(store.items_first_seen_between(None, T0 + timedelta(hours=3))) == 4
    assert store.items_first_seen_between(T0 + timedelta(hours=3), T0 + timedelta(days=1)) == []


HOSTILE = "Robert'); DROP TABLE items;-- \"quoted\" \\back\\slash\r\nBcc: a@evil\n\ttab ☃ 𝔘𝔫𝔦 مرحبا <script>&amp;"


def test_hostile_text_round_trips_exactly(store: Store) -> None:
    hostile = item(1, title=HOSTILE, abstract=HOSTILE * 3, authors=(HOSTILE, "Zoë"), section=HOSTILE)
    (new,) = store.save_items("s", [hostile], seen_at=T0)
    assert new == dataclasses.replace(hostile, source="s")
    stored = store.get_items([hostile.id])[hostile.id]
    assert (stored.title, stored.abstract, stored.authors, stored.section) == (
        HOSTILE, HOSTILE * 3, (HOSTILE, "Zoë"), HOSTILE)


def test_nul_characters_are_dropped_not_fatal(store: Store) -> None:
    (new,) = store.save_items("s", [item(1, title="a\x00b", authors=("c\x00",))], seen_at=T0)
    assert (new.title, new.authors) == ("ab", ("c",))
    assert store.get_items([new.id])[new.id].title == "ab"


def test_timestamps_come_back_aware_utc(store: Store) -> None:
    paris = timezone(timedelta(hours=1))
    seen = datetime(2026, 3, 2, 7, 30, 15, 123456, tzinfo=paris)
    store.save_items("s", [item(1, published=datetime(2026, 3, 1, 12, 0))], seen_at=seen)
    stored = store.get_items(["arxiv:2601.1"])["arxiv:2601.1"]
    assert stored.published == datetime(2026, 3, 1, 12, 0, tzinfo=UTC)  # naive published: taken as UTC
    assert stored.published is not None and stored.published.tzinfo == UTC
    store.record_fetch_ok("s", at=seen, etag=None, last_modified=None, item_count=1, next_due_at=seen)
    state = store.get_source_state("s")
    assert state.last_fetch_at == seen and state.last_fetch_at is not None
    assert state.last_fetch_at.utcoffset() == timedelta(0) and state.last_fetch_at.tzinfo == UTC
    assert [i.id for i in store.items_first_seen_between(None, seen)] == ["arxiv:2601.1"]


def test_naive_store_times_are_refused(store: Store) -> None:
    with pytest.raises(Exception, match="naive datetime"):
        store.save_items("s", [item(1)], seen_at=datetime(2026, 3, 2))


# -- sources -----------------------------------------------------------------------------------------------


def test_unknown_source_has_blank_state(store: Store) -> None:
    state = store.get_source_state("never")
    assert (state.name, state.etag, state.consecutive_failures, state.last_success_at) == ("never", None, 0, None)


def test_source_state_round_trip_and_failure_counting(store: Store) -> None:
    due = T0 + timedelta(hours=1)
    store.record_fetch_ok("hf", at=T0, etag='W/"abc"', last_modified="Mon, 02 Mar 2026 06:00:00 GMT",
                          item_count=40, next_due_at=due)
    store.record_fetch_error("hf", at=T0 + timedelta(hours=1), error="HTTP 503", next_due_at=due,
                             not_before=T0 + timedelta(hours=2))
    store.record_fetch_error("hf", at=T0 + timedelta(hours=2), error="timeout", next_due_at=due)
    state = store.get_source_state("hf")
    assert (state.etag, state.last_modified) == ('W/"abc"', "Mon, 02 Mar 2026 06:00:00 GMT")
    assert (state.consecutive_failures, state.last_error, state.failing) == (2, "timeout", True)
    assert (state.last_item_count, state.max_item_count, state.last_success_at) == (40, 40, T0)
    [health] = store.source_health(["hf"])
    assert (health.failing, health.consecutive_failures, health.last_error, health.last_success) == (
        True, 2, "timeout", T0)

    store.record_fetch_ok("hf", at=T0 + timedelta(hours=3), etag=None, last_modified=None, item_count=None,
                          not_modified=True, next_due_at=due)
    state = store.get_source_state("hf")
    assert (state.consecutive_failures, state.last_error, state.etag, state.last_item_count) == (0, None, 'W/"abc"', 40)
    store.record_fetch_ok("hf", at=T0 + timedelta(hours=4), etag=None, last_modified=None, item_count=12,
                          next_due_at=due)
    state = store.get_source_state("hf")
    assert (state.etag, state.last_item_count, state.max_item_count) == (None, 12, 40)


def test_first_fetch_failing_and_health_of_many(store: Store) -> None:
    store.record_fetch_error("rss", at=T0, error="x" * 5000, next_due_at=T0)
    store.record_fetch_ok("hf", at=T0, etag=None, last_modified=None, item_count=0, next_due_at=T0)
    health = store.source_health(["rss", "hf", "new"])
    assert [(h.name, h.failing) for h in health] == [("rss", True), ("hf", False), ("new", False)]
    assert health[0].last_error is not None and len(health[0].last_error) == 2000
    assert [s.name for s in store.source_states()] == ["hf", "rss"]


# -- outbox ------------------------------------------------------------------------------------------------


def test_plan_is_idempotent_by_key(store: Store) -> None:
    assert store.plan([planned("d:ana:email:2026-03-02"), planned("d:bo:email:2026-03-02")], now=T0) == [
        "d:ana:email:2026-03-02", "d:bo:email:2026-03-02"]
    assert store.plan([planned("d:ana:email:2026-03-02")], now=T0 + timedelta(hours=3)) == []
    assert store.plan([planned("a"), planned("a")], now=T0) == ["a"]
    assert len(store.deliveries()) == 3
    assert store.has_delivery("a") and not store.has_delivery("b")


def test_last_covered(store: Store) -> None:
    assert store.last_covered("ana", "email") is None
    store.plan([planned("d1", covers_until=T0), planned("d2", covers_until=T0 + timedelta(days=1)),
                planned("a1", kind="alert", covers_until=T0 + timedelta(days=5)),
                planned("s1", channel="slack", covers_until=T0 + timedelta(days=9))], now=T0)
    assert store.last_covered("ana", "email") == T0 + timedelta(days=1)
    assert store.last_covered("ana", "email", kind="alert") == T0 + timedelta(days=5)
    assert store.last_covered("ana", "slack") == T0 + timedelta(days=9)


def test_claim_is_exclusive_and_due_only(store: Store) -> None:
    store.plan([planned("d1")], now=T0)
    store.plan([planned("later")], now=T0 + timedelta(hours=1))
    (claimed,) = store.claim(now=T0, limit=10, lease=LEASE, owner=OWNER)
    assert (claimed.key, claimed.state, claimed.attempts, claimed.message_id) == ("d1", "claimed", 0, "<d1@digestbot>")
    assert claimed.claimed_by == OWNER
    assert claimed.payload == Payload()
    assert store.claim(now=T0, limit=10, lease=LEASE, owner=OWNER) == []


def test_claim_respects_limit_and_order(store: Store) -> None:
    store.plan([planned(f"k{i}") for i in range(5)], now=T0)
    first = store.claim(now=T0, limit=2, lease=LEASE, owner=OWNER)
    second = store.claim(now=T0, limit=10, lease=LEASE, owner=OWNER)
    assert [d.key for d in first] == ["k0", "k1"]
    assert [d.key for d in second] == ["k2", "k3", "k4"]


def test_expired_lease_is_reclaimed_and_only_a_started_send_is_in_doubt(store: Store) -> None:
    store.plan([planned("not-started"), planned("started")], now=T0)
    first = {d.key: d for d in store.claim(now=T0, limit=5, lease=LEASE, owner=OWNER)}
    assert store.begin_send(first["started"].id, owner=OWNER, now=T0, lease=LEASE)
    assert store.claim(now=T0 + LEASE, limit=5, lease=LEASE, owner=OTHER) == []  # holds at its last instant
    again = {d.key: d for d in store.claim(now=T0 + LEASE + timedelta(seconds=1), limit=5, lease=LEASE, owner=OTHER)}
    assert (again["not-started"].state, again["not-started"].attempts, again["not-started"].last_error) == (
        "claimed", 0, None)  # never started: no doubt about it
    assert (again["started"].attempts, again["started"].last_error) == (1, LEASE_LAPSED)
    assert again["started"].send_started_at is not None
    # the first holder lost both rows: it can neither start nor record them any more
    assert not store.begin_send(first["not-started"].id, owner=OWNER, now=T0, lease=LEASE)
    assert not store.mark_sent(first["started"].id, owner=OWNER, at=T0)
    assert store.mark_sent(first["started"].id, owner=OTHER, at=T0)


def test_rows_of_a_gone_holder_are_claimed_at_once(store: Store) -> None:
    store.plan([planned("a"), planned("b")], now=T0)
    store.claim(now=T0, limit=5, lease=LEASE, owner=OWNER)
    assert store.holders() == [OWNER]
    assert store.claim(now=T0, limit=5, lease=LEASE, owner=OTHER) == []
    assert {d.key for d in store.claim(now=T0, limit=5, lease=LEASE, owner=OTHER, gone=[OWNER])} == {"a", "b"}
    assert store.holders() == [OTHER]


def test_renew_and_release(store: Store) -> None:
    store.plan([planned("a"), planned("b"), planned("c")], now=T0)
    rows = {d.key: d for d in store.claim(now=T0, limit=5, lease=LEASE, owner=OWNER)}
    assert store.begin_send(rows["c"].id, owner=OWNER, now=T0, lease=LEASE)
    assert store.renew(owner=OWNER, until=T0 + 3 * LEASE) == 3
    assert store.claim(now=T0 + 2 * LEASE, limit=5, lease=LEASE, owner=OTHER) == []  # renewed: still held
    assert store.release(owner=OTHER, now=T0) == 0  # not its rows
    assert store.release(owner=OWNER, now=T0, ids=[rows["a"].id], next_attempt_at=T0 + LEASE) == 1
    assert store.release(owner=OWNER, now=T0) == 1  # "b"; "c" had started: it is not given back blindly
    states = {d.key: (d.state, d.attempts, d.claimed_by) for d in store.deliveries()}
    assert states == {"a": ("pending", 0, None), "b": ("pending", 0, None), "c": ("sending", 1, OWNER)}
    assert [d.key for d in store.claim(now=T0, limit=5, lease=LEASE, owner=OTHER)] == ["b"]  # "a" is due later


def test_concurrent_claims_never_share_a_row(open_store: Callable[[], Store]) -> None:
    store = open_store()
    store.plan([planned(f"k{i:03}") for i in range(60)], now=T0)
    workers = [open_store() for _ in range(4)]
    claimed: list[list[int]] = [[] for _ in workers]
    errors: list[BaseException] = []
    barrier = threading.Barrier(len(workers))

    def work(index: int) -> None:
        barrier.wait()
        try:
            while batch := workers[index].claim(now=T0, limit=3, lease=LEASE, owner=OWNER):
                claimed[index].extend(d.id for d in batch)
        except BaseException as exc:  # collected, asserted below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(workers))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    every = [i for ids in claimed for i in ids]
    assert len(every) == len(set(every)) == 60


def test_concurrent_saves_report_each_item_new_once(open_store: Callable[[], Store]) -> None:
    """Overlapping batches in different orders: each paper is new for exactly one writer, and no deadlock."""
    workers = [open_store() for _ in range(4)]
    batch = [item(i) for i in range(300)]
    batches = [batch, batch[::-1], batch[100:] + batch[:100], batch[::2] + batch[1::2]]
    results: list[list[Item]] = [[] for _ in workers]
    errors: list[BaseException] = []
    barrier = threading.Barrier(len(workers))

    def work(index: int) -> None:
        barrier.wait()
        try:
            for round_ in range(3):
                seen_at = T0 + timedelta(minutes=round_)
                results[index].extend(workers[index].save_items(f"s{index}", batches[index], seen_at=seen_at))
        except BaseException as exc:  # collected, asserted below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(workers))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    reported = [i.id for result in results for i in result]
    assert sorted(reported) == sorted(i.id for i in batch)


def test_mark_transitions(store: Store) -> None:
    store.plan([planned(k) for k in ("sent", "retry", "failed", "unknown", "expired")], now=T0)
    ids = {d.key: d.id for d in store.claim(now=T0, limit=10, lease=LEASE, owner=OWNER)}
    later = T0 + timedelta(minutes=1)
    assert store.begin_send(ids["retry"], owner=OWNER, now=T0, lease=LEASE)
    assert not store.mark_sent(ids["sent"], owner=OTHER, at=later)  # only the holder records an outcome
    assert store.mark_sent(ids["sent"], owner=OWNER, at=later)
    assert store.mark_retry(ids["retry"], owner=OWNER, error="421 try later",
                            next_attempt_at=T0 + timedelta(minutes=10))
    assert store.mark_failed(ids["failed"], owner=OWNER, error="550 no such user", at=later)
    assert store.mark_unknown(ids["unknown"], owner=OWNER, error="connection lost after DATA", at=later)
    assert store.mark_expired(ids["expired"], owner=OWNER, at=later)
    states = {d.key: (d.state, d.last_error) for d in store.deliveries()}
    assert states == {"sent": ("sent", None), "retry": ("pending", "421 try later"),
                      "failed": ("failed", "550 no such user"), "unknown": ("unknown", "connection lost after DATA"),
                      "expired": ("expired", "expired")}
    assert not store.mark_sent(ids["failed"], owner=OWNER, at=later)  # only a held row can be recorded
    assert store.claim(now=T0 + timedelta(minutes=9), limit=10, lease=LEASE, owner=OWNER) == []
    (retried,) = store.claim(now=T0 + timedelta(minutes=10), limit=10, lease=LEASE, owner=OWNER)
    assert (retried.key, retried.attempts, retried.next_attempt_at) == ("retry", 1, T0 + timedelta(minutes=10))
    assert [d.key for d in store.deliveries(states={"failed", "unknown"})] == ["unknown", "failed"]
    assert len(store.deliveries(limit=2)) == 2


def test_requeue(store: Store) -> None:
    store.plan([planned("f"), planned("p")], now=T0)
    failed, pending = store.claim(now=T0, limit=1, lease=LEASE, owner=OWNER)[0], store.deliveries(states={"pending"})[0]
    store.mark_failed(failed.id, owner=OWNER, error="550", at=T0)
    assert not store.requeue(pending.id, now=T0)  # only failed/unknown/expired rows
    later = T0 + timedelta(days=1)
    assert store.requeue(failed.id, now=later)
    assert store.claim(now=later - timedelta(seconds=1), limit=5, lease=LEASE, owner=OWNER)[0].key == "p"
    (again,) = store.claim(now=later, limit=5, lease=LEASE, owner=OWNER)
    assert (again.key, again.attempts, again.last_error) == ("f", 0, "requeued by hand; before: 550")


def test_alerted_item_ids(store: Store) -> None:
    store.plan([
        planned("a1", kind="alert", item_ids=("arxiv:1",)),
        planned("a2", kind="alert", item_ids=("arxiv:2", "arxiv:3")),
        planned("a3", kind="alert", item_ids=("arxiv:4",)),
        planned("d1", kind="digest", item_ids=("arxiv:5",)),
        planned("o1", kind="alert", recipient="bo", item_ids=("arxiv:6",)),
        planned("s1", kind="alert", channel="slack", item_ids=("arxiv:7",)),
    ], now=T0)
    claimed = {d.key: d.id for d in store.claim(now=T0, limit=10, lease=LEASE, owner=OWNER)}
    store.mark_failed(claimed["a3"], owner=OWNER, error="550", at=T0)
    assert store.alerted_item_ids("ana", "email") == {"arxiv:1", "arxiv:2", "arxiv:3"}


# -- recipients, destinations, host holds, the bot's state and unsubscribes -------------------------------


def test_bot_state_is_one_row(store: Store) -> None:
    assert store.last_cycle() is None and store.secret() is None
    store.set_last_cycle(T0)
    store.set_last_cycle(T0 + timedelta(hours=1))
    assert store.setdefault_secret("a" * 64) == "a" * 64
    assert store.setdefault_secret("b" * 64) == "a" * 64  # the first one stays
    assert (store.last_cycle(), store.secret()) == (T0 + timedelta(hours=1), "a" * 64)


def test_first_meeting_is_kept(store: Store) -> None:
    store.record_first_met({("email", "ana"): T0, ("slack", "#ml:team"): T0})
    store.record_first_met({("email", "ana"): T0 + timedelta(days=1), ("email", "bo"): T0 + timedelta(days=1)})
    assert store.first_met() == {("email", "ana"): T0, ("slack", "#ml:team"): T0,
                                 ("email", "bo"): T0 + timedelta(days=1)}


def test_disabled_destinations_and_host_holds(store: Store) -> None:
    store.disable_destination("slack", "webhook:HOOK", reason="invalid_token", at=T0)
    store.disable_destination("slack", "webhook:HOOK", reason="channel_not_found", at=T0)
    assert store.disabled_destinations() == {("slack", "webhook:HOOK"): "channel_not_found"}
    assert store.enable_destination("slack", "webhook:HOOK") and not store.enable_destination("slack", "x")
    assert store.disabled_destinations() == {}
    store.save_host_holds({"arxiv.org": T0, "huggingface.co": T0 + timedelta(minutes=5)})
    store.save_host_holds({"arxiv.org": T0 + timedelta(minutes=1)})
    assert store.host_holds() == {"arxiv.org": T0 + timedelta(minutes=1)}


def test_unsubscribes(store: Store) -> None:
    store.unsubscribe("Ana@Example.org ", at=T0)
    store.unsubscribe("ana@example.org", at=T0 + timedelta(days=1))
    assert store.is_unsubscribed("ANA@example.org") and not store.is_unsubscribed("bo@example.org")
    assert store.unsubscribed() == {"ana@example.org"}
    store.resubscribe("ana@EXAMPLE.org")
    assert store.unsubscribed() == set()


def test_plain_postgresql_url_uses_psycopg3() -> None:
    engine = create_store_engine("postgresql://someone@db.example/digestbot")
    try:
        assert engine.url.drivername == "postgresql+psycopg"
    finally:
        engine.dispose()


def test_payloads_written_by_earlier_releases_read_back() -> None:
    """Rows planned before the payload was typed stay readable: a notice, and an alert without `send_empty`."""
    notice = {"notice": {"kind": "source-failing", "title": "Source a is failing", "lines": ["x"],
                         "generated_at": "2026-03-02T07:00:00+00:00"}, "items": []}
    read = Payload.from_json(notice)
    assert read.notice is not None and read.notice.title == "Source a is failing" and read.items == ()
    alert = {"items": [{"id": "arxiv:1", "profile": "p", "score": 2.5, "alerted": False,
                        "reasons": [{"term": "DPO", "field": "title", "count": 1, "weight": 2.5}]}],
             "total_matched": 1, "since": "2026-03-01T07:00:00+00:00", "profiles": ["p"],
             "failing_sources": [{"name": "a", "consecutive_failures": 3, "last_error": "HTTP 500",
                                  "last_success": None}]}
    read = Payload.from_json(alert)
    assert read.item_ids == ["arxiv:1"] and read.items[0].reasons[0].kind == "keyword" and not read.send_empty
    assert read.failing_sources[0].consecutive_failures == 3 and read.since == datetime(2026, 3, 1, 7, tzinfo=UTC)
    again = Payload.from_json(read.to_json())
    assert again == read


async def test_async_store_runs_what_the_instance_has(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    """`AsyncStore.run(Store.x)` calls the store's own `x`: an instance's override (a benchmark's timer, a test's
    patch) applies as it would to a direct call; any other function gets the store as its first argument."""
    db = AsyncStore(store)
    assert await db.run(Store.item_count) == 0
    monkeypatch.setattr(store, "item_count", lambda: 42)
    assert await db.run(Store.item_count) == 42
    assert await db.run(lambda s, extra: s.item_count() + extra, 1) == 43
