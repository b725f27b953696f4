"""The one scoring engine: compiled profiles × items → `ScoredItem`s that carry their reasons.

Planning (digests and alerts), `digestbot preview`, `digestbot rank` and the benchmarks all call
`Matcher.rank_all` (or `rank` and `passing`, which are views of it), so a paper, a profile and a corpus give the
same score and reasons everywhere.

Matching (see `bot.scoring.text`): whole tokens only, light stemming, hyphen = space, accents folded, markup
stripped, short ALL-CAPS terms (acronyms) case-sensitive. Every profile is compiled into one trie of token keys,
so each item is tokenised once and its cost grows with its text and its matches, not with profiles × keywords.

The score of an item for a profile is a sum of three kinds of evidence, and the followed authors:

    score = keywords + description words + meaning (+ authors)

- keywords: per matched keyword and field, `weight · phrase · field_weight · sat(count)`. `weight` is 1 unless
  `keywords` is a table of term → weight; `phrase` = min(1 + 0.5 · (tokens − 1), 2) (a phrase is more specific
  than a word); `field_weight` is `fields.title` (2) or `fields.abstract` (1); `sat(c) = c · 2.2 / (c + 1.2)`
  is BM25's saturation (sat(1) = 1, sat(2) ≈ 1.4, sat(∞) = 2.2). Keywords are what the reader typed: however
  many papers of the corpus contain one, it keeps its full weight, so one keyword once in the abstract scores
  exactly 1.0 (the default min_score) and once in the title 2.0, on day 1 as on day 100.
- description words: the content words and word pairs of `description`, weight `DESCRIPTION_WEIGHT` times their
  specificity in the corpus (the BM25 IDF of their document frequency over that of a word in 10% of the corpus,
  shrunk towards 1 for small corpora), so a word most papers use ("model", "large language") adds almost
  nothing. Their sum d is squashed to d / (1 + d) < 1: words alone never reach min_score 1.
- meaning (the `semantic` extra, profiles with a `description`): `SEMANTIC_SLOPE · max(0, excess)`, where excess
  is how far the similarity of the description's and the paper's embeddings rises above its floor: the raw
  cosine above 0.4, or the cosine of both vectors centred on the corpus's mean paper above 0.05, whichever is
  greater (`bot.scoring.semantic`). A paper squarely on the description's topic reaches min_score without a
  keyword; one that only shares the corpus's common ground adds nothing.
- authors: each followed author on the paper adds `fields.authors · max(min_score, 1)`, never less than
  min_score, so any paper by them is kept (unless excluded), whatever `require` says.

Any `exclude` term anywhere vetoes the profile for that item. With `require`, keywords, description words and
meaning count only if one require term occurs. Each contribution is rounded to a multiple of 2⁻²⁴
(`bot.scoring.batch.QUANTUM`) and the sum is exact, so the score is deterministic whatever the order of
summation; ranking ties are broken by item id. The reasons of a `ScoredItem` are the same contributions, one per
term and field, so they add up to its score.

The corpus: rarity and the centre of meaning come from a corpus, `with_corpus(items)`: the items stored in the
last 30 days when planning and previewing, the items file for `digestbot rank`. `corpus_size` says how many.

Speed: `rank_all(items, top=N)` scores chunks of items against every profile at once in NumPy arrays
(`bot.scoring.batch`), keeps each profile's best N and builds `ScoredItem`s and `Reason`s only for those, item by
item so that profiles sharing a keyword share its reasons.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from itertools import compress
from operator import attrgetter
from typing import Any, cast

import numpy as np
from numpy.typing import NDArray

from bot.config import ProfileConfig
from bot.models import Item, Reason, ScoredItem
from bot.scoring.batch import (
    NO_PAIRS,
    QUANTUM,
    SCALE,
    BatchScorer,
    PairBuffer,
    Pairs,
    Postings,
    Scan,
    best_pairs,
    saturate,
)
from bot.scoring.compile import AUTHOR, DESCRIPTION, DESCRIPTION_CAP, Index, compile_index
from bot.scoring.keywords import BY_WEIGHT, SAT, Keywords, as_python, bm25_idf, gc_paused, keyword_reasons
from bot.scoring.scan import Counts, count_classes
from bot.scoring.semantic import SEMANTIC, SEMANTIC_FIELD, SEMANTIC_TERM, Similarity, similarity_for

__all__ = ["Matcher", "compile_profiles"]

IDF_REFERENCE_FRACTION = 0.1
IDF_SHRINK_DOCS = 20
SCAN_CACHE_ITEMS = 5_000
_Described = tuple[str, str, int, int]  # a matched description word: label, field, count, weight in quanta
_ID = attrgetter("id")
_MERGE_PAIRS = 400_000


class Matcher:
    """All profiles compiled into one index; immutable once built (`with_corpus` returns a new one)."""

    _shared: Keywords

    def __init__(self, index: Index, idf: Sequence[float] | None = None, similarity: Similarity | None = None,
                 corpus_size: int = 0, *, base: Matcher | None = None) -> None:
        """`base`: a matcher of the same index and profiles whose keyword structures (which no corpus changes)
        are shared rather than built again (`with_corpus`, every cycle)."""
        self._ix = index
        self.corpus_size = corpus_size
        self._similar = similarity  # the semantic signal (`bot.scoring.semantic`), for the profiles in `_semantic`
        self._semantic = similarity.profiles if similarity is not None else ()
        self._idf = list(idf) if idf is not None else [1.0] * index.n_classes
        profiles = index.profiles
        self._batch: BatchScorer | None = None  # built on first use
        shared: Keywords = base._shared if base is not None else Keywords(index)
        self._shared = shared
        self._names, self._by_name, self._scans, self._heads = shared.names, shared.by_name, shared.scans, shared.heads
        self._keyword_terms, self._keyword_classes = shared.terms, shared.classes
        self._min, self._author_quanta, self._followed = shared.min, shared.author_quanta, shared.followed
        # Rarity weighs description words only: a keyword is what the reader asked for, however common.
        self._wt, self._wa = list(shared.title), list(shared.abstract)
        for profile in profiles:
            for t in profile.described:
                weight = index.term_base[t] * self._idf[index.term_class[t]]
                owner = profiles[index.term_profile[t]]
                self._wt[t], self._wa[t] = weight * owner.title_weight, weight * owner.abstract_weight
        self._described_terms = [tuple((index.term_class[t], index.term_label[t], self._wt[t], self._wa[t])
                                       for t in profile.described) for profile in profiles]
        self._described_classes = [tuple(index.term_class[t] for t in profile.described) for profile in profiles]
        # Profiles scored by their keywords alone (no require, no description, no meaning): their reasons are
        # shared by every profile matched by the same keywords
        semantic = frozenset(self._semantic)
        self._plain = [not (profile.require or profile.described) and p not in semantic
                       for p, profile in enumerate(profiles)]

    @property
    def profiles(self) -> tuple[str, ...]:
        return self._names

    @property
    def semantic(self) -> bool:
        """Whether meaning (the `semantic` extra) takes part in the score of at least one profile."""
        return bool(self._semantic)

    def embed(self, items: Sequence[Item]) -> list[Any] | None:
        """The items' meaning vectors when meaning takes part in the score (the semantic extra, a profile with a
        description), else None: readers' tastes then learn in meaning too (`bot.scoring.feedback`)."""
        return self._similar.vectors(items) if self._similar is not None else None

    def min_score(self, profile: str) -> float:
        return self._ix.profiles[self._profile_index(profile)].min_score

    def max_items(self, profile: str) -> int | None:
        """The profile's own cap on items per digest (`max_items`), or None when it leaves that to the recipient."""
        return self._ix.profiles[self._profile_index(profile)].max_items

    def with_corpus(self, items: Sequence[Item]) -> Matcher:
        """The same profiles with description words' rarity and the centre of meaning taken from `items` (e.g.
        recently stored papers); `[]` drops both again."""
        n = len(items)
        similar = self._similar.centered(items) if self._similar is not None else None
        if n == 0:
            return Matcher(self._ix, None, similar, 0, base=self)
        df = [0] * self._ix.n_classes
        with gc_paused():  # the scans are kept, many small acyclic objects
            for item in items:
                for c in self._scan(item)[0]:
                    df[c] += 1
        ref = bm25_idf(n, max(1.0, IDF_REFERENCE_FRACTION * n))
        shrink = n / (n + IDF_SHRINK_DOCS)
        idf = [1.0 + shrink * (bm25_idf(n, d) / ref - 1.0) for d in df]
        return Matcher(self._ix, idf, similar, n, base=self)

    def score(self, item: Item) -> dict[str, ScoredItem]:
        """Every profile the item matched (score > 0, no exclude term), whatever its min_score."""
        return {name: ranked[0] for name, ranked in self.rank_all([item], with_below_min=True).items() if ranked}

    def passing(self, item: Item) -> list[ScoredItem]:
        """The profiles whose min_score the item reaches, with reasons (`rank_all` of one item)."""
        return [s for ranked in self.rank_all([item]).values() for s in ranked]

    def passing_many(self, items: Sequence[Item]) -> dict[str, dict[str, ScoredItem]]:
        """Item id → profile → `ScoredItem`, for every pair that reaches its profile's min_score (planning)."""
        out: dict[str, dict[str, ScoredItem]] = {item.id: {} for item in items}
        for name, ranked in self.rank_all(items).items():
            for scored in ranked:
                out[scored.item.id][name] = scored
        return out

    def rank(self, items: Sequence[Item], profile: str, *, top: int | None = None,
             with_below_min: bool = False) -> list[ScoredItem]:
        """Best first, ties by item id; only score ≥ min_score unless `with_below_min` (for previews)."""
        return self.rank_all(items, top=top, profiles=[profile], with_below_min=with_below_min)[profile]

    def rank_all(self, items: Sequence[Item], *, top: int | None = None, profiles: Sequence[str] | None = None,
                 with_below_min: bool = False) -> dict[str, list[ScoredItem]]:
        """Per profile (all, or those named), its items best first, ties by item id: each profile's best `top`
        (all with None) of those at or above its min_score (above 0 with `with_below_min`).

        Scores come from `bot.scoring.batch` (NumPy arrays over chunks of items × every profile); `ScoredItem`s
        and their reasons are built only for what is kept. The cyclic garbage collector is paused meanwhile.
        """
        wanted = None if profiles is None else {self._profile_index(name) for name in profiles}
        if self._similar is not None:
            self._similar.warm(items)
        ordered = sorted(items, key=_ID)
        floor = None  # each profile's min_score
        if with_below_min or wanted is not None:
            floor = np.zeros(len(self._names)) if with_below_min else np.asarray(self._min, dtype=np.float64)
            if wanted is not None:  # profiles not asked for never pass
                floor[[p for p in range(len(self._names)) if p not in wanted]] = np.inf
        with gc_paused():
            positions, found, _, meaning = self._batch_scores(ordered, top, floor)
            ranked = self._explained(ordered, positions, found, meaning)
        return ranked if wanted is None else {self._names[p]: ranked[self._names[p]] for p in sorted(wanted)}

    def _batch_scores(self, ordered: Sequence[Item], top: int | None, floor: NDArray[np.float64] | None) -> Pairs:
        """(position in `ordered`, profile id, score in quanta, meaning in quanta) of every passing pair, or of each
        profile's best `top`, grouped by profile, best first, ties by position (= by id).

        With `top`, what is kept so far is merged every `_MERGE_PAIRS` new pairs, and each profile's worst kept
        score once it holds `top` becomes the bar a new pair must beat (an equal score comes later in id order, so
        it would rank below): memory stays near profiles × top pairs, not one per match.
        """
        if top is not None and top <= 0:
            return NO_PAIRS
        batch = self._batch_scorer()
        step = batch.chunk_items
        bar = np.zeros(len(self._names), dtype=np.float64)  # passing pairs have quanta > 0
        kept, pending = NO_PAIRS, PairBuffer()
        for start in range(0, len(ordered), step):
            chunk = ordered[start:start + step]
            rows, profiles, quanta, meaning = batch.chunk([self._scan(item) for item in chunk], self._excess(chunk),
                                                          floor=floor)
            if top is not None:
                beats = quanta > bar[profiles]
                rows, profiles, quanta, meaning = rows[beats], profiles[beats], quanta[beats], meaning[beats]
            pending.add(rows + start, profiles, quanta, meaning)
            if top is not None and len(pending) >= _MERGE_PAIRS:
                kept = best_pairs(kept, [pending.take()], top, bar)
        return best_pairs(kept, [pending.take()], top, bar)

    def explain(self, ordered: Sequence[Item], positions: NDArray[np.int32], profiles: NDArray[np.int32],
                meaning: NDArray[np.float64], *, memos: dict[int, dict[Any, Any]] | None = None) -> list[ScoredItem]:
        """`ScoredItem`s with their reasons for the given (position in `ordered`, profile id, meaning in quanta)
        pairs, in the order given. Built item by item, so one item's reasons for a keyword are shared by its
        profiles (across calls too, with `memos`: position → what its matched keywords add). The reasons are the
        contributions the arrays added up, one per term and field; the score is their sum."""
        out: list[ScoredItem | None] = [None] * len(positions)
        by_item = np.argsort(positions, kind="stable")
        current = -1
        memo: dict[Any, Any] = {}
        plain, names, terms, classes = self._plain, self._names, self._keyword_terms, self._keyword_classes
        scored_item = ScoredItem
        with gc_paused():  # many small acyclic objects: see `gc_paused`
            for slot, position, p, semantic in as_python(by_item, positions, profiles, meaning):
                if position != current:
                    current, item = position, ordered[position]
                    memo = {} if memos is None else memos.setdefault(position, {})  # one memo per item
                    scan = memo.get(None)
                    if scan is None:
                        scan = memo[None] = self._scan(item)
                    counts, authors = scan
                    get = counts.get
                if plain[p] and p not in authors:  # keywords only: `_scored` without the steps that do nothing
                    matched = tuple(compress(terms[p], map(get, classes[p])))
                    found = memo.get(matched)
                    if found is None:
                        found = memo[matched] = keyword_reasons(matched, counts)
                    out[slot] = scored_item(item, names[p], found[2], found[1])
                else:
                    out[slot] = self._scored(item, p, counts, authors.get(p), int(semantic), memo)
        return cast(list[ScoredItem], out)  # every slot filled: `by_item` is a permutation

    def pairs(self, items: Sequence[Item]) -> tuple[list[Item], Pairs]:
        """Every (item, profile) pair that reaches the profile's min_score, as arrays (no `ScoredItem` built yet):
        the items sorted by id, and (position, profile id, score in quanta, meaning in quanta) grouped by profile,
        best first. For callers that explain only some of them (`explain`), such as planning."""
        if self._similar is not None:
            self._similar.warm(items)
        ordered = sorted(items, key=_ID)
        with gc_paused():
            return ordered, self._batch_scores(ordered, None, None)

    def profile_id(self, profile: str) -> int:
        return self._profile_index(profile)

    def _explained(self, ordered: Sequence[Item], positions: NDArray[np.int32], profiles: NDArray[np.int32],
                   meaning: NDArray[np.float64]) -> dict[str, list[ScoredItem]]:
        """`explain` for pairs grouped by profile in ranking order → each profile's ranked `ScoredItem`s."""
        scored = self.explain(ordered, positions, profiles, meaning)
        ends = np.cumsum(np.bincount(profiles, minlength=len(self._names))).tolist()
        starts = [0, *ends[:-1]]
        return {name: scored[start:end] for name, start, end in zip(self._names, starts, ends, strict=True)}

    def _scored(self, item: Item, p: int, counts: Counts, authors: list[str] | None, semantic: int,
                memo: dict[Any, Any]) -> ScoredItem:
        """One kept pair with its reasons: what each matched term, the meaning and each followed author added."""
        profile = self._ix.profiles[p]
        total, reasons = 0, cast(tuple[Reason, ...], ())
        extra: list[Reason] = []
        if not profile.require or any(c in counts for c in profile.require):
            matched = tuple(compress(self._keyword_terms[p], map(counts.get, self._keyword_classes[p])))
            found = memo.get(matched)
            if found is None:
                found = memo[matched] = keyword_reasons(matched, counts)
            total, reasons, score = found
            if self._plain[p] and not authors:
                return ScoredItem(item, profile.name, score, reasons)
            for label, field, n, q in self._described(p, counts):
                total += q
                extra.append(Reason(label, field, n, q * QUANTUM, DESCRIPTION))
            if semantic > 0:
                total += semantic
                extra.append(Reason(SEMANTIC_TERM, SEMANTIC_FIELD, 1, semantic * QUANTUM, SEMANTIC))
        for name in authors or ():
            total += self._author_quanta[p]
            extra.append(Reason(name, "authors", 1, self._author_quanta[p] * QUANTUM, AUTHOR))
        if extra:  # keyword reasons come sorted; a stable sort keeps config order among equal weights
            extra[:0] = reasons
            extra.sort(key=BY_WEIGHT, reverse=True)
            reasons = tuple(extra)
        return ScoredItem(item, profile.name, total * QUANTUM, reasons)

    def _batch_scorer(self) -> BatchScorer:
        """The profiles' postings as arrays (`bot.scoring.batch`), built once per matcher."""
        if self._batch is None:
            ix = self._ix
            keyword = [t for profile in ix.profiles for t in profile.keywords] if self._shared.postings is None else []
            described = [t for profile in ix.profiles for t in profile.described]
            exclude = [(c, p) for p, profile in enumerate(ix.profiles) for c in profile.exclude]
            require = [(c, p) for p, profile in enumerate(ix.profiles) for c in profile.require]

            def terms(ids: list[int]) -> Postings:
                return Postings(ix.n_classes, [ix.term_class[t] for t in ids], [ix.term_profile[t] for t in ids],
                                [self._wt[t] for t in ids], [self._wa[t] for t in ids])

            if self._shared.postings is None:
                self._shared.postings = terms(keyword)
            self._batch = BatchScorer(
                len(ix.profiles), self._shared.postings, terms(described),
                Postings(ix.n_classes, [c for c, _ in exclude], [p for _, p in exclude]),
                Postings(ix.n_classes, [c for c, _ in require], [p for _, p in require]),
                self._min, [bool(profile.require) for profile in ix.profiles], self._author_quanta, self._semantic)
        return self._batch

    def _excess(self, chunk: Sequence[Item]) -> NDArray[np.float64] | None:
        """How far the chunk's similarity to every semantic profile's description rises above its floor (rows:
        items), or None."""
        if self._similar is None or not self._semantic:
            return None
        rows = [self._similar.excess(item) for item in chunk]
        if any(row is None for row in rows):
            return None  # the model failed: no semantic contribution
        return np.array(rows, dtype=np.float64)

    def _profile_index(self, profile: str) -> int:
        try:
            return self._by_name[profile]
        except KeyError:
            known = ", ".join(self._names) or "none"
            raise KeyError(f"no profile named {profile!r} (profiles: {known})") from None

    def _scan(self, item: Item) -> Scan:
        """Class counts and followed authors of one item; the text is normalised and tokenised once here."""
        held = self._scans.get(item.id)
        if held is not None and (held[0] is item or (held[0].title == item.title
                                                     and held[0].abstract == item.abstract
                                                     and held[0].authors == item.authors)):
            return held[1]
        scan = count_classes(self._heads, item.title, item.abstract), self._followed.on(item.authors)
        if len(self._scans) >= SCAN_CACHE_ITEMS:
            self._scans.clear()
        self._scans[item.id] = (item, scan)
        return scan

    def _described(self, p: int, counts: Counts) -> list[_Described]:
        """Matched description words with their weights in quanta, whose sum d is squashed to d / (1 + d) so they
        never reach 1 alone (the arithmetic of `BatchScorer._description`, word by word)."""
        found: list[_Described] = []
        floor = math.floor  # `quantise`, inlined: the same arithmetic
        for c, label, wt, wa in compress(self._described_terms[p], map(counts.get, self._described_classes[p])):
            t, a = counts[c]
            if t:
                found.append((label, "title", t, floor(wt * (SAT[t] if t < 64 else saturate(t)) * SCALE + 0.5)))
            if a:
                found.append((label, "abstract", a, floor(wa * (SAT[a] if a < 64 else saturate(a)) * SCALE + 0.5)))
        if not found:
            return found
        scale = DESCRIPTION_CAP / (sum([q for *_, q in found]) * QUANTUM + DESCRIPTION_CAP)
        return [(label, field, n, floor(q * QUANTUM * scale * SCALE + 0.5)) for label, field, n, q in found]


def compile_profiles(profiles: Mapping[str, ProfileConfig], *, corpus: Sequence[Item] = (),
                     semantic: bool | None = None) -> Matcher:
    """Compile every profile into one matcher; with `corpus`, description words' rarity and the centre of
    meaning come from it (see module docstring).

    `semantic`: None (the default) adds semantic similarity to every profile with a `description` (and not
    `semantic = false`) when the `semantic` extra is installed; False never; True whenever the model loads.
    """
    described = {p: profile.description for p, profile in enumerate(profiles.values())
                 if profile.description and profile.description.strip() and profile.semantic}
    similarity = similarity_for(described, enabled=semantic) if semantic is not False else None
    with gc_paused():
        matcher = Matcher(compile_index(profiles), None, similarity)
        return matcher.with_corpus(corpus) if corpus else matcher
