"""Training the seed CNN on a folder-per-genre dataset (``rock/``, ``jazz/``, ...).

The split is by track: every window of a song lands on the same side, so validation accuracy is not
inflated by near-copies of training windows.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from ..model._quiet import import_keras

from ..model.audio import AUDIO_EXTENSIONS
from ..model.encoder import KerasEncoder
from ..model.frontend import FrontEnd
from ..model.pipeline import extract_many


class DatasetError(Exception):
    """A dataset folder that cannot be trained on; the message says why."""


#: the optional extra ``soundalike[train]``: module -> package to install
TRAIN_EXTRA = {"matplotlib": "matplotlib", "sklearn": "scikit-learn"}


def require_extra(purpose: str, *modules: str) -> None:
    """Raise :class:`DatasetError` (one line: what is missing, what to install) unless ``modules`` import."""
    import importlib

    for module in modules:
        try:
            importlib.import_module(module)
        except ImportError as err:
            what = "is not installed" if err.name == module else f"fails to import ({err})"
            raise DatasetError(f"{purpose} needs {TRAIN_EXTRA.get(module, module)}, which {what}: "
                               f"pip install 'soundalike[train]'") from None


@dataclasses.dataclass(frozen=True)
class Dataset:
    classes: list[str]
    paths: list[str]
    labels: np.ndarray  # int64 [n], index into classes


def list_dataset(root: str | os.PathLike, *, log: Callable[[str], None] | None = None) -> Dataset:
    """Class = immediate sub-folder of ``root``; its audio files (recursively, hidden ones skipped) are its tracks.

    An empty class folder is skipped with a warning; a class with a single track is kept (it can only be
    trained on, never validated) with a warning."""
    log = log or (lambda m: print(m, file=sys.stderr))
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
            log(f"warning: {sub}: no audio files, class skipped")
            continue
        if len(files) == 1:
            log(f"warning: {sub}: only one track; it is used for training and cannot be validated or tested")
        classes.append(sub.name)
        paths += files
        labels += [len(classes) - 1] * len(files)
    if len(classes) < 2:
        raise DatasetError(f"{root}: need at least two class folders with audio files, found {len(classes)}")
    return Dataset(classes, paths, np.asarray(labels, dtype=np.int64))


def split_tracks(labels: np.ndarray, *, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Stratified track-level split: indices (train, val). A class with one track goes to train only."""
    train, val, _ = split_three(labels, val_fraction=val_fraction, test_fraction=0.0, seed=seed)
    return train, val


def split_three(labels: np.ndarray, *, val_fraction: float, test_fraction: float, seed: int):
    """Stratified track-level split into (train, val, test) indices; every class keeps at least one
    training track, then fills test and validation in that order as far as its size allows."""
    rng = np.random.default_rng(seed)
    train, val, test = [], [], []
    for c in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == c))
        spare = len(idx) - 1
        n_test = min(spare, max(1, int(round(test_fraction * len(idx))))) if test_fraction > 0 else 0
        n_val = min(spare - n_test, max(1, int(round(val_fraction * len(idx))))) if val_fraction > 0 else 0
        test += idx[:n_test].tolist()
        val += idx[n_test : n_test + n_val].tolist()
        train += idx[n_test + n_val :].tolist()
    return np.sort(train), np.sort(val), np.sort(test)


def augment_fn(frontend: FrontEnd, seed: int):
    """SpecAugment-style augmentation of one log-mel window ``[n_mels, frames, 1]`` (TensorFlow ops): a random
    gain, a circular time shift of up to 1/8 of the window, one frequency mask (up to 1/8 of the bands) and
    one time mask (up to 1/10 of the frames)."""
    import tensorflow as tf

    n_mels, frames = frontend.input_shape

    def mask(length, max_width):
        width = tf.random.uniform([], 0, max_width + 1, dtype=tf.int32)
        start = tf.random.uniform([], 0, length - width + 1, dtype=tf.int32)
        r = tf.range(length)
        return tf.cast((r < start) | (r >= start + width), tf.float32)

    def augment(x, y):
        x = x * tf.random.uniform([], 0.8, 1.25)
        x = tf.roll(x, tf.random.uniform([], -frames // 8, frames // 8 + 1, dtype=tf.int32), axis=1)
        x = x * mask(n_mels, n_mels // 8)[:, None, None] * mask(frames, frames // 10)[None, :, None]
        return x, y

    return augment


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
    n_test_tracks: int = 0
    test_window_accuracy: float | None = None
    test_track_accuracy: float | None = None


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


def run_key(ds: Dataset, **settings) -> str:
    """SHA-256 of what defines a training run: every track (path, class, size, mtime) and the settings."""
    tracks = []
    for path, label in zip(ds.paths, ds.labels):
        try:
            st = os.stat(path)
            tracks.append([path, ds.classes[label], st.st_size, st.st_mtime])
        except OSError:
            tracks.append([path, ds.classes[label], None, None])
    text = json.dumps({"classes": ds.classes, "tracks": tracks, **settings}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def claim_backup(backup: Path, key: str, log: Callable[[str], None]) -> None:
    """Keep ``backup`` (an interrupted run's last finished epoch) only if it belongs to the run ``key``."""
    stamp = backup / "run.json"
    if backup.is_dir():
        try:
            same = json.loads(stamp.read_text()).get("key") == key
        except (OSError, ValueError, AttributeError):
            same = False
        if same:
            try:  # Keras's own record of the last finished epoch
                epoch = json.loads((backup / "training_metadata.json").read_text())["epoch"]
                log(f"resuming the interrupted training from epoch {epoch} ({backup})")
            except (OSError, ValueError, KeyError, TypeError):
                pass
            return
        log(f"{backup}: an interrupted training of another dataset or other settings; starting fresh")
        shutil.rmtree(backup)
    backup.mkdir(parents=True)
    tmp = backup / ".run.json.tmp"
    tmp.write_text(json.dumps({"key": key}))
    os.replace(tmp, stamp)


def train_seed(dataset_dir, out_path, **kw) -> TrainResult:
    """Train the seed CNN from scratch (see :func:`train_model`)."""
    return train_model(dataset_dir, out_path, backbone="none", **kw)


BACKBONES = ("none", "musicnn", "musicnn-msd", "musicnn-mtt")
#: default epochs, batch size and early-stopping patience (0: none, the last epoch is kept) per model kind
RECIPES = {"none": {"epochs": 30, "batch_size": 32, "patience": 6},
           "head": {"epochs": 100, "batch_size": 64, "patience": 0}}


def train_model(
    dataset_dir: str | os.PathLike,
    out_path: str | os.PathLike,
    *,
    backbone: str = "none",
    frontend: FrontEnd | None = None,
    n_windows: int | None = None,
    cache: str | os.PathLike | None = None,
    epochs: int | None = None,
    batch_size: int | None = None,
    val_fraction: float = 0.15,
    test_fraction: float = 0.15,
    patience: int | None = None,
    learning_rate: float = 1e-3,
    augment: bool = True,
    class_weights: bool = True,
    seed: int = 0,
    workers: int | None = None,
    progress: bool = True,
    log: Callable[[str], None] = print,
    callbacks: tuple = (),
) -> TrainResult:
    """Train a genre classifier on a folder-per-genre dataset and save it as ``out_path`` (.keras) plus
    sidecar. The seed CNN keeps its best epoch (lowest validation loss); the head trains a fixed schedule.

    ``backbone="none"`` trains the seed CNN from scratch on log-mel windows (with SpecAugment-style
    augmentation through a ``tf.data`` pipeline); ``"musicnn"`` (or ``"musicnn-msd"``, ``"musicnn-mtt"``) trains a small head on
    the frozen pretrained network's window features, computed once. Either result is a normal encoder
    artefact for ``index`` and ``search``. The split is by track, stratified, with a fixed seed: train,
    validation (early stopping) and test (reported, never seen in training). With ``cache`` the log-mel
    windows come from (and go to) a prepared cache instead of being decoded again. An interrupted run
    resumes from its last finished epoch when started again with the same output, dataset (every track's
    size and mtime) and settings; otherwise it starts fresh.
    """
    keras = import_keras()
    import tensorflow as tf

    t_start = time.perf_counter()
    # the recipes that measured best on real music (a folder-per-soundtrack corpus, 70/30 by track): the seed
    # CNN stops early on validation loss; the head trains a fixed 100 epochs with weight decay, because its
    # validation loss (on windows) bottoms out at epoch 3-5 while track accuracy still climbs (0.65 -> 0.74)
    recipe = RECIPES["none" if backbone == "none" else "head"]
    epochs = epochs or recipe["epochs"]
    batch_size = batch_size or recipe["batch_size"]
    patience = recipe["patience"] if patience is None else patience
    if backbone not in BACKBONES:
        raise DatasetError(f"unknown backbone {backbone!r}; choose from {', '.join(BACKBONES)}")
    bb = None
    if backbone != "none":
        from ..model.encoder import BUILTIN
        from ..model.musicnn import MusicnnEncoder

        bb = MusicnnEncoder(BUILTIN[backbone], n_windows=n_windows or 16)
        frontend = bb.frontend
    frontend = frontend or FrontEnd()
    if n_windows and frontend.n_windows != n_windows:
        frontend = dataclasses.replace(frontend, n_windows=n_windows)
    ds = list_dataset(dataset_dir, log=log)
    key = run_key(ds, backbone=backbone, frontend=frontend.to_dict(), epochs=epochs, batch_size=batch_size,
                  val_fraction=val_fraction, test_fraction=test_fraction, patience=patience,
                  learning_rate=learning_rate, augment=augment, class_weights=class_weights, seed=seed,
                  backbone_fingerprint=bb.fingerprint if bb is not None else None)
    tr, va, te = split_three(ds.labels, val_fraction=val_fraction, test_fraction=test_fraction, seed=seed)
    log(f"{len(ds.paths)} tracks in {len(ds.classes)} classes: {', '.join(ds.classes)}; {len(tr)} for training, "
        f"{len(va)} for validation, {len(te)} for testing (split by track, seed {seed})")
    if cache is not None:
        from ..model.prepare import load_cached, prepare

        rep = prepare(dataset_dir, cache, frontend=frontend, workers=workers, progress=progress, log=log)
        log(f"cache {cache}: {rep.prepared} tracks prepared, {rep.reused} reused")
        _, feats = load_cached(cache)
        failures = rep.failed
    else:
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
            if f is not None and len(f):
                xs.append(f)
                ys += [ds.labels[i]] * len(f)
                owner += [i] * len(f)
        shape = (0, bb.window_dim) if bb is not None else (0, *frontend.input_shape)
        if not xs:
            return np.zeros(shape, np.float32), np.zeros(0, np.int64), np.zeros(0, np.int64)
        return np.concatenate(xs).astype(np.float32), np.asarray(ys, np.int64), np.asarray(owner, np.int64)

    x_tr, y_tr, _ = stack(tr)
    x_va, y_va, owner_va = stack(va)
    x_te, y_te, owner_te = stack(te)
    if len(x_tr) == 0:
        raise DatasetError(f"{dataset_dir}: no training track could be decoded")

    if bb is None:
        x_tr, x_va = x_tr[..., None], x_va[..., None]

    def new_model():
        if bb is None:
            from ..model import seedcnn

            m = seedcnn.build(frontend, len(ds.classes), seed=seed)
        else:
            from ..model import head

            m = head.build(bb.window_dim, len(ds.classes), seed=seed)
        m.compile(optimizer=keras.optimizers.Adam(learning_rate), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
        return m

    def fit(x, y, val_data, backup, extra_callbacks=()):
        model = new_model()
        data = tf.data.Dataset.from_tensor_slices((x, y)).shuffle(len(x), seed=seed, reshuffle_each_iteration=True)
        if augment and bb is None:
            data = data.map(augment_fn(frontend, seed))  # sequential: the same seed gives the same run
        data = data.batch(batch_size).prefetch(tf.data.AUTOTUNE)
        weights = None
        if class_weights:  # unbalanced folders: each class weighs as much as the others in the loss
            counts = np.bincount(y, minlength=len(ds.classes)).astype(float)
            weights = {i: float(len(y) / (len(ds.classes) * c)) for i, c in enumerate(counts) if c > 0}
        # Ctrl-C, then the same command: resumes from the last finished epoch (of the same run only)
        claim_backup(backup, key, log)
        cbs = [keras.callbacks.BackupAndRestore(str(backup)), *extra_callbacks]
        verbose = 1 if (progress and sys.stdout.isatty()) else 2 if progress else 0
        hist = model.fit(data, epochs=epochs, validation_data=val_data, class_weight=weights, callbacks=cbs,
                         verbose=verbose, shuffle=False)  # tf.data shuffles every epoch already
        return model, hist

    has_val = len(x_va) > 0
    val_data = tf.data.Dataset.from_tensor_slices((x_va, y_va)).batch(256).prefetch(tf.data.AUTOTUNE) if has_val else None
    out_path = Path(out_path)
    extra_callbacks = list(callbacks)
    if has_val and patience:
        extra_callbacks.append(keras.callbacks.EarlyStopping(monitor="val_loss", patience=patience, restore_best_weights=True))
    model, hist = fit(x_tr, y_tr, val_data, out_path.with_name(f".{out_path.name}.training"), extra_callbacks)
    # a fixed schedule (the head) needs validation only to report on: once reported, the final model is trained
    # again on training + validation tracks (more data; measured +0.04-0.1 track accuracy on real music)
    refit = has_val and not patience and bb is not None
    if bb is None:
        from ..model import seedcnn

        encoder = KerasEncoder(model, name=seedcnn.NAME, frontend=frontend, labels=ds.classes)
        probs_of = lambda x: encoder.encode(x[..., 0] if x.ndim == 4 else x)[1]  # noqa: E731
        extra = {}
    else:
        from ..model.head import HeadEncoder

        encoder = HeadEncoder(model, backbone=bb, labels=ds.classes)
        probs_of = lambda x: encoder.head_outputs(x)[1]  # noqa: E731
        extra = {"kind": "head", "backbone": encoder.backbone_spec()}

    def accuracy(x, y, owner):
        if not len(x):
            return None, None
        probs = probs_of(x)
        track_ids = np.unique(owner)
        track_pred = np.asarray([probs[owner == t].mean(0).argmax() for t in track_ids])
        return float(np.mean(probs.argmax(1) == y)), float(np.mean(track_pred == ds.labels[track_ids]))

    win_acc, track_acc = accuracy(x_va, y_va, owner_va)
    if refit:
        log(f"validation track accuracy {track_acc:.3f}; training the final head on training + validation tracks")
        model, _ = fit(np.concatenate([x_tr, x_va]), np.concatenate([y_tr, y_va]), None,
                       out_path.with_name(f".{out_path.name}.refit"), list(callbacks))
        encoder = HeadEncoder(model, backbone=bb, labels=ds.classes)
    test_win, test_track = accuracy(x_te, y_te, owner_te)
    history = {k: [float(v) for v in vs] for k, vs in hist.history.items()}
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
                "tracks_test": int(len(te)),
                "test_paths": [ds.paths[i] for i in te],
                "epochs_run": len(history.get("loss", [])),
                "final_model_trained_on": "train+val" if refit else "train",
                "val_window_accuracy": win_acc,
                "val_track_accuracy": track_acc,
                "test_window_accuracy": test_win,
                "test_track_accuracy": test_track,
                "history": history,
                "seconds": round(seconds, 1),
                "seed": seed,
            },
        },
    )
    return TrainResult(
        encoder=encoder,
        history=history,
        classes=ds.classes,
        n_train_tracks=len(tr),
        n_val_tracks=len(va),
        val_window_accuracy=win_acc,
        val_track_accuracy=track_acc,
        failures=failures,
        seconds=seconds,
        n_test_tracks=len(te),
        test_window_accuracy=test_win,
        test_track_accuracy=test_track,
    )
