"""Finding a track by its path through the path maps beside the track tables (``catalog.paths``): the same
answers as reading every path, across base tables, parts, checkpoints, moves and removals, and for stores
written before the maps."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa

from soundalike.catalog import paths
from soundalike.catalog.check import verify
from soundalike.catalog.store import Store, StoreWriter, read_manifest
from soundalike.catalog.track import Track
from soundalike.search.searcher import Searcher

ENC = {"name": "test", "fingerprint": "fp-paths", "dim": 8, "transform": "standardize"}


def test_a_hash_depends_on_every_byte_and_on_nothing_else():
    names = ["", "a", "b", "ab", "ba", "/music/é/ü.flac", "/music/x" * 40, "/music/x" * 40 + "y"]
    h = paths.hashes(names)
    assert len(set(h.tolist())) == len(names) and h[0] == 0
    assert np.array_equal(h, paths.hashes(pa.array(names)))  # the same from Arrow or from Python strings
    # blocks of strings hash as each string alone (a table of more strings than one block)
    many = [f"/m/{i % 977}/{i}.flac" for i in range(paths._BLOCK + 5000)]
    whole = paths.hashes(many)
    assert all(whole[i] == paths.hashes([many[i]])[0] for i in (0, 1, paths._BLOCK - 1, paths._BLOCK, len(many) - 1))
    assert len(set(whole.tolist())) == len(many)
    assert paths.hashes(pa.array(["x", None]))[1] == 0  # a null as ""


def put(w: StoreWriter, path: str, rng) -> int:
    track_id = w.id_for(path)
    w.put(Track(id=track_id, path=path, size=1, mtime=1.0, title=path), rng.standard_normal(8))
    return track_id


def test_lookups_by_path_agree_with_reading_every_path_across_parts_moves_and_removals(tmp_path, rng):
    store = tmp_path / "s.soundalike"
    with StoreWriter(store, encoder=ENC) as w:
        ids = {f"/music/a/{i:03d}.flac": put(w, f"/music/a/{i:03d}.flac", rng) for i in range(300)}
        w.commit()
    with StoreWriter(store, encoder=ENC) as w:  # a small change: a part beside the base table
        ids["/music/b/new.flac"] = put(w, "/music/b/new.flac", rng)
        w.checkpoint()
        ids["/music/b/later.flac"] = put(w, "/music/b/later.flac", rng)
        moved = w.id_for("/music/a/007.flac")
        w.put(Track(id=moved, path="/music/c/moved.flac", size=1, mtime=2.0, title="moved"), rng.standard_normal(8))
        w.remove(ids.pop("/music/a/011.flac"))
        w.commit()
    ids["/music/c/moved.flac"] = ids.pop("/music/a/007.flac")
    m = read_manifest(store)
    assert len(m["tracks"]) > 1 and set(m["path_maps"]) == set(m["tracks"])
    assert all(n in m["files"] for n in m["path_maps"].values()) and verify(store)["ok"]
    s = Searcher(store)
    for p, i in ids.items():
        assert s.id_for_path(p) == i, p
    assert s.id_for_path("/music/a/007.flac") is None and s.id_for_path("/music/a/011.flac") is None
    assert s.id_for_path("/music/a/nothing.flac") is None
    # a store written before path maps: the same answers, from the path column
    old = json.loads((store / "manifest.json").read_text())
    del old["path_maps"]
    for name in m["path_maps"].values():
        del old["files"][name]
    (store / "manifest.json").write_text(json.dumps(old))
    assert Store(store).rows_of_path("/music/b/new.flac") is None
    s = Searcher(store)
    assert all(s.id_for_path(p) == i for p, i in ids.items())
    # ... and its next commit writes the maps
    with StoreWriter(store, encoder=ENC) as w:
        ids["/music/d/one.flac"] = put(w, "/music/d/one.flac", rng)
        w.commit(rebuild=True)
    assert set(read_manifest(store)["path_maps"]) == set(read_manifest(store)["tracks"])
    s = Searcher(store)
    assert all(s.id_for_path(p) == i for p, i in ids.items())


def test_a_path_map_is_read_without_the_path_column(tmp_path, rng, monkeypatch):
    store = tmp_path / "s.soundalike"
    with StoreWriter(store, encoder=ENC) as w:
        first = put(w, "/music/x.flac", rng)
        for i in range(50):
            put(w, f"/music/{i}.flac", rng)
        w.commit()
    s = Searcher(store)
    monkeypatch.setattr(type(s.store), "column", lambda self, name: (_ for _ in ()).throw(AssertionError(name)))
    assert s.id_for_path("/music/x.flac") == first


def test_a_damaged_path_map_is_named_as_any_damaged_file_is_and_repair_mends_the_store(tmp_path, rng):
    import pytest

    from soundalike.catalog.check import repair
    from soundalike.catalog.store import StoreError

    store = tmp_path / "s.soundalike"
    with StoreWriter(store, encoder=ENC) as w:
        ids = {f"/music/{i}.flac": put(w, f"/music/{i}.flac", rng) for i in range(40)}
        w.commit()
    name = read_manifest(store)["path_maps"][read_manifest(store)["tracks"][0]]
    (store / name).write_bytes((store / name).read_bytes()[:100])  # truncated
    with pytest.raises(StoreError, match=name + ".*soundalike repair"):
        Searcher(store)
    problems = verify(store)["problems"]
    assert any(p["file"] == name for p in problems)
    actions = repair(store)["actions"]
    assert any(name in a for a in actions) and verify(store)["ok"]
    assert all(Searcher(store).id_for_path(p) == i for p, i in ids.items())
