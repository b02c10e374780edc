"""A summary of what a store holds (read-only; no model, no index load)."""

from __future__ import annotations

import math
import os
from collections import Counter

import numpy as np

from ..catalog.store import REFIT_GROWTH, Store
from ..catalog.track import bool_arrow, codes_np, floats_np, ok_mask


def store_info(path: str | os.PathLike) -> dict:
    """Encoder, counts, genres with counts, failures, missing files and disk size of a store, as plain data.
    Missing files are tracks an index run could not reach (an unmounted drive, an unreadable folder): they
    keep their vectors and come back without decoding when their files do."""
    import pyarrow.compute as pc

    # counted in columns, not rows: a million tracks are a million Python dicts otherwise (3 s at 1M); only the
    # failed and missing tracks become rows
    store = Store(path, columns=["path", "genre", "status", "error", "missing_since", "bpm", "key"],
                  dictionary=("status", "genre", "key"))
    t = store.tracks
    ok = ok_mask(t.column("status"))
    codes, names = codes_np(t.column("genre"))
    per_genre = np.bincount(codes[ok & (codes >= 0)], minlength=len(names)) if len(names) else []
    genres = Counter({g: int(n) for g, n in zip(names, per_genre) if g and n})
    gone = np.asarray(pc.is_valid(t.column("missing_since")).to_numpy(zero_copy_only=False), bool) if len(t) else np.zeros(0, bool)
    missing = [{"path": r["path"], "since": r["missing_since"]}
               for r in t.filter(bool_arrow(gone)).select(["path", "missing_since"]).to_pylist()]
    failed = t.filter(bool_arrow(~ok)).select(["path", "error"]).to_pylist()
    key_codes, _ = codes_np(t.column("key"))
    music = {"with_tempo": int((ok & ~np.isnan(floats_np(t.column("bpm")))).sum()) if len(t) else 0,
             "with_key": int((ok & (key_codes >= 0)).sum()) if len(t) else 0}
    m = store.manifest
    counts = dict(m.get("counts", {}))
    counts.update(tracks=len(t), ok=int(ok.sum()), error=len(t) - int(ok.sum()), missing=len(missing))
    if counts.get("vectors") is None:
        counts["vectors"] = int(ok.sum())
    return {
        "path": str(store.path.resolve()),
        "format_version": m["version"],
        "generation": store.generation,
        "encoder": {k: m["encoder"].get(k) for k in ("name", "dim", "fingerprint", "labels", "model", "runtimes")},
        "index": m.get("index"),  # the index file's bookkeeping
        "index_infos": store.index_infos(),  # what its build measured: recall, nprobe, latency
        "windows": m.get("windows"),
        "within": m.get("within"),  # the within-track sums a whitening is fitted from (catalog.within)
        "neighbours": m.get("neighbours") if m["encoder"].get("rescore") == "csls" else None,
        "transform": None if not m.get("transform") else {
            **m["transform"], "refit_at": math.ceil(REFIT_GROWTH * max(int(m["transform"].get("fitted_on") or 0), 1))},
        "counts": counts,
        "genres": dict(genres.most_common()),
        "music": music,
        "failures": failed,
        "missing": missing,
        "disk_bytes": store.disk_bytes(),
    }
