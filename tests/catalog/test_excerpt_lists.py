"""The excerpt index of a big library: inverted lists built in parts of bounded memory into one file on disk
(FAISS's on-disk lists), then searched memory-mapped, through deltas, rebuilds and a move of the store. The
sizes that select them are lowered here so that a few thousand windows take that road."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from soundalike.catalog import excerpts, indexes
from soundalike.catalog.check import reindex, verify
from soundalike.catalog.store import Store, StoreWriter
from soundalike.catalog.track import Track

DIM, PER = 40, 8
ENC = {"name": "synthetic", "fingerprint": "synthetic-windows", "dim": 16, "labels": [], "transform": "standardize"}


@pytest.fixture
def small_sizes(monkeypatch):
    monkeypatch.setattr(indexes, "FLAT_MAX", 500)  # inverted lists past 500 windows
    monkeypatch.setattr(indexes, "SPILL_BYTES", 16 << 10)  # parts of 16 kB: a few hundred windows each


def track_windows(t: int, n: int = PER, noise: float = 0.3) -> np.ndarray:
    """Track ``t``'s windows: its own centre, each window moved a little."""
    centre = np.random.default_rng([7, t]).standard_normal(DIM) * 2
    return (centre + np.random.default_rng().standard_normal((n, DIM)) * noise).astype(np.float32)


def put(store, tracks, remove=()) -> dict[int, int]:
    ids = {}
    with StoreWriter(store, encoder=ENC) as w:
        for t in tracks:
            p = f"/music/{t:05d}.flac"
            ids[t] = w.id_for(p)
            w.put(Track(id=ids[t], path=p, size=1, mtime=1.0), np.random.default_rng(t).standard_normal(16), track_windows(t))
        for t in remove:
            w.remove(w.id_for(f"/music/{t:05d}.flac"))
        w.commit()
    return ids


def best(store, t: int) -> int | None:
    s = Store(store)
    live = np.zeros(1 << 16, bool)
    live[s.vectors()[0]] = True
    found = s.excerpt_index().match(track_windows(t, 3), live=live, k=1)
    return found[0].track_id if found else None


def test_windows_past_the_lists_size_go_to_inverted_lists_on_disk_and_are_found(tmp_path, small_sizes):
    store = tmp_path / "lib.soundalike"
    ids = put(store, range(400))
    rec = Store(store).manifest["windows"]
    assert rec["type"] == "ivf" and rec["count"] == 400 * PER and rec["lists"].endswith(".ivfdata")
    # a clip's windows probe as deep as finding their track asks, never deeper than the windows' recall asked
    assert 1 <= rec["nprobe"] <= rec["nprobe_windows"] <= rec["nlist"]
    assert (store / rec["lists"]).stat().st_size >= 400 * PER * excerpts.EXCERPT_WIDTH // 8  # (the codes are there)
    assert not list(store.glob(".*.tmp*"))  # the parts are gone
    assert all(best(store, t) == ids[t] for t in range(0, 400, 37))
    # a small commit: a delta beside the lists on disk, which stay; a removed track is found no more
    ids.update(put(store, range(400, 405), remove=[3]))
    rec2 = Store(store).manifest["windows"]
    assert rec2["lists"] == rec["lists"] and rec2["delta"]["count"] == 5 * PER
    assert best(store, 402) == ids[402] and best(store, 3) != ids[3] and best(store, 5) == ids[5]
    assert verify(store)["ok"]
    # the store moved elsewhere: its index finds its lists beside it
    moved = tmp_path / "elsewhere" / "lib.soundalike"
    shutil.move(str(store), moved)
    assert best(moved, 402) == ids[402] and best(moved, 77) == ids[77]
    # a rebuild writes new lists; the old ones go once no generation refers to them
    reindex(moved)
    rec3 = Store(moved).manifest["windows"]
    assert rec3["lists"] != rec["lists"] and not rec3.get("delta") and rec3["count"] == 404 * PER
    put(moved, [405])
    assert not (moved / rec["lists"]).exists() and (moved / rec3["lists"]).exists()
    assert best(moved, 404) == ids[404] and verify(moved)["ok"]


def test_lists_built_in_parts_answer_as_the_lists_built_in_memory(tmp_path, small_sizes):
    x = np.concatenate([track_windows(t) for t in range(300)])
    wids = (np.repeat(np.arange(300), PER) * excerpts.SLOTS + np.tile(np.arange(PER), 300)).astype(np.int64)

    def built(lists_file):
        return indexes.build(lambda: iter([(wids[a : a + 500], x[a : a + 500]) for a in range(0, len(x), 500)]),
                             len(x), DIM, transform_kind="standardize", fitted=None, policy=indexes.Policy(),
                             widths=(32,), lists_file=lists_file, measure=False)

    in_memory, on_disk = built(None), built(tmp_path / "w.ivfdata")
    assert (tmp_path / "w.ivfdata").is_file() and on_disk.index.ntotal == len(x)
    q = on_disk.index.embed(x[::50] + 0.05)
    a, b = in_memory.index.search(q, 10, nprobe=4), on_disk.index.search(q, 10, nprobe=4)
    np.testing.assert_array_equal(a[1], b[1])
    np.testing.assert_allclose(a[0], b[0], atol=1e-6)
