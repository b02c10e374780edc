"""Each track's neighbourhood: how close its nearest tracks lie, for ranking that does not favour hubs.

In a space of a few hundred dimensions some tracks (hubs) lie near the centre of everything and turn up in
everyone's top ten, while others are no one's neighbour. CSLS (cross-domain similarity local scaling, Conneau
et al. 2018) scores a candidate ``x`` for a query ``q`` by ``2 cos(q, x) - r(q) - r(x)``, where ``r`` is a
track's mean cosine to its :data:`K` nearest other tracks: a candidate that is near everything is discounted
by how near everything it is. For one query ``r(q)`` is a constant, so the ranking is ``cos(q, x) - r(x) / 2``
and needs only the candidates' ``r``, which this module keeps: one float16 a track, indexed by id, in
``neighbours.gN.npy`` (NaN: not known; 2 MB at a million tracks, memory-mapped by readers).

Measured on two corpora of real music (``benchmarks/track_vectors.py``, leave-one-out group precision@10,
paired bootstrap over queries): the default track vector ranked by CSLS against the same vector by plain
cosine +0.002 [-0.008, +0.011] on A (248 tracks, 13 soundtracks), +0.021 [+0.008, +0.033] on B (156 tracks, 12
soundtracks), +0.011 [+0.003, +0.020] pooled; against the previous default (the MSD network alone, cosine)
+0.011 [-0.006, +0.029], +0.046 [+0.030, +0.062], +0.029 [+0.017, +0.041].

``r`` is the mean inner product with the ``K`` nearest other tracks in the store's own index (what search
scores). It is computed for a track when its vector enters the store, against the library as it then stands,
and for every track again whenever the library transform is refitted (the library grown by half since the
last fit, or ``reindex --refit``) or the index rebuilt by ``reindex``: between refits it is frozen like the
transform, so scores do not drift from one commit to the next.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

#: neighbours whose mean cosine is a track's ``r`` (10 and 20 measured alike; see the module's docstring)
K = 10
PREFIX = "neighbours.g"


def record_ok(rec) -> bool:
    """Whether a manifest's ``neighbours`` entry has the shape this module writes."""
    return isinstance(rec, dict) and isinstance(rec.get("file"), str) and "/" not in rec["file"] \
        and isinstance(rec.get("k"), int) and isinstance(rec.get("shards_covered"), int)


def _knn_mean(index, ids: np.ndarray, vectors: np.ndarray, k: int, batch: int = 4096) -> np.ndarray:
    """Mean score of each raw vector's ``k`` nearest in ``index`` other than its own id (NaN: none found)."""
    out = np.full(len(ids), np.nan, np.float32)
    for at in range(0, len(ids), batch):
        scores, got = index.search(index.embed(vectors[at : at + batch]), k + 1)
        out[at : at + batch] = _mean_of_others(scores, got, ids[at : at + batch], k)
    return out


def _mean_of_others(scores: np.ndarray, got: np.ndarray, ids: np.ndarray, k: int) -> np.ndarray:
    """Row means of the ``k`` best results ``(scores, got)`` that are not the row's own id (NaN: none)."""
    mine = got == ids[:, None]
    other = (got >= 0) & ~mine
    # the k best of the others: the row's first k + 1 results less itself (or the last one, when it is absent)
    keep = other & (np.cumsum(other, axis=1) <= k)
    n = keep.sum(axis=1)
    total = np.where(keep, scores, 0.0).sum(axis=1)
    return np.where(n > 0, total / np.maximum(n, 1), np.nan).astype(np.float32)


def _all_pairs(index, batches, k: int, block: int = 4096) -> tuple[np.ndarray, np.ndarray]:
    """Every streamed track's mean cosine to its ``k`` nearest others, exactly: the vectors decoded into the
    index's space in float32 (``width`` floats a track: 100 MB at 100,000 tracks of 256) and searched by
    matrix products (FAISS's brute-force kNN). For the sizes a flat index serves."""
    import faiss

    ids, xs = [], []
    for b_ids, raw in batches:
        ids.append(b_ids)
        xs.append(index.embed(raw))
    if not ids:
        return np.zeros(0, np.int64), np.zeros(0, np.float32)
    ids, x = np.concatenate(ids), np.ascontiguousarray(np.concatenate(xs), dtype=np.float32)
    out = np.empty(len(ids), np.float32)
    for at in range(0, len(ids), block):
        scores, pos = faiss.knn(x[at : at + block], x, min(k + 1, len(ids)), metric=faiss.METRIC_INNER_PRODUCT)
        out[at : at + block] = _mean_of_others(scores, np.where(pos >= 0, ids[np.maximum(pos, 0)], -1), ids[at : at + block], k)
    return ids, out


def commit(root: Path, m: dict, gen: int, live: np.ndarray, *, open_index, iter_vectors, newer_shards,
           recompute: bool, atomic_write) -> tuple[dict | None, list[str]]:
    """The neighbourhoods of generation ``gen``: the previous generation's, with ``r`` computed for the live
    tracks that have none or whose vector was written since (``newer_shards(shards_covered)``), or, with
    ``recompute`` (a refit or a rebuild), for every live track. ``open_index()`` gives the generation's
    committed track index, ``iter_vectors(shard_names, ids)`` the tracks' latest raw vectors. Returns the
    manifest record and the files written."""
    t0 = time.perf_counter()
    live = np.asarray(live, np.int64)
    prev = m.get("neighbours") if record_ok(m.get("neighbours")) else None
    top = int(live.max()) + 1 if len(live) else 0
    r = np.full(top, np.nan, np.float16)
    names = list(m["shards"])  # whose vectors are searched: all, or those written since the last commit
    fresh = prev is None or recompute or prev["k"] != K
    if not fresh:
        try:
            old = np.load(root / prev["file"])
            r[: min(top, len(old))] = old[:top]
            names = newer_shards(int(prev["shards_covered"]))
        except (OSError, ValueError):
            fresh = True
            r[:] = np.nan
    known = np.zeros(top, bool)
    known[live] = True
    r[~known] = np.nan  # removed tracks keep nothing
    index, searched = None, 0
    if fresh and names:
        index = open_index()
        if not index.is_ivf:  # every track against every other: exact, in float, by matrix products
            ids, got = _all_pairs(index, iter_vectors(names, live), K)
            r[ids] = got.astype(np.float16)
            searched, names = len(ids), []
    for ids, vecs in iter_vectors(names, live):
        index = index or open_index()
        # (through inverted lists, as deep as search probes: r then misses the neighbours search would miss)
        r[ids] = _knn_mean(index, ids, vecs, K).astype(np.float16)
        searched += len(ids)
    have = r[live][~np.isnan(r[live])].astype(np.float32)
    name = f"{PREFIX}{gen:06d}.npy"
    atomic_write(root / name, lambda f: np.save(f, r))
    record = {"file": name, "k": K, "shards_covered": int(m["next_shard"]), "tracks": int(len(have)),
              "min": float(have.min()) if len(have) else None, "median": float(np.median(have)) if len(have) else None,
              "recomputed": int(gen if fresh else prev.get("recomputed", gen)),
              "searched": searched, "seconds": round(time.perf_counter() - t0, 3)}
    return record, [name]


class Neighbourhoods:
    """A reader's view of one generation's ``r``: memory-mapped, looked up by id."""

    def __init__(self, root: Path, record: dict):
        self.k = int(record["k"])
        self.median = float(record["median"]) if record.get("median") is not None else 0.0
        self._r = np.load(root / record["file"], mmap_mode="r")

    def of(self, ids: np.ndarray) -> np.ndarray:
        """``r`` of each id (float32; the library's median where it is not known)."""
        ids = np.asarray(ids, np.int64)
        out = np.full(len(ids), self.median, np.float32)
        inside = (ids >= 0) & (ids < len(self._r))
        got = np.asarray(self._r[ids[inside]], np.float32)
        out[inside] = np.where(np.isnan(got), self.median, got)
        return out
