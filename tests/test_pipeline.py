"""Planning on a real store: one digest per recipient and period, covering exactly what is new since the last.

The clock is an argument, so these walk time the way `digestbot once --now` does.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from bot.config import Config, parse_config
from bot.models import Item
from bot.outbox.model import PlannedDelivery
from bot.outbox.plan import plan_deliveries
from bot.scoring import compile_profiles
from bot.store import Store
from bot.store import deliveries as outbox


def config(**subscriber: Any) -> Config:
    sub = {"name": "ada", "email": "ada@example.org", "profiles": ["rlhf"], "schedule": "daily 07:00",
           "timezone": "Europe/Berlin", "max_items": 5, **subscriber}
    return parse_config({
        "smtp": {"host": "127.0.0.1", "sender": "digest@example.org"},
        "profiles": {"rlhf": {"keywords": ["DPO", "reward model"], "exclude": ["recommendation"]}},
        "subscribers": [sub],
    })


def item(n: int, title: str, abstract: str = "") -> Item:
    return Item(id=f"arxiv:2611.{n:05d}", title=title, url=f"https://arxiv.org/abs/2611.{n:05d}", abstract=abstract)


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


def plan(cfg: Config, store: Store, now: datetime) -> list[str]:
    corpus = store.items_first_seen_between(now - timedelta(days=30), now)
    return plan_deliveries(cfg, store, compile_profiles(cfg.profiles, corpus=corpus), now=now).planned


def payload_ids(store: Store, key: str) -> list[str]:
    rows = [d for d in store.deliveries() if d.key == key]
    assert len(rows) == 1
    return rows[0].payload.item_ids


def test_one_digest_per_day_covering_only_what_is_new(store: Store) -> None:
    cfg = config()
    assert plan(cfg, store, at("2026-11-22T20:00:00+01:00")) == []  # first meeting: nothing due yet
    store.save_items("s", [item(1, "DPO at scale"), item(2, "Vision transformers")],
                     seen_at=at("2026-11-22T21:00:00+01:00"))
    assert plan(cfg, store, at("2026-11-23T06:59:00+01:00")) == []
    assert plan(cfg, store, at("2026-11-23T07:00:00+01:00")) == ["digest:email:ada:2026-11-23"]
    assert payload_ids(store, "digest:email:ada:2026-11-23") == ["arxiv:2611.00001"]
    assert plan(cfg, store, at("2026-11-23T09:00:00+01:00")) == []  # same period: nothing more

    store.save_items("s", [item(3, "A reward model for code")], seen_at=at("2026-11-23T12:00:00+01:00"))
    assert plan(cfg, store, at("2026-11-24T07:01:00+01:00")) == ["digest:email:ada:2026-11-24"]
    assert payload_ids(store, "digest:email:ada:2026-11-24") == ["arxiv:2611.00003"]


def test_killed_at_0659_restarted_at_0900_gives_one_digest(store: Store) -> None:
    cfg = config()
    plan(cfg, store, at("2026-11-21T08:00:00+01:00"))
    assert plan(cfg, store, at("2026-11-22T07:00:00+01:00")) == ["digest:email:ada:2026-11-22"]
    store.save_items("s", [item(1, "DPO again")], seen_at=at("2026-11-23T06:30:00+01:00"))
    assert plan(cfg, store, at("2026-11-23T06:59:00+01:00")) == []
    # ... the process is down until 09:00 ...
    assert plan(cfg, store, at("2026-11-23T09:00:00+01:00")) == ["digest:email:ada:2026-11-23"]
    assert plan(cfg, store, at("2026-11-23T09:01:00+01:00")) == []


def test_down_two_days_gives_one_digest_covering_the_gap(store: Store) -> None:
    cfg = config()
    plan(cfg, store, at("2026-11-20T08:00:00+01:00"))
    assert plan(cfg, store, at("2026-11-21T07:00:00+01:00")) == ["digest:email:ada:2026-11-21"]
    store.save_items("s", [item(1, "DPO one")], seen_at=at("2026-11-21T12:00:00+01:00"))
    store.save_items("s", [item(2, "DPO two")], seen_at=at("2026-11-22T12:00:00+01:00"))
    # down from the 21st at noon until the 23rd at 10:00
    assert plan(cfg, store, at("2026-11-23T10:00:00+01:00")) == ["digest:email:ada:2026-11-23"]
    assert sorted(payload_ids(store, "digest:email:ada:2026-11-23")) == ["arxiv:2611.00001", "arxiv:2611.00002"]


def test_nothing_older_than_max_age(store: Store) -> None:
    cfg = config()
    plan(cfg, store, at("2026-11-01T08:00:00+01:00"))
    store.save_items("s", [item(1, "Old DPO")], seen_at=at("2026-11-01T12:00:00+01:00"))
    store.save_items("s", [item(2, "New DPO")], seen_at=at("2026-11-22T12:00:00+01:00"))
    assert plan(cfg, store, at("2026-11-23T07:30:00+01:00")) == ["digest:email:ada:2026-11-23"]
    assert payload_ids(store, "digest:email:ada:2026-11-23") == ["arxiv:2611.00002"]


def test_exclude_min_score_and_max_items(store: Store) -> None:
    cfg = config(max_items=2)
    plan(cfg, store, at("2026-11-22T08:00:00+01:00"))
    store.save_items("s", [item(1, "DPO for recommendation"), item(2, "DPO"), item(3, "DPO and a reward model"),
                           item(4, "Reward model"), item(5, "Unrelated")], seen_at=at("2026-11-22T12:00:00+01:00"))
    assert plan(cfg, store, at("2026-11-23T07:00:00+01:00")) == ["digest:email:ada:2026-11-23"]
    row = next(d for d in store.deliveries() if d.key == "digest:email:ada:2026-11-23")
    assert row.payload.total_matched == 3  # 1 vetoed by exclude, 5 matches nothing
    ids = row.payload.item_ids
    assert len(ids) == 2 and ids[0] == "arxiv:2611.00003"  # both terms beat one
    assert ids[1] in {"arxiv:2611.00002", "arxiv:2611.00004"}
    assert {r.term for r in row.payload.items[0].reasons} == {"DPO", "reward model"}


def test_alert_once_then_digest_marks_it(store: Store) -> None:
    cfg = config(alert_min_score=6.0)
    plan(cfg, store, at("2026-11-22T08:00:00+01:00"))
    store.save_items("s", [item(1, "DPO with a reward model", "DPO DPO reward model"), item(2, "reward model")],
                     seen_at=at("2026-11-22T12:00:00+01:00"))
    first = plan(cfg, store, at("2026-11-22T12:05:00+01:00"))
    assert len(first) == 1 and first[0].startswith("alert:email:ada:")
    assert payload_ids(store, first[0]) == ["arxiv:2611.00001"]
    assert plan(cfg, store, at("2026-11-22T12:10:00+01:00")) == []  # not alerted twice
    assert plan(cfg, store, at("2026-11-23T07:00:00+01:00")) == ["digest:email:ada:2026-11-23"]
    row = next(d for d in store.deliveries() if d.key == "digest:email:ada:2026-11-23")
    alerted = {e.id: e.alerted for e in row.payload.items}
    assert alerted == {"arxiv:2611.00001": True, "arxiv:2611.00002": False}


def test_an_unsubscribe_outlives_config_edits_and_only_an_explicit_resubscribe_undoes_it(store: Store) -> None:
    """An emptied config, the reader removed and added back: still unsubscribed (this used to subscribe everyone
    who had unsubscribed again, after a truncated config was restored). `digestbot resubscribe` or the reader's
    own button undoes it."""
    cfg = config(email="Ada@Example.org")
    plan(cfg, store, at("2026-11-22T08:00:00+01:00"))
    store.save_items("s", [item(1, "DPO")], seen_at=at("2026-11-22T12:00:00+01:00"))
    store.unsubscribe("ada@example.org", at=at("2026-11-22T13:00:00+01:00"))
    assert plan(cfg, store, at("2026-11-23T07:00:00+01:00")) == []
    assert plan(cfg, store, at("2026-11-24T07:00:00+01:00")) == []  # the config still lists ada: no matter
    without = parse_config({"smtp": {"host": "127.0.0.1", "sender": "digest@example.org"},
                            "profiles": {"rlhf": {"keywords": ["DPO"]}}})
    plan(without, store, at("2026-11-24T08:00:00+01:00"))  # ada is removed (or the file emptied) ...
    store.save_items("s", [item(2, "DPO two")], seen_at=at("2026-11-24T09:00:00+01:00"))
    assert plan(cfg, store, at("2026-11-25T07:00:00+01:00")) == []  # ... and back: still unsubscribed
    assert store.is_unsubscribed("ada@example.org")
    store.resubscribe("ada@example.org")
    assert plan(cfg, store, at("2026-11-26T07:00:00+01:00")) == ["digest:email:ada:2026-11-26"]


@pytest.mark.parametrize("tz", ["Europe/Berlin", "America/Los_Angeles", "Asia/Kolkata"])
def test_a_week_of_ticks_gives_seven_digests(store: Store, tz: str) -> None:
    cfg = config(timezone=tz, schedule="daily 02:30")
    now = at("2026-03-25T00:00:00+00:00")
    keys: list[str] = []
    while now < at("2026-04-02T00:00:00+00:00"):  # across Berlin's and after LA's DST change
        keys += plan(cfg, store, now)
        now += timedelta(minutes=20)
    assert len(keys) == len(set(keys))
    assert len(keys) in (7, 8)  # the first day may start after 02:30 local


def test_profile_max_items_caps_that_profile_in_the_digest(store: Store) -> None:
    cfg = parse_config({
        "smtp": {"host": "127.0.0.1", "sender": "digest@example.org"},
        "profiles": {"rlhf": {"keywords": ["DPO"], "max_items": 1}, "vision": {"keywords": ["CLIP"]}},
        "subscribers": [{"name": "ada", "email": "ada@example.org", "profiles": ["rlhf", "vision"],
                         "schedule": "daily 07:00", "timezone": "UTC"}],
    })
    plan(cfg, store, at("2026-11-22T08:00:00+00:00"))
    store.save_items("s", [item(1, "DPO one"), item(2, "DPO two"), item(3, "CLIP one"), item(4, "CLIP two")],
                     seen_at=at("2026-11-22T12:00:00+00:00"))
    assert plan(cfg, store, at("2026-11-23T07:00:00+00:00")) == ["digest:email:ada:2026-11-23"]
    row = next(d for d in store.deliveries() if d.key == "digest:email:ada:2026-11-23")
    profiles = sorted(e.profile for e in row.payload.items)
    assert profiles == ["rlhf", "vision", "vision"]


def test_a_paper_matching_two_of_a_readers_profiles_names_both_in_every_channel(store: Store) -> None:
    """It named only the best one in the email ("Matched (rlhf)"). One model: the payload keeps every profile of the
    recipient the paper passes (the score is the best one's), and email text, HTML and Slack all show them."""
    from bot.outbox.prepare import digest_for
    from bot.render import Renderer

    cfg = parse_config({
        "smtp": {"host": "127.0.0.1", "sender": "digest@example.org"},
        "slack": {"token_env": "SLACK_BOT_TOKEN"},
        "profiles": {"rlhf": {"keywords": ["DPO"]}, "vision": {"keywords": ["CLIP"]}},
        "subscribers": [{"name": "ada", "email": "ada@example.org", "profiles": ["rlhf", "vision"],
                         "schedule": "daily 07:00", "timezone": "UTC"}],
        "slack_channels": [{"channel": "C1", "profiles": ["vision", "rlhf"], "schedule": "daily 07:00"}],
    })
    plan(cfg, store, at("2026-11-22T08:00:00+00:00"))
    store.save_items("s", [item(1, "DPO and CLIP together"), item(2, "CLIP alone")],
                     seen_at=at("2026-11-22T12:00:00+00:00"))
    plan(cfg, store, at("2026-11-23T07:00:00+00:00"))
    rows = {d.channel: d for d in store.deliveries()}
    both = next(e for e in rows["email"].payload.items if e.id == "arxiv:2611.00001")
    assert (both.profile, both.also) == ("rlhf", ("vision",))  # ties: the profile first in [profiles]
    alone = next(e for e in rows["email"].payload.items if e.id == "arxiv:2611.00002")
    assert alone.also == ()
    renderer = Renderer()
    email = renderer.render_email(digest_for(store, rows["email"], config=cfg, secret=None))
    assert "Matched (rlhf, vision)" in email.text and ">rlhf, vision</span>" in email.html
    slack_digest = digest_for(store, rows["slack"], config=cfg, secret=None)
    slack = " ".join(str(m.blocks) for m in renderer.render_slack(slack_digest))
    assert "_DPO in title_ · rlhf, vision" in slack


def test_an_admin_notice_is_never_marked_told_without_being_in_the_outbox(store: Store,
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """The "told" marker and the notice row are written together: if writing the outbox fails (a crash, a full
    disk), the next pass plans the notice again, and once it is in, it is never planned twice."""
    cfg = parse_config({
        "bot": {"admin_email": "ops@example.org", "failure_threshold": 2},
        "smtp": {"host": "127.0.0.1", "sender": "digest@example.org"},
        "sources": [{"name": "lg", "kind": "arxiv_feed", "url": "https://rss.arxiv.org/rss/cs.LG"}],
        "profiles": {"rlhf": {"keywords": ["DPO"]}},
        "subscribers": [{"name": "ada", "email": "ada@example.org", "profiles": ["rlhf"]}],
    })
    now = at("2026-11-23T05:00:00+00:00")
    for hours in (0, 1):
        store.record_fetch_error("lg", at=now + timedelta(hours=hours), error="HTTP 500", next_due_at=None)

    def notices_fail(connection: Any, planned: Sequence[PlannedDelivery], now: datetime) -> list[str]:
        if any(p.kind == "notice" for p in planned):
            raise OSError("disk full")
        return real_plan(connection, planned, now)

    real_plan = outbox.plan
    monkeypatch.setattr(outbox, "plan", notices_fail)
    with pytest.raises(OSError, match="disk full"):
        plan(cfg, store, now + timedelta(hours=2))
    monkeypatch.undo()

    assert [k for k in plan(cfg, store, now + timedelta(hours=3)) if k.startswith("notice:")] == [
        "notice:email:source-failing:lg:never"]
    assert [k for k in plan(cfg, store, now + timedelta(hours=4)) if k.startswith("notice:")] == []
