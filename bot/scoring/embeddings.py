"""Item vectors, computed once for an item's lifetime: an in-memory LRU in front of the database.

`semantic.Embedder.embed_items` asks `ItemVectors.get`: vectors come from memory, then (when a store is attached)
from the database in one query per 200 items, and only what neither holds is given to the model, in chunks that
are saved as they are done, so a restart, a second process or an interrupted backlog never embeds a paper twice.
A vector is keyed by item id and a hash of the embedded text (an edited abstract is embedded again) and stored
with the model's name (another model's vectors count as missing). The store is a cache here: a failure to read
or write it is logged and embedding goes on, so it never fails a cycle.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol, TypeAlias

import numpy as np

from bot.models import Item, ItemVector

if TYPE_CHECKING:
    from numpy.typing import NDArray

    Vector: TypeAlias = NDArray[np.float32]
else:
    Vector = Any

log = logging.getLogger(__name__)

SAVE_CHUNK = 256  # texts embedded (and saved) at a time: an interrupted backlog keeps what was done
_STORED = np.dtype("<f4")  # little-endian float32, whatever the machine
Key = tuple[str, bytes]  # (item id, text hash)


class VectorStore(Protocol):
    """Where item vectors outlive the process; `bot.store.Store` is one."""

    def get_vectors(self, ids: Sequence[str], *, model: str) -> Mapping[str, ItemVector]: ...

    def save_vectors(self, item_vectors: Sequence[ItemVector], *, model: str) -> int: ...


def item_text(item: Item) -> str:
    """What is embedded for an item: its title and abstract."""
    return f"{item.title}. {item.abstract}" if item.abstract else item.title


def text_hash(text: str) -> bytes:
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).digest()


def to_bytes(vector: Vector) -> bytes:
    return np.asarray(vector, dtype=_STORED).tobytes()


def from_bytes(data: bytes) -> Vector:
    return np.frombuffer(data, dtype=_STORED).astype(np.float32)


class ItemVectors:
    """The vectors of items for one model: a bounded LRU in memory and, once attached, a `VectorStore`.

    Thread-safe (one lock: planning and the refresh hook run in worker threads, one at a time in practice).
    """

    def __init__(self, model: str, dimensions: int, *, cache_items: int, store: VectorStore | None = None) -> None:
        self.model = model
        self.dimensions = dimensions
        self.embedded = 0  # texts this object had the model embed: what the store saved us is what it did not
        self._cache: OrderedDict[Key, Vector] = OrderedDict()
        self._cache_items = cache_items
        self._store = store
        self._store_failing = False
        self._lock = threading.RLock()

    def attach(self, store: VectorStore | None) -> None:
        """Read and keep vectors in `store` from now on (None: memory only). Attaching another store empties the
        memory: what memory holds is then always what the attached store holds (or was offered), so a vector
        computed before is never missing from the store for being found in memory."""
        with self._lock:
            if store is not self._store:
                self._cache.clear()
            self._store = store

    def detach(self, store: VectorStore) -> None:
        """Stop using `store` (when it is being closed), unless another one was attached since."""
        with self._lock:
            if self._store is store:
                self._store = None

    @property
    def store(self) -> VectorStore | None:
        return self._store

    def cached(self) -> int:
        return len(self._cache)

    def get(self, items: Sequence[Item], embed: Callable[[Sequence[str]], Vector]) -> list[Vector]:
        """One unit vector per item, in order: from memory, then the store, and `embed` for the rest."""
        keys = [(item.id, text_hash(item_text(item))) for item in items]
        with self._lock:
            found: dict[Key, Vector] = {}
            missing: dict[Key, Item] = {}
            for key, item in zip(keys, items, strict=True):
                vector = self._cache.get(key)
                if vector is not None:
                    self._cache.move_to_end(key)
                    found[key] = vector
                else:
                    missing[key] = item
            if missing and self._store is not None:
                found.update(self._load(self._store, missing))
            if missing:
                found.update(self._embed(missing, embed))
            return [found[key] for key in keys]

    def _load(self, store: VectorStore, missing: dict[Key, Item]) -> dict[Key, Vector]:
        """The stored vectors of `missing` whose text and size still fit (taken out of `missing`)."""
        try:
            stored = store.get_vectors([item_id for item_id, _ in missing], model=self.model)
        except Exception as exc:  # noqa: BLE001 - the store only saves work: without it, embed
            self._trouble("read", exc)
            return {}
        self._store_failing = False
        loaded: dict[Key, Vector] = {}
        for key in list(missing):
            row = stored.get(key[0])
            if row is not None and row.text_hash == key[1] and len(row.vector) == self.dimensions * _STORED.itemsize:
                loaded[key] = self._remember(key, from_bytes(row.vector))
                del missing[key]
        return loaded

    def _embed(self, missing: dict[Key, Item], embed: Callable[[Sequence[str]], Vector]) -> dict[Key, Vector]:
        """Embed `missing` a chunk at a time, keeping and saving each chunk's vectors as soon as it is done."""
        done: dict[Key, Vector] = {}
        pending = list(missing.items())
        for start in range(0, len(pending), SAVE_CHUNK):
            chunk = pending[start:start + SAVE_CHUNK]
            vectors = embed([item_text(item) for _, item in chunk])
            self.embedded += len(chunk)
            for (key, _), vector in zip(chunk, vectors, strict=True):
                done[key] = self._remember(key, vector)
            self._save([ItemVector(key[0], key[1], to_bytes(done[key])) for key, _ in chunk])
        return done

    def _save(self, vectors: list[ItemVector]) -> None:
        store = self._store
        if store is None:
            return
        try:
            store.save_vectors(vectors, model=self.model)
        except Exception as exc:  # noqa: BLE001 - a vector not saved is embedded again later, nothing worse
            self._trouble("save", exc)
            return
        self._store_failing = False

    def _remember(self, key: Key, vector: Vector) -> Vector:
        self._cache[key] = vector
        if len(self._cache) > self._cache_items:
            self._cache.popitem(last=False)
        return vector

    def _trouble(self, doing: str, exc: Exception) -> None:
        """Warn once while the store keeps failing (planning asks item by item: no flood of warnings)."""
        level = logging.DEBUG if self._store_failing else logging.WARNING
        self._store_failing = True
        log.log(level, "cannot %s stored item vectors (%s: %s); embedding goes on without them", doing,
                type(exc).__name__, exc)
