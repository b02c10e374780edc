"""Rescoring after the index, without a store: copies collapsed under the result they copy, copies of the query
left out, artist and album limits, and asking for more candidates until k are kept."""

from __future__ import annotations

import numpy as np

from soundalike.search.rescore import Rescorer, overfetch
from soundalike.search.searcher import Hit


def hit(i, score, artist=None, album=None, duration=200.0):
    return Hit(id=i, score=score, path=f"/m/{album or 'x'}/{i}.flac", artist=artist, album=album, duration_s=duration)


def test_copies_are_collapsed_and_copies_of_the_query_left_out():
    vectors = {1: np.array([1.0, 0.0]), 2: np.array([0.999, 0.045]), 3: np.array([0.0, 1.0]), 4: np.array([0.6, 0.8])}
    vectors = {i: v / np.linalg.norm(v) for i, v in vectors.items()}
    r = Rescorer(k=3, max_per_artist=None, max_per_album=None, collapse=True, threshold=0.95, query_duration=180.0,
                 reconstruct=vectors.__getitem__)
    hits = [hit(9, 0.99, duration=181.0), hit(1, 0.9), hit(2, 0.89), hit(3, 0.5), hit(4, 0.4)]
    kept, copies = r.keep(hits)
    assert [h.id for h in copies] == [9]  # as close as the query and as long: the query itself, re-encoded
    assert [h.id for h in kept] == [1, 3, 4] and [c["id"] for c in kept[0].copies] == [2]


def test_artist_and_album_limits_keep_the_best_of_each():
    r = Rescorer(k=3, max_per_artist=1, max_per_album=None, collapse=False, threshold=0.95, query_duration=None,
                 reconstruct=None)
    kept, _ = r.keep([hit(1, 0.9, "a"), hit(2, 0.8, "a"), hit(3, 0.7, "b"), hit(4, 0.6), hit(5, 0.5)])
    assert [h.id for h in kept] == [1, 3, 4]  # a track without an artist tag is not limited
    r = Rescorer(k=5, max_per_artist=None, max_per_album=1, collapse=False, threshold=0.95, query_duration=None,
                 reconstruct=None)
    kept, _ = r.keep([hit(1, 0.9, album="x"), hit(2, 0.8, album="x"), hit(3, 0.7, album="y")])
    assert [h.id for h in kept] == [1, 3]


def test_more_candidates_are_asked_for_until_k_are_kept_or_none_are_left():
    asked = []

    def one_round(fetch):
        asked.append(fetch)
        return list(range(min(fetch // 3, 7))), fetch >= 40  # a third survive; 40 candidates are all there are
    assert overfetch(5, 4, one_round) == [0, 1, 2, 3, 4] and asked == [4, 16]
    asked.clear()
    assert overfetch(10, 4, one_round) == list(range(7)) and asked == [4, 16, 64]
