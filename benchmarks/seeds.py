"""Several seeds ("more like these"): how to combine them, measured on real music.

For an indexed corpus (a store of it, and the corpus folder whose top folders or ``labels.csv`` give each
track's group, e.g. the soundtrack), seed sets of ``m`` tracks are drawn from one group, and the rest of the
library is ranked by each way of combining the seeds; precision@10 is the share of the top 10 (seeds left
out) from the seeds' group. Compared, paired on the same seed sets with a 95% bootstrap interval:

- ``one seed``: each seed alone (its mean over the set's seeds: what a user gets from one of them);
- ``best seed``: the best of the seeds alone, known only afterwards (an oracle, the bar to clear);
- ``centroid``: the mean of the seeds' unit vectors, searched as one query;
- ``max``: each track's best similarity to any seed (a union of the seeds' neighbourhoods);
- ``rrf``: reciprocal-rank fusion of the seeds' rankings (k = 60).

The vectors are the store's index vectors (what search uses).

    python benchmarks/seeds.py STORE CORPUS_DIR [--seeds 2 3 5] [--sets 300]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from quality import groups_of  # noqa: E402


def precision(scores: np.ndarray, seeds: np.ndarray, groups: np.ndarray, k: int = 10) -> float:
    s = scores.copy()
    s[seeds] = -np.inf
    top = np.argpartition(-s, k)[:k]
    return float(np.mean(groups[top] == groups[seeds[0]]))


def combined(unit: np.ndarray, seeds: np.ndarray) -> dict[str, np.ndarray]:
    sims = unit[seeds] @ unit.T  # [m, n]
    c = unit[seeds].mean(axis=0)
    ranks = np.argsort(np.argsort(-sims, axis=1), axis=1)
    return {"centroid": unit @ (c / np.linalg.norm(c)), "max": sims.max(axis=0),
            "rrf": (1.0 / (60 + ranks)).sum(axis=0)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("store", type=Path)
    ap.add_argument("corpus", type=Path)
    ap.add_argument("--seeds", type=int, nargs="*", default=[2, 3, 5])
    ap.add_argument("--sets", type=int, default=300)
    args = ap.parse_args()
    from soundalike.search.searcher import Searcher

    s = Searcher(args.store)
    ids = s.ids
    paths = s.values("path")
    unit = np.stack([s.vector(int(i)) for i in ids])
    unit /= np.linalg.norm(unit, axis=1, keepdims=True)
    groups = groups_of(args.corpus, paths)
    rng = np.random.default_rng(0)
    names, counts = np.unique(groups, return_counts=True)
    big = names[counts >= 12]
    print(f"{len(ids)} tracks, {len(names)} groups; seed sets from the {len(big)} groups of 12 or more tracks")
    for m in args.seeds:
        rows: dict[str, list[float]] = {"one seed": [], "best seed": [], "centroid": [], "max": [], "rrf": []}
        for _ in range(args.sets):
            g = rng.choice(big)
            seeds = rng.choice(np.flatnonzero(groups == g), size=m, replace=False)
            alone = [precision(unit @ unit[q], seeds, groups) for q in seeds]
            rows["one seed"].append(float(np.mean(alone)))
            rows["best seed"].append(float(np.max(alone)))
            for name, sc in combined(unit, seeds).items():
                rows[name].append(precision(sc, seeds, groups))
        base = np.asarray(rows["one seed"])
        print(f"\n{m} seeds, {args.sets} sets: precision@10 of the seeds' group (paired vs one seed, 95% bootstrap)")
        for name, vals in rows.items():
            v = np.asarray(vals)
            d = v - base
            boots = d[rng.integers(0, len(d), (2000, len(d)))].mean(axis=1)
            vs_best = v - np.asarray(rows["best seed"])
            bb = vs_best[rng.integers(0, len(d), (2000, len(d)))].mean(axis=1)
            print(f"  {name:10s} {v.mean():.3f}   vs one seed {d.mean():+.3f} [{np.percentile(boots, 2.5):+.3f}, "
                  f"{np.percentile(boots, 97.5):+.3f}]   vs best seed {vs_best.mean():+.3f} "
                  f"[{np.percentile(bb, 2.5):+.3f}, {np.percentile(bb, 97.5):+.3f}]")


if __name__ == "__main__":
    main()
