"""First measurement for excerpt search: do a track's 16 analysis windows find a 10 s excerpt of it?

Excerpt search will keep the window vectors that the track vectors are made from (16 windows of 3 s spread
over a track's middle 90%) in a second index. Before building it, this measures what matching windows can
do on real music: for excerpts cut at random offsets (so usually where no window was analysed) and
degraded (MP3, 22 kHz, white noise at 20 dB SNR, 6 dB quieter, low-passed at 8 kHz), each excerpt's windows
are matched against every track's windows (cosine of library-standardised window features), and a track
is scored by the mean over the excerpt's windows of their best match in it. Recall@1 and @10 per
degradation and per window feature (the mid-end's mean-pooled 753, the penultimate 200, both), and with
twice the windows indexed. No distractors beyond the corpus itself.

    python benchmarks/excerpt_windows.py CORPUS_DIR [--queries 100] [--seconds 10]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np


def degrade(y: np.ndarray, sr: int, kind: str, rng, tmp: Path) -> tuple[np.ndarray, int]:
    import soundfile as sf

    if kind == "clean":
        return y, sr
    if kind == "mp3":
        sf.write(tmp / "q.mp3", y, sr, format="MP3", subtype="MPEG_LAYER_III", compression_level=0.8)
        z, zr = sf.read(tmp / "q.mp3", dtype="float32")
        return z, zr
    if kind == "22 kHz":
        from soundalike.model.audio import resample

        return resample(y, sr, 22050), 22050
    if kind == "noise 20 dB":
        p = float(np.mean(y.astype(np.float64) ** 2))
        return (y + rng.standard_normal(len(y)) * np.sqrt(p / 100)).astype(np.float32), sr
    if kind == "-6 dB":
        return y * 0.5, sr
    if kind == "low-pass 8 kHz":
        from scipy.signal import butter, sosfilt

        if sr / 2 <= 8000:  # nothing above 8 kHz to take away
            return y, sr

        return sosfilt(butter(8, 8000, fs=sr, output="sos"), y).astype(np.float32), sr
    raise ValueError(kind)


KINDS = ("clean", "mp3", "22 kHz", "noise 20 dB", "-6 dB", "low-pass 8 kHz")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("corpus", type=Path)
    ap.add_argument("--queries", type=int, default=100)
    ap.add_argument("--seconds", type=float, default=10.0)
    args = ap.parse_args()
    import soundfile as sf
    from tqdm import tqdm

    from soundalike.catalog.scan import scan
    from soundalike.model.audio import load_windows, peak_normalise, probe, read_windows, resample
    from soundalike.model.registry import load_encoder

    enc = load_encoder("musicnn")
    fe = enc.frontend
    paths = [e.path for e in scan(args.corpus)]
    lib = {16: [], 32: []}
    for p in tqdm(paths, desc="library", leave=False):
        for n in lib:
            w, _ = load_windows(p, sample_rate=fe.sample_rate, window_s=fe.window_s, n_windows=n, peak=fe.peak)
            lib[n].append(enc.encode(fe.features(w))[0])
    rng = np.random.default_rng(0)
    long = [i for i, p in enumerate(paths) if probe(p).duration_s >= args.seconds + 6]
    picks = rng.choice(long, size=min(args.queries, len(long)), replace=False)
    queries = {k: [] for k in KINDS}
    with tempfile.TemporaryDirectory() as tmp:
        for i in tqdm(picks, desc="excerpts", leave=False):
            info = probe(paths[i])
            start = rng.uniform(0, info.duration_s - args.seconds)
            y, sr = read_windows(paths[i], [start], args.seconds)
            for kind in KINDS:
                z, zr = degrade(y[0], sr, kind, rng, Path(tmp))
                z = resample(z, zr, fe.sample_rate)
                n = fe.window_samples
                w = np.stack([z[s : s + n] for s in range(0, len(z) - n + 1, n)])
                w = peak_normalise(w, peak=fe.peak) if fe.peak > 0 else w
                queries[kind].append((int(i), enc.encode(fe.features(w))[0]))
    feats = {"both (953)": slice(0, 953), "mean-pool (753)": slice(0, 753), "penultimate (200)": slice(753, 953)}
    print(f"{len(paths)} tracks; {len(picks)} excerpts of {args.seconds:.0f} s at random offsets; recall@1 / @10")
    print("windows  feature              " + "  ".join(f"{k:>14s}" for k in KINDS))
    for n, windows in lib.items():
        owner = np.concatenate([np.full(len(w), t) for t, w in enumerate(windows)])
        allw = np.concatenate(windows)
        for label, sl in feats.items():
            x = allw[:, sl]
            mean, std = x.mean(0), x.std(0)
            std = np.where(std < 1e-6, 1.0, std)
            unit = lambda v: ((v - mean) / std) / np.linalg.norm((v - mean) / std, axis=1, keepdims=True)  # noqa: E731
            u = unit(x)
            cells = []
            for kind in KINDS:
                r1 = r10 = 0
                for t, q in queries[kind]:
                    s = unit(q[:, sl]) @ u.T  # [q windows, library windows]
                    best = np.full((len(q), len(paths)), -np.inf)
                    for j in range(len(q)):
                        np.maximum.at(best[j], owner, s[j])
                    score = best.mean(axis=0)
                    rank = int((score > score[t]).sum())
                    r1 += rank == 0
                    r10 += rank < 10
                nq = len(queries[kind])
                cells.append(f"{r1 / nq:.2f} / {r10 / nq:.2f}")
            print(f"{n:7d}  {label:18s} " + "  ".join(f"{c:>14s}" for c in cells))


if __name__ == "__main__":
    main()
