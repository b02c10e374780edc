"""Outside audio: a file that is not a track of the store, embedded with the store's own encoder (loaded once,
from the converted-model cache when this machine has one), read whole as a clip for excerpt search, or analysed
for tempo and key as the indexer would."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import numpy as np

from ..catalog.store import StoreError
from .errors import QueryError

QUERY_BATCH = 4  # windows an outside query sends the model at once
EXCERPT_HOP_S = 1.0  # an excerpt query analyses a window every this many seconds
EXCERPT_MAX_WINDOWS = 32  # ... at most this many, spread over a longer query


def audio_file(path: str | os.PathLike) -> Path:
    """``path`` as a Path, or a QueryError when it is missing or a folder."""
    path = Path(path)
    if not path.exists():
        raise QueryError(f"{path}: no such file")
    if path.is_dir():
        raise QueryError(f"{path}: is a folder, not an audio file")
    return path


class OutsideAudio:
    """What a searcher does with files from outside the store (``store``: one generation)."""

    def __init__(self, store):
        self.store = store
        self._encoder = None
        self._lock = threading.Lock()

    def adopt(self, other: "OutsideAudio") -> None:
        """Take ``other``'s loaded encoder (a searcher of the next generation of the same store)."""
        self._encoder = other._encoder

    def encoder(self):
        """The store's encoder, loaded on first use (this is where TensorFlow is imported, unless this machine
        has the converted model cached), once however many threads ask."""
        with self._lock:
            return self._load()

    def _load(self):
        if self._encoder is None:
            from ..model.encoder import ModelError
            from ..model.registry import load_encoder

            from ..model.musicnn import WeightsMissing

            ref = self.store.encoder_path or self.store.encoder_info.get("spec")
            if ref is None:
                raise StoreError(f"{self.store.path}: the store does not record its encoder, outside files cannot be embedded")
            if isinstance(ref, dict) and ref.get("kind") == "musicnn":
                # the model the last indexing (or query) process compiled, without TensorFlow (model.compiled)
                from ..model.musicnn import MusicnnEncoder

                self._encoder = MusicnnEncoder.cached(self.store.encoder_info["fingerprint"])
                if self._encoder is not None:
                    return self._encoder
            try:
                enc = load_encoder(ref)
            except (ModelError, WeightsMissing) as err:
                raise StoreError(str(err)) from None
            if enc.fingerprint != self.store.encoder_info["fingerprint"]:
                raise StoreError(f"{self.store.path}: encoder {enc.name} now has fingerprint {enc.fingerprint}, the "
                                 f"store was built with {self.store.encoder_info['fingerprint']}; outside files cannot be "
                                 f"embedded for it: index the library into a new store with this encoder")
            self._encoder = enc
        return self._encoder

    def embed(self, path: str | os.PathLike) -> tuple[np.ndarray, float]:
        """An outside file's unit track vector and its duration (seconds), from one decode."""
        from ..model.audio import AudioError

        path = audio_file(path)
        enc = self.encoder()
        try:
            windows, info = enc.frontend.windows(path)
        except AudioError as err:
            raise QueryError(str(err)) from None
        # a few windows a call: the activations of 16 windows at once would take 350 MB more, at the same speed
        embs, _ = enc.encode(enc.features(windows), batch_size=QUERY_BATCH)
        return self.store.transform()(enc.summarize(embs))[0], info.duration_s

    def clip_features(self, path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray, float]:
        """An outside file's window features for excerpt search: a window every EXCERPT_HOP_S seconds (at most
        EXCERPT_MAX_WINDOWS, spread over it), brought to the level the library's windows were analysed at.
        Returns (features ``[m, excerpt_dim]``, each window's start in seconds, the file's duration)."""
        from ..model.audio import AudioError, clip_windows

        path = audio_file(path)
        enc = self.encoder()
        fe = enc.frontend
        try:
            windows, starts_s, duration = clip_windows(path, sample_rate=fe.sample_rate, window_s=fe.window_s,
                                                       hop_s=EXCERPT_HOP_S, max_windows=EXCERPT_MAX_WINDOWS,
                                                       peak=fe.peak)
        except AudioError as err:
            raise QueryError(str(err)) from None
        embs, _ = enc.encode(enc.features(windows), batch_size=QUERY_BATCH)
        return embs[:, : enc.excerpt_dim], starts_s, duration

    def excerpt_wanted(self, path: str | os.PathLike) -> tuple[bool, str]:
        """Whether an outside file is better searched as an excerpt (shorter than the windows a track vector
        spans, and the store keeps windows), and why, in a few words."""
        from ..model.audio import AudioError, probe

        fe = self.store.encoder_info.get("frontend") or {}
        span = float(fe.get("n_windows", 0)) * float(fe.get("window_s", 0))
        try:
            duration = probe(path).duration_s
        except (AudioError, OSError):
            return False, ""  # the track search reports what is wrong with the file
        if duration >= span:
            return False, ""
        if not self.store.manifest.get("windows"):
            keeps = (self.store.encoder_info.get("spec") or {}).get("kind") in ("musicnn", "student")  # (trained models keep none)
            return False, (f"the query is {duration:.0f} s, but this store keeps no windows for excerpt search "
                           f"(indexed before they were kept: 'soundalike index DIR --db STORE --force')") if keeps else ""
        return True, (f"excerpt search: the query is {duration:.0f} s, shorter than the {span:.0f} s a track vector "
                      f"spans (--no-excerpt compares whole tracks)")

    def music_of(self, path: str | os.PathLike) -> dict:
        """Tempo and key of an outside file, estimated as the indexer does."""
        from ..model import keytempo
        from ..model.audio import AudioError

        fe = self.encoder().frontend
        try:
            windows, _ = fe.windows(audio_file(path))
        except AudioError as err:
            raise QueryError(str(err)) from None
        est = keytempo.estimate(windows, sample_rate=fe.sample_rate, logmel=fe.features(windows), hop_length=fe.hop_length)
        return {"bpm": est["bpm"], "key": est["key"]}
