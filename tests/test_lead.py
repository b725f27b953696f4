"""The scheduler lead: one leader per database (per schema on PostgreSQL), handed over when the leader goes.

On PostgreSQL: only one of two contenders leads, a release or a killed leader lets the other in on its next
try, a dropped connection is noticed and healed, schemas do not share a leader. On SQLite: a second process on
the same file is refused with a message naming the file and the holder's pid, and a killed holder frees it.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from bot.lead import AlwaysLeader, Leadership, LeadHeldError, PgLeadership, SqliteLeadership, lock_key
from tests.conftest import PG_ENV, _pg_schema_url

ROOT = Path(__file__).resolve().parent.parent

# A child process that takes the lead (or the SQLite lock), says so, and sleeps until killed.
HOLDER = """
import sys, time
from bot.lead import Leadership
lead = Leadership.for_url(sys.argv[1], purpose=sys.argv[2])
assert lead.try_lead(), "the child could not take the lead"
print("held", flush=True)
time.sleep(120)
"""


def pg_base() -> str:
    base = os.environ.get(PG_ENV)
    if not base:
        pytest.skip(f"{PG_ENV} is not set")
    return base


@pytest.fixture
def pg_url() -> Iterator[str]:
    yield from _pg_schema_url(pg_base())


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'state' / 'digestbot.sqlite3'}"


def start_holder(url: str, purpose: str = "run") -> subprocess.Popen[str]:
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, url, purpose], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if line.strip() != "held":
        proc.kill()
        _, stderr = proc.communicate(timeout=10)
        raise AssertionError(f"holder did not start: {line!r} {stderr}")
    return proc


def kill(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    for stream in (proc.stdout, proc.stderr):
        if stream is not None:
            stream.close()


def eventually(predicate: object, what: str, timeout: float = 10.0) -> float:
    """Seconds until predicate() was true."""
    assert callable(predicate)
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if predicate():
            return time.monotonic() - start
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


# --- PostgreSQL ----------------------------------------------------------------------------------------------

def test_pg_only_one_leads_and_a_release_hands_over(pg_url: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="bot.lead")
    with Leadership.for_url(pg_url) as first, Leadership.for_url(pg_url) as second:
        assert isinstance(first, PgLeadership)
        assert first.try_lead() is True
        assert second.try_lead() is False
        assert first.try_lead() is True  # holding is idempotent (the lock is not taken twice)
        assert second.try_lead() is False
        holder = second.holder_info()
        assert holder is not None and holder.pid == os.getpid() and holder.purpose == "run"
        assert "scheduler lead taken" in caplog.text

        first.release()
        assert first.leading is False
        assert second.try_lead() is True
        assert first.try_lead() is False

        second.close()  # closing the session frees the lock as well
        assert first.try_lead() is True


def test_pg_killed_leader_is_replaced_within_seconds(pg_url: str) -> None:
    proc = start_holder(pg_url)
    try:
        with Leadership.for_url(pg_url) as follower:
            assert follower.try_lead() is False
            holder = follower.holder_info()
            assert holder is not None and holder.pid == proc.pid
            proc.send_signal(signal.SIGKILL)
            took = eventually(follower.try_lead, "the follower to take the lead")
            assert took < 5.0
            now_held = follower.holder_info()
            assert now_held is not None and now_held.pid == os.getpid()
    finally:
        kill(proc)


def test_pg_dropped_connection_loses_the_lead_then_takes_it_again(pg_url: str,
                                                                  caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="bot.lead")
    admin = create_engine(pg_base(), isolation_level="AUTOCOMMIT")
    try:
        with Leadership.for_url(pg_url) as leader, Leadership.for_url(pg_url) as other:
            assert leader.try_lead() is True
            holder = other.holder_info()
            assert holder is not None and holder.backend_pid is not None
            with admin.connect() as connection:  # e.g. a PostgreSQL restart or a dead network path
                connection.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": holder.backend_pid})
            eventually(lambda: other.holder_info() is None, "the terminated session's lock to go")
            assert other.try_lead() is True  # the other process got there first
            assert leader.try_lead() is False  # the old leader notices, reconnects, and follows
            assert "scheduler lead lost" in caplog.text
            other.release()
            assert leader.try_lead() is True  # and leads again once the lock is free
    finally:
        admin.dispose()


def test_pg_schemas_do_not_share_a_leader() -> None:
    base = pg_base()
    first_urls, second_urls = _pg_schema_url(base), _pg_schema_url(base)
    first_url, second_url = next(first_urls), next(second_urls)
    try:
        with Leadership.for_url(first_url) as a, Leadership.for_url(second_url) as b:
            assert a.try_lead() is True
            assert b.try_lead() is True
            assert isinstance(a, PgLeadership) and isinstance(b, PgLeadership)
            assert a.key != b.key
    finally:
        for gen in (first_urls, second_urls):
            next(gen, None)  # drop the schema


def test_pg_unreachable_database_means_no_lead_and_no_exception(caplog: pytest.LogCaptureFixture) -> None:
    lead = Leadership.for_url("postgresql+psycopg://nobody@127.0.0.1:1/none")
    with lead:
        assert lead.try_lead() is False
        assert lead.try_lead() is False
    assert caplog.text.count("cannot reach the database") == 1  # once per outage, not once per tick


def test_lock_key_is_a_stable_signed_64_bit_value() -> None:
    key = lock_key("test", "public")
    assert key == lock_key("test", "public") != lock_key("test", "t_other")
    assert -(2**63) <= key < 2**63


# --- SQLite --------------------------------------------------------------------------------------------------

def test_sqlite_second_process_is_refused_with_the_file_and_pid(sqlite_url: str) -> None:
    database = sqlite_url.removeprefix("sqlite:///")
    with Leadership.for_url(sqlite_url) as first:
        assert isinstance(first, SqliteLeadership)
        assert first.try_lead() is True
        with pytest.raises(LeadHeldError) as refused:
            Leadership.for_url(sqlite_url)
        message = refused.value.message
        assert database in message and f"pid {os.getpid()}" in message and "`digestbot run`" in message
        assert "PostgreSQL" in refused.value.hint
    with Leadership.for_url(sqlite_url) as second:  # the first one closed: free again
        assert second.try_lead() is True


def test_sqlite_holder_killed_frees_the_file(sqlite_url: str) -> None:
    proc = start_holder(sqlite_url)
    try:
        with pytest.raises(LeadHeldError, match=f"pid {proc.pid}"):
            Leadership.for_url(sqlite_url, purpose="once", wait=5.0)  # a daemon holds it: no waiting
        probe = SqliteLeadership(Path(sqlite_url.removeprefix("sqlite:///")))
        holder = probe.holder_info()
        assert holder is not None and holder.pid == proc.pid and holder.purpose == "run"
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        assert probe.holder_info() is None
        with Leadership.for_url(sqlite_url) as lead:
            assert lead.try_lead() is True
    finally:
        kill(proc)


def test_sqlite_once_waits_for_another_once(sqlite_url: str) -> None:
    first = Leadership.for_url(sqlite_url, purpose="once")
    timer = threading.Timer(0.5, first.close)
    timer.start()
    try:
        started = time.monotonic()
        with Leadership.for_url(sqlite_url, purpose="once", wait=10.0) as second:
            assert second.try_lead() is True
        assert 0.3 < time.monotonic() - started < 5.0
        first = Leadership.for_url(sqlite_url, purpose="once")
        with pytest.raises(LeadHeldError, match="`digestbot once`"):
            Leadership.for_url(sqlite_url, purpose="once", wait=0.3)  # and gives up after `wait`
    finally:
        timer.cancel()
        first.close()


def test_sqlite_in_memory_always_leads() -> None:
    with Leadership.for_url("sqlite://") as a, Leadership.for_url("sqlite:///:memory:") as b:
        assert isinstance(a, AlwaysLeader) and isinstance(b, AlwaysLeader)
        assert a.try_lead() and b.try_lead()
