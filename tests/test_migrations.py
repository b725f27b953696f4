"""Migrations on databases made by the previous release: what it stored is carried over, on SQLite and PostgreSQL.

The previous release's schema is migration 0004 (migrations never change once released); its rows are written
here the way that release wrote them, then `Store.open` migrates to head as an upgrade would.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, inspect, text

from bot.outbox.model import State
from bot.store import Store
from bot.store.engine import MIGRATIONS_DIR, create_store_engine

NOW = datetime.now(UTC).replace(microsecond=0)
KEY = "digest:slack:team:2026-11-23"
OLD_META = {
    "first-seen:email:ana": (NOW - timedelta(days=3)).isoformat(),
    "first-seen:slack:#ml:team": (NOW - timedelta(days=2)).isoformat(),  # a Slack label may hold a colon
    "disabled:slack:webhook:HOOK": "invalid_token",
    "disabled:email:bo@example.org": "",  # re-enabled by `digestbot outbox retry`: not disabled
    f"slack-parts-sent:{KEY}": "2",
    "admin-notified:lg": "never",
    "admin-notified:ok": "",
    "host-not-before": json.dumps({"arxiv.org": (NOW + timedelta(hours=1)).isoformat(),
                                   "old.example.org": (NOW - timedelta(hours=1)).isoformat()}),
    "unsubscribe-secret": "ab" * 32,
    "last_cycle": NOW.isoformat(),
    "configured-addresses": "[\"ana@example.org\"]",  # written by an older release, read by none
}


def alembic(engine: Engine, action: str, revision: str) -> None:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        getattr(command, action)(config, revision)


@pytest.fixture
def previous_release(db_url: str) -> Iterator[str]:
    """A database at migration 0004 holding what that release stored."""
    engine = create_store_engine(db_url)
    try:
        alembic(engine, "upgrade", "0004")
        with engine.begin() as connection:
            connection.execute(text("INSERT INTO sources (name, consecutive_failures) VALUES ('lg', 4), ('ok', 0)"))
            connection.execute(text(
                "INSERT INTO deliveries (key, kind, channel, recipient, address, period_key, payload, message_id, "
                "state, attempts, next_attempt_at, created_at, updated_at) VALUES (:key, 'digest', 'slack', 'team', "
                "'#ml', '2026-11-23', :payload, '<m@x>', 'pending', 1, :now, :now, :now)"),
                {"key": KEY, "payload": json.dumps({"items": [], "total_matched": 0, "profiles": ["p"]}),
                 "now": NOW.replace(tzinfo=None) if engine.dialect.name == "sqlite" else NOW})
            for key, value in OLD_META.items():
                connection.execute(text("INSERT INTO meta (key, value) VALUES (:k, :v)"), {"k": key, "v": value})
        yield db_url
    finally:
        engine.dispose()


def test_upgrade_carries_every_kind_of_state_over(previous_release: str) -> None:
    with Store.open(previous_release) as store:
        assert store.first_met() == {("email", "ana"): NOW - timedelta(days=3),
                                     ("slack", "#ml:team"): NOW - timedelta(days=2)}
        assert store.disabled_destinations() == {("slack", "webhook:HOOK"): "invalid_token"}
        (row,) = store.deliveries()
        assert (row.key, row.parts_sent, row.state) == (KEY, 2, State.PENDING)
        assert store.get_source_state("lg").notified_streak == "never"
        assert store.get_source_state("ok").notified_streak is None
        assert store.host_holds() == {"arxiv.org": NOW + timedelta(hours=1)}  # the lapsed one is not kept
        assert (store.secret(), store.last_cycle()) == ("ab" * 32, NOW)
        tables = set(inspect(store._engine).get_table_names())  # noqa: SLF001 - the schema itself is the subject
    assert "meta" not in tables and {"recipients", "disabled_destinations", "host_holds", "bot_state"} <= tables


def test_downgrade_writes_the_keys_back(previous_release: str) -> None:
    Store.open(previous_release).close()
    engine = create_store_engine(previous_release)
    try:
        alembic(engine, "downgrade", "0004")
        with engine.connect() as connection:
            meta = {str(k): str(v) for k, v in connection.execute(text("SELECT key, value FROM meta"))}
    finally:
        engine.dispose()
    dropped = {"disabled:email:bo@example.org", "admin-notified:ok", "configured-addresses", "host-not-before"}
    assert {k: v for k, v in meta.items() if k != "host-not-before"} == {
        k: v for k, v in OLD_META.items() if k not in dropped}
    assert json.loads(meta["host-not-before"]) == {"arxiv.org": (NOW + timedelta(hours=1)).isoformat()}
