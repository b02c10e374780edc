"""Genre training on real music, split after split: `soundalike train` + `evaluate` against a linear probe.

For each 70/30 split by track (stratified; seeds 0..N-1, or one fixed split from ``--holdout``), the 70 % is
linked into a temporary folder-per-class dataset, trained on exactly as ``soundalike train`` does (default
recipe: a head on the frozen pretrained musicnn; ``--seed-cnn`` adds the seed CNN from scratch), and the
30 % is scored by ``soundalike evaluate``'s code. Beside it, on the same split: a logistic-regression probe
(scikit-learn defaults) on each track's mean and standard deviation of the same pretrained window features,
standardised. Track accuracy and macro F1 per split and their means; for the head, also each of its parts
alone (window classifier, track regression, nearest-track vote) and the head before the vote (the first two
half and half), on the same trained model, with the head's paired interval against each.

    python benchmarks/genre_splits.py CORPUS_DIR [--splits 5] [--first 0] [--holdout FILE] [--seed-cnn] [--json]

``--holdout FILE`` lists the test tracks (paths relative to CORPUS_DIR, one per line) of one fixed split.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np



from soundalike.model.dataset import list_dataset  # noqa: E402
from soundalike.model.train import split_three  # noqa: E402


def link_dataset(root: Path, paths: list[str], corpus: Path) -> None:
    for p in paths:
        dest = root / Path(p).relative_to(corpus)
        dest.parent.mkdir(parents=True, exist_ok=True)
        os.symlink(os.path.realpath(p), dest)


def probe(features: dict[str, np.ndarray], ds, train: np.ndarray, test: np.ndarray) -> dict:
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import f1_score
    from sklearn.preprocessing import StandardScaler

    def track(i):
        w = features[ds.paths[i]]
        return np.concatenate([w.mean(0), w.std(0)])

    tr = [i for i in train if ds.paths[i] in features]
    te = [i for i in test if ds.paths[i] in features]
    scale = StandardScaler().fit([track(i) for i in tr])
    clf = LogisticRegression(max_iter=5000).fit(scale.transform([track(i) for i in tr]), ds.labels[tr])
    pred = clf.predict(scale.transform([track(i) for i in te]))
    truth = ds.labels[te]
    return {"track_accuracy": float(np.mean(pred == truth)),
            "macro_f1": float(f1_score(truth, pred, average="macro", zero_division=0))}


def head_parts(model: Path, features: dict[str, np.ndarray], ds, test: np.ndarray) -> dict:
    """Track accuracy on the test tracks of each part of a trained head alone, and of the head before the vote
    (window classifier and track regression, half and half), from the same pretrained window features; ``head``:
    the whole head scored from them (as ``evaluate`` scores it from the audio). Also each test track's class
    probabilities by each (``--json`` keeps them: other ways of joining the parts can be scored from them)."""
    from soundalike.model.registry import load_encoder

    enc = load_encoder(model)
    hits: dict[str, list[bool]] = {}
    probs_of: dict[str, dict] = {}
    for i in test:
        if ds.paths[i] not in features:
            continue
        truth = enc.labels.index(ds.classes[ds.labels[i]])
        scores = enc.head_outputs(features[ds.paths[i]])[1]
        parts = {"head": enc.track_scores(scores), **enc.track_parts(scores)}
        if "regression" in parts:
            parts["windows+regression"] = 0.5 * parts["windows"] + 0.5 * parts["regression"]
        for name, probs in parts.items():
            hits.setdefault(name, []).append(int(np.argmax(probs)) == truth)
        probs_of[ds.paths[i]] = {"truth": truth, **{k: np.round(v, 5).tolist() for k, v in parts.items()}}
    return {name: float(np.mean(h)) for name, h in hits.items()}, probs_of


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("corpus")
    ap.add_argument("--splits", type=int, default=5)
    ap.add_argument("--first", type=int, default=0, help="Seed of the first split (to add splits to a run).")
    ap.add_argument("--holdout", help="File listing the test tracks of one fixed split (relative paths).")
    ap.add_argument("--seed-cnn", action="store_true", help="Also train and evaluate the seed CNN from scratch.")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    from soundalike.model.evaluate import evaluate
    from soundalike.model.musicnn import MusicnnEncoder
    from soundalike.model.pipeline import extract_many
    from soundalike.model.train import train_model

    corpus = Path(args.corpus).resolve()
    ds = list_dataset(corpus, log=lambda m: None)
    backbone = MusicnnEncoder()  # the default: the same window features the head is trained on
    t0 = time.perf_counter()
    features = {r.path: backbone.encode(r.features)[0] for r in extract_many(ds.paths, backbone.frontend) if not r.error}
    print(f"{len(ds.paths)} tracks, {len(ds.classes)} classes; pretrained window features in "
          f"{time.perf_counter() - t0:.0f}s ({backbone.runtime})", file=sys.stderr)
    if args.holdout:
        held = {str(corpus / line.strip()) for line in open(args.holdout) if line.strip()}
        splits = [("holdout", np.asarray([i for i, p in enumerate(ds.paths) if p in held]))]
    else:
        splits = [(f"seed {s}", split_three(ds.labels, val_fraction=0.0, test_fraction=0.3, seed=s)[2])
                  for s in range(args.first, args.first + args.splits)]

    rows = []
    for name, test in splits:
        train = np.setdiff1d(np.arange(len(ds.paths)), test)
        row = {"split": name, "train_tracks": len(train), "test_tracks": len(test), "probe": probe(features, ds, train, test)}
        with tempfile.TemporaryDirectory() as tmp:
            tmp = Path(tmp)
            link_dataset(tmp / "train", [ds.paths[i] for i in train], corpus)
            link_dataset(tmp / "test", [ds.paths[i] for i in test], corpus)
            for kind, backbone_name in (("head", "musicnn"), ("seed_cnn", "none")):
                if kind == "seed_cnn" and not args.seed_cnn:
                    continue
                t = time.perf_counter()
                res = train_model(tmp / "train", tmp / f"{kind}.keras", backbone=backbone_name, test_fraction=0.0,
                                  progress=False, log=lambda m: None)
                train_s = time.perf_counter() - t
                rep = evaluate(tmp / "test", tmp / f"{kind}.keras", progress=False, log=lambda m: None)
                row[kind] = {"track_accuracy": rep["track_accuracy"], "macro_f1": rep["macro_f1"],
                             "window_accuracy": rep["window_accuracy"], "epochs": len(res.history["loss"]),
                             "train_s": round(train_s, 1), "classes": rep["classes"],
                             "confusion_matrix": rep["confusion_matrix"]}
                if kind == "head":
                    row[kind]["parts"], row[kind]["track_probs"] = head_parts(tmp / f"{kind}.keras", features, ds, test)
        rows.append(row)
        line = "  ".join(f"{k} {row[k]['track_accuracy']:.3f}" for k in ("head", "seed_cnn", "probe") if k in row)
        line += "".join(f"  {k} {v:.3f}" for k, v in row["head"].get("parts", {}).items())
        print(f"{name}: {line}", file=sys.stderr, flush=True)

    kinds = [k for k in ("head", "seed_cnn", "probe") if k in rows[0]]
    means = {k: {m: float(np.mean([r[k][m] for r in rows])) for m in ("track_accuracy", "macro_f1")} for k in kinds}
    if args.json:
        print(json.dumps({"corpus": str(corpus), "splits": rows, "mean": means}, indent=2))
        return
    print(f"{'split':10} " + " ".join(f"{k + ' acc':>14} {k + ' F1':>12}" for k in kinds))
    for r in rows:
        print(f"{r['split']:10} " + " ".join(f"{r[k]['track_accuracy']:14.3f} {r[k]['macro_f1']:12.3f}" for k in kinds))
    print(f"{'mean':10} " + " ".join(f"{means[k]['track_accuracy']:14.3f} {means[k]['macro_f1']:12.3f}" for k in kinds))
    for k in kinds:
        if k == "probe" or len(rows) < 2:
            continue
        from scipy import stats

        d = np.asarray([r[k]["track_accuracy"] - r["probe"]["track_accuracy"] for r in rows])
        half = stats.t.ppf(0.975, len(d) - 1) * d.std(ddof=1) / np.sqrt(len(d))
        print(f"{k} - probe, track accuracy: {d.mean():+.3f} [{d.mean() - half:+.3f}, {d.mean() + half:+.3f}] "
              f"(95% t-interval over {len(d)} splits; {int((d > 0).sum())} wins, {int((d < 0).sum())} losses)")
    parts = [name for name in rows[0]["head"].get("parts", {}) if all(name in r["head"].get("parts", {}) for r in rows)]
    if "windows+regression" in parts and len(rows) > 1:
        from scipy import stats

        for name in parts:
            if name == "head":
                continue
            d = np.asarray([r["head"]["parts"]["head"] - r["head"]["parts"][name] for r in rows])
            half = stats.t.ppf(0.975, len(d) - 1) * d.std(ddof=1) / np.sqrt(len(d))
            print(f"head - its {name} alone: {d.mean():+.3f} [{d.mean() - half:+.3f}, {d.mean() + half:+.3f}] "
                  f"(mean {np.mean([r['head']['parts'][name] for r in rows]):.3f})")


if __name__ == "__main__":
    main()
