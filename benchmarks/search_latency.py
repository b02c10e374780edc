"""Query latency of the search layer against NumPy brute force, on synthetic stores.

For each N (default 10,000 and 100,000) it writes a real store (Parquet tracks, vector shards, FAISS
IndexIDMap2 over IndexFlatIP) of N random unit vectors at the default encoder's width (1906) with a genre
column (ten genres, so one genre holds 10% of the tracks), then times single queries through
``search.Searcher``: unfiltered and filtered to one genre (the filter runs inside FAISS). NumPy brute force
over the same vectors (a matrix-vector product and ``argpartition``; the filtered case over the genre's rows)
is timed in the same run, and every query checks that both return the same ids. Beside them: the memory
bound (the vectors' bytes over the read bandwidth measured in the same run), the store's bytes per track on
disk, and the peak RSS of the process.

    python benchmarks/search_latency.py [--sizes 10000 100000] [--dim 1906] [--queries 300] [--json results.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np



from soundalike.catalog.store import StoreWriter  # noqa: E402
from soundalike.catalog.track import Track  # noqa: E402
from soundalike.search.searcher import Searcher  # noqa: E402

GENRES = [f"genre{i}" for i in range(10)]


def build_store(path: Path, n: int, dim: int, rng) -> np.ndarray:
    vecs = rng.standard_normal((n, dim)).astype(np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    encoder = {"name": "synthetic", "fingerprint": f"synthetic-{dim}", "dim": dim}
    with StoreWriter(path, encoder=encoder) as w:
        for i in range(n):
            tid = w.id_for(f"/synthetic/{i:07d}.flac")
            w.put(Track(id=tid, path=f"/synthetic/{i:07d}.flac", size=1, mtime=0.0, duration_s=180.0,
                        title=f"track {i}", artist=f"artist {i % 997}", genre=GENRES[i % len(GENRES)]), vecs[i])
        w.commit()
    return vecs


def brute_force(vecs: np.ndarray, rows: np.ndarray | None, q: np.ndarray, k: int) -> np.ndarray:
    """Ids (= row numbers here) of the k best inner products, best first."""
    sub = vecs if rows is None else vecs[rows]
    scores = sub @ q
    top = np.argpartition(-scores, k)[:k]
    top = top[np.argsort(-scores[top])]
    return top if rows is None else rows[top]


def read_bandwidth(vecs: np.ndarray) -> float:
    """Bytes per second one thread reads from ``vecs`` (best of 3 full passes)."""
    best = float("inf")
    for _ in range(3):
        t = time.perf_counter()
        float(vecs.sum(dtype=np.float32))
        best = min(best, time.perf_counter() - t)
    return vecs.nbytes / best


def pct(xs, p) -> float:
    return float(np.percentile(np.asarray(xs) * 1000, p))


def run(n: int, dim: int, n_queries: int, k: int, rng, workdir: Path) -> list[dict]:
    store = workdir / f"bench-{n}.soundalike"
    t = time.perf_counter()
    vecs = build_store(store, n, dim, rng)
    build_s = time.perf_counter() - t
    t = time.perf_counter()
    searcher = Searcher(store)  # opens the store and loads its index
    open_s = time.perf_counter() - t
    disk = sum(p.stat().st_size for p in store.rglob("*") if p.is_file())
    bandwidth = read_bandwidth(vecs)
    genre = GENRES[3]
    genre_rows = np.flatnonzero(np.arange(n) % len(GENRES) == 3)
    queries = rng.standard_normal((n_queries, dim)).astype(np.float32)
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    rows = []
    for label, genres, subset in (("unfiltered", None, None), ("genre 10%", [genre], genre_rows)):
        # each side in a loop of its own: NumPy's BLAS threads spin after a call and would slow the next query
        t_api, t_np, got, want = [], [], [], []
        for q in queries:
            t0 = time.perf_counter()
            got.append(searcher.search_vector(q, k=k, genres=genres))
            t_api.append(time.perf_counter() - t0)
        for q in queries:
            t0 = time.perf_counter()
            want.append(brute_force(vecs, subset, q, k))
            t_np.append(time.perf_counter() - t0)
        # the same ids, but for near ties (scores within float rounding) that two summation orders may swap
        mismatches = sum(
            [h.id for h in hits] != ref.tolist()
            and not np.allclose([h.score for h in hits], vecs[ref] @ q, atol=1e-5)
            for q, hits, ref in zip(queries, got, want))
        rows.append({
            "n": n, "query": label, "k": k, "queries": n_queries,
            "api_p50_ms": pct(t_api, 50), "api_p99_ms": pct(t_api, 99),
            "numpy_p50_ms": pct(t_np, 50), "numpy_p99_ms": pct(t_np, 99),
            "same_ids": mismatches == 0, "mismatched_queries": mismatches,
            "memory_bound_ms": 1000 * vecs.nbytes * (1 if subset is None else len(subset) / n) / bandwidth,
            "read_gb_s": bandwidth / 1e9, "disk_bytes_per_track": disk / n,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "store_build_s": round(build_s, 2), "store_open_s": round(open_s, 3),
        })
    return rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    ap.add_argument("--queries", type=int, default=300)
    ap.add_argument("-k", type=int, default=10)
    ap.add_argument("--dim", type=int, default=1906, help="vector width (the default encoder's is 1906)")
    ap.add_argument("--json", dest="json_path", default="benchmarks/results/search_latency.json")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    import faiss

    rng = np.random.default_rng(args.seed)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in args.sizes:
            rows += run(n, args.dim, args.queries, args.k, rng, Path(tmp))
    print(f"search latency, k={args.k}, dim={args.dim}, {args.queries} single queries each "
          f"(faiss {faiss.__version__}, {os.cpu_count()} cores, {platform.processor() or platform.machine()})")
    print(f"{'N':>8} {'query':<11} {'api p50':>9} {'api p99':>9} {'numpy p50':>10} {'numpy p99':>10} {'mem bound':>10}"
          f"  same ids  {'disk/track':>10} {'open':>7} {'peak RSS':>9}")
    for r in rows:
        print(f"{r['n']:>8} {r['query']:<11} {r['api_p50_ms']:>7.3f}ms {r['api_p99_ms']:>7.3f}ms "
              f"{r['numpy_p50_ms']:>8.3f}ms {r['numpy_p99_ms']:>8.3f}ms {r['memory_bound_ms']:>8.3f}ms  "
              f"{'yes     ' if r['same_ids'] else 'NO (%d)  ' % r['mismatched_queries']}  "
              f"{r['disk_bytes_per_track'] / 1e3:>8.1f}KB {r['store_open_s']:>6.2f}s {r['peak_rss_mb']:>7.0f}MB")
    if args.json_path:
        out = Path(args.json_path)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps({"rows": rows, "faiss": faiss.__version__, "cores": os.cpu_count()}, indent=2))
        print(f"written {out}")
    return 0 if all(r["same_ids"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
