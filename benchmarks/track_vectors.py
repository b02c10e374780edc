"""Which track vector, and which query-time scoring? Representation and rescoring choices on one or more
folder-per-group corpora, each with its paired interval, and pooled.

Each track's windows are decoded once (16 windows, the default layout, and 32) and run once through both shipped
musicnn models (MSD, MTT); every output a track vector could be made of is kept in a cache beside each corpus,
and each variant is then a few lines over it: which layers, which pooling over windows, how many windows,
standardised or raw, one model or both, hand-made timbre statistics fused in; and, over the two pooled vectors,
the field's answers to hubness (CSLS, local scaling, mutual proximity) and query expansion; and the library
transform of the default encoder's stores (``catalog.within``: mean and spread, whitened against how each
track's own windows vary), with its constants moved one at a time. Every variant is
ranked exactly (leave-one-out, ``benchmarks/quality.py``'s protocol) and compared with the reference (what
soundalike ships unless ``--reference``) on the same queries: the mean difference in group precision@10 on each corpus
with its 95% paired bootstrap interval, and pooled over corpora (each corpus weighs the same; queries
resampled within their corpus). The rule for a default, printed in the last column: it GAINS when the pooled
difference clears zero and no corpus's interval lies wholly below zero; it "loses" when one does.

``--int8`` adds the encoder quantised to 8 bits (``benchmarks/quantize.py``), calibrated two-fold by group: the int8
vectors of one half of the soundtracks come from a model calibrated on windows of the other half only, so
no track is ever scored by a model that saw it.

    python benchmarks/track_vectors.py CORPUS_A [CORPUS_B ...] [--reference NAME] [--int8] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from quality import bootstrap, groups_of, per_query, per_query_scores  # noqa: E402

from soundalike.catalog.scan import scan  # noqa: E402

OUTPUTS = ("mean_pool", "max_pool", "penultimate", "tags")


def window_outputs(paths: list[str], model: str, n_windows: int, route: str | None = None, compiled=None) -> dict:
    """For every path, the model's outputs on its analysis windows: ``{output: [windows, dim] float16}``."""
    from tqdm import tqdm

    from soundalike.model.musicnn import FRAMES, N_MELS, MusicnnEncoder
    from soundalike.model.pipeline import extract_many

    enc = MusicnnEncoder(model, n_windows=n_windows, runtime_route=route)
    run = compiled or enc._model()
    out = {}
    for ex in tqdm(extract_many(paths, enc.frontend), total=len(paths), desc=f"{model} x{n_windows}", leave=False):
        if ex.error:
            print(f"{ex.path}: {ex.error}", file=sys.stderr)
            continue
        x = np.ascontiguousarray(np.transpose(ex.features, (0, 2, 1)))
        assert x.shape[1:] == (FRAMES, N_MELS)
        taggram, _, pen, mean_pool, max_pool = run(x)
        out[ex.path] = {"mean_pool": mean_pool, "max_pool": max_pool, "penultimate": pen, "tags": taggram}
    return out


def cached(cache: Path, name: str, make) -> dict:
    f = cache / f"{name}.npz"
    if f.is_file():
        with np.load(f, allow_pickle=False) as z:
            out: dict = {}
            for key in z.files:
                path, output = key.rsplit("|", 1)
                out.setdefault(path, {})[output] = z[key].astype(np.float32)
            return out
    t = time.perf_counter()
    data = make()
    print(f"{name}: {time.perf_counter() - t:.0f} s", file=sys.stderr)
    cache.mkdir(parents=True, exist_ok=True)
    np.savez(f, **{f"{p}|{o}": v.astype(np.float16) for p, d in data.items() for o, v in d.items()})
    return cached(cache, name, lambda: None)


def timbre_rhythm(paths: list[str]) -> dict:
    """Hand-made statistics over the default windows: 20 MFCCs and 7 spectral-contrast bands (mean, std), and
    the onset envelope's autocorrelation at 48 lags (rhythm)."""
    import librosa
    from tqdm import tqdm

    from soundalike.model.musicnn import frontend

    fe = frontend(16)
    out = {}
    for p in tqdm(paths, desc="timbre", leave=False):
        w, _ = fe.windows(p)
        spec = np.abs(librosa.stft(w, n_fft=1024, hop_length=512))  # [n, bins, frames]
        feats, acfs = [], []
        for s in spec:
            mel_db = librosa.power_to_db(librosa.feature.melspectrogram(S=s**2, sr=fe.sample_rate))
            feats.append(np.vstack([librosa.feature.mfcc(S=mel_db, n_mfcc=20),
                                    librosa.feature.spectral_contrast(S=s, sr=fe.sample_rate)]))
            env = librosa.onset.onset_strength(S=mel_db, sr=fe.sample_rate)
            a = librosa.autocorrelate(env - env.mean(), max_size=49)
            acfs.append(a[1:] / (a[0] + 1e-9))
        f = np.concatenate(feats, axis=1)
        out[p] = {"timbre": np.concatenate([f.mean(axis=1), f.std(axis=1)])[None],
                  "rhythm": np.mean(acfs, axis=0)[None]}
    return out


def z(x: np.ndarray) -> np.ndarray:
    return (x - x.mean(axis=0)) / np.where(x.std(axis=0) < 1e-6, 1.0, x.std(axis=0))


def unit(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def pooled(data: dict, paths: list[str], outputs, *, pool: str = "mean+std", windows=None) -> np.ndarray:
    """Track vectors ``[tracks, dim]`` from window outputs; ``windows``: which of a track's windows (indices
    into its evenly spread windows, or a count taken evenly)."""
    rows = []
    for p in paths:
        parts = []
        for o in outputs:
            w = data[p][o]
            if windows is not None:
                idx = np.unique(np.linspace(0, len(w) - 1, min(windows, len(w))).round().astype(int))
                w = w[idx]
            parts.append(w.mean(axis=0))
            if pool == "mean+std":
                parts.append(w.std(axis=0) if len(w) >= 4 else np.full(w.shape[1], np.nan))
            elif pool == "mean+max":
                parts.append(w.max(axis=0))
        rows.append(np.concatenate(parts))
    x = np.asarray(rows, np.float64)
    means = np.nanmean(x, axis=0)
    return np.where(np.isnan(x), means, x)


def knn_mean(s: np.ndarray, k: int) -> np.ndarray:
    """Each track's mean similarity to its ``k`` nearest other tracks."""
    t = np.array(s, np.float64)
    np.fill_diagonal(t, -np.inf)
    return np.sort(t, axis=1)[:, -k:].mean(axis=1)


def csls(s: np.ndarray, k: int = 10) -> np.ndarray:
    """Cross-domain similarity local scaling: 2 cos - r(q) - r(x), r the mean cosine to the k nearest."""
    r = knn_mean(s, k)
    return 2 * s - r[:, None] - r[None, :]


def nicdm(s: np.ndarray, k: int = 10) -> np.ndarray:
    """Local scaling (NICDM): cosine distance over the geometric mean of both tracks' mean distance to
    their k nearest; negated so that higher is nearer."""
    mu = 1 - knn_mean(s, k)
    return -(1 - s) / np.sqrt(np.outer(mu, mu))


def mutual_proximity(s: np.ndarray) -> np.ndarray:
    """Mutual proximity with a Gaussian model of each track's similarities to all others (log of the
    product of both tails; higher is nearer)."""
    from scipy.special import log_ndtr

    n, d = len(s), np.diag(s)
    mu = (s.sum(axis=1) - d) / (n - 1)
    sd = np.sqrt(np.maximum((np.square(s).sum(axis=1) - d**2) / (n - 1) - mu**2, 1e-12))
    return log_ndtr((s - mu[:, None]) / sd[:, None]) + log_ndtr((s - mu[None, :]) / sd[None, :])


def expanded(x: np.ndarray, m: int = 3, alpha: float = 3.0) -> np.ndarray:
    """alpha-weighted query expansion: each unit vector plus its ``m`` nearest others weighted by their cosine
    to the power ``alpha``, renormalised."""
    s = x @ x.T
    np.fill_diagonal(s, -np.inf)
    nn = np.argsort(-s, axis=1)[:, :m]
    w = np.clip(np.take_along_axis(s, nn, axis=1), 0, None) ** alpha
    return unit(x + (w[:, :, None] * x[nn]).sum(axis=1))


def whitened(datas: list[dict], paths: list[str], outputs=("mean_pool", "penultimate"), **kw) -> np.ndarray:
    """Unit track vectors through the library transform a store of the default encoder fits
    (``catalog.within``): every network's window features side by side, the raw vector their mean and spread,
    the within-track sums over every track's windows; ``kw`` overrides its constants (width, spread_width,
    shrink, weight)."""
    from soundalike.catalog import indexes, within
    from soundalike.model.musicnn import summarize_windows

    tracks = [np.hstack([np.asarray(d[p][o], np.float32) for d in datas for o in outputs]) for p in paths]
    sums = within.WithinScatter(tracks[0].shape[1])
    for w in tracks:
        sums.add(w)
    raw = np.array([summarize_windows(w, "mean+std") for w in tracks], np.float32)  # as the encoder does
    moments = indexes.Moments(raw.shape[1])
    moments.add(raw)
    standardised = indexes.fit("standardize", moments, raw, len(raw), widths=())
    fitted = within.fit(standardised, raw, sums, **kw) or standardised
    return indexes.exact_space(fitted, refined=True)(raw)


def corpus_outputs(root: Path, cache: Path | None) -> dict:
    """Window outputs of one corpus (computed once, then read from the cache)."""
    cache = cache or root.parent / f".{root.name}-track-vectors"
    paths = [e.path for e in scan(root)]
    msd16 = cached(cache, "msd16", lambda: window_outputs(paths, "MSD_musicnn", 16))
    msd32 = cached(cache, "msd32", lambda: window_outputs(paths, "MSD_musicnn", 32))
    mtt16 = cached(cache, "mtt16", lambda: window_outputs(paths, "MTT_musicnn", 16))
    hand = cached(cache, "timbre", lambda: timbre_rhythm(paths))
    paths = [p for p in paths if p in msd16 and p in msd32 and p in mtt16 and p in hand]
    return {"root": root, "cache": cache, "paths": paths, "groups": groups_of(root, paths), "msd16": msd16,
            "msd32": msd32, "mtt16": mtt16, "hand": hand}


DEFAULT = ("mean_pool", "penultimate")
#: the row of what soundalike ships: both networks' mean and spread over windows through the store's within-track
#: whitening, by cosine (the reference by default)
SHIPPED = "MSD+MTT mean and spread whitened within tracks"


def variants(c: dict) -> dict[str, np.ndarray]:
    """Every candidate's similarity matrix ``[n, n]`` for one corpus (higher is nearer)."""
    paths, msd16, mtt16 = c["paths"], c["msd16"], c["mtt16"]
    vec: dict[str, np.ndarray] = {}
    vec["MSD, mean over 16 windows (953): the default before"] = unit(z(pooled(msd16, paths, DEFAULT, pool="mean")))
    vec["MSD, mean and std (1906): the default before that"] = unit(z(pooled(msd16, paths, DEFAULT)))
    vec["mean and max (1906)"] = unit(z(pooled(msd16, paths, DEFAULT, pool="mean+max")))
    vec["raw cosine, no standardisation"] = unit(pooled(msd16, paths, DEFAULT, pool="mean"))
    vec["mean-pooled mid-end only, mean (753)"] = unit(z(pooled(msd16, paths, ("mean_pool",), pool="mean")))
    vec["penultimate only, mean and std (400)"] = unit(z(pooled(msd16, paths, ("penultimate",))))
    vec["8 of the 16 windows"] = unit(z(pooled(msd16, paths, DEFAULT, pool="mean", windows=8)))
    vec["32 windows"] = unit(z(pooled(c["msd32"], paths, DEFAULT, pool="mean")))
    vec["32 windows, mean and std"] = unit(z(pooled(c["msd32"], paths, DEFAULT)))
    vec["MTT model instead of MSD"] = unit(z(pooled(mtt16, paths, DEFAULT, pool="mean")))
    vec["MSD + MTT, mean (1906)"] = unit(np.hstack([z(pooled(msd16, paths, DEFAULT, pool="mean")),
                                                   z(pooled(mtt16, paths, DEFAULT, pool="mean"))]))
    vec["MSD + MTT, mean and std (3812)"] = unit(np.hstack([z(pooled(msd16, paths, DEFAULT)),
                                                           z(pooled(mtt16, paths, DEFAULT))]))
    base = z(pooled(msd16, paths, DEFAULT, pool="mean"))
    timbre = z(pooled(c["hand"], paths, ("timbre",), pool="mean"))
    half = np.sqrt(0.5 * base.shape[1] / timbre.shape[1])  # the block's share of the squared length: half the base's
    vec["+ timbre (MFCC, contrast) at weight 0.5"] = unit(np.hstack([base, timbre * half]))
    # the library transform of the default encoder's stores: within-track whitening, beside the spread
    vec["MSD+MTT mean and spread whitened within tracks"] = whitened([msd16, mtt16], paths)
    for weight in (0.5, 0.7):
        vec[f"whitened, spread at {weight} (not 0.3)"] = whitened([msd16, mtt16], paths, weight=weight)
    vec["whitened, shrink 1 (not 0.5)"] = whitened([msd16, mtt16], paths, shrink=1.0)
    vec["whitened, mean alone (no spread)"] = whitened([msd16, mtt16], paths, weight=0.0)
    vec["whitened, every spread axis (not 64)"] = whitened([msd16, mtt16], paths, spread_width=10**6)
    vec["MSD alone, whitened"] = whitened([msd16], paths)
    out = {name: v @ v.T for name, v in vec.items()}
    out["whitened: CSLS, k=10"] = csls(out["MSD+MTT mean and spread whitened within tracks"], 10)
    # query-time rescorings and expansions of the two pooled vectors
    for short, name in (("mean", "MSD, mean over 16 windows (953): the default before"),
                        ("mean+std", "MSD, mean and std (1906): the default before that"),
                        ("MSD+MTT mean", "MSD + MTT, mean (1906)"), ("MSD+MTT mean+std", "MSD + MTT, mean and std (3812)")):
        v, s = vec[name], out[name]
        out[f"{short}: CSLS, k=10"] = csls(s, 10)
        out[f"{short}: CSLS, k=20"] = csls(s, 20)
        if short.startswith("MSD+MTT"):
            continue
        out[f"{short}: local scaling (NICDM), k=10"] = nicdm(s, 10)
        out[f"{short}: mutual proximity (Gaussian)"] = mutual_proximity(s)
        q = expanded(v, 3, 3.0)
        out[f"{short}: query expansion (3 neighbours, a=3)"] = q @ v.T
        out[f"{short}: database-side expansion + QE"] = q @ q.T
        out[f"{short}: QE, then CSLS k=10"] = csls(q @ v.T, 10)
    return out


def pooled_interval(diffs: list[np.ndarray], *, draws: int = 2000, seed: int = 0) -> tuple[float, float]:
    """95% interval of the mean over corpora (each weighing the same) of per-query differences, resampling
    the queries within each corpus."""
    rng = np.random.default_rng(seed)
    means = np.mean([d[rng.integers(0, len(d), (draws, len(d)))].mean(axis=1) for d in diffs], axis=0)
    return float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))


def verdict(per_corpus: list[tuple[float, tuple[float, float]]], pooled: tuple[float, tuple[float, float]]) -> str:
    """The rule for a default: it gains pooled beyond its interval, and loses beyond its interval on no corpus."""
    if any(hi < 0 for _, (_, hi) in per_corpus):
        return "loses"
    if pooled[1][0] > 0:
        return "GAINS"
    return "level"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("corpus", type=Path, nargs="+", help="one or more folder-per-group corpora")
    ap.add_argument("--cache", type=Path, default=None, help="where window outputs are kept between runs "
                    "(one corpus; by default a hidden folder beside each corpus)")
    ap.add_argument("--int8", action="store_true", help="add the 8-bit encoder, calibrated two-fold by group")
    ap.add_argument("--reference", default=SHIPPED, help=f"the row the others are paired with (default: {SHIPPED!r}, "
                    "what soundalike ships)")
    ap.add_argument("-k", type=int, default=10)
    ap.add_argument("--json", dest="json_path", default=None)
    ap.add_argument("--markdown", action="store_true", help="also print the table as Markdown")
    args = ap.parse_args()
    if args.cache and len(args.corpus) > 1:
        ap.error("--cache names one corpus's cache; with several corpora each keeps its own beside it")
    corpora = [corpus_outputs(root.resolve(), args.cache) for root in args.corpus]
    names, results = None, []
    for c in corpora:
        sims = variants(c)
        names = names or list(sims)
        results.append({name: per_query_scores(sims[name], c["groups"], args.k) for name in names})
    ref = args.reference
    if ref not in names:
        ap.error(f"no variant named {ref!r}")
    labels = [c["root"].name for c in corpora]
    print(f"group precision@{args.k}, leave-one-out; Δ against {ref!r} on the same queries, 95% paired bootstrap; "
          f"pooled: corpora weigh the same")
    for c in corpora:
        print(f"  {c['root'].name}: {len(c['paths'])} tracks in {len(set(c['groups']))} groups")
    head = "".join(f" {lab[:10]:>10} {'Δ [95%]':>21}" for lab in labels)
    print(f"{'track vector':<44}{head} {'pooled Δ [95%]':>22}  rule")
    rows = []
    for name in names:
        cells, per, dps = [], [], []
        for lab, res in zip(labels, results):
            (p, a), (bp, ba) = res[name], res[ref]
            dp, da = p - bp, a - ba
            ci = bootstrap(dp)
            per.append((float(dp.mean()), ci))
            dps.append(dp)
            cells.append({"corpus": lab, "p_at_k": float(p.mean()), "p_at_k_ci": bootstrap(p), "map": float(a.mean()),
                          "d_p_at_k": float(dp.mean()), "d_p_at_k_ci": ci, "d_map": float(da.mean()),
                          "d_map_ci": bootstrap(da)})
        pool = (float(np.mean([d.mean() for d in dps])), pooled_interval(dps))
        rule = "" if name == ref else verdict(per, pool)
        rows.append({"variant": name, "corpora": cells, "pooled_d_p_at_k": pool[0], "pooled_d_p_at_k_ci": pool[1],
                     "rule": rule})
        line = "".join(f" {cell['p_at_k']:10.3f} {d:+.3f} [{lo:+.3f},{hi:+.3f}]" for cell, (d, (lo, hi)) in zip(cells, per))
        print(f"{name[:44]:<44}{line} {pool[0]:+.3f} [{pool[1][0]:+.3f},{pool[1][1]:+.3f}]  {rule}")
    if args.markdown:
        print()
        print("| variant | " + " | ".join(f"{lab} p@{args.k} | Δ [95%]" for lab in labels) + " | pooled Δ [95%] | rule |")
        print("|---|" + "---|---|" * len(labels) + "---|---|")
        for row in rows:
            cells = " | ".join(f"{c['p_at_k']:.3f} | {c['d_p_at_k']:+.3f} [{c['d_p_at_k_ci'][0]:+.3f}, {c['d_p_at_k_ci'][1]:+.3f}]"
                               for c in row["corpora"])
            lo, hi = row["pooled_d_p_at_k_ci"]
            name = f"**{row['variant']}**" if row["variant"] == ref else row["variant"]
            print(f"| {name} | {cells} | {row['pooled_d_p_at_k']:+.3f} [{lo:+.3f}, {hi:+.3f}] | {row['rule']} |")
    for c, res in zip(corpora, results):
        bp = res[ref][0]
        lo, hi = bootstrap(bp)
        print(f"({c['root'].name}: the reference's own interval p@{args.k} {bp.mean():.3f} [{lo:.3f}, {hi:.3f}])")
    if args.int8:
        for c in corpora:
            int8_report(c, args.k, rows)
    if args.json_path:
        Path(args.json_path).write_text(json.dumps({"reference": ref, "k": args.k, "corpora": [
            {"corpus": c["root"].name, "tracks": len(c["paths"]), "groups": len(set(c["groups"]))} for c in corpora],
            "rows": rows}, indent=2))


def int8_report(c: dict, k: int, rows: list) -> None:
    # each half of the soundtracks is scored by the model calibrated on the other half: ranked within its half,
    # where every vector comes from that one model (across halves, a model's own offset would pass for
    # similarity, and halves are made of whole soundtracks), paired with the float vectors ranked alike
    paths, groups, msd16 = c["paths"], c["groups"], c["msd16"]
    folds, q = int8_variants(c["root"], paths, groups, c["cache"], DEFAULT, msd16)
    d_p, d_a, p8, pf = [], [], [], []
    for fold in folds:
        sel = np.flatnonzero(np.isin(groups, list(fold)))
        floats = unit(z(pooled(msd16, [paths[i] for i in sel], DEFAULT, pool="mean")))  # the same, in float
        fp, fa = per_query(floats, groups[sel], k)
        ip, ia = per_query(q[sel], groups[sel], k)
        d_p.append(ip - fp)
        d_a.append(ia - fa)
        p8.append(ip)
        pf.append(fp)
    dp, da = np.concatenate(d_p), np.concatenate(d_a)
    cp, ca = bootstrap(dp), bootstrap(da)
    print(f"{c['root'].name}: int8 encoder, each half of the soundtracks ranked within itself by the model calibrated "
          f"on the other: p@{k} {np.concatenate(p8).mean():.3f} against {np.concatenate(pf).mean():.3f}, "
          f"{dp.mean():+.3f} [{cp[0]:+.3f}, {cp[1]:+.3f}]; mAP {da.mean():+.3f} [{ca[0]:+.3f}, {ca[1]:+.3f}]")
    rows.append({"variant": "int8 encoder (within halves)", "corpus": c["root"].name, "d_p_at_k": float(dp.mean()),
                 "d_p_at_k_ci": cp, "d_map": float(da.mean()), "d_map_ci": ca})


def int8_variants(root, paths, groups, cache, default, msd16) -> dict:
    from soundalike.model.musicnn import MusicnnEncoder
    from quantize import quantize_encoder

    names = sorted(set(groups))
    rng = np.random.default_rng(0)
    rng.shuffle(names)
    folds = [set(names[0::2]), set(names[1::2])]

    def make():
        out = {}
        for fold in folds:
            calibrate_on = [p for p, g in zip(paths, groups) if g not in fold]
            score = [p for p, g in zip(paths, groups) if g in fold]
            enc = MusicnnEncoder("MSD_musicnn")
            compiled = quantize_encoder(enc, calibrate_on)
            out.update(window_outputs(score, "MSD_musicnn", 16, compiled=compiled))
        return out

    q = cached(cache, "msd16-int8", make)
    assert all(p in q for p in paths)
    # standardised within each half, as a library of that half would be
    out = np.zeros((len(paths), sum(len(q[paths[0]][o][0]) for o in default)))
    for fold in folds:
        sel = np.flatnonzero(np.isin(groups, list(fold)))
        out[sel] = unit(z(pooled(q, [paths[i] for i in sel], default, pool="mean")))
    return folds, out


if __name__ == "__main__":
    main()
