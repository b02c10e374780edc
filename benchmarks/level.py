"""Does the recorded level belong in the track vector? Level normalisations of the default encoder's input,
measured on real music.

The default front end (musicnn's own) feeds the model the recorded level, so the same music 6 dB quieter
gets another vector (``benchmarks/dupes.py``: cosine 0.71-0.97 with its original), and a quiet excerpt is
far from its song. For each track of a corpus the analysis windows are decoded once, then scaled four ways
before the log-mel features: as recorded; the track's peak to 0.95 (over its analysed windows); the track's
RMS to -20 dBFS; each window's RMS to -20 dBFS. For each: group precision@10 (exact cosine over the
standardised full vectors, the corpus's top folders or ``labels.csv`` as groups), paired with "as recorded"
on the same queries (95% bootstrap interval over queries), and the cosine of copies 6 dB quieter and of 10 s
excerpts (a third of the way in, embedded alone) with their tracks.

    python benchmarks/level.py CORPUS_DIR [--limit N]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from quality import groups_of  # noqa: E402

TARGET_RMS = 0.1  # -20 dBFS


def scalings() -> dict:
    def peak(w):
        m = float(np.max(np.abs(w)))
        return w * (0.95 / m) if m > 1e-6 else w

    def track_rms(w):
        r = float(np.sqrt(np.mean(w.astype(np.float64) ** 2)))
        return w * (TARGET_RMS / r) if r > 1e-6 else w

    def window_rms(w):
        r = np.sqrt(np.mean(w.astype(np.float64) ** 2, axis=1, keepdims=True))
        return (w * np.where(r > 1e-6, TARGET_RMS / np.maximum(r, 1e-12), 1.0)).astype(np.float32)

    return {"as recorded": lambda w: w, "track peak 0.95": peak, "track RMS -20 dBFS": track_rms,
            "window RMS -20 dBFS": window_rms}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("corpus", type=Path)
    ap.add_argument("--limit", type=int, default=None)
    args = ap.parse_args()
    from soundalike.catalog.scan import scan
    from soundalike.model.audio import load_windows
    from soundalike.model.registry import load_encoder

    enc = load_encoder("musicnn")
    fe = enc.frontend
    paths = [e.path for e in scan(args.corpus)][: args.limit]
    groups = groups_of(args.corpus, paths)
    ways = scalings()
    raw = {name: [] for name in ways}
    quiet = {name: [] for name in ways}
    excerpt = {name: [] for name in ways}
    rng = np.random.default_rng(0)
    probe = set(rng.choice(len(paths), size=min(40, len(paths)), replace=False).tolist())
    from tqdm import tqdm

    n_clip = int(round(10.0 * fe.sample_rate))
    for i, p in enumerate(tqdm(paths, desc="tracks", leave=False)):
        windows, info = load_windows(p, sample_rate=fe.sample_rate, window_s=fe.window_s, n_windows=fe.n_windows, peak=0.0)
        clip = None
        if i in probe and info.duration_s > 30:
            from soundalike.model.audio import read_windows, resample

            y, sr = read_windows(p, [info.duration_s / 3], 10.0)
            y = resample(y, sr, fe.sample_rate)[0][:n_clip]
            starts = np.arange(0, len(y) - fe.window_samples + 1, fe.window_samples)
            clip = np.stack([y[s : s + fe.window_samples] for s in starts])
        for name, f in ways.items():
            embed = lambda w: enc.summarize(enc.encode(fe.features(f(w)))[0])  # noqa: E731
            raw[name].append(embed(windows))
            if i in probe:
                quiet[name].append((i, embed(windows * 0.5)))
                if clip is not None:
                    excerpt[name].append((i, embed(clip)))
    base = None
    print(f"{len(paths)} tracks, {len(set(groups))} groups; copies 6 dB quieter and 10 s excerpts of {len(probe)}")
    print("way                    p@10   vs as recorded [95%]      quiet copy cos (min/median)   10 s excerpt cos (min/median)")
    for name in ways:
        x = np.stack(raw[name])
        mean = np.nanmean(x, axis=0)
        std = np.nanstd(x, axis=0)
        std = np.where(std < 1e-6, 1.0, std)

        def unit(v):
            z = (np.where(np.isnan(v), mean, v) - mean) / std
            return z / np.linalg.norm(z, axis=-1, keepdims=True)

        u = unit(x)
        s = u @ u.T
        np.fill_diagonal(s, -np.inf)
        top = np.argsort(-s, axis=1)[:, :10]
        p10 = (groups[top] == groups[:, None]).mean(axis=1)
        if base is None:
            base = p10
        d = p10 - base
        boots = d[rng.integers(0, len(d), (2000, len(d)))].mean(axis=1)
        qc = [float(unit(v) @ u[i]) for i, v in quiet[name]]
        ec = [float(unit(v) @ u[i]) for i, v in excerpt[name]]
        print(f"{name:22s} {p10.mean():.3f}  {d.mean():+.3f} [{np.percentile(boots, 2.5):+.3f}, {np.percentile(boots, 97.5):+.3f}]"
              f"      {min(qc):.3f} / {np.median(qc):.3f}                  "
              + (f"{min(ec):.3f} / {np.median(ec):.3f}" if ec else "-"))


if __name__ == "__main__":
    main()
