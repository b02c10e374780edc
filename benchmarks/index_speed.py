"""Indexing speed end to end, beside Musly and bliss in the same run: tracks an hour, stage times, peak memory.

For each encoder in ``--models`` (default: the student, then the teacher ``musicnn``), ``soundalike index``
runs as a new process on the corpus twice, each time into a new store: first with an empty compiled-model
cache (a first run on a machine: for the teacher, TensorFlow builds and converts the model), then with the
cache that run left (every later run: the converted teacher is read without TensorFlow). The student builds
its OpenVINO graph from its arrays on every run, so its two runs differ only by what the first leaves in the
system's file cache. Musly (timbre) and bliss analyse the same
files with the same number of workers (``benchmarks/peers.py``). The model route is float32 unless told
otherwise (``--inference``; CPUs without native bf16 have only that). Quality is each system's group
precision@10 on the tracks all of them analysed, paired with the first soundalike row.

    python benchmarks/index_speed.py CORPUS_DIR [CORPUS_DIR ...] [--workers 2] [--models student,musicnn]
                                    [--no-peers] [--json FILE]

Tracks an hour: files in the corpus / seconds of the whole run (process start to exit) * 3600. Peak RSS: the
largest single process of the run (``wait4``), as a user's ``time -v`` shows it.
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from peers import corpus_run, cpu, run_bliss, run_musly, run_soundalike, show  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("corpus", type=Path, nargs="+")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--models", default="student,musicnn", help="soundalike encoders (--model), comma-separated")
    ap.add_argument("--inference", default="openvino-f32", help="SOUNDALIKE_INFERENCE for soundalike (default float32)")
    ap.add_argument("--no-peers", action="store_true", help="soundalike only")
    ap.add_argument("--warm-only", action="store_true", help="skip the first (cold-cache) run of each encoder")
    ap.add_argument("-k", type=int, default=10)
    ap.add_argument("--json", dest="json_path", default=None)
    args = ap.parse_args(argv)
    machine = {"date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"), "cpu": cpu(),
               "workers": args.workers, "inference": args.inference}
    c = machine["cpu"]
    print(f"{machine['date']}; CPU: {c['model']} ({c['cores']} cores), native bf16: "
          f"{'yes' if c['avx512_bf16'] or c['amx_bf16'] else 'no'}; {args.workers} workers; model route {args.inference}")
    results = []
    with tempfile.TemporaryDirectory() as caches:
        for corpus in args.corpus:
            table = {}
            for model in [m.strip() for m in args.models.split(",") if m.strip()]:
                cache = Path(caches) / f"{corpus.name}-{len(table)}"  # per corpus and encoder, empty before its first run
                runs = ("warm",) if args.warm_only else ("cold", "warm")
                for state in runs:
                    table[f"{model} {state}"] = (lambda root, paths, workers, tmp, model=model, cache=cache:
                                                 run_soundalike(root, paths, workers, tmp, args.inference,
                                                                model=model, cache=cache))
                if args.warm_only:  # fill the cache first, untimed
                    import subprocess

                    with tempfile.TemporaryDirectory() as t:
                        subprocess.run([str(Path(sys.executable).with_name("soundalike")), "tags", "--model", model,
                                        str(next(p for p in corpus.rglob("*") if p.suffix in (".ogg", ".mp3", ".flac", ".wav")))],
                                       env={**__import__("os").environ, "SOUNDALIKE_CACHE": str(cache),
                                            "SOUNDALIKE_INFERENCE": args.inference}, capture_output=True, cwd=t)
            if not args.no_peers:
                table["musly"], table["bliss"] = run_musly, run_bliss
            res = corpus_run(corpus.resolve(), table, args.workers, args.k)
            show(res, args.k)
            musly = next((r for r in res["rows"] if r["system"] == "musly"), None)
            for r in res["rows"]:
                if "stages" in r:
                    ratio = f", {r['tracks_per_hour'] / musly['tracks_per_hour']:.2f}x Musly" if musly else ""
                    stages = ", ".join(f"{k} {v:.1f}s" for k, v in r["stages"].items())
                    print(f"  {r['system']}: {r['tracks_per_hour']} tracks/h{ratio}; stages {stages}")
            res["per_query_p_at_k"] = {r["system"]: r.pop("per_query")["p_at_k"].tolist() for r in res["rows"]}
            results.append(res)
    if args.json_path:
        Path(args.json_path).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json_path).write_text(json.dumps({**machine, "corpora": results}, indent=2, default=str))
        print(f"written {args.json_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
