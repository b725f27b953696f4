"""Ranking quality of `bot.scoring` on the judged seed corpus, beside two baselines computed in the same run.

    python bench/rank_eval.py [--data DIR]

For each profile in `profiles_dev.toml` every seed item is ranked (items a method does not score at all follow,
by id) and judged against `qrels_dev.json`: MAP and P@10 count grade ≥ 1 as relevant, nDCG@10 uses the grade
as gain. The methods:

- `substring`: occurrences of each keyword as a lower-cased substring of title + abstract, summed;
- `bm25`: Okapi BM25 (k1 = 1.2, b = 0.75) of the keywords' words as a bag-of-words query over title + abstract;
- `digestbot`: `compile_profiles(..., corpus=items)` and `Matcher.rank`; `digestbot-nocorpus` is the same
  without corpus statistics (what scoring a handful of new items without history gives). Both score with keywords
  only (`semantic=False`);
- `digestbot+semantic`: `digestbot` with semantic similarity to the profile's description (`bot.scoring.semantic`), as
  digestbot scores when the `semantic` extra is installed; only then is this row shown.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
import time
import tomllib
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bot.config import ProfileConfig, parse_config  # noqa: E402
from bot.models import Item  # noqa: E402
from bot.scoring import compile_profiles, load_items_jsonl  # noqa: E402
from bot.scoring.semantic import available as semantic_available  # noqa: E402

DATA = Path(__file__).resolve().parent / "data"
Ranker = Callable[[Sequence[Item], str, ProfileConfig], list[str]]
_WORD = re.compile(r"\w+")


def rank_substring(items: Sequence[Item], name: str, profile: ProfileConfig) -> list[str]:
    keywords = [k.lower() for k in profile.keywords if k.strip()]
    scores = {it.id: sum(f"{it.title} {it.abstract}".lower().count(k) for k in keywords) for it in items}
    return _order(items, scores)


def rank_bm25(items: Sequence[Item], name: str, profile: ProfileConfig, k1: float = 1.2, b: float = 0.75) -> list[str]:
    query = sorted({w for k in profile.keywords for w in _WORD.findall(k.lower())})
    docs = {it.id: Counter(_WORD.findall(f"{it.title} {it.abstract}".lower())) for it in items}
    n = len(docs)
    avgdl = sum(sum(d.values()) for d in docs.values()) / max(n, 1)
    df = {w: sum(1 for d in docs.values() if w in d) for w in query}
    idf = {w: math.log(1 + (n - df[w] + 0.5) / (df[w] + 0.5)) for w in query}
    scores = {}
    for doc_id, tf in docs.items():
        norm = k1 * (1 - b + b * sum(tf.values()) / avgdl)
        scores[doc_id] = sum(idf[w] * tf[w] * (k1 + 1) / (tf[w] + norm) for w in query if tf[w])
    return _order(items, scores)


def _order(items: Sequence[Item], scores: Mapping[str, float]) -> list[str]:
    return sorted((it.id for it in items), key=lambda i: (-scores[i], i))


def digestbot_ranker(profiles: Mapping[str, ProfileConfig], items: Sequence[Item], *, corpus: bool,
                     semantic: bool = False) -> Ranker:
    matcher = compile_profiles(profiles, corpus=items if corpus else (), semantic=semantic)

    def rank(items: Sequence[Item], name: str, profile: ProfileConfig) -> list[str]:
        ranked = [s.item.id for s in matcher.rank(items, name, with_below_min=True)]
        scored = set(ranked)
        return ranked + sorted(it.id for it in items if it.id not in scored)

    return rank


def average_precision(ranking: Sequence[str], grades: Mapping[str, int]) -> float:
    relevant = sum(1 for g in grades.values() if g >= 1)
    hits, total = 0, 0.0
    for position, doc_id in enumerate(ranking, start=1):
        if grades.get(doc_id, 0) >= 1:
            hits += 1
            total += hits / position
    return total / relevant if relevant else 0.0


def ndcg_at(ranking: Sequence[str], grades: Mapping[str, int], k: int = 10) -> float:
    dcg = sum(grades.get(d, 0) / math.log2(i + 2) for i, d in enumerate(ranking[:k]))
    ideal = sorted(grades.values(), reverse=True)[:k]
    idcg = sum(g / math.log2(i + 2) for i, g in enumerate(ideal))
    return dcg / idcg if idcg else 0.0


def precision_at(ranking: Sequence[str], grades: Mapping[str, int], k: int = 10) -> float:
    return sum(1 for d in ranking[:k] if grades.get(d, 0) >= 1) / k


def evaluate(data: Path) -> None:
    items = load_items_jsonl(data / "seed_items.jsonl")
    profiles = parse_config(tomllib.loads((data / "profiles_dev.toml").read_text(encoding="utf-8"))).profiles
    qrels: dict[str, dict[str, int]] = json.loads((data / "qrels_dev.json").read_text(encoding="utf-8"))
    started = time.perf_counter()
    methods: dict[str, Ranker] = {
        "substring": rank_substring,
        "bm25": rank_bm25,
        "digestbot-nocorpus": digestbot_ranker(profiles, items, corpus=False),
        "digestbot": digestbot_ranker(profiles, items, corpus=True),
    }
    if semantic_available():
        methods["digestbot+semantic"] = digestbot_ranker(profiles, items, corpus=True, semantic=True)
    header = f"{'profile':<10} {'method':<20} {'MAP':>6} {'nDCG@10':>8} {'P@10':>6}"
    print(f"{len(items)} items, {len(profiles)} profiles\n{header}\n{'-' * len(header)}")
    means: dict[str, list[tuple[float, float, float]]] = {m: [] for m in methods}
    for name, profile in profiles.items():
        grades = qrels[name]
        for method, ranker in methods.items():
            ranking = ranker(items, name, profile)
            row = (average_precision(ranking, grades), ndcg_at(ranking, grades), precision_at(ranking, grades))
            means[method].append(row)
            print(f"{name:<10} {method:<20} {row[0]:>6.3f} {row[1]:>8.3f} {row[2]:>6.3f}")
    print("-" * len(header))
    for method, rows in means.items():
        m = [sum(col) / len(rows) for col in zip(*rows, strict=True)]
        print(f"{'mean':<10} {method:<20} {m[0]:>6.3f} {m[1]:>8.3f} {m[2]:>6.3f}")
    print(f"({time.perf_counter() - started:.2f}s)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DATA, help="directory with the seed items, profiles, qrels")
    evaluate(parser.parse_args().data)


if __name__ == "__main__":
    main()
