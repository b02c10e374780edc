"""Peers on the same corpus, machine and run: Musly and bliss beside soundalike.

Each system analyses every file of a folder-per-group corpus with ``--workers`` processes, then every track
queries all the others (leave-one-out, ``benchmarks/quality.py``'s protocol): group precision@k and mAP with
95% bootstrap intervals over queries, and the difference in precision@k from soundalike, paired on the same
queries. A file a system cannot decode is named on stderr, counted and left out of that system's ranking;
the figures are computed on the tracks every system analysed, so all systems answer the same queries.

- soundalike: ``soundalike index CORPUS --db TMP --workers N`` as a new process, timed end to end (model
  start-up included), with its peak resident memory; the store's index vectors, ranked as its search ranks
  them (CSLS where the store keeps each track's neighbourhood, else cosine).
- Musly (pymusly): the "timbre" method (one Gaussian of 25 MFCCs, Jensen-Shannon divergence, mutual proximity)
  on the excerpt the musly command-line tool analyses: 30 s centred in the track, starting at 48 s at the
  latest. The music style is set on all tracks (a random 1000 past that, as musly does), the tracks are added,
  and the full matrix comes from the jukebox; timed from the start of analysis to the end of the matrix.
- bliss (bliss_audio): its 23 features of the whole track, ranked by Euclidean distance; timed alike.

Tracks an hour: files in the corpus / seconds * 3600.

    python benchmarks/peers.py CORPUS_DIR [CORPUS_DIR ...] [--workers 2] [--only musly,bliss,soundalike]
                               [--json FILE] [-k 10]
"""

from __future__ import annotations

import argparse
import datetime
import json
import multiprocessing
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from quality import bootstrap, chance, groups_of, paired, per_query_scores, store_scores  # noqa: E402

from soundalike.catalog.scan import scan  # noqa: E402

SYSTEMS = ("soundalike", "musly", "bliss")  # soundalike first: the others are compared with it
MUSLY_EXCERPT = (30.0, -48.0)  # the musly tool's (length, start): a negative start centres the excerpt,
                               # starting at -start seconds at the latest
_jukebox = None


def _musly_start() -> None:
    global _jukebox
    import pymusly

    _jukebox = pymusly.MuslyJukebox(method="timbre")  # the only decoder built in is "none": pymusly runs ffmpeg


def _musly_track(path: str):
    try:
        return path, _jukebox.serialize_track(_jukebox.track_from_audiofile(path, *MUSLY_EXCERPT)), None
    except Exception as e:  # noqa: BLE001
        return path, None, f"{type(e).__name__}: {e}".strip()


def _bliss_start() -> None:
    # bliss answers a file it cannot decode with a Rust panic and its backtrace on stderr; the reason comes
    # back in the exception, reported on one line by the parent
    os.dup2(os.open(os.devnull, os.O_WRONLY), 2)


def _bliss_track(path: str):
    import bliss_audio

    try:
        return path, np.asarray(bliss_audio.Song(path).analysis, np.float64), None
    except BaseException as e:  # noqa: BLE001 -- a decoding failure is a pyo3 PanicException, not an Exception
        if isinstance(e, (KeyboardInterrupt, SystemExit)):
            raise
        return path, None, f"{type(e).__name__}: {(str(e).splitlines() or [''])[0]}"


def analyse(system: str, paths: list[str], start, work, workers: int) -> tuple[dict, int]:
    """``work`` over every path in a pool of ``workers`` processes (each set up by ``start``): the results by
    path, and how many files failed (each named on stderr)."""
    out, failed = {}, 0
    with multiprocessing.get_context("spawn").Pool(workers, initializer=start) as pool:
        for path, result, error in pool.imap_unordered(work, paths):
            if error is None:
                out[path] = result
            else:
                failed += 1
                print(f"{system}: {path}: {error}", file=sys.stderr)
    return out, failed


def run_musly(root: Path, paths: list[str], workers: int, tmp: Path) -> dict:
    import pymusly

    t = time.perf_counter()
    blobs, failed = analyse("musly", paths, _musly_start, _musly_track, workers)
    t_analysis = time.perf_counter()
    jukebox = pymusly.MuslyJukebox(method="timbre")
    done = [p for p in paths if p in blobs]
    tracks = [jukebox.deserialize_track(blobs[p]) for p in done]
    jukebox.set_style(tracks if len(tracks) <= 1000 else random.Random(0).sample(tracks, 1000))
    pairs = list(zip(jukebox.add_tracks(list(enumerate(tracks))), tracks))
    # what musly calls a similarity is a distance (its tool sorts ascending; a track is at 0.0 from itself)
    dist = np.asarray([jukebox.compute_similarity(seed, pairs) for seed in pairs], np.float64)
    end = time.perf_counter()
    return {"done": done, "scores": -dist, "failed": failed, "seconds": end - t,
            "analysis_s": t_analysis - t, "similarity_s": end - t_analysis}


def run_bliss(root: Path, paths: list[str], workers: int, tmp: Path) -> dict:
    from scipy.spatial.distance import cdist

    t = time.perf_counter()
    features, failed = analyse("bliss", paths, _bliss_start, _bliss_track, workers)
    t_analysis = time.perf_counter()
    done = [p for p in paths if p in features]
    f = np.stack([features[p] for p in done])
    # bliss's default distance (bliss-rs playlist::euclidean_distance) on its features as they come: they are
    # already scaled to [-1, 1] by bliss, which standardises nothing further
    dist = cdist(f, f)  # Euclidean
    end = time.perf_counter()
    return {"done": done, "scores": -dist, "failed": failed, "seconds": end - t,
            "analysis_s": t_analysis - t, "similarity_s": end - t_analysis}


#: what starts a measured command: a small process of its own, so that the command's peak RSS is its own. (A
#: child started straight from a big process inherits that process's high-water mark at exec: Linux keeps the
#: old memory's peak in ru_maxrss, so a 2.7 GB benchmark or test process made a 1 GB run read 2.7 GB.)
_MEASURE = ("import os, subprocess, sys\n"
            "p = subprocess.Popen(sys.argv[2:])\n"
            "_, status, usage = os.wait4(p.pid, 0)\n"
            "open(sys.argv[1], 'w').write(str(usage.ru_maxrss))\n"
            "sys.exit(os.waitstatus_to_exitcode(status))\n")


def run_measured(cmd: list[str], **run) -> tuple[subprocess.CompletedProcess, int]:
    """Run ``cmd`` to its end (``run``: ``subprocess.run``'s options): how it ended, and its peak resident memory
    in MB (that of the largest single process of its tree, itself or a worker it waited for, not their sum)."""
    with tempfile.NamedTemporaryFile("r", suffix=".rss") as rss:
        done = subprocess.run([sys.executable, "-c", _MEASURE, rss.name, *cmd], **run)
        text = open(rss.name).read().strip()
    return done, round(int(text or 0) / 1024)


def run_soundalike(root: Path, paths: list[str], workers: int, tmp: Path, route: str | None = None, *,
                   model: str | None = None, cache: Path | None = None) -> dict:
    """``soundalike index`` as a new process into a new store under ``tmp``; ``model``: its ``--model``;
    ``cache``: its compiled-model cache (``SOUNDALIKE_CACHE``; default: the user's)."""
    from soundalike.catalog.store import Store

    tmp = Path(tempfile.mkdtemp(dir=tmp))
    store = tmp / "x.soundalike"
    cmd = [str(Path(sys.executable).with_name("soundalike")), "index", str(root), "--db", str(store),
           "--workers", str(workers), "--genre-from", "folder", "--json", "--quiet"] + (["--model", model] if model else [])
    with open(tmp / "index.json", "w+") as out, open(tmp / "index.log", "w+") as log:
        t = time.perf_counter()
        env = {**os.environ, **({"SOUNDALIKE_INFERENCE": route} if route else {}),
               **({"SOUNDALIKE_CACHE": str(cache)} if cache else {})}
        done, peak_mb = run_measured(cmd, stdout=out, stderr=log, env=env)
        returncode = done.returncode
        seconds = time.perf_counter() - t
        if returncode != 0:
            log.seek(0)
            sys.exit(f"{' '.join(cmd)} failed ({returncode}):\n{log.read()[-3000:]}")
        out.seek(0)
        report = json.load(out)
    for f in report["failures"]:
        print(f"soundalike: {f['path']}: {f['error']}", file=sys.stderr)
    s = Store(store)
    have = {r["path"] for r in s.tracks.to_pylist() if r["status"] == "ok"}
    done = [p for p in paths if p in have]
    scores = store_scores(s, done)  # ranked as search ranks them (CSLS where the store keeps r)
    return {"done": done, "scores": scores, "failed": report["failed"], "seconds": seconds,
            "peak_rss_mb": peak_mb, "decode_s": round(report["stages"]["decode"], 1),
            "encode_s": round(report["stages"]["encode"], 1),
            "stages": {k: round(v, 1) for k, v in report["stages"].items()}}


def cpu() -> dict:
    info = Path("/proc/cpuinfo")
    lines = info.read_text().splitlines() if info.is_file() else []
    field = lambda name: next((ln.split(":", 1)[1].strip() for ln in lines if ln.startswith(name)), "")  # noqa: E731
    flags = set(field("flags").split())
    return {"model": field("model name") or "unknown", "cores": os.cpu_count(),
            **{f: f in flags for f in ("avx512_bf16", "amx_bf16")}}


def runners(systems: list[str], route: str | None = None) -> dict:
    """The analysis of each named system: ``fn(root, paths, workers, tmp) -> run``."""
    table = {"soundalike": lambda root, paths, workers, tmp: run_soundalike(root, paths, workers, tmp, route),
             "musly": run_musly, "bliss": run_bliss}
    return {s: table[s] for s in systems}


def corpus_run(root: Path, systems: list[str] | dict, workers: int, k: int, route: str | None = None) -> dict:
    """Every system (names, or a dict of name -> runner, see :func:`runners`; the first is the base the others
    are paired with) on ``root``, one after another, and their quality on the tracks all of them analysed."""
    paths = [e.path for e in scan(root)]
    table = systems if isinstance(systems, dict) else runners(systems, route)
    runs = {}
    with tempfile.TemporaryDirectory() as tmp:
        for system, run in table.items():
            print(f"{root.name}: {system} ...", file=sys.stderr)
            runs[system] = run(root, paths, workers, Path(tmp))
    done = {system: {p: i for i, p in enumerate(r["done"])} for system, r in runs.items()}
    common = [p for p in paths if all(p in d for d in done.values())]
    if len(common) < 2:
        sys.exit(f"{root}: fewer than two tracks analysed by every system")
    groups = groups_of(root, common)
    rows = []
    for system, r in runs.items():
        sel = np.asarray([done[system][p] for p in common], int)
        p, ap = per_query_scores(r["scores"][np.ix_(sel, sel)], groups, k)
        info = {key: (round(v, 1) if isinstance(v, float) else v) for key, v in r.items()
                if key not in ("done", "scores")}
        rows.append({"system": system, "tracks": len(r["done"]), **info,
                     "tracks_per_hour": round(len(paths) / r["seconds"] * 3600),
                     "p_at_k": float(p.mean()), "p_at_k_ci": bootstrap(p), "map": float(ap.mean()),
                     "map_ci": bootstrap(ap), "per_query": {"p_at_k": p, "ap": ap}})
    base = rows[0] if "peak_rss_mb" in rows[0] else None  # a soundalike run, when one came first
    for r in rows:
        if base is not None and r is not base:
            r.update(paired(r, base))
    return {"corpus": root.name, "files": len(paths), "compared": len(common), "groups": len(set(groups)),
            "chance_p_at_k": chance(groups)["p_at_k"], "rows": rows}


def show(res: dict, k: int) -> None:
    print(f"\n{res['corpus']}: {res['files']} files; compared on the {res['compared']} tracks every system analysed, "
          f"in {res['groups']} groups, each querying the other {res['compared'] - 1} (chance p@{k} "
          f"{res['chance_p_at_k']:.3f}); 95% bootstrap over queries, Δ paired with soundalike")
    ci = lambda v, lo_hi, sign="": f"{v:{sign}.3f} [{lo_hi[0]:{sign}.3f}, {lo_hi[1]:{sign}.3f}]"  # noqa: E731
    print(f"{'system':<11} {'tracks':>6} {'seconds':>8} {'tracks/h':>9} {f'p@{k} [95%]':>21} {'mAP [95%]':>21} "
          f"{f'Δp@{k} vs soundalike [95%]':>27} {'failed':>6}")
    for r in res["rows"]:
        d = ci(r["d_p_at_k"], r["d_p_at_k_ci"], "+") if "d_p_at_k" in r else ""
        print(f"{r['system']:<11} {r['tracks']:>6} {r['seconds']:>8.1f} {r['tracks_per_hour']:>9} "
              f"{ci(r['p_at_k'], r['p_at_k_ci']):>21} {ci(r['map'], r['map_ci']):>21} {d:>27} {r['failed']:>6}")
    for r in res["rows"]:
        if "analysis_s" in r:
            print(f"  {r['system']}: analysis {r['analysis_s']:.1f} s, "
                  f"{'style + add + similarity matrix' if r['system'] == 'musly' else 'distance matrix'} "
                  f"{r['similarity_s']:.1f} s")
        if "peak_rss_mb" in r:
            print(f"  {r['system']}: whole process (model start-up included); decode {r['decode_s']:.1f} s summed over "
                  f"workers, encode {r['encode_s']:.1f} s; peak RSS {r['peak_rss_mb']} MB")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("corpus", type=Path, nargs="+")
    ap.add_argument("--workers", type=int, default=2, help="analysis processes of every system (default: 2)")
    ap.add_argument("--only", default=",".join(SYSTEMS), help="systems to run, comma-separated")
    ap.add_argument("--inference", default="openvino-f32",
                    help="soundalike's model route (SOUNDALIKE_INFERENCE; default openvino-f32, the route of CPUs "
                         "without native bf16; 'auto' takes the machine's fastest)")
    ap.add_argument("-k", type=int, default=10)
    ap.add_argument("--json", dest="json_path", default=None)
    args = ap.parse_args(argv)
    wanted = {s.strip() for s in args.only.split(",") if s.strip()}
    if not wanted or wanted - set(SYSTEMS):
        ap.error(f"--only: choose among {', '.join(SYSTEMS)}")
    systems = [s for s in SYSTEMS if s in wanted]
    machine = {"date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"), "cpu": cpu(),
               "workers": args.workers, "k": args.k, "inference": args.inference}
    c = machine["cpu"]
    flags = ", ".join(f"{f} {'yes' if c[f] else 'no'}" for f in ("avx512_bf16", "amx_bf16"))
    print(f"{machine['date']}; CPU: {c['model']} ({c['cores']} cores), {flags}; {args.workers} workers; "
          f"soundalike's model route {args.inference}")
    results = []
    for corpus in args.corpus:
        res = corpus_run(corpus.resolve(), systems, args.workers, args.k,
                         None if args.inference == "auto" else args.inference)
        show(res, args.k)
        # the per-query precisions (in scan order of the compared tracks) let paired differences be recomputed
        res["per_query_p_at_k"] = {r["system"]: r.pop("per_query")["p_at_k"].tolist() for r in res["rows"]}
        results.append(res)
    if args.json_path:
        Path(args.json_path).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json_path).write_text(json.dumps({**machine, "corpora": results}, indent=2))
        print(f"written {args.json_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
