"""Finding a track by its path without reading every path: a path map beside each track table.

A query by path (``soundalike search song.flac``, MPD radio, a player asking by file) needs the track of one
path. Reading the path column of a million tracks takes a cold process 0.7 s; instead, every track table the
store writes gets a map beside it, ``<table>.paths.npy``: the 64-bit hash of each row's path and the row,
sorted by hash. A lookup hashes the path, binary-searches each table's map (memory-mapped: a few pages are
read) and checks the rows it names against the table's own path, so a collision or a stale row costs one
more look, never a wrong answer.

The hash is a polynomial over the path's UTF-8 bytes modulo 2^64, computed over Arrow's buffers with NumPy
(a million paths in about a second, in blocks of bounded memory), and stable across processes and machines.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa

SUFFIX = ".paths.npy"
DTYPE = np.dtype([("hash", "<u8"), ("row", "<u4")])
_P = np.uint64(0x100000001B3)  # the FNV prime, as the polynomial's base
_MIX = np.uint64(0x9E3779B97F4A7C15)
_BLOCK = 1 << 16  # strings hashed at once


def _powers(n: int) -> np.ndarray:
    out = np.empty(max(n, 1), np.uint64)
    out[0] = 1
    with np.errstate(over="ignore"):
        for i in range(1, len(out)):  # (the longest path's length: a few hundred steps)
            out[i] = out[i - 1] * _P
    return out


def _buffers(column) -> tuple[np.ndarray, np.ndarray]:
    """(offsets int64[n + 1], UTF-8 bytes) of an Arrow string column or a list of str, read from the buffers
    as they are: no Arrow compute kernel (its module takes a cold process a quarter of a second to import)."""
    if not isinstance(column, (pa.Array, pa.ChunkedArray)):
        encoded = [s.encode("utf-8", "surrogatepass") for s in column]
        lengths = np.fromiter((len(b) for b in encoded), np.int64, len(encoded))
        return np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64), np.frombuffer(b"".join(encoded), np.uint8)
    chunks = column.chunks if isinstance(column, pa.ChunkedArray) else [column]
    offsets, data, at = [np.zeros(1, np.int64)], [], 0
    for c in chunks:
        width = 8 if pa.types.is_large_string(c.type) else 4
        off = np.frombuffer(c.buffers()[1], dtype=np.int64 if width == 8 else np.int32, count=len(c) + 1,
                            offset=c.offset * width).astype(np.int64)
        raw = c.buffers()[2]
        data.append(np.frombuffer(raw, np.uint8)[off[0]:off[-1]] if raw is not None else np.zeros(0, np.uint8))
        if c.null_count:  # a null counts as "" (its offsets may span bytes of nothing)
            valid = np.asarray(c.is_valid())
            lengths = np.where(valid, np.diff(off), 0)
            keep = np.repeat(valid, np.diff(off))
            data[-1] = data[-1][keep]
            off = np.concatenate([[off[0]], off[0] + np.cumsum(lengths)])
        offsets.append(off[1:] - off[0] + at)
        at += int(off[-1] - off[0])
    return np.concatenate(offsets), (np.concatenate(data) if data else np.zeros(0, np.uint8))


def hashes(column) -> np.ndarray:
    """The hash of each string of an Arrow string column (or list of str), uint64; a null hashes as ""."""
    offsets, data = _buffers(column)
    n = len(offsets) - 1
    lengths = np.diff(offsets)
    powers = _powers(int(lengths.max(initial=0)))
    out = np.zeros(n, np.uint64)
    with np.errstate(over="ignore"):
        for a in range(0, n, _BLOCK):
            b = min(n, a + _BLOCK)
            lo, hi = int(offsets[a]), int(offsets[b])
            if hi == lo:
                continue
            starts = offsets[a:b] - lo
            position = np.arange(hi - lo, dtype=np.int64) - np.repeat(starts, lengths[a:b])
            terms = data[lo:hi].astype(np.uint64) * powers[position]
            nonempty = lengths[a:b] > 0
            sums = np.zeros(b - a, np.uint64)
            sums[nonempty] = np.add.reduceat(terms, starts[nonempty])
            out[a:b] = sums
        out ^= lengths.astype(np.uint64) * _MIX
    return out


def write_map(f, paths) -> None:
    """Write the map of a table's ``paths`` (an Arrow column, in row order) to the open file ``f``."""
    table = np.empty(len(paths), DTYPE)
    table["hash"] = hashes(paths)
    table["row"] = np.arange(len(paths), dtype=np.uint32)
    table.sort(order=["hash", "row"])
    np.save(f, table)


def map_name(table_name: str) -> str:
    return table_name.rsplit(".parquet", 1)[0] + SUFFIX


def open_map(map_path: Path) -> np.ndarray:
    """A table's path map, memory-mapped."""
    table = np.load(map_path, mmap_mode="r")
    if table.dtype != DTYPE or table.ndim != 1:
        raise ValueError(f"{map_path}: not a path map")
    return table


def rows_in(table: np.ndarray, path: str) -> np.ndarray:
    """Rows of a table that may hold ``path`` (its hash matches, in its path map ``table``), in row order."""
    h = hashes([path])[0]
    keys = table["hash"]
    lo, hi = np.searchsorted(keys, h, side="left"), np.searchsorted(keys, h, side="right")
    return np.sort(np.asarray(table["row"][lo:hi], np.int64))
