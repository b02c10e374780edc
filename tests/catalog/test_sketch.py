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


def rock_selector(s: Searcher):
    import faiss

    bits, selected = s.filters.bitmap(["rock"], "tags", ())  # the bitmap a service keeps for the filter
    return bits, selected, faiss.IDSelectorBitmap(len(bits), faiss.swig_ptr(bits))


def test_a_filter_searched_again_gets_a_sketch_of_its_own_that_answers_the_same(tmp_path):
    store, ids, raw = ivf_store(tmp_path)
    s = Searcher(store)
    assert s.warm_up(wait=True)
    index, sketch = s.index, s.index.sketch
    bits, selected, sel = rock_selector(s)
    q, probe = index.embed(raw[:300:3]), s._nprobe_filtered
    whole = index.search(q, 10, sel, probe)
    # a service's queries with the filter: the first is noted, the second has the filter's own sketch made
    for _ in range(2):
        assert all(h.genre == "rock" for h in s.search_id(ids[0], k=10, genres=["rock"]))
    sketch.wait()
    own = sketch.narrowed(bits)
    assert own is not None and own.ntotal == selected < len(ids) / 5
    narrowed = index.search(q, 10, sel, probe, within=bits)
    # the same codes of the same lists, only the filter's: the same answers with the same scores
    assert (narrowed[1] == whole[1]).mean() >= 0.99 and np.allclose(narrowed[0], whole[0], atol=1e-6)
    hits = s.search_id(ids[1], k=10, genres=["rock"])
    assert len(hits) == 10 and all(h.genre == "rock" for h in hits)


def test_one_off_broad_and_many_filters_keep_the_memory_bounded(tmp_path):
    import faiss

    store, ids, raw = ivf_store(tmp_path)
    s = Searcher(store)
    assert s.warm_up(wait=True)
    index, sketch = s.index, s.index.sketch
    top, q = max(ids) + 1, index.embed(raw[:1])
    probe = s._nprobe_filtered

    def bitmap(chosen):
        keep = np.zeros(top, bool)
        keep[np.asarray(chosen)] = True
        bits = np.packbits(keep, bitorder="little")
        return bits, faiss.IDSelectorBitmap(len(bits), faiss.swig_ptr(bits))

    def searched_twice(bits, sel):
        for _ in range(2):
            index.search(q, 10, sel, probe, within=bits)
        sketch.wait()
        return sketch.narrowed(bits)

    base = sketch.nbytes
    # a one-off mask (a new array each query, as search_vectors' mask makes) takes none
    bits, _ = bitmap(ids[::3])
    for _ in range(3):
        copy = bits.copy()
        index.search(q, 10, faiss.IDSelectorBitmap(len(copy), faiss.swig_ptr(copy)), probe, within=copy)
    sketch.wait()
    assert sketch.nbytes == base
    # a filter of most of the library takes none: its scan is most of the whole sketch's
    assert searched_twice(*bitmap(ids[: int(len(ids) * 0.9)])) is None and sketch.nbytes == base
    # filters of 40% each: kept while they hold no more tracks than the sketch, the least recently used dropped
    thirds = [bitmap(np.random.default_rng(i).choice(ids, int(len(ids) * 0.4), replace=False)) for i in range(3)]
    made = [searched_twice(*t) for t in thirds]
    assert all(m is not None and m.ntotal == int(len(ids) * 0.4) for m in made)
    assert sketch.narrowed(thirds[0][0]) is None and sketch.narrowed(thirds[2][0]) is made[2]
    assert base < sketch.nbytes <= 2 * base


def test_a_narrow_filters_every_list_is_scanned_in_its_own_sketch_with_the_exact_answers(tmp_path):
    import faiss

    store, ids, raw = ivf_store(tmp_path)
    s = Searcher(store)
    assert s.warm_up(wait=True)
    index, sketch = s.index, s.index.sketch
    keep = np.zeros(max(ids) + 1, bool)
    keep[np.random.default_rng(5).choice(ids, 40, replace=False)] = True  # fewer than a shortlist
    bits = np.packbits(keep, bitorder="little")
    sel = faiss.IDSelectorBitmap(len(bits), faiss.swig_ptr(bits))
    q, every = index.embed(raw[:50]), index.exhaustive_nprobe()
    exact = index.search(q, 10, sel, every)  # (the 8-bit codes of every list)
    for _ in range(2):
        index.search(q[:1], 10, sel, every, within=bits)
    sketch.wait()
    assert sketch.narrowed(bits) is not None and sketch.narrowed(bits).ntotal == 40
    got = index.search(q, 10, sel, every, within=bits)
    assert (got[1] == exact[1]).all() and np.allclose(got[0], exact[0], atol=1e-6)


def test_a_service_takes_its_sketch_over_when_a_commit_wrote_only_a_delta(tmp_path):
    import gc

    from soundalike.catalog.store import StoreWriter, read_manifest
    from soundalike.catalog.track import Track

    store, ids, raw = ivf_store(tmp_path)
    current = Current(store)
    first = current.get()
    assert first.warm_up(wait=True)
    made = first.index.sketch

    def commit(vectors, remove=()):
        with StoreWriter(store, encoder=read_manifest(store)["encoder"]) as w:
            added = []
            for j, v in enumerate(vectors):
                p = f"/new/{len(w.known())}-{j}.flac"
                t = Track(id=w.id_for(p), path=p, size=1, mtime=1.0, genre="jazz")
                w.put(t, v)
                added.append(t.id)
            for i in remove:
                w.remove(i)
            w.commit()
        return added

    main_file = read_manifest(store)["index"]["file"]
    new_id = commit([raw[1] * 1.0001], remove=[ids[0]])[0]  # a delta beside the same main index file
    assert read_manifest(store)["index"]["file"] == main_file and read_manifest(store)["index"]["delta"]
    second = current.get()
    assert second is not first and second.index.sketch is made  # taken over at once, not made again
    del first
    gc.collect()  # (the first generation's searcher is gone; the lists its sketch reads are kept open)
    hits = [h.id for h in second.search_id(ids[1], k=10)]
    assert new_id in hits and ids[0] not in hits
    assert [h.id for h in second.search_id(ids[2], k=10)] == [h.id for h in Searcher(store).search_id(ids[2], k=10)]
    # a commit past a delta's share writes a new main index: its sketch is made anew
    commit(raw[:400] * 1.0002)
    assert read_manifest(store)["index"]["file"] != main_file
    third = current.get()
    assert third.warm_up(wait=True) and third.index.sketch is not made and third.index.sketch is not None


def test_a_filters_sketch_being_made_outlives_the_searcher_that_asked(tmp_path):
    import gc

    store, ids, raw = ivf_store(tmp_path)
    s = Searcher(store)
    assert s.warm_up(wait=True)
    bits, selected, sel = rock_selector(s)
    q, probe, sketch = s.index.embed(raw[:20]), s._nprobe_filtered, s.index.sketch
    whole = sketch.search(q, 10, sel, probe)
    for _ in range(2):  # the second starts the filter's sketch in the background
        s.search_id(ids[0], k=10, genres=["rock"])
    del s  # (a service's old generation, let go while that is being made: the lists it reads stay open)
    gc.collect()
    sketch.wait()
    assert sketch.narrowed(bits).ntotal == selected
    got = sketch.search(q, 10, sel, probe, within=bits)
    assert (got[1] == whole[1]).mean() >= 0.99
