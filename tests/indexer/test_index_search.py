"""Indexing a folder and searching it: the behaviour a user relies on."""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import synth, write_audio

from soundalike.catalog.store import Store
from soundalike.indexer.run import index_library
from soundalike.search.searcher import QueryError, Searcher


def quiet_index(root, store, **kw):
    kw.setdefault("workers", 0)
    return index_library(root, store, progress=False, log=lambda m: None, **kw)


def test_every_stored_vector_has_unit_norm(indexed):
    library, store = indexed
    s = Store(store)
    index = s.index()
    assert index.ntotal == len(library.files)
    ids, raw = s.vectors()
    unit = np.stack([index.reconstruct(int(i)) for i in ids])
    np.testing.assert_allclose(np.linalg.norm(unit, axis=1), 1.0, atol=1e-3)  # decoded from 8-bit codes
    np.testing.assert_allclose(unit, s.transform()(raw), atol=0.01)  # the index holds the transformed raw vectors
    assert raw.shape == (len(library.files), s.dim)


def test_query_by_path_returns_neighbours_never_itself(indexed):
    library, store = indexed
    searcher = Searcher(store)
    for path in library.files:
        hits = searcher.search_path(path, k=5)
        assert len(hits) == 5
        assert all(h.path != path for h in hits)
        assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)


def test_same_kind_comes_first(indexed):
    library, store = indexed
    searcher = Searcher(store)
    shares = []
    for path, kind in library.files.items():
        hits = searcher.search_path(path, k=3)
        shares.append(np.mean([library.files[h.path] == kind for h in hits]))
    assert np.mean(shares) > 0.8  # three very different kinds of sound: neighbours share the kind


def test_genre_filter_equals_exact_numpy_search_over_that_genre(indexed):
    library, store = indexed
    searcher = Searcher(store)
    s = Store(store)
    ids, raw = s.vectors()
    unit = raw / np.linalg.norm(raw, axis=1, keepdims=True)
    held = np.stack([s.index().reconstruct(int(i)) for i in ids])  # what the index holds: 8-bit codes of ``unit``
    tracks = {r["id"]: r for r in s.tracks.to_pylist()}
    for query_id in ids[:6]:
        hits = searcher.search_id(int(query_id), k=3, genres=["beats"])
        members = np.asarray([tracks[int(i)]["genre"] == "beats" and i != query_id for i in ids])
        q = held[ids == query_id][0]
        scores = held[members] @ (q / np.linalg.norm(q))  # a query is searched at unit length
        order = np.argsort(-scores)[:3]
        assert [h.id for h in hits] == list(ids[members][order])
        np.testing.assert_allclose([h.score for h in hits], scores[order], atol=1e-4)
        exact = unit[members] @ unit[ids == query_id][0]  # and the full float vectors' cosine, to the codes' precision
        np.testing.assert_allclose([h.score for h in hits], exact[order], atol=0.01)
        assert all(h.genre == "beats" for h in hits)


def test_rare_genre_still_returns_k_results(tmp_path, library, trained_model):
    # one kind has all of its 4 tracks tagged "rare": a filtered search for k=4 finds all 4

    store = tmp_path / "rare.soundalike"
    quiet_index(library.root, store, model=trained_model)
    searcher = Searcher(store)
    query = next(p for p, k in library.files.items() if k == "tones")
    hits = searcher.search_path(query, k=4, genres=["noise"])
    assert len(hits) == 4 and {h.genre for h in hits} == {"noise"}


def test_unchanged_reindex_decodes_nothing(indexed, monkeypatch):
    library, store = indexed
    gen = Store(store).generation
    import soundalike.model.pipeline as pipeline

    calls = []
    monkeypatch.setattr(pipeline, "extract", lambda *a, **k: calls.append(a) or None)
    report = quiet_index(library.root, store)
    assert calls == []
    assert (report.added, report.updated, report.removed, report.unchanged) == (0, 0, 0, len(library.files))
    assert Store(store).generation == gen  # nothing written either


def test_changed_file_is_reembedded_removed_disappears_ids_stable(indexed):
    library, store = indexed
    before = {r["path"]: r["id"] for r in Store(store).tracks.to_pylist()}
    paths = sorted(library.files)
    changed, removed = paths[0], paths[1]
    old_vec = Searcher(store).vector(before[changed])
    # replace the content of one file with another kind of sound, delete another, add a new one
    write_audio(type(library.root)(changed), synth("beats", seed=99, seconds=6.0))
    os.utime(changed, (time.time() + 5, time.time() + 5))
    os.unlink(removed)
    added = write_audio(library.root / "new" / "new-one.flac", synth("noise", seed=98, seconds=6.0))

    report = quiet_index(library.root, store)
    assert (report.added, report.updated, report.removed) == (1, 1, 1)
    after = {r["path"]: r["id"] for r in Store(store).tracks.to_pylist()}
    assert removed not in after
    assert str(added) in after and after[str(added)] not in before.values()  # ids are never reused
    assert {p: i for p, i in after.items() if p in before} == {p: i for p, i in before.items() if p != removed}
    searcher = Searcher(store)
    assert not np.allclose(searcher.vector(after[changed]), old_vec)
    assert all(h.path != removed for h in searcher.search_path(changed, k=20))
    with pytest.raises(QueryError):
        searcher.vector(before[removed])


def test_bad_file_is_recorded_and_the_run_goes_on(tmp_path, library, trained_model):
    bad = library.root / "tones" / "broken.mp3"
    bad.write_bytes(b"ID3\x03\x00\x00\x00\x00\x00\x00" + b"\x00garbage" * 100)
    empty = library.root / "noise" / "empty.flac"
    empty.write_bytes(b"")
    store = tmp_path / "s.soundalike"
    report = quiet_index(library.root, store, model=trained_model)
    assert report.added == len(library.files) and report.failed == 2
    failed = {p: reason for p, reason in report.failures}
    assert set(failed) == {str(bad), str(empty)}
    assert all(reason and "\n" not in reason for reason in failed.values())
    rows = {r["path"]: r for r in Store(store).tracks.to_pylist()}
    assert rows[str(bad)]["status"] == "error" and rows[str(bad)]["error"]
    assert Store(store).index().ntotal == len(library.files)
    # an unchanged failure is not retried; --retry-failed tries again
    assert quiet_index(library.root, store).failed == 0
    assert quiet_index(library.root, store, retry_failed=True).failed == 2


def test_outside_file_query_uses_the_stores_encoder(indexed, tmp_path):
    library, store = indexed
    outside = write_audio(tmp_path / "outside.wav", synth("beats", seed=1234, seconds=6.0))
    hits = Searcher(store).search_path(outside, k=3)
    assert len(hits) == 3
    assert sum(library.files[h.path] == "beats" for h in hits) >= 2


def test_a_library_file_is_one_track_whatever_path_reaches_it(indexed, tmp_path):
    """Another spelling of a library file (a symlink to it, the library reached through a symlinked folder, a
    byte-identical copy elsewhere) is that track: answered from its stored vector, never returned."""
    import shutil

    library, store = indexed
    searcher = Searcher(store)
    query = sorted(library.files)[1]
    track = searcher.id_for_path(query)
    expected = [(h.id, round(h.score, 5)) for h in searcher.search_path(query, k=5)]
    link_dir = tmp_path / "via-link"
    link_dir.symlink_to(library.root, target_is_directory=True)
    link_file = tmp_path / ("link" + os.path.splitext(query)[1])
    link_file.symlink_to(query)
    copy = tmp_path / "elsewhere" / os.path.basename(query)
    copy.parent.mkdir()
    shutil.copy(query, copy)
    spellings = [link_file, link_dir / os.path.relpath(query, library.root), copy,
                 os.path.relpath(query, os.getcwd())]
    for spelling in spellings:
        assert searcher.id_for_path(spelling) == track, spelling
        hits = searcher.search_path(spelling, k=5)
        assert [(h.id, round(h.score, 5)) for h in hits] == expected and track not in [h.id for h in hits]
    # the same size but other bytes is another file: embedded as an outside file
    other = tmp_path / ("other" + os.path.splitext(query)[1])
    data = bytearray(open(query, "rb").read())
    data[-1] ^= 0xFF
    other.write_bytes(bytes(data))
    assert searcher.id_for_path(other) is None


def test_at_most_n_per_artist_or_album_keeps_the_best_of_each(indexed):
    library, store = indexed
    searcher = Searcher(store)
    query = sorted(library.files)[0]
    plain = searcher.search_path(query, k=11)
    by_artist = searcher.search_path(query, k=5, max_per_artist=1)
    artists = [h.artist for h in by_artist]
    assert len(by_artist) == 5 and len(set(artists)) == 5  # six artists of two tracks in the library
    # the best of each artist, in the plain order
    firsts = list(dict.fromkeys(h.artist for h in plain))[:5]
    assert artists == firsts and by_artist[0].id == plain[0].id
    by_album = searcher.search_path(query, k=3, max_per_album=1)  # three albums (one a kind), one folder each
    assert sorted(h.album for h in by_album) == ["beats", "noise", "tones"]
    # fewer exist than asked: every one there is
    assert len(searcher.search_path(query, k=10, max_per_album=1)) == 3
    assert len(searcher.search_path(query, k=10, max_per_album=2)) == 6


def test_moved_and_renamed_files_keep_their_ids_and_vectors_without_decoding(indexed):
    import shutil

    library, store = indexed
    before = Searcher(store)
    files = sorted(library.files)
    renamed, moved, edited = files[0], files[5], files[9]
    ids = {p: before.id_for_path(p) for p in (renamed, moved, edited)}
    vectors = {p: before.vector(ids[p]) for p in ids}
    new_name = os.path.join(os.path.dirname(renamed), "renamed" + os.path.splitext(renamed)[1])
    os.rename(renamed, new_name)
    new_place = os.path.join(library.root, "elsewhere", "deeper", os.path.basename(moved))
    os.makedirs(os.path.dirname(new_place))
    shutil.move(moved, new_place)
    # moved AND changed: other bytes, so another file (decoded anew under a new id, the old one removed)
    edited_place = os.path.join(library.root, "elsewhere", os.path.basename(edited))
    write_audio(Path(edited_place), synth("tones", seed=999, seconds=6.0))
    os.remove(edited)
    report = quiet_index(library.root, store)
    assert (report.moved, report.added, report.removed) == (2, 1, 1)
    after = Searcher(store)
    for old, new in ((renamed, new_name), (moved, new_place)):
        assert after.id_for_path(new) == ids[old] and after.id_for_path(old) is None
        np.testing.assert_array_equal(after.vector(ids[old]), vectors[old])
    assert after.id_for_path(edited_place) not in (None, ids[edited])
    assert len(after) == len(library.files)
    # a new file at a moved file's old path is a new track, not the moved one
    shutil.copy(new_place, moved)
    report = quiet_index(library.root, store)
    assert report.added == 1 and Searcher(store).id_for_path(moved) != ids[moved]


def test_exclude_artist_of_query(indexed):
    library, store = indexed
    searcher = Searcher(store)
    query = sorted(library.files)[0]
    artist = searcher.hit(searcher.id_for_path(query)).artist
    hits = searcher.search_path(query, k=20, exclude_artist_of_query=True)
    assert hits and all(h.artist != artist for h in hits)
    assert any(h.artist == artist for h in searcher.search_path(query, k=20))


def test_genre_from_folder(tmp_path, library, trained_model):
    for p in library.files:  # retag everything so tags cannot be what the genre comes from
        import mutagen

        f = mutagen.File(p, easy=not p.endswith(".wav"))
        if p.endswith(".wav"):
            f.tags.delall("TCON")
        else:
            f["genre"] = "Unknown"
        f.save()
    store = tmp_path / "folder.soundalike"
    quiet_index(library.root, store, model=trained_model, genre_from="folder")
    rows = Store(store).tracks.to_pylist()
    assert {r["path"]: r["genre"] for r in rows} == library.files


def test_unknown_genre_is_a_clear_error(indexed):
    _, store = indexed
    with pytest.raises(QueryError, match="unknown genre polka"):
        Searcher(store).search_id(0, k=3, genres=["polka"])


def test_store_of_another_encoder_is_refused(indexed, tmp_path, small_frontend):
    library, store = indexed
    from soundalike.indexer.run import IndexingError
    from soundalike.model import seedcnn
    from soundalike.model.encoder import KerasEncoder

    other = KerasEncoder(seedcnn.build(small_frontend, 3, seed=42), name="seedcnn", frontend=small_frontend, labels=["a", "b", "c"])
    other.save(tmp_path / "other.keras")
    write_audio(library.root / "tones" / "extra.wav", synth("tones", seed=5, seconds=4.0))
    with pytest.raises(IndexingError, match=Store(store).encoder_info["fingerprint"]):
        quiet_index(library.root, store, model=tmp_path / "other.keras")


def test_parallel_workers_give_the_same_vectors(indexed, tmp_path):
    library, store = indexed
    par = tmp_path / "par.soundalike"
    quiet_index(library.root, par, model=Store(store).encoder_path, workers=2)
    a, b = Store(store), Store(par)
    ia, va = a.vectors()
    ib, vb = b.vectors()
    pa_ = {r["id"]: r["path"] for r in a.tracks.to_pylist()}
    pb_ = {r["id"]: r["path"] for r in b.tracks.to_pylist()}
    va_by_path = {pa_[int(i)]: v for i, v in zip(ia, va)}
    for i, v in zip(ib, vb):
        np.testing.assert_allclose(v, va_by_path[pb_[int(i)]], atol=1e-5)


def test_interrupted_run_keeps_finished_tracks_and_resumes(tmp_path, library, trained_model, monkeypatch):
    from soundalike.model.encoder import KerasEncoder

    real_encode = KerasEncoder.encode
    calls = []

    def encode_then_interrupt(self, features, **kw):
        calls.append(len(features))
        if len(calls) == 3:
            raise KeyboardInterrupt  # Ctrl-C while the third batch is in the model
        return real_encode(self, features, **kw)

    monkeypatch.setattr(KerasEncoder, "encode", encode_then_interrupt)
    store = tmp_path / "resume.soundalike"
    report = quiet_index(library.root, store, model=trained_model, batch_windows=1)
    assert report.interrupted and report.added == 2
    saved = {r["path"]: r["id"] for r in Store(store).tracks.to_pylist()}
    assert len(saved) == 2 and Searcher(store).index.ntotal == 2  # readable at once, index from the shards

    monkeypatch.setattr(KerasEncoder, "encode", real_encode)
    resumed = quiet_index(library.root, store)
    assert resumed.added == len(library.files) - 2 and resumed.unchanged == 2
    after = {r["path"]: r["id"] for r in Store(store).tracks.to_pylist()}
    assert {p: after[p] for p in saved} == saved and len(after) == len(library.files)
    assert Store(store).index().ntotal == len(library.files)


def test_another_index_kind_asked_of_an_unchanged_library_is_built_without_audio(indexed):
    from soundalike.catalog.indexes import Policy
    from soundalike.catalog.store import read_manifest

    library, store = indexed
    before = {h.id for h in Searcher(store).search_id(0, k=5)}
    report = quiet_index(library.root, store, index_policy=Policy(kind="ivf"))
    m = read_manifest(store)
    assert report.added == report.updated == 0 and report.windows == 0
    assert m["index"]["type"] == "ivf" and m["index_policy"]["kind"] == "ivf"
    assert {h.id for h in Searcher(store).search_id(0, k=5)} == before  # a dozen tracks: every list is probed


def test_a_run_killed_between_checkpoint_and_commit_is_finished_by_the_next_run(indexed):
    from soundalike.catalog.store import StoreWriter, read_manifest
    from soundalike.catalog.track import from_row

    library, store = indexed
    m = read_manifest(store)
    with StoreWriter(store, encoder=m["encoder"]) as w:  # what a run killed after its last checkpoint leaves
        row = next(iter(w.known().values()))
        w.put(from_row(row))
        w.checkpoint()
    m = read_manifest(store)
    assert m["index"]["generation"] != m["generation"]
    report = quiet_index(library.root, store)
    m = read_manifest(store)
    assert report.windows == 0 and m["index"]["generation"] == m["generation"]
    assert len(m["tracks"]) == 1  # the checkpoint's part is merged
