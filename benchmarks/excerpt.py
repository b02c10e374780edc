"""Excerpt search on real music among thousands of distractors: recall@1 and @10 of clips, and what it costs.

The dev corpus and N synthesised distractor songs (``distractors.py``: tempo, key, chords, bass, melody and
drums of their own) are indexed into one store with the default encoder. Clips of 5 s and 10 s are cut at
random offsets from corpus tracks (where, mostly, no analysis window lies) and degraded: re-encoded to MP3,
resampled to 22 kHz, white noise at 20 dB SNR, 6 dB quieter, low-passed at 8 kHz. Each is written to a file
and queried as a user's clip is (``Searcher.search_excerpt``); a hit is the clip's own track. Also printed:
the window index's bytes a track, the query time, and the indexing time with windows kept and without.

    python benchmarks/excerpt.py CORPUS_DIR --workdir DIR [--distractors 2000] [--queries 100] [--model M] [--json F]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """The 95% Wilson interval of a proportion k/n."""
    if n == 0:
        return 0.0, 1.0
    p = k / n
    d = 1 + z * z / n
    c = (p + z * z / (2 * n)) / d
    h = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / d
    return max(0.0, c - h), min(1.0, c + h)


def index(root: Path, store: Path, *, windows: bool, model: str | None = None) -> dict:
    from soundalike.indexer.run import index_library
    from soundalike.model.musicnn import MusicnnEncoder

    keep = MusicnnEncoder.excerpt_dim
    MusicnnEncoder.excerpt_dim = keep if windows else 0
    try:
        t = time.perf_counter()
        report = index_library(root, store, model=model, progress=True, log=lambda m: None)
        return {"seconds": round(time.perf_counter() - t, 1), "stages": {k: round(v, 1) for k, v in report.stages.items()},
                "tracks": report.added}
    finally:
        MusicnnEncoder.excerpt_dim = keep


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("corpus", type=Path)
    ap.add_argument("--workdir", type=Path, required=True)
    ap.add_argument("--distractors", type=int, default=2000)
    ap.add_argument("--queries", type=int, default=100)
    ap.add_argument("--seconds", type=float, nargs="+", default=[5.0, 10.0])
    ap.add_argument("--compare-indexing", action="store_true",
                    help="Also index the corpus alone twice, with windows and without, and print both times.")
    ap.add_argument("--width", type=int, default=None,
                    help="Rebuild the window index with this many PCA dimensions first (no audio decoded).")
    ap.add_argument("--model", default=None, help="encoder (index --model); default: the default encoder")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    import soundfile as sf
    from tqdm import tqdm

    from distractors import write_distractors
    from excerpt_windows import KINDS, degrade
    from soundalike.catalog.scan import scan
    from soundalike.model.audio import probe, read_windows
    from soundalike.search.searcher import Searcher

    work = args.workdir
    out: dict = {"distractors": args.distractors}
    if args.compare_indexing:
        for label, keep in (("with windows", True), ("without", False), ("with windows again", True), ("without again", False)):
            store = work / f"corpus-{'w' if keep else 'n'}.soundalike"
            if store.exists():
                import shutil

                shutil.rmtree(store)
            out.setdefault("indexing", {})[label] = r = index(args.corpus, store, windows=keep)
            print(f"index corpus {label}: {r['seconds']} s {r['stages']}", flush=True)
    lib = work / "library"
    lib.mkdir(parents=True, exist_ok=True)
    write_distractors(work / "distractors", args.distractors, seconds=30.0, seed=1)
    for name, target in (("corpus", args.corpus.resolve()), ("distractors", (work / "distractors").resolve())):
        if not (lib / name).exists():
            (lib / name).symlink_to(target, target_is_directory=True)
    store = work / (f"excerpts-{Path(args.model).stem}.soundalike" if args.model else "excerpts.soundalike")
    out["index"] = index(lib, store, windows=True, model=args.model)  # (a store already made: only what changed)
    print(f"index corpus + distractors: {out['index']}", flush=True)
    if args.width:
        from soundalike.catalog import check, excerpts

        excerpts.EXCERPT_WIDTH = args.width
        check.reindex(store)
    m = json.loads((store / "manifest.json").read_text())
    w = m["windows"]
    files = [w["file"]] + ([w["delta"]["file"]] if w.get("delta") else [])
    codes = sum((store / f).stat().st_size for f in files)
    tracks = int(m["counts"]["ok"])
    out["window_index"] = {"kind": w["kind"], "windows": w["count"], "tracks": tracks, "bytes": codes,
                           "bytes_per_track": round(codes / tracks), "template_bytes": (store / w["template"]).stat().st_size}
    print(f"window index: {out['window_index']}")

    s = Searcher(store)
    corpus = sorted(str(Path(e.path)) for e in scan(lib / "corpus"))
    rng = np.random.default_rng(0)
    tmp = work / "clips"
    tmp.mkdir(exist_ok=True)
    results = {}
    times = []
    for seconds in args.seconds:
        long = [p for p in corpus if probe(p).duration_s >= seconds + 6]
        picks = rng.choice(len(long), size=min(args.queries, len(long)), replace=False)
        ranks = {k: [] for k in KINDS}
        for qi in tqdm(picks, desc=f"{seconds:.0f} s clips", leave=False):
            path = long[qi]
            for _ in range(20):  # (a clip of silence has no song: another offset)
                start = float(rng.uniform(0, probe(path).duration_s - seconds))
                y, sr = read_windows(path, [start], seconds)
                if np.sqrt(np.mean(y**2)) > 1e-3:
                    break
            for kind in KINDS:
                z, zr = degrade(y[0], sr, kind, rng, tmp)
                f = tmp / "q.mp3" if kind == "mp3" else tmp / "q.flac"
                if kind != "mp3":
                    sf.write(f, z, zr)
                t = time.perf_counter()
                hits = s.search_excerpt(f, k=10)
                times.append(time.perf_counter() - t)
                found = [h.path for h in hits]
                ranks[kind].append(found.index(path) if path in found else 99)
        results[seconds] = {}
        for kind, r in ranks.items():
            r = np.asarray(r)
            n, r1, r10 = len(r), int((r == 0).sum()), int((r < 10).sum())
            results[seconds][kind] = {"n": n, "recall_at_1": round(r1 / n, 3), "recall_at_10": round(r10 / n, 3),
                                      "ci_at_1": [round(x, 3) for x in wilson(r1, n)], "ranks": r.tolist()}
    out["recall"] = results
    out["query_s"] = {"p50": round(float(np.percentile(times, 50)), 3), "p90": round(float(np.percentile(times, 90)), 3)}
    print(f"\n{tracks} tracks ({len(corpus)} real, {tracks - len(corpus)} synthesised distractors); "
          f"recall@1 [95% interval] / recall@10")
    print(f"{'clip':>5}  " + "  ".join(f"{k:>22s}" for k in KINDS))
    for seconds, row in results.items():
        print(f"{seconds:4.0f}s  " + "  ".join(
            f"{c['recall_at_1']:.2f} [{c['ci_at_1'][0]:.2f},{c['ci_at_1'][1]:.2f}] / {c['recall_at_10']:.2f}".rjust(22)
            for c in row.values()))
    print(f"query (decode, encode, search; warm): p50 {out['query_s']['p50']} s, p90 {out['query_s']['p90']} s")
    if args.json:
        args.json.write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
