"""Checking a store in full and repairing what can be rebuilt.

``verify`` reads every file the manifest lists and compares its SHA-256, then opens the track table, the
shards and the index and checks that they agree. ``repair`` takes the writer's lock before it reads anything, and:

- falls back to the previous generation's manifest when the current one is missing or unreadable (its
  files are always kept);
- drops vector shards and checkpoint parts that are damaged; tracks whose vector was lost keep their id and
  are marked so that the next ``index`` run embeds them again;
- rebuilds the FAISS index and the library transform from the shards (a full commit), with fresh checksums.

A damaged base track table cannot be rebuilt from the shards (they hold no paths or tags): repair then says
so, and the remedy is indexing the library into a new store.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from ..catalog.layout import MANIFEST, PREVIOUS, StoreError, atomic_write, check_manifest, read_manifest, sha256
from ..catalog.index_files import read_infos
from ..catalog.shards import read_shard_ids, read_shards
from ..catalog.store import Store, StoreLock, StoreWriter
from ..catalog.track import STATUS_OK
from ..catalog.track import from_row


def verify(path: str | os.PathLike, *, attempts: int = 5) -> dict:
    """``{"ok", "generation", "files_checked", "problems": [{"file", "problem"}]}``: nothing is changed.

    It checks one generation. A writer may commit meanwhile (and delete files two generations old): when a
    check finds problems and the manifest has moved on, it starts again on the new generation, so a commit in
    flight is never reported as damage."""
    path = Path(path)
    for _ in range(attempts):
        res = _verify_once(path)
        if res["ok"]:
            return res
        try:
            moved = read_manifest(path)["generation"] != res["generation"]
        except StoreError:
            moved = False
        if not moved:
            return res
    return res


def _verify_once(path: Path) -> dict:
    problems = []
    try:
        m = read_manifest(path)
    except StoreError as err:
        return {"ok": False, "generation": None, "files_checked": 0, "problems": [{"file": MANIFEST, "problem": str(err)}]}
    for name, meta in sorted(m["files"].items()):
        p = path / name
        try:
            size = p.stat().st_size
            if size != meta["size"]:
                problems.append({"file": name, "problem": f"size {size}, manifest says {meta['size']}"})
            elif sha256(p) != meta["sha256"]:
                problems.append({"file": name, "problem": "checksum mismatch (the file was changed or damaged)"})
        except FileNotFoundError:
            problems.append({"file": name, "problem": "missing"})
        except OSError as err:
            problems.append({"file": name, "problem": f"unreadable ({err.strerror or err})"})
    if not problems:
        try:
            store = Store(path, columns=["id", "status"])
            if store.generation != m["generation"]:
                raise StoreError(f"{path}: the generation moved on while it was checked")
            index = store.index()
            ok_ids = [r["id"] for r in store.tracks.to_pylist() if r["status"] == STATUS_OK]
            if index.ntotal != len(ok_ids):
                problems.append({"file": (m.get("index") or {}).get("file", "index"),
                                 "problem": f"holds {index.ntotal} vectors for {len(ok_ids)} indexed tracks"})
        except StoreError as err:
            problems.append({"file": "store", "problem": str(err)})
    return {"ok": not problems, "generation": m["generation"], "files_checked": len(m["files"]), "problems": problems}


def _file_ok(path: Path, name: str, meta: dict | None) -> bool:
    p = path / name
    return p.is_file() and (meta is None or (p.stat().st_size == meta["size"] and sha256(p) == meta["sha256"]))


def repair(path: str | os.PathLike) -> dict:
    """Repair a store in place (see the module docstring); returns what was done. Holds the writer's lock from
    before its first read to after its last write, so it never races an ``index`` run."""
    path = Path(path)
    if not path.is_dir():
        raise StoreError(f"{path}: not a soundalike store (no such folder)")
    if not (path / MANIFEST).is_file() and not (path / PREVIOUS).is_file():
        read_manifest(path)  # raises the plain "not a store" error without creating a lock file
    with StoreLock(path) as lock:
        return _repair_locked(path, lock)


def _repair_locked(path: Path, lock: StoreLock) -> dict:
    actions = []
    try:
        m = read_manifest(path)
    except StoreError:
        if not (path / PREVIOUS).is_file():
            raise
        m = check_manifest(read_manifest_file(path / PREVIOUS), path / PREVIOUS)
        actions.append(f"{MANIFEST} unreadable: went back to generation {m['generation']} ({PREVIOUS})")
    files = m["files"]

    base, parts = m["tracks"][:1], m["tracks"][1:]
    if base and not _file_ok(path, base[0], files.get(base[0])):
        raise StoreError(f"{path / base[0]}: the track table is damaged and cannot be rebuilt from the shards; "
                         f"index the library into a new store")
    good_parts = [n for n in parts if _file_ok(path, n, files.get(n))]
    for n in sorted(set(parts) - set(good_parts)):
        actions.append(f"dropped damaged track-table part {n} (its tracks are indexed again by the next run)")
    good_shards = []
    for n in m["shards"]:
        try:
            ok = _file_ok(path, n, files.get(n))
            read_shards(path, [n])
        except StoreError:
            ok = False
        if ok:
            good_shards.append(n)
        else:
            actions.append(f"dropped damaged vector shard {n}")
    removed = m.get("tracks_removed")
    if removed and not _file_ok(path, removed, files.get(removed)):
        actions.append(f"dropped damaged removal list {removed} (tracks removed since the last full commit are "
                       f"listed again until the next index run finds their files gone)")
        m["tracks_removed"] = removed = None
    m["tracks"], m["shards"] = base + good_parts, good_shards
    maps = {}
    for table, name in (m.get("path_maps") or {}).items():
        if table in m["tracks"] and _file_ok(path, name, files.get(name)):
            maps[table] = name
        elif table in m["tracks"]:
            actions.append(f"dropped damaged path map {name} (lookups by path read the paths until the next full "
                           f"commit writes it again)")
    m["path_maps"] = maps
    kept = set(m["tracks"]) | set(m["shards"]) | set(maps.values()) | ({removed} if removed else set())
    m["files"] = {k: v for k, v in files.items() if k in kept or k.startswith("encoder/")}
    m["index"], m["transform"], m["index_template"], m["windows"] = None, None, None, None
    text = json.dumps(m, indent=1, sort_keys=True).encode()
    atomic_write(path / MANIFEST, lambda f: f.write(text))

    with StoreWriter(path, encoder=m["encoder"], lock=lock) as w:
        ids_with_vectors = set(np.concatenate([read_shard_ids(path, n) for n in m["shards"]]).tolist()) if m["shards"] else set()
        lost = 0
        for row in list(w.known().values()):
            if row["status"] == STATUS_OK and row["id"] not in ids_with_vectors:
                t = from_row(row)
                t.status, t.error, t.size = "error", "vector lost in a repair; the next index run embeds it again", -1
                w.put(t)
                lost += 1
        if lost:
            actions.append(f"{lost} tracks lost their vectors: they keep their ids and are re-embedded by the next index run")
        w.commit()
    actions.append(f"rebuilt the index and the library transform from the shards (generation {read_manifest(path)['generation']})")
    return {"actions": actions, "verify": verify(path)}


def read_manifest_file(p: Path) -> dict:
    try:
        return json.loads(p.read_text())
    except (OSError, ValueError) as err:
        raise StoreError(f"{p}: unreadable too ({err}); index the library into a new store") from None



def reindex(path: str | os.PathLike, *, refit: bool = False, index_policy=None) -> dict:
    """Rebuild the index of a store from its vector shards, without audio, under the writer's lock; with
    ``refit`` the library transform is fitted anew on every track first (scores move: on purpose)."""
    import time

    path = Path(path)
    read_manifest(path)  # a plain error for what is not a store, before any lock file is made
    t0 = time.perf_counter()
    with StoreLock(path) as lock:
        m = read_manifest(path)
        with StoreWriter(path, encoder=m["encoder"], lock=lock, index_policy=index_policy) as w:
            w.commit(refit=refit, rebuild=True)
    m = read_manifest(path)
    return {"store": str(path), "generation": m["generation"], "vectors": m["index"]["count"], "index": m["index"],
            "index_infos": read_infos(path, m["index"]),
            "transform": m.get("transform"), "refit": refit, "seconds": round(time.perf_counter() - t0, 3)}
