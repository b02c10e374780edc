"""A searcher is a snapshot of one generation; what it reads on first use is made once however many threads
ask; a service's current searcher moves to a new generation when a commit lands, and only then."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from conftest import VECTOR_ENCODER as ENC
from conftest import put_tracks

from soundalike.catalog.memo import Memo
from soundalike.catalog.store import StoreWriter
from soundalike.search.current import Current

def in_threads(n: int, call) -> list:
    """``call()`` from ``n`` threads released at once; their answers."""
    start, out = threading.Barrier(n), [None] * n

    def run(i):
        start.wait()
        out[i] = call()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return out


def test_a_memo_makes_each_value_once_for_threads_asking_together_and_keeps_no_failure():
    memo, made = Memo(), []

    def slow():
        made.append(1)
        time.sleep(0.05)
        return object()

    got = in_threads(8, lambda: memo.get("x", slow))
    assert len(made) == 1 and all(g is got[0] for g in got)

    def failing():
        raise OSError("disk gone")

    with pytest.raises(OSError):
        memo.get("y", failing)
    assert "y" not in memo and memo.get("y", lambda: 3) == 3


def test_first_reads_from_many_threads_agree_with_one_thread(tmp_path, rng):
    store = tmp_path / "s.soundalike"
    with StoreWriter(store, encoder=ENC) as w:
        put_tracks(w, 40, rng)
        w.commit()
    current = Current(store)
    reference = Current(store).get()
    probe = reference.store.transform()(rng.standard_normal(8).astype(np.float32))[0]
    want = [(h.id, round(h.score, 5)) for h in reference.search_vector(probe, k=7, bpm=(80, 150))]
    searcher = current.get()  # nothing read yet but the ids and the index: the tempo column is read now, once
    got = in_threads(8, lambda: [(h.id, round(h.score, 5)) for h in searcher.search_vector(probe, k=7, bpm=(80, 150))])
    assert all(g == want for g in got) and len(want) == 7


def test_the_current_searcher_moves_on_when_a_commit_lands_and_only_then(tmp_path, rng):
    store = tmp_path / "s.soundalike"
    with StoreWriter(store, encoder=ENC) as w:
        first = put_tracks(w, 20, rng)
        w.commit()
    current = Current(store)
    before = current.get()
    assert current.get() is before and before.store.generation == 1
    with StoreWriter(store, encoder=ENC) as w:
        put_tracks(w, 5, rng)
        w.commit()
    after = current.get()
    assert after is not before and after.store.generation > before.store.generation and len(after) == 25
    assert current.get() is after
    # the snapshot a request took answers from its generation to the end
    assert len(before) == 20 and {h.id for h in before.search_id(first[0], k=19)} == set(first[1:])
