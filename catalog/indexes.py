"""The track index: which FAISS index holds a library's vectors, how it is built from the shards, kept up to
date, measured and searched. The store (``catalog.store``) owns the files and the commits; this module owns
the index policy.

What the index file holds is one ``IndexPreTransform``, so the library transform travels inside it and a
reader can never pair an index with another library's statistics:

    CenteringTransform(library mean)           raw vector minus the mean (a NaN is imputed with the mean first)
    LinearTransform(d -> d')                   diag(1/std), times the top d' principal axes when fitted on
                                               enough tracks (PCA_MIN_FIT) and a fixed random rotation of
                                               them: the standardisation and the PCA in one matrix (a
                                               unit-normalisation between them would not change any direction
                                               after the last one; the rotation spreads the variance evenly
                                               over the dimensions the 8-bit codes quantise)
    NormalizationTransform                     unit length: inner product = cosine
    IndexIDMap2(IndexScalarQuantizer 8 bit)    kind "flat": an exact scan of 1-byte codes
 or IndexIVFScalarQuantizer 8 bit             kind "ivf": inverted lists, nprobe measured at build time (one
                                               for plain queries, one for a 10% filter)

Encoders without a library transform (the seed CNN, trained heads) keep only the normalisation.

Measured on the dev corpus (248 tracks, 13 soundtracks, group precision@10 with a paired bootstrap over
queries; docs/internals.md): 8-bit codes of the full standardised vector lose nothing, and a PCA to 256
dimensions loses at most 0.002 when fitted on the library itself; fitted on a few dozen tracks the PCA costs
mAP, so smaller libraries keep every dimension. Random projections lost 0.01-0.04 and were dropped.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Callable, Iterable, Iterator

import numpy as np

from ..chatter import silenced
from ..errors import SoundalikeError
from . import sketch as sketches

#: the PCA keeps the fewest of these that hold PCA_KEEP of the variance (the most if none): the share is measured on
#: the library. The dev corpus's spectrum is held by 256 (256 and 512 measured the same precision there); a
#: flatter one asks for more (music-like vectors with 10% of their variance as an isotropic floor, 100k tracks:
#: recall@10 against exact search over the full vectors, in float, 0.85 at 512 dimensions, 0.92 at 1024)
PCA_WIDTHS = (256, 384, 512, 768, 1024)
PCA_KEEP = 0.99
PCA_MIN_FIT = 2000  # fitted on fewer tracks, the transform keeps every dimension (the PCA would be rank-poor)
SQ8_MIN_FIT = 1000  # 8-bit codes need each dimension's range learnt from this many tracks; below, float16
FIT_SAMPLE = 100_000  # tracks the PCA and the quantisers are fitted on at most (the mean/std see every track)
SAMPLE_BYTES = 1 << 30  # a fit sample larger than this in float32 is kept in float16
FLAT_MAX = 200_000  # "auto": an exact scan of the codes up to this many tracks, inverted lists past it
RECALL_QUERIES = 200  # tracks whose exact neighbours are computed at build time to measure recall@10
RECALL_K = 10
RECALL_TARGET = 0.95  # the inverted lists' nprobe is the smallest reaching this recall@10 (see measure_index)
RECALL_Z = 1.645  # ... as the lower one-sided 95% bound over the queries, so that other queries reach it too
KINDS = ("auto", "flat", "ivf", "ivfpq")
PQ_BYTES = (128, 64, 32, 16, 8)  # product-quantiser code sizes tried (largest first) to fit a memory budget
ID_BYTES = 16  # an id in the index and its hash-table entry, about
ADD_BATCH = 8192
SKETCH_QUERIES = 64  # a search of more queries at once scans the 8-bit codes list by list (see search)
SPILL_BYTES = 256 << 20  # a build given a lists file holds at most this much of codes before writing them out


class IndexBuildError(SoundalikeError):
    """An index that cannot be built as asked (a kind or memory budget that cannot hold the library)."""


# ------------------------------------------------------------------------------------------------ policy


@dataclasses.dataclass(frozen=True)
class Policy:
    """What the user asked for: an index kind and a memory budget for it (bytes, None: no limit)."""

    kind: str = "auto"
    memory: int | None = None

    def __post_init__(self):
        if self.kind not in KINDS:
            raise IndexBuildError(f"unknown index kind {self.kind!r} (one of {', '.join(KINDS)})")

    def to_dict(self) -> dict:
        return {"kind": self.kind, "memory": self.memory}

    @classmethod
    def from_dict(cls, d: "dict | Policy | None") -> "Policy":
        if isinstance(d, Policy):
            return d
        d = d or {}
        return cls(kind=d.get("kind", "auto"), memory=d.get("memory"))

    def choose(self, n: int, width: int) -> str:
        """The index kind for ``n`` tracks of ``width`` dimensions: an exact scan up to FLAT_MAX tracks,
        inverted lists past it; product-quantised codes when 8-bit codes would not fit the memory budget."""
        if self.kind != "auto":
            return self.kind
        if self.memory is not None and n * (width + ID_BYTES) > self.memory:
            return "ivfpq"
        return "ivf" if n > FLAT_MAX else "flat"

    def pq_bytes(self, n: int, width: int) -> int:
        """Bytes a product-quantised code gets: the largest that fits the budget (and divides ``width``)."""
        fits = [m for m in PQ_BYTES if width % m == 0 and (self.memory is None or n * (m + ID_BYTES) <= self.memory)]
        if not fits:
            need = n * (min(m for m in PQ_BYTES if width % m == 0) + ID_BYTES)
            raise IndexBuildError(f"an index of {n} tracks needs at least {need / 1e6:.0f} MB; the memory budget is "
                                  f"{(self.memory or 0) / 1e6:.0f} MB")
        return fits[0]


def parse_memory(text: str | None) -> int | None:
    """``"4G"``, ``"512M"``, ``"800k"`` or a number of bytes."""
    if text in (None, "", "none"):
        return None
    t = str(text).strip().upper().rstrip("B")
    mult = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}.get(t[-1:], 1)
    num = t[:-1] if t[-1:] in "KMGT" else t
    try:
        value = float(num) * mult
    except ValueError:
        raise IndexBuildError(f"--memory {text!r}: expected a size such as 2G, 512M or 800000") from None
    if value <= 0:
        raise IndexBuildError(f"--memory {text!r}: must be more than 0")
    return int(value)


def _pow2_floor(n: int) -> int:
    return 1 << max(0, int(n).bit_length() - 1) if n >= 1 else 1


def nlist_for(n: int) -> int:
    """Inverted lists for ``n`` vectors: about 2 sqrt(n), a power of two (1024 at 250k, 2048 at 1M)."""
    return int(2 ** np.clip(np.round(np.log2(2 * np.sqrt(max(n, 1)))), 4, 16))


# ------------------------------------------------------------------------------------------------ transform


@dataclasses.dataclass
class Fitted:
    """The library transform: mean and std of the raw vectors, and the principal axes (columns) of the
    standardised unit vectors, or None (every dimension kept). ``mean is None``: no library transform."""

    mean: np.ndarray | None
    std: np.ndarray | None
    basis: np.ndarray | None
    fitted_on: int
    kept: float | None = None  # the share of the standardised variance the PCA keeps (measured when fitted)

    @property
    def width(self) -> int | None:
        if self.basis is not None:
            return int(self.basis.shape[1])
        return None if self.mean is None else int(len(self.mean))


class Moments:
    """Streaming NaN-aware mean and variance per dimension (float64 sums)."""

    def __init__(self, dim: int):
        self.n = np.zeros(dim, np.float64)
        self.s = np.zeros(dim, np.float64)
        self.ss = np.zeros(dim, np.float64)

    def add(self, x: np.ndarray) -> None:
        ok = ~np.isnan(x)
        x0 = np.where(ok, x, 0).astype(np.float64)
        self.n += ok.sum(axis=0)
        self.s += x0.sum(axis=0)
        self.ss += np.einsum("ij,ij->j", x0, x0)

    def result(self) -> tuple[np.ndarray, np.ndarray]:
        n = np.maximum(self.n, 1)
        mean = self.s / n
        var = np.maximum(self.ss / n - mean**2, 0)
        std = np.sqrt(var)
        std[self.n == 0] = 1.0  # a column never measured: mean 0, std 1
        return mean.astype(np.float32), np.where(std < 1e-6, 1.0, std).astype(np.float32)


def standardize(x: np.ndarray, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    """Standardised unit rows; an unmeasured (NaN) value becomes the mean (it adds nothing to a similarity)."""
    z = np.nan_to_num((np.asarray(x, np.float32) - mean) / std, nan=0.0)
    return z / np.maximum(np.linalg.norm(z, axis=1, keepdims=True), 1e-12)


def unit(x: np.ndarray) -> np.ndarray:
    x = np.nan_to_num(np.asarray(x, np.float32), nan=0.0)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def principal_axes(y: np.ndarray, k: int, chunk: int = 8192, prep=None) -> tuple[np.ndarray, np.ndarray]:
    """The top ``k`` principal axes (columns, float32[d, k]) of the rows of ``y`` (or of ``prep(rows)``) and
    the share of the variance along each; the covariance is accumulated over chunks of rows: no full-size copy
    of ``y``."""
    d = y.shape[1]
    gram = np.zeros((d, d), np.float64)
    total = np.zeros(d, np.float64)
    for at in range(0, len(y), chunk):
        part = np.asarray(y[at : at + chunk] if prep is None else prep(y[at : at + chunk]), np.float32)
        gram += (part.T @ part).astype(np.float64)
        total += part.sum(axis=0, dtype=np.float64)
    mean = total / max(len(y), 1)
    cov = gram - len(y) * np.outer(mean, mean)
    basis = top_eigenvectors(cov, k)
    return basis, np.einsum("ij,ij->j", basis, cov @ basis) / max(np.trace(cov), 1e-30)


def top_eigenvectors(c: np.ndarray, k: int, iters: int = 6, seed: int = 0) -> np.ndarray:
    """The ``k`` leading eigenvectors (columns) of the symmetric ``c``, by subspace iteration with 64 extra
    directions (a full ``eigh`` of 1906 x 1906 took 9-13 s here, this about 2; it keeps all but 2e-5 of
    the variance the exact top ``k`` keep, on a spectrum like the dev corpus's)."""
    d = c.shape[0]
    p = min(d, k + 64)
    if p >= d // 2:
        w, v = np.linalg.eigh(c)
        return np.ascontiguousarray(v[:, np.argsort(w)[::-1][:k]], dtype=np.float32)
    c32 = c.astype(np.float32)
    q = np.linalg.qr(np.random.default_rng(seed).standard_normal((d, p)).astype(np.float32))[0]
    for _ in range(iters):
        q = np.linalg.qr(c32 @ q)[0]
    q = q.astype(np.float64)
    w, v = np.linalg.eigh(q.T @ c @ q)
    return np.ascontiguousarray(q @ v[:, np.argsort(w)[::-1][:k]], dtype=np.float32)


def fit(kind: str | None, moments: Moments | None, sample: np.ndarray, fitted_on: int,
        widths: tuple[int, ...] = PCA_WIDTHS) -> Fitted:
    """The library transform from the streamed moments and a random sample of raw vectors; the PCA keeps the
    fewest of ``widths`` dimensions that hold PCA_KEEP of the variance (the most if none do)."""
    if kind in (None, "none"):
        return Fitted(None, None, None, fitted_on)
    if kind not in ("standardize", "whiten"):  # "whiten": standardised here, whitened by catalog.within
        raise IndexBuildError(f"unknown library transform {kind!r}")
    mean, std = moments.result()
    basis = None
    widths = [w for w in widths if w < sample.shape[1]]
    if fitted_on >= PCA_MIN_FIT and widths:
        axes, share = principal_axes(sample, max(widths), prep=lambda rows: standardize(rows, mean, std))
        kept = np.cumsum(share)
        width = next((w for w in widths if kept[w - 1] >= PCA_KEEP), max(widths))
        # then a fixed random rotation: the principal axes hold very unequal shares of the variance, and 8-bit
        # codes of a few dominant dimensions lost neighbours (music-like vectors, 100k: recall@10 of PCA-512
        # SQ8 0.956, rotated 0.990, PCA-512 in float 0.995). A rotation changes no inner product, only what
        # the quantiser sees.
        basis = np.ascontiguousarray(axes[:, :width] @ rotation(width), dtype=np.float32)
        return Fitted(mean, std, basis, fitted_on, round(float(kept[width - 1]), 4))
    return Fitted(mean, std, basis, fitted_on)


def rotation(k: int, seed: int = 0) -> np.ndarray:
    """A fixed random orthogonal matrix [k, k] (the same for a given ``k`` and ``seed``)."""
    q, r = np.linalg.qr(np.random.default_rng(seed).standard_normal((k, k)))
    return q * np.sign(np.diag(r))[None, :]


def _downcast(index):
    import faiss

    return faiss.downcast_index(index)


def _to_vector(values: np.ndarray, vec) -> None:
    import faiss

    faiss.copy_array_to_vector(np.ascontiguousarray(values, dtype=np.float32).ravel(), vec)


def _chain(fitted: Fitted, dim: int) -> list:
    import faiss

    if fitted.mean is None:
        return [faiss.NormalizationTransform(dim, 2.0)]
    centre = faiss.CenteringTransform(dim)
    _to_vector(fitted.mean, centre.mean)
    centre.is_trained = True
    scale = (1.0 / fitted.std).astype(np.float32)
    a = np.diag(scale) if fitted.basis is None else fitted.basis.T * scale[None, :]  # [d', d]
    lt = faiss.LinearTransform(dim, a.shape[0], False)
    _to_vector(a, lt.A)
    lt.is_trained = True
    return [centre, lt, faiss.NormalizationTransform(a.shape[0], 2.0)]


# ------------------------------------------------------------------------------------------------ the index


def id_positions(ivf) -> tuple[np.ndarray, np.ndarray]:
    """(list, offset) of every id the inverted lists of ``ivf`` hold, as dense arrays indexed by id (-1: none)."""
    import faiss

    inv = ivf.invlists
    parts = [(lst, faiss.rev_swig_ptr(inv.get_ids(lst), inv.list_size(lst)).astype(np.int64))
             for lst in range(ivf.nlist) if inv.list_size(lst)]
    top = max((int(ids.max()) for _, ids in parts), default=-1) + 1
    lists, offsets = np.full(top, -1, np.int32), np.zeros(top, np.int32)
    for lst, ids in parts:
        lists[ids] = lst
        offsets[ids] = np.arange(len(ids), dtype=np.int32)
    return lists, offsets


class TrackIndex:
    """A loaded track index: raw vectors in, ids and cosine scores out.

    ``embed(raw)`` maps raw track vectors into the index's space (unit vectors of width ``width``); search and
    ``reconstruct`` work in that space. Wraps both the compact format and the first format (an ``IDMap2,Flat``
    of standardised unit vectors with the standardisation in a separate file)."""

    def __init__(self, index, transforms: list | None = None, legacy=None, owner=None):
        self.index = index  # what is written to disk
        self._owner = owner  # the Python object that owns the C++ index (a downcast view does not)
        self._transforms = transforms
        self._legacy = legacy  # the first format's Transform (mean/std), or None
        self._where = None  # inverted lists without an id map: (list, offset) by id, built on the second lookup
        self._runs = None  # the bounds of the runs of lists searched together (see _search_by_runs)
        self._lookups = 0
        self._sketch = None  # a serving process's fast-scan sketch of the lists (catalog.sketch), once made
        self._sketching = None  # the thread making it (a change to the index waits for it)
        self.use_sketch = True  # (the benchmarks turn it off to time the 8-bit codes alone)
        self.source = None  # the file read, memory-mapped, as (path, device, inode, mtime, size): see adopt_sketch
        # what is searched: the sub-index in the transform's output space (the first format's whole index)
        self.search_index = index if transforms is None else _downcast(index.index)

    # -- loading -------------------------------------------------------------------------------------------
    @classmethod
    def wrap(cls, index) -> "TrackIndex":
        import faiss

        owner, index = index, faiss.downcast_index(index)
        if isinstance(index, faiss.IndexPreTransform):
            chain = [faiss.downcast_VectorTransform(index.chain.at(i)) for i in range(index.chain.size())]
            return cls(index, chain, owner=owner)
        raise IndexBuildError(f"not a track index of this format ({type(index).__name__})")

    @classmethod
    def legacy(cls, index, transform) -> "TrackIndex":
        """The first format: an ``IndexIDMap2(IndexFlatIP)`` and the store's mean/std transform."""
        import faiss

        return cls(faiss.downcast_index(index), None, legacy=transform, owner=index)

    # -- what it is ----------------------------------------------------------------------------------------
    @property
    def ntotal(self) -> int:
        return int(self.search_index.ntotal)

    @property
    def dim(self) -> int:
        """Width of the raw vectors it takes."""
        return int(self.index.d)

    @property
    def width(self) -> int:
        """Width of the vectors it holds."""
        return int(self.search_index.d)

    @property
    def mean(self) -> np.ndarray | None:
        """The library mean (what an unmeasured value is imputed with), or None."""
        if self._legacy is not None:
            return self._legacy.mean
        import faiss

        for t in self._transforms or ():
            if isinstance(t, faiss.CenteringTransform):
                return faiss.vector_to_array(t.mean)
        return None

    @property
    def is_ivf(self) -> bool:
        import faiss

        return isinstance(self.search_index, faiss.IndexIVF)

    def ids(self) -> np.ndarray:
        """Every id the index holds (unordered)."""
        import faiss

        s = self.search_index
        if self.ntotal == 0:
            return np.zeros(0, np.int64)
        if isinstance(s, faiss.IndexIDMap):
            return faiss.vector_to_array(s.id_map).astype(np.int64)
        if isinstance(s, faiss.IndexIVF):
            invlists = s.invlists
            out = []
            for lst in range(s.nlist):
                n = invlists.list_size(lst)
                if n:
                    out.append(faiss.rev_swig_ptr(invlists.get_ids(lst), n).copy())
            return np.concatenate(out).astype(np.int64) if out else np.zeros(0, np.int64)
        raise IndexBuildError(f"cannot list the ids of a {type(s).__name__}")

    def describe(self) -> str:
        import faiss

        s = self.search_index
        if self._legacy is not None:
            return "IDMap2,Flat"
        head = []
        for t in self._transforms:
            if isinstance(t, faiss.CenteringTransform):
                head.append("Center")
            elif isinstance(t, faiss.LinearTransform):
                head.append(f"LT{t.d_out}")
            elif isinstance(t, faiss.NormalizationTransform):
                head.append("L2norm")
        if isinstance(s, faiss.IndexIVFPQ):
            return ",".join(head + [f"IVF{s.nlist}", f"PQ{s.pq.M}"])
        if isinstance(s, faiss.IndexIVF):
            code = "SQ8" if s.sq.qtype == faiss.ScalarQuantizer.QT_8bit else "SQfp16"
            return ",".join(head + [f"IVF{s.nlist}", code])
        inner = faiss.downcast_index(s.index)
        code = "SQ8" if inner.sq.qtype == faiss.ScalarQuantizer.QT_8bit else "SQfp16"
        return ",".join(head + ["IDMap2", code])

    # -- vectors -------------------------------------------------------------------------------------------
    def embed(self, raw: np.ndarray) -> np.ndarray:
        """Raw track vectors ``[n, d]`` (or one ``[d]``) -> unit vectors in the index's space ``[n, width]``."""
        x = np.atleast_2d(np.asarray(raw, dtype=np.float32))
        if self._legacy is not None:
            return self._legacy(x)
        x = self.impute(x)
        for t in self._transforms:
            x = t.apply(np.ascontiguousarray(x))
        return np.ascontiguousarray(x, dtype=np.float32)

    def impute(self, raw: np.ndarray) -> np.ndarray:
        """A copy of ``raw`` with each unmeasured (NaN) value replaced by the library mean (0 without one)."""
        x = np.array(raw, dtype=np.float32, copy=True, ndmin=2)
        bad = np.isnan(x)
        if bad.any():
            mean = self.mean
            x[bad] = 0.0 if mean is None else np.broadcast_to(mean, x.shape)[bad]
        return x

    def reconstruct(self, track_id: int) -> np.ndarray:
        """The vector held for ``track_id`` (in the index's space); KeyError when it holds none."""
        import faiss

        s = self.search_index
        if isinstance(s, faiss.IndexIVF) and s.direct_map.type == faiss.DirectMap.NoMap:
            # inverted lists without an id map: the first lookup scans the lists' id arrays (memory-mapped; at
            # most ~30 ms at a million tracks, what a one-query process pays), the next builds a map of every
            # id to its list and offset (once, ~40 ms; then microseconds a lookup, what a server pays)
            self._lookups += 1
            if self._where is None and self._lookups > 1:
                self._where = id_positions(s)
            if self._where is not None:
                lists, offsets = self._where
                tid = int(track_id)
                if 0 <= tid < len(lists) and lists[tid] >= 0:
                    return self._decode_at(int(lists[tid]), int(offsets[tid]))
                raise KeyError(track_id)
            inv = s.invlists
            for lst in range(s.nlist):
                n = inv.list_size(lst)
                if not n:
                    continue
                at = np.flatnonzero(faiss.rev_swig_ptr(inv.get_ids(lst), n) == int(track_id))
                if len(at):
                    return self._decode_at(lst, int(at[0]))
            raise KeyError(track_id)
        try:
            return s.reconstruct(int(track_id)).astype(np.float32)
        except RuntimeError:
            raise KeyError(track_id) from None

    def decoded(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Every vector the index holds, decoded from its codes in bulk: ``(ids, float32[m, width])`` an
        inverted list (or a block of the flat codes) at a time."""
        import faiss

        s = self.search_index
        if self._legacy is not None or not isinstance(s, faiss.IndexIVF):
            ids = self.ids()
            inner = s.index if isinstance(s, faiss.IndexIDMap) else s
            for at in range(0, len(ids), ADD_BATCH * 4):
                part = ids[at : at + ADD_BATCH * 4]
                yield part, inner.reconstruct_n(at, len(part)).astype(np.float32)
            return
        inv, size, coarse = s.invlists, s.code_size, s.coarse_code_size()
        for lst in range(s.nlist):
            n = inv.list_size(lst)
            if not n:
                continue
            ids = faiss.rev_swig_ptr(inv.get_ids(lst), n).astype(np.int64)
            codes = faiss.rev_swig_ptr(inv.get_codes(lst), n * size).reshape(n, size)
            head = np.frombuffer(int(lst).to_bytes(coarse, "little"), np.uint8)
            yield ids, s.sa_decode(np.hstack([np.broadcast_to(head, (n, coarse)), codes]))

    def _decode_at(self, lst: int, offset: int) -> np.ndarray:
        import faiss

        out = np.zeros(self.search_index.d, np.float32)
        self.search_index.reconstruct_from_offset(lst, offset, faiss.swig_ptr(out))
        return out

    # -- changes -------------------------------------------------------------------------------------------
    def add(self, ids: np.ndarray, raw: np.ndarray) -> None:
        self._changed()
        for at in range(0, len(ids), ADD_BATCH):
            x = self.embed(raw[at : at + ADD_BATCH])
            self.search_index.add_with_ids(x, np.ascontiguousarray(ids[at : at + ADD_BATCH], dtype=np.int64))
        self.index.ntotal = self.search_index.ntotal  # the sub-index was added to directly

    def remove(self, ids: np.ndarray) -> None:
        import faiss

        self._changed()
        if len(ids):
            self.search_index.remove_ids(faiss.IDSelectorBatch(np.ascontiguousarray(ids, dtype=np.int64)))
            self.index.ntotal = self.search_index.ntotal

    def _changed(self) -> None:
        if self._sketching is not None:
            self._sketching.join()  # (a sketch being made reads the lists that are about to change)
        if self._sketch is not None:
            self._sketch.wait()  # (and so does a filter's narrowed sketch being made)
        self._where = self._runs = self._sketch = None

    # -- the sketch ----------------------------------------------------------------------------------------
    def start_sketch(self, *, wait: bool = False) -> bool:
        """Make the fast-scan sketch of the inverted lists (``catalog.sketch``) in a background thread, for a
        process that will answer many queries; searches use it once it is made. ``wait``: until it is made.
        False when this index takes none (not inverted lists of 8-bit codes in memory)."""
        import threading

        if self._legacy is not None or not sketches.usable(self.search_index):
            return False
        if self._sketch is None and (self._sketching is None or not self._sketching.is_alive()):
            def make():
                if self._where is None:  # (the map of ids to their places, shared with reconstruct)
                    self._where = id_positions(self.search_index)
                self._sketch = sketches.Sketch(self.search_index, self._where, keep=(self.index, self._owner))

            self._sketching = threading.Thread(target=make, name="soundalike-sketch", daemon=True)
            self._sketching.start()
        if wait and self._sketching is not None:
            self._sketching.join()
        return True

    def adopt_sketch(self, previous) -> bool:
        """Take the sketch ``previous`` (the index a service's last generation opened) made, when both read the
        same file (a commit that wrote only a delta beside the main index leaves it as it was: a store never
        changes a file in place), instead of making the same sketch again (6 s at a million tracks). The sketch
        holds what it reads (``previous``'s index stays open while it is used)."""
        previous = getattr(previous, "main", previous)  # (a generation with a delta: its main index)
        if (previous is self or self.source is None or previous.source != self.source or previous.sketch is None
                or self._sketch is not None or not self.use_sketch):
            return False
        self._where, self._sketch = previous._where, previous.sketch
        return True

    @property
    def sketch(self):
        """The sketch searches use (None until one is made)."""
        return self._sketch

    # -- search --------------------------------------------------------------------------------------------
    def search(self, q: np.ndarray, k: int, selector=None, nprobe: int | None = None, within=None):
        """(scores, ids) of the ``k`` best for each row of ``q`` (index-space unit vectors). With a
        ``selector`` (a FAISS ``IDSelector``), only the ids it selects are candidates. ``within``: the packed
        bitmap the selector reads, where it is one a service keeps (the sketch then scans that filter's own)."""
        import faiss

        sketch = self._sketch if self.use_sketch else None
        if sketch is not None and len(q) <= SKETCH_QUERIES and k <= sketches.MAX_K:
            probe, within = int(nprobe or self.search_index.nprobe), within if selector is not None else None
            # every list: the 8-bit scan is exact, and as fast as the whole sketch's; a filter's own sketch holds
            # only its tracks, and a narrow filter's every list is its whole scan (its shortlist all of them)
            if probe < self.search_index.nlist or (within is not None and sketch.narrowed(within) is not None):
                return sketch.search(q, k, selector, probe, within)
        if self.is_ivf and len(q) > 1 and (self.lists_on_disk or (nprobe or 0) >= self.search_index.nlist):
            return self._search_by_runs(q, k, selector, nprobe)
        if self.is_ivf:
            params = faiss.SearchParametersIVF(sel=selector, nprobe=int(nprobe or self.search_index.nprobe))
        elif selector is not None:
            params = faiss.SearchParameters(sel=selector)
        else:
            params = None
        return self.search_index.search(np.ascontiguousarray(q, dtype=np.float32), k, params=params)

    def exhaustive_nprobe(self) -> int | None:
        return int(self.search_index.nlist) if self.is_ivf else None

    @property
    def lists_on_disk(self) -> bool:
        import faiss

        return self.is_ivf and isinstance(faiss.downcast_InvertedLists(self.search_index.invlists), faiss.OnDiskInvertedLists)

    def _search_by_runs(self, q: np.ndarray, k: int, selector=None, nprobe: int | None = None):
        """Several queries, a run of lists of about SPILL_BYTES at a time for all of them (each query only in
        the lists it probes): FAISS would take each query through its lists in turn, which reads lists on disk
        once a query when the page cache cannot hold them (a 4 GB machine, 3.2 GB of window codes); this reads
        each list once."""
        import faiss

        s = self.search_index
        q = np.ascontiguousarray(q, dtype=np.float32)
        p = min(int(nprobe or s.nprobe), int(s.nlist))
        if p >= s.nlist:
            assigned = np.broadcast_to(np.arange(s.nlist, dtype=np.int64), (len(q), s.nlist))
        else:
            assigned = s.quantizer.search(q, p)[1]
        if self._runs is None:  # (the lists' sizes, read once: 8,192 calls into FAISS)
            sizes = np.asarray([s.invlists.list_size(i) for i in range(s.nlist)], np.int64)
            ends = np.searchsorted(np.cumsum(sizes * (s.code_size + 8)), np.arange(1, 1 + len(sizes)) * SPILL_BYTES)
            self._runs = np.unique(np.r_[0, np.minimum(ends, s.nlist), s.nlist])
        bounds = self._runs
        best_s = np.full((len(q), k), -np.inf, np.float32)
        best_i = np.full((len(q), k), -1, np.int64)
        params = faiss.SearchParametersIVF(sel=selector, nprobe=p)
        for a, b in zip(bounds[:-1], bounds[1:]):
            # each query's lists in this run (-1: none; FAISS skips it). FAISS's own binding takes the depth in
            # its parameters, where the Python one would have the index's nprobe changed under other threads
            lists = np.ascontiguousarray(np.where((assigned >= a) & (assigned < b), assigned, -1))
            if not (lists >= 0).any():
                continue
            coarse = np.zeros(lists.shape, np.float32)
            d = np.empty((len(q), k), np.float32)
            i = np.empty((len(q), k), np.int64)
            s.search_preassigned_c(len(q), faiss.swig_ptr(q), k, faiss.swig_ptr(lists), faiss.swig_ptr(coarse),
                                   faiss.swig_ptr(d), faiss.swig_ptr(i), False, params)
            best_s, best_i = merge_results(np.hstack([best_s, d]), np.hstack([best_i, i]), k)
        return best_s, best_i

    # -- writing -------------------------------------------------------------------------------------------
    def write(self, f) -> None:
        """Stream the index into the open binary file ``f`` (no serialised copy in memory)."""
        import faiss

        faiss.write_index(self.index, faiss.PyCallbackIOWriter(f.write, 1 << 22))


class LayeredIndex:
    """A main index, a small delta index of the vectors written since the main one was built, and the ids of
    the main index that no longer count (tracks removed, or re-embedded into the delta).

    What a commit of a few tracks writes instead of rewriting a million-vector index (seconds of writing,
    syncing and checksumming); the store folds the delta into a new main index once it holds DELTA_FRACTION
    of the library. The delta is the main index's own trained template with the new vectors added, so both
    hold the very codes one index would: searching both and merging the scores gives what the folded index
    gives. Same interface as :class:`TrackIndex` for reading and searching."""

    def __init__(self, main: TrackIndex, delta: TrackIndex, hidden: np.ndarray):
        import faiss

        self.main, self.delta = main, delta
        h = np.sort(np.asarray(hidden, np.int64))  # (written sorted and unique; np.unique would import numpy.ma)
        self.hidden = h if len(h) < 2 or bool(np.all(h[1:] > h[:-1])) else np.unique(h)
        # the main index's ids that still count: every id the hidden list does not name (a FAISS selector does
        # not own the selectors it combines: both are kept here)
        self._hidden_sel = faiss.IDSelectorBatch(self.hidden) if len(self.hidden) else None
        self._visible = faiss.IDSelectorNot(self._hidden_sel) if len(self.hidden) else None

    # the main index's transform and kind are the delta's too
    dim = property(lambda self: self.main.dim)
    width = property(lambda self: self.main.width)
    mean = property(lambda self: self.main.mean)
    is_ivf = property(lambda self: self.main.is_ivf)

    def embed(self, raw: np.ndarray) -> np.ndarray:
        return self.main.embed(raw)

    def impute(self, raw: np.ndarray) -> np.ndarray:
        return self.main.impute(raw)

    def exhaustive_nprobe(self) -> int | None:
        return self.main.exhaustive_nprobe()

    def start_sketch(self, *, wait: bool = False) -> bool:
        return self.main.start_sketch(wait=wait)  # (the delta is small: scanned as it is)

    def adopt_sketch(self, previous) -> bool:
        return self.main.adopt_sketch(previous)

    sketch = property(lambda self: self.main.sketch)

    @property
    def ntotal(self) -> int:
        return self.main.ntotal - len(self.hidden) + self.delta.ntotal

    def ids(self) -> np.ndarray:
        main = self.main.ids()
        return np.concatenate([main[~np.isin(main, self.hidden)], self.delta.ids()])

    def describe(self) -> str:
        return self.main.describe()

    def reconstruct(self, track_id: int) -> np.ndarray:
        try:
            return self.delta.reconstruct(track_id)
        except KeyError:
            pass
        i = int(np.searchsorted(self.hidden, int(track_id)))
        if i < len(self.hidden) and self.hidden[i] == int(track_id):
            raise KeyError(track_id)
        return self.main.reconstruct(track_id)

    def decoded(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Like :meth:`TrackIndex.decoded`: the main index's vectors that still count, then the delta's."""
        for ids, x in self.main.decoded():
            keep = ~np.isin(ids, self.hidden)
            if keep.any():
                yield ids[keep], x[keep]
        yield from self.delta.decoded()

    def search(self, q: np.ndarray, k: int, selector=None, nprobe: int | None = None, within=None):
        import faiss

        both = None
        if self._visible is None:
            main_sel = selector
        elif selector is None:
            main_sel = self._visible
        else:
            main_sel = both = faiss.IDSelectorAnd(selector, self._visible)
        s1, i1 = self.main.search(q, k, main_sel, nprobe, within)
        del both
        if self.delta.ntotal == 0:
            return s1, i1
        # the delta holds the main index's quantisers: it is probed as deeply as the main one
        s2, i2 = self.delta.search(q, k, selector, nprobe or (self.main.search_index.nprobe if self.is_ivf else None))
        return merge_results(np.hstack([s1, s2]), np.hstack([i1, i2]), k)


def merge_results(scores: np.ndarray, ids: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` best of several result lists laid side by side (missing results have id -1)."""
    s = np.where(ids >= 0, scores, -np.inf)
    order = np.argsort(-s, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(scores, order, 1), np.take_along_axis(ids, order, 1)


def empty(fitted: Fitted, dim: int, kind: str, train: np.ndarray, n_expected: int, pq_m: int | None = None) -> TrackIndex:
    """An empty index of ``kind`` for ``fitted``, its quantisers trained on the raw ``train`` sample (rows may
    hold NaN)."""
    import faiss

    chain = _chain(fitted, dim)
    width = fitted.width or dim
    x = np.zeros((0, width), np.float32)
    if len(train):  # through the chain in chunks: the raw sample is the big array, its image is small
        parts = []
        for at in range(0, len(train), ADD_BATCH):
            part = train[at : at + ADD_BATCH]
            part = np.nan_to_num(part, nan=0.0) if fitted.mean is None else np.where(np.isnan(part), fitted.mean, part)
            part = np.ascontiguousarray(part, dtype=np.float32)
            for t in chain:
                part = t.apply(np.ascontiguousarray(part))
            parts.append(part)
        x = np.concatenate(parts)
    # a range learnt from a handful of tracks clips the next ones: float16 needs no range (measured the same
    # as float32 on the dev corpus) and costs little in a library that small
    qtype = faiss.ScalarQuantizer.QT_8bit if len(train) >= SQ8_MIN_FIT else faiss.ScalarQuantizer.QT_fp16
    if kind == "flat":
        sq = faiss.IndexScalarQuantizer(width, qtype, faiss.METRIC_INNER_PRODUCT)
        sub = faiss.IndexIDMap2(sq)
    elif kind == "ivf":
        nlist = nlist_for(n_expected)
        nlist = min(nlist, _pow2_floor(len(x) // 39))  # FAISS wants >= 39 training points a list
        quantizer = faiss.IndexFlatIP(width)
        sub = faiss.IndexIVFScalarQuantizer(quantizer, width, nlist, qtype, faiss.METRIC_INNER_PRODUCT, False)
        sub.cp.niter = 10
    elif kind == "ivfpq":
        nlist = min(nlist_for(n_expected), _pow2_floor(len(x) // 39))
        m = pq_m or 32
        sub = faiss.IndexIVFPQ(faiss.IndexFlatIP(width), width, nlist, m, 8, faiss.METRIC_INNER_PRODUCT)
        sub.cp.niter = 10
        sub.pq.cp.min_points_per_centroid = 1  # a small library trains its codebooks on what it has, quietly
    else:
        raise IndexBuildError(f"unknown index kind {kind!r}")
    if not len(x):  # nothing to learn the code range from: a unit vector's coordinates lie in [-1, 1]
        x = np.vstack([np.full((1, width), -1.0, np.float32), np.full((1, width), 1.0, np.float32)])
    sub.train(np.ascontiguousarray(x, dtype=np.float32))
    # no id -> list map in inverted lists: a reader would rebuild its hash table of every id on each open (80 ms
    # and tens of megabytes at a million tracks); a vector is found by scanning the lists' ids (see reconstruct)
    pre = faiss.IndexPreTransform(sub)
    for t in reversed(chain):
        pre.prepend_transform(t)
    # one self-contained object: the chain and the sub-index are owned by the index, not by Python references
    return TrackIndex.wrap(faiss.deserialize_index(faiss.serialize_index(pre)))


# ------------------------------------------------------------------------------------------------ measuring


def in_filter_sample(ids: np.ndarray) -> np.ndarray:
    """The fixed tenth of the ids (by a multiplicative hash) that stands for a genre filter of 10% at build
    time: its recall chooses the filtered nprobe, its latency is recorded."""
    return (np.asarray(ids, np.uint64) * np.uint64(2654435761) % np.uint64(1 << 32)) % np.uint64(10) == 0


def exact_neighbours(queries: np.ndarray, batches: Iterable[tuple[np.ndarray, np.ndarray]], k: int,
                     reference: Callable[[np.ndarray], np.ndarray], query_ids: np.ndarray):
    """Exact top-``k`` ids (float32 cosine over the full vectors, the query itself left out) of each query,
    streamed over ``(ids, raw)`` batches: over every id, and over the ids of :func:`in_filter_sample`."""
    tops = [(np.full((len(queries), k), -np.inf, np.float32), np.full((len(queries), k), -1, np.int64)) for _ in range(2)]
    for ids, raw in batches:
        s = queries @ reference(raw).T
        s[query_ids[:, None] == ids[None, :]] = -np.inf
        for at, (best_s, best_i) in enumerate(tops):
            part = s if at == 0 else np.where(in_filter_sample(ids)[None, :], s, -np.inf)
            cat_s = np.concatenate([best_s, part], axis=1)
            cat_i = np.concatenate([best_i, np.broadcast_to(ids, part.shape)], axis=1)
            top = np.argpartition(-cat_s, k - 1, axis=1)[:, :k] if cat_s.shape[1] > k else np.arange(cat_s.shape[1])[None].repeat(len(cat_s), 0)
            tops[at] = (np.take_along_axis(cat_s, top, 1), np.take_along_axis(cat_i, top, 1))
    (_, truth), (fs, fi) = tops
    return truth, np.where(np.isfinite(fs), fi, -1)


def recalls(found: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Each query's recall: the share of its true neighbours found."""
    return np.asarray([len(set(f[f >= 0]) & set(t[t >= 0])) / max(1, int((t >= 0).sum())) for f, t in zip(found, truth)])


def recall(found: np.ndarray, truth: np.ndarray) -> float:
    hits = recalls(found, truth)
    return float(np.mean(hits)) if len(hits) else 1.0


def recall_bound(found: np.ndarray, truth: np.ndarray) -> float:
    """The lower one-sided 95% confidence bound of the mean recall over these queries: what other queries
    reach too (200 queries measure a recall of 0.95 within about +-0.01)."""
    hits = recalls(found, truth)
    if len(hits) < 2:
        return recall(found, truth)
    return float(np.mean(hits) - RECALL_Z * np.std(hits, ddof=1) / np.sqrt(len(hits)))


def measure_index(index: TrackIndex, query_ids: np.ndarray, query_raw: np.ndarray, truth: np.ndarray,
                  truth_filtered: np.ndarray | None = None, k: int = RECALL_K) -> dict:
    """Recall@k of ``index`` against ``truth`` (exact neighbours over the full raw vectors), and with the 10%
    filter of :func:`in_filter_sample` against ``truth_filtered``, choosing the inverted lists' nprobe for
    each (a filter's nearest are farther away, in more lists), and single-query latency (one thread)
    unfiltered and filtered."""
    import faiss

    out: dict = {}
    if len(query_ids) == 0 or index.ntotal <= 1:
        return {"recall_at_10": None, "queries": 0}
    q = index.embed(query_raw)
    kk = min(k + 1, index.ntotal)

    def found(nprobe=None, selector=None):
        _, ids = index.search(q, kk, selector=selector, nprobe=nprobe)
        return np.asarray([([i for i in row if i != qi] + [-1] * k)[:k] for row, qi in zip(ids, query_ids)])

    ids = index.ids()
    chosen = np.sort(ids[in_filter_sample(ids)])
    sel_keep = faiss.IDSelectorBatch(chosen) if len(chosen) else None

    def fewest_lists(want: np.ndarray, selector, start: int) -> tuple[int, float]:
        """The fewest lists (powers of two from ``start``, then bisected) whose recall against ``want``
        reaches RECALL_TARGET with confidence (:func:`recall_bound`), or comes within 0.01 of the exhaustive
        scan's when the codes cannot reach it; and that exhaustive recall."""
        every = found(index.exhaustive_nprobe(), selector)
        full = recall(every, want)
        reachable = recall_bound(every, want) >= RECALL_TARGET

        def enough(p: int) -> bool:
            got = found(p, selector)
            return recall_bound(got, want) >= RECALL_TARGET if reachable else recall(got, want) >= full - 0.01

        nprobe, p = index.exhaustive_nprobe(), start
        while p < index.exhaustive_nprobe():
            if enough(p):
                nprobe = p
                break
            p *= 2
        lo = max(start, nprobe // 2) if nprobe > start else nprobe
        while nprobe - lo > max(1, nprobe // 16):
            mid = (lo + nprobe) // 2
            if enough(mid):
                nprobe = mid
            else:
                lo = mid
        return nprobe, full

    before = faiss.omp_get_max_threads()
    filtered = truth_filtered is not None and sel_keep is not None
    try:
        if index.is_ivf:
            nprobe, full = fewest_lists(truth, None, 1)
            out["recall_exhaustive"] = round(full, 4)
            index.search_index.nprobe = nprobe
            out["nprobe"] = int(nprobe)
            out["nlist"] = int(index.search_index.nlist)
            if filtered:
                out["nprobe_filtered"] = int(fewest_lists(truth_filtered, sel_keep, nprobe)[0])
        out["recall_at_10"] = round(recall(found(), truth), 4)
        if index.is_ivf:  # against its own codes: what probing some of the lists loses (the rest is the codes')
            out["recall_codes_at_10"] = round(recall(found(), found(index.exhaustive_nprobe())), 4)
        if filtered:
            out["recall_filtered_at_10"] = round(recall(found(out.get("nprobe_filtered"), sel_keep), truth_filtered), 4)
        # latency: single queries on one thread, as the CLI and a server run them
        faiss.omp_set_num_threads(1)
        for label, sel, nprobe in (("latency_ms", None, None), ("latency_filtered_ms", sel_keep, out.get("nprobe_filtered"))):
            times = []
            for row in q[: min(len(q), 100)]:
                t = time.perf_counter()
                index.search(row[None], k, selector=sel, nprobe=nprobe)
                times.append((time.perf_counter() - t) * 1000)
            out[label] = {"p50": round(float(np.percentile(times, 50)), 3), "p99": round(float(np.percentile(times, 99)), 3)}
    finally:
        faiss.omp_set_num_threads(before)
    out["queries"] = int(len(query_ids))
    return out


# ------------------------------------------------------------------------------------------------ building


@dataclasses.dataclass
class Built:
    index: TrackIndex
    fitted: Fitted
    info: dict
    template: bytes | None = None  # the trained empty index, when this build trained a new one
    queries: tuple[np.ndarray, np.ndarray] | None = None  # the held-out (ids, raw vectors) recall was measured on


def kind_of(index: TrackIndex) -> str:
    import faiss

    if isinstance(index.search_index, faiss.IndexIVFPQ):
        return "ivfpq"
    return "ivf" if index.is_ivf else "flat"


def load_template(data: bytes) -> TrackIndex:
    import faiss

    return TrackIndex.wrap(faiss.deserialize_index(np.frombuffer(data, dtype=np.uint8)))


def _first_pass(batches, n: int, dim: int, take: np.ndarray, qpos: np.ndarray, moments: "Moments | None",
                half: bool = False):
    """One pass over the ``n`` vectors: their moments (into ``moments``, when given), the sample ``take`` marks
    (``half``: kept in float16) and the recall queries at positions ``qpos``: ``(sample, sample_ids,
    query_ids, query_raw)``."""
    sample, sample_ids, q_ids, q_raw = [], [], [], []
    at = 0
    for ids, raw in batches():
        if moments is not None:
            moments.add(raw)
        sel = take[at : at + len(ids)]
        sample.append(raw[sel].astype(np.float16) if half else raw[sel])
        sample_ids.append(ids[sel])
        qs = qpos[(qpos >= at) & (qpos < at + len(ids))] - at
        q_ids.append(ids[qs])
        q_raw.append(raw[qs])
        at += len(ids)
    if at != n:
        raise IndexBuildError(f"expected {n} vectors, the shards hold {at}")
    return (np.concatenate(sample) if sample else np.zeros((0, dim), np.float32),
            np.concatenate(sample_ids) if sample_ids else np.zeros(0, np.int64),
            np.concatenate(q_ids) if q_ids else np.zeros(0, np.int64),
            np.concatenate(q_raw) if q_raw else np.zeros((0, dim), np.float32))


def exact_space(fitted: "Fitted", *, refined: bool):
    """The exact form recall is measured against, raw vectors ``[n, d]`` -> unit rows: through the transform in
    float (with a refined transform, a whitening, through its basis too, which defines the metric; a PCA's
    basis only approximates it). The benchmarks measure recall against the same."""
    if fitted.mean is None:
        return unit
    if refined and fitted.basis is not None:
        return lambda x: unit(standardize(x, fitted.mean, fitted.std) @ fitted.basis)
    return lambda x: standardize(x, fitted.mean, fitted.std)


class Spill:
    """Inverted lists built in parts: vectors go into a copy of the trained empty index; each time it holds
    SPILL_BYTES of codes it is written to a part file beside ``lists_file`` and a new copy takes its place.
    :meth:`finish` merges the parts list by list into ``lists_file`` (FAISS's ``OnDiskInvertedLists``: the
    parts are read memory-mapped, so memory holds no more than a part) and gives the index over it."""

    def __init__(self, index: TrackIndex, template: bytes, lists_file: Path):
        self.index, self.template, self.lists_file = index, template, Path(lists_file)
        self.parts: list[Path] = []
        s = index.search_index
        self.rows = max(1, SPILL_BYTES // (s.code_size + 8))

    def add(self, ids: np.ndarray, raw: np.ndarray) -> None:
        self.index.add(ids, raw)
        self.maybe_spill()

    def maybe_spill(self, last: bool = False) -> None:
        if self.index.ntotal >= self.rows or (last and self.index.ntotal):
            import faiss

            part = self.lists_file.with_name(f".{self.lists_file.name}.part{len(self.parts):04d}.tmp")
            faiss.write_index(self.index.index, str(part))
            self.parts.append(part)
            self.index = load_template(self.template)

    def finish(self) -> TrackIndex:
        import faiss

        self.maybe_spill(last=True)
        out = load_template(self.template)
        ivf = out.search_index
        try:
            parts = [faiss.read_index(str(part), faiss.IO_FLAG_MMAP) for part in self.parts]  # (held until merged)
            those = faiss.InvertedListsPtrVector()
            for part in parts:
                those.push_back(faiss.extract_index_ivf(part).invlists)
            on_disk = faiss.OnDiskInvertedLists(ivf.nlist, ivf.code_size, str(self.lists_file))
            with silenced(1):  # (FAISS prints the file's new size on standard output)
                total = on_disk.merge_from_multiple(those.data(), those.size(), False)
            ivf.replace_invlists(on_disk, True)
            on_disk.this.disown()
            ivf.ntotal = out.index.ntotal = total
            del parts, those
        finally:
            for part in self.parts:
                part.unlink(missing_ok=True)
        return out


def build(batches: Callable[[], Iterator[tuple[np.ndarray, np.ndarray]]], n: int, dim: int, *,
          transform_kind: str | None, fitted: Fitted | None, policy: Policy, seed: int = 0,
          measure: bool = True, template: bytes | None = None, widths: tuple[int, ...] = PCA_WIDTHS,
          refine: Callable[[Fitted, np.ndarray, np.ndarray], Fitted] | None = None,
          lists_file: Path | None = None, fit_sample: int = FIT_SAMPLE, filtered: bool = True) -> Built:
    """Build the index of ``n`` live tracks from ``batches()`` (a fresh iterator of ``(ids, raw)`` each time it
    is called; every live id exactly once), streaming: memory holds one batch, a sample of at most FIT_SAMPLE
    vectors and the index itself. ``fitted`` None: the library transform is fitted on these vectors.

    ``template``: the trained empty index of the last fit (serialised). With the transform frozen, the
    quantisers are frozen with it, so a rebuild gives the very codes that incremental updates gave; a new
    one is trained (and returned in ``Built.template``) on a refit or when the size calls for another kind.

    ``refine(fitted, sample, sample_ids)``: a further change of a transform just fitted (the excerpt index's
    within-track whitening); the recall is then measured against exact search through that transform in
    float, which defines the metric.

    ``lists_file``: inverted lists are written to this file (FAISS's on-disk lists, memory-mapped by readers)
    in parts of SPILL_BYTES as they are added, so the build holds at most one part's codes, whatever the
    library's size (the excerpt index of a million tracks: 3.2 GB of codes). ``fit_sample``: vectors the PCA
    and the quantisers are fitted on, at most. ``filtered``: measure recall under a 10% filter too (what a
    genre filter asks of the track index; the excerpt index has no use for it)."""
    t0 = time.perf_counter()
    rng = np.random.default_rng(seed)
    # one pass: the moments (when fitting), a uniform sample for the PCA and the quantisers, the recall queries
    n_sample = min(n, fit_sample)
    take = np.zeros(n, bool)
    take[rng.choice(n, size=n_sample, replace=False)] = True
    qpos = np.sort(rng.choice(n, size=min(n, RECALL_QUERIES if measure else 0), replace=False))
    moments = Moments(dim) if fitted is None and transform_kind not in (None, "none") else None
    # float16: the excerpt index's windows (past FIT_SAMPLE), and past SAMPLE_BYTES (3812 x 100,000 tracks: 1.5 GB)
    sample, sample_ids, q_ids, q_raw = _first_pass(batches, n, dim, take, qpos, moments,
                                                   half=n_sample > FIT_SAMPLE or n_sample * dim * 4 > SAMPLE_BYTES)
    fitted_given = fitted is not None
    if fitted is None:
        fitted = fit(transform_kind, moments, sample, n, widths)
        if refine is not None:
            fitted = refine(fitted, sample, sample_ids)
    width = fitted.width or dim
    kind = policy.choose(n, width)
    index = load_template(template) if template is not None and fitted_given else None
    new_template = None
    pq_m = policy.pq_bytes(n, width) if kind == "ivfpq" else None
    if index is None or kind_of(index) != kind or index.dim != dim or (
            pq_m and index.search_index.pq.M != pq_m):
        index = empty(fitted, dim, kind, sample, n, pq_m)
        import faiss

        new_template = faiss.serialize_index(index.index).tobytes()
    del sample
    t_fit = time.perf_counter() - t0

    # second pass: add every vector, and the exact neighbours of the recall queries over the full vectors
    reference = exact_space(fitted, refined=refine is not None or transform_kind == "whiten")
    q_ref = reference(q_raw) if len(q_raw) else q_raw

    spilling = Spill(index, new_template or template, lists_file) if lists_file is not None and index.is_ivf else None

    def adding():
        for ids, raw in batches():
            (spilling or index).add(ids, raw)
            yield ids, raw

    if len(q_ids):
        truth, truth_filtered = exact_neighbours(q_ref, adding(), min(RECALL_K, max(n - 1, 1)), reference, q_ids)
    else:
        for _ in adding():
            pass
        truth = truth_filtered = None
    if spilling:
        index = spilling.finish()
    t_add = time.perf_counter() - t0 - t_fit
    info = {"type": kind, "trained_on": int(n) if new_template is not None else None, "policy": policy.to_dict(), "width": int(width),
            "count": index.ntotal, "fit_s": round(t_fit, 2), "add_s": round(t_add, 2)}
    if fitted.kept is not None:
        info["variance_kept"] = fitted.kept
    if measure and n > 1:
        info.update(measure_index(index, q_ids, q_raw, truth, truth_filtered if filtered else None))
    info["measured_on"] = int(n)
    return Built(index, fitted, info, new_template, (q_ids, q_raw))
