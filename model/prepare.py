"""A training cache: every track of a folder-per-genre dataset decoded and turned into log-mel windows once.

::

    CACHE/
      cache.json                   front-end parameters, classes, one entry per track (size, mtime, windows)
      mels/<class>/<name>.npy      float32 [windows, n_mels, frames] of one track
      images/<class>/<name>-wN.png the same windows as pictures (with ``images=True``)

A second ``prepare`` with the same front end decodes only tracks that are new or changed (size or mtime);
tracks gone from the dataset leave the cache. The index is saved every few seconds and when the run is
interrupted, so a killed ``prepare`` started again decodes only what it had not finished. Windows that are
(nearly) silent are dropped: the window-level equivalent of trimming silence without decoding whole files.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from ..model.frontend import FrontEnd
from ..model.pipeline import extract_many

CACHE_FORMAT = "soundalike-cache"
SILENT = 0.01  # mean log-mel value under which a window counts as silence


@dataclasses.dataclass
class PrepareReport:
    cache: str
    tracks: int = 0
    prepared: int = 0
    reused: int = 0
    removed: int = 0
    failed: list[tuple[str, str]] = dataclasses.field(default_factory=list)
    silent_windows_dropped: int = 0
    images: int = 0
    seconds: float = 0.0


def _entry_name(path: str) -> str:
    stem = Path(path).stem[:60]
    return f"{stem}.{hashlib.sha1(path.encode()).hexdigest()[:8]}"


def _atomic_save(path: Path, array: np.ndarray) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as f:
        np.save(f, array)
    os.replace(tmp, path)


def load_cache_index(cache_dir: str | os.PathLike) -> dict | None:
    p = Path(cache_dir) / "cache.json"
    try:
        data = json.loads(p.read_text())
    except (OSError, ValueError):
        return None
    return data if data.get("format") == CACHE_FORMAT else None


def prepare(
    dataset_dir: str | os.PathLike,
    cache_dir: str | os.PathLike,
    *,
    frontend: FrontEnd | None = None,
    images: bool = False,
    workers: int | None = None,
    progress: bool = True,
    checkpoint_s: float = 5.0,
    log: Callable[[str], None] = print,
) -> PrepareReport:
    """Bring ``cache_dir`` up to date with ``dataset_dir`` (see the module docstring); the index is saved at
    least every ``checkpoint_s`` seconds while tracks are decoded."""
    from tqdm import tqdm

    from ..model.dataset import list_dataset, require_extra

    if images:
        require_extra("prepare --images", "matplotlib")
    t0 = time.perf_counter()
    frontend = frontend or FrontEnd()
    cache = Path(cache_dir)
    ds = list_dataset(dataset_dir, log=log)
    (cache / "mels").mkdir(parents=True, exist_ok=True)
    old = load_cache_index(cache)
    same_frontend = old is not None and old.get("frontend") == frontend.to_dict()
    previous = {e["path"]: e for e in (old or {}).get("tracks", [])} if same_frontend else {}
    report = PrepareReport(cache=str(cache.resolve()), tracks=len(ds.paths))

    entries, todo = _plan(ds, previous, cache, report)
    done = set(entries) - set(todo)  # what the saved index may list: reused, and decoded in this run

    def save_index() -> None:
        index = {"format": CACHE_FORMAT, "version": 1, "dataset": str(Path(dataset_dir).resolve()),
                 "frontend": frontend.to_dict(), "classes": ds.classes,
                 "tracks": [entries[p] for p in ds.paths if p in done]}
        tmp = cache / ".cache.json.tmp"
        tmp.write_text(json.dumps(index, indent=1))
        os.replace(tmp, cache / "cache.json")

    last_save = time.monotonic()
    try:
        for r in tqdm(extract_many(todo, frontend, workers=workers), total=len(todo), desc="prepare", unit="file",
                      disable=not progress or not todo):
            e = entries[r.path]
            if r.error:
                e.update(file=None, windows=0, error=r.error)
                report.failed.append((r.path, r.error))
                log(f"skipped {r.path}: {r.error}")
            else:
                _keep(cache, e, r.features, previous.get(r.path, {}).get("file"), report, images=images)
            done.add(r.path)
            if time.monotonic() - last_save >= checkpoint_s:
                save_index()
                last_save = time.monotonic()
    except BaseException:  # Ctrl-C, or a failure: keep the record of every track finished so far
        with contextlib.suppress(OSError):
            save_index()
        raise
    save_index()
    if images:  # reused tracks get their pictures too, if they do not have them yet
        for path in set(entries) - set(todo):
            e = entries[path]
            if e.get("file") and not (cache / "images" / e["class"] / f"{Path(e['file']).stem}-w0.png").exists():
                report.images += save_images(cache, e, np.load(cache / e["file"]))
    report.seconds = time.perf_counter() - t0
    return report


def _plan(ds, previous: dict, cache: Path, report: PrepareReport) -> tuple[dict, list[str]]:
    """Each track's cache entry, reused when its file is unchanged (size, mtime, class) and its windows are
    there, and the tracks to decode; the files of tracks gone from the dataset are deleted."""
    entries, todo = {}, []
    for path, label in zip(ds.paths, ds.labels):
        st = os.stat(path)
        e = previous.get(path)
        fresh = e and e["size"] == st.st_size and e["mtime"] == st.st_mtime and e["class"] == ds.classes[label]
        if fresh and (e.get("error") or (cache / e["file"]).is_file()):
            entries[path] = e
            report.reused += 1
        else:
            todo.append(path)
            entries[path] = {"path": path, "class": ds.classes[label], "size": st.st_size, "mtime": st.st_mtime}
    gone = set(previous) - set(entries)
    for path in gone:
        if previous[path].get("file"):
            (cache / previous[path]["file"]).unlink(missing_ok=True)
    report.removed = len(gone)
    return entries, todo


def _keep(cache: Path, e: dict, feats: np.ndarray, stale: str | None, report: PrepareReport, *, images: bool) -> None:
    """Save one decoded track's windows (silent ones dropped while any is loud) into the cache as entry ``e``
    says; ``stale``: the file its earlier entry named, deleted when the track moved to another class."""
    loud = feats.mean(axis=(1, 2)) >= SILENT
    if loud.any():
        report.silent_windows_dropped += int((~loud).sum())
        feats = feats[loud]
    rel = f"mels/{e['class']}/{_entry_name(e['path'])}.npy"
    (cache / rel).parent.mkdir(parents=True, exist_ok=True)
    _atomic_save(cache / rel, feats.astype(np.float32))
    if stale and stale != rel:  # the track moved to another class folder
        (cache / stale).unlink(missing_ok=True)
    e.update(file=rel, windows=int(len(feats)), error=None)
    report.prepared += 1
    if images:
        report.images += save_images(cache, e, feats)


def save_images(cache: Path, entry: dict, feats: np.ndarray) -> int:
    """Each window's log-mel spectrogram as a PNG (low frequencies at the bottom), as the original project did."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder = cache / "images" / entry["class"]
    folder.mkdir(parents=True, exist_ok=True)
    stem = Path(entry["file"]).stem
    for i, w in enumerate(feats):
        plt.imsave(folder / f"{stem}-w{i}.png", w, cmap="magma", origin="lower")
    return len(feats)


def load_cached(cache_dir: str | os.PathLike) -> tuple[dict, dict[str, np.ndarray]]:
    """The cache index and the windows of every track that has some, by path."""
    cache = Path(cache_dir)
    index = load_cache_index(cache)
    if index is None:
        raise FileNotFoundError(f"{cache}: no training cache here (run 'soundalike prepare')")
    feats = {e["path"]: np.load(cache / e["file"]) for e in index["tracks"] if e.get("file")}
    return index, feats


def spectrogram_png(path: str | os.PathLike, out: str | os.PathLike, *, frontend: FrontEnd | None = None,
                    offset_s: float = 0.0, duration_s: float = 30.0) -> dict:
    """Draw the log-mel spectrogram of ``duration_s`` seconds of a file from ``offset_s`` (cut at the file's
    end): time in seconds on the x axis, frequency in Hz (mel-spaced) on the y axis. Returns what was drawn."""
    from ..model.dataset import require_extra

    require_extra("spectrogram", "matplotlib")
    import librosa
    import librosa.display
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ..model.audio import AudioError, probe, read_windows, resample

    frontend = frontend or FrontEnd()
    info = probe(path)
    if offset_s >= info.duration_s:
        raise AudioError(path, f"offset {offset_s:g} s is past the end of the file ({info.duration_s:.1f} s)")
    length = max(0.1, min(duration_s, info.duration_s - offset_s))
    raw, sr = read_windows(path, [offset_s], length)
    y = resample(raw[0], sr, frontend.sample_rate)
    mel = librosa.feature.melspectrogram(y=y, sr=frontend.sample_rate, n_fft=frontend.n_fft,
                                         hop_length=frontend.hop_length, n_mels=frontend.n_mels,
                                         fmin=frontend.fmin, fmax=frontend.fmax)
    db = librosa.power_to_db(mel, ref=np.max)
    fig, ax = plt.subplots(figsize=(10, 4), dpi=100)
    img = librosa.display.specshow(db, sr=frontend.sample_rate, hop_length=frontend.hop_length, x_axis="time",
                                   y_axis="mel", fmin=frontend.fmin, fmax=frontend.fmax, ax=ax, cmap="magma")
    ax.set_xlabel("time (s)")
    ax.set_ylabel("frequency (Hz)")
    ax.set_title(f"{Path(path).name}  ({offset_s:.0f}-{offset_s + length:.0f} s of {info.duration_s:.0f} s)")
    fig.colorbar(img, ax=ax, format="%+2.0f dB")
    fig.tight_layout()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out)
    plt.close(fig)
    return {"output": str(out.resolve()), "path": str(Path(path).resolve()), "offset_s": float(offset_s),
            "duration_s": round(float(length), 3), "file_duration_s": round(info.duration_s, 3),
            "sample_rate": frontend.sample_rate, "n_mels": frontend.n_mels, "hop_length": frontend.hop_length,
            "fmin": frontend.fmin, "fmax": frontend.fmax, "shape": list(db.shape)}
