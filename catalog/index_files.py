"""A store's track index on disk: the library transform's file, the index file (memory-mapped), the delta and
hidden ids a small commit writes beside it, and an index brought up to date with the shards written since it
was built. Which FAISS index and how it is built and searched is ``catalog.indexes``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from ..chatter import silenced
from . import indexes
from .indexes import Fitted, LayeredIndex, Policy, TrackIndex, standardize, unit
from .layout import INDEX_RECORD, REMEDY, StoreError, short
from .shards import count_latest, iter_latest, shard_number


def load_fitted(p: Path, dim: int, fitted_on: int = 0) -> Fitted:
    """The library transform saved at ``p`` (``mean``, ``std`` and, when it reduces, ``basis``)."""
    try:
        with np.load(p) as z:
            fitted = Fitted(z["mean"], z["std"], z["basis"] if "basis" in z.files else None, fitted_on)
    except Exception as err:
        raise StoreError(f"{p}: unreadable transform ({short(err)}){REMEDY}") from None
    if fitted.mean.shape != (dim,) or fitted.std.shape != (dim,) or (
            fitted.basis is not None and (fitted.basis.ndim != 2 or fitted.basis.shape[0] != dim)):
        raise StoreError(f"{p}: transform does not fit vectors of width {dim}{REMEDY}")
    return fitted


def save_fitted(f, fitted: Fitted) -> None:
    extra = {} if fitted.basis is None else {"basis": fitted.basis}
    np.savez(f, mean=fitted.mean, std=fitted.std, **extra)


def _legacy_transform(fitted: Fitted | None):
    """The first format's query-side transform: standardise (NaN -> the mean), then unit length."""
    if fitted is None or fitted.mean is None:
        return unit
    return lambda x: standardize(x, fitted.mean, fitted.std)


LEGACY_KIND = "IDMap2,Flat"  # the first format: unit vectors of the full width, the transform in its own file


# ------------------------------------------------------------------------------------------------ reading


def read_index(root: Path, info: dict, dim: int, *, mmap: bool, fitted=None) -> TrackIndex:
    """The index file named by ``info`` (a manifest's ``index``). ``fitted``: a callable giving the store's
    transform, needed only by the first format (whose index holds no transform)."""
    import faiss

    p = root / info["file"]
    try:
        # memory-mapped: a reader opens at once and shares the page cache instead of copying the codes (safe:
        # a store never changes a file in place, and a mapped file outlives its name)
        if info.get("lists"):
            # inverted lists on disk (memory-mapped): found beside the index wherever the store is, read-only
            with silenced(1):  # (FAISS says on standard output that it looked there)
                raw = faiss.read_index(str(p), faiss.IO_FLAG_ONDISK_SAME_DIR | faiss.IO_FLAG_READ_ONLY)
        else:
            raw = faiss.read_index(str(p), getattr(faiss, "IO_FLAG_MMAP_IFC", 0) if mmap else 0)
    except Exception as err:
        raise StoreError(f"{p}: unreadable FAISS index ({short(err)}){REMEDY}") from None
    if raw.d != dim:
        raise StoreError(f"{p}: index of width {raw.d}, the manifest says {dim}{REMEDY}")
    if info.get("kind") == LEGACY_KIND:
        return TrackIndex.legacy(raw, _legacy_transform(fitted() if callable(fitted) else fitted))
    try:
        index = TrackIndex.wrap(raw)
    except indexes.IndexBuildError as err:
        raise StoreError(f"{p}: {err}{REMEDY}") from None
    if mmap:
        try:
            st = os.stat(p)
            index.source = (str(p.resolve()), st.st_dev, st.st_ino, st.st_mtime_ns, st.st_size)
        except OSError:
            pass  # (then no other generation's sketch is taken for it)
    return index


def open_index(root: Path, info: dict, dim: int, *, mmap: bool, fitted=None) -> TrackIndex | LayeredIndex:
    """The index a manifest's ``index`` describes: its main file, with the delta and the hidden ids a small
    commit wrote beside it when there are some."""
    main = read_index(root, info, dim, mmap=mmap, fitted=fitted)
    delta = info.get("delta")
    if not delta:
        return main
    index = read_index(root, {"file": delta["file"]}, dim, mmap=False)
    p = root / delta["hidden"]
    try:
        hidden = np.load(p).astype(np.int64)
    except Exception as err:
        raise StoreError(f"{p}: unreadable list of replaced vectors ({short(err)}){REMEDY}") from None
    return LayeredIndex(main, index, hidden)


def read_infos(root: Path, record: dict | None) -> dict:
    """What the build of the index a manifest's ``index`` record describes measured (recall, nprobe, latency,
    timings): its infos file, or for a store written before there were any, the measurements its record kept."""
    if not record:
        return {}
    name = record.get("infos")
    if not name:
        return {k: v for k, v in record.items() if k not in INDEX_RECORD}
    p = root / name
    try:
        with open(p, "rb") as f:
            infos = json.load(f)
    except (OSError, ValueError) as err:
        raise StoreError(f"{p}: unreadable index infos ({short(err)}){REMEDY}") from None
    if not isinstance(infos, dict):
        raise StoreError(f"{p}: index infos must be a JSON object{REMEDY}")
    return infos


def split_record(source: dict) -> tuple[dict, dict]:
    """An index's description -> (its manifest record, its measurements for the infos file)."""
    return ({k: v for k, v in source.items() if k in INDEX_RECORD},
            {k: v for k, v in source.items() if k not in INDEX_RECORD})


def newer_shards(m: dict, shards_indexed: int) -> list[str]:
    return [n for n in m["shards"] if shard_number(n) >= int(shards_indexed)]


def no_longer_held(held: np.ndarray, live: np.ndarray, new_ids: np.ndarray) -> np.ndarray:
    """Which of the ``held`` ids an index must drop: tracks no longer live, and tracks re-embedded since
    (``new_ids``). One pass over an id bitmap: set operations on a million ids hashed for 1.8 s."""
    top = int(max(held.max(initial=-1), live.max(initial=-1), new_ids.max(initial=-1))) + 1
    stays = np.zeros(top, bool)
    stays[live] = True
    stays[new_ids] = False
    return held[~stays[held]]


def bring_up_to_date(index: TrackIndex, root: Path, m: dict, shards_indexed: int, live: np.ndarray) -> None:
    """Apply to ``index`` what changed since it was built: vectors of tracks removed or re-embedded leave it,
    the vectors of the shards written since go in. No other vector is read."""
    live = np.asarray(live, np.int64)
    batches = list(iter_latest(root, newer_shards(m, shards_indexed), live))
    new_ids = np.concatenate([b[0] for b in batches]) if batches else np.zeros(0, np.int64)
    index.remove(no_longer_held(index.ids(), live, new_ids))
    for ids, vecs in batches:
        index.add(ids, vecs)


def transform_kind(m: dict) -> str | None:
    """The library transform a store's index is built through: the encoder's, but for a store whose encoder
    whitens within tracks and whose transform was fitted without the sums (standardised; catalog.within)."""
    kind = m["encoder"].get("transform")
    if kind == "whiten" and m.get("transform"):
        return m["transform"].get("kind", "standardize")
    return kind


def frozen_transform(m: dict, root: Path) -> Fitted | None:
    """The store's library transform as it stands (a none-transform for encoders without one; None when one
    is needed and none has been fitted)."""
    kind = m["encoder"].get("transform")
    if kind in (None, "none"):
        return Fitted(None, None, None, 0)
    info = m.get("transform")
    if not info:
        return None
    return load_fitted(root / info["file"], int(m["encoder"]["dim"]), int(info.get("fitted_on") or 0))


def current_index(root: Path, m: dict, live: np.ndarray) -> TrackIndex:
    """The index a generation without a built one would have: the last built index brought up to date, or
    (none usable) one built from the shards in memory."""
    prev = m.get("index") or {}
    dim = int(m["encoder"]["dim"])
    if prev and prev.get("kind") != LEGACY_KIND and prev.get("shards_indexed") is not None and (root / prev["file"]).is_file():
        try:
            index = read_index(root, prev, dim, mmap=False)
        except StoreError:
            index = None
        if index is not None:
            bring_up_to_date(index, root, m, prev["shards_indexed"], live)
            return index
    built = indexes.build(lambda: iter_latest(root, m["shards"], live), count_latest(root, m["shards"], live), dim,
                          transform_kind=transform_kind(m), fitted=frozen_transform(m, root),
                          policy=Policy.from_dict(m.get("index_policy")), measure=False)
    return built.index
