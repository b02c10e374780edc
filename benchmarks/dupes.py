"""Where copies end and different tracks begin: the near-duplicate threshold, measured on real music.

For a sample of tracks of an indexed corpus, copies are made the ways a library gets them: re-encoded to MP3,
resampled to 22.05 kHz FLAC, 6 dB quieter, and trimmed (3 s cut from each end). Each copy is embedded as an
outside file with the store's encoder and compared with its original (cosine in the index's space, what
search scores). Against them: each track's most similar *other* track of its own group (soundtrack), the
nearest thing to a copy that is not one, and of any group. The threshold that collapses copies must sit above
the second and below the first.

    python benchmarks/dupes.py STORE CORPUS_DIR [--sample 40]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from quality import groups_of  # noqa: E402


def copies(src: str, workdir: Path) -> dict[str, Path]:
    import soundfile as sf

    from soundalike.model.audio import resample

    y, sr = sf.read(src, dtype="float32", always_2d=True)
    y = y.mean(axis=1)
    out = {}
    out["mp3"] = workdir / "copy.mp3"
    sf.write(out["mp3"], y, sr, format="MP3", subtype="MPEG_LAYER_III", compression_level=0.7)
    out["22 kHz"] = workdir / "copy22.flac"
    sf.write(out["22 kHz"], resample(y, sr, 22050), 22050)
    out["-6 dB"] = workdir / "quiet.flac"
    sf.write(out["-6 dB"], y * 0.5, sr)
    out["trimmed 3 s each end"] = workdir / "trim.flac"
    sf.write(out["trimmed 3 s each end"], y[3 * sr : len(y) - 3 * sr], sr)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("store", type=Path)
    ap.add_argument("corpus", type=Path)
    ap.add_argument("--sample", type=int, default=40)
    args = ap.parse_args()
    from soundalike.search.searcher import Searcher

    s = Searcher(args.store)
    ids = s.ids
    paths = s.values("path")
    durations = np.asarray([d or 0.0 for d in s.values("duration_s")])
    unit = np.stack([s.vector(int(i)) for i in ids])
    groups = groups_of(args.corpus, paths)
    sims = unit @ unit.T
    np.fill_diagonal(sims, -np.inf)
    same = np.where(groups[:, None] == groups[None, :], sims, -np.inf).max(axis=1)
    anyg = sims.max(axis=1)
    rng = np.random.default_rng(0)
    pick = rng.choice(np.flatnonzero(durations >= 20), size=min(args.sample, len(ids)), replace=False)
    got: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for i in pick:
            for kind, f in copies(paths[i], Path(tmp)).items():
                v = s.embed_file(f)
                got.setdefault(kind, []).append(float(v @ unit[i] / np.linalg.norm(v)))
    pct = lambda v: " ".join(f"{np.percentile(v, p):.3f}" for p in (0, 5, 50, 95, 100))  # noqa: E731
    print(f"{len(ids)} tracks; copies of {len(pick)} of them. cosine: min p5 median p95 max")
    for kind, v in got.items():
        print(f"  copy, {kind:22s} {pct(v)}")
    print(f"  nearest other track, same group   {pct(same)}")
    print(f"  nearest other track, any group    {pct(anyg)}")
    pairs = [(paths[i], paths[int(np.argmax(sims[i]))], float(anyg[i])) for i in np.argsort(-anyg)[:10:2]]
    print("  most similar pairs of different files:")
    for a, b, c in pairs:
        print(f"    {c:.3f}  {Path(a).name}  ~  {Path(b).name}")


if __name__ == "__main__":
    main()
