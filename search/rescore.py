"""Rescoring a ranked list after the index: near-duplicate recordings collapsed under the result they copy
(and copies of the query left out), at most so many results an artist or an album, and asking the index for more
candidates until ``k`` results are kept or none are left."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable

import numpy as np

from .dupes import is_copy


def artist_album(h) -> tuple:
    """What the artist and album limits count a hit as: its artist (any case), and its album name in its folder;
    None for a tag it lacks (not limited)."""
    return ((h.artist or "").casefold() or None,
            ((h.album or "").casefold(), os.path.dirname(h.path)) if h.album else None)


def room(h, per_artist: dict, per_album: dict, max_per_artist: int | None, max_per_album: int | None) -> bool:
    """Whether ``h`` still fits under the per-artist and per-album limits (counted in the dicts when it does);
    tracks without the tag are not limited."""
    a, b = artist_album(h)
    if (max_per_artist and a is not None and per_artist.get(a, 0) >= max_per_artist) or (
            max_per_album and b is not None and per_album.get(b, 0) >= max_per_album):
        return False
    per_artist[a] = per_artist.get(a, 0) + 1
    per_album[b] = per_album.get(b, 0) + 1
    return True


def overfetch(k: int, fetch: int, one_round) -> list:
    """Up to ``k`` results of ``one_round(fetch)`` -> ``(results, every candidate seen)``, asking for four times as
    many candidates each round until ``k`` are kept or none are left (filters after the index, such as diversity
    and copies, drop some)."""
    while True:
        out, exhausted = one_round(fetch)
        if len(out) >= k or exhausted:
            return out
        fetch *= 4



@dataclasses.dataclass(frozen=True)
class Rescorer:
    """Keeps up to ``k`` of a ranked list: copies collapsed (``collapse``: two tracks are copies at cosine
    ``threshold`` with durations that match; ``reconstruct(id)`` gives a track's vector in the index's space),
    copies of the query (of ``query_duration``, when one query) left out, and the diversity limits."""

    k: int
    max_per_artist: int | None
    max_per_album: int | None
    collapse: bool
    threshold: float
    query_duration: float | None
    reconstruct: Callable[[int], np.ndarray]

    def keep(self, hits) -> tuple[list, list]:
        """``(kept, copies of the query)`` of ``hits``, best first."""
        out, per_artist, per_album, held, copies = [], {}, {}, [], []
        for h in hits:
            if self.collapse:
                if self.query_duration is not None and is_copy(h.score, self.query_duration, h.duration_s,
                                                               self.threshold):
                    copies.append(h)
                    continue
                v = self.reconstruct(h.id)
                twin = next((j for j, u in enumerate(held)
                             if is_copy(float(v @ u), out[j].duration_s, h.duration_s, self.threshold)), None)
                if twin is not None:  # a copy of a result already in: listed under it
                    out[twin].copies.append({"id": h.id, "path": h.path, "score": round(float(v @ held[twin]), 4)})
                    continue
            if not room(h, per_artist, per_album, self.max_per_artist, self.max_per_album):
                continue
            out.append(h)
            if self.collapse:
                held.append(v)
            if len(out) == self.k:
                break
        return out, copies
