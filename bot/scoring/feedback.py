"""Learning from a reader's 👍 / 👎: the ranking within a profile moves towards papers like those they liked.

The profile stays the reader's explicit intent: only papers the profile itself scored (a keyword, a description
word or the meaning matched, and no `exclude` vetoed them) move, and nothing moves before the first rating.

The model is Rocchio's, over the papers' words: every paper is a vector of its stemmed content words and word
pairs (title words count twice), weighted by how rare they are in the corpus (IDF) and scaled to unit length.
The reader's taste is

    taste(x) = cos(x, mean of liked papers) - DISLIKE_SHARE · cos(x, mean of disliked papers)

and a paper's score for the profile becomes

    score + FEEDBACK_WEIGHT · n / (n + EVIDENCE_PRIOR) · z(taste(x))

where z standardises taste over the papers being ranked (so the shift is in units of how much tastes differ
among them, whatever the corpus) and n is the number of ratings: a weight that grows with the evidence, so a few
ratings move little. Only the papers the reader has not rated set the scale. What a rating added is a reason of its
own (kind "feedback"), shown beside the keywords: "like 3 papers you rated 👍 (e.g. "…")", "like papers you rated
👎" or "less like what you rated 👍".

`bench/feedback.py` measures it with a simulated reader on the judged corpus (see BENCHMARKS.md); the weight and
prior are what leaving one development profile out chooses there.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from bot.errors import ConfigError
from bot.models import Item, Reason, ScoredItem
from bot.scoring.batch import QUANTUM, SCALE
from bot.scoring.text import STOPWORDS, stem, tokens

FEEDBACK_WEIGHT = 1.0  # how far (in standard deviations of taste among the papers ranked) full evidence moves one
EVIDENCE_PRIOR = 20  # ratings at which feedback has half its weight
DISLIKE_SHARE = 0.5  # a 👎 pushes away half as hard as a 👍 pulls
FEEDBACK = "feedback"  # the Reason kind
_LIKE_SHOWN = 60  # characters of a liked paper's title quoted in a reason


@dataclass(frozen=True, slots=True)
class Rating:
    """A reader's verdict on one paper: +1 (👍) or -1 (👎)."""

    item_id: str
    rating: int


def load_ratings(path: Path) -> list[Rating]:
    """`{"id": "arxiv:…", "rating": 1 | -1}` per line (the contract of `digestbot rank --ratings`); a later line
    for the same paper replaces an earlier one, as a changed rating does."""
    found: dict[str, Rating] = {}
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise ConfigError(f"cannot read ratings file {path}: {exc.strerror or exc}") from exc
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            data = json.loads(line)
            rating = Rating(str(data["id"]), int(data["rating"]))
        except (ValueError, KeyError, TypeError) as exc:
            raise ConfigError(f"{path}:{number}: expected {{\"id\": \"...\", \"rating\": 1 or -1}}, got {line[:80]!r}",
                              hint="One JSON object per line.") from exc
        if rating.rating not in (1, -1):
            raise ConfigError(f"{path}:{number}: rating must be 1 (👍) or -1 (👎), got {rating.rating}")
        found[rating.item_id] = rating
    return list(found.values())


_stem = lru_cache(maxsize=1 << 17)(stem)  # a corpus has tens of thousands of distinct words, not millions
_BAGS: dict[str, tuple[str, str, Counter[str]]] = {}  # item id → (title, abstract, its words): kept across passes
_MAX_BAGS = 200_000  # ~ two months of a busy install's papers; past it the cache starts over


def _words(item: Item) -> Counter[str]:
    """Stemmed content words and adjacent word pairs; the title counts twice. Kept per item (the daemon plans
    every tick over mostly the same papers; the words cost ~1 ms a paper)."""
    kept = _BAGS.get(item.id)
    if kept is not None and kept[0] == item.title and kept[1] == item.abstract:
        return kept[2]
    bag: Counter[str] = Counter()
    for text, times in ((item.title, 2), (item.abstract, 1)):
        stems = [_stem(t.lower()) for t in tokens(text) if t.lower() not in STOPWORDS and not t.isdigit()]
        for word in stems:
            bag[word] += times
        for first, second in zip(stems, stems[1:], strict=False):
            bag[f"{first} {second}"] += times
    if len(_BAGS) >= _MAX_BAGS:
        _BAGS.clear()
    _BAGS[item.id] = (item.title, item.abstract, bag)
    return bag


Embed = Callable[[Sequence[Item]], "Sequence[NDArray[Any]] | None"]  # `Matcher.embed`


class PaperVectors:
    """Every paper of a ranking (and every rated one) as a unit-length vector of IDF-weighted words, in one sparse
    matrix (CSR arrays), and, with `embed` (the semantic extra, `Matcher.embed`), as its meaning vector. Built once
    per corpus and shared by every reader's `Taste`, so a reader costs two centroids and one matrix-vector product,
    not a pass over the papers' text."""

    def __init__(self, corpus: Sequence[Item], others: Iterable[Item] = (), embed: Embed | None = None) -> None:
        self.corpus = corpus
        papers = {item.id: item for item in corpus}
        bags = {item.id: _words(item) for item in corpus}
        frequency: Counter[str] = Counter()
        for bag in bags.values():
            frequency.update(bag.keys())
        n = max(len(bags), 1)
        for item in others:  # rated papers outside the corpus: vectors by the corpus's rarity
            if item.id not in bags:
                bags[item.id] = _words(item)
                papers[item.id] = item
        self.columns: dict[str, int] = {}
        self.rows = {paper: row for row, paper in enumerate(bags)}
        indptr: list[int] = [0]
        indices: list[int] = []
        data: list[float] = []
        for bag in bags.values():
            weights = [(self.columns.setdefault(w, len(self.columns)),
                        (1.0 + math.log(c)) * math.log((n + 1) / (frequency.get(w, 0) + 0.5))) for w, c in bag.items()]
            norm = math.sqrt(sum(x * x for _, x in weights)) or 1.0
            indices.extend(column for column, _ in weights)
            data.extend(x / norm for _, x in weights)
            indptr.append(len(indices))
        self.indptr = np.asarray(indptr, dtype=np.int64)
        self.indices = np.asarray(indices, dtype=np.int64)
        self.data = np.asarray(data, dtype=np.float64)
        self.meaning: NDArray[np.float64] | None = None  # one unit-length row per paper, in `rows` order
        found = embed(list(papers.values())) if embed is not None and papers else None
        if found is not None and len(found) == len(papers):
            self.meaning = np.asarray(np.stack(found), dtype=np.float64)

    def _entries(self, rows: Sequence[int]) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
        """The positions of these rows' entries in `indices`/`data`, in row order, and where each row's begin among
        them."""
        at = np.asarray(rows, dtype=np.int64)
        starts = self.indptr[at]
        lengths = self.indptr[at + 1] - starts
        firsts = np.cumsum(lengths) - lengths
        return np.repeat(starts - firsts, lengths) + np.arange(int(lengths.sum())), firsts

    def dense(self, rows: Sequence[int]) -> NDArray[np.float64]:
        """The mean of these rows as a dense vector over the words."""
        entries, _ = self._entries(rows)
        total = np.zeros(len(self.columns))
        np.add.at(total, self.indices[entries], self.data[entries])
        return total / max(len(rows), 1)

    def dot(self, rows: Sequence[int], vector: NDArray[np.float64]) -> NDArray[np.float64]:
        """Each row's dot product with a dense vector, for all rows at once."""
        entries, firsts = self._entries(rows)
        products = self.data[entries] * vector[self.indices[entries]]
        out = np.zeros(len(rows))
        filled = np.diff(np.append(firsts, len(entries))) > 0  # a paper with no words has no entries
        if filled.any():
            out[filled] = np.add.reduceat(products, firsts[filled])
        return out


class Taste:
    """One reader's ratings for one profile, as the two centroids of Rocchio's model (see the module docstring)."""

    def __init__(self, rated: Sequence[tuple[Item, int]], vectors: PaperVectors,
                 library: Collection[str] = ()) -> None:
        """`rated`: (paper, +1 or -1); `library`: the ids among them that come from the reader's starting library
        (`bot.scoring.library`), so that a reason names them as such, not as ratings."""
        self.vectors = vectors
        self.library = frozenset(library)
        self.count = len(rated)
        self.rated = {item.id for item, _ in rated}
        self.liked = [item for item, r in rated if r > 0]
        self.disliked = [item for item, r in rated if r < 0]
        self._liked_rows = [vectors.rows[item.id] for item in self.liked]
        self._liked_index = {item.id: i for i, item in enumerate(self.liked)}
        self._liked_entries: tuple[NDArray[np.int64], NDArray[np.int64]] | None = None  # built by `like`
        disliked_rows = [vectors.rows[item.id] for item, r in rated if r < 0]
        self._pull: NDArray[np.float64]
        self._push: NDArray[np.float64]
        if vectors.meaning is not None:  # in meaning: Rocchio over the papers' embeddings
            width = vectors.meaning.shape[1]
            self._pull = vectors.meaning[self._liked_rows].mean(axis=0) if self.liked else np.zeros(width)
            self._push = vectors.meaning[disliked_rows].mean(axis=0) if disliked_rows else np.zeros(width)
        else:
            self._pull = vectors.dense(self._liked_rows)
            self._push = vectors.dense(disliked_rows)
        self._taste = self._pull - DISLIKE_SHARE * self._push
        self.vector = self._taste  # taste(x) = x · vector, for a paper's unit-length vector x (`space`)
        self.space = "meaning" if vectors.meaning is not None else "words"

    def leanings(self, count: int = 8) -> tuple[list[str], list[str]]:
        """The words (and word pairs) the ratings weigh most for and against, as the reader wrote them: what
        `digestbot feedback` says was learned (in words, whichever space the ranking learns in)."""
        names = {column: word for word, column in self.vectors.columns.items()}
        weights = self.vectors.dense(self._liked_rows) - DISLIKE_SHARE * self.vectors.dense(
            [self.vectors.rows[item.id] for item in self.disliked])
        surface: dict[str, Counter[str]] = {}
        for item in self.liked + self.disliked:  # each stem as it was most often written
            words = [t for t in tokens(f"{item.title} {item.abstract}") if t.lower() not in STOPWORDS]
            for word in words:
                surface.setdefault(stem(word.lower()), Counter())[word.lower()] += 1
            for first, second in zip(words, words[1:], strict=False):
                key = f"{stem(first.lower())} {stem(second.lower())}"
                surface.setdefault(key, Counter())[f"{first.lower()} {second.lower()}"] += 1

        def shown(column: int) -> str:
            word = names[column]
            return surface[word].most_common(1)[0][0] if word in surface else word

        order = np.argsort(weights)
        more = [shown(int(c)) for c in order[::-1][:count] if weights[c] > 0]
        less = [shown(int(c)) for c in order[:count] if weights[c] < 0]
        return more, less

    def of_many(self, items: Sequence[Item]) -> NDArray[np.float64]:
        """taste(x) for each paper (every one must be among the vectors')."""
        return self._dot([self.vectors.rows[item.id] for item in items], self._taste)

    def _dot(self, rows: Sequence[int], vector: NDArray[np.float64]) -> NDArray[np.float64]:
        meaning = self.vectors.meaning
        return meaning[list(rows)] @ vector if meaning is not None else self.vectors.dot(rows, vector)

    def of(self, item: Item) -> float:
        return float(self.of_many([item])[0])

    def disliked_more(self, items: Sequence[Item]) -> NDArray[np.bool_]:
        """For each paper, whether it is closer to what the reader disliked than to what they liked."""
        if not items:
            return np.zeros(0, dtype=bool)
        rows = [self.vectors.rows[item.id] for item in items]
        return self._dot(rows, self._push) > self._dot(rows, self._pull)

    def like(self, items: Sequence[Item]) -> list[tuple[int, Item | None]]:
        """For each paper: how many liked papers it is close to (at least half as close as to the closest one), and
        the closest, for the reason; (0, None) when it shares no word with any. All at once: the papers' words
        become a small dense matrix over only the words they use, and every liked paper's entries among those
        words are summed into it in one pass (a paper at a time cost ~1 ms each, most of a reader's planning)."""
        if not items or not self.liked:
            return [(0, None)] * len(items)
        vectors = self.vectors
        if vectors.meaning is not None:
            meaning = vectors.meaning
            return self._closest(items, meaning[[vectors.rows[item.id] for item in items]] @
                                 meaning[self._liked_rows].T)
        mine, firsts = vectors._entries([vectors.rows[item.id] for item in items])
        lengths = np.diff(np.append(firsts, len(mine)))
        words, local = np.unique(vectors.indices[mine], return_inverse=True)
        chosen = np.zeros((len(items), len(words)))
        chosen[np.repeat(np.arange(len(items)), lengths), local] = vectors.data[mine]
        lookup = np.full(len(vectors.columns), -1, dtype=np.int64)
        lookup[words] = np.arange(len(words))
        if self._liked_entries is None:
            entries, starts = vectors._entries(self._liked_rows)
            counts = np.diff(np.append(starts, len(entries)))
            self._liked_entries = (entries, np.repeat(np.arange(len(self.liked)), counts))
        entries, owners = self._liked_entries
        at = lookup[vectors.indices[entries]]
        shared = at >= 0
        products = chosen[:, at[shared]] * vectors.data[entries[shared]]
        cells = (np.arange(len(items))[:, None] * len(self.liked) + owners[shared][None, :]).ravel()
        similarity = np.bincount(cells, weights=products.ravel(),
                                 minlength=len(items) * len(self.liked)).reshape(len(items), len(self.liked))
        return self._closest(items, similarity.astype(np.float64))

    def _closest(self, items: Sequence[Item], similarity: NDArray[np.float64]) -> list[tuple[int, Item | None]]:
        """`like`'s answer from each paper's similarity to each liked paper (a row per paper)."""
        found: list[tuple[int, Item | None]] = []
        for item, row in zip(items, similarity, strict=True):
            own = self._liked_index.get(item.id)
            if own is not None:
                row[own] = -np.inf  # a liked paper is not "like" itself
            best = int(np.argmax(row))
            if row[best] <= 0:
                found.append((0, None))
            else:
                found.append((int(np.count_nonzero(row >= row[best] / 2)), self.liked[best]))
        return found


class Ranking:
    """One profile's ranked papers made ready for many readers' tastes: their vectors' entries gathered once (per
    planning pass and window), so a reader's taste of all of them is one multiply and one sum."""

    def __init__(self, ranked: Sequence[ScoredItem], vectors: PaperVectors) -> None:
        self.ranked = ranked
        self.vectors = vectors
        entries, self._firsts = vectors._entries([vectors.rows[s.item.id] for s in ranked])
        self._columns = vectors.indices[entries]
        self._data = vectors.data[entries]
        self._filled = np.diff(np.append(self._firsts, len(entries))) > 0  # a paper with no words has no entries
        self.ids = [s.item.id for s in ranked]
        self.scores = np.asarray([s.score for s in ranked], dtype=np.float64)
        rows = [vectors.rows[s.item.id] for s in ranked]
        self._meaning = vectors.meaning[rows] if vectors.meaning is not None else None
        self.id_rank = np.empty(len(ranked), dtype=np.int64)  # ties by id, as everywhere
        self.id_rank[sorted(range(len(ranked)), key=self.ids.__getitem__)] = np.arange(len(ranked))

    def dot(self, vector: NDArray[np.float64]) -> NDArray[np.float64]:
        """Every paper's product with a taste's vector (`Taste.vector`, in the vectors' space)."""
        if self._meaning is not None:
            return self._meaning @ vector
        out = np.zeros(len(self.ranked))
        if self._filled.any():
            out[self._filled] = np.add.reduceat(self._data * vector[self._columns], self._firsts[self._filled])
        return out


def rescore(ranked: Sequence[ScoredItem] | Ranking, taste: Taste | None, *,
            min_score: float) -> list[tuple[ScoredItem, int]]:
    """Each of `ranked` (one profile's papers, every one it scored) that reaches `min_score` once the reader's
    taste has moved it, with the move in quanta, best first, ties by id; no reason built yet (`explained`).
    No ratings: `ranked`'s delivered papers in `ranked`'s order, unmoved."""
    papers = ranked.ranked if isinstance(ranked, Ranking) else ranked
    if taste is None or taste.count == 0 or not papers:
        return [(s, 0) for s in papers if s.score >= min_score]
    ranking = ranked if isinstance(ranked, Ranking) else Ranking(ranked, taste.vectors)
    order, shifts, _ = moves(ranking, taste, min_score=min_score)
    return [(papers[i], int(shifts[i])) for i in order.tolist()]


def moves(ranking: Ranking, taste: Taste, *,
          min_score: float) -> tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.float64]]:
    """`rescore` as arrays, for planning: the positions in `ranking` of the papers that pass, best first (ties by
    id); every paper's shift in quanta; every paper's moved score."""
    values = ranking.dot(taste.vector)
    unrated = np.fromiter((paper not in taste.rated for paper in ranking.ids), dtype=bool, count=len(values))
    pool = values[unrated] if unrated.any() else values  # the papers the reader has not seen yet set the scale
    mean, spread = float(pool.mean()), float(pool.std())
    weight = FEEDBACK_WEIGHT * taste.count / (taste.count + EVIDENCE_PRIOR)
    if spread > 0:
        shifts = np.floor(weight * (values - mean) / spread * SCALE + 0.5).astype(np.int64)
    else:
        shifts = np.zeros(len(values), dtype=np.int64)
    moved = ranking.scores + shifts * QUANTUM
    keep = np.flatnonzero(moved >= min_score)
    return keep[np.lexsort((ranking.id_rank[keep], -moved[keep]))], shifts, moved


def explained(moved: Sequence[tuple[ScoredItem, int]], taste: Taste | None) -> list[ScoredItem]:
    """Each paper moved by its shift in quanta, with the reason that says why (the nearest liked papers, found
    for all of them at once: only for the papers shown)."""
    if taste is None or not any(shift for _, shift in moved):
        return [scored for scored, _ in moved]
    lifted = [scored.item for scored, shift in moved if shift > 0]
    likes = dict(zip((item.id for item in lifted), taste.like(lifted), strict=True))
    lowered = [scored.item for scored, shift in moved if shift < 0]
    closer = dict(zip((item.id for item in lowered), taste.disliked_more(lowered).tolist(), strict=True))
    return [scored if shift == 0 else
            replace(scored, score=scored.score + shift * QUANTUM,
                    reasons=(*scored.reasons, _reason(taste, scored.item, shift, likes.get(scored.item.id),
                                                      closer.get(scored.item.id, False))))
            for scored, shift in moved]


def with_feedback(ranked: Sequence[ScoredItem], taste: Taste | None, *, min_score: float,
                  limit: int | None = None) -> list[ScoredItem]:
    """`ranked` (one profile's papers, every one it scored: `rank(..., with_below_min=True)`) re-scored with the
    reader's taste; those at or above `min_score`, best first, ties by id. No ratings: exactly `ranked`'s
    delivered papers in `ranked`'s order."""
    return explained(rescore(ranked, taste, min_score=min_score)[:limit], taste)


def _reason(taste: Taste, item: Item, shift: int, like: tuple[int, Item | None] | None,
            disliked_more: bool) -> Reason:
    if shift < 0:
        closer = "like papers you rated 👎" if disliked_more else "less like what you rated 👍"
        return Reason(closer, FEEDBACK, 0, shift * QUANTUM, FEEDBACK)
    count, closest = like or (0, None)
    if closest is None:
        return Reason("close to what you rated 👍", FEEDBACK, 0, shift * QUANTUM, FEEDBACK)
    title = closest.title if len(closest.title) <= _LIKE_SHOWN else closest.title[:_LIKE_SHOWN - 1] + "…"
    papers = "a paper" if count == 1 else f"{count} papers"
    where = "in your library" if closest.id in taste.library else "you rated 👍"
    return Reason(f"like {papers} {where} (e.g. “{title}”)", FEEDBACK, count, shift * QUANTUM, FEEDBACK)


def taste_of(ratings: Iterable[Rating], items: Mapping[str, Item], corpus: Sequence[Item],
             embed: Embed | None = None) -> Taste | None:
    """The taste these ratings teach, over the papers among `items` (a rating of a paper not there is unknown and
    left out), with `corpus` (which must hold every paper to be ranked) for the words' rarity, in meaning with
    `embed` (`Matcher.embed`); None without any."""
    rated = [(items[r.item_id], r.rating) for r in ratings if r.item_id in items]
    return Taste(rated, PaperVectors(corpus, (item for item, _ in rated), embed)) if rated else None
