"""The fast-scan sketch a serving process makes of an inverted-list index (catalog.sketch): it answers what the
8-bit codes answer, with their scores, filtered inside FAISS; it is dropped when the index changes; a service
makes one; a flat index takes none."""

from __future__ import annotations

import time

import numpy as np
import pytest

from soundalike.catalog import sketch as sketches
from soundalike.catalog.indexes import Policy, TrackIndex, id_positions
from soundalike.catalog.sketch import Sketch
from soundalike.search.current import Current
from soundalike.search.searcher import Searcher

from test_indexes import clustered, make_store


@pytest.fixture(autouse=True)
def small_indexes_take_a_sketch(monkeypatch):
    """These libraries are small enough to test in seconds: below the size a sketch pays at (see the last test)."""
    monkeypatch.setattr(sketches, "MIN_TRACKS", 1000)


def ivf_store(tmp_path, n=6000, dim=300, seed=3):
    raw, _ = clustered(n, dim, np.random.default_rng(seed))
    store = tmp_path / "ivf.soundalike"
    return store, make_store(store, raw, policy=Policy(kind="ivf")), raw


def answers(s: Searcher, queries, **kw):
    return [[(h.id, h.score) for h in s.search_id(q, k=10, **kw)] for q in queries]


def test_the_sketch_answers_what_the_8bit_codes_answer_with_their_scores(tmp_path):
    store, ids, _ = ivf_store(tmp_path)
    s = Searcher(store)
    assert s.index.is_ivf and s.index.sketch is None
    queries = ids[:600:6]
    plain, plain_rock = answers(s, queries), answers(s, queries, genres=["rock"])
    assert s.warm_up(wait=True) and s.index.sketch is not None
    fast, fast_rock = answers(s, queries), answers(s, queries, genres=["rock"])
    for a, b in ((plain, fast), (plain_rock, fast_rock)):
        overlap = np.mean([len({i for i, _ in x} & {i for i, _ in y}) / 10 for x, y in zip(a, b)])
        assert overlap >= 0.98, overlap
    # each score is the index's own: the query's cosine with the vector the 8-bit codes hold
    for x, y in zip(plain + plain_rock, fast + fast_rock):
        scored = dict(x)
        assert all(abs(score - scored[i]) < 1e-5 for i, score in y if i in scored)
    rock = set(np.asarray(ids)[[j % 9 == 0 for j in range(len(ids))]].tolist())  # make_store: GENRES[j % 9]
    assert all(len(x) == 10 and {i for i, _ in x} <= rock for x in fast_rock)


def test_more_answers_than_a_shortlist_serves_go_to_the_8bit_codes(tmp_path, monkeypatch):
    store, ids, _ = ivf_store(tmp_path)
    s = Searcher(store)
    many = [h.id for h in s.search_id(ids[0], k=sketches.MAX_K + 1)]
    assert s.warm_up(wait=True)

    def shortlisted(*args, **kw):
        raise AssertionError("the sketch was asked")

    monkeypatch.setattr(Sketch, "search", shortlisted)
    # a hub-aware ranking's pool of candidates: the codes, as without a sketch
    assert [h.id for h in s.search_id(ids[0], k=sketches.MAX_K + 1)] == many
    with pytest.raises(AssertionError, match="the sketch was asked"):
        s.search_id(ids[0], k=10)


def test_a_changed_index_drops_its_sketch_and_finds_what_was_added(tmp_path):
    import faiss

    store, ids, raw = ivf_store(tmp_path)
    # an index in memory, as a writer holds one (a reader's is memory-mapped, and never changes)
    reader = Searcher(store)
    index = TrackIndex.wrap(faiss.deserialize_index(faiss.serialize_index(reader.index.index)))
    assert index.start_sketch(wait=True) and index.sketch is not None
    new_id = max(ids) + 1
    index.add(np.array([new_id]), raw[:1] * 1.0001)
    assert index.sketch is None
    _, found = index.search(index.embed(raw[:1]), 2)
    assert new_id in found[0].tolist()
    index.remove(np.array([new_id]))
    assert index.start_sketch(wait=True) and index.sketch is not None
    _, found = index.search(index.embed(raw[:1]), 2)
    assert new_id not in found[0].tolist() and ids[0] in found[0].tolist()
    # a change while a sketch is being made waits for it (it reads the lists), then drops it
    index.remove(np.array([new_id]))  # (nothing to remove: still a change)
    assert index.start_sketch()
    index.add(np.array([new_id]), raw[:1] * 1.0001)
    assert index.sketch is None and index.search(index.embed(raw[:1]), 2)[1][0].tolist().count(new_id) == 1


def test_the_sketch_keeps_nothing_but_codes_and_ids_and_finds_a_tracks_own_vector(tmp_path):
    store, ids, raw = ivf_store(tmp_path)
    reader = Searcher(store)
    index = reader.index
    sketch = Sketch(index.search_index, id_positions(index.search_index))
    assert sketch.fast.ntotal == len(ids)
    assert sketch.nbytes < len(ids) * (index.width // 2 + 8 + 8 + 8)  # 4 bits a dimension, an id, its place
    scores, found = sketch.search(index.embed(raw[:20]), 1, nprobe=index.search_index.nprobe)
    assert found[:, 0].tolist() == ids[:20] and (scores[:, 0] > 0.99).all()


def test_a_service_makes_the_sketch_and_a_small_or_flat_index_takes_none(tmp_path):
    store, ids, _ = ivf_store(tmp_path)
    current = Current(store)
    deadline = time.monotonic() + 60
    while current.get().index.sketch is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert current.get().index.sketch is not None
    small = tmp_path / "small.soundalike"
    raw, _ = clustered(600, 64, np.random.default_rng(1))
    make_store(small, raw, policy=Policy(kind="ivf"))
    assert not Searcher(small).warm_up(wait=True)  # (fewer tracks than MIN_TRACKS: its scan costs no more)
    flat = tmp_path / "flat.soundalike"
    raw, _ = clustered(500, 64, np.random.default_rng(1))
    flat_ids = make_store(flat, raw, policy=Policy(kind="flat"))
    s = Searcher(flat)
    assert not s.warm_up(wait=True) and s.index.sketch is None
    assert len(s.search_id(flat_ids[0], k=5)) == 5
