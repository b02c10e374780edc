"""Retrieval quality on a folder-per-group corpus: do songs of one group find each other?

Every track queries all the others (leave-one-out); a neighbour is relevant when it comes from the query's
group (its top folder, or the ``group`` column of a ``labels.csv`` at the corpus root). For each encoder the
corpus is indexed for real (``indexer.index_library`` into a temporary store) and the store's own index
vectors are ranked, so the figures measure exactly what ``soundalike search`` returns. Beside them: a
hand-crafted timbre baseline (mean and standard deviation of 20 MFCCs and 7 spectral-contrast bands over
the same kind of windows, z-scored, cosine) and chance.

    python benchmarks/quality.py CORPUS_DIR [--encoder musicnn] [--encoder musicnn-mtt] [--model seed.keras]
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np



from soundalike.catalog.scan import scan  # noqa: E402


def groups_of(root: Path, paths: list[str]) -> np.ndarray:
    labels = root / "labels.csv"
    if labels.is_file():
        by_path = {str((root / r["relpath"]).resolve()): r["group"] for r in csv.DictReader(open(labels))}
        return np.asarray([by_path.get(str(Path(p).resolve()), Path(p).relative_to(root).parts[0]) for p in paths])
    return np.asarray([Path(p).relative_to(root).parts[0] for p in paths])


def per_query(unit: np.ndarray, groups: np.ndarray, k: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """Leave-one-out precision@k and average precision of cosine ranking, one value per query track."""
    return per_query_scores(unit @ unit.T, groups, k)


def per_query_scores(scores: np.ndarray, groups: np.ndarray, k: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """Leave-one-out precision@k and average precision of ranking each row of ``scores`` ``[n, n]`` (higher
    is nearer; the diagonal, a query's score with itself, is ignored), one value per query track."""
    s = np.array(scores, dtype=np.float64)
    np.fill_diagonal(s, -np.inf)
    n = len(s)
    order = np.argsort(-s, axis=1, kind="stable")[:, : n - 1]
    rel = groups[order] == groups[:, None]
    p_at_k = rel[:, :k].mean(axis=1)
    precision = np.cumsum(rel, axis=1) / np.arange(1, n)
    aps = (precision * rel).sum(axis=1) / np.maximum(rel.sum(axis=1), 1)
    return p_at_k, aps


def bootstrap(values: np.ndarray, *, draws: int = 2000, seed: int = 0) -> tuple[float, float]:
    """95% interval of the mean of per-query ``values`` (a paired difference, when they are one), resampling
    the queries."""
    values = np.asarray(values, np.float64)
    means = values[np.random.default_rng(seed).integers(0, len(values), (draws, len(values)))].mean(axis=1)
    return float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))


def retrieval(unit: np.ndarray, groups: np.ndarray, k: int = 10) -> dict:
    """Leave-one-out precision@k and mean average precision of cosine ranking, with 95% bootstrap intervals
    over queries, and the per-query values (for paired comparisons)."""
    return retrieval_scores(unit @ unit.T, groups, k)


def retrieval_scores(scores: np.ndarray, groups: np.ndarray, k: int = 10) -> dict:
    """:func:`retrieval` of a ranking given as scores ``[n, n]`` (higher is nearer)."""
    p, ap = per_query_scores(scores, groups, k)
    return {"p_at_k": float(p.mean()), "p_at_k_ci": bootstrap(p), "map": float(ap.mean()), "map_ci": bootstrap(ap),
            "per_query": {"p_at_k": p, "ap": ap}}


def paired(row: dict, base: dict) -> dict:
    """``row`` against ``base`` on the same queries: mean differences and their 95% bootstrap intervals."""
    dp = row["per_query"]["p_at_k"] - base["per_query"]["p_at_k"]
    da = row["per_query"]["ap"] - base["per_query"]["ap"]
    return {"d_p_at_k": float(dp.mean()), "d_p_at_k_ci": bootstrap(dp), "d_map": float(da.mean()), "d_map_ci": bootstrap(da)}


def chance(groups: np.ndarray) -> dict:
    n = len(groups)
    share = np.asarray([(np.sum(groups == g) - 1) / (n - 1) for g in groups])
    return {"p_at_k": float(share.mean()), "map": float(share.mean())}


def zscore(x: np.ndarray) -> np.ndarray:
    return (x - x.mean(axis=0)) / (x.std(axis=0) + 1e-8)


def unit_rows(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def timbre_features(path: str, *, n_windows: int = 16) -> np.ndarray:
    import librosa

    from soundalike.model.audio import load_windows

    w, _ = load_windows(path, sample_rate=22050, window_s=3.0, n_windows=n_windows)
    spec = np.abs(librosa.stft(w.reshape(-1), n_fft=2048, hop_length=512))
    mel_db = librosa.power_to_db(librosa.feature.melspectrogram(S=spec**2, sr=22050))
    f = np.vstack([librosa.feature.mfcc(S=mel_db, n_mfcc=20), librosa.feature.spectral_contrast(S=spec, sr=22050)])
    return np.concatenate([f.mean(axis=1), f.std(axis=1)])


def store_scores(s, paths: list[str]) -> np.ndarray:
    """Scores ``[n, n]`` between ``paths`` in the opened store ``s``, as search ranks them: the cosine of their
    index vectors, less half each candidate's r where the store ranks by CSLS (``catalog.neighbours``)."""
    index = s.index()
    by_path = {r["path"]: r["id"] for r in s.tracks.to_pylist() if r["status"] == "ok"}
    ids = np.asarray([by_path[p] for p in paths], np.int64)
    unit = np.stack([index.reconstruct(int(i)) for i in ids]).astype(np.float64)
    hubs = s.neighbourhoods()
    return unit @ unit.T - (0 if hubs is None else hubs.of(ids)[None, :] / 2)


def encoder_run(root: Path, encoder: str, workdir: Path, paths: list[str]) -> tuple[np.ndarray, dict]:
    from soundalike.catalog.store import Store
    from soundalike.indexer.run import index_library

    store = workdir / f"{Path(encoder).stem}.soundalike"
    t = time.perf_counter()
    report = index_library(root, store, model=encoder, genre_from="folder", progress=sys.stderr.isatty(),
                           log=lambda m: print(m, file=sys.stderr))
    seconds = time.perf_counter() - t
    s = Store(store)
    scores = store_scores(s, paths)
    info = {"index_s": round(seconds, 1), "windows": report.windows, "failed": report.failed,
            "encode_s": round(report.stages["encode"], 1), "decode_s": round(report.stages["decode"], 1),
            "windows_per_s_model": round(report.windows / max(report.stages["encode"], 1e-9), 1),
            "dim": s.dim}
    return scores, info


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("corpus", type=Path)
    ap.add_argument("--encoder", action="append", help="built-in encoder (default: musicnn); repeatable")
    ap.add_argument("--model", action="append", default=[], help="a trained .keras model to compare; repeatable")
    ap.add_argument("-k", type=int, default=10)
    ap.add_argument("--json", dest="json_path", default="benchmarks/results/quality.json")
    args = ap.parse_args(argv)
    root = args.corpus.resolve()
    paths = [e.path for e in scan(root)]
    groups = groups_of(root, paths)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for enc in (args.encoder or ["musicnn"]) + args.model:
            scores, info = encoder_run(root, enc, Path(tmp), paths)
            rows.append({"method": Path(enc).name, **retrieval_scores(scores, groups, args.k), **info})
    t = time.perf_counter()
    timbre = np.stack([timbre_features(p) for p in paths])
    rows.append({"method": "timbre baseline (MFCC+contrast)", **retrieval(unit_rows(zscore(timbre)), groups, args.k),
                 "index_s": round(time.perf_counter() - t, 1)})
    rows.append({"method": "chance", **chance(groups)})

    n_groups = len(set(groups))
    print(f"{root.name}: {len(paths)} tracks in {n_groups} groups; each track queries the other {len(paths) - 1}")
    print(f"(95% intervals: bootstrap over queries; differences paired with {rows[0]['method']} on the same queries)")
    print(f"{'method':<32} {'p@' + str(args.k) + ' [95%]':>21} {'mAP [95%]':>21} {'Δp@k vs first [95%]':>24} {'time':>6} {'model w/s':>9}")
    for r in rows:
        speed = f"{r['windows_per_s_model']:.1f}" if "windows_per_s_model" in r else ""
        took = f"{r['index_s']:.0f}s" if "index_s" in r else ""
        ci = lambda v, lo_hi: f"{v:.3f} [{lo_hi[0]:.3f}, {lo_hi[1]:.3f}]" if lo_hi else f"{v:.3f}"  # noqa: E731
        d = ""
        if "per_query" in r and r is not rows[0]:
            c = paired(r, rows[0])
            r.update(c)
            d = f"{c['d_p_at_k']:+.3f} [{c['d_p_at_k_ci'][0]:+.3f}, {c['d_p_at_k_ci'][1]:+.3f}]"
        print(f"{r['method']:<32} {ci(r['p_at_k'], r.get('p_at_k_ci')):>21} {ci(r['map'], r.get('map_ci')):>21} {d:>24} "
              f"{took:>6} {speed:>9}")
    for r in rows:
        r.pop("per_query", None)
    if args.json_path:
        out = Path(args.json_path)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps({"corpus": str(root.name), "tracks": len(paths), "groups": n_groups, "k": args.k,
                                   "rows": rows}, indent=2))
        print(f"written {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
