"""Inverted lists and their codes in each store shape's space, in FAISS directly: recall@10 and single-query
latency at each nprobe, for the index the store builds (8-bit codes, ``by_residual`` off), other list counts,
fast-scan 4-bit codes alone, and the sketch (``catalog.sketch``: fast-scan codes shortlisting for the 8-bit ones).

The vectors are ``scale_data``'s music-shaped library, through the transform each store shape fits: ``whiten``
(mean and spread, whitened within tracks by ``catalog.within``) and ``before`` (the mean, standardised, the PCA
a store keeps). Recall is against exact search over the full vectors in the store's metric, for 200 tracks of
the library, one thread.

    python benchmarks/ivf_codes.py [--tracks 1000000] [--shape whiten before] [--lists 2048 4096] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from scale_data import SHARD, SPREAD_SEED, MusicLike, spread_of  # noqa: E402

from soundalike.catalog import indexes, within  # noqa: E402

FIT = 100_000  # tracks the transform and the lists are fitted on (the store's FIT_SAMPLE)
QUERIES, K = 200, 10
NPROBES = (16, 32, 48, 64, 96, 128, 160, 192, 256, 320)


def library(n: int, shape: str, qpos: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The index-space unit vectors of ``n`` tracks ``[n, width]`` and the exact top ten of the tracks at
    ``qpos`` over the full vectors (ids are positions)."""
    data = MusicLike(n, seed=0)
    spread = MusicLike(n, seed=SPREAD_SEED) if shape == "whiten" else None

    def chunk(s):
        return spread_of(data, spread, s, min(n, s + SHARD)) if spread else (data.chunk(s, min(n, s + SHARD)), None)

    sample, sums = [], within.WithinScatter(data.dim)
    for s in range(0, min(n, FIT), SHARD):
        raw, feats = chunk(s)
        sample.append(raw)
        for f in feats or ():
            if f is not None:
                sums.add(f)
    sample = np.concatenate(sample)
    moments = indexes.Moments(sample.shape[1])
    moments.add(sample)
    if shape == "whiten":
        fitted = within.fit(indexes.fit("whiten", moments, sample, n, widths=()), sample, sums)
        to_index = exact = indexes.exact_space(fitted, refined=True)
    else:
        fitted = indexes.fit("standardize", moments, sample, n)
        exact = lambda x: indexes.unit(indexes.standardize(x, fitted.mean, fitted.std))  # noqa: E731
        to_index = lambda x: indexes.unit(indexes.standardize(x, fitted.mean, fitted.std) @ fitted.basis)  # noqa: E731
    q = np.concatenate([exact(chunk(s)[0][qpos[(qpos >= s) & (qpos < s + SHARD)] - s])
                        for s in range(0, n, SHARD) if ((qpos >= s) & (qpos < s + SHARD)).any()])
    out = np.zeros((n, fitted.basis.shape[1]), np.float32)
    best = np.full((len(qpos), K), -np.inf, np.float32)
    best_i = np.zeros((len(qpos), K), np.int64)
    for s in range(0, n, SHARD):  # (a second pass: the rows, and each against the queries)
        raw = chunk(s)[0]
        out[s : s + len(raw)] = to_index(raw)
        sc = q @ exact(raw).T
        cat = np.concatenate([best, sc], 1)
        cat_i = np.concatenate([best_i, np.broadcast_to(np.arange(s, s + len(raw)), sc.shape)], 1)
        top = np.argsort(-cat, axis=1)[:, :K]
        best, best_i = np.take_along_axis(cat, top, 1), np.take_along_axis(cat_i, top, 1)
    return out, best_i


def curve(search, q: np.ndarray, truth: np.ndarray) -> list[dict]:
    """recall@10 and p50 ms of ``search(q_row, nprobe)`` at each nprobe, up to recall 0.97."""
    rows = []
    for p in NPROBES:
        times, found = [], []
        for v in q:
            t = time.perf_counter()
            found.append(search(v[None], p))
            times.append(time.perf_counter() - t)
        r = float(np.mean([len(set(f) & set(t)) / K for f, t in zip(found, truth)]))
        rows.append({"nprobe": p, "recall": round(r, 4), "p50_ms": round(1000 * float(np.median(times)), 3)})
        print(f"    nprobe {p:4d}  recall@10 {r:.4f}  {rows[-1]['p50_ms']:.3f} ms", file=sys.stderr, flush=True)
        if r >= 0.97 or (len(rows) >= 3 and r - rows[-3]["recall"] < 0.002):  # (there, or no further)
            break
    return rows


def indexes_of(x: np.ndarray, lists: list[int], train: np.ndarray) -> dict:
    """name -> (index, search(q, nprobe) -> ids)."""
    import faiss

    from soundalike.catalog.sketch import Sketch

    d, made = x.shape[1], {}
    for nlist in lists:
        ivf = faiss.IndexIVFScalarQuantizer(faiss.IndexFlatIP(d), d, nlist, faiss.ScalarQuantizer.QT_8bit,
                                            faiss.METRIC_INNER_PRODUCT, False)
        ivf.cp.niter = 10  # as the store trains its lists
        ivf.train(train)
        ivf.add_with_ids(x, np.arange(len(x), dtype=np.int64))

        def codes(v, p, ivf=ivf):
            return ivf.search(v, K, params=faiss.SearchParametersIVF(nprobe=p))[1][0]

        made[f"IVF{nlist},SQ8"] = codes
        if nlist == lists[0]:
            sketch = Sketch(ivf, indexes.id_positions(ivf))
            made[f"IVF{nlist},SQ8 + sketch"] = lambda v, p, s=sketch: s.search(v, K, nprobe=p)[1][0]
            fast = sketch.fast
            made[f"IVF{nlist},PQ{fast.pq.M}x4fs alone"] = (
                lambda v, p, f=fast: f.search(v, K, params=faiss.SearchParametersIVF(nprobe=p))[1][0])
            made["_keep"] = (ivf, sketch)
    return made


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tracks", type=int, default=1_000_000)
    ap.add_argument("--shape", nargs="+", choices=("whiten", "before"), default=["whiten", "before"])
    ap.add_argument("--lists", type=int, nargs="+", default=[2048, 4096])
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    import faiss

    rng = np.random.default_rng(0)
    qpos = np.sort(rng.choice(args.tracks, QUERIES, replace=False))
    train_at = np.sort(rng.choice(args.tracks, min(args.tracks, FIT), replace=False))
    results = {}
    for shape in args.shape:
        t = time.perf_counter()
        x, truth = library(args.tracks, shape, qpos)
        print(f"{shape}: {args.tracks} tracks of width {x.shape[1]} in {time.perf_counter() - t:.0f} s", file=sys.stderr)
        faiss.omp_set_num_threads(2)
        made = indexes_of(x, args.lists, np.ascontiguousarray(x[train_at]))
        faiss.omp_set_num_threads(1)
        for name, search in made.items():
            if name.startswith("_"):
                continue
            print(f"  {shape} {name}", file=sys.stderr, flush=True)
            results[f"{shape} {name}"] = curve(search, x[qpos], truth)
        del made, x
    print("| space, index | nprobe for recall@10 0.95 | p50 ms there | best recall (nprobe) |")
    print("|---|---|---|---|")
    for name, rows in results.items():
        there = next((r for r in rows if r["recall"] >= 0.95), None)
        top = max(rows, key=lambda r: r["recall"])
        print(f"| {name} | {there['nprobe'] if there else '-'} | {there['p50_ms'] if there else '-'} | "
              f"{top['recall']} ({top['nprobe']}) |")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
