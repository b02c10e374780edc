"""What the compact index costs in retrieval quality on real music, paired query by query.

The corpus (folder per group, or a ``labels.csv``) is indexed once with the default encoder; then the same
raw vectors go through each index form the store can build (``catalog.indexes``), and every track queries
all the others through FAISS. Each form's group precision@10 is compared with exact cosine over the full
standardised float vectors on the same queries: mean difference and a 95% paired bootstrap interval over
queries (2,000 resamples). Two fits: on the whole library (what a store does once it has fitted), and on a
random two thirds of it (what a store has just before its next refit, REFIT_GROWTH = 1.5), averaged over
five draws.

The thresholds that keep small libraries at full width in float16 (``PCA_MIN_FIT``, ``SQ8_MIN_FIT``) are
lowered here, so that the PCA and the 8-bit codes a large library gets are measured on this music.

    python benchmarks/compact_quality.py CORPUS_DIR [--store existing.soundalike]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

from soundalike.catalog import indexes
from soundalike.catalog.indexes import standardize

FORMS = [("full width, float16", None, "fp16"), ("full width, 8-bit", None, "sq8"),
         ("PCA 512, 8-bit", 512, "sq8"), ("PCA 256, 8-bit (default past 2000 tracks here)", 256, "sq8"),
         ("PCA 128, 8-bit", 128, "sq8"), ("PCA 256, IVF 8-bit (default past 200k)", 256, "ivf")]


def precision_at_k(unit_or_ids, groups: np.ndarray, k: int) -> np.ndarray:
    if isinstance(unit_or_ids, tuple):  # (ids of the top k+1 from FAISS, the query ids)
        found, qids = unit_or_ids
        out = []
        for row, q in zip(found, qids):
            row = [i for i in row if i != q and i >= 0][:k]
            out.append(np.mean(groups[row] == groups[q]))
        return np.asarray(out)
    s = unit_or_ids @ unit_or_ids.T
    np.fill_diagonal(s, -np.inf)
    top = np.argsort(-s, axis=1)[:, :k]
    return (groups[top] == groups[:, None]).mean(axis=1)


def paired(delta: np.ndarray, rng, n_boot: int = 2000) -> tuple[float, float, float]:
    idx = rng.integers(0, len(delta), (n_boot, len(delta)))
    boots = delta[idx].mean(axis=1)
    return float(delta.mean()), float(np.percentile(boots, 2.5)), float(np.percentile(boots, 97.5))


def form_index(raw: np.ndarray, fit_rows: np.ndarray, width: int | None, code: str):
    """An index of every row of ``raw`` with its transform and quantiser fitted on ``fit_rows``."""
    saved = indexes.PCA_WIDTHS, indexes.PCA_MIN_FIT, indexes.SQ8_MIN_FIT
    try:
        indexes.PCA_WIDTHS = (width or raw.shape[1],)
        indexes.PCA_MIN_FIT = 0 if width else 10**12
        indexes.SQ8_MIN_FIT = 10**12 if code == "fp16" else 0
        m = indexes.Moments(raw.shape[1])
        m.add(raw[fit_rows])
        fitted = indexes.fit("standardize", m, raw[fit_rows], len(fit_rows))
        kind = "ivf" if code == "ivf" else "flat"
        index = indexes.empty(fitted, raw.shape[1], kind, raw[fit_rows], len(raw))
    finally:
        indexes.PCA_WIDTHS, indexes.PCA_MIN_FIT, indexes.SQ8_MIN_FIT = saved
    index.add(np.arange(len(raw), dtype=np.int64), raw)
    if kind == "ivf":  # a corpus this small has a handful of lists: probe half of them, as nprobe would be chosen
        index.search_index.nprobe = max(1, index.search_index.nlist // 2)
    return index, fitted


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("corpus", type=Path)
    ap.add_argument("--store", type=Path, help="a store of this corpus already indexed with the default encoder")
    ap.add_argument("-k", type=int, default=10)
    args = ap.parse_args(argv)
    sys.path.insert(0, str(Path(__file__).parent))
    from quality import groups_of

    from soundalike.catalog.store import Store

    root = args.corpus.resolve()
    with tempfile.TemporaryDirectory() as tmp:
        store = args.store
        if store is None:
            from soundalike.indexer.run import index_library

            store = Path(tmp) / "corpus.soundalike"
            index_library(root, store, genre_from="folder", progress=sys.stderr.isatty(), log=lambda m: None)
        s = Store(store)
        ids, raw = s.vectors()
        path_of = {r["id"]: r["path"] for r in s.tracks.to_pylist()}
    groups = groups_of(root, [path_of[int(i)] for i in ids])
    rng = np.random.default_rng(0)
    n = len(raw)
    print(f"{root.name}: {n} tracks, {len(set(groups))} groups, {raw.shape[1]} dims; Δ = form - exact full float, "
          f"paired over queries, 95% bootstrap")
    print(f"{'index form':<44} {'fit':<14} {'B/track':>7} {'p@10':>6} {'Δ':>7} {'95% CI':>17}")
    for fit_label, draws in (("whole library", 1), ("2/3, 5 draws", 5)):
        ref_all, res = [], {f[0]: [] for f in FORMS}
        for d in range(draws):
            fit_rows = np.arange(n) if draws == 1 else np.sort(rng.choice(n, size=int(n / 1.5), replace=False))
            m = indexes.Moments(raw.shape[1])
            m.add(raw[fit_rows])
            mean, std = m.result()
            ref_all.append(precision_at_k(standardize(raw, mean, std), groups, args.k))
            for label, width, code in FORMS:
                index, _ = form_index(raw, fit_rows, width, code)
                _, found = index.search(index.embed(raw), args.k + 1)
                res[label].append(precision_at_k((found, np.arange(n)), groups, args.k))
        ref = np.mean(ref_all, axis=0)
        print(f"{'exact, full float':<44} {fit_label:<14} {raw.shape[1] * 4:>7} {ref.mean():6.3f}")
        for label, width, code in FORMS:
            p = np.mean(res[label], axis=0)
            mean_d, lo, hi = paired(p - ref, rng)
            size = (width or raw.shape[1]) * (2 if code == "fp16" else 1) + 8
            print(f"{label:<44} {fit_label:<14} {size:>7} {p.mean():6.3f} {mean_d:+7.3f} [{lo:+.3f}, {hi:+.3f}]")
    return 0


if __name__ == "__main__":
    sys.exit(main())
