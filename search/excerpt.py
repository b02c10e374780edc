"""Excerpt search: tracks ranked by how well their windows match a clip's (the window index is
``catalog.excerpts``; the clip's window features come from ``search.outside``).

A track's score is the mean over the clip's windows of each one's best cosine with the track's windows; where
the best matching pair of windows lies places the clip in the track (a hit's ``at_s``).
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from .rescore import overfetch, room


def clip_start(window: int, clip_window: int, offsets: np.ndarray, duration_s: float, frontend: dict) -> float | None:
    """Where in a track of ``duration_s`` seconds a clip starts, from its best matching pair of windows (the
    track's ``window``, the clip's ``clip_window`` starting ``offsets[clip_window]`` seconds into the clip);
    None when the track's windows are not known."""
    from ..model.audio import window_starts

    if window < 0 or not duration_s:
        return None
    starts = window_starts(duration_s, window_s=frontend["window_s"], n_windows=frontend["n_windows"])
    if window >= len(starts):
        return None
    return round(float(np.clip(starts[window] - offsets[clip_window], 0, duration_s)), 1)


def rank_excerpt(index, features: np.ndarray, offsets: np.ndarray, *, live: np.ndarray, restricted: bool,
                 hits: Callable, frontend: dict, k: int = 10, max_per_artist: int | None = None,
                 max_per_album: int | None = None) -> list:
    """The ``k`` best tracks for a clip's window ``features`` (starting ``offsets`` seconds into the clip) in
    the window ``index`` (``catalog.excerpts.ExcerptIndex``), among the ids set in the bitmap ``live``
    (``restricted``: a filter leaves some out), no artist or album more than the limits allow. ``hits``: track
    ids and scores -> search hits."""

    def one_round(fetch: int) -> tuple[list, bool]:
        matches = index.match(features, live=live, k=fetch, restrict=restricted)
        out, per_artist, per_album = [], {}, {}
        for m, h in zip(matches, hits([m.track_id for m in matches], [m.score for m in matches])):
            if not room(h, per_artist, per_album, max_per_artist, max_per_album):
                continue
            h.at_s = clip_start(m.window, m.clip_window, offsets, h.duration_s, frontend)
            out.append(h)
            if len(out) == k:
                break
        return out, len(matches) < fetch

    return overfetch(k, 4 * k if (max_per_artist or max_per_album) else k, one_round)
