"""Listening lists from a store: a mix around seeds, and a path from one song to another.

Both work on the unit vectors the index holds (cosine similarity, as search does) and never repeat a seed.

- ``playlist``: the seeds' neighbours (the centroid of their vectors, as ``search A B C``) with an artist
  limit and near-duplicates collapsed, ordered by a nearest-neighbour walk from the track closest to the
  first seed, so each step is a small move.
- ``path``: targets spaced evenly along the great circle from A to B; each step takes the unused track nearest
  its target among those closer to B than the step before, so the sequence moves towards B without jumps.
  Smoothness is measured as the cosine distance (1 - cosine) of each step, reported beside the direct
  distance from A to B.
"""

import numpy as np

from .searcher import Hit, QueryError, Searcher

#: a listening list allows at most this many tracks of one artist unless told otherwise
PLAYLIST_MAX_PER_ARTIST = 2


def playlist(s: Searcher, seeds, *, length: int = 20, by_id: bool = False, genres=None, genre_source: str = "tags",
             max_per_artist: int | None = PLAYLIST_MAX_PER_ARTIST, max_per_album: int | None = None,
             collapse: bool | None = None) -> list[Hit]:
    """``length`` tracks around ``seeds`` (ids with ``by_id``, else files), diverse and ordered smoothly."""
    if length < 1:
        raise QueryError(f"a playlist needs a length of at least 1, not {length}")
    seeds = list(seeds)
    given = s.seed_vectors(seeds, by_id)  # (an outside file is decoded and embedded once)
    hits = s.search_seeds(seeds, by_id=by_id, k=length, genres=genres, genre_source=genre_source,
                          max_per_artist=max_per_artist, max_per_album=max_per_album, collapse=collapse,
                          seed_vectors=given)
    if len(hits) < 2:
        return hits
    vectors = np.stack([s.vector(h.id) for h in hits])
    order = [int(np.argmax(vectors @ given[0][0]))]
    left = set(range(len(hits))) - set(order)
    while left:
        here = vectors[order[-1]]
        nxt = max(left, key=lambda i: float(vectors[i] @ here))
        order.append(nxt)
        left.remove(nxt)
    return [hits[i] for i in order]


def _slerp(a: np.ndarray, b: np.ndarray, t: float) -> np.ndarray:
    omega = np.arccos(np.clip(float(a @ b), -1.0, 1.0))
    if omega < 1e-6:
        return a
    return (np.sin((1 - t) * omega) * a + np.sin(t * omega) * b) / np.sin(omega)


def path(s: Searcher, a, b, *, steps: int = 8, by_id: bool = False, genres=None,
         genre_source: str = "tags") -> tuple[list[Hit], dict]:
    """A sequence from track ``a`` to track ``b`` (ids with ``by_id``, else files of the store) through at most
    ``steps`` tracks between them, each closer to ``b`` than the one before. Returns the tracks (``a`` first,
    ``b`` last; a hit's ``score`` is its cosine with the track before it) and the smoothness figures."""
    if steps < 1:
        raise QueryError(f"a path needs at least 1 step, not {steps}")
    ends = []
    for x in (a, b):
        tid = int(x) if by_id else s.id_for_path(x)
        if tid is None:
            raise QueryError(f"{x}: not a track of {s.store.path} (a path runs between tracks of the store)")
        ends.append(tid)
    if ends[0] == ends[1]:
        raise QueryError("a path needs two different tracks")
    va, vb = (s.vector(t) for t in ends)
    used = set(ends)
    chain, vectors = [ends[0]], [va]
    allowed = s.mask(genres=genres, genre_source=genre_source) if genres else None
    for i in range(1, steps + 1):
        target = _slerp(va, vb, i / (steps + 1))
        ids, _ = s.ranked(target, steps + 32, None, genre_source, used, (), allowed)
        closer = float(vectors[-1] @ vb)
        for tid in ids:
            v = s.vector(tid)
            if float(v @ vb) > closer and float(v @ vectors[-1]) > float(vb @ vectors[-1]):
                chain.append(tid)
                vectors.append(v)
                used.add(tid)
                break
    chain.append(ends[1])
    vectors.append(vb)
    sims = [1.0] + [float(vectors[i] @ vectors[i - 1]) for i in range(1, len(vectors))]
    hits = s.hits(chain, sims)
    jumps = [1.0 - x for x in sims[1:]]
    figures = {"direct_distance": round(1.0 - float(va @ vb), 4), "max_step_distance": round(max(jumps), 4),
               "mean_step_distance": round(float(np.mean(jumps)), 4), "steps": len(chain) - 2}
    return hits, figures
