"""Retention (`bot.retention`): what the daily pass deletes and what it keeps, on SQLite and PostgreSQL, and
digests exactly once across the prune boundary through real planning."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bot.config import Config, parse_config
from bot.errors import ConfigError
from bot.models import Item
from bot.outbox.model import Kind, Payload, PlannedDelivery, State
from bot.outbox.plan import plan_deliveries
from bot.retention import prune, prune_if_due
from bot.scoring import compile_profiles
from bot.store import Store

T0 = datetime(2026, 1, 1, 6, 0, tzinfo=UTC)
OWNER = "test-process"


def paper(i: int, title: str = "Agents that use tools") -> Item:
    return Item(id=f"arxiv:2601.{i:05d}", title=f"{title} {i}", url=f"https://arxiv.org/abs/2601.{i:05d}",
                abstract="Language model agents.")


def row(key: str, *, at: datetime, kind: Kind = Kind.DIGEST, recipient: str = "ada",
        covers: datetime | None = None) -> PlannedDelivery:
    payload = Payload.from_json({"items": [], "total_matched": 0, "since": None, "profiles": ["p"]})
    return PlannedDelivery(key=key, kind=kind, channel="email", recipient=recipient, address=f"{recipient}@x.org",
                           period_key=key, payload=payload, message_id=f"<{key}@x.org>",
                           covers_until=covers if kind != Kind.NOTICE else None)


def config(retention: str = "30d", **bot: object) -> Config:
    return parse_config({"bot": {"retention": retention, **bot},
                         "smtp": {"host": "localhost", "sender": "d@example.org"},
                         "profiles": {"agents": {"keywords": ["agents"]}},
                         "subscribers": [{"name": "ada", "email": "ada@example.org", "profiles": ["agents"],
                                          "schedule": "daily 07:00", "timezone": "UTC"}]})


def settle(store: Store, at: datetime, state: State = State.SENT) -> None:
    """Every pending row sent (or put in `state`), as a delivery would."""
    for claimed in store.claim(now=at, limit=1000, lease=timedelta(minutes=2), owner=OWNER):
        if state == State.SENT:
            store.mark_sent(claimed.id, owner=OWNER, at=at)
        elif state == State.UNKNOWN:
            store.mark_unknown(claimed.id, owner=OWNER, error="in doubt", at=at)


def test_old_final_outbox_rows_go_and_what_correctness_needs_stays(store: Store) -> None:
    old, recent = T0, T0 + timedelta(days=60)
    store.plan([row("digest:email:ada:d1", at=old, covers=old),
                row("digest:email:ada:d2", at=old, covers=old + timedelta(days=1)),  # ada's furthest digest
                row("alert:email:ada:a1", at=old, kind=Kind.ALERT, covers=old),
                row("notice:email:src", at=old, kind=Kind.NOTICE)], now=old)
    settle(store, old)
    store.plan([row("digest:email:bob:d1", at=old, recipient="bob", covers=old)], now=old)
    settle(store, old, State.UNKNOWN)  # in doubt: a person decides
    store.plan([row("digest:email:cyd:d1", at=old, recipient="cyd", covers=old)], now=old)  # still pending
    store.plan([row("digest:email:ada:d60", at=recent, covers=old + timedelta(days=1))], now=recent)
    deleted = store.prune_deliveries(recent - timedelta(days=30))
    kept = {d.key for d in store.deliveries(None, limit=100)}
    assert kept == {"digest:email:ada:d2", "alert:email:ada:a1", "digest:email:bob:d1", "digest:email:cyd:d1",
                    "digest:email:ada:d60"}
    assert deleted == 2  # ada's first digest and the old notice
    assert store.last_covered_all(Kind.DIGEST)[("ada", "email")] == old + timedelta(days=1)
    assert store.prune_deliveries(recent - timedelta(days=30)) == 0  # again: nothing more


def test_old_papers_go_with_their_embeddings_but_rated_library_and_still_listed_ones_stay(store: Store) -> None:
    store.save_items("src", [paper(i) for i in range(5)], seen_at=T0)
    later = T0 + timedelta(days=100)
    store.save_items("src", [paper(1)], seen_at=later)  # still on a source's page: last seen now
    store.rate("email", "ada", paper(2).id, "agents", 1, at=T0)
    from bot.models import ItemVector

    assert store.save_vectors([ItemVector(paper(0).id, b"h", b"\x00" * 8)], model="m") == 1
    deleted = store.prune_items(later - timedelta(days=30), keep={paper(3).id})
    assert deleted == 2
    assert sorted(store.get_items([paper(i).id for i in range(5)])) == [paper(i).id for i in (1, 2, 3)]
    assert store.get_vectors([paper(0).id], model="m") == {}


def test_the_pass_runs_once_a_day_whichever_process_asks(store: Store) -> None:
    cfg = config()
    assert prune_if_due(store, cfg, now=T0) is not None
    assert prune_if_due(store, cfg, now=T0 + timedelta(hours=23)) is None
    assert prune_if_due(store, cfg, now=T0 + timedelta(hours=24)) is not None
    assert store.last_pruned() == T0 + timedelta(hours=24)


def test_retention_shorter_than_what_is_owed_is_refused() -> None:
    for retention, max_age in (("3d", "7d"), ("10d", "14d")):
        with pytest.raises(ConfigError) as caught:
            config(retention, max_age=max_age)
        assert "bot: retention" in caught.value.problems[0] and "shorter than max_age" in caught.value.problems[0]
    assert config("7d").bot.retention_delta == timedelta(days=7)


def test_digests_are_exactly_once_across_the_prune_boundary(store: Store) -> None:
    """45 days of daily cycles with retention 7 days (the shortest allowed) and a pass every day: every day's
    digest carries exactly that day's papers, none twice, none lost, though the digests and papers they
    follow on from are long deleted."""
    cfg = config("7d", max_age="7d")
    seen: dict[str, str] = {}
    for day in range(45):
        now = T0 + timedelta(days=day)
        store.save_items("src", [paper(100 * day + i) for i in range(3)], seen_at=now - timedelta(hours=2))
        window = store.items_first_seen_between(now - timedelta(days=30), now)
        matcher = compile_profiles(cfg.profiles, corpus=window)
        plan_deliveries(cfg, store, matcher, now=now + timedelta(hours=1, minutes=5))
        settle(store, now + timedelta(hours=1, minutes=6))
        prune(store, cfg, now=now + timedelta(hours=2))
        if day == 0:
            continue  # the first meeting: no digest yet
        (latest,) = [d for d in store.deliveries(None, limit=5) if d.period_key == f"{now:%Y-%m-%d}"]
        got = [e.id for e in latest.payload.items]
        days = (0, 1) if day == 1 else (day,)  # the first digest covers what came since the meeting, too
        assert sorted(got) == sorted(paper(100 * d + i).id for d in days for i in range(3)), (day, got)
        for item_id in got:
            assert item_id not in seen, (day, item_id, seen.get(item_id))
            seen[item_id] = f"{now:%Y-%m-%d}"
    assert store.footprint().items <= 3 * 9  # a retention window's papers, not 45 days'
    assert len(store.deliveries(None, limit=100)) <= 9


def test_status_shows_the_database_size_and_the_oldest_row(tmp_path: Path) -> None:
    database = f"sqlite:///{tmp_path / 'bot.db'}"
    cfg = tmp_path / "config.toml"
    cfg.write_text(f'[bot]\ndatabase = "{database}"\nretention = "90d"\n[smtp]\nhost = "localhost"\n'
                   'sender = "d@example.org"\n[profiles.a]\nkeywords = ["agents"]\n'
                   '[[subscribers]]\nname = "ada"\nemail = "ada@example.org"\nprofiles = ["a"]\n')
    with Store.open(database) as store:
        store.save_items("src", [paper(1)], seen_at=T0)
    result = subprocess.run([sys.executable, "-m", "bot", "status", "--config", str(cfg), "--json"],
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    db = json.loads(result.stdout)["database"]
    assert db["bytes"] > 0 and db["items"] == 1 and db["oldest_item"].startswith("2026-01-01")
    assert db["retention"] == "90d" and db["last_pruned"] is None
    table = subprocess.run([sys.executable, "-m", "bot", "status", "--config", str(cfg)], capture_output=True,
                           text=True, timeout=60, check=False)
    assert "Database: " in table.stdout and "oldest row 2026-01-01 06:00 UTC" in table.stdout
