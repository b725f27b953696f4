"""Which papers a digest or alert carries: the stored items of one planning pass, scored once for every profile.

Planning asks for the best matches of many windows and profile sets; scoring runs once per pass, over every item
in the widest window, and each digest's pick is a slice of that (`Matches.best`). Only what is shown is explained.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Iterable, Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any, cast

import numpy as np
from numpy.typing import NDArray

from bot.models import Item, ScoredItem
from bot.scoring import Matcher
from bot.scoring.batch import NO_PAIRS, QUANTUM, Pairs
from bot.store import Store

log = logging.getLogger(__name__)

# every scored pair grouped by profile: positions, profile ids, quanta, meaning quanta, and each profile's start
_PickKey = tuple[datetime, tuple[str, ...], int | None]  # `_pick_key`
_Picked = tuple[NDArray[np.int64], int, dict[int, tuple[int, ...]]]  # `Matches._pick`
_Grouped = tuple[NDArray[np.int32], NDArray[np.int32], NDArray[np.float64], NDArray[np.float64], NDArray[np.int64]]


class Matches:
    """The stored items of one planning pass, scored once against every profile, explained only where shown.

    Recipients' windows differ only in where they start (their last digest): each item of any window is scored
    once, against every profile at once, as arrays (`Matcher.pairs`), and a recipient's digest picks its pairs
    from those. `ScoredItem`s and their reasons are built only for the items a digest or an alert carries, once
    per (item, profile) however many recipients share them, so the cost of planning grows with items and profiles
    (in arrays) and with what is sent, not with every match of every profile.
    """

    def __init__(self, matcher: Matcher, store: Store, now: datetime) -> None:
        self.matcher = matcher
        self.store = store
        self.now = now
        self._windows: dict[datetime, list[Item]] = {}
        self._items: list[Item] = []  # every item scored so far; pairs point into it
        self._position: dict[str, int] = {}
        self._pairs: list[Pairs] = []
        # explained pairs (`_explain`): sorted pair numbers and their `ScoredItem`s, and a dict for late additions
        self._known_keys: NDArray[np.int64] = np.zeros(0, dtype=np.int64)
        self._known: list[ScoredItem] = []
        self._extra: dict[int, ScoredItem] = {}
        self._grouped: _Grouped | None = None
        self._insides: dict[datetime, NDArray[np.bool_]] = {}
        self._covered: set[datetime] = set()
        self._picked: dict[_PickKey, _Picked] = {}
        self._version = self._picked_at = 0  # batches scored so far; and when `_picked` was picked
        self._id_rank: NDArray[np.int64] = np.zeros(0, dtype=np.int64)  # per position: its id's rank among all
        self._memos: dict[int, dict[Any, Any]] = {}  # per position: reasons shared by its profiles (`explain`)

    def window(self, since: datetime) -> list[Item]:
        """Items first seen after `since`, up to now."""
        if since not in self._windows:
            self._windows[since] = self.store.items_first_seen_between(since, self.now)
        return self._windows[since]

    def best(self, since: datetime, profiles: Iterable[str], *, limit: int | None = None, at_least: float = 0.0,
             skip: Collection[str] = ()) -> tuple[list[ScoredItem], int]:
        """The items first seen since `since` that pass one of `profiles`, each once with its best profile's score
        (ties: the profile listed first in the config), best first, ties by id; each profile's own `max_items`
        respected; only scores ≥ `at_least` and ids not in `skip`. Returns the first `limit` (all with None),
        explained, and how many there are."""
        key = _pick_key(since, profiles, limit)
        fresh = self._version == self._picked_at  # no window scored since the picks
        picked = self._picked.pop(key, None) if at_least <= 0 and not skip and fresh else None
        if picked is None:
            picked = self._pick(since, key[1], limit=limit, at_least=at_least, skip=skip)
        chosen, total, also = picked
        positions, found, _, meaning, _ = self._by_profile()
        explained = self._explain(positions[chosen], found[chosen], meaning[chosen])
        if also:  # the item's other profiles among this recipient's, named beside the best one
            names = self.matcher.profiles
            explained = [replace(scored, also=tuple(names[p] for p in also[pair])) if pair in also else scored
                         for pair, scored in zip(chosen.tolist(), explained, strict=True)]
        return explained, total

    def prefetch(self, digests: Sequence[tuple[datetime, Iterable[str], int]], also: Iterable[datetime] = ()) -> None:
        """Pick the pairs of these digests ((since, profiles, limit) each) and explain them all in one pass, item
        by item, so that what one item's keywords add is worked out once for every profile and recipient. Every
        window (and those starting at `also`, for alerts) is scored first: the picks stay valid until a later
        window brings new items."""
        for since in [*(d[0] for d in digests), *also]:
            self._cover(since)
        self._picked_at = self._version
        for since, profiles, limit in digests:
            key = _pick_key(since, profiles, limit)
            self._picked[key] = self._pick(since, key[1], limit=limit)
        if self._picked:
            positions, found, _, meaning, _ = self._by_profile()
            chosen = np.unique(np.concatenate([pairs for pairs, _, _ in self._picked.values()]))
            self._explain_all(positions[chosen], found[chosen], meaning[chosen])

    def _pick(self, since: datetime, profiles: Sequence[str], *, limit: int | None, at_least: float = 0.0,
              skip: Collection[str] = ()) -> _Picked:
        """`best` without explaining: the indices of the chosen pairs (into `_by_profile`), how many pass, and for
        a chosen pair whose item passes other profiles of the recipient too, those (best first)."""
        none = np.zeros(0, dtype=np.int64)
        self._cover(since)
        positions, found, quanta, _, ptr = self._by_profile()
        ids = sorted(self.matcher.profile_id(name) for name in profiles)
        if not ids or not len(positions):
            return none, 0, {}
        keep = np.concatenate([np.arange(ptr[p], ptr[p + 1]) for p in ids])
        keep = keep[self._inside(since)[positions[keep]] & (quanta[keep] * QUANTUM + 1e-9 >= at_least)]
        if not len(keep):
            return none, 0, {}
        order = np.lexsort((found[keep], -quanta[keep], positions[keep]))  # by item, its best profile first
        at = positions[keep[order]]
        first = np.concatenate(([True], at[1:] != at[:-1]))
        best = keep[order[first]]
        also: dict[int, tuple[int, ...]] = {}
        if len(ids) > 1 and not first.all():  # some item passes several of the recipient's profiles
            starts = np.flatnonzero(first)
            grouped = found[keep[order]].tolist()
            for pair, start, end in zip(best.tolist(), starts.tolist(), [*starts[1:].tolist(), len(order)],
                                        strict=True):
                if end - start > 1:
                    also[pair] = tuple(grouped[start + 1:end])
        ranked = best[np.lexsort((self._id_rank[positions[best]], -quanta[best]))].tolist()  # ties by id
        if skip:
            items = self._items
            ranked = [pair for pair in ranked if items[positions[pair]].id not in skip]
        ranked = self._capped(ranked, found, ids)
        chosen = ranked if limit is None else ranked[:limit]
        return np.asarray(chosen, dtype=np.int64), len(ranked), {pair: also[pair] for pair in chosen if pair in also}

    def _by_profile(self) -> _Grouped:
        """Every pair scored so far, grouped by profile (best first within one), and where each profile's run
        starts (`ptr[p]` to `ptr[p + 1]`): a recipient reads only its profiles' runs."""
        if self._grouped is None:
            grouped: list[NDArray[Any]]
            if len(self._pairs) == 1:  # one batch (the usual pass): `Matcher.pairs` grouped it already
                grouped = list(self._pairs[0])
            else:
                arrays = [np.concatenate([pairs[i] for pairs in self._pairs]) if self._pairs else NO_PAIRS[i]
                          for i in range(4)]
                order = np.lexsort((-arrays[2], arrays[1]))
                grouped = [a[order] for a in arrays]
            ptr = np.searchsorted(grouped[1], np.arange(len(self.matcher.profiles) + 1))
            self._grouped = cast(_Grouped, (*grouped, ptr))
        return self._grouped

    def _inside(self, since: datetime) -> NDArray[np.bool_]:
        """Per scored item (by position), whether it is in the window that starts at `since`."""
        inside = self._insides.get(since)
        if inside is None:
            inside = self._insides[since] = np.zeros(len(self._items), dtype=bool)
            inside[[self._position[item.id] for item in self.window(since)]] = True
        return inside

    def _cover(self, since: datetime) -> None:
        """Score the items of the window that starts at `since` not scored yet, in one batch."""
        if since in self._covered:
            return
        self._covered.add(since)
        new = [item for item in self.window(since) if item.id not in self._position]
        if not new:
            return
        ordered, (positions, profiles, quanta, meaning) = self.matcher.pairs(new)
        offset = len(self._items)
        self._position.update((item.id, offset + i) for i, item in enumerate(ordered))
        self._items.extend(ordered)
        positions += offset  # in place: the arrays are this pass's own
        self._pairs.append((positions, profiles, quanta, meaning))
        self._grouped, self._insides = None, {}
        self._version += 1  # pair indices from before point elsewhere now
        by_id = sorted(range(len(self._items)), key=[item.id for item in self._items].__getitem__)
        self._id_rank = np.empty(len(self._items), dtype=np.int64)
        self._id_rank[by_id] = np.arange(len(self._items))

    def _explain(self, positions: NDArray[np.int32], profiles: NDArray[np.int32],
                 meaning: NDArray[np.float64]) -> list[ScoredItem]:
        """The `ScoredItem`s of these pairs, each built once per planning pass (see `_explain_all`); pairs not
        explained yet (alerts, a digest `prefetch` did not see) are kept in a small dict."""
        keys = self._keys(positions, profiles)
        found: list[ScoredItem | None] = [None] * len(keys)
        known, explained, extra = self._known_keys, self._known, self._extra
        missed = np.ones(len(keys), dtype=bool)
        if len(known):
            at = np.minimum(np.searchsorted(known, keys), len(known) - 1)
            hit = np.flatnonzero(known[at] == keys)
            for i, j in zip(hit.tolist(), at[hit].tolist(), strict=True):
                found[i] = explained[j]
            missed[hit] = False
        missing = []
        for i, key in zip(np.flatnonzero(missed).tolist(), keys[missed].tolist(), strict=True):
            found[i] = extra.get(key)
            if found[i] is None:
                missing.append(i)
        if missing:
            new_keys, built = self._build(positions[missing], profiles[missing], meaning[missing])
            extra.update(zip(new_keys.tolist(), built, strict=True))
            for i in missing:
                found[i] = extra[int(keys[i])]
        return cast(list[ScoredItem], found)

    def _explain_all(self, positions: NDArray[np.int32], profiles: NDArray[np.int32],
                     meaning: NDArray[np.float64]) -> None:
        """Explain these pairs (most of a pass: ~250,000 for 10,000 digests) and keep them as a sorted array of
        pair numbers beside a list of their `ScoredItem`s: a tenth of the memory of a dict of them."""
        keys = self._keys(positions, profiles)
        if len(self._known_keys):
            keep = ~np.isin(keys, self._known_keys)
            positions, profiles, meaning = positions[keep], profiles[keep], meaning[keep]
        if not len(positions):
            return
        new_keys, built = self._build(positions, profiles, meaning)
        if not len(self._known_keys):  # the usual pass: one prefetch
            self._known_keys, self._known = new_keys, built
            return
        merged = np.concatenate((self._known_keys, new_keys))
        order = np.argsort(merged, kind="stable")
        everything = [*self._known, *built]
        self._known_keys, self._known = merged[order], [everything[i] for i in order.tolist()]

    def _keys(self, positions: NDArray[np.int32], profiles: NDArray[np.int32]) -> NDArray[np.int64]:
        """Each pair as one number: position × profiles + profile id."""
        return positions.astype(np.int64) * len(self.matcher.profiles) + profiles

    def _build(self, positions: NDArray[np.int32], profiles: NDArray[np.int32],
               meaning: NDArray[np.float64]) -> tuple[NDArray[np.int64], list[ScoredItem]]:
        """The distinct pairs among these, in key order, and their `ScoredItem`s (`Matcher.explain`)."""
        keys, first = np.unique(self._keys(positions, profiles), return_index=True)
        return keys, self.matcher.explain(self._items, positions[first], profiles[first], meaning[first])

    def _capped(self, ranked: list[int], profiles: NDArray[np.int32], ids: Sequence[int]) -> list[int]:
        """`ranked` without the pairs past their profile's own `max_items` (`ids`: the profiles asked for)."""
        names = self.matcher.profiles
        caps = {p: self.matcher.max_items(names[p]) for p in ids}
        if not any(caps.values()):
            return ranked
        taken: dict[int, int] = {}
        kept = []
        for pair in ranked:
            p = int(profiles[pair])
            cap = caps[p]
            if cap is None or taken.get(p, 0) < cap:
                kept.append(pair)
                taken[p] = taken.get(p, 0) + 1
        return kept


def _pick_key(since: datetime, profiles: Iterable[str], limit: int | None) -> _PickKey:
    """What makes two digests' picks the same: their window, their set of profiles and their limit."""
    return since, tuple(sorted(set(profiles))), limit
