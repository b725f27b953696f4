"""The keyword side of the engine (`bot.scoring.engine`): what no corpus changes, built once per compiled config,
and the small helpers the engine's hot loops share.

Keywords keep their weight whatever the corpus, so their per-term weights, the terms each profile holds and the
per-item scans live here, shared by every `Matcher.with_corpus` copy of one compiled config.
"""

from __future__ import annotations

import gc
import math
from collections.abc import Iterator
from contextlib import contextmanager
from operator import attrgetter

import numpy as np
from numpy.typing import NDArray

from bot.models import Item, Reason
from bot.scoring.batch import QUANTUM, Postings, Scan, quantise, saturate
from bot.scoring.compile import KEYWORD, Index
from bot.scoring.scan import Counts, Followed, Heads

_Term = tuple[int, str, float, float]  # a keyword or description word: class id, label, title/abstract weight
_Explained = tuple[int, tuple[Reason, ...], float]  # what some matched keywords add: in quanta, why, as a score
SAT = tuple(saturate(c) for c in range(64))  # sat(c) for the counts nearly every match has
BY_WEIGHT = attrgetter("weight")
_EXPLAIN_SLICE = 16_384


class Keywords:
    """What a matcher needs that no corpus changes (keywords keep their weight whatever the corpus): built once per
    compiled config and shared by its `with_corpus` copies, with the per-item scans."""

    def __init__(self, index: Index) -> None:
        profiles = index.profiles
        self.names = tuple(p.name for p in profiles)
        self.by_name = {name: i for i, name in enumerate(self.names)}
        self.scans: dict[str, tuple[Item, Scan]] = {}
        self.heads = Heads(index.root)
        equal: dict[float, float] = {}  # one float object per distinct weight (most are equal): less memory
        self.title = [equal.setdefault(x, x) for x in (b * profiles[p].title_weight
                                                       for b, p in zip(index.term_base, index.term_profile,
                                                                       strict=True))]
        self.abstract = [equal.setdefault(x, x) for x in (b * profiles[p].abstract_weight
                                                          for b, p in zip(index.term_base, index.term_profile,
                                                                          strict=True))]
        # A term as (class, label, title weight, abstract weight): equal ones are one object, shared by the
        # profiles (memory), and an item's reasons for it are built once however many profiles it matches.
        shared: dict[_Term, _Term] = {}

        def term(t: int) -> _Term:
            found = (index.term_class[t], index.term_label[t], self.title[t], self.abstract[t])
            return shared.setdefault(found, found)

        self.terms = [tuple(map(term, profile.keywords)) for profile in profiles]
        # Per profile, the class of each keyword: `compress(terms, map(counts.get, classes))` picks the matched
        # ones in config order without a Python loop over all of them.
        self.classes = [tuple(index.term_class[t] for t in profile.keywords) for profile in profiles]
        self.min = [profile.min_score for profile in profiles]
        self.author_quanta = [quantise(profile.author_weight) for profile in profiles]
        self.followed = Followed(index.authors)
        self.postings: Postings | None = None  # the keywords' postings, once a batch scorer needs them


def keyword_reasons(matched: tuple[_Term, ...], counts: Counts) -> _Explained:
    """What these matched keywords add, in quanta, and their reasons strongest first (config order on ties)."""
    total = 0
    reasons = []
    for c, label, wt, wa in matched:
        t, a = counts[c]
        if t:
            q = quantise(wt * (SAT[t] if t < 64 else saturate(t)))
            total += q
            reasons.append(Reason(label, "title", t, q * QUANTUM, KEYWORD))
        if a:
            q = quantise(wa * (SAT[a] if a < 64 else saturate(a)))
            total += q
            reasons.append(Reason(label, "abstract", a, q * QUANTUM, KEYWORD))
    if len(reasons) > 1:
        reasons.sort(key=BY_WEIGHT, reverse=True)
    return total, tuple(reasons), total * QUANTUM  # one score float for every profile these keywords explain


def as_python(order: NDArray[np.int64], positions: NDArray[np.int32], profiles: NDArray[np.int32],
               meaning: NDArray[np.float64]) -> Iterator[tuple[int, int, int, float]]:
    """(slot, position, profile id, meaning) in `order`, as Python numbers, converted a slice at a time: whole
    lists of a planning pass's ~250,000 pairs would hold ~30 MB at once."""
    for start in range(0, len(order), _EXPLAIN_SLICE):
        at = order[start:start + _EXPLAIN_SLICE]
        yield from zip(at.tolist(), positions[at].tolist(), profiles[at].tolist(), meaning[at].tolist(), strict=True)


def bm25_idf(n: int, df: float) -> float:
    return math.log(1.0 + (n - df + 0.5) / (df + 0.5))


@contextmanager
def gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector: the index and the results are many small acyclic objects, whose
    creation would otherwise trigger full collections that cost a fifth to a third of the time."""
    paused = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if paused:
            gc.enable()
