"""A summary of what a store holds (read-only; no model, no index load)."""

from __future__ import annotations

import math
import os
from collections import Counter

from ..catalog.store import REFIT_GROWTH, Store
from ..catalog.track import STATUS_OK


def store_info(path: str | os.PathLike) -> dict:
    """Encoder, counts, genres with counts, failures, missing files and disk size of a store, as plain data.
    Missing files are tracks an index run could not reach (an unmounted drive, an unreadable folder): they
    keep their vectors and come back without decoding when their files do."""
    store = Store(path)
    t = store.tracks.select(["path", "genre", "status", "error", "missing_since"]).to_pylist()
    ok = [r for r in t if r["status"] == STATUS_OK]
    genres = Counter(r["genre"] for r in ok if r["genre"])
    m = store.manifest
    counts = dict(m.get("counts", {}))
    missing = [{"path": r["path"], "since": r["missing_since"]} for r in t if r["missing_since"] is not None]
    counts.update(tracks=len(t), ok=len(ok), error=len(t) - len(ok), missing=len(missing))
    if counts.get("vectors") is None:
        counts["vectors"] = len(ok)
    return {
        "path": str(store.path.resolve()),
        "format_version": m["version"],
        "generation": store.generation,
        "encoder": {k: m["encoder"].get(k) for k in ("name", "dim", "fingerprint", "labels", "model", "runtimes")},
        "index": m.get("index"),
        "transform": None if not m.get("transform") else {
            **m["transform"], "refit_at": math.ceil(REFIT_GROWTH * max(int(m["transform"].get("fitted_on") or 0), 1))},
        "counts": counts,
        "genres": dict(genres.most_common()),
        "failures": [{"path": r["path"], "error": r["error"]} for r in t if r["status"] != STATUS_OK],
        "missing": missing,
        "disk_bytes": store.disk_bytes(),
    }
