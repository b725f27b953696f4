"""Planning for readers who rated papers: 10,000 recipients with ratings through `plan_deliveries`, the code the
daemon runs, beside the same recipients without ratings, in the same run.

    python bench/plan_feedback.py [--recipients 10000] [--ratings 30] [--items 2000] [--database URL]

Each pass plans one digest for every recipient (daily 07:00 UTC, `max_items` 20) over a window of `--items`
papers (the judged seed papers, repeated with new ids), on a fresh SQLite file unless `--database` names another
(an empty one). Recipients read one of the three development profiles each; with ratings, each rated `--ratings`
papers of the window that its profile scored (half 👍, half 👎), read back from the store as the daemon does.
What is timed is the planning pass that writes the digests (the pass before it only meets the recipients);
peak memory is the process's `ru_maxrss`. One core: run it with `taskset -c 1`.

Also: one recipient with 1,000 ratings, the per-recipient cost the issue bounds (≤ 50 ms).
"""

from __future__ import annotations

import argparse
import random
import resource
import sys
import tempfile
import time
import tomllib
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import bot.scoring.feedback as feedback  # noqa: E402
from bot.config import Config, parse_config  # noqa: E402
from bot.models import Item  # noqa: E402
from bot.outbox.plan import plan_deliveries  # noqa: E402
from bot.scoring import compile_profiles, load_items_jsonl  # noqa: E402
from bot.scoring.feedback import PaperVectors, Ranking, Taste, explained, rescore  # noqa: E402
from bot.store import Store  # noqa: E402

DATA = Path(__file__).resolve().parent / "data"
MET = datetime(2026, 12, 1, 6, 0, tzinfo=UTC)
DUE = datetime(2026, 12, 1, 7, 5, tzinfo=UTC)


def window(count: int) -> list[Item]:
    seeds = load_items_jsonl(DATA / "seed_items.jsonl")
    copies = -(-count // len(seeds))
    return [Item(id=f"{item.id}-{copy}", title=item.title, url=item.url, abstract=item.abstract)
            for copy in range(copies) for item in seeds][:count]


def config(database: str, recipients: int) -> Config:
    profiles = tomllib.loads((DATA / "profiles_dev.toml").read_text())["profiles"]
    names = sorted(profiles)
    return parse_config({
        "bot": {"database": database, "semantic": "off"},
        "smtp": {"host": "localhost", "sender": "digest@example.org"},
        "profiles": profiles,
        "subscribers": [{"name": f"r{i:05d}", "email": f"r{i:05d}@example.org", "profiles": [names[i % len(names)]],
                         "schedule": "daily 07:00", "timezone": "UTC", "max_items": 20} for i in range(recipients)],
    })


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def plan(database: str, papers: list[Item], recipients: int, ratings: int) -> tuple[float, int]:
    """Seconds for the pass that plans every digest, and how many it planned."""
    cfg = config(database, recipients)
    matcher = compile_profiles(cfg.profiles, corpus=papers, semantic=False)
    with Store.open(database) as store:
        store.save_items("bench", papers, seen_at=MET - timedelta(hours=1))
        if ratings:
            rng = random.Random(11)
            scored = {name: [s.item.id for s in matcher.rank(papers, name, with_below_min=True)]
                      for name in matcher.profiles}
            for subscriber in cfg.subscribers:
                chosen = rng.sample(scored[subscriber.profiles[0]], ratings)
                for n, item_id in enumerate(chosen):
                    store.rate("email", subscriber.name, item_id, subscriber.profiles[0], 1 if n % 2 else -1,
                               at=MET)
        plan_deliveries(cfg, store, matcher, now=MET)  # meets everyone
        feedback._BAGS.clear()  # cold: as the first pass after a start, not warmed by the pass above
        started = time.perf_counter()
        result = plan_deliveries(cfg, store, matcher, now=DUE)
        return time.perf_counter() - started, len(result.planned)


def one_reader(papers: list[Item]) -> None:
    profiles = tomllib.loads((DATA / "profiles_dev.toml").read_text())["profiles"]
    cfg = parse_config({"profiles": profiles, "bot": {"semantic": "off"}})
    matcher = compile_profiles(cfg.profiles, corpus=papers, semantic=False)
    profile = sorted(profiles)[0]
    rng = random.Random(7)
    rated = [(paper, rng.choice((1, -1))) for paper in rng.sample(papers, 1000)]
    ranked = matcher.rank(papers, profile, with_below_min=True)
    started = time.perf_counter()
    vectors = PaperVectors(papers, (paper for paper, _ in rated))
    ranking = Ranking(ranked, vectors)
    shared = time.perf_counter()
    rounds = 20
    for _ in range(rounds):
        taste = Taste(rated, vectors)
        explained(rescore(ranking, taste, min_score=matcher.min_score(profile))[:20], taste)
    done = time.perf_counter()
    print(f"one recipient, 1,000 ratings, {len(papers):,} papers ({len(ranked):,} scored for {profile}): shared "
          f"once per pass {1e3 * (shared - started):.0f} ms; per recipient {1e3 * (done - shared) / rounds:.1f} ms "
          "(target ≤ 50 ms)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipients", type=int, default=10_000)
    parser.add_argument("--ratings", type=int, default=30)
    parser.add_argument("--items", type=int, default=2000)
    parser.add_argument("--database", help="an empty database URL (default: a temporary SQLite file)")
    args = parser.parse_args()
    papers = window(args.items)
    one_reader(papers)
    figures = {}
    for label, ratings in (("without ratings", 0), (f"with {args.ratings} ratings each", args.ratings)):
        with tempfile.TemporaryDirectory() as tmp:
            database = args.database or f"sqlite:///{tmp}/bench.sqlite3"
            seconds, planned = plan(database, papers, args.recipients, ratings)
        figures[label] = seconds
        print(f"{args.recipients:,} recipients {label}: planned {planned:,} digests in {seconds:.1f} s "
              f"({1e3 * seconds / max(planned, 1):.2f} ms each); peak RSS so far {rss_mb():.0f} MB")
        if args.database:
            break
    if len(figures) == 2:
        without, rated = figures.values()
        print(f"ratings cost {rated - without:+.1f} s over planning without them (target: the whole pass < 60 s)")


if __name__ == "__main__":
    main()
