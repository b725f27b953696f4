"""Ranking quality of `bot.scoring` on the judged seed corpus, beside two baselines computed in the same run.

    python bench/rank_eval.py [--data DIR] [--quick] [--no-cli]

What is measured is what `digestbot rank --json` delivers: for each profile in `profiles_dev.toml`, the seed items
whose score reaches the profile's min_score, best first (`Matcher.rank`, which is what the command prints; the
bench runs the command once and checks that it prints the same ids in the same order). They are judged against
`qrels_dev.json`: MAP and P@10 count grade ≥ 1 as relevant, and a relevant item that is not delivered counts as
missed (it adds 0 to MAP's sum, whose divisor is every relevant item); nDCG@10 uses the grade as gain. Beside
them, secondarily: `full MAP`, the MAP of every item ranked (those below min_score after the delivered ones, by
score then id; unscored ones last, by id), so the cost of the min_score gate is visible; `delivered`, how many
items the profile's digest would carry; `rel`, how many of those are relevant, of how many relevant in all.

The methods:

- `substring`: occurrences of each keyword as a lower-cased substring of title + abstract, summed;
- `bm25`: Okapi BM25 (k1 = 1.2, b = 0.75) of the keywords' words as a bag-of-words query over title + abstract.
  Neither has a min_score: they rank (deliver) every item;
- `digestbot`: `compile_profiles(..., corpus=items, semantic=False)`, keywords and description words only, as
  digestbot scores without the `semantic` extra (or with `[bot] semantic = "off"`);
- `digestbot+semantic`: the same with meaning (`semantic=True`), as digestbot scores when the extra is installed;
  shown only then.

Leave one profile out (skipped with `--quick`): each tunable constant of the score, one at a time (the others at
their shipped values), is swept over a small grid around its shipped value. For each held-out profile the value
with the best mean delivered MAP on the other two profiles is chosen (values within 0.001 of the best are tied, and
of those the one nearest the shipped value wins), and the held-out profile's delivered MAP, nDCG@10 and number of
items delivered with it are printed beside the same at the shipped value. The keyword constants
(`DESCRIPTION_WEIGHT`, `IDF_*`) are swept with keywords only, the semantic ones with the extra. MAP does not
penalise delivering more items below the relevant ones, so the sweep also prints how many were delivered.
Every patched constant is restored afterwards.
"""

from __future__ import annotations

import argparse
import importlib
import json
import math
import re
import subprocess
import sys
import tempfile
import time
import tomllib
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bot.config import ProfileConfig, parse_config  # noqa: E402
from bot.models import Item  # noqa: E402
from bot.scoring import compile_profiles, load_items_jsonl  # noqa: E402
from bot.scoring.engine import Matcher  # noqa: E402
from bot.scoring.semantic import available as semantic_available  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(__file__).resolve().parent / "data"
Ranker = Callable[[Sequence[Item], str, ProfileConfig], list[str]]
Rankings = dict[str, tuple[list[str], list[str]]]  # profile → (delivered, full ranking)
_WORD = re.compile(r"\w+")
TIE = 0.001  # training MAPs this close to the best are tied (the tables show 3 decimals): the nearest value wins


@dataclass(frozen=True)
class Constant:
    """A tunable constant of the score: where it lives (every module holding it by name) and the grid swept."""

    name: str
    modules: tuple[str, ...]
    grid: tuple[float, ...]
    semantic: bool  # swept with the `semantic` extra (else keywords only)


CONSTANTS = (
    Constant("DESCRIPTION_WEIGHT", ("bot.scoring.compile",), (0.0, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0), False),
    Constant("IDF_REFERENCE_FRACTION", ("bot.scoring.engine",), (0.02, 0.05, 0.1, 0.2, 0.3, 0.5), False),
    Constant("IDF_SHRINK_DOCS", ("bot.scoring.engine",), (0, 5, 10, 20, 50, 100, 200), False),
    Constant("CENTER_SHARE", ("bot.scoring.semantic",), (0.0, 0.25, 0.5, 0.6, 0.75, 0.9, 1.0), True),
    Constant("SEMANTIC_SLOPE", ("bot.scoring.semantic", "bot.scoring.batch"), (2, 4, 6, 8, 10, 12, 16), True),
    Constant("SEMANTIC_FLOOR", ("bot.scoring.semantic",), (0.0, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2), True),
    Constant("RAW_FLOOR", ("bot.scoring.semantic",), (0.3, 0.35, 0.4, 0.45, 0.5, 0.55, 0.6), True),
)


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


def baseline_rankings(ranker: Ranker, profiles: Mapping[str, ProfileConfig], items: Sequence[Item]) -> Rankings:
    """A baseline has no min_score: it delivers every item, so its delivered and full rankings are the same."""
    out: Rankings = {}
    for name, profile in profiles.items():
        ranking = ranker(items, name, profile)
        out[name] = (ranking, ranking)
    return out


def digestbot_rankings(profiles: Mapping[str, ProfileConfig], items: Sequence[Item], *, semantic: bool,
                       full: bool = True) -> Rankings:
    """Per profile, what `digestbot rank` delivers (`Matcher.rank`: score ≥ min_score, best first, ties by id) and
    the full ranking (every scored item by score then id, then the unscored ones by id)."""
    matcher: Matcher = compile_profiles(profiles, corpus=items, semantic=semantic)
    out: Rankings = {}
    for name in profiles:
        delivered = [s.item.id for s in matcher.rank(items, name)]
        ranking: list[str] = []
        if full:
            ranking = [s.item.id for s in matcher.rank(items, name, with_below_min=True)]
            scored = set(ranking)
            ranking += sorted(it.id for it in items if it.id not in scored)
        out[name] = (delivered, ranking)
    return out


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


@contextmanager
def patched(constant: Constant, value: float) -> Iterator[None]:
    """Set the constant in every module that holds it by name; the old values come back whatever happens."""
    modules = [importlib.import_module(m) for m in constant.modules]
    old = [getattr(m, constant.name) for m in modules]
    try:
        for m in modules:
            setattr(m, constant.name, value)
        yield
    finally:
        for m, v in zip(modules, old, strict=True):
            setattr(m, constant.name, v)


def shipped(constant: Constant) -> float:
    values = {getattr(importlib.import_module(m), constant.name) for m in constant.modules}
    if len(values) != 1:
        raise RuntimeError(f"{constant.name} differs between {', '.join(constant.modules)}: {values}")
    return values.pop()


def cli_check(data: Path, expected: Mapping[str, Rankings], semantic: bool) -> None:
    """Run `digestbot rank --json` on the data (as shipped: `semantic = "auto"`, and with `semantic = "off"`) and
    assert it prints, profile by profile, the ids this bench counts as delivered, in the same order."""
    data = data.resolve()
    profiles_toml = (data / "profiles_dev.toml").read_text(encoding="utf-8")
    runs = [("digestbot+semantic" if semantic else "digestbot", None)]
    if semantic:
        runs.append(("digestbot", '[bot]\nsemantic = "off"\n\n'))
    for method, header in runs:
        with tempfile.TemporaryDirectory() as tmp:
            config = data / "profiles_dev.toml"
            if header is not None:
                config = Path(tmp) / "profiles_off.toml"
                config.write_text(header + profiles_toml, encoding="utf-8")
            started = time.perf_counter()
            out = subprocess.run([sys.executable, "-m", "bot", "rank", "--config", str(config),
                                  "--items", str(data / "seed_items.jsonl"), "--json"],
                                 cwd=ROOT, capture_output=True, text=True, check=True).stdout
        printed: dict[str, list[str]] = {name: [] for name in expected[method]}
        for line in out.splitlines():
            row = json.loads(line)
            printed[row["profile"]].append(row["id"])
        for name, (delivered, _) in expected[method].items():
            assert printed[name] == delivered, f"digestbot rank ({method}) differs from the bench for {name}"
        total = sum(len(v) for v in printed.values())
        print(f"CLI check ({method}): `digestbot rank --json` printed the same {total} ids in the same order "
              f"({time.perf_counter() - started:.0f}s)")


def table(profiles: Mapping[str, ProfileConfig], qrels: Mapping[str, Mapping[str, int]],
          methods: Mapping[str, Rankings]) -> None:
    header = (f"{'profile':<10} {'method':<20} {'MAP':>6} {'nDCG@10':>8} {'P@10':>6} {'full MAP':>9} "
              f"{'delivered':>9} {'rel':>9}")
    print(f"{header}\n{'-' * len(header)}")
    means: dict[str, list[tuple[float, ...]]] = {m: [] for m in methods}
    for name in profiles:
        grades = qrels[name]
        relevant = sum(1 for g in grades.values() if g >= 1)
        for method, rankings in methods.items():
            delivered, full = rankings[name]
            hits = sum(1 for d in delivered if grades.get(d, 0) >= 1)
            row = (average_precision(delivered, grades), ndcg_at(delivered, grades), precision_at(delivered, grades),
                   average_precision(full, grades), len(delivered), hits)
            means[method].append(row)
            print(f"{name:<10} {method:<20} {row[0]:>6.3f} {row[1]:>8.3f} {row[2]:>6.3f} {row[3]:>9.3f} "
                  f"{len(delivered):>9} {f'{hits}/{relevant}':>9}")
    print("-" * len(header))
    for method, rows in means.items():
        m = [sum(col) / len(rows) for col in zip(*rows, strict=True)]
        print(f"{'mean':<10} {method:<20} {m[0]:>6.3f} {m[1]:>8.3f} {m[2]:>6.3f} {m[3]:>9.3f} {m[4]:>9.1f}")


def leave_one_out(profiles: Mapping[str, ProfileConfig], items: Sequence[Item],
                  qrels: Mapping[str, Mapping[str, int]], semantic: bool) -> None:
    names = list(profiles)
    lopo = []
    print("\nSweep: delivered MAP and how many items were delivered, per profile, for each value (the other "
          "constants at their shipped values)")
    for constant in CONSTANTS:
        if constant.semantic and not semantic:
            continue
        base = shipped(constant)
        grid = sorted(set(constant.grid) | {base})
        scores: dict[float, dict[str, tuple[float, float, int]]] = {}  # value → profile → (MAP, nDCG@10, delivered)
        for value in grid:
            with patched(constant, value):
                rankings = digestbot_rankings(profiles, items, semantic=constant.semantic, full=False)
            scores[value] = {name: (average_precision(rankings[name][0], qrels[name]),
                                    ndcg_at(rankings[name][0], qrels[name]), len(rankings[name][0])) for name in names}
        mode = "semantic" if constant.semantic else "keywords only"
        print(f"\n{constant.name} (shipped {base:g}; {mode})")
        print(f"  {'value':<10}" + "".join(f"{v:>11g}" for v in grid))
        for name in names:
            print(f"  {name:<10}" + "".join(f"{scores[v][name][0]:>7.3f}{scores[v][name][2]:>4}" for v in grid))
        means = "".join(f"{sum(s[0] for s in scores[v].values()) / len(names):>7.3f}    " for v in grid)
        print(f"  {'mean MAP':<10}{means}".rstrip())
        for held in names:
            train = [n for n in names if n != held]
            train_map = {v: sum(scores[v][n][0] for n in train) / len(train) for v in grid}
            best = max(train_map.values())
            chosen = min((v for v in grid if train_map[v] >= best - TIE), key=lambda v: (abs(v - base), v))
            lopo.append((constant.name, base, held, chosen, train_map[chosen], scores[chosen][held],
                         scores[base][held]))
    header = (f"{'constant':<23} {'shipped':>7} {'held out':<10} {'chosen':>7} {'train MAP':>9} {'MAP':>6} "
              f"{'nDCG@10':>8} {'deliv.':>6} | {'MAP':>6} {'nDCG@10':>8} {'deliv.':>6} | {'Δ MAP':>7}")
    print("\nLeave one profile out: the value chosen on the other two profiles (best mean delivered MAP), judged on "
          "the held-out one;\nafter the first bar the held-out profile at the shipped value\n"
          f"{header}\n{'-' * len(header)}")
    for name, base, held, chosen, train, (m, n, d), (m0, n0, d0) in lopo:
        print(f"{name:<23} {base:>7g} {held:<10} {chosen:>7g} {train:>9.3f} {m:>6.3f} {n:>8.3f} {d:>6} | "
              f"{m0:>6.3f} {n0:>8.3f} {d0:>6} | {m - m0:>+7.3f}")


def evaluate(data: Path, *, quick: bool, cli: bool) -> None:
    items = load_items_jsonl(data / "seed_items.jsonl")
    profiles = parse_config(tomllib.loads((data / "profiles_dev.toml").read_text(encoding="utf-8"))).profiles
    qrels: dict[str, dict[str, int]] = json.loads((data / "qrels_dev.json").read_text(encoding="utf-8"))
    semantic = semantic_available()
    started = time.perf_counter()
    methods: dict[str, Rankings] = {
        "substring": baseline_rankings(rank_substring, profiles, items),
        "bm25": baseline_rankings(rank_bm25, profiles, items),
        "digestbot": digestbot_rankings(profiles, items, semantic=False),
    }
    if semantic:
        methods["digestbot+semantic"] = digestbot_rankings(profiles, items, semantic=True)
    print(f"{len(items)} items, {len(profiles)} profiles; MAP, nDCG@10, P@10 of what is delivered "
          f"(score ≥ min_score), full MAP of everything ranked\n")
    table(profiles, qrels, methods)
    print(f"({time.perf_counter() - started:.1f}s)\n")
    if cli:
        cli_check(data, methods, semantic)
    if not quick:
        started = time.perf_counter()
        before = {c.name: shipped(c) for c in CONSTANTS}
        leave_one_out(profiles, items, qrels, semantic)
        assert before == {c.name: shipped(c) for c in CONSTANTS}, "a patched constant was not restored"
        print(f"({time.perf_counter() - started:.1f}s)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DATA, help="directory with the seed items, profiles, qrels")
    parser.add_argument("--quick", action="store_true", help="skip the leave-one-profile-out sweep")
    parser.add_argument("--no-cli", action="store_true", help="skip running `digestbot rank --json` as a check")
    args = parser.parse_args()
    evaluate(args.data, quick=args.quick, cli=not args.no_cli)


if __name__ == "__main__":
    main()
