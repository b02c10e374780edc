"""Writes ``store_v1.soundalike``: a small store in the first store format (an ``IDMap2,Flat`` index of
standardised unit vectors and the standardisation in ``transform.g*.npz``), with ``store_v1.json`` holding
what it answered. Kept so that later formats are tested to open it without re-embedding anything.

Run once with the code of that format: ``python tests/golden/make_store_v1.py``."""

import json
import shutil
from pathlib import Path

import numpy as np

from soundalike.catalog.store import Store, StoreWriter
from soundalike.catalog.track import Track
from soundalike.search.searcher import Searcher

HERE = Path(__file__).parent
DIM = 24


def main() -> None:
    out = HERE / "store_v1.soundalike"
    shutil.rmtree(out, ignore_errors=True)
    rng = np.random.default_rng(7)
    centres = rng.normal(size=(4, DIM)) * 3
    enc = {"name": "golden", "fingerprint": "golden-v1", "dim": DIM, "labels": [], "transform": "standardize"}
    genres = ["rock", "jazz", "folk", "ambient"]
    with StoreWriter(out, encoder=enc) as w:
        for i in range(40):
            g = i % 4
            t = Track(id=w.id_for(f"/music/{genres[g]}/track{i:02d}.flac"), path=f"/music/{genres[g]}/track{i:02d}.flac",
                      size=1000 + i, mtime=1.7e9 + i, duration_s=180.0 + i, title=f"Track {i}", artist=f"Artist {i % 7}",
                      genre=genres[g])
            w.put(t, centres[g] + rng.normal(size=DIM))
            if i == 29:
                w.commit()
        w.commit()  # the second commit updates the index in place
    s = Searcher(Store.open(out))
    answers = {str(i): [[h.id, round(float(h.score), 6)] for h in s.search_id(i, k=5)] for i in (0, 5, 33)}
    answers["rock:1"] = [h.id for h in s.search_id(1, k=5, genres=["rock"])]
    (HERE / "store_v1.json").write_text(json.dumps(answers, indent=1) + "\n")


if __name__ == "__main__":
    main()
