"""HNSW vector index for the embedded (SQLite) store: hnswlib with a filter predicate, persisted.

Why hnswlib: of the maintained HNSW libraries measured here (benchmarks/bench_vector.py),
hnswlib and usearch are both fast, but only hnswlib's Python API takes a filter predicate
during the graph search (``knn_query(filter=...)``), which is what as-of / window / stream
visibility needs; usearch's Python ``search`` has none, and filtering its results afterwards
loses recall exactly where filters are selective (measured at 100k MiniLM vectors: usearch
post-filtered 0.955 at 5 % visible vs 0.998 filtered hnswlib, and a 1.4x longer build).
faiss's IDSelector measured recall 0.69 at 5 % selectivity.

A very selective filter makes any filtered graph search walk most of the graph, so the store
uses this index only when the filter keeps at least ``MIN_VISIBLE`` of the entries and keeps
our LSH pre-selection + exact float re-rank for the rest (``search.Searcher.vector``).

Persistence: ``<db>.hnsw`` beside the SQLite file, written atomically (temp file + rename);
from ``search.BACKGROUND_MIN`` entries it is loaded (or built) in a background thread.
The file carries no claim about the table: on open, its labels are compared with the table's
ids; entries it lacks are added from the stored float vectors and entries the table no longer
has are marked deleted. So a kill -9 at any moment (before, during or after a save) costs at
most a catch-up, never a disagreement.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any

import numpy as np

from taskmem_ros.fsutil import atomic_write_with

log = logging.getLogger(__name__)


def _hnswlib() -> Any:
    try:
        import hnswlib
    except ImportError as exc:  # pragma: no cover - core dependency
        raise ImportError("store.vector_search='hnsw' needs the hnswlib package (pip install hnswlib)") from exc
    return hnswlib


class HnswIndex:
    """Cosine HNSW over entry ids (labels); thread-safe; grows as entries are added."""

    M = 16  # graph degree
    EF_CONSTRUCTION = 200
    # 100k MiniLM vectors (bench_vector.py): recall@10 0.92 / 0.96 / 0.97 at ef 64 / 128 / 256
    # unfiltered, p95 <= 2.3 ms at >= 50 % visible; 1M not measured yet
    DEFAULT_EF = 256
    MIN_VISIBLE = 0.10  # below this share of visible entries the LSH tier answers instead

    def __init__(self, dim: int, *, capacity: int = 1024, threads: int = 1, index: Any = None) -> None:
        self.dim = int(dim)
        self.threads = int(threads)
        self._lock = threading.RLock()
        if index is None:
            index = _hnswlib().Index(space="cosine", dim=self.dim)
            index.init_index(max_elements=max(16, capacity), ef_construction=self.EF_CONSTRUCTION, M=self.M)
        self._index = index
        self._deleted = 0
        self.ef = self.DEFAULT_EF
        self.unsaved = 0

    def __len__(self) -> int:
        return int(self._index.get_current_count()) - self._deleted

    @property
    def ef(self) -> int:
        return self._ef

    @ef.setter
    def ef(self, value: int) -> None:
        self._ef = int(value)
        self._index.set_ef(self._ef)

    def labels(self) -> np.ndarray:
        """Every label held (deleted ones included: hnswlib keeps their slots)."""
        with self._lock:
            return np.asarray(self._index.get_ids_list(), dtype=np.int64)

    def vectors(self, labels: np.ndarray) -> np.ndarray:
        """Stored (normalised) vectors of ``labels``; RuntimeError for unknown/deleted ones."""
        with self._lock:
            return np.asarray(self._index.get_items(np.asarray(labels, np.int64).tolist()), np.float32)

    def add(self, labels: np.ndarray, vectors: np.ndarray) -> None:
        labels = np.asarray(labels, np.int64)
        if len(labels) == 0:
            return
        with self._lock:
            need = int(self._index.get_current_count()) + len(labels)
            cap = int(self._index.get_max_elements())
            if need > cap:
                self._index.resize_index(max(need, cap * 2))
            self._index.add_items(np.asarray(vectors, np.float32), labels, num_threads=self.threads)
            self.unsaved += len(labels)

    def remove(self, labels: np.ndarray) -> int:
        """Mark ``labels`` deleted (ids are never reused, so slots are not recycled). Labels
        already marked in a saved file count too, which is how a reloaded index learns its
        deleted count (hnswlib does not persist one)."""
        n = 0
        with self._lock:
            for label in np.asarray(labels, np.int64).tolist():
                try:
                    self._index.mark_deleted(int(label))
                    n += 1
                except RuntimeError as exc:  # unknown label, or already deleted
                    n += "already" in str(exc)
            self._deleted += n
            self.unsaved += n
        return n

    def search(
        self, query: np.ndarray, k: int, *, mask: np.ndarray | None = None, base: int = 0
    ) -> tuple[np.ndarray, np.ndarray]:
        """(labels, cosine similarities) of the ``k`` nearest labels ``l`` with
        ``mask[l - base]`` true (all when ``mask`` is None), best first."""
        with self._lock:
            live = len(self)
            if live == 0 or k <= 0:
                return np.zeros(0, np.int64), np.zeros(0, np.float32)
            k = min(int(k), live)
            flt = None
            visible = live if mask is None else int(np.count_nonzero(mask))
            if mask is not None and visible < live:  # a filter: hnswlib calls it per visited node (GIL)
                k = min(k, visible)
                if k == 0:
                    return np.zeros(0, np.int64), np.zeros(0, np.float32)
                allowed = np.ascontiguousarray(mask, dtype=np.bool_).tobytes()
                size = len(allowed)

                def flt(label: int) -> bool:
                    i = label - base
                    return 0 <= i < size and allowed[i] == 1

            if self._ef < k:
                self._index.set_ef(k)
            try:
                labels, dist = self._index.knn_query(
                    np.asarray(query, np.float32)[None, :], k=k, num_threads=1, filter=flt
                )
            except RuntimeError:  # fewer than k allowed labels: hnswlib refuses rather than returning fewer
                return self._search_fewer(query, k, flt)
            finally:
                if self._ef < k:
                    self._index.set_ef(self._ef)
        return labels[0].astype(np.int64), (1.0 - dist[0]).astype(np.float32)

    def _knn(self, query: np.ndarray, k: int, flt: Any) -> tuple[np.ndarray, np.ndarray]:
        q = np.asarray(query, np.float32)[None, :]
        return self._index.knn_query(q, k=k, num_threads=1, filter=flt)  # type: ignore[no-any-return]

    def _search_fewer(self, query: np.ndarray, k: int, flt: Any) -> tuple[np.ndarray, np.ndarray]:
        while k > 1:
            k = max(1, k // 2)
            try:
                labels, dist = self._index.knn_query(
                    np.asarray(query, np.float32)[None, :], k=k, num_threads=1, filter=flt
                )
                return labels[0].astype(np.int64), (1.0 - dist[0]).astype(np.float32)
            except RuntimeError:
                continue
        return np.zeros(0, np.int64), np.zeros(0, np.float32)

    # -- persistence ---------------------------------------------------------------------------
    def save(self, path: Path | str) -> None:
        """Write atomically: a crash leaves either the old file or the new one, never half."""
        with self._lock:
            atomic_write_with(path, lambda tmp: self._index.save_index(str(tmp)))
            self.unsaved = 0

    @classmethod
    def load(cls, path: Path | str, dim: int, *, threads: int = 1) -> HnswIndex | None:
        """The index saved at ``path``, or None when it is missing or unreadable (the caller
        rebuilds it from the table)."""
        path = Path(path)
        if not path.is_file():
            return None
        try:
            index = _hnswlib().Index(space="cosine", dim=int(dim))
            index.load_index(str(path), allow_replace_deleted=False)
        except (RuntimeError, ValueError, OSError) as exc:
            log.warning("vector index %s unreadable (%s): rebuilding it from the table", path, exc)
            return None
        return cls(dim, threads=threads, index=index)  # deleted count: see remove()
