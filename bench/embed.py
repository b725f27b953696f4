"""Embedding cost: a day of arXiv cs.* (≈ 1,500 new papers) through the `semantic` extra, on this machine's cores.

    python bench/embed.py [--papers N] [--slice N] [--corpus N] [--seed N]

Needs the `semantic` extra. Papers are synthesised from `bench/data/seed_items.jsonl` (333 real titles and
abstracts): a real title with the first half of one real abstract and the second half of another, all distinct.
They are saved to a SQLite store in a temp dir, as a refresh would, and measured in fresh processes (so that each
peak memory, `ru_maxrss`, is its own):

- **first day**: importing torch and loading the model; the day's papers through `Embedder.embed_items` in one
  call, as a cycle embeds its new papers (batches of 32, vectors saved to the store as they are done); beside the
  baseline, one paper per call (what scoring item by item costs), timed on `--slice` other papers and scaled;
- **restart**: another process on the same database asks for the same papers: everything is found stored, the
  model embeds nothing (its `encode` is wrapped and counted);
- **corpus** (no model): reading `--corpus` stored vectors (30 days of cs.*) from the store into memory, as
  scoring with a corpus does after a restart, and again from memory.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bot.models import Item, ItemVector  # noqa: E402
from bot.store import Store  # noqa: E402

SEED = Path(__file__).resolve().parent / "data" / "seed_items.jsonl"
DAY = datetime(2026, 11, 23, 6, 0, tzinfo=UTC)


def make_papers(n: int, rng: random.Random, prefix: str) -> list[Item]:
    """`n` distinct papers: a real title, the first half of one real abstract and the second half of another."""
    seed = [json.loads(line) for line in SEED.read_text(encoding="utf-8").splitlines() if line.strip()]
    papers: list[Item] = []
    seen: set[tuple[str, str]] = set()
    while len(papers) < n:
        a, b, c = rng.sample(seed, 3)
        abstract = f"{a['abstract'][: len(a['abstract']) // 2]} {b['abstract'][len(b['abstract']) // 2:]}"
        if (c["title"], abstract) in seen:
            continue
        seen.add((c["title"], abstract))
        i = len(papers)
        papers.append(Item(id=f"arxiv:{prefix}.{i:05d}", title=c["title"], abstract=abstract,
                           url=f"https://arxiv.org/abs/{prefix}.{i:05d}"))
    return papers


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KB on Linux


def cpu_s() -> float:
    """CPU seconds (user + system, all threads) this process has used: the cost, whatever else runs beside it."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def load_model() -> tuple[Any, float]:
    from bot.scoring import semantic

    if not semantic.available():
        sys.exit(f"the `semantic` extra is not installed: {semantic.INSTALL}")
    started = time.perf_counter()
    embedder = semantic.Embedder()
    return embedder, time.perf_counter() - started


def count_encoded(embedder: Any) -> list[int]:
    """Wrap the model's `encode`: the returned list's one number counts the texts it was given."""
    counted = [0]
    encode = embedder._model.encode

    def counting(texts: list[str], *args: Any, **kwargs: Any) -> Any:
        counted[0] += len(texts)
        return encode(texts, *args, **kwargs)

    embedder._model.encode = counting
    return counted


def first_day(args: argparse.Namespace) -> dict[str, float]:
    """A fresh process's first cycle: load the model, embed the day in one call, then the one-by-one baseline."""
    papers = make_papers(args.papers, random.Random(args.seed), "2611")
    baseline = make_papers(args.slice, random.Random(args.seed + 1), "2612")
    with Store.open(args.database) as store:
        store.save_items("arxiv-cs", papers + baseline, seen_at=DAY)
        rss_before = peak_mb()
        embedder, load_s = load_model()
        rss_loaded = peak_mb()
        import torch

        embedder.attach(store)
        embedder.embed(["warm-up: the first call sets up the tokenizer and the thread pool"] * 4)
        counted = count_encoded(embedder)
        started, cpu = time.perf_counter(), cpu_s()
        embedder.embed_items(papers)
        batch_s, batch_cpu = time.perf_counter() - started, cpu_s() - cpu
        batch_encoded = counted[0]
        rss_batch = peak_mb()
        started, cpu = time.perf_counter(), cpu_s()
        for paper in baseline:
            embedder.embed_items([paper])
        one_s, one_cpu = time.perf_counter() - started, cpu_s() - cpu
        stored = store.vector_count()
    return {"load_s": load_s, "batch_s": batch_s, "batch_cpu": batch_cpu, "encoded": batch_encoded,
            "one_s": one_s, "one_cpu": one_cpu, "stored": stored, "rss_before_mb": rss_before,
            "rss_loaded_mb": rss_loaded, "rss_batch_mb": rss_batch, "threads": torch.get_num_threads()}


def restart(args: argparse.Namespace) -> dict[str, float]:
    """Another process on the same database: the same papers, found stored."""
    papers = make_papers(args.papers, random.Random(args.seed), "2611")
    with Store.open(args.database) as store:
        embedder, load_s = load_model()
        embedder.attach(store)
        counted = count_encoded(embedder)
        started, cpu = time.perf_counter(), cpu_s()
        embedder.embed_items(papers)
        again_s, again_cpu = time.perf_counter() - started, cpu_s() - cpu
    return {"load_s": load_s, "again_s": again_s, "again_cpu": again_cpu, "encoded": counted[0],
            "rss_mb": peak_mb()}


def corpus(args: argparse.Namespace) -> dict[str, float]:
    """`--corpus` stored vectors read into memory from the store, then from memory (no model: stand-in vectors)."""
    import numpy as np

    from bot.scoring.embeddings import ItemVectors, item_text, text_hash, to_bytes

    items = [Item(id=f"arxiv:c.{i:06d}", title=f"Corpus paper {i}", url=f"u{i}") for i in range(args.corpus)]
    rng = np.random.default_rng(args.seed)
    with Store.open(args.database) as store:
        store.save_items("arxiv-cs", items, seen_at=DAY)
        for start in range(0, len(items), 5_000):
            part = items[start:start + 5_000]
            rows = rng.standard_normal((len(part), 384), dtype=np.float32)
            store.save_vectors([ItemVector(item.id, text_hash(item_text(item)), to_bytes(row))
                                for item, row in zip(part, rows, strict=True)], model="stand-in")

        def never(texts: Any) -> Any:
            raise AssertionError(f"{len(texts)} texts embedded: every vector was stored")

        vectors = ItemVectors("stand-in", 384, cache_items=max(50_000, args.corpus), store=store)
        started = time.perf_counter()
        vectors.get(items, never)
        cold_s = time.perf_counter() - started
        started = time.perf_counter()
        vectors.get(items, never)
        warm_s = time.perf_counter() - started
    return {"cold_s": cold_s, "warm_s": warm_s, "rss_mb": peak_mb()}


def in_fresh_process(what: str, database: str) -> dict[str, float]:
    command = [sys.executable, __file__, *sys.argv[1:], "--child", what, "--database", database]
    out = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    result: dict[str, float] = json.loads(out.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--papers", type=int, default=1_500, help="a day of arXiv cs.*")
    parser.add_argument("--slice", type=int, default=100, help="papers embedded one per call, then scaled")
    parser.add_argument("--corpus", type=int, default=45_000, help="stored vectors read back (30 days); 0: skip")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--child", choices=("first", "restart", "corpus"), help=argparse.SUPPRESS)
    parser.add_argument("--database", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        run = {"first": first_day, "restart": restart, "corpus": corpus}[args.child]
        print(json.dumps(run(args)))
        return
    load = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        database = f"sqlite:///{Path(tmp) / 'bench.sqlite3'}"
        first = in_fresh_process("first", database)
        again = in_fresh_process("restart", database)
        read = in_fresh_process("corpus", f"sqlite:///{Path(tmp) / 'corpus.sqlite3'}") if args.corpus else None
    print(f"load average (1 min) before: {load[0]:.2f}, after: {os.getloadavg()[0]:.2f} (above 0 means something "
          "else was running: wall times suffer, CPU seconds much less)")
    report(args, first, again, read)


def report(args: argparse.Namespace, first: dict[str, float], again: dict[str, float],
           read: dict[str, float] | None) -> None:
    n = args.papers
    one_scaled = first["one_s"] * n / args.slice
    print(f"{n:,} papers (synthesised from {SEED.name}), {os.cpu_count()} cores, torch threads "
          f"{int(first['threads'])}, SQLite store")
    rows = [
        ("import torch + load the model", f"{first['load_s']:.1f} s"),
        (f"first day: embed {n:,} papers in one call (saved to the store)", f"{first['batch_s']:.1f} s"),
        ("first day: CPU seconds (all threads)", f"{first['batch_cpu']:.0f} s"),
        ("first day: papers per second", f"{n / first['batch_s']:.1f}"),
        ("first day: texts the model embedded", f"{first['encoded']:,.0f}"),
        (f"baseline: one paper per call, {args.slice} papers", f"{first['one_s']:.1f} s"),
        (f"baseline: scaled to {n:,} papers", f"{one_scaled:.1f} s"),
        (f"baseline: CPU seconds, scaled to {n:,} papers", f"{first['one_cpu'] * n / args.slice:.0f} s"),
        ("baseline: papers per second", f"{args.slice / first['one_s']:.1f}"),
        ("speed-up of one call over one per paper", f"{one_scaled / first['batch_s']:.1f}×"),
        ("peak memory (ru_maxrss): the day saved, before torch", f"{first['rss_before_mb']:.0f} MB"),
        ("peak memory: torch imported, model loaded", f"{first['rss_loaded_mb']:.0f} MB"),
        ("peak memory: after the day's embedding", f"{first['rss_batch_mb']:.0f} MB"),
        (f"restart: the same {n:,} papers, found stored", f"{again['again_s']:.2f} s"),
        ("restart: CPU seconds", f"{again['again_cpu']:.2f} s"),
        ("restart: texts the model embedded", f"{again['encoded']:,.0f}"),
        ("restart: peak memory", f"{again['rss_mb']:.0f} MB"),
    ]
    if read is not None:
        rows += [
            (f"corpus: {args.corpus:,} stored vectors into memory", f"{read['cold_s']:.2f} s"),
            (f"corpus: {args.corpus:,} vectors from memory", f"{read['warm_s']:.3f} s"),
            ("corpus: peak memory (no model)", f"{read['rss_mb']:.0f} MB"),
        ]
    print(f"\n| {'measure':<62} | {'value':>10} |")
    print(f"|{'-' * 64}|{'-' * 12}|")
    for name, value in rows:
        print(f"| {name:<62} | {value:>10} |")


if __name__ == "__main__":
    main()
