"""Candidate generation for EpisodicStore.search: tantivy full text, LSH/HNSW vectors, fusion.

Everything here runs inside the caller's read transaction (one snapshot), and every path
applies the same visibility filter (as-of, time window, stream) - see ``vector_index.Filter``.
Measured design choices (1M entries, 2 cores) are documented on each method.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np
from sqlalchemy import Connection, select

from taskmem_ros.config import StoreConfig
from taskmem_ros.store import lexical
from taskmem_ros.store.fulltext import ADD_CHUNK, TAIL_MAX, FullTextIndex, index_text, rank_tail
from taskmem_ros.store.hnsw_index import HnswIndex
from taskmem_ros.store.models import Embedding
from taskmem_ros.store.rawsql import raw_rows
from taskmem_ros.store.vector_index import LSH_BYTES, BinaryIndex, Filter, lsh_codes

log = logging.getLogger(__name__)

RRF_K = 60  # reciprocal-rank-fusion constant (Cormack et al.); damps the head of each list
RERANK_FACTOR = 4  # LSH candidates per wanted vector hit, re-scored with exact floats
BULK_LOAD_MIN = 5000  # below this many new rows, load codes from floats instead of vec0
VEC0_MAX_K = 4096  # sqlite-vec's limit on k
_IN_CHUNK = 500
_V = Embedding.__table__

Ranked = list[tuple[int, float]]


def fetch_vectors(conn: Connection, ids: list[int]) -> dict[int, np.ndarray]:
    """Stored float32 vectors by entry id (ids without a vector are absent)."""
    found: dict[int, np.ndarray] = {}
    uniq = list(dict.fromkeys(ids))
    for k in range(0, len(uniq), _IN_CHUNK):
        chunk = uniq[k : k + _IN_CHUNK]
        for eid, blob in conn.execute(select(_V.c.entry_id, _V.c.vector).where(_V.c.entry_id.in_(chunk))).all():
            found[int(eid)] = np.frombuffer(blob, dtype="<f4")
    return found


def _threads() -> int:
    return max(1, min(4, os.cpu_count() or 1))


def fuse(fts: Ranked, vec: Ranked, wf: float, wv: float) -> Ranked:
    """Weighted reciprocal-rank fusion, normalised so an entry ranked first by both is 1.

    RRF rather than mixing raw scores: bm25 (or ts_rank_cd on PostgreSQL) and cosine live
    on unrelated scales. Shared by both backends so hybrid results follow one rule."""
    score: dict[int, float] = {}
    for rank, (i, _) in enumerate(fts):
        score[i] = score.get(i, 0.0) + wf / (RRF_K + rank + 1)
    for rank, (i, _) in enumerate(vec):
        score[i] = score.get(i, 0.0) + wv / (RRF_K + rank + 1)
    norm = (wf + wv) / (RRF_K + 1)
    return sorted(((i, s / norm) for i, s in score.items()), key=lambda t: (-t[1], t[0]))


HNSW_SAVE_EVERY = 100_000  # unsaved HNSW changes that trigger a save during refresh (else on close)
# Entries from which the HNSW index is loaded or built in a background thread while the LSH
# tier answers: reading a 1M-entry file takes seconds and building 1M entries tens of minutes.
BACKGROUND_MIN = 50_000


class Searcher:
    """Per-store search state: the RAM metadata + LSH index, the HNSW index (``vector_search
    = "hnsw"``, persisted at ``hnsw_path``) and a document-frequency cache."""

    def __init__(
        self,
        cfg: StoreConfig,
        dim: int,
        hnsw_path: str = "",
        *,
        save: bool = True,
        connect: Callable[[], Any] | None = None,
        fts_path: str = "",
        store_uid: str = "",
    ) -> None:
        self.cfg = cfg
        self.connect = connect  # a new read connection, for the background preparation
        self.ft: FullTextIndex | None = None  # tantivy, opened on first refresh (see fulltext)
        self.fts_path = fts_path
        self.store_uid = store_uid
        self._tomb_seen: int | None = None  # newest tombstone reflected in the RAM indexes
        self.dim = dim
        self.index = BinaryIndex()
        self.hnsw: HnswIndex | None = None
        self.hnsw_path = hnsw_path
        self.save = save  # False for read-only stores: load the index file, never write it
        self._hnsw_upto = 0  # every held id <= this is reflected in self.hnsw
        self._lock = threading.Lock()
        self._worker: threading.Thread | None = None
        self._prepared: HnswIndex | None = None
        self._cancel = threading.Event()
        self._failed = False

    def reset(self) -> None:
        worker = self._worker
        if worker is not None:
            self._cancel.set()
            worker.join()
        with self._lock:
            self._worker, self._prepared, self._failed = None, None, False
            self._cancel.clear()
            self.save_hnsw()
            self.index = BinaryIndex()
            self.hnsw = None
            self._hnsw_upto = 0
            self._tomb_seen = None
            if self.ft is not None:
                self.ft.close()
                self.ft = None

    def wait_ready(self, timeout: float | None = None) -> bool:
        """Wait for a background load/build; True when one finished (adopt it with refresh)."""
        worker = self._worker
        if worker is None:
            return False
        worker.join(timeout)
        return not worker.is_alive()

    def save_hnsw(self) -> None:
        """Persist the HNSW index if it changed (caller holds the lock or owns the searcher)."""
        if self.hnsw is None or not self.hnsw.unsaved or not self.hnsw_path or not self.save:
            return
        t0 = time.perf_counter()
        try:
            self.hnsw.save(self.hnsw_path)
        except OSError as exc:  # full disk, read-only dir: the index is rebuilt next open instead
            log.warning("vector index not saved to %s: %s", self.hnsw_path, exc)
            return
        log.info("vector index saved: %d entries in %.1f s", len(self.hnsw), time.perf_counter() - t0)

    # -- HNSW maintenance ----------------------------------------------------------------------
    def _sync_hnsw(self, conn: Connection) -> None:
        """Make the HNSW index hold exactly the held entries that have vectors: load it from
        disk on first use, then add what it lacks and mark deleted what the table lost (the
        repair that makes a kill -9 harmless; see hnsw_index)."""
        ids, has = self.index.ids(), self.index.has_code()
        if self.hnsw is None:
            if self._worker is not None:
                if self._worker.is_alive():
                    return  # still loading / building: the LSH tier answers meanwhile
                self._worker, prepared, self._prepared = None, self._prepared, None
                if prepared is None:
                    return  # the worker failed (logged): stay on the LSH tier
                loaded: HnswIndex | None = prepared
            elif self._failed:
                return
            elif self.connect is not None and self.hnsw_path and int(np.count_nonzero(has)) >= BACKGROUND_MIN:
                self._start_worker(ids[has].copy())
                return
            else:
                loaded = self._load_checked(conn, ids)
            self.hnsw = loaded or HnswIndex(self.dim, capacity=max(1024, len(ids)), threads=_threads())
            self.hnsw.threads = _threads()
            labels = self.hnsw.labels()
            extra = np.setdiff1d(labels, ids[has], assume_unique=True)
            if len(extra):
                self.hnsw.remove(extra)
            missing = np.setdiff1d(ids[has], labels, assume_unique=True)
            if loaded is not None and len(extra):
                log.info(
                    "vector index %s: %d entries no longer in the table marked deleted", self.hnsw_path, len(extra)
                )
        else:
            missing = ids[(ids > self._hnsw_upto) & has]
        if len(missing):
            self._add_from_table(conn, self.hnsw, missing)
        self._hnsw_upto = self.index.max_id
        if self.hnsw.unsaved >= HNSW_SAVE_EVERY:
            self.save_hnsw()

    def _load_checked(self, conn: Connection, ids: np.ndarray) -> HnswIndex | None:
        """The saved index if it is readable and belongs to this table, else None."""
        loaded = HnswIndex.load(self.hnsw_path, self.dim) if self.hnsw_path else None
        if loaded is not None and not self._same_vectors(conn, loaded, ids):
            log.warning("vector index %s holds other vectors than the table: rebuilding it", self.hnsw_path)
            return None
        return loaded

    def _add_from_table(self, conn: Connection, hnsw: HnswIndex, missing: np.ndarray, chunk_size: int = 20_000) -> bool:
        """Add the stored vectors of ``missing`` ids; False when cancelled (store closing)."""
        t0 = time.perf_counter()
        for lo in range(0, len(missing), chunk_size):
            if self._cancel.is_set():
                return False
            chunk = missing[lo : lo + chunk_size]
            rows = raw_rows(
                conn,
                "SELECT entry_id, vector FROM embeddings WHERE entry_id BETWEEN ? AND ? ORDER BY entry_id",
                (int(chunk[0]), int(chunk[-1])),
            )
            want = set(chunk.tolist())
            got = [(int(r[0]), r[1]) for r in rows if int(r[0]) in want and len(r[1]) == 4 * self.dim]
            if got:
                labels = np.fromiter((g[0] for g in got), np.int64, len(got))
                vecs = np.frombuffer(b"".join(g[1] for g in got), dtype="<f4").reshape(len(got), self.dim)
                hnsw.add(labels, vecs)
        if len(missing) > 1000:
            log.info("vector index: %d entries added in %.1f s", len(missing), time.perf_counter() - t0)
        return True

    def _start_worker(self, ids: np.ndarray) -> None:
        """Load (and check) or build the index for ``ids`` in a thread with its own read
        connection; the next refresh after it finishes adopts it and catches up (_sync_hnsw)."""

        def work() -> None:
            try:
                assert self.connect is not None
                with self.connect() as conn:
                    index = self._load_checked(conn, ids)
                    if index is None:
                        index = HnswIndex(self.dim, capacity=max(1024, len(ids)), threads=_threads())
                    missing = np.setdiff1d(ids, index.labels(), assume_unique=True)
                    if not self._add_from_table(conn, index, missing, chunk_size=5000):
                        return
                if index.unsaved >= HNSW_SAVE_EVERY and self.hnsw_path and self.save:
                    index.save(self.hnsw_path)
                self._prepared = index
            except Exception:  # logged; the LSH tier keeps answering and the next open retries
                log.exception("vector index %s: background load/build failed", self.hnsw_path or "(memory)")
                self._failed = True

        log.info("vector index: preparing %d entries in the background (LSH answers meanwhile)", len(ids))
        self._worker = threading.Thread(target=work, name="hnsw-prepare", daemon=True)
        self._worker.start()

    # -- index maintenance -------------------------------------------------------------------
    def refresh(self, conn: Connection, *, vec_table: bool, fulltext: bool = True) -> None:
        """Bring the indexes up to the snapshot of ``conn``: new ids, and entries forgotten
        since (tombstones; see vector_index and fulltext)."""
        with self._lock:
            self._forget_seen(conn)
            cleared = self._refresh_lsh(conn, vec_table=vec_table)
            if fulltext:
                self._sync_fulltext(conn)
            if self.cfg.vector_search == "hnsw":
                if cleared:
                    self.hnsw = None  # reload + full repair against the table below
                self._sync_hnsw(conn)

    def _forget_seen(self, conn: Connection) -> None:
        """Drop entries forgotten (by any process) since the last refresh from the RAM and
        HNSW indexes; a first refresh builds them from the table, which has none of them."""
        top = int(raw_rows(conn, "SELECT coalesce(max(seq), 0) FROM forgotten")[0][0])
        seen = self._tomb_seen
        self._tomb_seen = top
        if seen is None or top <= seen:
            return
        rows = raw_rows(conn, "SELECT entry_id FROM forgotten WHERE seq > ? AND entry_id IS NOT NULL", (seen,))
        gone = np.fromiter((int(r[0]) for r in rows), np.int64, len(rows))
        self.index.remove(gone)
        if self.hnsw is not None and len(gone):
            self.hnsw.remove(np.intersect1d(gone, self.hnsw.labels()))

    def _refresh_lsh(self, conn: Connection, *, vec_table: bool) -> bool:
        """Returns True when the index had to start over (rows deleted, file replaced)."""
        cleared = False
        newest = int(raw_rows(conn, "SELECT max(id) FROM memory_entries")[0][0] or 0)
        if newest < self.index.max_id:  # rows deleted / file replaced: start over
            self.index.clear()
            cleared = True
        last = self.index.max_id
        if newest == last:
            return cleared
        if last == 0 and vec_table and newest >= BULK_LOAD_MIN:
            self._bulk_load(conn)
            last = self.index.max_id
            if newest == last:
                return cleared
        rows = raw_rows(
            conn,
            "SELECT e.id, e.stream_id, e.start_ns, e.end_ns, v.vector FROM memory_entries e "
            "LEFT JOIN embeddings v ON v.entry_id = e.id WHERE e.id > ? ORDER BY e.id",
            (last,),
        )
        if not rows:
            return cleared
        vecs = np.zeros((len(rows), self.dim), np.float32)
        has = np.zeros(len(rows), bool)
        for k, r in enumerate(rows):
            if r[4] is not None and len(r[4]) == 4 * self.dim:
                vecs[k] = np.frombuffer(r[4], dtype="<f4")
                has[k] = True
        meta = np.array([r[:4] for r in rows], dtype=np.int64)
        self.index.append(meta[:, 0], meta[:, 1], meta[:, 2], meta[:, 3], lsh_codes(vecs), has)
        return cleared

    def _bulk_load(self, conn: Connection) -> None:
        """Cold start: metadata from memory_entries, codes from the narrow vec0 table
        (3.4 s for 1M entries; the float vectors would be 1.5 GB to read)."""
        t0 = time.perf_counter()
        meta_rows = raw_rows(conn, "SELECT id, stream_id, start_ns, end_ns FROM memory_entries ORDER BY id")
        meta = np.array(meta_rows, dtype=np.int64).reshape(-1, 4)
        del meta_rows
        code_rows = raw_rows(conn, "SELECT rowid, code FROM vec_entries")
        codes = np.zeros((len(meta), LSH_BYTES), np.uint8)
        has = np.zeros(len(meta), bool)
        if code_rows:
            cids = np.fromiter((r[0] for r in code_rows), np.int64, len(code_rows))
            blob = np.frombuffer(b"".join(r[1] for r in code_rows), np.uint8).reshape(len(code_rows), -1)
            pos = np.searchsorted(meta[:, 0], cids)
            ok = (pos < len(meta)) & (meta[np.minimum(pos, len(meta) - 1), 0] == cids)
            codes[pos[ok]] = blob[ok, :LSH_BYTES]
            has[pos[ok]] = True
        self.index.append(meta[:, 0], meta[:, 1], meta[:, 2], meta[:, 3], codes, has)
        log.info("vector index loaded: %d entries in %.1f s", len(meta), time.perf_counter() - t0)

    # -- fusion ------------------------------------------------------------------------------
    def fuse(self, fts: Ranked, vec: Ranked) -> Ranked:
        return fuse(fts, vec, self.cfg.fts_weight, self.cfg.vector_weight)

    # -- full text ---------------------------------------------------------------------------
    def _sync_fulltext(self, conn: Connection) -> FullTextIndex:
        """Open the tantivy index on first use (checked against the table, see fulltext), then
        apply new tombstones and index new rows; commit before the search reads it."""
        ft = self.ft
        if ft is None:
            ft = FullTextIndex(self.fts_path, self.store_uid, writable=self.save, threads=_threads())
            valid = ft.open()
            if ft.owns_writer:
                self._fulltext_tombstones(conn, ft)
                ft.upto = ft.max_id() if valid else 0
                n_db = int(raw_rows(conn, "SELECT count(*) FROM memory_entries WHERE id <= ?", (ft.upto,))[0][0])
                if n_db != ft.num_docs():
                    log.warning("full-text index holds %d entries, the table %d: rebuilding it", ft.num_docs(), n_db)
                    ft.clear()
                    ft.commit()
            else:
                ft.upto = ft.max_id()
            self.ft = ft
        if not ft.owns_writer:
            ft.refresh_reader()
            ft.upto = max(ft.upto, ft.max_id())
            return ft
        changed = self._fulltext_tombstones(conn, ft)
        t0, added = time.perf_counter(), 0
        while True:
            rows = raw_rows(
                conn,
                "SELECT id, stream_id, start_ns, end_ns, text FROM memory_entries WHERE id > ? ORDER BY id LIMIT ?",
                (ft.upto, ADD_CHUNK),
            )
            if not rows:
                break
            ft.add(rows)
            added += len(rows)
            changed = True
        if changed:
            ft.commit()
        if added > 10_000:
            log.info("full-text index: %d entries added in %.1f s", added, time.perf_counter() - t0)
        return ft

    @staticmethod
    def _fulltext_tombstones(conn: Connection, ft: FullTextIndex) -> bool:
        rows = raw_rows(conn, "SELECT seq, entry_id FROM forgotten WHERE seq > ? ORDER BY seq", (ft.tomb_upto,))
        if not rows:
            return False
        ft.delete([int(r[1]) for r in rows if r[1] is not None])
        ft.tomb_upto = int(rows[-1][0])
        return True

    def fts(self, conn: Connection, terms: list[str], flt: Filter, pool: int) -> Ranked:
        """Full-text (id, bm25) of visible entries, best first: tantivy's exact bm25 top-k with
        the as-of / window / stream filters inside the query, then the RAM visibility check
        (which also hides entries forgotten since a shared index was last committed)."""
        if not terms:
            return []
        with self._lock:
            ft = self.ft
            if ft is None:
                return []
            hits = ft.search(terms, flt, pool)
            tail = [] if ft.owns_writer else self._fts_tail(conn, ft, terms, flt, pool)
        if tail:
            hits = sorted(hits + tail, key=lambda t: (-t[1], t[0]))
        if not hits:
            return []
        ids = np.fromiter((i for i, _ in hits), np.int64, len(hits))
        ok = self.index.visible(ids, flt)
        return [h for h, v in zip(hits, ok, strict=True) if v][:pool]

    def _fts_tail(self, conn: Connection, ft: FullTextIndex, terms: list[str], flt: Filter, pool: int) -> Ranked:
        """Entries newer than a shared index (its writer lives in another process): FTS5 finds
        them (newest first, bounded), ranked with the index's bm25 statistics (fulltext.rank_tail)."""
        bounds = self.index.id_range(flt)
        if bounds is None or bounds[1] <= ft.upto:
            return []
        rows = raw_rows(
            conn,
            "SELECT rowid, text FROM memory_fts WHERE memory_fts MATCH ? AND rowid > ? AND rowid <= ? "
            "ORDER BY rowid DESC LIMIT ?",
            (lexical.any_of(terms), max(ft.upto, bounds[0] - 1), bounds[1], TAIL_MAX),
        )
        if not rows:
            return []
        ids = np.fromiter((r[0] for r in rows), np.int64, len(rows))
        keep = self.index.visible(ids, flt)
        rows = [r for r, v in zip(rows, keep, strict=True) if v]
        if not rows:
            return []
        texts = [r[1] for r in rows]
        df = ft.doc_freqs(terms)
        for text in texts:
            for term in set(index_text(text).split()) & set(terms):
                df[term] += 1
        avg = sum(len(t.split()) for t in texts) / len(texts)
        scores = rank_tail(texts, terms, df, ft.num_docs() + len(texts), avg)
        order = np.argsort(-scores, kind="stable")[:pool]
        return [(int(rows[j][0]), float(scores[j])) for j in order if scores[j] > 0]

    # -- vectors -----------------------------------------------------------------------------
    def vector(self, conn: Connection, qvec: np.ndarray, flt: Filter, pool: int, *, use_vec0: bool) -> Ranked:
        """(id, cosine) of the ``pool`` best visible entries: HNSW with the visibility mask as
        its filter when enough entries are visible, else LSH candidates + float re-rank."""
        hit = self._hnsw_vector(qvec, flt, pool) if self.cfg.vector_search == "hnsw" else None
        if hit is not None:
            return hit
        qcode = lsh_codes(qvec[None, :])[0]
        k = pool * RERANK_FACTOR
        cand: list[int]
        if use_vec0:
            cand = self._vec0_knn(conn, qcode, flt, min(k, VEC0_MAX_K))
        else:
            cand = [int(i) for i in self.index.candidates(qcode, flt, k)]
        if not cand:
            return []
        found = fetch_vectors(conn, cand)
        ids = [i for i in cand if i in found and len(found[i]) == len(qvec)]
        if not ids:
            return []
        sims = np.stack([found[i] for i in ids]) @ qvec
        order = np.lexsort((np.asarray(ids), -sims))[:pool]  # ties: older entry first, deterministic
        return [(ids[j], float(sims[j])) for j in order]

    def _same_vectors(self, conn: Connection, hnsw: HnswIndex, ids: np.ndarray, sample: int = 32) -> bool:
        """Spot-check that a loaded index belongs to this table (a replaced or restored
        database file keeps its ids but not its entries): compare a few stored vectors."""
        labels = hnsw.labels()
        both = np.intersect1d(labels, ids, assume_unique=True)
        if len(both) == 0:
            return len(labels) == 0 or len(ids) == 0
        pick = np.random.default_rng(0).choice(both, size=min(sample, len(both)), replace=False)
        stored = fetch_vectors(conn, [int(i) for i in pick])
        try:
            held = hnsw.vectors(pick)
        except RuntimeError:  # a picked label was deleted in the file: it cannot vouch for it
            return False
        for i, v in zip(pick.tolist(), held, strict=True):
            ref = stored.get(int(i))
            if ref is None or len(ref) != len(v):
                return False
            ref = ref / max(float(np.linalg.norm(ref)), 1e-12)
            if float(np.dot(ref, v / max(float(np.linalg.norm(v)), 1e-12))) < 0.999:
                return False
        return True

    def _hnsw_vector(self, qvec: np.ndarray, flt: Filter, pool: int) -> Ranked | None:
        """None when the LSH tier should answer (few visible entries, see hnsw_index)."""
        with self._lock:
            hnsw = self.hnsw
            ids, has = self.index.ids(), self.index.has_code()
            n = len(ids)
            if hnsw is None or n == 0:
                return None
            mask = self.index.mask(flt) & has
            visible = int(np.count_nonzero(mask))
            if visible < HnswIndex.MIN_VISIBLE * n or visible <= pool * RERANK_FACTOR:
                return None
            first, last = int(ids[0]), int(ids[-1])
            if last - first + 1 == n:  # dense ids (no gaps): position = id - first
                labels, sims = hnsw.search(qvec, pool, mask=mask, base=first)
            else:
                by_id = np.zeros(last - first + 1, bool)
                by_id[ids[mask] - first] = True
                labels, sims = hnsw.search(qvec, pool, mask=by_id, base=first)
        order = np.lexsort((labels, -sims))  # ties: older entry first, as on the LSH path
        return [(int(labels[j]), float(sims[j])) for j in order]

    @staticmethod
    def _vec0_knn(conn: Connection, qcode: np.ndarray, flt: Filter, k: int) -> list[int]:
        """KNN inside SQLite (sqlite-vec): filters are vec0 metadata/partition constraints.
        Exact over the codes, but O(rows x k): ~100 ms for k=100 at 1M rows."""
        clauses, cargs = flt.sql_clauses()
        where = ["code MATCH vec_bit(?)", "k = ?", *clauses]
        args: list[Any] = [qcode.tobytes(), k, *cargs]
        sql = f"SELECT rowid FROM vec_entries WHERE {' AND '.join(where)} ORDER BY distance"
        return [int(r[0]) for r in raw_rows(conn, sql, tuple(args))]
