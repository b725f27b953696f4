"""A source aimed at the reader's topic must keep reaching the reader, day after day.

The reported bug: an HF daily-papers API source where every paper carries "RLHF" in its title (what an RLHF
query gives), one subscriber whose profile is keywords = ["RLHF"], daily digests. Day 1 brought 20 papers, days
2-14 nothing and no word of why: the corpus IDF made a term that most stored papers contain worth almost
nothing, and the score gates on min_score, so the better a source matches the reader, the less reaches them.

Reproduced the way the user runs it, `digestbot once --now ISO` over 14 simulated days (the same load_config →
App → cycle the command runs), against a local HF API that serves 20 new such papers each day, delivering by
SMTP into a local mail sink. What is asserted is what the reader sees: one digest a day, holding every one of
that day's papers (title and link in the plain-text part), and none of an earlier day's.
"""

from __future__ import annotations

import hashlib
import json
import random
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from bot.app import App, CycleReport
from bot.config import load_config
from bot.notify.maildir import MaildirSink
from tests.support.localhttp import LocalHTTPServer, Reply, Request

DAYS = 14
PER_DAY = 20
FIRST_DAY = date(2026, 11, 23)
FETCH_AT = time(6, 30)  # the day's list is up; the first run also meets the subscriber
DIGEST_AT = time(7, 5)  # a little after the subscriber's "daily 07:00"
API_PATH = "/api/daily_papers"

_PREFIXES = ["Anchor", "Bridge", "Calib", "Delta", "Echo", "Flux", "Guard", "Helix", "Iris", "Juno", "Kite",
             "Lumen", "Mosaic", "Nova", "Orbit", "Prism", "Quill", "Relay", "Sage", "Tide"]
_SUFFIXES = ["PO", "Align", "Pref", "Tune", "Judge", "RM", "Bench", "Loop", "Guard", "Mix"]
_CLAIMS = [
    "Rethinking Reward Overoptimization in RLHF",
    "Sample-Efficient RLHF with Uncertainty-Aware Reward Models",
    "When Does RLHF Hurt Calibration?",
    "Token-Level Credit Assignment for RLHF",
    "Scaling Laws for Reward Models in RLHF",
    "Offline RLHF from Noisy Pairwise Preferences",
    "Curriculum RLHF for Multi-Turn Dialogue Agents",
    "Mitigating Length Bias in RLHF",
    "RLHF Without a Critic: Group-Relative Advantages Revisited",
    "Robust RLHF under Annotator Disagreement",
    "A Theory of KL Regularisation in RLHF",
    "Process Supervision Meets RLHF for Mathematical Reasoning",
    "Federated RLHF across Private Preference Data",
    "Auditing Sycophancy Induced by RLHF",
    "Multilingual RLHF with Cross-Lingual Reward Transfer",
    "Constitutional Feedback as a Cheap Substitute for RLHF",
    "Stable RLHF at Low Precision",
    "Diagnosing Reward Hacking in RLHF with Probing",
    "RLHF for Code Generation with Execution Feedback",
    "On-Policy Data Selection for Efficient RLHF",
    "Safety-Constrained RLHF via Lagrangian Relaxation",
    "Distilling RLHF Policies into Small Language Models",
    "Online Iterative RLHF with Active Preference Queries",
    "Vision-Language RLHF from Human Corrections",
]
_FINDINGS = [
    "reduces reward hacking by a wide margin",
    "matches PPO at a third of the compute",
    "improves win rates against the SFT baseline by 9 points",
    "keeps the KL divergence to the reference policy bounded",
    "is robust to 30% label noise in the preference data",
    "transfers to unseen tasks without further tuning",
]
_SETTINGS = ["summarisation", "instruction following", "mathematical reasoning", "code generation",
             "multi-turn dialogue", "harmlessness benchmarks", "long-form question answering"]
_FIRST = ["Wei", "Ana", "Tomás", "Priya", "Jonas", "Mei", "Omar", "Sara", "Kenji", "Lena", "Ravi", "Chloé", "Ivan",
          "Noor", "Elif", "Mateo"]
_LAST = ["Zhang", "García", "Okafor", "Müller", "Sato", "Kowalski", "Haddad", "Nguyen", "Silva", "Johansson", "Rossi",
         "Patel", "Kim", "Dubois", "Ahmed", "Novak"]


def daily_papers(day: int) -> list[dict[str, Any]]:
    """The `/api/daily_papers` entries of simulated day `day` (1-based): 20 distinct RLHF papers, seeded."""
    rng = random.Random(f"rlhf-day-{day}")
    on = FIRST_DAY + timedelta(days=day - 1)
    stamp = f"{on.isoformat()}T00:00:00.000Z"
    entries: list[dict[str, Any]] = []
    for i in range(PER_DAY):
        arxiv = f"2611.{10000 + day * 100 + i:05d}"
        name = _PREFIXES[(day + i) % len(_PREFIXES)] + _SUFFIXES[(day * 3 + i) % len(_SUFFIXES)]
        title = f"{name}: {_CLAIMS[(day * 7 + i) % len(_CLAIMS)]}"
        summary = (f"Reinforcement learning from human feedback (RLHF) is the standard recipe for aligning large "
                   f"language models with human preferences. We introduce {name}, which {rng.choice(_FINDINGS)} "
                   f"on {rng.choice(_SETTINGS)} and {rng.choice(_SETTINGS)}. Experiments with models from 1B to "
                   f"{rng.choice([7, 8, 13, 34, 70])}B parameters show that it {rng.choice(_FINDINGS)}.")
        authors = [{"_id": hashlib.sha1(f"{arxiv}-{a}".encode()).hexdigest()[:24],
                    "name": f"{rng.choice(_FIRST)} {rng.choice(_LAST)}", "hidden": False}
                   for a in range(rng.randint(2, 7))]
        paper = {"id": arxiv, "authors": authors, "publishedAt": stamp, "submittedOnDailyAt": stamp,
                 "title": title, "summary": summary, "upvotes": rng.randint(0, 60),
                 "discussionId": hashlib.sha1(arxiv.encode()).hexdigest()[:24]}
        entries.append({"paper": paper, "publishedAt": stamp, "title": title, "summary": summary,
                        "thumbnail": f"https://cdn-thumbnails.huggingface.co/social-thumbnails/papers/{arxiv}.png",
                        "numComments": rng.randint(0, 5), "isAuthorParticipating": False})
    assert len({e["title"] for e in entries}) == len({e["paper"]["id"] for e in entries}) == PER_DAY
    return entries


@dataclass
class DailyApi:
    """The HF API as it changes from day to day: answers with the current day's list (ETag, 304 as HF does)."""

    day: int = 1

    def answer(self, request: Request) -> Reply:
        body = json.dumps(daily_papers(self.day)).encode()
        etag = f'"{hashlib.sha1(body).hexdigest()[:16]}"'
        if request.headers.get("if-none-match") == etag:
            return Reply(304, b"", {"ETag": etag})
        return Reply(200, body, {"Content-Type": "application/json; charset=utf-8", "ETag": etag})


def write_config(path: Path, db_url: str, api_url: str, smtp_port: int) -> Path:
    """The reader's config file: the targeted source, one profile `keywords = ["RLHF"]`, one daily subscriber."""
    q = json.dumps  # a JSON string is a TOML basic string
    path.write_text(f"""
[bot]
database = {q(db_url)}

[smtp]
host = "127.0.0.1"
port = {smtp_port}
security = "none"
sender = "Paper digest <digest@example.org>"

[[sources]]
name = "hf-rlhf"
kind = "hf_api"
url = {q(api_url)}

[profiles.rlhf]
keywords = ["RLHF"]

[[subscribers]]
name = "ada"
email = "ada@example.org"
profiles = ["rlhf"]
schedule = "daily 07:00"
timezone = "UTC"
""", encoding="utf-8")
    return path


async def once(config: Path, now: datetime) -> CycleReport:
    """What `digestbot once --config F --now ISO` runs: a fresh config load, app and cycle per invocation."""
    async with App(load_config(config)) as app:
        return await app.cycle(now=now)


def text_part(message: EmailMessage) -> str:
    part = message.get_body(("plain",))
    assert part is not None, "digest without a plain-text part"
    return str(part.get_content())


async def test_fourteen_days_of_a_source_aimed_at_the_readers_keyword(db_url: str, tmp_path: Path) -> None:
    api = DailyApi()
    seen: list[str] = []  # per day: what the reader got, for one readable failure message over all 14 days
    expected: list[str] = []
    with LocalHTTPServer() as server:
        server.route(API_PATH, handler=api.answer)
        async with MaildirSink(tmp_path / "Maildir") as mail:
            config = write_config(tmp_path / "config.toml", db_url, server.url(API_PATH), mail.port)
            earlier: list[dict[str, Any]] = []
            for day in range(1, DAYS + 1):
                api.day = day
                on = FIRST_DAY + timedelta(days=day - 1)
                before = len(mail.messages())
                fetched = await once(config, datetime.combine(on, FETCH_AT, UTC))
                assert [(r.source, r.status, r.new) for r in fetched.refreshed] == [("hf-rlhf", "ok", PER_DAY)], day
                await once(config, datetime.combine(on, DIGEST_AT, UTC))
                digests = mail.messages()[before:]
                papers = [e["paper"] for e in daily_papers(day)]
                text = "\n".join(text_part(m) for m in digests)
                arrived = sum(p["title"] in text and f"https://huggingface.co/papers/{p['id']}" in text
                              for p in papers)
                repeated = sum(p["title"] in text for p in earlier)
                seen.append(f"day {day}: {len(digests)} digest(s), {arrived}/{PER_DAY} of the day's papers, "
                            f"{repeated} repeated")
                expected.append(f"day {day}: 1 digest(s), {PER_DAY}/{PER_DAY} of the day's papers, 0 repeated")
                earlier.extend(papers)
    assert seen == expected, "what the reader got:\n" + "\n".join(seen)
