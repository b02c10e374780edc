"""The mel front end: every parameter that turns a file into the encoder's input, in one picklable value.

A :class:`FrontEnd` is part of an encoder's identity: its parameters go into the encoder fingerprint, so two
stores built with different front ends never share an index. It is plain data and runs in decode workers
(NumPy and librosa only, never TensorFlow).
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os

import numpy as np

from ..model.audio import load_windows


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
        process does not import librosa (2 s with SciPy and Numba); ``tests/test_audio.py`` holds the two
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


def _hz_to_mel(f):
    """Slaney's mel scale (librosa's default, ``htk=False``): linear below 1 kHz, logarithmic above."""
    f = np.asarray(f, dtype=np.float64)
    step = np.log(6.4) / 27.0
    return np.where(f >= 1000.0, 15.0 + np.log(np.maximum(f, 1e-10) / 1000.0) / step, f / (200.0 / 3))


def _mel_to_hz(m):
    m = np.asarray(m, dtype=np.float64)
    step = np.log(6.4) / 27.0
    return np.where(m >= 15.0, 1000.0 * np.exp(step * (m - 15.0)), m * (200.0 / 3))


@functools.lru_cache(maxsize=8)
def mel_filters(sample_rate: int, n_fft: int, n_mels: int, fmin: float, fmax: float) -> np.ndarray:
    """Triangular mel filters ``[n_mels, 1 + n_fft // 2]`` with Slaney's area normalisation, as
    ``librosa.filters.mel`` makes them."""
    fft_freqs = np.fft.rfftfreq(n_fft, d=1.0 / sample_rate)
    mel_f = _mel_to_hz(np.linspace(_hz_to_mel(fmin), _hz_to_mel(fmax), n_mels + 2))
    fdiff = np.diff(mel_f)
    ramps = np.subtract.outer(mel_f, fft_freqs)
    lower = -ramps[:-2] / fdiff[:-1, None]
    upper = ramps[2:] / fdiff[1:, None]
    weights = np.maximum(0.0, np.minimum(lower, upper)) * (2.0 / (mel_f[2:] - mel_f[:-2]))[:, None]
    return weights.astype(np.float32)


@functools.lru_cache(maxsize=8)
def _hann(n: int) -> np.ndarray:
    return 0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(n) / n)  # periodic, as for an FFT


def mel_spectrogram(y: np.ndarray, sample_rate: int, n_fft: int, hop_length: int, n_mels: int, fmin: float,
                    fmax: float) -> np.ndarray:
    """Mel power spectrogram ``[n, n_mels, frames]`` of signals ``y`` ``[n, samples]``; frames are centred
    (``n_fft // 2`` zeros on each side), ``frames = 1 + samples // hop_length``."""
    y = np.pad(y, ((0, 0), (n_fft // 2, n_fft // 2)))
    frames = 1 + (y.shape[1] - n_fft) // hop_length
    view = np.lib.stride_tricks.sliding_window_view(y, n_fft, axis=1)[:, ::hop_length][:, :frames]
    # SciPy's FFT in float32: a third of the time of NumPy's (which computes in float64), the log-mel within 1e-5
    from scipy.fft import rfft

    spec = rfft(view * _hann(n_fft).astype(np.float32), axis=-1)
    power = spec.real ** 2 + spec.imag ** 2  # [n, frames, 1 + n_fft // 2], float32
    return np.matmul(power, mel_filters(sample_rate, n_fft, n_mels, float(fmin), float(fmax)).T).transpose(0, 2, 1)
