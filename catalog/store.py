"""The on-disk store: one library = one directory.

::

    mylib.soundalike/
      manifest.json                 the only file ever replaced; names every other file of the generation
      tracks.g000007.parquet        one row per Track (base table; row groups of 8k rows)
      tracks.g000009.part.parquet   rows changed since (a checkpoint's, or a small commit's); the last row wins
      tracks.g000009.removed.npy    ids removed since the base table was written
      vectors/shard-000003.npz      ids (int64[n]) + raw track vectors (float32[n, d]) and, for encoders that
                                    keep them, each track's window features; immutable
      tracks.g000007.faiss          the track index: the library transform and the codes (catalog.indexes)
      tracks.g000009.delta.faiss    vectors written since the index was built, in its own quantisers
      tracks.g000009.hidden.npy     ids of the index whose vectors no longer count (removed, re-embedded)
      template.g000007.faiss        the trained empty index: frozen quantisers for deltas and rebuilds
      windows.g000007*.faiss        the excerpt index of every track's windows (catalog.excerpts)
      encoder/                      the encoder artefact the vectors came from (for outside queries)
      .lock                         held by the one writer

Every commit writes new files beside the old ones, fsyncs them, and then replaces ``manifest.json``
(write to a temporary name, ``os.replace``): a reader sees the old generation or the new one, never half of
one, and a crash at any point leaves the last committed generation intact. Files of the generation before
the current one are kept (a reader may still be opening them); older ones are deleted.

Checkpoints (during a long index run) append a vector shard and a Parquet part holding only the rows that
changed. A commit that changes less than DELTA_FRACTION of the library writes deltas (a part, a removal list,
a delta index and a hidden list: its cost follows the change, not the library); a bigger one merges the parts
into one base table and updates the index in place; a refit, a compaction of mostly dead shards or a change
of index kind rebuilds the index from the shards. A reader whose manifest has no up-to-date index builds one
in memory from the last index and the shards written since.

The store in parts: ``catalog.layout`` (file names, the manifest read and checked, atomic writes, the errors),
``catalog.shards`` (reading track tables and vector shards), ``catalog.index_files`` (the track index on disk,
with its deltas, brought up to date) and this module: the reader (:class:`Store`), the writer lock and the
writer (:class:`StoreWriter`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import shutil
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from ..catalog.track import (COLUMNS, STATUS_OK, Track, bool_arrow, equals_np, index_arrow, ints_np, ok_mask,
                             rows_table)
from . import excerpts, indexes, neighbours, paths, within
from .indexes import Fitted, Policy, TrackIndex
from .index_files import (LEGACY_KIND, bring_up_to_date, current_index, frozen_transform, newer_shards,
                          no_longer_held, open_index, read_index, read_infos, save_fitted, split_record,
                          transform_kind)
from .layout import (DELTA_FRACTION, FORMAT, MANIFEST, PART, PREVIOUS, REFIT_GROWTH, REMEDY, ROW_GROUP, SHARD_ROWS,
                     SHARD_ROWS_WINDOWS, VERSION, EncoderMismatch, StoreError, StoreLocked, atomic_write, is_count,
                     infos_name, is_store, listed, own_leftover, read_manifest, sha256, short)
from .memo import Memo
from .shards import (count_latest, iter_latest, iter_latest_rows, latest_vectors, live_ids, read_removed,
                     read_shard_ids, read_shards, read_track_rows, read_tracks, shard_number)

#: what callers import from here: the store's errors and the names of its manifest
__all__ = ["DELTA_FRACTION", "MANIFEST", "CommitPlan", "IndexChange", "index_step", "plan_commit", "PREVIOUS", "REFIT_GROWTH", "EncoderMismatch", "Store", "StoreError",
           "StoreLock", "StoreLocked", "StoreWriter", "is_store", "read_manifest", "to_table_rows"]


@dataclasses.dataclass(frozen=True)
class CommitPlan:
    """What a commit does beyond writing its rows, decided from the manifest and a few counts (no file read)."""

    #: the library transform is fitted anew (none yet, the library grown to REFIT_GROWTH times the tracks it was
    #: fitted on, or asked); the index is then rebuilt
    fit: bool
    #: the shards are rewritten with only the live rows (more than half of their rows dead)
    compact: bool
    #: the quantisers of an encoder without a transform are retrained (grown by the same rule)
    retrain: bool
    #: the index built before may stay: a delta beside it, or updated in place; otherwise it is rebuilt
    keep_index: bool
    #: the excerpt index is rebuilt rather than given a delta
    rebuild_windows: bool
    #: every track's neighbourhood (CSLS) is computed again, not only the new tracks'
    recompute_neighbours: bool


def plan_commit(m: dict, *, live: int, shard_rows: int, policy: Policy, refit: bool = False,
                rebuild: bool = False) -> CommitPlan:
    """The plan of a commit of manifest ``m`` with ``live`` tracks holding a vector, ``shard_rows`` rows in its
    shards (live or dead), index ``policy``; ``refit`` and ``rebuild`` are what the caller asked for."""
    kind = m["encoder"].get("transform")
    fitted_info = m.get("transform")
    no_transform = kind in (None, "none")
    fit = not no_transform and (refit or not fitted_info
                                or live >= REFIT_GROWTH * max(int(fitted_info.get("fitted_on", 0)), 1))
    compact = shard_rows > 2 * max(live, 1) and len(m["shards"]) > 1  # mostly dead rows
    tinfo = m.get("index_template")
    # the quantisers are frozen with the transform; for encoders without one, retrained by the same growth rule
    retrain = bool(tinfo) and no_transform and live >= REFIT_GROWTH * max(int(tinfo.get("trained_on") or 0), 1)
    prev = m.get("index") or {}
    keep = (not (fit or rebuild or compact or retrain) and prev.get("shards_indexed") is not None
            and prev.get("kind") != LEGACY_KIND and Policy.from_dict(prev.get("policy")) == policy)
    return CommitPlan(fit=fit, compact=compact, retrain=retrain, keep_index=keep,
                      rebuild_windows=rebuild or refit or compact, recompute_neighbours=fit or rebuild or refit)


@dataclasses.dataclass(frozen=True)
class IndexChange:
    """What changed since an index was built: the ids it holds, those of them that no longer count (removed or
    re-embedded), the ids of the vectors written since (in the shards ``newer``), and its width."""

    held: np.ndarray
    hidden: np.ndarray
    added: np.ndarray
    newer: list
    width: int


def index_step(prev: dict, policy: Policy, *, held: int, hidden: int, added: int, width: int,
               template_type: str | None) -> str:
    """What a commit that may keep its index (``prev``, its manifest record, holding ``held`` vectors of which
    ``hidden`` no longer count; ``added`` vectors written since) does with it:

    - ``"delta"``: leaves it as it is, with a small index of the added vectors and the list of hidden ids
      beside it, while the change is under DELTA_FRACTION of it (and its template, ``template_type``, is of its
      kind);
    - ``"update"``: rewrites it with the change applied (``remove_ids``, ``add_with_ids``);
    - ``"rebuild"``: builds it anew from the shards, when the library has grown (or shrunk) past what its kind
      is for under ``policy``."""
    if policy.choose(held - hidden + added, width) != prev.get("type"):
        return "rebuild"
    if template_type != prev.get("type") or hidden + added > DELTA_FRACTION * held:
        return "update"
    return "delta"


#: (header, trailer) bytes of the file kinds a store holds
_MAGIC = {".parquet": ((b"PAR1",), b"PAR1"), ".npz": ((b"PK",), b""), ".faiss": ((b"IxM2", b"IxPT"), b""),
          ".npy": ((b"\x93NUM",), b"")}


class Store:
    """A read-only view of one committed generation of a store."""

    def __init__(self, path: str | os.PathLike, *, columns: list[str] | None = None, dictionary: tuple[str, ...] = ()):
        """``columns``: the track columns this view reads (default: all); ``id`` and ``status`` always.
        ``dictionary``: text columns kept dictionary-encoded (see :func:`read_parquet`)."""
        self.path = Path(path)
        self.manifest = read_manifest(self.path)
        self._check_files()
        self._columns = None if columns is None else list(dict.fromkeys(["id", "status", *columns]))
        self._dictionary = tuple(dictionary)
        # what is read on first use (the track rows, columns, the index and what lies beside it, the open track
        # tables): each made once, however many threads of a service ask for it at the same moment
        self._memo = Memo()
        self._files: dict = {}
        self._groups: dict = {}  # row groups read for cells
        # a Parquet reader, and the two caches above, are one thread's at a time (two threads reading row groups
        # of one file failed in pyarrow: "ReadRangeCache did not find ...")
        self._cells_lock = threading.Lock()

    @classmethod
    def open(cls, path: str | os.PathLike, *, attempts: int = 5, columns: list[str] | None = None,
             dictionary: tuple[str, ...] = ()) -> "Store":
        """Open a store and load its tracks and index, consistently even while a writer commits: if the
        generation moves on under a reader (the writer deletes files two generations old), it starts again."""
        last_error = None
        for _ in range(attempts):
            seen = None
            try:
                seen = read_manifest(path)["generation"]
                store = cls(path, columns=columns, dictionary=dictionary)
                store.load()
                return store
            except (StoreError, OSError) as err:
                last_error = err
                try:
                    moved = seen is not None and read_manifest(path)["generation"] != seen
                except StoreError:
                    moved = False
                if not moved:
                    break
        raise last_error

    def load(self) -> "Store":
        """Read everything a reader uses (tracks, and the index with its transform) now: after this the view
        holds one consistent generation and keeps answering however many commits come after it."""
        self.track_rows()
        self.index()
        return self

    def _damaged(self, p: Path, reason: str) -> StoreError:
        return StoreError(f"{p}: {reason}{REMEDY}")

    def _check_files(self) -> None:
        """Cheap checks on open: every listed file exists with its recorded size and the right magic bytes
        (full checksums are for :func:`verify`)."""
        for name, meta in self.manifest.get("files", {}).items():
            p = self.path / name
            try:
                size = p.stat().st_size
                with open(p, "rb") as f:
                    head = f.read(4)
                    f.seek(max(0, size - 4))
                    tail = f.read(4)
            except FileNotFoundError:
                raise self._damaged(p, f"missing (listed by {MANIFEST})") from None
            if size != meta["size"]:
                raise self._damaged(p, f"size {size} does not match the manifest's {meta['size']}")
            magic = _MAGIC.get(Path(name).suffix)
            if magic and not (head.startswith(magic[0]) and tail.endswith(magic[1])):
                raise self._damaged(p, "not a valid file of its kind (bad header or trailer)")

    # -- metadata ------------------------------------------------------------------------------------------
    @property
    def generation(self) -> int:
        return int(self.manifest["generation"])

    @property
    def encoder_info(self) -> dict:
        return self.manifest["encoder"]

    @property
    def dim(self) -> int:
        return int(self.manifest["encoder"]["dim"])

    @property
    def encoder_path(self) -> Path | None:
        model = self.manifest["encoder"].get("model")
        return self.path / model if model else None

    def _source(self, name: str):
        """A track table of this generation, memory-mapped when first read and kept: what a reader reads later
        (a column, a hit's row) still comes from this generation after a writer has deleted its files."""
        def open_map():
            try:
                return pa.memory_map(str(self.path / name))
            except OSError as err:
                raise StoreError(f"{self.path / name}: unreadable track table ({short(err)}){REMEDY}") from None

        return self._memo.get(("map", name), open_map)

    def column(self, name: str):
        """One track column, aligned with the table of :meth:`track_rows` (read on first use)."""
        def read():
            table, _ = read_track_rows(self.path, self.manifest["tracks"], [name], read_removed(self.path, self.manifest),
                                        self._dictionary, self._source)
            return table.column(name)

        return self._memo.get(("column", name), read)

    def cells(self, rows, columns: list[str]) -> list[dict]:
        """The values of ``columns`` at rows of :meth:`track_rows`' table, read from just the Parquet row groups
        that hold them (a query's ten hits read ten groups, not a million rows of text). Safe from threads."""
        with self._cells_lock:
            return self._cells(rows, columns)

    def _cells(self, rows, columns: list[str]) -> list[dict]:
        names = self.manifest["tracks"]
        bounds = self._table_bounds()
        out = []
        for row in (int(r) for r in rows):
            at = int(np.searchsorted(bounds, row, side="right")) - 1
            local = row - int(bounds[at])
            if at not in self._files:
                f = pq.ParquetFile(self._source(names[at]))
                meta = f.metadata
                starts = np.cumsum([0, *(meta.row_group(g).num_rows for g in range(meta.num_row_groups))])
                self._files[at] = (f, starts, set(f.schema_arrow.names))
            f, starts, have = self._files[at]
            g = int(np.searchsorted(starts, local, side="right")) - 1
            key = (at, g, tuple(columns))
            group = self._groups.get(key)
            if group is None:
                if len(self._groups) >= 256:  # a long-lived reader keeps the groups of recent hits only
                    self._groups.pop(next(iter(self._groups)))
                table = f.read_row_group(g, columns=[c for c in columns if c in have])
                group = self._groups[key] = [(c, table.column(c).combine_chunks() if c in have else None) for c in columns]
            i = local - int(starts[g])
            out.append({c: None if arr is None else arr[i].as_py() for c, arr in group})
        return out

    def rows_of_path(self, path: str) -> np.ndarray | None:
        """Rows of :meth:`track_rows`' table that hold ``path`` (the latest last), found through the tables'
        path maps (``catalog.paths``) without reading the path column; None when a table has no map (a store
        written before there were any), and the caller must read the column."""
        names, maps = self.manifest["tracks"], self.manifest.get("path_maps") or {}
        if not names or any(n not in maps for n in names):
            return None
        bounds = self._table_bounds()
        found = []
        for at, name in enumerate(names):
            try:  # (memory-mapped when first read, and kept: a writer collecting the file later leaves it readable)
                table = self._memo.get(("map", maps[name]), lambda: paths.open_map(self.path / maps[name]))
            except (OSError, ValueError):
                return None  # gone (a generation collected before this reader first asked) or damaged: read the paths
            found += [int(bounds[at]) + int(r) for r in paths.rows_in(table, path)]
        if not found:
            return np.zeros(0, np.int64)
        return np.asarray([r for r, cell in zip(found, self.cells(found, ["path"])) if cell["path"] == path], np.int64)

    def _table_bounds(self) -> np.ndarray:
        """The first row of each track table in :meth:`track_rows`' table (and the total)."""
        def count():
            return np.cumsum([0, *(pq.ParquetFile(self._source(n)).metadata.num_rows for n in self.manifest["tracks"])])

        return self._memo.get("bounds", count)

    def track_rows(self) -> tuple[pa.Table, np.ndarray | None]:
        """The track tables as stored (base and parts concatenated) and which rows count (None: all); what a
        searcher reads, without the filtering that :attr:`tracks` does."""
        return self._memo.get("rows", lambda: read_track_rows(
            self.path, self.manifest["tracks"], self._columns, read_removed(self.path, self.manifest),
            self._dictionary, self._source))

    def live_rows(self) -> np.ndarray:
        """Rows of :meth:`track_rows`' table that are tracks with a vector (status ok, not superseded)."""
        table, keep = self.track_rows()
        ok = ok_mask(table.column("status"))
        return np.flatnonzero(ok if keep is None else ok & keep)

    @property
    def tracks(self) -> pa.Table:
        """One row per track."""
        table, keep = self.track_rows()
        return table if keep is None else self._memo.get("tracks", lambda: table.filter(bool_arrow(keep)))

    def vectors(self) -> tuple[np.ndarray, np.ndarray]:
        """Raw track vectors of the live ok tracks: (ids, float32[n, d]), sorted by id."""
        t = self.tracks
        live = live_ids(t)
        ids, vecs = read_shards(self.path, self.manifest["shards"])
        if len(ids) and vecs.shape[1] != self.dim:
            raise StoreError(f"{self.path}: vector shards are {vecs.shape[1]} wide, the manifest says {self.dim}{REMEDY}")
        return latest_vectors(ids, vecs, live)

    def transform(self):
        """Raw track vectors -> the index's unit vectors (the transform inside the index file)."""
        return self.index().embed

    def fitted(self) -> Fitted | None:
        """The library transform the writer keeps (None: none fitted yet)."""
        return frozen_transform(self.manifest, self.path)

    def index(self) -> TrackIndex:
        """The track index of this generation: read from disk (memory-mapped), or, after a checkpoint that
        did not build one, the last built index brought up to date in memory."""
        def read():
            info = self.manifest.get("index")
            if info and info.get("generation") == self.generation:
                return open_index(self.path, info, self.dim, mmap=True, fitted=self.fitted)
            table, _ = self.track_rows()
            return current_index(self.path, self.manifest, ints_np(table.column("id"))[self.live_rows()])

        return self._memo.get("index", read)

    def index_infos(self) -> dict:
        """What the build of this generation's index measured: recall@10 against exact search over the full
        vectors (``recall_at_10``, and ``recall_filtered_at_10`` under a 10% filter), inverted lists' recall@10
        against a scan of all their codes (``recall_codes_at_10``), the nprobe chosen for each, the share of the
        variance the PCA keeps (``variance_kept``), single-query latency, build timings
        (``catalog.indexes.measure_index``); empty when nothing was measured."""
        return self._memo.get("infos", lambda: read_infos(self.path, self.manifest.get("index")))

    def neighbourhoods(self) -> "neighbours.Neighbourhoods | None":
        """Each track's neighbourhood for hub-aware ranking (None: the store keeps none; see
        ``catalog.neighbours``)."""
        record = self.manifest.get("neighbours")
        if not neighbours.record_ok(record) or self.manifest["encoder"].get("rescore") != "csls":
            return None
        def read():
            try:
                return neighbours.Neighbourhoods(self.path, record)
            except (OSError, ValueError) as err:
                raise StoreError(f"{self.path / record['file']}: unreadable neighbourhoods ({short(err)}){REMEDY}") from None

        return self._memo.get("neighbourhoods", read)

    def excerpt_index(self) -> "excerpts.ExcerptIndex | None":
        """The window index of the last commit (None: the store keeps no windows). Tracks a checkpoint
        added since are not in it until the run commits."""
        record = self.manifest.get("windows")
        if not record:
            return None
        return self._memo.get("excerpts", lambda: excerpts.ExcerptIndex.open(self.path, record))

    def disk_bytes(self) -> int:
        return sum(p.stat().st_size for p in self.path.rglob("*") if p.is_file())


# ------------------------------------------------------------------------------------------------ writing


class StoreLock:
    """The one writer's lock of a store (``.lock``, an exclusive ``flock``). Every command that changes a store
    holds it from before its first write to after its last."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self._fd = None

    def acquire(self) -> "StoreLock":
        import fcntl

        fd = os.open(self.path / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            raise StoreLocked(f"{self.path}: another soundalike process is writing to this store; wait for it to finish") from None
        self._fd = fd
        return self

    @property
    def held(self) -> bool:
        return self._fd is not None

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __enter__(self):
        return self.acquire()

    def __exit__(self, *exc):
        self.release()


class StoreWriter:
    """The one writer of a store. Use as a context manager; it holds ``.lock`` while open.

    ``encoder`` is a dict with at least ``name``, ``fingerprint`` and ``dim``; ``encoder_files`` (paths of the
    model artefact) are copied into the store when it is created, so that outside queries can be embedded
    with the very same encoder later.
    """

    def __init__(self, path: str | os.PathLike, *, encoder: dict, encoder_files: list[Path] = (),
                 lock: StoreLock | None = None, index_policy: Policy | dict | None = None):
        """``index_policy``: the index kind and memory budget from now on (None: keep the store's)."""
        self.path = Path(path)
        if isinstance(index_policy, dict):
            index_policy = Policy.from_dict(index_policy)
        if self.path.exists() and not self.path.is_dir():
            raise StoreError(f"{self.path}: exists and is not a store directory")
        if self.path.is_dir() and not is_store(self.path) and not all(map(own_leftover, self.path.iterdir())):
            raise StoreError(f"{self.path}: folder exists, is not empty and is not a soundalike store")
        self.path.mkdir(parents=True, exist_ok=True)
        # a lock handed in (e.g. by repair) stays the caller's to release
        self._own_lock = lock is None
        self._lock = lock if lock is not None else StoreLock(self.path).acquire()
        try:
            self._open(encoder, encoder_files)
            if index_policy is not None:
                self.manifest["index_policy"] = index_policy.to_dict()
        except BaseException:
            self.close()
            raise

    def _open(self, encoder: dict, encoder_files) -> None:
        if is_store(self.path):
            self.manifest = m = read_manifest(self.path)
            # never reuse an id or overwrite a shard, whatever the counters say
            m["next_shard"] = max([m["next_shard"], *(shard_number(n) + 1 for n in m["shards"])])
            have = self.manifest["encoder"]
            if have["fingerprint"] != encoder["fingerprint"]:
                raise EncoderMismatch(
                    f"{self.path}: built with encoder {have['name']} ({have['fingerprint']}), "
                    f"not {encoder['name']} ({encoder['fingerprint']}); use that model or a new store"
                )
        else:
            self.manifest = self._new_manifest(encoder, encoder_files)
        # the same weights may run on several routes (e.g. bf16 on one machine, float32 on another): vectors
        # stay compatible, and the store lists every route that wrote some
        runtimes = self.manifest["encoder"].setdefault("runtimes", [])
        if encoder.get("runtime") and encoder["runtime"] not in runtimes:
            runtimes.append(encoder["runtime"])
        self._load_base()
        self._changed: dict[int, dict] = {}  # rows put since the last commit, by id
        self._pending_rows: list[dict] = []  # rows put since the last checkpoint or commit
        self._pending_ids: list[np.ndarray] = []
        self._pending_vecs: list[np.ndarray] = []
        self._pending_windows: list[np.ndarray | None] = []  # window features, one entry per pending vector
        self._within: within.WithinScatter | None = None  # the within-track sums, once a track adds to them
        self._removed: set[int] = set()
        self._session_paths: dict[str, int | None] = {}  # paths given ids (or removed, None) since the last commit

    # -- lock ----------------------------------------------------------------------------------------------
    def close(self) -> None:
        if self._own_lock:
            self._lock.release()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # -- manifest ------------------------------------------------------------------------------------------
    def _new_manifest(self, encoder: dict, encoder_files) -> dict:
        enc = {k: v for k, v in encoder.items() if k != "runtime"}  # routes are listed under "runtimes"
        if encoder_files:
            dest = self.path / "encoder"
            dest.mkdir(exist_ok=True)
            for f in encoder_files:
                shutil.copy2(f, dest / Path(f).name)
            enc["model"] = f"encoder/{Path(encoder_files[0]).name}"
        return {
            "format": FORMAT,
            "version": VERSION,
            "generation": 0,
            "encoder": enc,
            "metric": "inner_product",
            "index": None,
            "tracks": [],
            "shards": [],
            "next_id": 0,
            "next_shard": 0,
            "counts": {"tracks": 0, "ok": 0, "error": 0, "vectors": 0},
            "files": {},
            "created": time.time(),
        }

    # -- what the store holds ------------------------------------------------------------------------------
    def _load_base(self) -> None:
        """The committed rows, as cheaply as a small commit needs them: ids, statuses and paths (Arrow and NumPy
        columns; a million Python dicts would cost seconds and gigabytes). The whole table is read only when
        asked for (:attr:`_base`)."""
        m = self.manifest
        self._stale = False
        self._removed_before = read_removed(self.path, m)
        self._base_names = list(m["tracks"])  # (a checkpoint adds parts to the manifest: not to the base)
        light, keep = read_track_rows(self.path, self._base_names, ["status", "path"], self._removed_before, ("status",))
        # position in the committed rows -> row of ``light`` (which also holds rows that no longer count)
        self._base_rows = np.arange(len(light)) if keep is None else np.flatnonzero(keep)
        self._base_ids = ints_np(light.column("id"))[self._base_rows]
        self._base_ok = ok_mask(light.column("status"))[self._base_rows]
        self._base_paths = light.column("path")
        self._base_order = np.argsort(self._base_ids, kind="stable")
        self._base_table: pa.Table | None = None
        self._path_ids: dict[str, int] | None = None
        self._path_lookups = 0
        if len(self._base_ids):
            m["next_id"] = max(m["next_id"], int(self._base_ids.max()) + 1)

    @property
    def _base(self) -> pa.Table:
        """Every column of the committed rows (in the order of ``_base_ids``)."""
        if self._base_table is None:
            self._base_table = read_tracks(self.path, self._base_names, None, self._removed_before)
            assert len(self._base_table) == len(self._base_ids)
        return self._base_table

    def _base_row(self, track_id: int) -> int | None:
        i = int(np.searchsorted(self._base_ids, track_id, sorter=self._base_order))
        if i < len(self._base_ids) and self._base_ids[self._base_order[i]] == track_id:
            return int(self._base_order[i])
        return None

    def _committed_id(self, path: str) -> int | None:
        """The id of a committed path: a scan of the path column for the first few lookups (a small commit
        never builds a dict of a million paths), a dict once there are many."""
        if self._path_ids is None:
            self._path_lookups += 1
            if self._path_lookups <= 16:
                at = np.flatnonzero(equals_np(self._base_paths, path)[self._base_rows])
                return int(self._base_ids[at[-1]]) if len(at) else None
            paths = self._base_paths.to_pylist()
            self._path_ids = {paths[r]: i for r, i in zip(self._base_rows.tolist(), self._base_ids.tolist())}
        return self._path_ids.get(path)

    def _overridden(self) -> np.ndarray:
        """Mask over the committed rows: replaced or removed since the last commit."""
        gone = np.fromiter([*self._changed, *self._removed], dtype=np.int64)
        return np.isin(self._base_ids, gone) if len(gone) else np.zeros(len(self._base_ids), bool)

    def known(self) -> dict[str, dict]:
        """Committed rows (plus this session's pending ones) by path."""
        self._fresh()
        keep = ~self._overridden()
        base = self._base if keep.all() else self._base.filter(bool_arrow(keep))
        rows = {r["path"]: r for r in base.to_pylist()}
        rows.update((r["path"], r) for r in self._changed.values())
        return rows

    def row(self, track_id: int) -> dict | None:
        """One track's row, every column, as the store stands with this session's changes (None: no such
        track)."""
        if track_id in self._changed:
            return dict(self._changed[track_id])
        self._fresh()
        at = self._base_row(track_id)
        if at is None or track_id in self._removed:
            return None
        return self._base.slice(at, 1).to_pylist()[0]

    def _statuses(self) -> tuple[int, int]:
        """(tracks, ok) of the store as it stands with this session's changes."""
        keep = ~self._overridden()
        tracks = int(keep.sum()) + len(self._changed)
        ok = int(self._base_ok[keep].sum()) + sum(r["status"] == STATUS_OK for r in self._changed.values())
        return tracks, ok

    def _live(self) -> np.ndarray:
        """Ids of the tracks with a vector (status ok) as the store stands with this session's changes."""
        keep = ~self._overridden() & self._base_ok
        new = np.fromiter((i for i, r in self._changed.items() if r["status"] == STATUS_OK), dtype=np.int64)
        return np.concatenate([self._base_ids[keep], new])

    def _merged(self) -> pa.Table:
        """One table of every track (committed rows, this session's changes applied), sorted by id."""
        keep = ~self._overridden()
        parts = [self._base if keep.all() else self._base.filter(bool_arrow(keep))]
        if self._changed:
            parts.append(to_table_rows(list(self._changed.values())))
        table = pa.concat_tables(parts) if len(parts) > 1 else parts[0]
        ids = ints_np(table.column("id"))
        order = np.argsort(ids, kind="stable")
        return table if np.all(order == np.arange(len(ids))) else table.take(index_arrow(order))

    def _fresh(self) -> None:
        if self._stale:
            self._load_base()

    def id_for(self, path: str) -> int:
        """The id of ``path``: its existing one, or a new one (ids are never reused)."""
        self._fresh()
        known = self._session_paths[path] if path in self._session_paths else self._committed_id(path)
        if known is not None:
            return known
        new = int(self.manifest["next_id"])
        self.manifest["next_id"] = new + 1
        self._session_paths[path] = new
        return new

    # -- changes -------------------------------------------------------------------------------------------
    def put(self, track: Track, vector: np.ndarray | None = None, windows: np.ndarray | None = None,
            features: np.ndarray | None = None) -> None:
        """Add or replace one track (and its raw vector when it has one, with its window features for the
        excerpt index when the encoder keeps them). ``features``: all its windows' features, for a store whose
        library transform whitens within tracks (added to its running sums, not kept)."""
        if features is not None and vector is not None:
            self._within_sums().add(features)
        row = {name: getattr(track, name) for name in COLUMNS}
        before = self._changed.get(track.id)
        if before is None:
            self._fresh()
            at = self._base_row(track.id) if len(self._base_ids) else None
            before = None if at is None else {"path": self._base_paths[int(self._base_rows[at])].as_py()}
        if before is not None and before["path"] != track.path:  # moved: its old path names no track now
            self._session_paths[before["path"]] = None
        self._changed[track.id] = row
        self._session_paths[track.path] = track.id
        self._removed.discard(track.id)
        self._pending_rows.append(row)
        if vector is not None:
            self._pending_ids.append(np.asarray([track.id], np.int64))
            self._pending_vecs.append(np.asarray(vector, np.float32).reshape(1, -1))
            self._pending_windows.append(None if windows is None else np.asarray(windows, np.float16)[: excerpts.SLOTS])

    def remove(self, track_id: int) -> None:
        self._fresh()
        row = self._changed.pop(track_id, None)
        if row is None:
            at = self._base_row(track_id)
            if at is None or track_id in self._removed:
                return
            row = {"path": self._base_paths[int(self._base_rows[at])].as_py()}
        self._session_paths[row["path"]] = None
        self._removed.add(track_id)

    @property
    def pending(self) -> int:
        return len(self._pending_rows) + len(self._removed)

    def _within_sums(self) -> "within.WithinScatter":
        """The store's within-track sums (catalog.within), loaded once; a store whose file is unreadable starts
        them again (they only shape the next fit)."""
        if self._within is None:
            dim = int(self.manifest["encoder"]["dim"]) // 2
            info = self.manifest.get("within")
            self._within = within.WithinScatter(dim)
            if info:
                try:
                    self._within = within.WithinScatter.load(self.path / info["file"], dim)
                except StoreError as err:
                    print(f"warning: {err}; the sums start again", file=sys.stderr)
        return self._within

    def _write_within(self, gen: int, new_files: list[str]) -> None:
        """This generation's within-track sums, when tracks added to them since the last."""
        if self._within is None or not self._within.dirty:
            return
        name = f"within.g{gen:06d}.npz"
        atomic_write(self.path / name, self._within.save)
        new_files.append(name)
        self.manifest["within"] = {"file": name, "generation": gen, "tracks": int(self._within.tracks)}
        self._within.dirty = False

    # -- commits -------------------------------------------------------------------------------------------
    def checkpoint(self) -> None:
        """Make pending additions durable cheaply: a shard and a Parquet part. No index is rebuilt."""
        if not self._pending_rows:
            return
        self._fresh()
        gen = self.manifest["generation"] + 1
        new_files = []
        shard = self._write_shard()
        if shard:
            new_files.append(shard)
        self._write_within(gen, new_files)
        part = f"tracks.g{gen:06d}{PART}"
        new_files += self._write_table(part, to_table_rows(self._pending_rows))
        self.manifest["tracks"] = self.manifest["tracks"] + [part]
        self._keep_maps()
        self._pending_rows = []
        self._publish(gen, new_files)

    def commit(self, *, refit: bool = False, rebuild: bool = False) -> None:
        """Commit: the track table and the track index brought up to date, removals applied.

        The library transform is frozen between refits, so scores between tracks do not drift run to run: it
        is refitted when there is none, when the library has grown to REFIT_GROWTH times the tracks it was
        fitted on, or when ``refit``. With the transform frozen, nothing is rebuilt:

        - a commit that changes less than DELTA_FRACTION of the library writes deltas: a Parquet part of the
          changed rows and the list of removed ids beside the base table, and beside the main index a small
          index of the vectors written since it was built (its own trained template, so the codes are the
          ones the main index would hold) with the list of its ids that no longer count. Readers search both.
          Its cost follows the size of the change, not of the library;
        - past that, the deltas are folded: one merged track table, and the main index updated in place
          (``remove_ids`` for vectors removed or re-embedded, ``add_with_ids`` for the shards written since
          it was built; no other vector is read).

        A refit, ``rebuild``, a compaction of the shards, a change of index kind (asked for, or by size under
        ``auto``) or an index of the first format rebuilds the index from the shards, streaming them (see
        ``catalog.indexes.build``).
        """
        self._fresh()
        gen = self.manifest["generation"] + 1
        m = self.manifest
        new_files = []
        shard = self._write_shard()
        if shard:
            new_files.append(shard)
        self._write_within(gen, new_files)
        live = self._live()
        statuses = self._statuses()
        new_files += self._commit_tracks(gen, rebuild or refit)
        policy = Policy.from_dict(m.get("index_policy"))
        plan = plan_commit(m, live=len(live), shard_rows=self._shard_rows(), policy=policy, refit=refit, rebuild=rebuild)
        prev = m.get("index") or {}
        index, record = None, None
        if plan.keep_index:
            change = self._index_change(prev, live)
            step = "rebuild" if change is None else index_step(
                prev, policy, held=len(change.held), hidden=len(change.hidden), added=len(change.added),
                width=change.width, template_type=(m.get("index_template") or {}).get("type"))
            if step == "delta":
                record = self._delta_record(prev, change, gen, new_files)
            elif step == "update":
                index = self._updated_index(prev, live)
        updated = index is not None
        info = {}
        if record is None and index is None:
            index, info = self._rebuilt_index(gen, live, plan, policy, new_files)
        if record is None:
            record = self._write_index(gen, index, prev if updated else None, info, new_files)
        m["index"] = record
        self._commit_beside(gen, live, plan, record, new_files)
        self._pending_rows = []
        self._removed = set()
        self._changed = {}
        self._session_paths = {}
        self._publish(gen, new_files, statuses=statuses)
        self._stale = True  # the committed rows are read again when next needed (a writer is mostly closed now)

    def _rebuilt_index(self, gen: int, live: np.ndarray, plan: "CommitPlan", policy: Policy,
                       new_files: list[str]) -> tuple[TrackIndex, dict]:
        """The index built anew from the shards (compacted first when the plan says so), with a new template
        and, when the plan fits one, a new library transform written beside it."""
        m = self.manifest
        tinfo = m.get("index_template")
        if plan.compact:
            new_files += self._compact_shards(live)
        fitted = None if plan.fit else frozen_transform(m, self.path)
        template = (self.path / tinfo["file"]).read_bytes() if tinfo and fitted is not None and not plan.retrain else None
        kind = transform_kind(m) if fitted is not None else m["encoder"].get("transform")
        sums = self._within_sums() if kind == "whiten" and fitted is None else None
        whiten = None
        if sums is not None and sums.tracks >= within.MIN_TRACKS:
            def whiten(standardised, sample, _ids):
                return within.fit(standardised, sample, sums) or standardised
        elif fitted is None and kind == "whiten":
            kind = "standardize"  # no sums to whiten with (a store repaired from its shards): standardised
        built = indexes.build(lambda: iter_latest(self.path, m["shards"], live),
                              count_latest(self.path, m["shards"], live), int(m["encoder"]["dim"]),
                              transform_kind=kind, fitted=fitted, policy=policy, template=template,
                              refine=whiten, widths=() if whiten else indexes.PCA_WIDTHS)
        index, info = built.index, built.info
        if built.template is not None:
            tname = f"template.g{gen:06d}.faiss"
            atomic_write(self.path / tname, lambda f: f.write(built.template))
            new_files.append(tname)
            m["index_template"] = {"file": tname, "generation": gen, "type": info["type"],
                                   "trained_on": int(info["trained_on"])}
        if plan.fit:
            tname = f"transform.g{gen:06d}.npz"
            atomic_write(self.path / tname, lambda f: save_fitted(f, built.fitted))
            new_files.append(tname)
            whitened = whiten is not None and built.fitted.basis is not None
            m["transform"] = {"kind": "whiten" if whitened else "standardize", "file": tname,
                              "fitted_on": int(built.fitted.fitted_on),
                              "generation": gen, "width": int(index.width)}
        return index, info

    def _write_index(self, gen: int, index: TrackIndex, updated_from: dict | None, info: dict,
                     new_files: list[str]) -> dict:
        """Write ``index`` as this generation's main index; its manifest record (``updated_from``: the record
        of the index it was updated from in place, None when it was built whole, with ``info``)."""
        iname = f"tracks.g{gen:06d}.faiss"
        # streamed to the file in blocks: no serialised copy of the whole index in memory
        atomic_write(self.path / iname, index.write)
        new_files.append(iname)
        # built: the generation whose commit last built it whole; updates: commits that changed it since
        prev = updated_from or {}
        drop = ("file", "count", "generation", "shards_indexed", "delta", "bytes")
        record = self._measured_beside(iname, {k: v for k, v in prev.items() if k not in drop} if updated_from is not None else info,
                                       new_files)
        record.update({"file": iname, "kind": index.describe(), "metric": "inner_product", "count": int(index.ntotal),
                       "generation": gen, "shards_indexed": int(self.manifest["next_shard"]),
                       "built": int(prev.get("built", prev.get("generation", gen))) if updated_from is not None else gen,
                       "updates": int(prev.get("updates", 0)) + 1 if updated_from is not None else 0,
                       "bytes": int((self.path / iname).stat().st_size)})
        return record

    def _measured_beside(self, index_file: str, source: dict, new_files: list[str]) -> dict:
        """The manifest record of an index described by ``source``: its bookkeeping, with what a build measured
        (``source``'s other keys: a new build's, or those a record of the earlier format kept) written to an
        infos file named after ``index_file``; a record already naming one keeps it."""
        record, measured = split_record(source)
        if measured:
            name = infos_name(index_file)
            atomic_write(self.path / name, lambda f: f.write(json.dumps(measured, indent=1, sort_keys=True).encode()))
            new_files.append(name)
            record["infos"] = name
        return record

    def _commit_beside(self, gen: int, live: np.ndarray, plan: "CommitPlan", record: dict, new_files: list[str]) -> None:
        """What is kept beside the track index: the excerpt index of the tracks' windows, and each track's
        neighbourhood for CSLS."""
        m = self.manifest
        m["shard_windows"] = {n: c for n, c in (m.get("shard_windows") or {}).items() if n in m["shards"]}
        m["windows"], written = excerpts.commit(self.path, m, gen, live, rebuild=plan.rebuild_windows,
                                                newer_than=lambda n: newer_shards(m, n))
        new_files += written
        if m["encoder"].get("rescore") == "csls":
            dim = int(m["encoder"]["dim"])
            m["neighbours"], written = neighbours.commit(
                self.path, m, gen, live, recompute=plan.recompute_neighbours,
                open_index=lambda: open_index(self.path, record, dim, mmap=True, fitted=lambda: frozen_transform(m, self.path)),
                iter_vectors=lambda names, ids: iter_latest(self.path, names, ids),
                newer_shards=lambda n: newer_shards(m, n), atomic_write=atomic_write)
            new_files += written

    def _commit_tracks(self, gen: int, merge: bool) -> list[str]:
        """Write this commit's track table: a part of the rows changed since the last checkpoint and the list
        of removed ids, or (``merge``, or the parts grown past DELTA_FRACTION of the base) one merged table.
        Returns the files written."""
        m = self.manifest
        names = m["tracks"]
        base = names[0] if names and not names[0].endswith(PART) else None
        parts = names[1:] if base else names
        # (an id put back after its removal is no longer removed)
        removed = np.setdiff1d(np.union1d(self._removed_before, np.fromiter(self._removed, dtype=np.int64)),
                               np.fromiter(self._changed, dtype=np.int64))
        base_rows = pq.ParquetFile(self.path / base).metadata.num_rows if base else 0
        part_rows = sum(pq.ParquetFile(self.path / n).metadata.num_rows for n in parts) + len(self._pending_rows)
        if merge or base is None or part_rows + len(removed) > DELTA_FRACTION * base_rows or len(parts) >= 64:
            name = f"tracks.g{gen:06d}.parquet"
            written = self._write_table(name, self._merged(), row_group_size=ROW_GROUP)
            m["tracks"], m["tracks_removed"] = [name], None
            self._keep_maps()
            return written
        written = []
        if self._pending_rows:
            part = f"tracks.g{gen:06d}{PART}"
            written += self._write_table(part, to_table_rows(self._pending_rows))
            m["tracks"] = names + [part]
            self._keep_maps()
        if not np.array_equal(removed, self._removed_before):
            m["tracks_removed"] = None
            if len(removed):
                name = m["tracks_removed"] = f"tracks.g{gen:06d}.removed.npy"
                atomic_write(self.path / name, lambda f: np.save(f, removed))
                written.append(name)
        return written

    def _write_table(self, name: str, table: pa.Table, **options) -> list[str]:
        """Write a track table and the map of its paths beside it (``catalog.paths``); the files written."""
        atomic_write(self.path / name, lambda f: pq.write_table(table, f, **options))
        mname = paths.map_name(name)
        atomic_write(self.path / mname, lambda f: paths.write_map(f, table.column("path")))
        self.manifest.setdefault("path_maps", {})[name] = mname
        return [name, mname]

    def _keep_maps(self) -> None:
        """Path maps of the track tables the manifest lists, and no others."""
        maps = self.manifest.get("path_maps") or {}
        self.manifest["path_maps"] = {n: maps[n] for n in self.manifest["tracks"] if n in maps}

    def _index_change(self, prev: dict, live: np.ndarray) -> "IndexChange | None":
        """What changed since the index ``prev`` describes was built (its ids are read, memory-mapped, not its
        codes); None when it cannot be read (it is then rebuilt from the shards)."""
        try:
            main = read_index(self.path, prev, int(self.manifest["encoder"]["dim"]), mmap=True)
        except StoreError:
            return None
        held = main.ids()
        newer = newer_shards(self.manifest, prev["shards_indexed"])
        shard_ids = np.unique(np.concatenate([read_shard_ids(self.path, n) for n in newer])) if newer else np.zeros(0, np.int64)
        added = shard_ids[np.isin(shard_ids, live)]  # (intersect1d would hash a million live ids: 0.5 s)
        return IndexChange(held, np.sort(no_longer_held(held, live, added)), added, newer, main.width)

    def _delta_record(self, prev: dict, change: "IndexChange", gen: int, new_files: list[str]) -> dict:
        """The index record of a commit that leaves the main index as it is: the vectors written since it was
        built go into a delta index (from the frozen template, so its codes are the ones the main index would
        hold), the ids it holds that no longer count into a hidden list."""
        tinfo = self.manifest["index_template"]
        drop = ("delta", "count", "generation", "bytes")
        record = self._measured_beside(f"tracks.g{gen:06d}.faiss", {k: v for k, v in prev.items() if k not in drop}, new_files)
        total = len(change.held) - len(change.hidden) + len(change.added)
        record.update({"count": int(total), "generation": gen, "updates": int(prev.get("updates", 0)) + 1})
        size = int((self.path / prev["file"]).stat().st_size)
        if len(change.hidden) or len(change.added):
            delta = indexes.load_template((self.path / tinfo["file"]).read_bytes())
            for ids, vecs in iter_latest(self.path, change.newer, change.added):
                delta.add(ids, vecs)
            dname, hname = f"tracks.g{gen:06d}.delta.faiss", f"tracks.g{gen:06d}.hidden.npy"
            atomic_write(self.path / dname, delta.write)
            atomic_write(self.path / hname, lambda f: np.save(f, change.hidden))
            new_files += [dname, hname]
            record["delta"] = {"file": dname, "hidden": hname, "count": int(delta.ntotal),
                               "hidden_count": len(change.hidden)}
            size += (self.path / dname).stat().st_size + (self.path / hname).stat().st_size
        record["bytes"] = size
        return record

    def _updated_index(self, prev: dict, live: np.ndarray) -> TrackIndex | None:
        """The previous index with what changed since it was built: None when it cannot be read."""
        try:
            index = read_index(self.path, prev, int(self.manifest["encoder"]["dim"]), mmap=False)
        except StoreError:
            return None  # a damaged or missing index: rebuilt from the shards instead
        bring_up_to_date(index, self.path, self.manifest, prev["shards_indexed"], live)
        return index

    def _shard_rows(self) -> int:
        """Rows the shards hold, live or dead (counted once a shard and kept in the manifest)."""
        m = self.manifest
        known = m.get("shard_rows") if isinstance(m.get("shard_rows"), dict) else {}
        m["shard_rows"] = {n: known[n] if is_count(known.get(n)) else len(read_shard_ids(self.path, n)) for n in m["shards"]}
        return sum(m["shard_rows"].values())

    def _compact_shards(self, live: np.ndarray) -> list[str]:
        """Rewrite the shards with only the live vectors and their windows (streaming, SHARD_ROWS a shard,
        SHARD_ROWS_WINDOWS when they carry windows)."""
        old = self.manifest["shards"]
        self.manifest["shards"] = []
        written = []
        n, carry = 0, False
        for ids, vecs, windows in iter_latest_rows(self.path, old, live):
            for i in range(len(ids)):
                self._pending_ids.append(ids[i : i + 1])
                self._pending_vecs.append(vecs[i : i + 1])
                self._pending_windows.append(windows[i])
                n, carry = n + 1, carry or windows[i] is not None
                if n >= (SHARD_ROWS_WINDOWS if carry else SHARD_ROWS):
                    written.append(self._write_shard())
                    n, carry = 0, False
        if self._pending_ids:
            written.append(self._write_shard())
        return written

    def _write_shard(self) -> str | None:
        if not self._pending_ids:
            return None
        ids = np.concatenate(self._pending_ids)
        vecs = np.concatenate(self._pending_vecs)
        extra = {}
        kept = [(r, w) for r, w in enumerate(self._pending_windows) if w is not None and len(w)]
        if kept:  # (one pending entry a row: put() and the compaction add rows one at a time)
            extra = {"window_rows": np.concatenate([np.full(len(w), r, np.int32) for r, w in kept]),
                     "windows": np.concatenate([w for _, w in kept]).astype(np.float16)}
        n = int(self.manifest["next_shard"])
        self.manifest["next_shard"] = n + 1
        name = f"vectors/shard-{n:06d}.npz"
        (self.path / "vectors").mkdir(exist_ok=True)
        atomic_write(self.path / name, lambda f: np.savez(f, ids=ids, vectors=vecs, **extra))
        self.manifest["shards"] = self.manifest["shards"] + [name]
        self.manifest.setdefault("shard_rows", {})[name] = len(ids)
        if extra:
            self.manifest.setdefault("shard_windows", {})[name] = len(extra["window_rows"])
        self._pending_ids, self._pending_vecs, self._pending_windows = [], [], []
        return name

    def _publish(self, gen: int, new_files: list[str], statuses: tuple[int, int] | None = None) -> None:
        """Checksum what this generation references and switch to it by replacing the manifest. ``statuses``:
        (tracks, ok) of the generation (default: as the writer stands)."""
        m = self.manifest
        previous = set(m["files"])
        files = {}
        for name in sorted(self._referenced(m)):
            if name in m["files"] and name not in new_files:
                files[name] = m["files"][name]
            else:
                p = self.path / name
                files[name] = {"size": p.stat().st_size, "sha256": sha256(p)}
        tracks, ok = statuses or self._statuses()
        indexed = m.get("index") and m["index"].get("generation") == gen
        m["counts"] = {
            "tracks": tracks,
            "ok": ok,
            "error": tracks - ok,
            "vectors": int(m["index"]["count"]) if indexed else None,
        }
        m["files"] = files
        m["version"] = VERSION  # what this code wrote: an older reader is told to upgrade, not that files are damaged
        m["generation"] = gen
        m["updated"] = time.time()
        text = json.dumps(m, indent=1, sort_keys=True).encode()
        current = self.path / MANIFEST
        # keep the outgoing generation's manifest (its files are kept too); the first commit keeps a copy of itself
        if current.exists():
            old = current.read_bytes()
            atomic_write(self.path / PREVIOUS, lambda f: f.write(old))
            atomic_write(current, lambda f: f.write(text))
        else:
            atomic_write(current, lambda f: f.write(text))
            atomic_write(self.path / PREVIOUS, lambda f: f.write(text))
        self._collect_garbage(keep=set(files) | previous)

    def _referenced(self, m: dict) -> set[str]:
        refs = set(listed(m))
        if m["encoder"].get("model"):
            refs |= {f"encoder/{p.name}" for p in (self.path / "encoder").iterdir() if not p.name.startswith(".")}
        return refs

    def _collect_garbage(self, keep: set[str]) -> None:
        """Delete store files referenced by neither this generation nor the one before it."""
        for p in [*self.path.glob("tracks.g*"), *self.path.glob("transform.g*"), *self.path.glob("template.g*"),
                  *self.path.glob("windows.g*"), *self.path.glob("within.g*"), *self.path.glob(f"{neighbours.PREFIX}*"),
                  *(self.path / "vectors").glob("shard-*.npz")]:
            rel = p.relative_to(self.path).as_posix()
            if rel not in keep:
                with contextlib.suppress(OSError):
                    p.unlink()
        for p in [*self.path.glob(".*.tmp*"), *(self.path / "vectors").glob(".*.tmp*")]:  # a killed writer's
            with contextlib.suppress(OSError):
                p.unlink()


def to_table_rows(rows: list[dict]) -> pa.Table:
    return rows_table(rows)
