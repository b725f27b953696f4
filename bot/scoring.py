"""Profile scoring: compiled keyword profiles × items → `ScoredItem`s that carry their reasons.

Matching (see `scoring_text`): whole tokens only, light stemming, hyphen = space, accents folded, markup
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

With the `semantic` extra installed (`bot.semantic`), a profile with a `description` (unless `semantic = false`)
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
than min_score, so any paper by them is kept (unless excluded), whatever `require` says. The sum is exact
(`math.fsum`), so the score is deterministic; ranking ties are broken by item id.

Speed: `compile_profiles` builds one index (`scoring_compile`); an item is tokenised once and its classes counted
once. `rank_all(items, top=N)` (a digest) scores with plain floats from keyword postings, keeps each profile's
best N in a bounded heap (items in id order, so ties stay by id) and builds `ScoredItem`s and `Reason`s only for
those; `rank_all(items)` and `passing` build them for every match. Cost grows with text and matches, not
profiles × keywords.
"""

from __future__ import annotations

import gc
import heapq
import math
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from itertools import compress
from operator import attrgetter

from bot.config import ProfileConfig
from bot.models import Item, Reason, ScoredItem
from bot.scoring_check import check_profile
from bot.scoring_compile import AUTHOR, DESCRIPTION, DESCRIPTION_CAP, KEYWORD, Index, Node, compile_index
from bot.scoring_items import load_items_jsonl
from bot.scoring_text import author_key, same_first_name, text_keys
from bot.semantic import Similarity, similarity_for

__all__ = ["Matcher", "check_profile", "compile_profiles", "load_items_jsonl"]

K1 = 1.2
IDF_REFERENCE_FRACTION = 0.1
IDF_SHRINK_DOCS = 20
SCAN_CACHE_ITEMS = 5_000
_EPSILON = 1e-9
_SLACK = 1e-6  # far above the rounding of a plain sum of a few keyword weights, far below any score step
Counts = dict[int, list[int]]  # class id → [title count, abstract count]
Scan = tuple[Counts, dict[int, list[str]]]  # class counts, profile id → followed authors on the paper
_Entry = tuple[int, int, str, float, float]  # a profile's keyword: its position, class id, label, weights t/a
_Group = tuple[float, float, tuple[int, ...]]  # a class's keyword postings of equal weights t/a: profile ids
_Described = tuple[str, str, int, float]  # a matched description word: label, field, count, weight
_Key = tuple[float, int]  # a kept item of `rank_all(top=N)`: (score, -position in id order)


def _sat(count: int) -> float:
    return count * (K1 + 1.0) / (count + K1)


_SAT = tuple(_sat(c) for c in range(64))
_ITEM_ID = attrgetter("item.id")
_SCORE = attrgetter("score")
_WEIGHT = attrgetter("weight")


class Matcher:
    """All profiles compiled into one index; immutable once built (`with_corpus` returns a new one)."""

    def __init__(self, index: Index, idf: Sequence[float] | None = None, similarity: Similarity | None = None) -> None:
        self._ix = index
        self._similar = similarity  # the semantic signal (`bot.semantic`), for the profiles in `_semantic`
        self._semantic = similarity.profiles if similarity is not None else ()
        # Semantic profiles that the description's words and meaning alone (< DESCRIPTION_CAP) could pass: scored
        # apart for every item, like `_low`; the others need a keyword (or author) and are found by its postings.
        self._semantic_low = tuple(p for p in self._semantic if index.profiles[p].min_score < DESCRIPTION_CAP)
        self._semantic_set = frozenset(self._semantic)
        self._names = tuple(p.name for p in index.profiles)
        self._by_name = {name: i for i, name in enumerate(self._names)}
        self._idf = list(idf) if idf is not None else [1.0] * index.n_classes
        self._scans: dict[str, tuple[Item, Scan]] = {}
        profiles = index.profiles
        weight = [b * self._idf[c] for b, c in zip(index.term_base, index.term_class, strict=True)]
        self._wt = [w * profiles[p].title_weight for w, p in zip(weight, index.term_profile, strict=True)]
        self._wa = [w * profiles[p].abstract_weight for w, p in zip(weight, index.term_profile, strict=True)]
        empty: tuple[int, ...] = ()
        self._keyword_terms = [tuple((i, index.term_class[t], index.term_label[t], self._wt[t], self._wa[t])
                                     for i, t in enumerate(profile.keywords)) for profile in profiles]
        self._described_terms = [tuple((index.term_class[t], index.term_label[t], self._wt[t], self._wa[t])
                                       for t in profile.described) for profile in profiles]
        # Per profile, the class of each keyword / description word: `compress(terms, map(counts.get, classes))`
        # picks the matched ones in config order without a Python loop over all of them.
        self._keyword_classes = [tuple(index.term_class[t] for t in profile.keywords) for profile in profiles]
        self._described_classes = [tuple(index.term_class[t] for t in profile.described) for profile in profiles]
        keyword: list[list[int]] = [[] for _ in range(index.n_classes)]
        groups: list[dict[tuple[float, float], list[int]]] = [{} for _ in range(index.n_classes)]
        touched: list[set[int]] = [set() for _ in range(index.n_classes)]
        self._low: list[tuple[int, ...]] = [empty] * index.n_classes
        self._veto: list[tuple[int, ...]] = [empty] * index.n_classes
        self._gate: list[tuple[int, ...]] = [empty] * index.n_classes  # class → profiles requiring it
        for p, profile in enumerate(profiles):
            for _, c, _, wt, wa in self._keyword_terms[p]:
                keyword[c].append(p)
                groups[c].setdefault((wt, wa), []).append(p)
            for t in profile.described:
                touched[index.term_class[t]].add(p)
                if profile.min_score < DESCRIPTION_CAP:  # description words alone could reach min_score
                    self._low[index.term_class[t]] += (p,)
            for c in profile.exclude:
                self._veto[c] += (p,)
            for c in profile.require:
                self._gate[c] += (p,)
        self._keyword = [tuple(k) for k in keyword]  # class → profiles with it as a keyword, in config order
        self._groups = [tuple((wt, wa, tuple(ps)) for (wt, wa), ps in g.items()) for g in groups]
        self._touched = [tuple(sorted(t.union(k))) for t, k in zip(touched, keyword, strict=True)]
        # For `rank_all(top=N)`: one keyword's score is exact as summed; several keywords, description words or
        # require terms give a score at most `_slack` above the plain sum of the keyword weights.
        self._plain = [not (profile.require or profile.described) for profile in profiles]
        self._required = [bool(profile.require) for profile in profiles]
        self._slack = [_SLACK + (DESCRIPTION_CAP if profile.described else 0.0) for profile in profiles]
        self._start = [profile.min_score - _EPSILON - _SLACK for profile in profiles]
        self._min = [profile.min_score for profile in profiles]

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
        candidates = {p for c in counts for p in self._touched[c]} | set(authors) | set(self._semantic)
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
        keyword, low, veto = self._keyword, self._low, self._veto
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

        With `top` (what a digest holds), scores are plain floats and each profile keeps its best `top` in a
        bounded heap; `ScoredItem`s and their reasons are built only for those, so time and memory grow with
        matches and profiles × top, not with an object per match. Without it, every match gets its object.

        The cyclic garbage collector is paused meanwhile (`_gc_paused`).
        """
        if self._similar is not None:
            self._similar.warm(items)
        with _gc_paused():
            if top is not None:
                return self._rank_top(items, top)
            buckets: list[list[ScoredItem]] = [[] for _ in self._names]
            for item in items:
                for scored in self.passing(item):
                    buckets[self._by_name[scored.profile]].append(scored)
        return {name: _ordered(scored, None) for name, scored in zip(self._names, buckets, strict=True)}

    def _rank_top(self, items: Sequence[Item], top: int) -> dict[str, list[ScoredItem]]:
        """Items are offered in id order (stable), so one that ties the worst kept score ranks below it and is
        skipped; the survivors are then scored again, the same way, with their reasons."""
        order = sorted(range(len(items)), key=lambda i: items[i].id)
        heaps: list[list[_Key]] = [[] for _ in self._names]
        if top > 0:
            bar = list(self._start)  # what a score must exceed to be kept: min_score, then the worst kept score
            for position, i in enumerate(order):
                self._keep_best(items[i], -position, heaps, bar, top)
        kept: list[list[int]] = [[] for _ in items]  # per position in id order: the profiles keeping it
        for p, heap in enumerate(heaps):
            for _, key in heap:
                kept[-key].append(p)
            heap.clear()
        ranked: list[list[ScoredItem]] = [[] for _ in self._names]
        for position, wanted in enumerate(kept):
            if wanted:
                item = items[order[position]]
                counts, authors = self._scan(item)
                for p in wanted:
                    scored = self._evaluate(item, p, counts, authors.get(p), 0.0)
                    if scored is not None:  # always: the same terms that kept it, scored the same way
                        ranked[p].append(scored)
        for out in ranked:
            out.sort(key=_SCORE, reverse=True)  # stable: equal scores stay in id order
        return dict(zip(self._names, ranked, strict=True))

    def _keep_best(self, item: Item, key: int, heaps: list[list[_Key]], bar: list[float], top: int) -> None:
        """Offer one item to every profile's heap of its best `top`: floats only, no object per match."""
        counts, authors = self._scan(item)
        sums, several, vetoed, extra, opened = self._keyword_sums(counts)
        extra.update(authors)
        extra.update(self._semantic_low)
        skip = vetoed | extra
        plain, slack, floor, required = self._plain, self._slack, self._min, self._required
        for p, total in sums.items():
            if total + slack[p] <= bar[p] or p in skip:
                continue
            if p in several or not plain[p]:
                if required[p] and p not in opened:
                    continue  # no require term: only followed authors could count, and those are in `extra`
                if p in self._semantic_set:  # exact, with the similarity (bounded like the description words)
                    total = self._total(p, counts, None, item) or 0.0
                else:
                    total = self._total_above(p, counts, total, bar[p])
            if total > bar[p] and total + _EPSILON >= floor[p] and total > 0:
                heap = heaps[p]
                if len(heap) < top:
                    heapq.heappush(heap, (total, key))
                    if len(heap) < top:
                        continue
                else:
                    heapq.heapreplace(heap, (total, key))
                bar[p] = heap[0][0]  # full: a newcomer must beat the worst kept score
        for p in sorted(extra - vetoed):
            exact = self._total(p, counts, authors.get(p), item)
            if exact is not None and exact > bar[p] and exact > 0 and exact + _EPSILON >= floor[p]:
                _push(heaps[p], bar, p, exact, key, top)

    def _keyword_sums(self, counts: Counts) -> tuple[dict[int, float], set[int], set[int], set[int], set[int]]:
        """Per profile with a matched keyword, the plain sum of its keyword weights (exact for one keyword);
        the profiles with several; those an exclude term vetoes; those to score apart (`_low`); those with a
        require term present."""
        sums: dict[int, float] = {}
        several: set[int] = set()
        vetoed: set[int] = set()
        extra: set[int] = set()
        opened: set[int] = set()
        disjoint = sums.keys().isdisjoint
        groups, low, veto, gate = self._groups, self._low, self._veto, self._gate
        for c, (t, a) in counts.items():
            st = _SAT[t] if t < 64 else _sat(t)
            sa = _SAT[a] if a < 64 else _sat(a)
            for wt, wa, ps in groups[c]:
                weight = wt * st + wa * sa  # one keyword: exactly `_total`'s `weights[0] + weights[1]`
                if disjoint(ps):
                    sums.update(dict.fromkeys(ps, weight))
                    continue
                for p in ps:
                    if p in sums:
                        sums[p] += weight
                        several.add(p)
                    else:
                        sums[p] = weight
            if veto[c]:
                vetoed.update(veto[c])
            if low[c]:
                extra.update(low[c])
            if gate[c]:
                opened.update(gate[c])
        return sums, several, vetoed, extra, opened

    def _profile_index(self, profile: str) -> int:
        try:
            return self._by_name[profile]
        except KeyError:
            known = ", ".join(self._names) or "none"
            raise KeyError(f"no profile named {profile!r} (profiles: {known})") from None

    def _sharing_scans(self, other: Matcher) -> Matcher:
        other._scans = self._scans  # a scan depends on the index only, not on idf
        return other

    def _scan(self, item: Item) -> Scan:
        """Class counts and followed authors of one item; the text is normalised and tokenised once here."""
        held = self._scans.get(item.id)
        if held is not None and (held[0] is item or (held[0].title == item.title
                                                     and held[0].abstract == item.abstract
                                                     and held[0].authors == item.authors)):
            return held[1]
        counts: Counts = {}
        root = self._ix.root.children
        for f, text in enumerate((item.title, item.abstract)):
            keys = text_keys(text) if text else []
            for start, here in enumerate(keys):
                for key in here:
                    node = root.get(key)
                    if node is not None:
                        for c in node.classes:
                            hit = counts.get(c)
                            if hit is None:
                                counts[c] = [1, 0] if f == 0 else [0, 1]
                            else:
                                hit[f] += 1
                        if node.children:
                            _extend(node, keys, start + 1, counts, f)
        scan = counts, self._authors(item)
        if len(self._scans) >= SCAN_CACHE_ITEMS:
            self._scans.clear()
        self._scans[item.id] = (item, scan)
        return scan

    def _authors(self, item: Item) -> dict[int, list[str]]:
        index = self._ix.authors
        hits: dict[int, list[str]] = {}
        if not index:
            return hits
        for name in item.authors:
            key = author_key(name)
            for p, first, written in index.get(key[1], ()) if key else ():
                if key is not None and same_first_name(first, key[0]) and written not in hits.get(p, ()):
                    hits.setdefault(p, []).append(written)
        return hits

    def _evaluate(self, item: Item, p: int, counts: Counts, authors: list[str] | None,
                  floor: float) -> ScoredItem | None:
        """The exact score of profile `p` for one scanned item, with reasons; None if vetoed or below `floor`.

        Weights in config order (title, abstract per keyword; description words; authors), summed exactly;
        `_total` is the same sum without the reasons.
        """
        profile = self._ix.profiles[p]
        for c in profile.exclude:
            if c in counts:
                return None
        weights: list[float] = []
        reasons: list[Reason] = []
        if not profile.require or any(c in counts for c in profile.require):
            for _, c, label, wt, wa in compress(self._keyword_terms[p], map(counts.get, self._keyword_classes[p])):
                t, a = counts[c]
                weights.append(wt * (_SAT[t] if t < 64 else _sat(t)) if t else 0.0)
                weights.append(wa * (_SAT[a] if a < 64 else _sat(a)) if a else 0.0)
                if t:
                    reasons.append(Reason(label, "title", t, weights[-2], KEYWORD))
                if a:
                    reasons.append(Reason(label, "abstract", a, weights[-1], KEYWORD))
            if profile.described:
                for label, field, n, w in self._described(p, counts):
                    weights.append(w)
                    reasons.append(Reason(label, field, n, w, DESCRIPTION))
            if self._similar is not None and (similar := self._similarity(item, p, counts)) is not None:
                weights.append(similar.weight)
                reasons.append(similar)
        for name in authors or ():
            weights.append(profile.author_weight)
            reasons.append(Reason(name, "authors", 1, profile.author_weight, AUTHOR))
        total = _sum(weights)
        if total <= 0 or total + _EPSILON < floor:
            return None
        if len(reasons) > 1:
            reasons.sort(key=_WEIGHT, reverse=True)  # stable: equal weights stay in config order
        return ScoredItem(item, profile.name, total, tuple(reasons))

    def _total_above(self, p: int, counts: Counts, keywords: float, bar: float) -> float:
        """`_total` (no author, no exclude term, require met) if it may exceed `bar` given `keywords`, the plain
        sum of the keyword weights; else -inf. Description words are bounded before the sum is made exact."""
        weights: list[float] = []
        if self._described_classes[p]:
            for c, _, wt, wa in compress(self._described_terms[p], map(counts.get, self._described_classes[p])):
                t, a = counts[c]
                if t:
                    weights.append(wt * _sat(t))
                if a:
                    weights.append(wa * _sat(a))
            if weights:  # as `_described`: raw weights, then scaled so that their sum is d / (1 + d)
                raw = math.fsum(weights)
                if keywords + raw / (raw + DESCRIPTION_CAP) * DESCRIPTION_CAP + _SLACK <= bar:
                    return -math.inf
                scale = DESCRIPTION_CAP / (raw + DESCRIPTION_CAP)
                weights = [w * scale for w in weights]
        for _, c, _, wt, wa in compress(self._keyword_terms[p], map(counts.get, self._keyword_classes[p])):
            t, a = counts[c]
            weights.append(wt * (_SAT[t] if t < 64 else _sat(t)) if t else 0.0)
            weights.append(wa * (_SAT[a] if a < 64 else _sat(a)) if a else 0.0)
        return _sum(weights)

    def _total(self, p: int, counts: Counts, authors: list[str] | None, item: Item) -> float | None:
        """`_evaluate`'s score without reasons; None if vetoed."""
        profile = self._ix.profiles[p]
        for c in profile.exclude:
            if c in counts:
                return None
        weights: list[float] = []
        if not profile.require or any(c in counts for c in profile.require):
            if profile.described:
                weights = [w for *_, w in self._described(p, counts)]
            for _, c, _, wt, wa in compress(self._keyword_terms[p], map(counts.get, self._keyword_classes[p])):
                t, a = counts[c]
                weights.append(wt * (_SAT[t] if t < 64 else _sat(t)) if t else 0.0)
                weights.append(wa * (_SAT[a] if a < 64 else _sat(a)) if a else 0.0)
            if self._similar is not None and (similar := self._similarity(item, p, counts)) is not None:
                weights.append(similar.weight)
        elif not authors:
            return None
        weights += [profile.author_weight] * len(authors or ())
        return _sum(weights)

    def _similarity(self, item: Item, p: int, counts: Counts) -> Reason | None:
        """The semantic reason, fused with the description words' squashed sum d < 1 as 1 − (1 − d)(1 − s): it
        adds s · (1 − d), so the description's words and meaning together stay below 1."""
        assert self._similar is not None
        described = math.fsum([w for *_, w in self._described(p, counts)]) if self._ix.profiles[p].described else 0.0
        return self._similar.reason(item, p, 1.0 - described / DESCRIPTION_CAP)

    def _described(self, p: int, counts: Counts) -> list[_Described]:
        """Matched description words with their weights, whose sum d is squashed to d / (1 + d) so they never
        reach 1 alone."""
        found: list[_Described] = []
        for c, label, wt, wa in compress(self._described_terms[p], map(counts.get, self._described_classes[p])):
            t, a = counts[c]
            if t:
                found.append((label, "title", t, wt * _sat(t)))
            if a:
                found.append((label, "abstract", a, wa * _sat(a)))
        if not found:
            return found
        scale = DESCRIPTION_CAP / (math.fsum([w for *_, w in found]) + DESCRIPTION_CAP)
        return [(label, field, n, w * scale) for label, field, n, w in found]


def _count(node: Node, counts: Counts, field: int) -> None:
    for c in node.classes:
        hit = counts.get(c)
        if hit is None:
            hit = counts[c] = [0, 0]
        hit[field] += 1


def _extend(node: Node, keys: Sequence[tuple[str, ...]], position: int, counts: Counts, field: int) -> None:
    """Follow the trie from `node` along the tokens from `position`, counting every class reached."""
    if position >= len(keys):
        return
    for key in keys[position]:
        child = node.children.get(key)
        if child is not None:
            _count(child, counts, field)
            if child.children:
                _extend(child, keys, position + 1, counts, field)


def _push(heap: list[_Key], bar: list[float], p: int, score: float, key: int, top: int) -> None:
    """Keep (score, key) among profile `p`'s best `top`; once full, `bar[p]` is the worst kept score."""
    if len(heap) < top:
        heapq.heappush(heap, (score, key))
        if len(heap) < top:
            return
    else:
        heapq.heapreplace(heap, (score, key))
    bar[p] = heap[0][0]


def _sum(weights: list[float]) -> float:
    """Exact (`math.fsum`) and so independent of order; two weights (one keyword) need no more than `+`."""
    return weights[0] + weights[1] if len(weights) == 2 else math.fsum(weights)


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
