"""How fast the default encoder (musicnn) runs, route by route, beside the original TF1 graph.

Windows per second on batches of log-mel windows (default 128), timed for ``--seconds`` after two warm-up
calls, best of ``--repeats``; model-only tracks per hour at 16 windows a track; and how far each route's
outputs are from the exact float32 model on the same windows. The windows are the golden test patches,
tiled with a little noise, so every run sees the same input.

    python benchmarks/encoder_speed.py [--routes tensorflow,openvino-f32,openvino-bf16] [--json]
        [--reference-python PY]   # also time the original graph (musicnn package's own code, see
                                  # tests/golden/make_musicnn_golden.py for that environment)
        [--corpus DIR]            # also index DIR for real with the default route: tracks per hour end to end
        [--int8]                  # also the 8-bit model (needs nncf: pip install nncf)

Run it on an otherwise idle machine: two cores shared with anything else halve every figure.
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

ROOT = Path(__file__).resolve().parent.parent
GOLDEN = ROOT / "tests" / "golden" / "musicnn_golden.npz"
WINDOWS_PER_TRACK = 16


def windows(batch: int) -> np.ndarray:
    """``[batch, 187, 96]`` float32 (time x mel, the network's own layout)."""
    with np.load(GOLDEN) as z:
        base = z["inputs"].astype(np.float32)
    reps = -(-batch // len(base))
    x = np.tile(base, (reps, 1, 1))[:batch]
    return np.ascontiguousarray(x + np.random.default_rng(0).normal(0, 0.01, x.shape).astype(np.float32))


def timed(run, x: np.ndarray, seconds: float, repeats: int) -> float:
    for _ in range(2):
        run(x)
    best = 0.0
    for _ in range(repeats):
        n, t0 = 0, time.perf_counter()
        while True:
            run(x)
            n += 1
            dt = time.perf_counter() - t0
            if dt >= seconds:
                break
        best = max(best, n * len(x) / dt)
    return best


def reference(args) -> dict:
    """Runs inside the reference environment: times the package's own graph."""
    sys.path.insert(0, str(ROOT / "tests" / "golden"))
    import make_musicnn_golden as ref

    sess, inp, extra, fetch = ref.reference_graph("MSD_musicnn")
    x = windows(args.batch)
    wanted = {k: fetch[k] for k in ("taggram", "penultimate", "mean_pool")}
    with sess:
        rate = timed(lambda b: sess.run(wanted, feed_dict={inp: b, **extra}), x, args.seconds, args.repeats)
        out = sess.run(wanted, feed_dict={inp: x, **extra})
    import tensorflow as tf

    return {"route": "original graph", "runtime": f"tensorflow {tf.__version__} tf.compat.v1 session",
            "windows_per_s": rate, "outputs": {k: v.tolist() for k, v in out.items()}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--routes", default="tensorflow,openvino-f32,openvino-bf16")
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--seconds", type=float, default=15.0)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--reference-python", help="Python of an environment with tf_keras and musicnn (see above).")
    ap.add_argument("--corpus", help="Index this folder with the default route and report tracks per hour.")
    ap.add_argument("--int8", action="store_true", help="Also time the 8-bit model (needs nncf).")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--_reference", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args._reference:
        print(json.dumps(reference(args)))
        return

    from soundalike.model.musicnn import MusicnnEncoder
    from soundalike.model.runtime import cpu_has_bf16

    x = windows(args.batch)
    feats = np.transpose(x, (0, 2, 1))  # the encoder takes [n, mel, time]
    rows = []
    if args.reference_python:
        env = {**os.environ, "TF_USE_LEGACY_KERAS": "1", "TF_CPP_MIN_LOG_LEVEL": "2"}
        proc = subprocess.run([args.reference_python, __file__, "--_reference", "--batch", str(args.batch),
                               "--seconds", str(args.seconds), "--repeats", str(args.repeats)],
                              capture_output=True, text=True, env=env)
        if proc.returncode != 0:
            sys.exit(f"reference run failed: {proc.stderr.strip().splitlines()[-1:]}")
        rec = json.loads(proc.stdout.strip().splitlines()[-1])
        ref_out = {k: np.asarray(v, np.float32) for k, v in rec.pop("outputs").items()}
        rows.append({**rec, "max_abs_diff": {k: 0.0 for k in ref_out}})

    def outputs(enc) -> dict[str, np.ndarray]:
        f, tags = enc.encode(feats)
        return {"taggram": tags, "penultimate": f[:, 753:], "mean_pool": f[:, :753]}

    # differences are taken against the original graph when it ran, else against the exact float32 model
    against = ref_out if args.reference_python else outputs(MusicnnEncoder("MSD_musicnn", runtime_route="tensorflow"))
    for route in args.routes.split(","):
        if route == "openvino-bf16" and not cpu_has_bf16():
            rows.append({"route": route, "skipped": "no native bf16 on this CPU"})
            continue
        enc = MusicnnEncoder("MSD_musicnn", runtime_route=route)
        t0 = time.perf_counter()
        enc.encode(feats[:1])
        ready = time.perf_counter() - t0
        rate = timed(lambda b: enc.encode(b, batch_size=args.batch), feats, args.seconds, args.repeats)
        out = outputs(enc)
        rows.append({"route": route, "runtime": enc.runtime, "windows_per_s": rate, "first_call_s": round(ready, 2),
                     "max_abs_diff": {k: float(np.max(np.abs(out[k] - against[k]))) for k in out}})
    if args.int8:
        # the 8-bit model (NNCF, benchmarks/quantize.py): speed only here, calibrated on these same windows (its quality is
        # measured by benchmarks/track_vectors.py --int8, calibrated on real music)
        from soundalike.model.musicnn import FRAMES, N_MELS
        from quantize import quantize_model
        from soundalike.model.runtime import compile_openvino, precision_for

        enc = MusicnnEncoder("MSD_musicnn")
        quantized, order = quantize_model(enc.net, (FRAMES, N_MELS), x)
        compiled = compile_openvino(quantized, order, precision_for("auto"))
        compiled.route, compiled.description = "openvino-int8", compiled.description.rsplit(" ", 1)[0] + " int8"
        enc._compiled = compiled
        rate = timed(lambda b: enc.encode(b, batch_size=args.batch), feats, args.seconds, args.repeats)
        out = outputs(enc)
        rows.append({"route": "openvino-int8", "runtime": enc.runtime, "windows_per_s": rate,
                     "max_abs_diff": {k: float(np.max(np.abs(out[k] - against[k]))) for k in out}})
    base = rows[0]["windows_per_s"] if args.reference_python else None
    for r in rows:
        if "windows_per_s" in r:
            r["tracks_per_hour_model_only"] = round(r["windows_per_s"] * 3600 / WINDOWS_PER_TRACK)
            if base:
                r["x_original"] = round(r["windows_per_s"] / base, 2)

    end_to_end = None
    if args.corpus:
        from soundalike.indexer.run import index_library

        with tempfile.TemporaryDirectory() as tmp:
            rep = index_library(args.corpus, Path(tmp) / "store", progress=True, log=lambda m: None)
        end_to_end = {"corpus": args.corpus, "tracks": rep.added, "failed": rep.failed, "wall_s": round(rep.wall_s, 1),
                      "tracks_per_hour": round(rep.added * 3600 / rep.wall_s), "runtime": rep.runtime,
                      "stages_s": {k: round(v, 1) for k, v in rep.stages.items()}}

    if args.json:
        print(json.dumps({"batch": args.batch, "routes": rows, "end_to_end": end_to_end}, indent=2))
        return
    print(f"musicnn (MSD) windows per second, batch {args.batch}, {os.cpu_count()} cores; differences against "
          f"{'the original graph' if args.reference_python else 'the exact float32 model'}")
    print(f"{'route':16} {'runtime':36} {'windows/s':>9} {'x orig':>6} {'tracks/h':>9}  max |diff| tags / pen / mean_pool")
    for r in rows:
        if "skipped" in r:
            print(f"{r['route']:16} skipped: {r['skipped']}")
            continue
        d = r["max_abs_diff"]
        print(f"{r['route']:16} {r['runtime'][:36]:36} {r['windows_per_s']:9.1f} {r.get('x_original', ''):>6} "
              f"{r['tracks_per_hour_model_only']:9d}  {d['taggram']:.1e} / {d['penultimate']:.1e} / {d['mean_pool']:.1e}")
    if end_to_end:
        e = end_to_end
        print(f"end to end: {e['tracks']} tracks of {e['corpus']} in {e['wall_s']} s = {e['tracks_per_hour']} tracks/hour "
              f"({e['runtime']}; stages {e['stages_s']})")


if __name__ == "__main__":
    main()
