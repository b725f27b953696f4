"""Profiles → one index shared by all of them, so an item is matched once whatever the number of profiles.

A *class* is one set of key sequences: a term and its hyphen variant (`click-through`, "clickthrough"). Terms
of any profile that normalise the same share a class, and the trie of key sequences leads to classes, not to
profiles. `bot.scoring.Matcher` counts each class in an item's title and abstract, then goes from classes to
the profiles' terms through postings. Everything here is plain lists indexed by integer ids (term id, class id,
profile id); nothing is per item.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from bot.config import ProfileConfig
from bot.scoring.text import Case, author_key, description_terms, is_acronym_term, term_variants

KEYWORD, DESCRIPTION, EXCLUDE, REQUIRE, AUTHOR = "keyword", "description", "exclude", "require", "author"
DESCRIPTION_WEIGHT = 0.3
DESCRIPTION_CAP = 1.0


class Node:
    __slots__ = ("children", "classes")

    def __init__(self) -> None:
        self.children: dict[str, Node] = {}
        self.classes: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class CompiledProfile:
    """One profile as ids: its scoring terms, its veto and gate classes, the people it follows."""

    name: str
    min_score: float
    max_items: int | None
    title_weight: float
    abstract_weight: float
    author_weight: float  # what one followed author adds; never less than min_score
    keywords: tuple[int, ...]  # term ids, in config order
    described: tuple[int, ...]  # term ids of description words
    exclude: tuple[int, ...]  # class ids
    require: tuple[int, ...]  # class ids
    authors: tuple[tuple[str, str, str], ...]  # (as written, first name key, surname key)


@dataclass(slots=True)
class Index:
    """The compiled profiles: a trie of key sequences → class ids, and per term its profile, class and weight."""

    root: Node
    n_classes: int
    term_profile: list[int]
    term_class: list[int]
    term_label: list[str]
    term_kind: list[str]
    term_base: list[float]  # user weight · phrase factor (· DESCRIPTION_WEIGHT), before idf and field weight
    profiles: list[CompiledProfile]
    authors: dict[str, list[tuple[int, str, str]]]  # surname → (profile id, first name key, as written)


_Known = tuple[tuple[tuple[str, ...], ...], str, int, float]  # a keyword's variants, label, class, phrase factor


class _Builder:
    def __init__(self) -> None:
        self.index = Index(Node(), 0, [], [], [], [], [], [], {})
        self._classes: dict[tuple[tuple[str, ...], ...], int] = {}
        self._labels: dict[str, str] = {}  # one string per distinct label: thousands of profiles share terms
        self._keywords: dict[tuple[str, str], _Known] = {}  # (term, case rule) → what `keyword` worked out

    def class_id(self, variants: Sequence[tuple[str, ...]]) -> int:
        key = tuple(variants)
        cid = self._classes.get(key)
        if cid is None:
            cid = self._classes[key] = len(self._classes)
            for keys in variants:
                node = self.index.root
                for k in keys:
                    node = node.children.get(k) or node.children.setdefault(k, Node())
                if cid not in node.classes:
                    node.classes = (*node.classes, cid)
            self.index.n_classes = len(self._classes)
        return cid

    def add_term(self, profile: int, label: str, kind: str, variants: Sequence[tuple[str, ...]], base: float) -> int:
        index = self.index
        index.term_profile.append(profile)
        index.term_class.append(self.class_id(variants))
        index.term_label.append(self._labels.setdefault(label, label))
        index.term_kind.append(kind)
        index.term_base.append(base * phrase_factor(len(variants[0])))
        return len(index.term_base) - 1

    def keyword(self, text: str, case: Case) -> _Known:
        """A keyword's variants, label, class and phrase factor, worked out once however many profiles use it."""
        key = (text, case._value_)  # `_value_`: `.value` and hashing an Enum are Python-level calls
        known = self._keywords.get(key)
        if known is None:
            variants = term_variants(text, case)
            label = " ".join(text.split())
            known = self._keywords[key] = (variants, self._labels.setdefault(label, label),
                                           self.class_id(variants) if variants else -1,
                                           phrase_factor(len(variants[0])) if variants else 0.0)
        return known

    def add_known(self, profile: int, known: _Known, weight: float) -> int:
        """`add_term` for a keyword whose class `keyword` has worked out (the usual case)."""
        index = self.index
        index.term_profile.append(profile)
        index.term_class.append(known[2])
        index.term_label.append(known[1])
        index.term_kind.append(KEYWORD)
        index.term_base.append(weight * known[3])
        return len(index.term_base) - 1


def phrase_factor(n_tokens: int) -> float:
    """A matched phrase is more specific than a word: 1, 1.5, then 2 for three tokens or more."""
    return min(1.0 + 0.5 * (n_tokens - 1), 2.0)


def case_rule(profile: ProfileConfig, term: str) -> Case:
    """The profile's `case_sensitive`: unset → acronym rule; true/false → all terms; a list → those terms exact."""
    setting = profile.case_sensitive
    if setting is None:
        return Case.ACRONYMS
    if isinstance(setting, bool):
        return Case.EXACT if setting else Case.IGNORE
    return Case.EXACT if term.strip() in setting else Case.ACRONYMS


def compile_index(profiles: Mapping[str, ProfileConfig]) -> Index:
    builder = _Builder()
    for p, (name, profile) in enumerate(profiles.items()):
        builder.index.profiles.append(_compile_profile(builder, p, name, profile))
    return builder.index


def _compile_profile(builder: _Builder, p: int, name: str, profile: ProfileConfig) -> CompiledProfile:
    seen: set[tuple[str, ...]] = set()
    exclude: list[int] = []
    for text in profile.exclude:
        variants = [v for v in term_variants(text, case_rule(profile, text)) if v not in seen]
        if variants:
            seen.update(variants)
            exclude.append(builder.class_id(variants))
    require: set[int] = set()
    for text in profile.require:
        if required := term_variants(text, case_rule(profile, text)):
            require.add(builder.class_id(required))
    keywords: list[int] = []
    for _, text, weight in profile.weighted_keywords:
        known = builder.keyword(text, case_rule(profile, text))
        if seen.isdisjoint(known[0]):  # the usual case: the term's class as every profile has it
            if known[0]:
                seen.update(known[0])
                keywords.append(builder.add_known(p, known, weight))
            continue
        variants = [v for v in known[0] if v not in seen]  # what an earlier term of this profile left
        if variants:
            seen.update(variants)
            keywords.append(builder.add_term(p, known[1], KEYWORD, variants, weight))
    described: list[int] = []
    description_case = Case.IGNORE if profile.case_sensitive is False else Case.ACRONYMS
    for text in description_terms(profile.description or ""):
        variants = [v for v in term_variants(text, description_case) if v not in seen]
        if variants:
            seen.update(variants)
            label = " ".join(w if is_acronym_term(w) else w.lower() for w in text.split())
            described.append(builder.add_term(p, label, DESCRIPTION, variants, DESCRIPTION_WEIGHT))
    authors: list[tuple[str, str, str]] = []
    for written in profile.authors:
        if (key := author_key(written)) is not None:
            authors.append((" ".join(written.split()), *key))
            builder.index.authors.setdefault(key[1], []).append((p, key[0], authors[-1][0]))
    fields = profile.fields
    return CompiledProfile(
        name=name, min_score=profile.min_score, max_items=profile.max_items, title_weight=fields.title,
        abstract_weight=fields.abstract,
        author_weight=max(profile.min_score, fields.authors * max(profile.min_score, 1.0)),
        keywords=tuple(keywords), described=tuple(described), exclude=tuple(exclude), require=tuple(sorted(require)),
        authors=tuple(authors))
