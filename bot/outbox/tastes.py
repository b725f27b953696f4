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

from bot.config import Config
from bot.errors import BotError
from bot.models import Item, ScoredItem
from bot.outbox.keys import Recipient, recipient_identity
from bot.outbox.matches import Matches
from bot.scoring.batch import QUANTUM
from bot.scoring.feedback import PaperVectors, Taste, explained, rescore
from bot.store import Store
from bot.store.ratings import StoredRating

log = logging.getLogger(__name__)


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
        order = {p: matcher.profile_id(p) for p in known}
        candidates: dict[str, list[tuple[float, int, str, ScoredItem, int]]] = {}
        tastes: dict[str, Taste | None] = {}
        for profile in known:
            ranked = self._ranked_for(since, profile)
            taste = tastes[profile] = self._taste(channel, name, profile, since)
            for scored, shift in rescore(ranked, taste, min_score=matcher.min_score(profile)):
                score = scored.score + shift * QUANTUM
                if score + 1e-9 >= at_least and scored.item.id not in skip:
                    candidates.setdefault(scored.item.id, []).append((-score, order[profile], profile, scored, shift))
        best = []
        for options in candidates.values():
            options.sort(key=lambda option: option[:2])
            best.append((options[0], tuple(option[2] for option in options[1:])))
        best.sort(key=lambda entry: (entry[0][0], entry[0][3].item.id))
        caps = {p: matcher.max_items(p) for p in known}
        taken: dict[str, int] = {}
        kept = []
        for (_, _, profile, scored, shift), also in best:
            cap = caps[profile]
            if cap is None or taken.get(profile, 0) < cap:
                taken[profile] = taken.get(profile, 0) + 1
                kept.append((profile, scored, shift, also))
        chosen = kept if limit is None else kept[:limit]
        shown = [explained(scored, shift, tastes[profile]) for profile, scored, shift, _ in chosen]
        shown = [replace(s, also=also) if also else s for s, (_, _, _, also) in zip(shown, chosen, strict=True)]
        return shown, len(kept)

    def _ranked_for(self, since: datetime, profile: str) -> list[ScoredItem]:
        """Every paper of the window the profile scored, explained (shared by the readers of that window)."""
        key = (since, profile)
        if key not in self._ranked:
            self._ranked[key] = self.matches.matcher.rank(self.matches.window(since), profile, with_below_min=True)
        return self._ranked[key]

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
            vectors = self._vectors = PaperVectors(list(corpus.values()), [*self._rated_items().values(), *library])
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
