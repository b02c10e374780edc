"""Near-duplicate recordings: the same music in other files (re-encoded, resampled, trimmed, another mix).

Two tracks are copies when their vectors' cosine (in the index's space, what search scores) is at least
:data:`COPY_COSINE` and their durations differ by at most :data:`COPY_DURATION` of the longer (or 2 s).
Measured on the dev corpus (``benchmarks/dupes.py``: 248 real tracks, copies of 40 of them): MP3
re-encodings scored 0.964-0.999 with their originals, 22 kHz copies 0.974-1.000, copies trimmed by 3 s at
each end 0.880-0.991 (median 0.956); the nearest *different* track of a track's own soundtrack scored 0.789 at
the 95th percentile, and the two pairs of different files above 0.93 were versions of one piece (the same
146.6 s in two mixes, 0.978; one theme in 182 and 178 s takes, 0.936). Copies 6 dB quieter scored only
0.71-0.97 at the recorded level; the default front end now normalises the level (``model.musicnn.LEVEL_PEAK``)
and they score 1.000 (stores made before keep the recorded level).

Those figures are for the track vector of mean and spread over windows (stores made before the mean alone
became the default). With the mean alone (``benchmarks/dupes.py`` on the same corpus and copies) copies lie
closer to their originals and different tracks closer to each other: MP3 0.962-1.000, 22 kHz and 6 dB quieter
0.994-1.000, trimmed 0.933-0.998 (median 0.989, 5th percentile 0.959); the nearest different track of its
own soundtrack 0.882 at the 95th percentile, and above 0.93 the same two versions of one piece (0.979, 0.976)
and one more pair of one composer's pieces within 10% in length (0.944). So the threshold is
0.95 there (``model.musicnn.COPY_THRESHOLDS``, where each encoder's measured threshold is kept): above that pair,
below all but a few trimmed copies.
"""

from __future__ import annotations

import dataclasses
from typing import Iterator

import numpy as np

COPY_COSINE = 0.93
COPY_DURATION = 0.10  # of the longer duration, and at least COPY_DURATION_S
COPY_DURATION_S = 2.0
EXACT_BELOW = 20_000  # fewer tracks: every pair is compared (a second or two)
#: past it, each track is compared with the tracks of this many clusters nearest to it. At 1M music-like tracks with
#: 1,000 planted copies (cosine 0.970-0.998), 8 missed 2 (61 s), 16 none (105 s); at 100k 8 found the exact groups
PROBES = 16
BLOCK = 4096  # rows of a block matrix product


def threshold_for(encoder_info: dict | str | None) -> float | None:
    """The cosine above which two tracks of a store are copies, or None (not measured for its encoder): what the
    store recorded of its encoder (``copy_threshold``); for a store made before encoders declared it, the
    measured value of its encoder's name and pooling (``model.musicnn.COPY_THRESHOLDS``; no pooling recorded:
    mean and spread). ``encoder_info`` may be an encoder's name."""
    from ..model.musicnn import COPY_THRESHOLDS

    if not isinstance(encoder_info, dict):
        encoder_info = {"name": encoder_info}
    if "copy_threshold" in encoder_info:
        return encoder_info["copy_threshold"]
    pool = (encoder_info.get("spec") or {}).get("pool", "mean+std")
    return COPY_THRESHOLDS.get((encoder_info.get("name") or "", pool))


def durations_match(a: float | None, b: float | None) -> bool:
    """Whether two durations (seconds; None: unknown, which never rules a copy out) could be one recording."""
    if a is None or b is None or a != a or b != b:
        return True
    return abs(a - b) <= max(COPY_DURATION_S, COPY_DURATION * max(a, b))


def is_copy(cosine: float, a: float | None, b: float | None, threshold: float = COPY_COSINE) -> bool:
    return cosine >= threshold and durations_match(a, b)


@dataclasses.dataclass
class Group:
    """Tracks that are copies of each other: ids, best first by how many copies they hold (then id), and the
    lowest cosine that joined the group."""

    ids: list[int]
    weakest: float


class Copies:
    """Tracks joined into groups of copies, pair by pair (a union-find over track ids), with no index or store:
    :func:`groups` feeds it the close pairs."""

    def __init__(self, threshold: float, durations: dict):
        """``threshold``: the cosine from which two tracks are copies; ``durations``: track id -> seconds."""
        self.threshold, self.durations = threshold, durations
        self._parent: dict[int, int] = {}
        self._weakest: dict[int, float] = {}

    def _root(self, i: int) -> int:
        parent = self._parent
        while parent.get(i, i) != i:
            parent[i] = parent.get(parent[i], parent[i])
            i = parent[i]
        return i

    def join(self, i: int, j: int, s: float) -> None:
        """Tracks ``i`` and ``j`` at cosine ``s``: one group when they are copies (:func:`is_copy`)."""
        if j == i or not is_copy(s, self.durations.get(i), self.durations.get(j), self.threshold):
            return
        a, b = self._root(i), self._root(j)
        if a != b:
            self._parent[max(a, b)] = min(a, b)
            self._weakest[min(a, b)] = min(s, self._weakest.get(a, 1.0), self._weakest.get(b, 1.0))

    def groups(self) -> list[Group]:
        """The groups of two or more, largest first (then by lowest id); ids sorted within a group."""
        members: dict[int, set[int]] = {}
        for i in list(self._parent):
            r = self._root(i)
            members.setdefault(r, {r}).add(i)
        out = [Group(sorted(m), round(float(self._weakest.get(r, 1.0)), 4)) for r, m in members.items() if len(m) > 1]
        return sorted(out, key=lambda g: (-len(g.ids), g.ids[0]))


def close_pairs(x: np.ndarray, threshold: float, *, exact: bool = False, probes: int | None = None,
                progress: bool = False) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Every pair of rows of ``x`` (unit vectors) whose inner product is at least ``threshold``, as ``(rows,
    rows, scores)`` batches, each pair once (first row lower).

    ``exact``, or fewer than EXACT_BELOW rows: every row against every other, in blocks of matrix products.
    Otherwise the rows are split into about 2 sqrt(n) clusters (spherical k-means on a sample), and each row
    is compared with the rows of its ``probes`` nearest clusters (block matrix products: a cluster's rows
    against every row that probes it), as inverted lists are searched: copies lie a few degrees apart, so
    where one is, the other is in a cluster the first one probes. On a million tracks this compares each
    track with about 0.8% of the library."""
    from tqdm import tqdm

    n = len(x)
    if exact or n < EXACT_BELOW:
        blocks = [(np.arange(at, min(n, at + BLOCK)), None) for at in range(0, n, BLOCK)]
        bar = tqdm(blocks, unit="block", desc="dupes", disable=not progress, leave=False)
        for rows, _ in bar:
            a = np.asarray(x[rows], np.float32)
            yield from _above(a, rows, a, rows, threshold)
            for at in range(int(rows[-1]) + 1, n, BLOCK):
                cols = np.arange(at, min(n, at + BLOCK))
                yield from _above(a, rows, np.asarray(x[cols], np.float32), cols, threshold)
        return
    members, probers, top = clusters(x, probes or PROBES)
    owner = top[:, 0]
    bar = tqdm(total=len(members), unit="cluster", desc="dupes", disable=not progress, leave=False)
    for rows, asking in zip(members, probers):
        if len(rows) and len(asking):
            sims = np.asarray(x[asking], np.float32) @ np.asarray(x[rows], np.float32).T
            i, j = np.nonzero(sims >= threshold)
            q, r = asking[i], rows[j]
            # a pair is found from both sides when each probes the other's cluster: the lower row's side gives it
            both = np.any(top[r] == owner[q][:, None], axis=1)
            keep = (q != r) & ~(both & (r < q))
            if keep.any():
                q, r = q[keep], r[keep]
                yield np.minimum(q, r), np.maximum(q, r), sims[i[keep], j[keep]]
        bar.update(1)
    bar.close()


def _above(a, a_rows, b, b_rows, threshold):
    """The pairs of one block (rows ``a_rows`` against ``b_rows``: the same rows, or none in common) whose score
    reaches ``threshold``, each once, the lower row first."""
    s = a @ b.T
    i, j = np.nonzero(s >= threshold)
    ri, rj = a_rows[i], b_rows[j]
    keep = ri < rj if b_rows is a_rows else ri != rj
    if keep.any():
        ri, rj = ri[keep], rj[keep]
        yield np.minimum(ri, rj), np.maximum(ri, rj), s[i[keep], j[keep]]


def clusters(x: np.ndarray, probes: int) -> tuple[list[np.ndarray], list[np.ndarray], np.ndarray]:
    """The rows split into clusters (spherical k-means on a sample, about 2 sqrt(n) of them): each cluster's
    rows, the rows that probe it (those that have it among their ``probes`` nearest clusters), and each row's
    nearest clusters, nearest first (``int64[n, probes]``: the first is the row's own)."""
    import faiss

    from ..catalog.indexes import nlist_for

    n, d = x.shape
    k = min(nlist_for(n), max(1, n // 64))
    rng = np.random.default_rng(0)
    sample = np.asarray(x[np.sort(rng.choice(n, size=min(n, 40 * k), replace=False))], np.float32)
    km = faiss.Kmeans(d, k, niter=10, seed=1, spherical=True, verbose=False)
    km.train(sample)
    cent = faiss.IndexFlatIP(d)
    cent.add(km.centroids)
    p = min(k, probes)
    top = np.empty((n, p), np.int64)
    for at in range(0, n, 65_536):
        top[at : at + 65_536] = cent.search(np.asarray(x[at : at + 65_536], np.float32), p)[1]

    def by_cluster(owners: np.ndarray, rows: np.ndarray) -> list[np.ndarray]:
        order = np.argsort(owners, kind="stable")
        bounds = np.searchsorted(owners[order], np.arange(k + 1))
        return [rows[order[bounds[c] : bounds[c + 1]]] for c in range(k)]

    return by_cluster(top[:, 0], np.arange(n)), by_cluster(top.ravel(), np.repeat(np.arange(n), p)), top


def groups(searcher, *, threshold: float, progress: bool = False, exact: bool = False) -> list[Group]:
    """Every group of two or more copies in the searcher's library: the pairs of :func:`close_pairs` over the
    index's vectors (decoded from its codes: what search scores), joined when their durations match too; the
    groups are the connected components, largest first."""
    live = np.asarray(searcher.ids)
    if len(live) < 2:
        return []
    parts = [(i, x.astype(np.float16)) for i, x in searcher.index.decoded()]  # (half the memory; cosines to 1e-3)
    ids = np.concatenate([i for i, _ in parts])
    x = np.concatenate([v for _, v in parts])
    del parts
    keep = np.isin(ids, live)
    ids, x = ids[keep], x[keep]
    copies = Copies(threshold, dict(zip(live.tolist(), searcher.values("duration_s"))))
    for a, b, s in close_pairs(x, threshold, exact=exact, progress=progress):
        for i, j, c in zip(ids[a].tolist(), ids[b].tolist(), s.tolist()):
            copies.join(i, j, c)
    return copies.groups()
