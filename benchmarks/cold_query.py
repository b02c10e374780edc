"""Cold queries about outside audio: ``soundalike search FILE --db STORE`` in a new process each time.

What a person waits for when they ask about a clip on their phone or a song in their downloads: the process
starts, loads the store's encoder (the compiled model the indexing run cached, no TensorFlow), decodes the
analysis windows, embeds them and searches. For a 10 s clip (an excerpt search, as the CLI chooses for a
clip that short, and a whole-track one with --no-excerpt) and a 4-minute song it prints the wall time
(median and min of ``--reps`` runs) and the process's peak RSS; a first run with an empty encoder cache
(what the first query after an upgrade costs) is shown apart.

Without ``--db``, a library of synthesised tracks (demo styles) is written and indexed with the default
encoder in a temporary folder, and the clip and the song are synthesised too; with ``--db STORE --clip F
--song F`` it measures your own store and files (the files should be outside the library, or they are
answered from their stored vectors).

    python benchmarks/cold_query.py [--db STORE --clip CLIP --song SONG] [--reps 5] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def run(args: list[str], env: dict) -> tuple[float, float]:
    """Wall seconds and peak RSS (MB) of one CLI process."""
    t = time.perf_counter()
    p = subprocess.Popen([sys.executable, "-m", "soundalike.cli", *args], stdout=subprocess.DEVNULL,
                         stderr=subprocess.PIPE, env=env)
    _, status, usage = os.wait4(p.pid, 0)
    seconds = time.perf_counter() - t
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(p.stderr.read().decode()[-500:])
    return seconds, usage.ru_maxrss / 1024


def synthesised(workdir: Path) -> tuple[Path, Path, Path]:
    """A store of 24 synthesised tracks, and a 10 s clip and a 4-minute song that are not in it."""
    import soundfile as sf

    from soundalike.demo.synth import STYLES, render, write_library
    from soundalike.indexer.run import index_library

    lib = workdir / "library"
    write_library(lib, per_style=4)
    store = workdir / "bench.soundalike"
    index_library(lib, store, progress=False, log=lambda m: None)
    clip, song = workdir / "clip.flac", workdir / "song.flac"
    sf.write(clip, render(STYLES[0], seed=9001, duration_s=10.0), 22050)
    sf.write(song, render(STYLES[1], seed=9002, duration_s=240.0), 22050)
    return store, clip, song


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--db", type=Path)
    ap.add_argument("--clip", type=Path)
    ap.add_argument("--song", type=Path)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--json", type=Path)
    ap.add_argument("--prepare", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.prepare:
        synthesised(args.prepare)
        return
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        env = dict(os.environ)
        if args.db is None:
            env["SOUNDALIKE_CACHE"] = str(tmp / "cache")
            # in a process of its own: a child's peak RSS starts at its parent's, so this one stays small
            subprocess.run([sys.executable, __file__, "--prepare", str(tmp)], env=env, check=True)
            store, clip, song = tmp / "bench.soundalike", tmp / "clip.flac", tmp / "song.flac"
        else:
            store, clip, song = args.db, args.clip, args.song
        rows = {}
        if args.db is None:  # the first query after the cache is emptied: the model is rebuilt from the weights
            import shutil

            shutil.rmtree(tmp / "cache", ignore_errors=True)
            s, rss = run(["search", str(clip), "--db", str(store), "--json"], env)
            rows["clip, empty encoder cache"] = {"seconds": [round(s, 3)], "peak_rss_mb": round(rss)}
        for label, f, extra in (("10 s clip (excerpt search)", clip, []), ("10 s clip, --no-excerpt", clip, ["--no-excerpt"]),
                                ("4-minute song", song, [])):
            runs = [run(["search", str(f), "--db", str(store), "--json", *extra], env) for _ in range(args.reps)]
            secs = [s for s, _ in runs]
            rows[label] = {"median_s": round(float(np.median(secs)), 3), "min_s": round(min(secs), 3),
                           "peak_rss_mb": round(max(r for _, r in runs))}
    print(f"cold `soundalike search FILE` ({os.cpu_count()} cores, new process each, {args.reps} runs)")
    for label, r in rows.items():
        print(f"  {label:28s} {json.dumps(r)}")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
