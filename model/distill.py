"""Distillation: a small student CNN trained to reproduce the default encoder's window features.

The teacher (both pretrained musicnn networks, 1906 features a window) spends about 30 ms of CPU a window
in float32; the student reads the same log-mel windows and regresses the teacher's standardised features
with a fraction of the arithmetic. Its targets need no labels, so it learns from any music: every window of
every track in the folders given (not just the 16 an index analyses).

Two steps, both resumable:

- :func:`collect`: decode up to :data:`WINDOWS_PER_TRACK` windows of each track (spread over it, as indexing
  does), their log-mel (float16) and the teacher's window features (float16), one ``.npz`` per track in a
  work folder with a line per track in ``tracks.jsonl``. An interrupted run continues where it stopped;
  a bad file is reported in one line and skipped.
- :func:`train`: fit the student (:func:`build_student`) on the collected windows with a squared error plus
  cosine loss on the standardised targets, input augmentation that leaves the teacher's answer nearly
  unchanged (a small gain in the log domain, a shift of a few frames), early stopping on the windows of
  held-out tracks, and write the weights as ``.npz`` with a JSON sidecar (front end, target statistics,
  what it was trained on, fingerprint).

``soundalike distill DIR... --work W --out student.npz`` runs both.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import time
from pathlib import Path

import numpy as np

from ..errors import SoundalikeError

#: windows decoded per track for distillation (the index analyses 16): a 3-minute track gives about 54
WINDOWS_PER_TRACK = 64
FORMAT = "soundalike-student"
VERSION = 1


class DistillError(SoundalikeError):
    """A distillation input or work folder that cannot be used; the message names it and why."""


def _track_file(work: Path, path: str) -> Path:
    return work / "tracks" / (hashlib.sha1(path.encode()).hexdigest()[:20] + ".npz")


def work_folder(work: str | os.PathLike, music_dir: str | os.PathLike) -> Path:
    """The part of the work folder ``work`` that holds what was collected from ``music_dir``."""
    music_dir = Path(music_dir).resolve()
    return Path(work) / f"{music_dir.name}-{hashlib.sha1(str(music_dir).encode()).hexdigest()[:8]}"


def collected(work: str | os.PathLike) -> list[dict]:
    """The tracks a work folder holds (one dict per track: path, file, windows, group)."""
    index = Path(work) / "tracks.jsonl"
    if not index.is_file():
        return []
    rows = []
    for line in index.read_text().splitlines():
        try:
            row = json.loads(line)
        except ValueError:
            continue  # a line cut by a kill: that track is collected again
        if (Path(work) / row["file"]).is_file():
            rows.append(row)
    return rows


def collect(dirs: list[str], work: str | os.PathLike, *, teacher=None, workers: int | None = None,
            progress: bool = True, log=print) -> dict:
    """Decode the tracks under ``dirs`` and keep their log-mel windows and the teacher's window features in
    ``work``. Tracks already there are skipped. Returns counts: tracks, windows, skipped, failed."""
    from ..catalog.scan import scan
    from ..model.musicnn import MusicnnEncoder, frontend
    from ..model.pipeline import extract_many

    work = Path(work)
    (work / "tracks").mkdir(parents=True, exist_ok=True)
    done = {row["path"] for row in collected(work)}
    paths = []
    for d in dirs:
        if not Path(d).is_dir():
            raise DistillError(f"{d}: not a folder")
        problems = []
        paths += [str(Path(e.path).resolve()) for e in scan(d, problems)]
        for p in problems:
            log(f"skipped: {p}")
    todo = [p for p in dict.fromkeys(paths) if p not in done]
    stats = {"tracks": len(done), "windows": 0, "skipped": len(paths) - len(todo), "failed": 0}
    if not todo:
        return stats
    teacher = teacher or MusicnnEncoder()
    fe = frontend(WINDOWS_PER_TRACK, teacher.frontend.peak)
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(todo), unit="track", desc="teacher", dynamic_ncols=True)
    with open(work / "tracks.jsonl", "a") as index:
        for r in extract_many(todo, fe, workers=workers, ahead=4):
            if bar is not None:
                bar.update(1)
            if r.error:
                stats["failed"] += 1
                log(f"{r.path}: {r.error}")
                continue
            feats, _ = teacher.encode(r.features)
            dest = _track_file(work, r.path)
            tmp = dest.with_suffix(".tmp.npz")
            np.savez(tmp, mel=r.features.astype(np.float16), teacher=feats.astype(np.float16))
            os.replace(tmp, dest)
            row = {"path": r.path, "file": str(dest.relative_to(work)), "windows": int(len(feats)),
                   "group": Path(r.path).parent.name}
            index.write(json.dumps(row) + "\n")
            index.flush()
            stats["tracks"] += 1
            stats["windows"] += int(len(feats))
    if bar is not None:
        bar.close()
    return stats


#: augmented windows made per collected window by :func:`augment` (0.6: about 6,700 for corpus A's 11,200)
AUGMENT_SHARE = 0.6
#: pseudo-tracks of augmented windows hold this many windows each
_AUG_CHUNK = 64


def augment(work: str | os.PathLike, *, share: float = AUGMENT_SHARE, seed: int = 0, teacher=None,
            progress: bool = True, log=print) -> dict:
    """New inputs made from the collected windows of ``work``, each with the teacher's answer to it: two
    windows of different tracks played at once (their mel power summed, the second 2-10 dB down), or one window
    transposed by 1-3 mel bands up or down (about a semitone to a minor third), or both. The teacher runs on
    exactly these inputs, so they are as true a target as the real ones; they add sounds the collection does
    not hold. Written as pseudo-tracks (``augmented:`` paths) once: a second call adds nothing."""
    from ..model.musicnn import MusicnnEncoder

    work = Path(work)
    rows = collected(work)
    real = [r for r in rows if not r.get("augmented")]
    if any(r.get("augmented") for r in rows) or not real:
        return {"windows": 0}
    w = load([work])
    n = int(round(share * len(w.mel)))
    rng = np.random.default_rng(seed)
    teacher = teacher or MusicnnEncoder()
    gain = 10.0 ** 4  # the front end's log10(1 + 10000 * power)
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=n, unit="window", desc="augment", dynamic_ncols=True)
    made = 0
    with open(work / "tracks.jsonl", "a") as index:
        for chunk in range(0, n, _AUG_CHUNK):
            m = min(_AUG_CHUNK, n - chunk)
            a = rng.integers(0, len(w.mel), m)
            power = (10.0 ** w.mel[a].astype(np.float32) - 1.0) / gain
            mix = rng.random(m) < 0.6
            shift = np.where(rng.random(m) < 0.6, rng.choice([-3, -2, -1, 1, 2, 3], m), 0)
            mix |= shift == 0  # every window changed somehow
            for i in range(m):
                if mix[i]:
                    b = int(rng.integers(0, len(w.mel)))
                    while w.track[b] == w.track[a[i]]:
                        b = int(rng.integers(0, len(w.mel)))
                    other = (10.0 ** w.mel[b].astype(np.float32) - 1.0) / gain
                    power[i] += other * 10.0 ** (-rng.uniform(2, 10) / 10)
                if shift[i]:
                    power[i] = np.roll(power[i], int(shift[i]), axis=0)
                    if shift[i] > 0:
                        power[i, : shift[i]] = power[i, shift[i]][None]
                    else:
                        power[i, shift[i]:] = power[i, shift[i] - 1][None]
            mel = np.log10(1.0 + gain * np.maximum(power, 0.0)).astype(np.float32)
            feats, _ = teacher.encode(mel)
            path = f"augmented:{work.name}:{seed}:{chunk // _AUG_CHUNK:05d}"  # unique among work folders
            dest = _track_file(work, path)
            tmp = dest.with_suffix(".tmp.npz")
            np.savez(tmp, mel=mel.astype(np.float16), teacher=feats.astype(np.float16))
            os.replace(tmp, dest)
            index.write(json.dumps({"path": path, "file": str(dest.relative_to(work)), "windows": m,
                                    "group": "(augmented)", "augmented": True}) + "\n")
            index.flush()
            made += m
            if bar is not None:
                bar.update(m)
    if bar is not None:
        bar.close()
    return {"windows": made}


@dataclasses.dataclass
class Windows:
    """Collected windows in memory: log-mel ``[n, 96, 187]`` and teacher features ``[n, d]`` (float16), the
    track of each window, and each track's path and group."""

    mel: np.ndarray
    teacher: np.ndarray
    track: np.ndarray
    paths: list[str]
    groups: list[str]
    augmented: np.ndarray | None = None  # per track: made by :func:`augment` (never held out for validation)


def load(works: list[str | os.PathLike], *, exclude=lambda path: False) -> Windows:
    """Every window collected in the work folders ``works`` (tracks for which ``exclude(path)`` holds left out)."""
    rows = {}
    for work in works:
        for row in collected(work):
            if not exclude(row["path"]):
                rows.setdefault(row["path"], (Path(work), row))
    mels, teachers, tracks, paths, groups = [], [], [], [], []
    for path in sorted(rows):  # by path, not by when each was collected: the same tracks train the same student
        work, row = rows[path]
        with np.load(work / row["file"]) as z:
            mels.append(z["mel"])
            teachers.append(z["teacher"])
        tracks.append(np.full(len(mels[-1]), len(paths), np.int32))
        paths.append(path)
        groups.append(row["group"])
    if not paths:
        raise DistillError(f"{', '.join(map(str, works))}: no collected tracks (run the collection first)")
    augmented = np.asarray([bool(rows[p][1].get("augmented")) for p in paths])
    return Windows(np.concatenate(mels), np.concatenate(teachers), np.concatenate(tracks), paths, groups, augmented)


# ------------------------------------------------------------------------------------------------ student

#: the student's convolution widths (3x3 kernels, each followed by batch norm, ReLU and pooling)
WIDTHS = (16, 32, 64, 128, 192)
#: the recipe's dense layer and pooling: every frequency band's channels into 768 lost 0.015 on corpus A (never
#: heard) where the maximum over frequency into 512 lost 0.024, trained on the same music (docs/student.md)
EMBEDDING = 768
#: frequency bands kept before pooling over time: 6 (the fourth layer halves frequency) or 12 (it does not);
#: 0 takes the maximum over frequency instead
BANDS = 6


def band_count(bands) -> int:
    """``bands`` as a count: True (the first band-keeping students' sidecars) is 6, False 0."""
    bands = 6 if bands is True else int(bands or 0)
    if bands not in (0, 6, 12):
        raise ValueError(f"bands must be 0, 6 or 12, not {bands}")
    return bands


def pools(bands) -> tuple:
    """The max pooling after each of the five convolutions (None: none), for ``bands`` frequency bands."""
    return ((2, 2), (2, 2), (2, 2), None if band_count(bands) == 12 else (1, 2), None)


def build_student(out_dim: int, *, widths=WIDTHS, embedding: int = EMBEDDING, frames: int = 187, n_mels: int = 96,
                  bands: int = BANDS, seed: int = 0):
    """The student: log-mel ``(frames, n_mels)`` -> ``out_dim`` standardised teacher features.

    Five 3x3 convolutions (``widths``), each with batch norm and ReLU, max-pooled 2x2 after the first three
    and (with ``bands`` 6 or 0) over frequency pairs after the fourth; then every one of the ``bands`` remaining
    frequency bands' channels (so where in the spectrum a pattern sits is kept; with 0, the maximum over
    frequency), the mean and the maximum over time side by side, a dense layer of ``embedding`` with batch norm
    and ReLU, and a linear layer to the teacher's features.
    """
    from ..model._quiet import import_keras

    keras = import_keras()
    L = keras.layers
    keras.utils.set_random_seed(seed)
    inp = keras.Input((frames, n_mels), name="logmel")
    x = L.Reshape((frames, n_mels, 1), name="expand")(inp)
    x = L.BatchNormalization(name="input_norm")(x)
    bands = band_count(bands)
    for i, (w, pool) in enumerate(zip(widths, pools(bands))):
        x = L.Conv2D(w, 3, padding="same", use_bias=False, name=f"conv{i}")(x)
        x = L.BatchNormalization(name=f"norm{i}")(x)
        x = L.ReLU(name=f"relu{i}")(x)
        if pool:
            x = L.MaxPooling2D(pool, name=f"pool{i}")(x)
    if bands:
        x = L.Reshape((x.shape[1], x.shape[2] * x.shape[3]), name="bands")(x)
    else:
        x = L.MaxPooling2D((1, x.shape[2]), name="freq_max")(x)
        x = L.Reshape((x.shape[1], x.shape[3]), name="squeeze")(x)
    x = L.Concatenate(name="time_pool")([L.GlobalAveragePooling1D(name="time_mean")(x),
                                          L.GlobalMaxPooling1D(name="time_max")(x)])
    x = L.Dense(embedding, use_bias=False, name="dense")(x)
    x = L.BatchNormalization(name="dense_norm")(x)
    x = L.ReLU(name="dense_relu")(x)
    out = L.Dense(out_dim, name="features")(x)
    return keras.Model(inp, out, name="student")


def _batch(mel: np.ndarray, idx: np.ndarray, rng: np.random.Generator | None) -> np.ndarray:
    """Windows ``idx`` as the network's input ``[b, frames, n_mels]`` float32; with ``rng``, augmented: each
    window rolled in time by up to 8 frames (the teacher pools over time: its answer barely moves)."""
    x = np.transpose(mel[np.sort(idx)].astype(np.float32), (0, 2, 1))
    if rng is not None:
        shift = int(rng.integers(-8, 9))
        if shift:
            x = np.roll(x, shift, axis=1)
    return np.ascontiguousarray(x)


def train(windows: Windows, out: str | os.PathLike, *, epochs: int = 30, batch: int = 64, patience: int | None = None,
          val_fraction: float = 0.1, seed: int = 0, time_limit_s: float | None = None, widths=WIDTHS,
          embedding: int = EMBEDDING, bands: int = BANDS, cosine: bool = True, progress: bool = True,
          log=print) -> dict:
    """Fit a student to ``windows`` and write it to ``out`` (``.npz`` plus a ``.json`` sidecar). The windows of
    ``val_fraction`` of the tracks (drawn with ``seed``) are held out. With ``cosine`` (the recipe) the learning
    rate decays from 1e-3 to nothing over ``epochs``, or over the epochs that fit ``time_limit_s`` (known after
    the first); otherwise an epoch that does not improve the held-out loss halves it. Training stops after
    ``patience`` epochs without a better held-out loss (never, when None), and the best epoch's weights are
    kept. Returns the history."""
    from ..model._quiet import import_keras

    keras = import_keras()
    rng = np.random.default_rng(seed)
    real, val_tracks, tr, va = _held_out(windows, val_fraction, rng)
    target = windows.teacher.astype(np.float32)
    mean, std = target[tr].mean(0), target[tr].std(0) + 1e-4
    z = ((target - mean) / std).astype(np.float32)
    del target
    net = build_student(z.shape[1], widths=widths, embedding=embedding, bands=bands, seed=seed)
    opt = keras.optimizers.Adam(1e-3)
    step, evaluate = _tf_steps(net, opt)

    def val_loss() -> float:
        losses = [float(evaluate(_batch(windows.mel, va[i : i + 256], None), z[np.sort(va[i : i + 256])])) * len(va[i : i + 256])
                  for i in range(0, len(va), 256)]
        return sum(losses) / max(1, len(va))

    history, best, best_weights, waited = [], float("inf"), None, 0
    t0 = time.perf_counter()
    planned = epochs  # with a cosine schedule and a time limit: the epochs that fit, known after the first
    for epoch in range(epochs):
        if cosine:
            if epoch == 1 and time_limit_s:
                planned = max(2, min(epochs, int(time_limit_s // max(1e-9, time.perf_counter() - t0))))
                if planned < epochs:
                    log(f"{planned} epochs fit the time limit: the learning rate decays over them")
            if epoch >= planned:
                break
            opt.learning_rate.assign(1e-3 * 0.5 * (1.0 + np.cos(np.pi * epoch / planned)))
        order = rng.permutation(tr)
        steps = range(0, len(order) - batch + 1, batch)
        if progress:
            from tqdm import tqdm

            steps = tqdm(steps, desc=f"epoch {epoch + 1}", unit="batch", dynamic_ncols=True, leave=False)
        total = 0.0
        for i in steps:
            idx = order[i : i + batch]
            total += float(step(_batch(windows.mel, idx, rng), z[np.sort(idx)]))
        train_loss = total / max(1, len(order) // batch)
        vl = val_loss()
        history.append({"epoch": epoch + 1, "loss": round(train_loss, 5), "val_loss": round(vl, 5),
                        "seconds": round(time.perf_counter() - t0, 1)})
        log(f"epoch {epoch + 1}: loss {train_loss:.4f}, held-out {vl:.4f} ({time.perf_counter() - t0:.0f}s)")
        if vl < best - 1e-4:
            best, best_weights, waited = vl, [w.copy() for w in net.get_weights()], 0
        else:
            waited += 1
            if patience is not None and waited >= patience:
                break
            if not cosine:
                opt.learning_rate.assign(float(opt.learning_rate.numpy()) / 2)  # a plateau: smaller steps
        if time_limit_s and time.perf_counter() - t0 > time_limit_s:
            log(f"time limit reached after epoch {epoch + 1}")
            break
    net.set_weights(best_weights)
    trained = {"tracks": len(real) - len(val_tracks), "held_out_tracks": len(val_tracks), "windows": int(len(tr)),
               "augmented_windows": int(np.isin(windows.track, np.flatnonzero(windows.augmented)).sum())
               if windows.augmented is not None else 0,
               "groups": sorted(set(windows.groups) - {"(augmented)"}), "seed": seed, "epochs": len(history),
               "best_epoch": int(np.argmin([h["val_loss"] for h in history])) + 1, "best_val_loss": round(best, 5),
               "history": history}
    save_student(out, net, mean=mean, std=std, widths=widths, embedding=embedding, bands=bands, trained=trained)
    return {"history": history, "best_val_loss": best}


def _tf_steps(net, opt):
    """``(step, evaluate)`` for ``net``: one optimiser step on a batch, and a batch's held-out loss. The loss is
    the squared error plus the cosine distance to the teacher's standardised features."""
    import tensorflow as tf

    def loss_fn(y, p):
        mse = tf.reduce_mean(tf.square(y - p), axis=1)
        cos = tf.reduce_sum(tf.math.l2_normalize(y, 1) * tf.math.l2_normalize(p, 1), axis=1)
        return tf.reduce_mean(mse + (1.0 - cos))

    @tf.function(reduce_retracing=True)
    def step(x, y):
        with tf.GradientTape() as tape:
            loss = loss_fn(y, net(x, training=True))
        grads = tape.gradient(loss, net.trainable_variables)
        opt.apply_gradients(zip(grads, net.trainable_variables))
        return loss

    @tf.function(reduce_retracing=True)
    def evaluate(x, y):
        return loss_fn(y, net(x, training=False))

    return step, evaluate


def _held_out(windows: Windows, val_fraction: float, rng: np.random.Generator):
    """The real (not augmented) tracks, the ``val_fraction`` of them held out, and the windows to train on and
    to watch: ``(real, val_tracks, train_rows, val_rows)``."""
    real = np.flatnonzero(~windows.augmented) if windows.augmented is not None else np.arange(len(windows.paths))
    val_tracks = rng.choice(real, size=max(1, int(round(val_fraction * len(real)))), replace=False)
    is_val = np.isin(windows.track, val_tracks)
    return real, val_tracks, np.flatnonzero(~is_val), np.flatnonzero(is_val)


def teacher_tag_layer() -> tuple[np.ndarray, np.ndarray]:
    """The MSD network's last layer (penultimate 200 -> 50 tag logits), kernel and bias: the student's tag scores
    go through it."""
    from ..model.musicnn import checkpoint_prefix, read_checkpoint

    w = read_checkpoint(checkpoint_prefix("MSD_musicnn"))
    return np.asarray(w["dense_1/kernel"], np.float32), np.asarray(w["dense_1/bias"], np.float32)


def save_student(out: str | os.PathLike, net, *, mean: np.ndarray, std: np.ndarray, widths, trained: dict,
                 embedding: int = EMBEDDING, bands: int = BANDS) -> Path:
    """Write the student's weights (``.npz``, in layer order) and its sidecar (``.json``) atomically."""
    out = Path(out)
    if out.suffix != ".npz":
        raise DistillError(f"{out}: a student file must end in .npz")
    out.parent.mkdir(parents=True, exist_ok=True)
    # the network's weights in float16: half the wheel; read back as float32, a window's features move by a
    # median 2e-4 (99th percentile 3e-3) of their spread and precision@10 does not move; the target scale and the
    # tag layer stay float32
    arrays = {f"w{i:03d}": np.asarray(w, np.float16) for i, w in enumerate(net.get_weights())}
    arrays["target_mean"], arrays["target_std"] = mean.astype(np.float32), std.astype(np.float32)
    arrays["tag_kernel"], arrays["tag_bias"] = teacher_tag_layer()
    tmp = out.with_name(f".{out.stem}.tmp.npz")
    np.savez(tmp, **arrays)
    os.replace(tmp, out)
    meta = {"format": FORMAT, "version": VERSION, "widths": list(widths), "embedding": int(embedding),
            **({"bands": band_count(bands)} if bands else {}),
            "out_dim": int(mean.shape[0]), "trained": trained}
    side = out.with_suffix(".json")
    tmp_side = side.with_name(f".{side.name}.tmp")
    tmp_side.write_text(json.dumps(meta, indent=1) + "\n")
    os.replace(tmp_side, side)
    return side
