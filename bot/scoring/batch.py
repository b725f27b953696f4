"""Many items × every profile at once, in NumPy arrays: the one place a score is computed (`bot.scoring.engine`).

Why: ranking a day's items for thousands of subscribers (`Matcher.rank_all`) means about a million (item, profile)
pairs that share a keyword. Summing their weights in the interpreter costs microseconds a pair; gathering the
postings of an item's matched classes and summing them with `np.bincount` costs nanoseconds.

Exactness: every contribution to a score is quantised to a multiple of `QUANTUM` (2⁻²⁴) before it is added, so a
score is an integer count of quanta in disguise. Integers below 2⁵³ add exactly in any order, so a score does
not depend on how items are chunked, ranking ties are real ties (broken by item id), and the reasons the engine
builds for a kept pair (the same contributions, term by term, `quantise`d with the same float operations in the
same order) add up to its score exactly.

Work per chunk of items is a few dense arrays of chunk × profiles cells (`CHUNK_CELLS`), reused memory, not a
matrix of every item by every profile.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from itertools import chain
from typing import Any, TypeAlias

import numpy as np
from numpy.typing import NDArray

from bot.scoring.compile import DESCRIPTION_CAP
from bot.scoring.scan import Counts
from bot.scoring.semantic import SEMANTIC_SLOPE

QUANTUM = 2.0**-24  # the step of every score: ~6e-8, far below any difference a reader or a ranking cares about
SCALE = 2.0**24
K1 = 1.2  # BM25's saturation constant (see `bot.scoring`)
CHUNK_CELLS = 1 << 17  # items per chunk × profiles: 1 MB per dense array of float64, cache-sized (faster than larger)
_EPSILON = 1e-9

Ints: TypeAlias = NDArray[np.int64]
Floats: TypeAlias = NDArray[np.float64]
Scan = tuple[Counts, dict[int, list[str]]]  # class counts and followed authors, as `Matcher._scan` makes them
# positions, profile ids, score in quanta, what meaning (semantic similarity) added to it in quanta
Pairs = tuple[NDArray[np.int32], NDArray[np.int32], NDArray[np.float64], NDArray[np.float64]]
NO_PAIRS: Pairs = (np.zeros(0, dtype=np.int32), np.zeros(0, dtype=np.int32), np.zeros(0, dtype=np.float64),
                   np.zeros(0, dtype=np.float64))


def quantise(weight: float) -> int:
    """A contribution as a whole number of quanta (round half up), the same arithmetic as the arrays'."""
    return math.floor(weight * SCALE + 0.5)


def saturate(count: int) -> float:
    """BM25's saturation: sat(1) = 1, sat(2) ≈ 1.4, sat(∞) = 2.2."""
    return count * (K1 + 1.0) / (count + K1)


class Postings:
    """Class id → its run of (profile id, title weight, abstract weight), as compressed sparse rows."""

    __slots__ = ("abstract", "profile", "ptr", "title")

    def __init__(self, n_classes: int, classes: Sequence[int], profiles: Sequence[int],
                 title: Sequence[float] = (), abstract: Sequence[float] = ()) -> None:
        by_class = np.asarray(classes, dtype=np.int64)
        order = np.argsort(by_class, kind="stable")  # stable: a class's profiles stay in config order
        self.ptr: Ints = np.zeros(n_classes + 1, dtype=np.int64)
        np.cumsum(np.bincount(by_class, minlength=n_classes), out=self.ptr[1:])
        self.profile: Ints = np.asarray(profiles, dtype=np.int64)[order]
        self.title: Floats = np.asarray(title, dtype=np.float64)[order] if len(title) else np.zeros(0)
        self.abstract: Floats = np.asarray(abstract, dtype=np.float64)[order] if len(abstract) else np.zeros(0)

    def __len__(self) -> int:
        return len(self.profile)

    def gather(self, classes: Ints) -> tuple[Ints, Ints]:
        """Indices of the postings of `classes`, in order, and how many each class has."""
        starts = self.ptr[classes]
        lengths = self.ptr[classes + 1] - starts
        ends = np.cumsum(lengths)
        return np.arange(int(ends[-1]) if len(ends) else 0) + np.repeat(starts - ends + lengths, lengths), lengths


class BatchScorer:
    """The profiles' postings as arrays; `chunk` scores a list of scanned items against all of them."""

    def __init__(self, n_profiles: int, keyword: Postings, described: Postings, exclude: Postings, require: Postings,
                 min_score: Sequence[float], required: Sequence[bool], author_quanta: Sequence[int],
                 semantic: Sequence[int] = ()) -> None:
        self.n_profiles = n_profiles
        self._keyword, self._described, self._exclude, self._require = keyword, described, exclude, require
        self._min: Floats = np.asarray(min_score, dtype=np.float64)
        self._required: NDArray[np.bool_] = np.asarray(required, dtype=bool)
        self._author: Floats = np.asarray(author_quanta, dtype=np.float64)
        self._semantic: Ints = np.asarray(semantic, dtype=np.int64)  # profile ids, in `excess` column order

    @property
    def chunk_items(self) -> int:
        return max(1, CHUNK_CELLS // max(1, self.n_profiles))

    def chunk(self, scans: Sequence[Scan], excess: Floats | None = None, *,
              floor: Floats | None = None) -> tuple[Ints, Ints, Floats, Floats]:
        """(item index in `scans`, profile id, score in quanta, what meaning added in quanta) of every pair that
        passes: no exclude term, score above 0 and at least the profile's min_score (or `floor`, per profile).
        In cell order: by item, then by profile.

        `excess`: one row per item, one column per semantic profile: how far the item's similarity to the
        description rises above its floor (`Similarity.excess`), or None.
        """
        n_profiles, n_items = self.n_profiles, len(scans)
        cells = n_items * n_profiles
        per_item = [len(counts) for counts, _ in scans]
        classes: Ints = np.fromiter(chain.from_iterable(counts for counts, _ in scans), dtype=np.int64,
                                    count=sum(per_item))
        pairs = np.fromiter(chain.from_iterable(chain.from_iterable(counts.values() for counts, _ in scans)),
                            dtype=np.int64, count=2 * len(classes)).reshape(-1, 2)
        base = np.repeat(np.arange(n_items, dtype=np.int64) * n_profiles, per_item)  # each class's item's first cell
        title, abstract = pairs[:, 0], pairs[:, 1]
        sat_title = title * (K1 + 1.0) / (title + K1)
        sat_abstract = abstract * (K1 + 1.0) / (abstract + K1)

        total = self._sum(self._keyword, classes, base, sat_title, sat_abstract, cells)
        described = self._description(classes, base, sat_title, sat_abstract, cells)
        if described is not None:
            total += described
        meaning = np.zeros(cells, dtype=np.float64)
        if excess is not None and len(self._semantic):
            at = (np.arange(n_items, dtype=np.int64) * n_profiles)[:, None] + self._semantic[None, :]
            meaning[at.reshape(-1)] = np.floor(
                SEMANTIC_SLOPE * np.maximum(0.0, excess) * SCALE + 0.5).reshape(-1)
            total += meaning
        if self._required.any():  # keywords, description and meaning count only with a require term present
            opened = np.zeros(cells, dtype=bool)
            opened[self._cells(self._require, classes, base)] = True
            shut = (self._required[None, :] & ~opened.reshape(n_items, n_profiles)).reshape(-1)
            total[shut] = 0.0
            meaning[shut] = 0.0
        author_cells, author_quanta = [], []
        for i, (_, authors) in enumerate(scans):
            for p, names in authors.items():
                author_cells.append(i * n_profiles + p)
                author_quanta.append(len(names) * self._author[p])
        if author_cells:
            total[author_cells] += author_quanta
        if len(self._exclude):
            total[self._cells(self._exclude, classes, base)] = 0.0
        score = total.reshape(n_items, n_profiles)
        bar = self._min if floor is None else floor
        passing = (score > 0) & (score * QUANTUM + _EPSILON >= bar[None, :])
        kept = np.flatnonzero(passing)
        return kept // n_profiles, kept % n_profiles, total[kept], meaning[kept]

    @staticmethod
    def _cells(postings: Postings, classes: Ints, base: Ints) -> Ints:
        at, lengths = postings.gather(classes)
        return np.repeat(base, lengths) + postings.profile[at]

    @staticmethod
    def _quanta(postings: Postings, classes: Ints, base: Ints, sat_title: Floats,
                sat_abstract: Floats) -> tuple[Ints, Floats, Floats]:
        """Each posting of `classes`: its cell, and what it adds in the title and in the abstract, in quanta
        (`quantise` on arrays)."""
        at, lengths = postings.gather(classes)
        title = np.floor(postings.title[at] * np.repeat(sat_title, lengths) * SCALE + 0.5)
        abstract = np.floor(postings.abstract[at] * np.repeat(sat_abstract, lengths) * SCALE + 0.5)
        return np.repeat(base, lengths) + postings.profile[at], title, abstract

    def _sum(self, postings: Postings, classes: Ints, base: Ints, sat_title: Floats, sat_abstract: Floats,
             cells: int) -> Floats:
        where, title, abstract = self._quanta(postings, classes, base, sat_title, sat_abstract)
        return _sums(where, title + abstract, cells)

    def _description(self, classes: Ints, base: Ints, sat_title: Floats, sat_abstract: Floats,
                     cells: int) -> Floats | None:
        """Description words: raw quanta summed per cell (d), then each scaled by CAP / (d + CAP) and quantised
        again, as `Matcher._described` does."""
        postings = self._described
        if not len(postings):
            return None
        where, title, abstract = self._quanta(postings, classes, base, sat_title, sat_abstract)
        raw = _sums(where, title + abstract, cells)
        scale = DESCRIPTION_CAP / (raw[where] * QUANTUM + DESCRIPTION_CAP)
        scaled = np.floor(title * QUANTUM * scale * SCALE + 0.5) + np.floor(abstract * QUANTUM * scale * SCALE + 0.5)
        return _sums(where, scaled, cells)


def _sums(cells: Ints, quanta: Floats, n: int) -> Floats:
    """Quanta added up per cell: whole numbers below 2⁵³, so exact in any order."""
    return np.bincount(cells, quanta, minlength=n).astype(np.float64, copy=False)


class PairBuffer:
    """Pairs appended chunk by chunk into four arrays that double when full.

    Why not a list of each chunk's arrays: a pass appends ~150 small results, which land in the heap between the
    chunks' temporaries and are not given back once merged (~50 MB more resident memory for 2,000 papers against
    10,000 profiles). Large arrays are mapped and unmapped whole, and their unused tail costs no memory. The
    meaning column starts as zeros the OS has not handed out yet and is written only where meaning added
    something: without the semantic extra it costs nothing.
    """

    __slots__ = ("_arrays", "_meant", "_n")
    _DTYPES = (np.int32, np.int32, np.float64)

    def __init__(self) -> None:
        self._n, self._meant = 0, False
        self._arrays: list[NDArray[Any]] = self._empty()

    def _empty(self) -> list[NDArray[Any]]:
        return [np.empty(0, dtype=dtype) for dtype in self._DTYPES] + [np.zeros(0)]

    def __len__(self) -> int:
        return self._n

    def add(self, positions: Ints, profiles: Ints, quanta: Floats, meaning: Floats) -> None:
        start, end = self._n, self._n + len(quanta)
        if end > len(self._arrays[0]):
            capacity = max(end, 2 * len(self._arrays[0]), 1 << 16)
            grown = [np.empty(capacity, dtype=dtype) for dtype in self._DTYPES] + [np.zeros(capacity)]
            for old, new in zip(self._arrays if self._meant else self._arrays[:3], grown, strict=False):
                new[:start] = old[:start]
            self._arrays = grown
        for array, values in zip(self._arrays, (positions, profiles, quanta), strict=False):
            array[start:end] = values
        if meaning.any():
            self._arrays[3][start:end] = meaning
            self._meant = True
        self._n = end

    def take(self) -> Pairs:
        """The pairs added so far (views), the buffer emptied."""
        n, arrays = self._n, self._arrays
        self._n, self._meant, self._arrays = 0, False, self._empty()  # the views alone keep the arrays alive
        return arrays[0][:n], arrays[1][:n], arrays[2][:n], arrays[3][:n]


def best_pairs(kept: Pairs, pending: list[Pairs], top: int | None, bar: Floats) -> Pairs:
    """`kept` and `pending` pairs grouped by profile, best first, ties by position; with `top`, only each
    profile's first `top`, and `bar[p]` raised to the worst of those once a profile holds `top`.

    Two stable sorts, by score then by profile (a radix sort on 16-bit ids), keep equal scores in the order they
    come: `kept` (earlier positions, in position order within a profile and score) before `pending` (in position
    order), so ties stay by position without sorting on it.
    """
    # Column by column, each chunk's arrays dropped once copied: the peak stays near two copies of one column
    # plus the order, not two copies of every pair (planning ranks every pair of a day: ~1.4 M of them).
    columns = [[kept[i], *(chunk[i] for chunk in pending)] for i in range(4)]
    pending.clear()
    quanta = _drained(columns[2])
    profiles = _drained(columns[1])
    order = np.argsort(-quanta, kind="stable")
    ids = profiles[order]
    order = order[np.argsort(ids.astype(np.uint16) if len(bar) <= 1 << 16 else ids, kind="stable")]
    del ids
    if top is not None:
        grouped = profiles[order]
        starts = np.flatnonzero(np.diff(grouped, prepend=-1))  # where each profile's run begins
        rank = np.arange(len(order)) - np.repeat(starts, np.diff(starts, append=len(order)))
        last = order[rank == top - 1]
        bar[profiles[last]] = quanta[last]
        order = order[rank < top]
    positions = _drained(columns[0])[order]
    meaning = _drained(columns[3])
    meaning = meaning[order] if meaning.any() else np.zeros(len(order))  # zeros: no page touched
    return positions, profiles[order], quanta[order], meaning


def _drained(parts: list[NDArray[Any]]) -> NDArray[Any]:
    """The parts as one array, the list emptied (so that the parts can be freed as soon as they are copied)."""
    full = [part for part in parts if len(part)] or parts[:1]
    whole = full[0] if len(full) == 1 else np.concatenate(full)
    del full
    parts.clear()
    return whole
