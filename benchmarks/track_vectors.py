"""Which track vector? The README's table of representation choices, with intervals, on a folder-per-group corpus.

Each track's windows are decoded once (16 windows, the default layout, and 32) and run once through both shipped
musicnn models (MSD, MTT); every output a track vector could be made of is kept in a cache (``--cache``), and
each variant is then a few lines over it: which layers, which pooling over windows, how many windows,
standardised or raw, one model or both, hand-made timbre and rhythm statistics fused in. Every variant is
ranked exactly (cosine, leave-one-out, ``benchmarks/quality.py``'s protocol) and compared with the default on
the same queries: the mean difference in group precision@10 and mAP with its 95% paired bootstrap interval.
A choice is worth taking only when its interval clears zero.

``--int8`` adds the encoder quantised to 8 bits (``model.quantize``), calibrated two-fold by group: the int8
vectors of one half of the soundtracks come from a model calibrated on windows of the other half only, so
no track is ever scored by a model that saw it.

    python benchmarks/track_vectors.py CORPUS_DIR [--cache DIR] [--int8] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from quality import bootstrap, groups_of, per_query  # noqa: E402

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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("corpus", type=Path)
    ap.add_argument("--cache", type=Path, default=None, help="where window outputs are kept between runs")
    ap.add_argument("--int8", action="store_true", help="add the 8-bit encoder, calibrated two-fold by group")
    ap.add_argument("-k", type=int, default=10)
    ap.add_argument("--json", dest="json_path", default=None)
    args = ap.parse_args()
    root = args.corpus.resolve()
    cache = args.cache or root.parent / f".{root.name}-track-vectors"
    paths = [e.path for e in scan(root)]
    groups = groups_of(root, paths)
    msd16 = cached(cache, "msd16", lambda: window_outputs(paths, "MSD_musicnn", 16))
    msd32 = cached(cache, "msd32", lambda: window_outputs(paths, "MSD_musicnn", 32))
    mtt16 = cached(cache, "mtt16", lambda: window_outputs(paths, "MTT_musicnn", 16))
    hand = cached(cache, "timbre", lambda: timbre_rhythm(paths))
    paths = [p for p in paths if p in msd16 and p in msd32 and p in mtt16 and p in hand]
    groups = groups_of(root, paths)
    DEFAULT = ("mean_pool", "penultimate")

    variants: dict[str, np.ndarray] = {}
    variants["default: mean_pool + penultimate, mean over 16 windows, z (953)"] = unit(z(pooled(msd16, paths, DEFAULT, pool="mean")))
    variants["mean and std over windows (1906; the default before)"] = unit(z(pooled(msd16, paths, DEFAULT)))
    variants["raw cosine, no standardisation"] = unit(pooled(msd16, paths, DEFAULT, pool="mean"))
    variants["mean_pool only, mean+std (1506)"] = unit(z(pooled(msd16, paths, ("mean_pool",))))
    variants["mean_pool only, mean (753)"] = unit(z(pooled(msd16, paths, ("mean_pool",), pool="mean")))
    variants["penultimate only, mean+std (400)"] = unit(z(pooled(msd16, paths, ("penultimate",))))
    variants["tags only, mean+std (100)"] = unit(z(pooled(msd16, paths, ("tags",))))
    variants["+ max_pool, mean+std (3412)"] = unit(z(pooled(msd16, paths, ("mean_pool", "max_pool", "penultimate"))))
    variants["mean+max over windows (1906)"] = unit(z(pooled(msd16, paths, DEFAULT, pool="mean+max")))
    for n in (4, 8):
        variants[f"{n} of the 16 windows"] = unit(z(pooled(msd16, paths, DEFAULT, pool="mean", windows=n)))
    variants["32 windows"] = unit(z(pooled(msd32, paths, DEFAULT, pool="mean")))
    variants["MTT model instead of MSD"] = unit(z(pooled(mtt16, paths, DEFAULT, pool="mean")))
    both = np.hstack([z(pooled(msd16, paths, DEFAULT, pool="mean")), z(pooled(mtt16, paths, DEFAULT, pool="mean"))])
    variants["MSD + MTT concatenated (1906)"] = unit(both)
    base = z(pooled(msd16, paths, DEFAULT, pool="mean"))
    timbre = z(pooled(hand, paths, ("timbre",), pool="mean"))
    rhythm = z(pooled(hand, paths, ("rhythm",), pool="mean"))
    for w in (0.5, 1.0):
        # a block's weight: its share of the vector's squared length, relative to the default's
        scale = lambda x, share: x * np.sqrt(share * base.shape[1] / x.shape[1])  # noqa: E731
        variants[f"+ timbre (MFCC, contrast) at weight {w}"] = unit(np.hstack([base, scale(timbre, w)]))
        variants[f"+ rhythm (onset autocorrelation) at weight {w}"] = unit(np.hstack([base, scale(rhythm, w)]))
    variants["timbre statistics alone"] = unit(timbre)

    int8 = int8_variants(root, paths, groups, cache, DEFAULT, msd16) if args.int8 else None

    names = list(variants)
    res = {name: per_query(variants[name], groups, args.k) for name in names}
    bp, ba = res[names[0]]
    print(f"{root.name}: {len(paths)} tracks in {len(set(groups))} groups, each queries the other {len(paths) - 1}; "
          f"95% paired bootstrap over queries against the first row")
    print(f"{'track vector':<62} {'p@' + str(args.k):>6} {'Δ [95%]':>22} {'mAP':>6} {'Δ [95%]':>22}")
    rows = []
    for name in names:
        p, a = res[name]
        dp, da = p - bp, a - ba
        cp, ca = bootstrap(dp), bootstrap(da)
        rows.append({"variant": name, "p_at_k": float(p.mean()), "p_at_k_ci": bootstrap(p), "map": float(a.mean()),
                     "map_ci": bootstrap(a), "d_p_at_k": float(dp.mean()), "d_p_at_k_ci": cp,
                     "d_map": float(da.mean()), "d_map_ci": ca})
        print(f"{name[:62]:<62} {p.mean():6.3f} {dp.mean():+.3f} [{cp[0]:+.3f}, {cp[1]:+.3f}] "
              f"{a.mean():6.3f} {da.mean():+.3f} [{ca[0]:+.3f}, {ca[1]:+.3f}]")
    lo, hi = bootstrap(bp)
    print(f"(the default's own interval: p@{args.k} {bp.mean():.3f} [{lo:.3f}, {hi:.3f}])")
    if int8 is not None:
        # each half of the soundtracks is scored by the model calibrated on the other half: ranked within its half,
        # where every vector comes from that one model (across halves, a model's own offset would pass for
        # similarity, and halves are made of whole soundtracks), paired with the float vectors ranked alike
        folds, q = int8
        d_p, d_a, p8, pf = [], [], [], []
        for fold in folds:
            sel = np.flatnonzero(np.isin(groups, list(fold)))
            floats = unit(z(pooled(msd16, [paths[i] for i in sel], DEFAULT, pool="mean")))  # the same, in float
            fp, fa = per_query(floats, groups[sel], args.k)
            ip, ia = per_query(q[sel], groups[sel], args.k)
            d_p.append(ip - fp)
            d_a.append(ia - fa)
            p8.append(ip)
            pf.append(fp)
        dp, da = np.concatenate(d_p), np.concatenate(d_a)
        cp, ca = bootstrap(dp), bootstrap(da)
        print(f"int8 encoder, each half of the soundtracks ranked within itself by the model calibrated on the other: "
              f"p@{args.k} {np.concatenate(p8).mean():.3f} against {np.concatenate(pf).mean():.3f}, "
              f"{dp.mean():+.3f} [{cp[0]:+.3f}, {cp[1]:+.3f}]; mAP {da.mean():+.3f} [{ca[0]:+.3f}, {ca[1]:+.3f}]")
        rows.append({"variant": "int8 encoder (within halves)", "d_p_at_k": float(dp.mean()), "d_p_at_k_ci": cp,
                     "d_map": float(da.mean()), "d_map_ci": ca})
    if args.json_path:
        Path(args.json_path).write_text(json.dumps({"corpus": root.name, "tracks": len(paths), "rows": rows}, indent=2))


def int8_variants(root, paths, groups, cache, default, msd16) -> dict:
    from soundalike.model.musicnn import MusicnnEncoder
    from soundalike.model.quantize import quantize_encoder

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
