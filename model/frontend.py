"""The mel front end: every parameter that turns a file into the encoder's input, in one picklable value.

A :class:`FrontEnd` is part of an encoder's identity: its parameters go into the encoder fingerprint, so two
stores built with different front ends never share an index. It is plain data and runs in decode workers
(NumPy and librosa only, never TensorFlow).
"""

from __future__ import annotations

import dataclasses
import json
import os

import numpy as np

from ..model.audio import load_windows
from ..model.dsp import mel_spectrogram


@dataclasses.dataclass(frozen=True)
class FrontEnd:
    """Decoding and log-mel parameters.

    The encoder input for one window is ``log10(1 + gain * mel_power)`` with shape ``(n_mels, frames)``,
    where ``frames = 1 + window_samples // hop_length`` (librosa's centred STFT).
    """

    sample_rate: int = 22050
    window_s: float = 3.0
    n_windows: int = 10
    n_fft: int = 1024
    hop_length: int = 512
    n_mels: int = 96
    fmin: float = 20.0
    fmax: float = 11025.0
    log_gain: float = 1000.0
    peak: float = 0.95  # peak-normalise each track's windows to this; 0 keeps the recorded level

    @property
    def window_samples(self) -> int:
        return int(round(self.window_s * self.sample_rate))

    @property
    def frames(self) -> int:
        return 1 + self.window_samples // self.hop_length

    @property
    def input_shape(self) -> tuple[int, int]:
        return (self.n_mels, self.frames)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "FrontEnd":
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise ValueError(f"unknown front-end parameters: {sorted(unknown)}")
        return cls(**d)

    def canonical(self) -> str:
        """Stable text of every parameter (part of the encoder fingerprint)."""
        return json.dumps(self.to_dict(), sort_keys=True)

    def windows(self, path: str | os.PathLike):
        """Decode the analysis windows of one file. See :func:`model.audio.load_windows`."""
        return load_windows(path, sample_rate=self.sample_rate, window_s=self.window_s, n_windows=self.n_windows,
                            peak=self.peak)

    def features(self, windows: np.ndarray) -> np.ndarray:
        """Log-mel spectrograms of a batch of windows: librosa's ``melspectrogram`` (centred STFT with zero
        padding, periodic Hann window, power 2, Slaney mel filters) computed in NumPy, so that a query
        process does not import librosa (2 s with SciPy and Numba); ``tests/model/test_audio.py`` holds the two
        to each other.

        Parameters
        ----------
        windows : np.ndarray [shape=(n, window_samples)]

        Returns
        -------
        np.ndarray [shape=(n, n_mels, frames), dtype=float32]
        """
        windows = np.ascontiguousarray(windows, dtype=np.float32)
        if windows.ndim != 2 or windows.shape[1] != self.window_samples:
            raise ValueError(f"windows must have shape (n, {self.window_samples}), got {windows.shape}")
        mel = mel_spectrogram(windows, self.sample_rate, self.n_fft, self.hop_length, self.n_mels, self.fmin, self.fmax)
        return np.log10(1.0 + self.log_gain * mel).astype(np.float32)


