"""Reading a store's data files: the Parquet track tables (a base table, the parts written since, the ids
removed since) and the vector shards (ids, raw track vectors, window features), newest row of each id first.

Readers stream: a shard at a time, so memory follows one shard, not the library.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from .layout import PART, REMEDY, StoreError, short
from .track import SCHEMA, bool_arrow, ints_np, ok_mask


def read_track_rows(root: Path, names: list[str], columns: list[str] | None = None,
                     removed: np.ndarray | None = None, dictionary: tuple[str, ...] = (),
                     source=None) -> tuple[pa.Table, np.ndarray | None]:
    """Base table plus parts, concatenated, and which of their rows count (None: all): for an id present more
    than once the last row wins, and ids in ``removed`` are left out. ``columns`` (``id`` is always read)
    limits what is read from disk; ``dictionary``: see :func:`read_parquet`; ``source``: name -> what to
    read (a path, or a file the caller holds open)."""
    schema = SCHEMA if columns is None else pa.schema([SCHEMA.field(c) for c in dict.fromkeys(["id", *columns])])
    tables = []
    for name in names:
        try:
            tables.append(read_parquet(root / name if source is None else source(name), schema, dictionary))
        except Exception as err:
            raise StoreError(f"{root / name}: unreadable track table ({short(err)}){REMEDY}") from None
    if not tables:
        return _read_parquet_empty(schema, dictionary), None
    table = pa.concat_tables(tables) if len(tables) > 1 else tables[0]
    removed = np.zeros(0, np.int64) if removed is None else np.asarray(removed, np.int64)
    if len(tables) == 1 and not len(removed) and not names[0].endswith(PART):
        return table, None
    # newest table first, each row kept unless a newer table (or the removal list) already named its id: one
    # pass over an id bitmap (no sort of a million ids for the few rows a part changes)
    all_ids = [ints_np(t.column("id")) for t in tables]
    top = int(max([removed.max(initial=-1), *(i.max(initial=-1) for i in all_ids)])) + 1
    seen = np.zeros(top, bool)
    seen[removed] = True
    keeps = [None] * len(tables)
    for at in range(len(tables) - 1, -1, -1):
        ids = all_ids[at]
        keep = ~seen[ids]
        if names[at].endswith(PART) and len(ids):  # a part may list an id twice: its last row wins (a base never does)
            _, last_rev = np.unique(ids[::-1], return_index=True)
            last = np.zeros(len(ids), bool)
            last[len(ids) - 1 - last_rev] = True
            keep &= last
        seen[ids] = True
        keeps[at] = keep
    keep = np.concatenate(keeps)
    return table, None if keep.all() else keep


def _read_parquet_empty(schema: pa.Schema, dictionary: tuple[str, ...]) -> pa.Table:
    return pa.schema([pa.field(f.name, pa.dictionary(pa.int32(), f.type)) if f.name in dictionary else f
                      for f in schema]).empty_table()


def read_tracks(root: Path, names: list[str], columns: list[str] | None = None,
                 removed: np.ndarray | None = None) -> pa.Table:
    """The rows that count of :func:`read_track_rows` (one row per track)."""
    table, keep = read_track_rows(root, names, columns, removed)
    return table if keep is None else table.filter(bool_arrow(keep))


def read_removed(root: Path, m: dict) -> np.ndarray:
    """Ids removed since the manifest's base track table was written (int64, sorted)."""
    name = m.get("tracks_removed")
    if not name:
        return np.zeros(0, np.int64)
    try:
        return np.load(root / name).astype(np.int64)
    except Exception as err:
        raise StoreError(f"{root / name}: unreadable removal list ({short(err)}){REMEDY}") from None


def live_ids(table: pa.Table) -> np.ndarray:
    """Ids of the tracks of ``table`` that have a vector (status ok)."""
    return ints_np(table.column("id"))[ok_mask(table.column("status"))]


def read_parquet(p, schema: pa.Schema, dictionary: tuple[str, ...] = ()) -> pa.Table:
    """The ``schema`` columns of one Parquet file (a column an older store lacks comes back as nulls); the text
    columns named in ``dictionary`` stay dictionary-encoded as Parquet stores them (no decoding, and codes
    without the compute module). Read with ``ParquetFile``, not ``read_table``: the datasets layer behind the
    latter imports pandas, half a second of a cold query."""
    if dictionary:
        schema = pa.schema([pa.field(f.name, pa.dictionary(pa.int32(), f.type)) if f.name in dictionary else f
                            for f in schema])
    f = pq.ParquetFile(p, read_dictionary=[c for c in dictionary if c in schema.names] or None)
    have = set(f.schema_arrow.names)
    table = f.read(columns=[c for c in schema.names if c in have])
    cols = [table.column(c) if c in have else pa.nulls(len(table), schema.field(c).type) for c in schema.names]
    return pa.Table.from_arrays(cols, schema=schema) if have >= set(schema.names) else pa.table(
        {c: col for c, col in zip(schema.names, cols)}).cast(schema)


def read_shards(root: Path, names: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """All shard rows, later shards last: (ids int64[n], vectors float32[n, d])."""
    ids, vecs = [], []
    for name in names:
        try:
            with np.load(root / name) as z:
                ids.append(z["ids"].astype(np.int64))
                vecs.append(z["vectors"].astype(np.float32))
        except Exception as err:
            raise StoreError(f"{root / name}: unreadable vector shard ({short(err)}){REMEDY}") from None
    if not ids:
        return np.zeros(0, np.int64), np.zeros((0, 0), np.float32)
    return np.concatenate(ids), np.concatenate(vecs)


def shard_number(name: str) -> int:
    """``vectors/shard-000012.npz`` -> 12 (-1 for a name of another shape)."""
    stem = name.rsplit("/", 1)[-1]
    digits = stem[len("shard-"):-len(".npz")] if stem.startswith("shard-") and stem.endswith(".npz") else ""
    return int(digits) if digits.isdigit() else -1


def read_shard_ids(root: Path, name: str) -> np.ndarray:
    """Only the ids of a shard (8 bytes a row: cheap to count dead rows without reading any vector)."""
    try:
        with np.load(root / name) as z:
            return z["ids"]
    except Exception as err:
        raise StoreError(f"{root / name}: unreadable vector shard ({short(err)}){REMEDY}") from None


def latest_vectors(ids: np.ndarray, vecs: np.ndarray, live: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The last vector written for every id in ``live`` (ids without a vector are left out), sorted by id."""
    if len(ids) == 0:
        return np.zeros(0, np.int64), vecs
    uniq, last_rev = np.unique(ids[::-1], return_index=True)
    rows = len(ids) - 1 - last_rev
    keep = np.isin(uniq, live)
    return uniq[keep], vecs[rows[keep]]


def wanted_bitmap(live: np.ndarray) -> np.ndarray:
    """A bitmap over ids, True for the ids in ``live``."""
    live = np.asarray(live, np.int64)
    wanted = np.zeros(int(live.max()) + 1 if len(live) else 0, bool)
    wanted[live] = True
    return wanted


def latest_in_shard(ids: np.ndarray, wanted: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The ids of one shard still ``wanted`` (a bitmap over ids), and the row of each one's last occurrence
    in the shard; they are no longer wanted afterwards (the shards are read newest first)."""
    uniq, last_rev = np.unique(ids[::-1], return_index=True)
    pos = len(ids) - 1 - last_rev
    ok = uniq < len(wanted)
    ok[ok] = wanted[uniq[ok]]
    uniq, pos = uniq[ok], pos[ok]
    wanted[uniq] = False
    return uniq, pos


def iter_latest(root: Path, names: list[str], live: np.ndarray, rows: int = 8192):
    """Stream the last vector written for every id in ``live``, as ``(ids, float32[n, d])`` batches of at
    most ``rows`` (newest shard first; each live id with a vector exactly once). Memory: one shard."""
    wanted = wanted_bitmap(live)
    for name in reversed(names):
        ids, vecs = read_shards(root, [name])
        if not len(ids):
            continue
        uniq, pos = latest_in_shard(ids, wanted)
        if not len(uniq):
            continue
        for at in range(0, len(uniq), rows):
            yield uniq[at : at + rows], np.ascontiguousarray(vecs[pos[at : at + rows]], dtype=np.float32)


def iter_latest_rows(root: Path, names: list[str], live: np.ndarray):
    """Like :func:`iter_latest`, a shard at a time, with each row's window features (None: none kept):
    ``(ids, vectors, [float16[m, d] or None, ...])``."""
    wanted = wanted_bitmap(live)
    for name in reversed(names):
        try:
            with np.load(root / name) as z:
                uniq, pos = latest_in_shard(z["ids"].astype(np.int64), wanted)
                if not len(uniq):
                    continue
                vecs = z["vectors"][pos].astype(np.float32)
                windows = [None] * len(pos)
                if "windows" in z.files:
                    wrows, wins = z["window_rows"], z["windows"]
                    starts = np.searchsorted(wrows, pos, "left")
                    ends = np.searchsorted(wrows, pos, "right")
                    windows = [wins[a:b] if b > a else None for a, b in zip(starts, ends)]
        except Exception as err:
            raise StoreError(f"{root / name}: unreadable vector shard ({short(err)}){REMEDY}") from None
        yield uniq, vecs, windows


def count_latest(root: Path, names: list[str], live: np.ndarray) -> int:
    """How many ids of ``live`` have a vector in the shards (reads only the ids)."""
    have = np.unique(np.concatenate([read_shard_ids(root, n) for n in names])) if names else np.zeros(0, np.int64)
    return int(np.isin(np.asarray(live, np.int64), have).sum())
