"""Profile scoring: compiled keyword profiles × items → `ScoredItem`s that carry their reasons.

Matching (see `scoring_text`): whole tokens only, light stemming, hyphen = space, accents folded, markup
stripped, short ALL-CAPS terms (acronyms) case-sensitive. Every profile is compiled into one trie of token keys,
so each item is tokenised once and its cost grows with its text and its matches, not with profiles × keywords.

The score of an item for a profile is a sum over the profile's matched terms and the two fields:

    contribution(term, field) = base(term) · phrase(term) · idf(term) · field_weight · sat(count)

- `base` is 1 for a keyword and `DESCRIPTION_WEIGHT` for a word or word pair taken from the profile's
  `description`; the description terms' sum d is then squashed to d / (1 + d) < 1, so the description orders
  papers that match no keyword (and adds a little to those that do) but never by itself reaches min_score 1.
- `phrase` = min(1 + 0.5 · (tokens − 1), 2): a matched multi-word phrase is more specific than a word.
- `field_weight` is 2 for the title, 1 for the abstract: a term in the title is what the paper is about.
- `sat(c) = c · (K1 + 1) / (c + K1)` is BM25's saturation (K1 = 1.2): sat(1) = 1, sat(2) ≈ 1.4, sat(∞) = 2.2,
  so repeats add less and less and several distinct keywords outweigh one keyword repeated.
- `idf` is 1 without a corpus. With `corpus=items` it is the BM25 IDF of the term's document frequency,
  divided by that of a term found in 10% of the corpus and shrunk towards 1 for small corpora (weight
  n / (n + 20)): rare terms weigh more and words every paper uses ("models") almost nothing.

Without a corpus, one keyword once in the abstract therefore scores exactly 1.0 (the default min_score), once
in the title 2.0. Any `exclude` term anywhere vetoes the profile for that item. The sum is taken in a fixed order, so
the score is deterministic; ranking ties are broken by item id.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from bot.config import ProfileConfig
from bot.errors import ParseError
from bot.models import Item, Reason, ScoredItem
from bot.scoring_text import ACRONYM_PREFIX, description_terms, is_acronym_term, term_variants, text_keys

__all__ = ["Matcher", "check_profile", "compile_profiles", "load_items_jsonl"]

K1 = 1.2
TITLE_WEIGHT = 2.0
ABSTRACT_WEIGHT = 1.0
DESCRIPTION_WEIGHT = 0.3
DESCRIPTION_CAP = 1.0
IDF_REFERENCE_FRACTION = 0.1
IDF_SHRINK_DOCS = 20
_FIELDS = ("title", "abstract")
_FIELD_WEIGHTS = (TITLE_WEIGHT, ABSTRACT_WEIGHT)
KEYWORD, DESCRIPTION, EXCLUDE = "keyword", "description", "exclude"


@dataclass(frozen=True, slots=True)
class _Term:
    profile: int
    label: str
    kind: str
    weight: float  # base · phrase, before idf


class _Node:
    __slots__ = ("children", "terms")

    def __init__(self) -> None:
        self.children: dict[str, _Node] = {}
        self.terms: list[int] = []


def _phrase_factor(n_tokens: int) -> float:
    return min(1.0 + 0.5 * (n_tokens - 1), 2.0)


class Matcher:
    """All profiles compiled into one trie; immutable once built (`with_corpus` returns a new one)."""

    def __init__(self, names: Sequence[str], min_scores: Sequence[float], terms: Sequence[_Term], root: _Node,
                 idf: Sequence[float] | None = None) -> None:
        self._names = tuple(names)
        self._index = {name: i for i, name in enumerate(self._names)}
        self._min_scores = tuple(min_scores)
        self._terms = tuple(terms)
        self._root = root
        self._idf = tuple(idf) if idf is not None else (1.0,) * len(self._terms)

    @property
    def profiles(self) -> tuple[str, ...]:
        return self._names

    def min_score(self, profile: str) -> float:
        return self._min_scores[self._profile_index(profile)]

    def with_corpus(self, items: Sequence[Item]) -> Matcher:
        """The same profiles with IDF taken from `items` (e.g. recently stored papers); `[]` drops it again."""
        n = len(items)
        if n == 0:
            return Matcher(self._names, self._min_scores, self._terms, self._root)
        df = [0] * len(self._terms)
        for item in items:
            for t in self._count(item):
                df[t] += 1
        ref = _bm25_idf(n, max(1.0, IDF_REFERENCE_FRACTION * n))
        shrink = n / (n + IDF_SHRINK_DOCS)
        idf = [1.0 + shrink * (_bm25_idf(n, d) / ref - 1.0) for d in df]
        return Matcher(self._names, self._min_scores, self._terms, self._root, idf)

    def score(self, item: Item) -> dict[str, ScoredItem]:
        """Every profile the item matched (score > 0, no exclude term), whatever its min_score."""
        counts = self._count(item)
        by_profile: dict[int, list[int]] = {}
        for t in sorted(counts):
            by_profile.setdefault(self._terms[t].profile, []).append(t)
        out: dict[str, ScoredItem] = {}
        for p, term_ids in by_profile.items():
            scored = self._score_profile(item, p, term_ids, counts)
            if scored is not None:
                out[self._names[p]] = scored
        return out

    def rank(self, items: Sequence[Item], profile: str, *, top: int | None = None,
             with_below_min: bool = False) -> list[ScoredItem]:
        """Best first, ties by item id; only score ≥ min_score unless `with_below_min` (for previews)."""
        self._profile_index(profile)
        floor = 0.0 if with_below_min else self.min_score(profile)
        scored = [s for item in items if (s := self.score(item).get(profile)) is not None and s.score >= floor]
        return _ordered(scored, top)

    def rank_all(self, items: Sequence[Item], *, top: int | None = None) -> dict[str, list[ScoredItem]]:
        """Every profile ranked in one pass over the items (each item tokenised once)."""
        buckets: dict[str, list[ScoredItem]] = {name: [] for name in self._names}
        for item in items:
            for name, scored in self.score(item).items():
                if scored.score >= self.min_score(name):
                    buckets[name].append(scored)
        return {name: _ordered(scored, top) for name, scored in buckets.items()}

    def _profile_index(self, profile: str) -> int:
        try:
            return self._index[profile]
        except KeyError:
            known = ", ".join(self._names) or "none"
            raise KeyError(f"no profile named {profile!r} (profiles: {known})") from None

    def _count(self, item: Item) -> dict[int, list[int]]:
        """Term id → [title count, abstract count]: the item's text is normalised and tokenised once here."""
        counts: dict[int, list[int]] = {}
        for f, text in enumerate((item.title, item.abstract)):
            keys = text_keys(text)
            for start in range(len(keys)):
                for t in self._walk(keys, start):
                    counts.setdefault(t, [0, 0])[f] += 1
        return counts

    def _walk(self, keys: Sequence[tuple[str, ...]], start: int) -> Iterable[int]:
        """Terms whose key sequence starts at token `start`."""
        frontier = [self._root]
        for position in range(start, len(keys)):
            frontier = [child for node in frontier for key in keys[position] if (child := node.children.get(key))]
            if not frontier:
                return
            for node in frontier:
                yield from node.terms

    def _score_profile(self, item: Item, profile: int, term_ids: Sequence[int],
                       counts: Mapping[int, list[int]]) -> ScoredItem | None:
        keyword: list[Reason] = []
        described: list[Reason] = []
        for t in term_ids:
            term = self._terms[t]
            if term.kind == EXCLUDE:
                return None
            for f, count in enumerate(counts[t]):
                if count:
                    weight = term.weight * self._idf[t] * _FIELD_WEIGHTS[f] * count * (K1 + 1.0) / (count + K1)
                    reason = Reason(term.label, _FIELDS[f], count, weight, kind=term.kind)
                    (described if term.kind == DESCRIPTION else keyword).append(reason)
        raw = math.fsum(r.weight for r in described)
        if raw > 0:
            scale = DESCRIPTION_CAP / (raw + DESCRIPTION_CAP)
            described = [replace(r, weight=r.weight * scale) for r in described]
        reasons = sorted(keyword + described, key=lambda r: -r.weight)
        total = math.fsum(r.weight for r in reasons)
        if total <= 0:
            return None
        return ScoredItem(item=item, profile=self._names[profile], score=total, reasons=tuple(reasons))


def _bm25_idf(n: int, df: float) -> float:
    return math.log(1.0 + (n - df + 0.5) / (df + 0.5))


def _ordered(scored: list[ScoredItem], top: int | None) -> list[ScoredItem]:
    scored.sort(key=lambda s: (-s.score, s.item.id))
    return scored if top is None else scored[:top]


def compile_profiles(profiles: Mapping[str, ProfileConfig], *, corpus: Sequence[Item] = ()) -> Matcher:
    """Compile every profile into one matcher; with `corpus`, rare terms weigh more (see module docstring)."""
    root = _Node()
    terms: list[_Term] = []
    for p, profile in enumerate(profiles.values()):
        seen: set[tuple[str, ...]] = set()
        entries = [(EXCLUDE, e, 1.0) for e in profile.exclude]
        entries += [(KEYWORD, k, 1.0) for k in profile.keywords]
        description = getattr(profile, "description", None) or ""
        entries += [(DESCRIPTION, d, DESCRIPTION_WEIGHT) for d in description_terms(description)]
        for kind, text, base in entries:
            variants = [v for v in term_variants(text) if v not in seen]
            if not variants:
                continue
            seen.update(variants)
            label = " ".join(w if kind != DESCRIPTION or is_acronym_term(w) else w.lower() for w in text.split())
            terms.append(_Term(p, label, kind, base * _phrase_factor(len(variants[0]))))
            for keys in variants:
                node = root
                for key in keys:
                    node = node.children.setdefault(key, _Node())
                node.terms.append(len(terms) - 1)
    matcher = Matcher(list(profiles), [p.min_score for p in profiles.values()], terms, root)
    return matcher.with_corpus(corpus) if corpus else matcher


def check_profile(name: str, profile: ProfileConfig) -> list[str]:
    """Legal but surely unintended terms: empty, never matching, duplicated, or vetoed by an exclude term."""
    warnings: list[str] = []
    excludes: list[tuple[str, ...]] = []
    for j, text in enumerate(profile.exclude):
        variants = term_variants(text)
        if not variants:
            what = "empty exclude term" if not text.strip() else f"{text!r} has no letters or digits"
            warnings.append(f"profiles.{name}.exclude[{j}]: {what}, so it never matches")
        excludes.extend(variants)
    seen: dict[tuple[str, ...], int] = {}
    for i, text in enumerate(profile.keywords):
        key = f"profiles.{name}.keywords[{i}]"
        variants = term_variants(text)
        if not text.strip():
            warnings.append(f"{key}: empty keyword never matches")
        elif not variants:
            warnings.append(f"{key}: {text!r} has no letters or digits after removing markup, so it never matches")
        elif (vetoing := next((e for e in excludes if _contains(variants[0], e)), None)) is not None:
            warnings.append(f"{key}: {text!r} contains an exclude term ({' '.join(vetoing)!r}), "
                            f"so every paper it matches is excluded")
        elif variants[0] in seen:
            first = seen[variants[0]]
            warnings.append(f"{key}: {text!r} is the same as keywords[{first}] ({profile.keywords[first]!r}) "
                            f"after normalisation; it adds nothing")
        if variants:
            seen.setdefault(variants[0], i)
    return warnings


def _contains(keys: tuple[str, ...], part: tuple[str, ...]) -> bool:
    """Whether `part` occurs in `keys`, ignoring case: an exclude term vetoes an acronym keyword in any case."""
    keys = tuple(k.lstrip(ACRONYM_PREFIX).casefold() for k in keys)
    part = tuple(p.lstrip(ACRONYM_PREFIX).casefold() for p in part)
    return any(keys[i:i + len(part)] == part for i in range(len(keys) - len(part) + 1))


def load_items_jsonl(path: Path) -> list[Item]:
    """Items from JSON lines (`id`, `title`, `abstract`, optional `authors`, `url`, `published`; others ignored)."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise ParseError(f"cannot read items file {path}: {exc}",
                         hint="Pass a JSON-lines file, one object per line with id, title and abstract.") from None
    items = []
    for number, line in enumerate(lines, start=1):
        if line.strip():
            try:
                items.append(Item.from_json(json.loads(line)))
            except (ValueError, TypeError, KeyError) as exc:
                raise ParseError(f"{path}:{number}: {_describe(exc)}",
                                 hint="Each line must be a JSON object with at least id, title and abstract.") from None
    return items


def _describe(exc: Exception) -> str:
    if isinstance(exc, json.JSONDecodeError):
        return f"invalid JSON ({exc.msg} at column {exc.colno})"
    if isinstance(exc, KeyError):
        return f"missing key {exc.args[0]!r}"
    return str(exc)
