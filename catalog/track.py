"""The ``Track`` record and its Parquet schema."""

from __future__ import annotations

import dataclasses

import numpy as np
import pyarrow as pa

STATUS_OK = "ok"
STATUS_ERROR = "error"


@dataclasses.dataclass
class Track:
    """One audio file of a library. ``id`` is stable for the life of the store."""

    id: int
    path: str  # absolute
    size: int
    mtime: float
    duration_s: float | None = None
    title: str | None = None
    artist: str | None = None
    album: str | None = None
    genre: str | None = None  # normalised (see catalog.tags.normalise_genre)
    status: str = STATUS_OK
    error: str | None = None  # one line
    predicted_genre: str | None = None
    predicted_score: float | None = None
    windows: int | None = None  # analysis windows that went into the vector
    predicted_tags: list[str] | None = None  # the encoder's top tags, best first
    predicted_tag_scores: list[float] | None = None
    missing_since: float | None = None  # when a scan could not reach the file (unmounted drive, unreadable folder)


SCHEMA = pa.schema(
    [
        pa.field("id", pa.int64(), nullable=False),
        pa.field("path", pa.string(), nullable=False),
        pa.field("size", pa.int64()),
        pa.field("mtime", pa.float64()),
        pa.field("duration_s", pa.float32()),
        pa.field("title", pa.string()),
        pa.field("artist", pa.string()),
        pa.field("album", pa.string()),
        pa.field("genre", pa.string()),
        pa.field("status", pa.string()),
        pa.field("error", pa.string()),
        pa.field("predicted_genre", pa.string()),
        pa.field("predicted_score", pa.float32()),
        pa.field("windows", pa.int32()),
        pa.field("predicted_tags", pa.list_(pa.string())),
        pa.field("predicted_tag_scores", pa.list_(pa.float32())),
        pa.field("missing_since", pa.float64()),
    ]
)

COLUMNS = [f.name for f in SCHEMA]


def to_table(tracks: list[Track]) -> pa.Table:
    """Tracks as an Arrow table with :data:`SCHEMA`."""
    cols = {name: [getattr(t, name) for t in tracks] for name in COLUMNS}
    return pa.Table.from_pydict(cols, schema=SCHEMA)


def from_row(row: dict) -> Track:
    return Track(**{k: row.get(k) for k in COLUMNS})


# -- Arrow <-> NumPy without pandas ---------------------------------------------------------------------------
# pyarrow's own conversions (``to_numpy``, ``pa.array``, ``pa.scalar``) import pandas when it is installed, half
# a second of a cold query; a searcher only needs integers, masks and one string, built from buffers instead.


def ints_np(column) -> np.ndarray:
    """An integer Arrow column (or array) as int64 NumPy; nulls become -1."""
    arr = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    if not len(arr):
        return np.zeros(0, np.int64)
    width = arr.type.bit_width // 8
    out = np.frombuffer(arr.buffers()[1], dtype=f"<i{width}", count=len(arr), offset=arr.offset * width).astype(np.int64)
    if arr.null_count:
        valid = np.unpackbits(np.frombuffer(arr.buffers()[0], np.uint8), bitorder="little")[arr.offset : arr.offset + len(arr)]
        out[valid == 0] = -1
    return out


def codes_np(column) -> tuple[np.ndarray, list]:
    """A text column as (int64 codes, their values); a null has code -1."""
    arr = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    if not len(arr):
        return np.zeros(0, np.int64), []
    enc = arr.dictionary_encode()
    return ints_np(enc.indices), enc.dictionary.to_pylist()


def ok_mask(column) -> np.ndarray:
    """Which rows of a ``status`` column are indexed tracks (status ok)."""
    codes, names = codes_np(column)
    return codes == (names.index(STATUS_OK) if STATUS_OK in names else -2)


def bool_arrow(mask: np.ndarray) -> pa.Array:
    mask = np.asarray(mask, dtype=bool)
    return pa.Array.from_buffers(pa.bool_(), len(mask), [None, pa.py_buffer(np.packbits(mask, bitorder="little"))])


def index_arrow(rows) -> pa.Array:
    rows = np.ascontiguousarray(rows, dtype=np.int64)
    return pa.Array.from_buffers(pa.int64(), len(rows), [None, pa.py_buffer(rows)])


def string_scalar(text: str) -> pa.Scalar:
    data = text.encode()
    offsets = np.asarray([0, len(data)], dtype=np.int32)
    return pa.Array.from_buffers(pa.string(), 1, [None, pa.py_buffer(offsets), pa.py_buffer(data)])[0]
