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

Without a corpus, one keyword once in the abstract therefore scores exactly 1.0 (the default min_score), once
in the title 2.0. Any `exclude` term anywhere vetoes the profile for that item. With `require`, keyword and
description matches count only if one require term occurs in the title or abstract (require terms add nothing
themselves). Each followed author (`authors`) on the paper adds `fields.authors · max(min_score, 1)`, never less
than min_score, so any paper by them is kept (unless excluded), whatever `require` says. The sum is exact
(`math.fsum`), so the score is deterministic; ranking ties are broken by item id.

Speed: `compile_profiles` builds one index (`scoring_compile`); an item is tokenised once, its classes counted
once, and keyword postings give every profile's score bound in one pass; `Reason`s are built only for the
profiles an item actually reaches (`rank_all`), so cost grows with text and matches, not profiles × keywords.
"""

from __future__ import annotations

import gc
import math
from collections.abc import Mapping, Sequence
from operator import attrgetter

from bot.config import ProfileConfig
from bot.models import Item, Reason, ScoredItem
from bot.scoring_check import check_profile
from bot.scoring_compile import AUTHOR, DESCRIPTION, DESCRIPTION_CAP, KEYWORD, Index, Node, compile_index
from bot.scoring_items import load_items_jsonl
from bot.scoring_text import author_key, same_first_name, text_keys

__all__ = ["Matcher", "check_profile", "compile_profiles", "load_items_jsonl"]

K1 = 1.2
IDF_REFERENCE_FRACTION = 0.1
IDF_SHRINK_DOCS = 20
SCAN_CACHE_ITEMS = 5_000
_FIELDS = ("title", "abstract")
_EPSILON = 1e-9
Counts = dict[int, list[int]]  # class id → [title count, abstract count]
Scan = tuple[Counts, dict[int, list[str]]]  # class counts, profile id → followed authors on the paper
_Entry = tuple[int, int, str, float, float]  # a profile's keyword: its position, class id, label, weights t/a


def _sat(count: int) -> float:
    return count * (K1 + 1.0) / (count + K1)


_SAT = tuple(_sat(c) for c in range(64))
_ITEM_ID = attrgetter("item.id")
_SCORE = attrgetter("score")


class Matcher:
    """All profiles compiled into one index; immutable once built (`with_corpus` returns a new one)."""

    def __init__(self, index: Index, idf: Sequence[float] | None = None) -> None:
        self._ix = index
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
        keyword: list[list[tuple[int, _Entry]]] = [[] for _ in range(index.n_classes)]
        touched: list[set[int]] = [set() for _ in range(index.n_classes)]
        self._low: list[tuple[int, ...]] = [empty] * index.n_classes
        self._veto: list[tuple[int, ...]] = [empty] * index.n_classes
        for p, profile in enumerate(profiles):
            for entry in self._keyword_terms[p]:
                keyword[entry[1]].append((p, entry))
            for t in profile.described:
                touched[index.term_class[t]].add(p)
                if profile.min_score < DESCRIPTION_CAP:  # description words alone could reach min_score
                    self._low[index.term_class[t]] += (p,)
            for c in profile.exclude:
                self._veto[c] += (p,)
        self._keyword = [tuple(k) for k in keyword]
        self._touched = [tuple(sorted(t | {p for p, _ in k})) for t, k in zip(touched, keyword, strict=True)]

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
            return self._sharing_scans(Matcher(self._ix))
        df = [0] * self._ix.n_classes
        for item in items:
            for c in self._scan(item)[0]:
                df[c] += 1
        ref = _bm25_idf(n, max(1.0, IDF_REFERENCE_FRACTION * n))
        shrink = n / (n + IDF_SHRINK_DOCS)
        return self._sharing_scans(Matcher(self._ix, [1.0 + shrink * (_bm25_idf(n, d) / ref - 1.0) for d in df]))

    def score(self, item: Item) -> dict[str, ScoredItem]:
        """Every profile the item matched (score > 0, no exclude term), whatever its min_score."""
        counts, authors = self._scan(item)
        candidates = {p for c in counts for p in self._touched[c]} | set(authors)
        out: dict[str, ScoredItem] = {}
        for p in sorted(candidates):
            if (scored := self._evaluate(item, p, counts, authors.get(p), 0.0)) is not None:
                out[self._names[p]] = scored
        return out

    def passing(self, item: Item) -> list[ScoredItem]:
        """The profiles whose min_score the item reaches, with reasons: the fast path for many profiles.

        Keyword postings collect, per profile, only the terms the item matched; profiles that might pass on
        description words or authors alone (few: see `_low`) are scored from all their terms.
        """
        counts, authors = self._scan(item)
        found: dict[int, list[_Entry]] = {}
        vetoed: set[int] = set()
        extra: set[int] = set(authors)
        keyword, low, veto = self._keyword, self._low, self._veto
        for c in counts:
            for p, entry in keyword[c]:
                held = found.get(p)
                if held is None:
                    found[p] = [entry]
                else:
                    held.append(entry)
            if veto[c]:
                vetoed.update(veto[c])
            if low[c]:
                extra.update(low[c])
        profiles = self._ix.profiles
        out = []
        for p, entries in found.items():
            if p not in vetoed and p not in extra:
                scored = self._score_found(item, p, entries, counts, None, profiles[p].min_score)
                if scored is not None:
                    out.append(scored)
        for p in sorted(extra - vetoed):
            if (scored := self._evaluate(item, p, counts, authors.get(p), profiles[p].min_score)) is not None:
                out.append(scored)
        return out

    def rank(self, items: Sequence[Item], profile: str, *, top: int | None = None,
             with_below_min: bool = False) -> list[ScoredItem]:
        """Best first, ties by item id; only score ≥ min_score unless `with_below_min` (for previews)."""
        p = self._profile_index(profile)
        floor = 0.0 if with_below_min else self._ix.profiles[p].min_score
        scored = []
        for item in items:
            counts, authors = self._scan(item)
            if (s := self._evaluate(item, p, counts, authors.get(p), floor)) is not None:
                scored.append(s)
        return _ordered(scored, top)

    def rank_all(self, items: Sequence[Item], *, top: int | None = None) -> dict[str, list[ScoredItem]]:
        """Every profile ranked in one pass over the items (each item tokenised once).

        The cyclic garbage collector is paused meanwhile: the millions of small acyclic objects built here
        (ScoredItem, Reason) would otherwise trigger full collections that cost a third of the time.
        """
        buckets: list[list[ScoredItem]] = [[] for _ in self._names]
        paused = gc.isenabled()
        gc.disable()
        try:
            for item in items:
                for scored in self.passing(item):
                    buckets[self._by_name[scored.profile]].append(scored)
        finally:
            if paused:
                gc.enable()
        return {name: _ordered(scored, top) for name, scored in zip(self._names, buckets, strict=True)}

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
                        _count(node, counts, f)
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
        """The exact score of profile `p` for one scanned item, with reasons; None if vetoed or below `floor`."""
        found = [entry for entry in self._keyword_terms[p] if entry[1] in counts]
        return self._score_found(item, p, found, counts, authors, floor)

    def _score_found(self, item: Item, p: int, found: list[_Entry], counts: Counts, authors: list[str] | None,
                     floor: float) -> ScoredItem | None:
        """Score profile `p` from its matched keyword entries; Reasons are built only once it reaches `floor`."""
        profile = self._ix.profiles[p]
        for c in profile.exclude:
            if c in counts:
                return None
        if profile.require and not any(c in counts for c in profile.require):
            found = []
            described: list[Reason] = []
        else:
            described = self._described(p, counts) if profile.described else []
        if len(found) > 1:
            found.sort()  # config order, so equal weights list in the same order on every path
        weights: list[float] = []
        for _, c, _, wt, wa in found:
            t, a = counts[c]
            weights.append(wt * (_SAT[t] if t < 64 else _sat(t)) if t else 0.0)
            weights.append(wa * (_SAT[a] if a < 64 else _sat(a)) if a else 0.0)
        weights += [r.weight for r in described]
        weights += [profile.author_weight] * len(authors or ())
        total = weights[0] + weights[1] if len(weights) == 2 else math.fsum(weights)
        if total <= 0 or total + _EPSILON < floor:
            return None
        reasons: list[Reason] = []
        for i, (_, c, label, _, _) in enumerate(found):
            t, a = counts[c]
            if t:
                reasons.append(Reason(label, "title", t, weights[2 * i], KEYWORD))
            if a:
                reasons.append(Reason(label, "abstract", a, weights[2 * i + 1], KEYWORD))
        reasons += described
        reasons += [Reason(name, "authors", 1, profile.author_weight, AUTHOR) for name in authors or ()]
        if len(reasons) > 1:
            reasons.sort(key=_by_weight)
        return ScoredItem(item, profile.name, total, tuple(reasons))

    def _described(self, p: int, counts: Counts) -> list[Reason]:
        """Reasons from description words, their sum squashed to d / (1 + d) so they never reach 1 alone."""
        ix = self._ix
        found: list[tuple[str, str, int, float]] = []
        for t in ix.profiles[p].described:
            hit = counts.get(ix.term_class[t])
            if hit is not None:
                for f, n in enumerate(hit):
                    if n:
                        found.append((ix.term_label[t], _FIELDS[f], n, (self._wt, self._wa)[f][t] * _sat(n)))
        raw = math.fsum([w for *_, w in found])
        scale = DESCRIPTION_CAP / (raw + DESCRIPTION_CAP)
        return [Reason(label, field, n, w * scale, DESCRIPTION) for label, field, n, w in found]


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


def _by_weight(reason: Reason) -> float:
    return -reason.weight


def _bm25_idf(n: int, df: float) -> float:
    return math.log(1.0 + (n - df + 0.5) / (df + 0.5))


def _ordered(scored: list[ScoredItem], top: int | None) -> list[ScoredItem]:
    """Best first, ties by item id: two stable C-keyed sorts (reverse keeps equal scores in id order)."""
    scored.sort(key=_ITEM_ID)
    scored.sort(key=_SCORE, reverse=True)
    return scored if top is None else scored[:top]


def compile_profiles(profiles: Mapping[str, ProfileConfig], *, corpus: Sequence[Item] = ()) -> Matcher:
    """Compile every profile into one matcher; with `corpus`, rare terms weigh more (see module docstring)."""
    matcher = Matcher(compile_index(profiles))
    return matcher.with_corpus(corpus) if corpus else matcher
