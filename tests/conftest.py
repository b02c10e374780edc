"""Shared fixtures: audio synthesised at test time, a small trained model, an indexed library.

Three clearly different kinds of sound stand in for genres: ``tones`` (sustained harmonic chords),
``noise`` (band-passed noise swells) and ``beats`` (a kick-and-hat rhythm). Every file is written by
soundfile from NumPy arrays; nothing is downloaded.
"""

from __future__ import annotations

import atexit
import contextlib
import dataclasses
import os
import shutil
import socket
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# the compiled-encoder cache of this test run, not the user's (removed at exit)
if not os.environ.get("SOUNDALIKE_CACHE"):
    os.environ["SOUNDALIKE_CACHE"] = tempfile.mkdtemp(prefix="soundalike-test-cache-")
    atexit.register(shutil.rmtree, os.environ["SOUNDALIKE_CACHE"], True)

SR = 22050
KINDS = ("tones", "noise", "beats")
FORMATS = {"wav": ("WAV", "PCM_16"), "flac": ("FLAC", "PCM_16"), "ogg": ("OGG", "VORBIS"), "mp3": ("MP3", "MPEG_LAYER_III")}


def synth(kind: str, *, seed: int, seconds: float = 6.0, sr: int = SR) -> np.ndarray:
    """A mono float32 signal of one of :data:`KINDS`, varied by ``seed``."""
    rng = np.random.default_rng(seed)
    n = int(seconds * sr)
    t = np.arange(n) / sr
    if kind == "tones":
        f0 = rng.uniform(110, 330)
        y = sum(np.sin(2 * np.pi * f0 * r * t + rng.uniform(0, 6)) / (i + 1) for i, r in enumerate((1, 1.25, 1.5, 2, 3)))
        y *= 0.6 + 0.4 * np.sin(2 * np.pi * rng.uniform(0.2, 0.5) * t)
    elif kind == "noise":
        from scipy.signal import butter, sosfilt

        lo = rng.uniform(1500, 3000)
        sos = butter(4, [lo, lo * 2], btype="band", fs=sr, output="sos")
        y = sosfilt(sos, rng.standard_normal(n)) * (0.5 + 0.5 * np.sin(2 * np.pi * rng.uniform(0.1, 0.3) * t) ** 2)
    elif kind == "beats":
        y = np.zeros(n)
        beat = int(sr * 60 / rng.uniform(90, 150))
        kick_t = np.arange(int(0.15 * sr)) / sr
        kick = np.sin(2 * np.pi * (50 + 100 * np.exp(-kick_t * 30)) * kick_t) * np.exp(-kick_t * 20)
        hat = rng.standard_normal(int(0.03 * sr)) * np.exp(-np.arange(int(0.03 * sr)) / (0.005 * sr)) * 0.3
        for i, start in enumerate(range(0, n - len(kick), beat)):
            y[start : start + len(kick)] += kick
            h = start + beat // 2
            if h + len(hat) < n:
                y[h : h + len(hat)] += hat
    else:
        raise ValueError(kind)
    y = y / (np.max(np.abs(y)) + 1e-9) * 0.8
    return y.astype(np.float32)


def reencoded(src: str | Path, dst: Path) -> Path:
    """``src`` decoded and written again in ``dst``'s format: the same music, other bytes (a byte-identical
    copy of a library file is that track, not an outside file)."""
    y, sr = sf.read(str(src), dtype="float32", always_2d=True)
    return write_audio(dst, y.mean(axis=1), sr)


def write_audio(path: Path, y: np.ndarray, sr: int = SR, *, tags: dict | None = None) -> Path:
    """Write ``y`` in the format of ``path``'s extension and tag it with mutagen."""
    fmt, subtype = FORMATS[path.suffix[1:].lower()]
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), y, sr, format=fmt, subtype=subtype)
    if tags:
        import mutagen

        if path.suffix.lower() == ".wav":  # no easy interface for ID3 inside WAV: write frames
            from mutagen import id3

            f = mutagen.File(str(path))
            f.add_tags()
            frames = {"title": id3.TIT2, "artist": id3.TPE1, "album": id3.TALB, "genre": id3.TCON}
            for key, value in tags.items():
                f.tags.add(frames[key](encoding=3, text=[value]))
        else:
            f = mutagen.File(str(path), easy=True)
            if f.tags is None:
                f.add_tags()
            for key, value in tags.items():
                f[key] = value
        f.save()
    return path


def write_av(path, y, sr, codec, container=None, sample_format=None):
    """Encode mono float audio with PyAV (for the formats libsndfile cannot write)."""
    import av

    with av.open(str(path), "w", format=container) as c:
        stream = c.add_stream(codec, rate=sr)
        stream.layout = "mono"
        if sample_format:
            stream.format = sample_format
        stream.bit_rate = 96000
        fmt = stream.codec_context.format.name
        size = stream.codec_context.frame_size or 1024
        for i in range(0, len(y), size):
            chunk = y[i : i + size].reshape(1, -1)
            data = chunk.astype(np.float32) if fmt in ("flt", "fltp") else (chunk * 32767).astype(np.int16)
            frame = av.AudioFrame.from_ndarray(data, format=fmt, layout="mono")
            frame.sample_rate, frame.pts = sr, i
            for packet in stream.encode(frame):
                c.mux(packet)
        for packet in stream.encode(None):
            c.mux(packet)
    return path


@dataclasses.dataclass
class Library:
    root: Path
    files: dict[str, str]  # path -> kind


def make_library(root: Path, *, per_kind: int = 4, seconds: float = 6.0, formats=("flac", "ogg", "mp3", "wav"), seed: int = 0) -> Library:
    files = {}
    i = 0
    for kind in KINDS:
        for j in range(per_kind):
            ext = formats[i % len(formats)]
            p = root / kind / f"{kind}-{j:02d}.{ext}"
            write_audio(p, synth(kind, seed=seed * 1000 + i, seconds=seconds),
                        tags={"title": f"{kind} {j}", "artist": f"{kind} artist {j % 2}", "album": kind, "genre": kind})
            files[str(p)] = kind
            i += 1
    return Library(root, files)


@pytest.fixture(scope="session")
def small_frontend():
    from soundalike.model.frontend import FrontEnd

    # short windows and few mel bands: the suite runs in minutes on two cores
    return FrontEnd(window_s=1.0, n_windows=4, n_mels=48)


@pytest.fixture(scope="session")
def trained_model(tmp_path_factory, small_frontend):
    """A seed CNN trained briefly on a 3-kind dataset; returns the .keras path."""
    from soundalike.model.train import train_seed

    root = tmp_path_factory.mktemp("dataset")
    make_library(root, per_kind=5, seconds=5.0, formats=("wav", "flac"), seed=7)
    out = root.parent / "model.keras"
    train_seed(root, out, frontend=small_frontend, epochs=6, val_fraction=0.2, workers=0, progress=False, log=lambda m: None)
    return out


@pytest.fixture
def library(tmp_path):
    return make_library(tmp_path / "music")


@pytest.fixture
def indexed(tmp_path, library, trained_model):
    """A freshly indexed copy of the library: (Library, store path)."""
    from soundalike.indexer.run import index_library

    store = tmp_path / "lib.soundalike"
    index_library(library.root, store, model=trained_model, workers=0, progress=False, log=lambda m: None)
    return library, store


@pytest.fixture
def rng():
    return np.random.default_rng(12345)


#: an encoder record for stores written directly with StoreWriter (8-wide vectors, no model)
VECTOR_ENCODER = {"name": "test", "fingerprint": "fp-test", "dim": 8, "transform": "standardize"}


def put_tracks(w, n: int, rng) -> list[int]:
    """``n`` tracks of random 8-wide vectors (and a tempo) put through the StoreWriter ``w``; their ids."""
    from soundalike.catalog.track import Track

    ids = []
    for _ in range(n):
        path = f"/music/{rng.integers(1 << 40)}.flac"
        track_id = w.id_for(path)
        w.put(Track(id=track_id, path=path, size=1, mtime=1.0, title=path, bpm=float(rng.uniform(60, 180))),
              rng.standard_normal(8))
        ids.append(track_id)
    return ids


def copy_tree(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


@contextlib.contextmanager
def running(app):
    """Serve the ASGI ``app`` on a free loopback port in a thread (uvicorn); yields the base URL and stops the
    server afterwards."""
    import uvicorn

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.time() + 30
    while not server.started:
        assert thread.is_alive() and time.time() < deadline, "the server did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(15)
        sock.close()
