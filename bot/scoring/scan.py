"""An item's text → how often each class of terms occurs in its title and abstract; its authors → who is followed.

This is the part of scoring that reads the item, done once per item whatever the number of profiles
(`bot.scoring.Matcher` keeps the result per item). Tokens come from `scoring_text.text_keys`; the trie of term
keys comes from `bot.scoring.compile`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from itertools import chain, compress

from bot.scoring.compile import Node
from bot.scoring.text import author_key, same_first_name, text_keys

Counts = dict[int, tuple[int, int]]  # class id → (title count, abstract count)
HEADS_MAX = 200_000  # distinct tokens remembered by `Heads` before it starts again
# One tuple object per distinct (title, abstract) count pair: an item holds ~150 classes, most of them (0, 1), and
# its scan is kept for the whole planning pass, so sharing them saves ~70 bytes per class (~20 MB for 2,000 papers
# against 10,000 profiles).
_PAIRS: dict[tuple[int, int], tuple[int, int]] = {}


class Heads(dict[tuple[str, ...], tuple[Node, ...]]):
    """A token's keys → the trie nodes they start (mostly none), filled on first sight of each token, so the
    tokens that start no term are passed over at C speed (`map(heads.__getitem__, keys)`)."""

    def __init__(self, root: Node) -> None:
        super().__init__()
        self._root = root.children

    def __missing__(self, keys: tuple[str, ...]) -> tuple[Node, ...]:
        nodes = self[keys] = tuple(node for key in keys if (node := self._root.get(key)) is not None)
        return nodes


def count_classes(heads: Heads, title: str, abstract: str) -> Counts:
    """Every class (term) found in the title and abstract, with its count in each; phrases follow the trie."""
    if len(heads) > HEADS_MAX:
        heads.clear()
    counts: dict[int, list[int]] = {}
    for f, text in enumerate((title, abstract)):
        keys = text_keys(text) if text else []
        found = list(map(heads.__getitem__, keys))
        last = len(found) - 1
        for start in compress(range(len(found)), found):
            for node in found[start]:
                for c in node.classes:
                    hit = counts.get(c)
                    if hit is None:
                        counts[c] = [1, 0] if f == 0 else [0, 1]
                    else:
                        hit[f] += 1
                if node.children and start < last:  # a phrase may go on: its next word, inline
                    children = node.children
                    for key in keys[start + 1]:
                        child = children.get(key)
                        if child is not None:
                            _count(child, counts, f)
                            if child.children:
                                _extend(child, keys, start + 2, counts, f)
    pairs = _PAIRS
    if len(pairs) > 10_000:  # only a pathological text has that many distinct counts
        pairs.clear()
    out: Counts = {}
    for c, (t, a) in counts.items():
        pair = (t, a)
        out[c] = pairs.setdefault(pair, pair)
    return out


def _count(node: Node, counts: dict[int, list[int]], field: int) -> None:
    for c in node.classes:
        hit = counts.get(c)
        if hit is None:
            hit = counts[c] = [0, 0]
        hit[field] += 1


def _extend(node: Node, keys: Sequence[tuple[str, ...]], position: int, counts: dict[int, list[int]],
            field: int) -> None:
    """Follow the trie from `node` along the tokens from `position`, counting every class reached."""
    if position >= len(keys):
        return
    for key in keys[position]:
        child = node.children.get(key)
        if child is not None:
            _count(child, counts, field)
            if child.children:
                _extend(child, keys, position + 1, counts, field)


class Followed:
    """The people profiles follow, by surname, then by first initial ("" for a surname alone): a name on a paper
    is compared with the people of its surname and initial only, not with everyone of that surname."""

    def __init__(self, by_surname: dict[str, list[tuple[int, str, str]]]) -> None:
        self._index: dict[str, dict[str, list[tuple[int, str, str]]]] = {}
        for surname, entries in by_surname.items():
            for entry in entries:  # (profile id, first name key, as the profile wrote it)
                self._index.setdefault(surname, {}).setdefault(entry[1][:1], []).append(entry)

    def on(self, names: Iterable[str]) -> dict[int, list[str]]:
        """Profile id → the followed people among a paper's author names, as the profile wrote them."""
        hits: dict[int, list[str]] = {}
        if not self._index:
            return hits
        for name in names:
            if (key := author_key(name)) is None or (buckets := self._index.get(key[1])) is None:
                continue
            first = key[0]
            found = (chain(buckets.get(first[0], ()), buckets.get("", ())) if first
                     else chain.from_iterable(buckets.values()))
            for p, followed, written in found:
                if same_first_name(followed, first) and written not in hits.get(p, ()):
                    hits.setdefault(p, []).append(written)
        return hits
