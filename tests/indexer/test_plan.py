"""The plan of an index run is a pure function of what the store knows and what the scan saw: new, changed,
unchanged, removed, missing, back, held and moved files, decided without decoding anything."""

from __future__ import annotations

from soundalike.catalog.scan import FileEntry, content_hash
from soundalike.catalog.track import STATUS_OK
from soundalike.indexer.run import PRUNE_FLOOR, make_plan

ROOT = "/music"


def known(*rows) -> dict[str, dict]:
    """Store rows by path: (id, path, size, mtime[, status[, missing_since[, content_hash]]])."""
    out = {}
    for r in rows:
        i, path, size, mtime, status, missing, digest = (*r, STATUS_OK, None, None)[:7]
        out[path] = {"id": i, "path": path, "size": size, "mtime": mtime, "status": status, "missing_since": missing,
                     "content_hash": digest}
    return out


def test_files_are_new_changed_or_unchanged_by_size_and_time():
    store = known((1, "/music/a.flac", 100, 1.0), (2, "/music/b.flac", 100, 1.0), (3, "/music/c.flac", 100, 1.0, "error"))
    scan = [FileEntry("/music/a.flac", 100, 1.0), FileEntry("/music/b.flac", 100, 2.0), FileEntry("/music/c.flac", 100, 1.0),
            FileEntry("/music/d.flac", 50, 1.0)]
    plan = make_plan(store, scan, ROOT)
    assert [e.path for e in plan.new] == ["/music/d.flac"] and [e.path for e in plan.changed] == ["/music/b.flac"]
    assert plan.unchanged == 2 and plan.removed == [] and plan.missing == []
    assert [e.path for e in make_plan(store, scan, ROOT, retry_failed=True).changed] == ["/music/b.flac", "/music/c.flac"]
    assert len(make_plan(store, scan, ROOT, force=True).changed) == 3


def test_a_file_gone_from_a_folder_read_is_removed_one_out_of_reach_is_kept_as_missing():
    rows = [(i, f"/music/x/{i}.flac", 10, 1.0) for i in range(1, 31)] + [(40, "/music/nas/y.flac", 10, 1.0),
                                                                         (41, "/music/nas/z.flac", 10, 1.0, STATUS_OK, 5.0),
                                                                         (50, "/other/q.flac", 10, 1.0)]
    store = known(*rows)
    scan = [FileEntry(f"/music/x/{i}.flac", 10, 1.0) for i in range(2, 31)]
    plan = make_plan(store, scan, ROOT, unreachable=["/music/nas"])
    assert plan.removed == [1] and plan.missing == [40]  # (41 is marked missing already; /other is not this root's)
    back = make_plan(store, [*scan, FileEntry("/music/nas/z.flac", 10, 1.0)], ROOT, unreachable=["/music/nas/y.flac"])
    assert back.back == [41] and back.missing == [40]


def test_many_files_gone_at_once_are_held_as_missing_unless_pruned():
    store = known(*[(i, f"/music/{i}.flac", 10, 1.0) for i in range(1, 21)])
    few = [FileEntry(f"/music/{i}.flac", 10, 1.0) for i in range(PRUNE_FLOOR + 1, 21)]
    assert make_plan(store, few, ROOT).removed == list(range(1, PRUNE_FLOOR + 1))  # up to the floor: removed
    half = [FileEntry(f"/music/{i}.flac", 10, 1.0) for i in range(11, 21)]  # an unmounted disk looks like this
    held = make_plan(store, half, ROOT)
    assert held.removed == [] and held.held == 10 and held.missing == list(range(1, 11))
    assert make_plan(store, half, ROOT, prune=True).removed == list(range(1, 11))


def test_a_moved_file_keeps_its_track(tmp_path):
    moved = tmp_path / "new" / "a.flac"
    moved.parent.mkdir()
    moved.write_bytes(b"fLaC" + bytes(range(256)) * 40)
    size = moved.stat().st_size
    root = str(tmp_path)
    store = known((7, f"{root}/old/a.flac", size, 1.0, STATUS_OK, None, content_hash(str(moved))),
                  (8, f"{root}/old/b.flac", size, 1.0, STATUS_OK, None, "another-hash"))
    plan = make_plan(store, [FileEntry(str(moved), size, 2.0)], root)
    assert [(i, e.path) for i, e in plan.moved] == [(7, str(moved))] and plan.new == [] and plan.removed == [8]
