"""A summary of what a store holds (read-only; no model, no index load)."""

from __future__ import annotations

import os
from collections import Counter

from catalog.store import Store
from catalog.track import STATUS_OK


def store_info(path: str | os.PathLike) -> dict:
    """Encoder, counts, genres with counts, failures and disk size of a store, as plain data."""
    store = Store(path)
    t = store.tracks.select(["path", "genre", "status", "error"]).to_pylist()
    ok = [r for r in t if r["status"] == STATUS_OK]
    genres = Counter(r["genre"] for r in ok if r["genre"])
    m = store.manifest
    counts = dict(m.get("counts", {}))
    counts.update(tracks=len(t), ok=len(ok), error=len(t) - len(ok))
    if counts.get("vectors") is None:
        counts["vectors"] = len(ok)
    return {
        "path": str(store.path.resolve()),
        "format_version": m["version"],
        "generation": store.generation,
        "encoder": {k: m["encoder"].get(k) for k in ("name", "dim", "fingerprint", "labels", "model", "runtimes")},
        "index": m.get("index"),
        "counts": counts,
        "genres": dict(genres.most_common()),
        "failures": [{"path": r["path"], "error": r["error"]} for r in t if r["status"] != STATUS_OK],
        "disk_bytes": store.disk_bytes(),
    }
