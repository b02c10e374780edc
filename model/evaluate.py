"""Evaluating a genre model on a folder-per-genre dataset, with the reports people look at.

Window accuracy (each analysis window on its own), track accuracy (mean of a track's window
probabilities; for a head, of its parts), each part's track accuracy alone (a head's), macro F1 over
tracks, per-class precision and recall, a track-level confusion matrix; a report folder with
``report.json``, ``confusion.png`` and ``curves.png`` (loss and accuracy per epoch, from the model's
training record).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np

from ..model.encoder import read_sidecar
from ..model.registry import load_encoder
from ..model.pipeline import extract_many
from ..model.dataset import DatasetError, list_dataset, require_extra


def evaluate(
    dataset_dir: str | os.PathLike,
    model: str | os.PathLike,
    *,
    report_dir: str | os.PathLike | None = None,
    only_test_split: bool = False,
    workers: int | None = None,
    progress: bool = True,
    log: Callable[[str], None] = print,
) -> dict:
    """Evaluate ``model`` on every track of ``dataset_dir`` (or, with ``only_test_split``, on the tracks the
    model's training held out for testing). Class folders must be among the model's classes."""
    require_extra("evaluate", "sklearn", *(["matplotlib"] if report_dir is not None else []))
    from sklearn.metrics import confusion_matrix, f1_score, precision_recall_fscore_support
    from tqdm import tqdm

    enc = load_encoder(model)
    if not enc.labels:
        raise DatasetError(f"{model}: this encoder has no classifier to evaluate")
    ds = list_dataset(dataset_dir, log=log)
    unknown = sorted(set(ds.classes) - set(enc.labels))
    if unknown:
        raise DatasetError(f"{dataset_dir}: classes the model does not know: {', '.join(unknown)} "
                           f"(it knows {', '.join(enc.labels)})")
    paths = list(ds.paths)
    truth = {p: enc.labels.index(ds.classes[label]) for p, label in zip(ds.paths, ds.labels)}
    training = read_sidecar(model).get("training", {}) if str(model).endswith(".keras") else {}
    if only_test_split:
        keep = {os.path.realpath(p) for p in training.get("test_paths", [])}  # links and copies of a dataset too
        paths = [p for p in paths if os.path.realpath(p) in keep]
        if not paths:
            raise DatasetError(f"{model}: its training recorded no test tracks inside {dataset_dir}")
    window_hits, track_true, track_pred, failures = [], [], [], []
    part_hits: dict[str, list[bool]] = {}  # a head's parts, each alone (``track_parts``)
    for r in tqdm(extract_many(paths, enc.frontend, workers=workers), total=len(paths), desc="evaluate",
                  unit="file", disable=not progress):
        if r.error:
            failures.append({"path": r.path, "error": r.error})
            log(f"skipped {r.path}: {r.error}")
            continue
        _, probs = enc.encode(r.features)
        window_hits += list(enc.window_probs(probs).argmax(1) == truth[r.path])
        track_true.append(truth[r.path])
        track_pred.append(int(enc.track_scores(probs).argmax()))
        for name, part in enc.track_parts(probs).items():
            part_hits.setdefault(name, []).append(int(part.argmax()) == truth[r.path])
    if not track_true:
        raise DatasetError(f"{dataset_dir}: no track could be decoded")
    present = sorted(set(track_true) | set(track_pred))
    names = [enc.labels[i] for i in present]
    cm = confusion_matrix(track_true, track_pred, labels=present)
    prec, rec, f1, support = precision_recall_fscore_support(track_true, track_pred, labels=present, zero_division=0)
    report = {
        "model": str(Path(model).resolve()) if not isinstance(model, str) or os.path.exists(model) else str(model),
        "encoder": enc.name,
        "dataset": str(Path(dataset_dir).resolve()),
        "tracks": len(track_true),
        "windows": len(window_hits),
        "track_accuracy": float(np.mean(np.asarray(track_true) == np.asarray(track_pred))),
        "window_accuracy": float(np.mean(window_hits)),
        "macro_f1": float(f1_score(track_true, track_pred, labels=present, average="macro", zero_division=0)),
        "part_track_accuracy": {name: float(np.mean(h)) for name, h in part_hits.items()},
        "classes": names,
        "confusion_matrix": cm.tolist(),
        "per_class": {n: {"precision": float(p), "recall": float(r), "f1": float(f), "tracks": int(s)}
                      for n, p, r, f, s in zip(names, prec, rec, f1, support)},
        "failures": failures,
        "training": {k: training.get(k) for k in ("backbone", "epochs_run", "val_track_accuracy", "test_track_accuracy")},
    }
    if report_dir is not None:
        report["report_dir"] = str(write_report(report, training.get("history"), report_dir))
    return report


def write_report(report: dict, history: dict | None, report_dir: str | os.PathLike) -> Path:
    """``report.json``, ``confusion.png`` and (when the training history is known) ``curves.png``."""
    require_extra("an evaluation report", "matplotlib")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(report_dir)
    out.mkdir(parents=True, exist_ok=True)
    cm = np.asarray(report["confusion_matrix"])
    names = report["classes"]
    size = max(4.0, 0.55 * len(names) + 2)
    fig, ax = plt.subplots(figsize=(size + 1, size), dpi=100)
    ax.imshow(cm, cmap="Blues")
    ax.set_xticks(range(len(names)), names, rotation=45, ha="right")
    ax.set_yticks(range(len(names)), names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    for i in range(len(names)):
        for j in range(len(names)):
            ax.text(j, i, int(cm[i, j]), ha="center", va="center", color="white" if cm[i, j] > cm.max() / 2 else "black")
    ax.set_title(f"track accuracy {report['track_accuracy']:.2f}, macro F1 {report['macro_f1']:.2f} ({report['tracks']} tracks)")
    fig.tight_layout()
    fig.savefig(out / "confusion.png")
    plt.close(fig)
    if history and history.get("loss"):
        fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 4), dpi=100)
        epochs = range(1, len(history["loss"]) + 1)
        for key, ax, title in (("loss", a1, "loss"), ("accuracy", a2, "accuracy (windows)")):
            ax.plot(epochs, history.get(key, []), marker="o", label="training")
            if history.get(f"val_{key}"):
                ax.plot(epochs, history[f"val_{key}"], marker="o", label="validation")
            ax.set_xlabel("epoch")
            ax.set_title(title)
            ax.legend()
        fig.tight_layout()
        fig.savefig(out / "curves.png")
        plt.close(fig)
    (out / "report.json").write_text(json.dumps(report, indent=2))
    return out
