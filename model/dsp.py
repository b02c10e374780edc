"""The signal processing the front end and the tempo and key analyser share: one Hann window, the mel and
chroma filter banks, and the mel power spectrogram. NumPy and SciPy only (it runs in decode workers)."""

from __future__ import annotations

import functools

import numpy as np


@functools.lru_cache(maxsize=8)
def hann(n: int, *, symmetric: bool = False) -> np.ndarray:
    """The Hann window of ``n`` samples, float32: periodic (for an FFT's frames), or ``symmetric`` (as
    ``np.hanning``; the chroma's frames use it)."""
    m = n - 1 if symmetric else n
    return (0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(n) / max(m, 1))).astype(np.float32)


def hz_to_mel(f):
    """Slaney's mel scale (librosa's default, ``htk=False``): linear below 1 kHz, logarithmic above."""
    f = np.asarray(f, dtype=np.float64)
    step = np.log(6.4) / 27.0
    return np.where(f >= 1000.0, 15.0 + np.log(np.maximum(f, 1e-10) / 1000.0) / step, f / (200.0 / 3))


def mel_to_hz(m):
    m = np.asarray(m, dtype=np.float64)
    step = np.log(6.4) / 27.0
    return np.where(m >= 15.0, 1000.0 * np.exp(step * (m - 15.0)), m * (200.0 / 3))


@functools.lru_cache(maxsize=8)
def mel_filters(sample_rate: int, n_fft: int, n_mels: int, fmin: float, fmax: float) -> np.ndarray:
    """Triangular mel filters ``[n_mels, 1 + n_fft // 2]`` with Slaney's area normalisation, as
    ``librosa.filters.mel`` makes them."""
    fft_freqs = np.fft.rfftfreq(n_fft, d=1.0 / sample_rate)
    mel_f = mel_to_hz(np.linspace(hz_to_mel(fmin), hz_to_mel(fmax), n_mels + 2))
    fdiff = np.diff(mel_f)
    ramps = np.subtract.outer(mel_f, fft_freqs)
    lower = -ramps[:-2] / fdiff[:-1, None]
    upper = ramps[2:] / fdiff[1:, None]
    weights = np.maximum(0.0, np.minimum(lower, upper)) * (2.0 / (mel_f[2:] - mel_f[:-2]))[:, None]
    return weights.astype(np.float32)


def mel_spectrogram(y: np.ndarray, sample_rate: int, n_fft: int, hop_length: int, n_mels: int, fmin: float,
                    fmax: float) -> np.ndarray:
    """Mel power spectrogram ``[n, n_mels, frames]`` of signals ``y`` ``[n, samples]``; frames are centred
    (``n_fft // 2`` zeros on each side), ``frames = 1 + samples // hop_length``."""
    y = np.pad(y, ((0, 0), (n_fft // 2, n_fft // 2)))
    frames = 1 + (y.shape[1] - n_fft) // hop_length
    view = np.lib.stride_tricks.sliding_window_view(y, n_fft, axis=1)[:, ::hop_length][:, :frames]
    # SciPy's FFT in float32: a third of the time of NumPy's (which computes in float64), the log-mel within 1e-5
    from scipy.fft import rfft

    spec = rfft(view * hann(n_fft), axis=-1)
    power = spec.real ** 2 + spec.imag ** 2  # [n, frames, 1 + n_fft // 2], float32
    return np.matmul(power, mel_filters(sample_rate, n_fft, n_mels, float(fmin), float(fmax)).T).transpose(0, 2, 1)


@functools.lru_cache(maxsize=4)
def chroma_filters(sample_rate: int, n_fft: int) -> np.ndarray:
    """``[12, 1 + n_fft // 2]``: each FFT bin between 55 Hz and 4 kHz to its pitch class, weighted by how close
    it lies to the class's centre (triangular, one semitone wide)."""
    f = np.fft.rfftfreq(n_fft, 1.0 / sample_rate)
    out = np.zeros((12, len(f)), np.float32)
    use = (f >= 55.0) & (f <= 4000.0)
    midi = 69.0 + 12.0 * np.log2(np.maximum(f[use], 1e-6) / 440.0)
    nearest = np.round(midi)
    weight = np.maximum(0.0, 1.0 - 2.0 * np.abs(midi - nearest))
    out[(nearest.astype(int) % 12), np.flatnonzero(use)] = weight
    return out
