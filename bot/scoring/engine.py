"""Profile scoring: compiled keyword profiles × items → `ScoredItem`s that carry their reasons.

Matching (see `bot.scoring.text`): whole tokens only, light stemming, hyphen = space, accents folded, markup
stripped, short ALL-CAPS terms (acronyms) case-sensitive. Every profile is compiled into one trie of token keys,
so each item is tokenised once and its cost grows with its text and its matches, not with profiles × keywords.

The score of an item for a profile is a sum over the profile's matched terms and the two fields:

    contribution(term, field) = base(term) · phrase(term) · idf(term) · field_weight · sat(count)

- `base` is the keyword's weight (1 unless `keywords` is a table of term → weight) and `DESCRIPTION_WEIGHT`
  for a word or word pair taken from the profile's
  `description`; the description terms' sum d is then squashed to d / (1 + d) < 1, so the description orders
  papers that match no keyword (and adds a little to those that do) but never by itself reaches min_score 1.
- `phrase` = min(1 + 0.5 · (tokens − 1), 2): a matched multi-word phrase is more specific than a word.
- `field_weight` is the profile's `fields.title` (2) or `fields.abstract` (1): a term in the title is what the
  paper is about.
- `sat(c) = c · (K1 + 1) / (c + K1)` is BM25's saturation (K1 = 1.2): sat(1) = 1, sat(2) ≈ 1.4, sat(∞) = 2.2,
  so repeats add less and less and several distinct keywords outweigh one keyword repeated.
- `idf` is 1 without a corpus. With `corpus=items` it is the BM25 IDF of the term's document frequency,
  divided by that of a term found in 10% of the corpus and shrunk towards 1 for small corpora (weight
  n / (n + 20)): rare terms weigh more and words every paper uses ("models") almost nothing.

With the `semantic` extra installed (`bot.scoring.semantic`), a profile with a `description` (unless `semantic = false`)
also gets `0.9 · max(0, cos − 0.2) / 0.8` for the cosine between the description's and the item's (title +
abstract) embeddings, s < 0.9, a reason of kind "semantic". It is the description's meaning where the words
above are its vocabulary, and fused with their squashed sum d as 1 − (1 − d)(1 − s): it adds s · (1 − d), after
`exclude` and inside `require` like them, so the description (words and meaning) alone still stays below 1 and
never reaches the default min_score, while it orders everything and adds to keyword matches in one score. Without
the extra (or with `semantic = false`), scores are exactly as above.

Without a corpus, one keyword once in the abstract therefore scores exactly 1.0 (the default min_score), once
in the title 2.0. Any `exclude` term anywhere vetoes the profile for that item. With `require`, keyword and
description matches count only if one require term occurs in the title or abstract (require terms add nothing
themselves). Each followed author (`authors`) on the paper adds `fields.authors · max(min_score, 1)`, never less
than min_score, so any paper by them is kept (unless excluded), whatever `require` says. Each contribution is
rounded to a multiple of 2⁻²⁴ (`bot.scoring.batch.QUANTUM`) and the sum is exact, so the score is deterministic
whatever the order of summation; ranking ties are broken by item id.

Speed: `compile_profiles` builds one index (`bot.scoring.compile`); an item is tokenised once and its classes counted
once. `rank_all(items, top=N)` (a digest, `digestbot rank`) scores chunks of items against every profile at once
in NumPy arrays (`bot.scoring.batch`: the same quantised sums), keeps each profile's best N and builds
`ScoredItem`s and `Reason`s only for those, item by item so that profiles sharing a keyword share its reasons.
`passing` (one item, every profile) and `rank` (one profile) walk postings and score in Python. Cost grows with
text and matches, not profiles × keywords.
"""

from __future__ import annotations

import gc
import math
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from itertools import compress
from operator import attrgetter

import numpy as np
from numpy.typing import NDArray

from bot.config import ProfileConfig
from bot.models import Item, Reason, ScoredItem
from bot.scoring.batch import (
    NO_PAIRS,
    QUANTUM,
    SCALE,
    BatchScorer,
    Pairs,
    Postings,
    Scan,
    best_pairs,
    quantise,
    saturate,
)
from bot.scoring.compile import AUTHOR, DESCRIPTION, DESCRIPTION_CAP, KEYWORD, Index, compile_index
from bot.scoring.scan import Counts, Followed, Heads, count_classes
from bot.scoring.semantic import Similarity, similarity_for

__all__ = ["Matcher", "compile_profiles"]

IDF_REFERENCE_FRACTION = 0.1
IDF_SHRINK_DOCS = 20
SCAN_CACHE_ITEMS = 5_000
_EPSILON = 1e-9
_Described = tuple[str, str, int, int]  # a matched description word: label, field, count, weight in quanta
_Term = tuple[int, str, float, float]  # a keyword or description word: class id, label, title/abstract weight
_Explained = tuple[int, tuple[Reason, ...]]  # what some matched keywords add, in quanta, and why
_SAT = tuple(saturate(c) for c in range(64))
_ID = attrgetter("id")
_ITEM_ID = attrgetter("item.id")
_MERGE_PAIRS = 400_000
_SCORE = attrgetter("score")
_WEIGHT = attrgetter("weight")


class Matcher:
    """All profiles compiled into one index; immutable once built (`with_corpus` returns a new one)."""

    def __init__(self, index: Index, idf: Sequence[float] | None = None, similarity: Similarity | None = None) -> None:
        self._ix = index
        self._similar = similarity  # the semantic signal (`bot.scoring.semantic`), for the profiles in `_semantic`
        self._semantic = similarity.profiles if similarity is not None else ()
        # Semantic profiles that the description's words and meaning alone (< DESCRIPTION_CAP) could pass: scored
        # apart for every item by `passing`, like `_low`; the others need a keyword (or author) to pass.
        self._semantic_low = tuple(p for p in self._semantic if index.profiles[p].min_score < DESCRIPTION_CAP)
        self._semantic_set = frozenset(self._semantic)
        self._names = tuple(p.name for p in index.profiles)
        self._by_name = {name: i for i, name in enumerate(self._names)}
        self._idf = list(idf) if idf is not None else [1.0] * index.n_classes
        self._scans: dict[str, tuple[Item, Scan]] = {}
        self._heads = Heads(index.root)
        profiles = index.profiles
        weight = [b * self._idf[c] for b, c in zip(index.term_base, index.term_class, strict=True)]
        equal: dict[float, float] = {}  # one float object per distinct weight (most are equal): less memory
        self._wt = [equal.setdefault(x, x) for x in (w * profiles[p].title_weight
                                                     for w, p in zip(weight, index.term_profile, strict=True))]
        self._wa = [equal.setdefault(x, x) for x in (w * profiles[p].abstract_weight
                                                     for w, p in zip(weight, index.term_profile, strict=True))]
        # A term as (class, label, title weight, abstract weight): equal ones are one object, shared by the
        # profiles (memory), and an item's reasons for it are built once however many profiles it matches.
        shared: dict[_Term, _Term] = {}

        def term(t: int) -> _Term:
            found = (index.term_class[t], index.term_label[t], self._wt[t], self._wa[t])
            return shared.setdefault(found, found)

        self._keyword_terms = [tuple(map(term, profile.keywords)) for profile in profiles]
        self._described_terms = [tuple(map(term, profile.described)) for profile in profiles]
        # Per profile, the class of each keyword / description word: `compress(terms, map(counts.get, classes))`
        # picks the matched ones in config order without a Python loop over all of them.
        self._keyword_classes = [tuple(index.term_class[t] for t in profile.keywords) for profile in profiles]
        self._described_classes = [tuple(index.term_class[t] for t in profile.described) for profile in profiles]
        self._walk: _Walk | None = None  # postings for `passing` and `score`, built on first use
        self._min = [profile.min_score for profile in profiles]
        # Profiles scored by their keywords alone (no require, no description, no meaning): `_explained` builds
        # their reasons inline (its pairs passed, so no exclude term is present)
        self._plain = [not (profile.require or profile.described) and p not in self._semantic_set
                       for p, profile in enumerate(profiles)]
        self._author_quanta = [quantise(profile.author_weight) for profile in profiles]
        self._batch: BatchScorer | None = None  # built on first `rank_all`
        self._followed = Followed(index.authors)

    @property
    def profiles(self) -> tuple[str, ...]:
        return self._names

    def min_score(self, profile: str) -> float:
        return self._ix.profiles[self._profile_index(profile)].min_score

    def max_items(self, profile: str) -> int | None:
        """The profile's own cap on items per digest (`max_items`), or None when it leaves that to the recipient."""
        return self._ix.profiles[self._profile_index(profile)].max_items

    def with_corpus(self, items: Sequence[Item]) -> Matcher:
        """The same profiles with IDF taken from `items` (e.g. recently stored papers); `[]` drops it again."""
        n = len(items)
        if n == 0:
            return self._sharing_scans(Matcher(self._ix, None, self._similar))
        df = [0] * self._ix.n_classes
        for item in items:
            for c in self._scan(item)[0]:
                df[c] += 1
        ref = _bm25_idf(n, max(1.0, IDF_REFERENCE_FRACTION * n))
        shrink = n / (n + IDF_SHRINK_DOCS)
        idf = [1.0 + shrink * (_bm25_idf(n, d) / ref - 1.0) for d in df]
        return self._sharing_scans(Matcher(self._ix, idf, self._similar))

    def score(self, item: Item) -> dict[str, ScoredItem]:
        """Every profile the item matched (score > 0, no exclude term), whatever its min_score."""
        counts, authors = self._scan(item)
        touched = self._postings().touched
        candidates = {p for c in counts for p in touched[c]} | set(authors) | set(self._semantic)
        out: dict[str, ScoredItem] = {}
        for p in sorted(candidates):
            if (scored := self._evaluate(item, p, counts, authors.get(p), 0.0)) is not None:
                out[self._names[p]] = scored
        return out

    def passing(self, item: Item) -> list[ScoredItem]:
        """The profiles whose min_score the item reaches, with reasons: the fast path for many profiles.

        Keyword postings name the profiles with a matched keyword; profiles that might pass on description
        words or authors alone (few: see `_low`) are added to them.
        """
        counts, authors = self._scan(item)
        found: dict[int, None] = {}
        vetoed: set[int] = set()
        extra: set[int] = set(authors).union(self._semantic_low)
        walk = self._postings()
        keyword, low, veto = walk.keyword, walk.low, walk.veto
        for c in counts:
            found.update(dict.fromkeys(keyword[c]))
            if veto[c]:
                vetoed.update(veto[c])
            if low[c]:
                extra.update(low[c])
        floor = self._min
        out = []
        for p in found:
            if p not in vetoed and p not in extra and (scored := self._evaluate(item, p, counts, None, floor[p])):
                out.append(scored)
        for p in sorted(extra - vetoed):
            if (scored := self._evaluate(item, p, counts, authors.get(p), floor[p])) is not None:
                out.append(scored)
        return out

    def rank(self, items: Sequence[Item], profile: str, *, top: int | None = None,
             with_below_min: bool = False) -> list[ScoredItem]:
        """Best first, ties by item id; only score ≥ min_score unless `with_below_min` (for previews)."""
        p = self._profile_index(profile)
        floor = 0.0 if with_below_min else self._ix.profiles[p].min_score
        if self._similar is not None and p in self._semantic:
            self._similar.warm(items)
        scored = []
        for item in items:
            counts, authors = self._scan(item)
            if (s := self._evaluate(item, p, counts, authors.get(p), floor)) is not None:
                scored.append(s)
        return _ordered(scored, top)

    def rank_all(self, items: Sequence[Item], *, top: int | None = None) -> dict[str, list[ScoredItem]]:
        """`rank(items, p, top=top)` for every profile p, in one pass over the items (each tokenised once).

        Scores come from `bot.scoring.batch` (NumPy arrays, bit for bit the scores `rank` adds up one at a time),
        then each profile keeps its best `top` (all with None), ties by id; `ScoredItem`s and their reasons are
        built only for those. The cyclic garbage collector is paused meanwhile (`_gc_paused`).
        """
        if self._similar is not None:
            self._similar.warm(items)
        ordered = sorted(items, key=_ID)
        with _gc_paused():
            positions, profiles, _ = self._batch_scores(ordered, top)
            return self._explained(ordered, positions, profiles)

    def _batch_scores(self, ordered: Sequence[Item], top: int | None) -> Pairs:
        """(position in `ordered`, profile id, score in quanta) of every passing pair, or of each profile's best
        `top`, grouped by profile, best first, ties by position (= by id).

        With `top`, what is kept so far is merged every `_MERGE_PAIRS` new pairs, and each profile's worst kept
        score once it holds `top` becomes the bar a new pair must beat (an equal score comes later in id order, so
        it would rank below): memory stays near profiles × top pairs, not one per match.
        """
        if top is not None and top <= 0:
            return NO_PAIRS
        batch = self._batch_scorer()
        step = batch.chunk_items
        bar = np.zeros(len(self._names), dtype=np.float64)  # passing pairs have quanta > 0
        kept, pending, waiting = NO_PAIRS, [], 0
        for start in range(0, len(ordered), step):
            chunk = ordered[start:start + step]
            rows, profiles, quanta = batch.chunk([self._scan(item) for item in chunk], self._cosines(chunk))
            if top is not None:
                beats = quanta > bar[profiles]
                rows, profiles, quanta = rows[beats], profiles[beats], quanta[beats]
            pending.append(((rows + start).astype(np.int32), profiles.astype(np.int32), quanta))
            waiting += len(quanta)
            if top is not None and waiting >= _MERGE_PAIRS:
                kept = best_pairs(kept, pending, top, bar)
                pending, waiting = [], 0
        return best_pairs(kept, pending, top, bar)

    def _explained(self, ordered: Sequence[Item], positions: NDArray[np.int32],
                   profiles: NDArray[np.int32]) -> dict[str, list[ScoredItem]]:
        """`ScoredItem`s with their reasons for the given (position, profile) pairs, which are grouped by profile
        in ranking order. Built item by item, so one item's reasons for a keyword are shared by its profiles."""
        per_profile = np.bincount(profiles, minlength=len(self._names))
        slots = np.arange(len(profiles)) - (np.cumsum(per_profile) - per_profile)[profiles]  # rank in its profile
        ranked: list[list[ScoredItem]] = [[] for _ in self._names]
        filled: list[list[ScoredItem | None]] = [[None] * n for n in per_profile.tolist()]
        by_item = np.argsort(positions, kind="stable")
        current = -1
        memo: dict[tuple[_Term, ...], _Explained] = {}
        plain, names, terms, classes = self._plain, self._names, self._keyword_terms, self._keyword_classes
        scored_item, quantum = ScoredItem, QUANTUM
        for position, p, slot in zip(positions[by_item].tolist(), profiles[by_item].tolist(),
                                     slots[by_item].tolist(), strict=True):
            if position != current:
                current, item, memo = position, ordered[position], {}  # one memo per item
                counts, authors = self._scan(item)
                get = counts.get
            if plain[p] and p not in authors:  # keywords only: `_evaluate` without the steps that do nothing
                matched = tuple(compress(terms[p], map(get, classes[p])))
                found = memo.get(matched)
                if found is None:
                    found = memo[matched] = _keyword_reasons(matched, counts)
                filled[p][slot] = scored_item(item, names[p], found[0] * quantum, found[1])
            else:
                filled[p][slot] = self._evaluate(item, p, counts, authors.get(p), 0.0, memo)
        for out, scored in zip(ranked, filled, strict=True):
            out.extend(s for s in scored if s is not None)  # never None: the same terms, scored the same way
        return dict(zip(self._names, ranked, strict=True))

    def _postings(self) -> _Walk:
        """Class → profiles, for scoring one item against every profile (`passing`, `score`); built once."""
        if self._walk is None:
            index, profiles = self._ix, self._ix.profiles
            empty: tuple[int, ...] = ()
            keyword: list[list[int]] = [[] for _ in range(index.n_classes)]
            touched: list[set[int]] = [set() for _ in range(index.n_classes)]
            low: list[tuple[int, ...]] = [empty] * index.n_classes
            veto: list[tuple[int, ...]] = [empty] * index.n_classes
            for p, profile in enumerate(profiles):
                for c, _, _, _ in self._keyword_terms[p]:
                    keyword[c].append(p)
                for t in profile.described:
                    touched[index.term_class[t]].add(p)
                    if profile.min_score < DESCRIPTION_CAP:  # description words alone could reach min_score
                        low[index.term_class[t]] += (p,)
                for c in profile.exclude:
                    veto[c] += (p,)
            self._walk = _Walk(
                keyword=[tuple(k) for k in keyword],  # in config order
                touched=[tuple(sorted(t.union(k))) for t, k in zip(touched, keyword, strict=True)],
                low=low, veto=veto)
        return self._walk

    def _batch_scorer(self) -> BatchScorer:
        """The profiles' postings as arrays (`bot.scoring.batch`), built once per matcher."""
        if self._batch is None:
            ix = self._ix
            keyword = [t for profile in ix.profiles for t in profile.keywords]
            described = [t for profile in ix.profiles for t in profile.described]
            exclude = [(c, p) for p, profile in enumerate(ix.profiles) for c in profile.exclude]
            require = [(c, p) for p, profile in enumerate(ix.profiles) for c in profile.require]

            def terms(ids: list[int]) -> Postings:
                return Postings(ix.n_classes, [ix.term_class[t] for t in ids], [ix.term_profile[t] for t in ids],
                                [self._wt[t] for t in ids], [self._wa[t] for t in ids])

            self._batch = BatchScorer(
                len(ix.profiles), terms(keyword), terms(described),
                Postings(ix.n_classes, [c for c, _ in exclude], [p for _, p in exclude]),
                Postings(ix.n_classes, [c for c, _ in require], [p for _, p in require]),
                self._min, [bool(profile.require) for profile in ix.profiles], self._author_quanta, self._semantic)
        return self._batch

    def _cosines(self, chunk: Sequence[Item]) -> NDArray[np.float64] | None:
        """The chunk's rounded cosines to every semantic profile's description (rows: items), or None."""
        if self._similar is None or not self._semantic:
            return None
        rows = [self._similar.cosines(item) for item in chunk]
        if any(row is None for row in rows):
            return None  # the model failed: no semantic contribution, as in `_evaluate`
        return np.array(rows, dtype=np.float64)

    def _profile_index(self, profile: str) -> int:
        try:
            return self._by_name[profile]
        except KeyError:
            known = ", ".join(self._names) or "none"
            raise KeyError(f"no profile named {profile!r} (profiles: {known})") from None

    def _sharing_scans(self, other: Matcher) -> Matcher:
        other._scans, other._heads = self._scans, self._heads  # they depend on the index only, not on idf
        return other

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

    def _evaluate(self, item: Item, p: int, counts: Counts, authors: list[str] | None, floor: float,
                  memo: dict[tuple[_Term, ...], _Explained] | None = None) -> ScoredItem | None:
        """The exact score of profile `p` for one scanned item, with reasons; None if vetoed or below `floor`.

        Each contribution is quantised (`bot.scoring.batch.quantise`) and summed as an integer, so the score is
        the same whatever the order, and the same as `rank_all`'s arrays. `memo` (one per item) keeps what each
        set of matched keywords adds and why, so profiles matched by the same keywords share their reasons.
        """
        profile = self._ix.profiles[p]
        for c in profile.exclude:
            if c in counts:
                return None
        total = 0
        reasons: tuple[Reason, ...] = ()
        extra: list[Reason] = []
        if not profile.require or any(c in counts for c in profile.require):
            matched = tuple(compress(self._keyword_terms[p], map(counts.get, self._keyword_classes[p])))
            found = memo.get(matched) if memo is not None else None
            if found is None:
                found = _keyword_reasons(matched, counts)
                if memo is not None:
                    memo[matched] = found
            total, reasons = found
            described = 0
            if profile.described:
                for label, field, n, q in self._described(p, counts):
                    described += q
                    extra.append(Reason(label, field, n, q * QUANTUM, DESCRIPTION))
                total += described
            if self._similar is not None and (similar := self._similarity(item, p, described)) is not None:
                total += quantise(similar.weight)
                extra.append(similar)
        for name in authors or ():
            total += self._author_quanta[p]
            extra.append(Reason(name, "authors", 1, self._author_quanta[p] * QUANTUM, AUTHOR))
        score = total * QUANTUM
        if total <= 0 or score + _EPSILON < floor:
            return None
        if extra:  # keyword reasons come sorted; a stable sort keeps config order among equal weights
            extra[:0] = reasons
            extra.sort(key=_WEIGHT, reverse=True)
            reasons = tuple(extra)
        return ScoredItem(item, profile.name, score, reasons)

    def _similarity(self, item: Item, p: int, described: int) -> Reason | None:
        """The semantic reason (weight quantised), fused with the description words' squashed sum d < 1 as
        1 − (1 − d)(1 − s): it adds s · (1 − d), so the description's words and meaning together stay below 1."""
        assert self._similar is not None
        reason = self._similar.reason(item, p, 1.0 - (described * QUANTUM) / DESCRIPTION_CAP)
        if reason is None or (q := quantise(reason.weight)) <= 0:
            return None
        reason.weight = q * QUANTUM
        return reason

    def _described(self, p: int, counts: Counts) -> list[_Described]:
        """Matched description words with their weights in quanta, whose sum d is squashed to d / (1 + d) so they
        never reach 1 alone."""
        found: list[_Described] = []
        floor = math.floor  # `quantise`, inlined: the same arithmetic
        for c, label, wt, wa in compress(self._described_terms[p], map(counts.get, self._described_classes[p])):
            t, a = counts[c]
            if t:
                found.append((label, "title", t, floor(wt * (_SAT[t] if t < 64 else saturate(t)) * SCALE + 0.5)))
            if a:
                found.append((label, "abstract", a, floor(wa * (_SAT[a] if a < 64 else saturate(a)) * SCALE + 0.5)))
        if not found:
            return found
        scale = DESCRIPTION_CAP / (sum([q for *_, q in found]) * QUANTUM + DESCRIPTION_CAP)
        return [(label, field, n, floor(q * QUANTUM * scale * SCALE + 0.5)) for label, field, n, q in found]


@dataclass(slots=True)
class _Walk:
    """Per class id: the profiles with it as a keyword; with it as a keyword or description word; that its
    description words alone could pass (min_score below the description's cap); that it vetoes."""

    keyword: list[tuple[int, ...]]
    touched: list[tuple[int, ...]]
    low: list[tuple[int, ...]]
    veto: list[tuple[int, ...]]


def _keyword_reasons(matched: tuple[_Term, ...], counts: Counts) -> _Explained:
    """What these matched keywords add, in quanta, and their reasons strongest first (config order on ties)."""
    total = 0
    reasons = []
    for c, label, wt, wa in matched:
        t, a = counts[c]
        if t:
            q = quantise(wt * (_SAT[t] if t < 64 else saturate(t)))
            total += q
            reasons.append(Reason(label, "title", t, q * QUANTUM, KEYWORD))
        if a:
            q = quantise(wa * (_SAT[a] if a < 64 else saturate(a)))
            total += q
            reasons.append(Reason(label, "abstract", a, q * QUANTUM, KEYWORD))
    if len(reasons) > 1:
        reasons.sort(key=_WEIGHT, reverse=True)
    return total, tuple(reasons)


def _bm25_idf(n: int, df: float) -> float:
    return math.log(1.0 + (n - df + 0.5) / (df + 0.5))


def _ordered(scored: list[ScoredItem], top: int | None) -> list[ScoredItem]:
    """Best first, ties by item id: two stable C-keyed sorts (reverse keeps equal scores in id order)."""
    scored.sort(key=_ITEM_ID)
    scored.sort(key=_SCORE, reverse=True)
    return scored if top is None else scored[:top]


@contextmanager
def _gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector: the index and the results are many small acyclic objects, whose
    creation would otherwise trigger full collections that cost a fifth to a third of the time."""
    paused = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if paused:
            gc.enable()


def compile_profiles(profiles: Mapping[str, ProfileConfig], *, corpus: Sequence[Item] = (),
                     semantic: bool | None = None) -> Matcher:
    """Compile every profile into one matcher; with `corpus`, rare terms weigh more (see module docstring).

    `semantic`: None (the default) adds semantic similarity to every profile with a `description` (and not
    `semantic = false`) when the `semantic` extra is installed; False never; True whenever the model loads.
    """
    described = {p: profile.description for p, profile in enumerate(profiles.values())
                 if profile.description and profile.description.strip() and profile.semantic}
    similarity = similarity_for(described, enabled=semantic) if semantic is not False else None
    with _gc_paused():
        matcher = Matcher(compile_index(profiles), None, similarity)
        return matcher.with_corpus(corpus) if corpus else matcher
