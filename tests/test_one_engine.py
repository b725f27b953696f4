"""One engine: a stored paper gets the same score and reasons for a profile in the digest, in an alert, in
`digestbot preview` and in `digestbot rank` over the same corpus.

Planning runs in-process as a cycle runs it (`App.matcher` + `plan_deliveries`); preview and rank run as the real
command in a subprocess. With the `semantic` extra installed, meaning takes part too (preview reads the vectors
the planning pass stored; rank embeds its items file itself), so the check covers that path as well.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from bot.app import App, scoring_corpus
from bot.config import load_config
from bot.outbox.model import PayloadItem
from bot.outbox.plan import plan_deliveries
from bot.scoring import load_items_jsonl, semantic
from bot.store import Store

SEED = Path(__file__).resolve().parent / "data" / "judged" / "seed_items_60.jsonl"
NOW = datetime(2026, 11, 24, 7, 5, tzinfo=UTC)
PROFILES = """
[profiles.rlhf]
description = "Preference-based training of language models: RLHF, PPO/GRPO for alignment, DPO and its variants, reward models, preference data, AI feedback."
keywords = ["RLHF", "reinforcement learning from human feedback", "DPO", "direct preference optimization", "preference optimization", "reward model", "human preferences", "preference data", "PPO", "GRPO", "RLAIF"]

[profiles.reasoning]
description = "Reasoning in large language models: chain-of-thought, math and logic reasoning, reinforcement learning with verifiable rewards, process reward models, test-time scaling, faithful reasoning."
keywords = ["reasoning", "chain-of-thought", "chain of thought", "CoT", "mathematical reasoning", "process reward model", "process supervision", "GRPO", "verifiable rewards", "test-time scaling", "long CoT", "reasoning model"]
"""  # noqa: E501 - two development profiles as their readers wrote them (bench/data/profiles_dev.toml)

Scores = dict[tuple[str, str], tuple[float, list[dict[str, Any]]]]  # (profile, id) → score, reasons


def digestbot(*args: str) -> str:
    result = subprocess.run([sys.executable, "-m", "bot", *args], capture_output=True, text=True, timeout=120,
                            check=False)
    assert result.returncode == 0, result.stderr
    return result.stdout


def write_config(tmp_path: Path, db_url: str) -> Path:
    config = tmp_path / "config.toml"
    config.write_text(f'''
[bot]
database = "{db_url}"

[smtp]
host = "127.0.0.1"
port = 9
sender = "digest@example.org"
{PROFILES}
[[subscribers]]
name = "ada"
email = "ada@example.org"
profiles = ["rlhf", "reasoning"]
schedule = "daily 07:00"
max_items = 100
alert_min_score = 8.0
''', encoding="utf-8")
    return config


def planned(config: Path) -> dict[str, Scores]:
    """Two planning passes as the cycle runs them: at 06:00 the planner meets the subscriber, at 07:05 the day's
    digest and an alert are owed. Returns each kind's (profile, id) → score and reasons, as the outbox froze them.

    Two thirds of the papers were stored ten days ago: older than the digest's window (`bot.max_age`, 7 days) but
    in the corpus that words' rarity and meaning's centre come from (30 days), so a command that scored against
    another corpus than planning does would disagree."""
    cfg = load_config(config)
    papers = load_items_jsonl(SEED)
    with Store.open(cfg.bot.database) as store:
        store.save_items("seed", papers[:40], seen_at=NOW - timedelta(days=10))
        store.save_items("seed", papers[40:], seen_at=NOW - timedelta(hours=3))
    out: dict[str, Scores] = {"digest": {}, "alert": {}}

    async def plan() -> None:
        async with App(cfg) as app:
            for now in (NOW - timedelta(minutes=65), NOW):
                plan_deliveries(cfg, app.store, app.matcher(now), now=now)
            for delivery in app.store.deliveries():
                for entry in map(PayloadItem.to_json, delivery.payload.items):
                    out[delivery.kind][(entry["profile"], entry["id"])] = (entry["score"], entry["reasons"])


    asyncio.run(plan())
    return out


def printed(stdout: str, profile: str | None = None) -> Scores:
    rows = [json.loads(line) for line in stdout.splitlines() if line.strip()]
    return {(profile or row["profile"], row["id"]): (row["score"], row["reasons"]) for row in rows}


@pytest.mark.timeout(300)  # three real commands, each loading the embedding model when the extra is installed
def test_digest_alert_preview_and_rank_agree_on_stored_items(tmp_path: Path, db_url: str) -> None:
    config = write_config(tmp_path, db_url)
    owed = planned(config)
    assert len(owed["digest"]) >= 10 and owed["alert"], "the slice should give a digest and an alert"
    now = NOW.isoformat()
    previewed: Scores = {}
    for profile in ("rlhf", "reasoning"):
        previewed.update(printed(digestbot("preview", "--config", str(config), "--profile", profile, "--days", "2",
                                           "--top", "500", "--now", now, "--json"), profile))
    cfg = load_config(config)
    with Store.open(cfg.bot.database) as store:
        corpus = scoring_corpus(store, NOW)
    items = tmp_path / "stored.jsonl"
    items.write_text("".join(json.dumps(item.to_json()) + "\n" for item in corpus), encoding="utf-8")
    ranked = printed(digestbot("rank", "--config", str(config), "--items", str(items), "--json"))

    for kind, entries in owed.items():
        for key, (score, reasons) in entries.items():
            assert previewed.get(key) == (score, reasons), f"{kind} vs preview for {key}"
            assert ranked.get(key) == (score, reasons), f"{kind} vs rank for {key}"
    kinds = {r["kind"] for _, reasons in owed["digest"].values() for r in reasons}
    assert "keyword" in kinds
    if semantic.available():
        assert "semantic" in kinds
