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

import numpy as np

COPY_COSINE = 0.93
COPY_DURATION = 0.10  # of the longer duration, and at least COPY_DURATION_S
COPY_DURATION_S = 2.0
NEIGHBOURS = 8  # candidates a track is compared with when grouping a whole library


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
    :func:`groups` feeds it each track's nearest neighbours."""

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

    def offer(self, i: int, neighbour_ids, neighbour_scores) -> None:
        """Track ``i``'s nearest tracks (ids, -1 for none, and cosines): those that are copies join its group."""
        for j, s in zip(neighbour_ids, neighbour_scores):
            if j < 0 or j == i or not is_copy(s, self.durations.get(i), self.durations.get(j), self.threshold):
                continue
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


def groups(searcher, *, threshold: float, progress: bool = False, batch: int = 2048) -> list[Group]:
    """Every group of two or more copies in the searcher's library: each track's NEIGHBOURS nearest (one
    batched FAISS search per ``batch`` tracks, every core), joined when :func:`is_copy` holds; the groups are
    the connected components, largest first."""
    from tqdm import tqdm

    ids = np.asarray(searcher.ids)
    if len(ids) < 2:
        return []
    copies = Copies(threshold, dict(zip(ids.tolist(), searcher.values("duration_s"))))
    index = searcher.index
    k = min(NEIGHBOURS + 1, len(ids))
    bar = tqdm(total=len(ids), unit="track", desc="dupes", disable=not progress, leave=False)
    for at in range(0, len(ids), batch):
        part = ids[at : at + batch]
        q = np.stack([index.reconstruct(int(i)) for i in part])
        scores, found = searcher.search_vectors(q, k=k)
        for i, row_s, row_i in zip(part.tolist(), scores, found):
            copies.offer(i, row_i.tolist(), row_s.tolist())
        bar.update(len(part))
    bar.close()
    return copies.groups()
