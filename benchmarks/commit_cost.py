"""What a commit costs on a big store: a store of N tracks at the default encoder's width is written through
StoreWriter (checkpoints every 10,000 tracks, then one full commit), then ONE track is added and committed (what
every nightly `index` run costs), then the index is rebuilt from the shards (`reindex`). Prints seconds and peak
RSS of each step, in separate processes so the peaks are each step's own.

    python benchmarks/commit_cost.py [--tracks 100000] [--dim 1906] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

STEP = r"""
import json, resource, sys, time
import numpy as np
from soundalike.catalog.store import StoreWriter
from soundalike.catalog.track import Track
store, step, n, dim = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
enc = {"name": "bench", "fingerprint": "bench", "dim": dim, "transform": "standardize"}
rng = np.random.default_rng(0 if step == "build" else 1)
t = time.perf_counter()
if step == "reindex":
    from soundalike.catalog.check import reindex
    reindex(store)
else:
    with StoreWriter(store, encoder=enc) as w:
        count = n if step == "build" else 1
        for start in range(0, count, 10000):
            vecs = rng.standard_normal((min(10000, count - start), dim)).astype(np.float32)
            for row in vecs:
                path = f"/music/{step}/{w.manifest['next_id']}.flac"
                w.put(Track(id=w.id_for(path), path=path, size=1, mtime=1.0), row)
            if step == "build":
                w.checkpoint()
        w.commit()
print(json.dumps({"step": step, "seconds": time.perf_counter() - t,
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tracks", type=int, default=100_000)
    ap.add_argument("--dim", type=int, default=1906)
    ap.add_argument("--steps", default="build,add_one,add_one,reindex", help="Comma-separated steps to run, in order.")
    ap.add_argument("--json", dest="json_path")
    args = ap.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        store = Path(tmp) / "bench.soundalike"
        for step in args.steps.split(","):
            out = subprocess.run([sys.executable, "-c", STEP, str(store), step, str(args.tracks), str(args.dim)],
                                 capture_output=True, text=True, check=True)
            rows.append(json.loads(out.stdout))
            r = rows[-1]
            print(f"{args.tracks:>9} x {args.dim}  {r['step']:<8} {r['seconds']:8.2f} s  peak RSS {r['peak_rss_mb']:8.0f} MB",
                  flush=True)
        disk = sum(p.stat().st_size for p in store.rglob("*") if p.is_file())
        print(f"disk {disk / 1e6:.0f} MB ({disk / args.tracks / 1e3:.1f} KB per track)")
    if args.json_path:
        Path(args.json_path).write_text(json.dumps({"tracks": args.tracks, "dim": args.dim, "steps": rows,
                                                    "disk_bytes": disk}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
