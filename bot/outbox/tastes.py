"""Digests for readers who rated papers: each of their profiles' rankings moved by what they rated, within the
profile (`bot.scoring.feedback`).

A reader without ratings never comes here: their digest is `Matches.best`'s, exactly what the profile alone gives.
For a reader with ratings, each profile's papers in the window (every one the profile scored, not only those at
its min_score: a 👍 can lift one over it) are ranked once per pass and shared by every reader of that profile and
window; the reader's own cost is one sparse product per profile and the reasons of the papers shown.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Mapping, Sequence
from dataclasses import replace
from datetime import datetime
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from bot.config import Config
from bot.errors import BotError
from bot.models import Item, ScoredItem
from bot.outbox.keys import Recipient, recipient_identity
from bot.outbox.matches import Matches
from bot.scoring.feedback import PaperVectors, Ranking, Taste, explained, moves
from bot.store import Store
from bot.store.ratings import StoredRating

log = logging.getLogger(__name__)

# one profile's part of a reader's digest: (profile, its papers, the positions that pass best first, every
# paper's shift in quanta, every paper's moved score, the reader's taste for it or None)
_Run = tuple[str, list[ScoredItem], NDArray[np.int64], NDArray[np.int64], NDArray[np.float64], Taste | None]


class Tastes:
    """The ratings of the readers planned in one pass, and the rankings they move."""

    def __init__(self, matches: Matches, store: Store, ratings: Mapping[tuple[str, str], Sequence[StoredRating]],
                 libraries: Mapping[tuple[str, str], Mapping[str, Sequence[Item]]] | None = None):
        self.matches = matches
        self.store = store
        self.ratings = ratings
        self.libraries = libraries or {}  # (channel, name) → profile → its starting library's papers
        self._rated: dict[str, Item] | None = None
        self._vectors: PaperVectors | None = None
        self._ranked: dict[tuple[datetime, str], list[ScoredItem]] = {}
        self._rankings: dict[tuple[datetime, str], Ranking] = {}
        self._score_arrays: dict[tuple[datetime, str], NDArray[np.float64]] = {}

    def has(self, channel: str, name: str) -> bool:
        """Whether the reader rated papers or named a starting library (else `Matches.best` plans them)."""
        return bool(self.ratings.get((channel, name))) or any(self.libraries.get((channel, name), {}).values())

    def best(self, channel: str, name: str, since: datetime, profiles: Sequence[str], *, limit: int | None = None,
             at_least: float = 0.0, skip: Collection[str] = ()) -> tuple[list[ScoredItem], int]:
        """`Matches.best` for a reader with ratings: the window's papers passing one of `profiles` once their
        taste moved them, each once with its best profile (ties: the profile listed first), best first, ties by
        id; each profile's `max_items` respected; the first `limit` explained, and how many pass."""
        matcher = self.matches.matcher
        known = [p for p in dict.fromkeys(profiles) if p in matcher.profiles]
        runs = []  # per profile: its papers, the positions that pass (best first), shifts, moved scores, taste
        for profile in known:
            ranked = self._ranked_for(since, profile)
            taste = self._taste(channel, name, profile, since)
            if taste is None:  # unmoved: `ranked` is best first, ties by id, already
                scores = self._scores(since, profile)
                order = np.flatnonzero(scores >= matcher.min_score(profile))
                shifts, moved = np.zeros(len(ranked), dtype=np.int64), scores
            else:
                ranking = self._ranking(since, profile, taste.vectors)
                order, shifts, moved = moves(ranking, taste, min_score=matcher.min_score(profile))
            if at_least > 0:
                order = order[moved[order] + 1e-9 >= at_least]
            if skip:
                order = np.asarray([i for i in order.tolist() if ranked[i].item.id not in skip], dtype=np.int64)
            runs.append((profile, ranked, order, shifts, moved, taste))
        if len(runs) == 1:  # the usual reader: one profile, its run is the answer
            profile, ranked, order, shifts, _, taste = runs[0]
            cap = matcher.max_items(profile)
            kept = order if cap is None else order[:cap]
            chosen = kept if limit is None else kept[:limit]
            return explained([(ranked[i], int(shifts[i])) for i in chosen.tolist()], taste), len(kept)
        return self._merged(runs, limit)

    def _merged(self, runs: Sequence[_Run], limit: int | None) -> tuple[list[ScoredItem], int]:
        """Several profiles' runs as one digest: each paper once, with its best profile (ties: the one listed
        first), each profile's `max_items` respected."""
        matcher = self.matches.matcher
        candidates: dict[str, list[tuple[float, int, str, ScoredItem, int]]] = {}
        for rank, (profile, ranked, order, shifts, moved, _) in enumerate(runs):
            for i in order.tolist():
                scored = ranked[i]
                candidates.setdefault(scored.item.id, []).append((-float(moved[i]), rank, profile, scored,
                                                                   int(shifts[i])))
        best = []
        for options in candidates.values():
            options.sort(key=lambda option: option[:2])
            best.append((options[0], tuple(option[2] for option in options[1:])))
        best.sort(key=lambda entry: (entry[0][0], entry[0][3].item.id))
        caps = {run[0]: matcher.max_items(run[0]) for run in runs}
        taken: dict[str, int] = {}
        kept = []
        for (_, _, profile, scored, shift), also in best:
            cap = caps[profile]
            if cap is None or taken.get(profile, 0) < cap:
                taken[profile] = taken.get(profile, 0) + 1
                kept.append((profile, scored, shift, also))
        chosen = kept if limit is None else kept[:limit]
        shown: dict[int, ScoredItem] = {}
        for profile, *_, taste in runs:  # each profile's papers explained together (`explained` works in batches)
            mine = [(i, scored, shift) for i, (p, scored, shift, _) in enumerate(chosen) if p == profile]
            batch = explained([(scored, shift) for _, scored, shift in mine], taste)
            shown.update((i, scored) for (i, _, _), scored in zip(mine, batch, strict=True))
        return [replace(shown[i], also=also) if also else shown[i]
                for i, (_, _, _, also) in enumerate(chosen)], len(kept)

    def _scores(self, since: datetime, profile: str) -> NDArray[np.float64]:
        key = (since, profile)
        if key not in self._score_arrays:
            self._score_arrays[key] = np.asarray([s.score for s in self._ranked_for(since, profile)],
                                                 dtype=np.float64)
        return self._score_arrays[key]

    def _ranked_for(self, since: datetime, profile: str) -> list[ScoredItem]:
        """Every paper of the window the profile scored, explained (shared by the readers of that window)."""
        key = (since, profile)
        if key not in self._ranked:
            self._ranked[key] = self.matches.matcher.rank(self.matches.window(since), profile, with_below_min=True)
        return self._ranked[key]

    def _ranking(self, since: datetime, profile: str, vectors: PaperVectors) -> Ranking:
        """`_ranked_for` made ready for readers' tastes over `vectors` (shared by every reader of the window)."""
        ranking = self._rankings.get((since, profile))
        if ranking is None or ranking.vectors is not vectors:
            ranking = self._rankings[(since, profile)] = Ranking(self._ranked_for(since, profile), vectors)
        return ranking

    def _taste(self, channel: str, name: str, profile: str, since: datetime) -> Taste | None:
        """The reader's taste for one profile: their ratings of papers shown for it, and their starting library
        (each paper a 👍, unless they rated it themselves)."""
        mine = [r for r in self.ratings.get((channel, name), ()) if r.profile == profile]
        library = self.libraries.get((channel, name), {}).get(profile, ())
        if not mine and not library:
            return None
        rated = self._rated_items()
        pairs = [(rated[r.item_id], r.rating) for r in mine if r.item_id in rated]
        said = {r.item_id for r in mine}
        liked = [item for item in library if item.id not in said]
        pairs += [(item, 1) for item in liked]
        return Taste(pairs, self._vectors_for(since), library={item.id for item in liked}) if pairs else None

    def _rated_items(self) -> dict[str, Item]:
        if self._rated is None:
            ids = sorted({r.item_id for ratings in self.ratings.values() for r in ratings})
            self._rated = self.store.get_items(ids)
        return self._rated

    def _vectors_for(self, since: datetime) -> PaperVectors:
        """One set of paper vectors for the pass, over the windows asked for so far (built again, larger, only
        when a reader's window reaches further back than any before) and every rated paper."""
        window = self.matches.window(since)
        vectors = self._vectors
        if vectors is None or any(item.id not in vectors.rows for item in window):
            corpus = {item.id: item for item in window}
            if vectors is not None:
                corpus.update((item.id, item) for item in vectors.corpus)
            library = (item for profiles in self.libraries.values() for items in profiles.values() for item in items)
            vectors = self._vectors = PaperVectors(list(corpus.values()), [*self._rated_items().values(), *library],
                                                   embed=self.matches.matcher.embed)
        return vectors


_FILES: dict[str, tuple[float, list[Item]]] = {}  # library file → (its mtime, its papers): read again when changed


def libraries(config: Config, store: Store) -> dict[tuple[str, str], dict[str, list[Item]]]:
    """Every recipient's starting library per profile (the profile's `library` and the recipient's own), resolved
    to papers (`bot.scoring.library`); a file that cannot be read is logged and left out, never a failed pass."""
    everyone: list[Recipient] = [*config.subscribers, *config.slack_channels]
    wanted = {(p, i): [*config.profiles[p].library, *r.library] for i, r in enumerate(everyone)
              for p in r.profiles if p in config.profiles}
    if not any(wanted.values()):
        return {}
    from bot.scoring.library import is_file_entry, read_file, resolve

    files: dict[str, list[Item]] = {}
    for entry in {e for entries in wanted.values() for e in entries if is_file_entry(e)}:
        try:
            mtime = Path(entry).stat().st_mtime
            if entry not in _FILES or _FILES[entry][0] != mtime:
                _FILES[entry] = (mtime, read_file(Path(entry)))
            files[entry] = _FILES[entry][1]
        except (OSError, BotError) as exc:
            log.warning("library file %s left out: %s", entry, exc)
    found: dict[tuple[str, str], dict[str, list[Item]]] = {}
    resolved: dict[tuple[str, ...], list[Item]] = {}
    for (profile, index), entries in wanted.items():
        usable = tuple(e for e in entries if not is_file_entry(e) or e in files)
        if usable not in resolved:
            library = resolve(usable, store.get_items, files)
            if library.unknown:
                log.info("library of %s: %d arXiv id(s) not stored yet, counted once a source brings them",
                         profile, len(library.unknown))
            resolved[usable] = library.items
        name, channel, _address = recipient_identity(everyone[index])
        if resolved[usable]:
            found.setdefault((str(channel), name), {})[profile] = resolved[usable]
    return found
