"""A student against its teacher on the same windows of real music: group precision@10 on each corpus, paired.

For each distillation work folder (``soundalike distill``'s collection: every track's log-mel windows and the
teacher's window features), the student runs on the same windows; both give each track the mean of its
``--windows`` evenly spread windows (as an index does: 16), standardised over the corpus and ranked by CSLS
(k=10) as search ranks. Group = the track's folder (its soundtrack). Reported per corpus: the teacher's and the
student's precision@10, their paired difference with a 95% bootstrap interval over queries, pooled over the
corpora (each weighing the same), and the verdict of the rule a default must pass
(``benchmarks/track_vectors.py``). Also the cosine between each window's student and teacher features.

    python benchmarks/distill_quality.py STUDENT.npz WORK [WORK ...] [--windows 16] [--json]

A corpus the student was trained on measures memory, not music: give the folders it never saw.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from quality import bootstrap, per_query_scores  # noqa: E402
from track_vectors import csls, pooled_interval, unit, verdict, z  # noqa: E402


def spread(n: int, m: int) -> np.ndarray:
    """``m`` indices spread evenly over ``n`` windows (all when fewer)."""
    return np.unique(np.linspace(0, n - 1, min(m, n)).round().astype(int))


def track_scores(feats: np.ndarray, track: np.ndarray, n_tracks: int, m: int) -> np.ndarray:
    rows = []
    for t in range(n_tracks):
        w = feats[track == t]
        rows.append(w[spread(len(w), m)].mean(0))
    x = unit(z(np.asarray(rows, np.float64)))
    return csls(x @ x.T, 10)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("student")
    ap.add_argument("works", nargs="+")
    ap.add_argument("--windows", type=int, default=16)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    from soundalike.model import distill
    from soundalike.model.student import StudentEncoder

    enc = StudentEncoder.load(args.student, runtime_route="openvino-f32")
    rows, diffs = [], []
    for work in args.works:
        w = distill.load([work], exclude=lambda p: p.startswith("augmented:"))
        student = np.concatenate([enc.encode(np.asarray(w.mel[i : i + 512], np.float32))[0]
                                  for i in range(0, len(w.mel), 512)])
        teacher = w.teacher.astype(np.float32)
        t_std = (teacher - teacher.mean(0)) / (teacher.std(0) + 1e-6)
        s_std = (student - teacher.mean(0)) / (teacher.std(0) + 1e-6)
        agree = float(np.median(np.sum(unit(t_std) * unit(s_std), axis=1)))
        groups = np.asarray(w.groups)
        n = len(w.paths)
        pt, _ = per_query_scores(track_scores(teacher, w.track, n, args.windows), groups)
        ps, _ = per_query_scores(track_scores(student, w.track, n, args.windows), groups)
        d = ps - pt
        diffs.append(d)
        rows.append({"work": work, "tracks": n, "windows": int(len(w.mel)), "teacher": float(pt.mean()),
                     "student": float(ps.mean()), "delta": float(d.mean()), "delta_ci": bootstrap(d),
                     "window_cosine_median": agree})
    pooled = (float(np.mean([d.mean() for d in diffs])), pooled_interval(diffs))
    rule = verdict([(r["delta"], r["delta_ci"]) for r in rows], pooled)
    if args.json:
        print(json.dumps({"student": args.student, "windows": args.windows, "corpora": rows,
                          "pooled": {"delta": pooled[0], "delta_ci": pooled[1]}, "verdict": rule}, indent=1))
        return
    print(f"{'corpus':40} {'tracks':>6} {'teacher':>8} {'student':>8}  {'delta [95% CI]':24} {'win cos':>7}")
    for r in rows:
        lo, hi = r["delta_ci"]
        print(f"{Path(r['work']).name:40} {r['tracks']:6d} {r['teacher']:8.3f} {r['student']:8.3f}  "
              f"{r['delta']:+.3f} [{lo:+.3f}, {hi:+.3f}]    {r['window_cosine_median']:7.3f}")
    print(f"{'pooled':40} {'':6} {'':8} {'':8}  {pooled[0]:+.3f} [{pooled[1][0]:+.3f}, {pooled[1][1]:+.3f}]    "
          f"(student against teacher: {rule})")


if __name__ == "__main__":
    main()
