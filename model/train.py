"""Training the seed CNN on a folder-per-genre dataset (``rock/``, ``jazz/``, ...).

The split is by track: every window of a song lands on the same side, so validation accuracy is not
inflated by near-copies of training windows.
"""

from __future__ import annotations

import dataclasses
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from model._quiet import import_keras

from model.audio import AUDIO_EXTENSIONS
from model.encoder import KerasEncoder
from model.frontend import FrontEnd
from model.pipeline import extract_many


class DatasetError(Exception):
    """A dataset folder that cannot be trained on; the message says why."""


@dataclasses.dataclass(frozen=True)
class Dataset:
    classes: list[str]
    paths: list[str]
    labels: np.ndarray  # int64 [n], index into classes


def list_dataset(root: str | os.PathLike) -> Dataset:
    """Class = immediate sub-folder of ``root``; its audio files (recursively, hidden ones skipped) are its tracks."""
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"{root}: not a folder")
    classes, paths, labels = [], [], []
    for sub in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        files = sorted(
            str(f)
            for f in sub.rglob("*")
            if f.suffix.lower() in AUDIO_EXTENSIONS and f.is_file() and not any(part.startswith(".") for part in f.relative_to(sub).parts)
        )
        if not files:
            print(f"warning: {sub}: no audio files, class skipped", file=sys.stderr)
            continue
        classes.append(sub.name)
        paths += files
        labels += [len(classes) - 1] * len(files)
    if len(classes) < 2:
        raise DatasetError(f"{root}: need at least two class folders with audio files, found {len(classes)}")
    return Dataset(classes, paths, np.asarray(labels, dtype=np.int64))


def split_tracks(labels: np.ndarray, *, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Stratified track-level split: indices (train, val). A class with one track goes to train only."""
    rng = np.random.default_rng(seed)
    train, val = [], []
    for c in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == c))
        n_val = 0 if len(idx) < 2 else max(1, int(round(val_fraction * len(idx))))
        val += idx[:n_val].tolist()
        train += idx[n_val:].tolist()
    return np.sort(train), np.sort(val)


@dataclasses.dataclass
class TrainResult:
    encoder: KerasEncoder
    history: dict
    classes: list[str]
    n_train_tracks: int
    n_val_tracks: int
    val_window_accuracy: float | None
    val_track_accuracy: float | None
    failures: list[tuple[str, str]]
    seconds: float


def _features_for(paths, frontend, workers, progress, desc):
    """Features of every path; failures as (path, reason)."""
    from tqdm import tqdm

    feats, failures = {}, []
    for r in tqdm(extract_many(paths, frontend, workers=workers), total=len(paths), desc=desc, disable=not progress, unit="file"):
        if r.error:
            failures.append((r.path, r.error))
        else:
            feats[r.path] = r.features
    return feats, failures


def train_seed(dataset_dir, out_path, **kw) -> TrainResult:
    """Train the seed CNN from scratch (see :func:`train_model`)."""
    return train_model(dataset_dir, out_path, backbone="none", **kw)


BACKBONES = ("none", "musicnn", "musicnn-mtt")


def train_model(
    dataset_dir: str | os.PathLike,
    out_path: str | os.PathLike,
    *,
    backbone: str = "none",
    frontend: FrontEnd | None = None,
    n_windows: int | None = None,
    epochs: int = 30,
    batch_size: int = 32,
    val_fraction: float = 0.2,
    patience: int = 6,
    learning_rate: float = 1e-3,
    seed: int = 0,
    workers: int | None = None,
    progress: bool = True,
    log: Callable[[str], None] = print,
) -> TrainResult:
    """Train a genre classifier on a folder-per-genre dataset and save it as ``out_path`` (.keras) plus
    sidecar; the best epoch (lowest validation loss) is kept.

    ``backbone="none"`` trains the seed CNN from scratch on log-mel windows; ``"musicnn"`` (or
    ``"musicnn-mtt"``) trains a small head on the frozen pretrained network's window features, which are
    computed once. Either result is a normal encoder artefact for ``index`` and ``search``.
    """
    keras = import_keras()

    t_start = time.perf_counter()
    if backbone not in BACKBONES:
        raise DatasetError(f"unknown backbone {backbone!r}; choose from {', '.join(BACKBONES)}")
    bb = None
    if backbone != "none":
        from model.encoder import BUILTIN
        from model.musicnn import MusicnnEncoder

        bb = MusicnnEncoder(BUILTIN[backbone], n_windows=n_windows or 16)
        frontend = bb.frontend
    frontend = frontend or FrontEnd()
    if n_windows and frontend.n_windows != n_windows:
        frontend = dataclasses.replace(frontend, n_windows=n_windows)
    ds = list_dataset(dataset_dir)
    tr, va = split_tracks(ds.labels, val_fraction=val_fraction, seed=seed)
    log(f"{len(ds.paths)} tracks in {len(ds.classes)} classes: {', '.join(ds.classes)}; "
        f"{len(tr)} for training, {len(va)} for validation (split by track, seed {seed})")
    feats, failures = _features_for(ds.paths, frontend, workers, progress, "decode")
    for path, reason in failures:
        log(f"skipped {path}: {reason}")
    if bb is not None:  # the frozen backbone runs once per window, not once per epoch
        from tqdm import tqdm

        feats = {p: bb.encode(f)[0] for p, f in tqdm(feats.items(), desc=bb.name, unit="file", disable=not progress)}

    def stack(indices):
        xs, ys, owner = [], [], []
        for i in indices:
            f = feats.get(ds.paths[i])
            if f is not None:
                xs.append(f)
                ys += [ds.labels[i]] * len(f)
                owner += [i] * len(f)
        shape = (0, bb.window_dim) if bb is not None else (0, *frontend.input_shape)
        if not xs:
            return np.zeros(shape, np.float32), np.zeros(0, np.int64), np.zeros(0, np.int64)
        return np.concatenate(xs), np.asarray(ys, np.int64), np.asarray(owner, np.int64)

    x_tr, y_tr, _ = stack(tr)
    x_va, y_va, owner_va = stack(va)
    if len(x_tr) == 0:
        raise DatasetError(f"{dataset_dir}: no training track could be decoded")

    if bb is None:
        from model import seedcnn

        model = seedcnn.build(frontend, len(ds.classes), seed=seed)
        fit_x, fit_va = x_tr[..., None], x_va[..., None]
    else:
        from model import head

        model = head.build(bb.window_dim, len(ds.classes), seed=seed)
        fit_x, fit_va = x_tr, x_va
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    callbacks = []
    has_val = len(x_va) > 0
    if has_val:
        callbacks.append(
            keras.callbacks.EarlyStopping(monitor="val_loss", patience=patience, restore_best_weights=True)
        )
    verbose = 1 if (progress and sys.stdout.isatty()) else 2 if progress else 0
    hist = model.fit(
        fit_x,
        y_tr,
        batch_size=batch_size,
        epochs=epochs,
        validation_data=(fit_va, y_va) if has_val else None,
        shuffle=True,
        callbacks=callbacks,
        verbose=verbose,
    )
    if bb is None:
        from model import seedcnn

        encoder = KerasEncoder(model, name=seedcnn.NAME, frontend=frontend, labels=ds.classes)
        probs_of = lambda x: encoder.encode(x)[1]  # noqa: E731
        extra = {}
    else:
        from model.head import HeadEncoder

        encoder = HeadEncoder(model, backbone=bb, labels=ds.classes)
        probs_of = lambda x: encoder.head_outputs(x)[1]  # noqa: E731
        extra = {"kind": "head", "backbone": encoder.backbone_spec()}
    win_acc = track_acc = None
    if has_val:
        probs = probs_of(x_va)
        win_acc = float(np.mean(probs.argmax(1) == y_va))
        track_ids = np.unique(owner_va)
        track_pred = [probs[owner_va == t].mean(0).argmax() for t in track_ids]
        track_acc = float(np.mean(np.asarray(track_pred) == ds.labels[track_ids]))
    seconds = time.perf_counter() - t_start
    encoder.save(
        out_path,
        extra={
            **extra,
            "training": {
                "dataset": str(Path(dataset_dir).resolve()),
                "backbone": backbone,
                "tracks_train": int(len(tr)),
                "tracks_val": int(len(va)),
                "epochs_run": len(hist.history.get("loss", [])),
                "val_window_accuracy": win_acc,
                "val_track_accuracy": track_acc,
                "seed": seed,
            },
        },
    )
    return TrainResult(
        encoder=encoder,
        history={k: [float(v) for v in vs] for k, vs in hist.history.items()},
        classes=ds.classes,
        n_train_tracks=len(tr),
        n_val_tracks=len(va),
        val_window_accuracy=win_acc,
        val_track_accuracy=track_acc,
        failures=failures,
        seconds=seconds,
    )
