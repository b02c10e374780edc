"""The ``Track`` record and its Parquet schema."""

from __future__ import annotations

import dataclasses

import numpy as np
import pyarrow as pa

STATUS_OK = "ok"
STATUS_ERROR = "error"


REQUIRED = dataclasses.MISSING


@dataclasses.dataclass(frozen=True)
class Field:
    """One column of the track table, declared once: :class:`Track`, :data:`SCHEMA`, the search results'
    columns (``search.searcher.Hit``) and what an index run reads to plan are all made from :data:`FIELDS`."""

    name: str
    arrow: pa.DataType
    py: object  # the Python type of the Track attribute
    default: object = None  # REQUIRED: a Track must be given it
    hit: bool = False  # shown with every search result
    plan: bool = True  # read when an index run plans its work (not the per-label arrays)
    doc: str = ""


FIELDS = (
    Field("id", pa.int64(), int, REQUIRED, hit=True, doc="stable for the life of the store"),
    Field("path", pa.string(), str, REQUIRED, hit=True, doc="absolute"),
    Field("size", pa.int64(), int, REQUIRED),
    Field("mtime", pa.float64(), float, REQUIRED),
    Field("duration_s", pa.float32(), "float | None", hit=True),
    Field("title", pa.string(), "str | None", hit=True),
    Field("artist", pa.string(), "str | None", hit=True),
    Field("album", pa.string(), "str | None", hit=True),
    Field("genre", pa.string(), "str | None", hit=True, doc="normalised (see catalog.tags.normalise_genre)"),
    Field("status", pa.string(), str, STATUS_OK),
    Field("error", pa.string(), "str | None", doc="one line"),
    Field("predicted_genre", pa.string(), "str | None", hit=True),
    Field("predicted_score", pa.float32(), "float | None"),
    Field("windows", pa.int32(), "int | None", doc="analysis windows that went into the vector"),
    Field("predicted_tags", pa.list_(pa.string()), "list[str] | None", doc="the encoder's top tags, best first"),
    Field("predicted_tag_scores", pa.list_(pa.float32()), "list[float] | None"),
    Field("missing_since", pa.float64(), "float | None", hit=True,
          doc="when a scan could not reach the file (unmounted drive, unreadable folder)"),
    Field("content_hash", pa.string(), "str | None", doc="catalog.scan.content_hash: a moved file is known by it"),
    Field("tag_scores", pa.list_(pa.float16()), "list[float] | None", plan=False,
          doc="the encoder's mean score of each of its labels (the store's order)"),
    Field("bpm", pa.float32(), "float | None", hit=True, doc="estimated tempo (model.keytempo)"),
    Field("key", pa.string(), "str | None", hit=True, doc='estimated key, e.g. "A minor"'),
    Field("key_strength", pa.float32(), "float | None",
          doc="how clearly: the key profile's margin over the non-neighbouring keys"),
)


def make_record(name: str, doc: str, fields, module: str = __name__, methods: dict | None = None) -> type:
    """A dataclass named ``name`` of ``module`` from ``(name, type, default)`` triples (REQUIRED: no default; a
    list default is a new list for each record)."""
    def spec(n, t, d):
        if d is REQUIRED:
            return n, t
        return n, t, dataclasses.field(default_factory=list) if d == [] else dataclasses.field(default=d)

    cls = dataclasses.make_dataclass(name, [spec(*f) for f in fields], namespace={"__doc__": doc, **(methods or {})})
    cls.__module__ = module  # picklable, and named where it is declared
    return cls


Track = make_record("Track", "One audio file of a library (its fields: :data:`FIELDS`). ``id`` is stable for the life "
                   "of the store.", [(f.name, f.py, f.default) for f in FIELDS])

SCHEMA = pa.schema([pa.field(f.name, f.arrow, nullable=f.name not in ("id", "path")) for f in FIELDS])
#: the columns read when an index run plans its work
PLAN_COLUMNS = [f.name for f in FIELDS if f.plan]
#: the columns every search result shows
HIT_FIELDS = [f.name for f in FIELDS if f.hit]

COLUMNS = [f.name for f in SCHEMA]


def to_table(tracks: list[Track]) -> pa.Table:
    """Tracks as an Arrow table with :data:`SCHEMA`."""
    return rows_table([{name: getattr(t, name) for name in COLUMNS} for t in tracks])


def rows_table(rows: list[dict]) -> pa.Table:
    """Track rows (dicts of :data:`COLUMNS`) as an Arrow table with :data:`SCHEMA`, built without pandas."""
    return pa.Table.from_arrays([arrow_array([r.get(f.name) for r in rows], f.type) for f in SCHEMA], schema=SCHEMA)


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


def _chunks(column) -> list:
    return list(column.chunks) if isinstance(column, pa.ChunkedArray) else [column]


def codes_np(column) -> tuple[np.ndarray, list]:
    """A text column as (int64 codes, their values); a null has code -1. A dictionary-encoded column (as
    Parquet keeps low-cardinality text; see ``read_dictionary``) is read from its indices, without the compute
    module (a tenth of a second to import)."""
    chunks = _chunks(column)
    if not sum(len(c) for c in chunks):
        return np.zeros(0, np.int64), []
    if not all(pa.types.is_dictionary(c.type) for c in chunks):
        arr = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
        enc = arr.dictionary_encode()
        return ints_np(enc.indices), enc.dictionary.to_pylist()
    values: dict = {}
    out = []
    for c in chunks:
        # each chunk (Parquet row group) has a dictionary of its own: mapped onto one list of values
        local = np.asarray([values.setdefault(v, len(values)) for v in c.dictionary.to_pylist()] + [-1], np.int64)
        out.append(local[ints_np(c.indices)])  # a null index is -1: the appended -1
    return np.concatenate(out), list(values)


def equals_np(column, text: str) -> np.ndarray:
    """Which rows of a text column equal ``text`` (nulls never), from the buffers."""
    target = text.encode()
    out = []
    for c in _chunks(column):
        if pa.types.is_dictionary(c.type):
            names = c.dictionary.to_pylist()
            out.append(ints_np(c.indices) == (names.index(text) if text in names else -2))
            continue
        validity, offs, data = c.buffers()
        wide = pa.types.is_large_string(c.type)
        offsets = np.frombuffer(offs, np.int64 if wide else np.int32, count=len(c) + 1, offset=c.offset * (8 if wide else 4))
        raw = np.frombuffer(data, np.uint8) if data is not None else np.zeros(0, np.uint8)
        rows = np.flatnonzero(np.diff(offsets) == len(target))
        for j, byte in enumerate(target):
            rows = rows[raw[offsets[rows] + j] == byte]
        m = np.zeros(len(c), bool)
        m[rows] = True
        if c.null_count:
            m &= np.unpackbits(np.frombuffer(validity, np.uint8), bitorder="little")[c.offset : c.offset + len(c)].astype(bool)
        out.append(m)
    return np.concatenate(out) if out else np.zeros(0, bool)


def ok_mask(column) -> np.ndarray:
    """Which rows of a ``status`` column are indexed tracks (status ok)."""
    return equals_np(column, STATUS_OK)


_NUMPY = {pa.int32(): np.int32, pa.int64(): np.int64, pa.float16(): np.float16, pa.float32(): np.float32,
          pa.float64(): np.float64}


def arrow_array(values: list, type: pa.DataType) -> pa.Array:
    """A list of Python values (None: null) as an Arrow array of ``type`` (an integer, a float, a string, or a
    list of those), built from buffers: ``pa.array`` imports pandas, most of a small commit's time."""
    n = len(values)
    valid = np.fromiter((v is not None for v in values), dtype=bool, count=n)
    nulls = n - int(valid.sum())
    bitmap = pa.py_buffer(np.packbits(valid, bitorder="little")) if nulls else None
    if type in _NUMPY:
        data = np.fromiter((0 if v is None else v for v in values), dtype=_NUMPY[type], count=n)
        return pa.Array.from_buffers(type, n, [bitmap, pa.py_buffer(data)], null_count=nulls)
    if type == pa.string():
        encoded = [b"" if v is None else str(v).encode() for v in values]
        offsets = np.zeros(n + 1, np.int32)
        np.cumsum([len(e) for e in encoded], out=offsets[1:])
        return pa.Array.from_buffers(type, n, [bitmap, pa.py_buffer(offsets), pa.py_buffer(b"".join(encoded))],
                                     null_count=nulls)
    if pa.types.is_list(type):
        items = [list(v) if v is not None else [] for v in values]
        offsets = np.zeros(n + 1, np.int32)
        np.cumsum([len(i) for i in items], out=offsets[1:])
        child = arrow_array([x for i in items for x in i], type.value_type)
        return pa.Array.from_buffers(type, n, [bitmap, pa.py_buffer(offsets)], null_count=nulls, children=[child])
    raise TypeError(f"no buffer conversion for {type}")


def floats_np(column) -> np.ndarray:
    """A float column as float64 NumPy; nulls become NaN."""
    out = []
    for c in _chunks(column):
        if c.null_count == len(c) or c.buffers()[1] is None:  # (all null: an older store lacks the column)
            out.append(np.full(len(c), np.nan))
            continue
        dtype = _NUMPY[c.type]
        m = np.frombuffer(c.buffers()[1], dtype, count=len(c) + c.offset)[c.offset :].astype(np.float64) if len(c) else np.zeros(0)
        if c.null_count:
            valid = np.unpackbits(np.frombuffer(c.buffers()[0], np.uint8), bitorder="little")[c.offset : c.offset + len(c)]
            m[valid == 0] = np.nan
        out.append(m)
    return np.concatenate(out) if out else np.zeros(0)


def vectors_np(column, width: int) -> np.ndarray:
    """A column of float lists as a float32 matrix ``[rows, width]``; a null, or a list of another length, is
    a row of NaN."""
    out = []
    for c in _chunks(column):
        offs = np.frombuffer(c.buffers()[1], np.int32, count=len(c) + 1, offset=c.offset * 4)
        child = c.values
        dtype = _NUMPY[child.type]
        values = np.frombuffer(child.buffers()[1], dtype, count=len(child) + child.offset)
        m = np.full((len(c), width), np.nan, np.float32)
        full = np.diff(offs) == width
        if c.null_count:
            full &= np.unpackbits(np.frombuffer(c.buffers()[0], np.uint8), bitorder="little")[c.offset : c.offset + len(c)].astype(bool)
        m[full] = values[child.offset + offs[:-1][full, None] + np.arange(width)]
        out.append(m)
    return np.concatenate(out) if out else np.zeros((0, width), np.float32)


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
