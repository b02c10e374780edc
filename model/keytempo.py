"""Tempo (BPM) and key of a track, from the windows an index run analyses anyway.

Both come from what decoding already produced, in NumPy (a few milliseconds a track, in the decode workers):

- Key: a chroma vector, the windows' short-time power spectra (4096-point FFT, back-to-back 0.26 s frames at 16 kHz, 4 Hz bins)
  folded onto the 12 pitch classes between 55 Hz and 4 kHz, each frame's share normalised so loud passages
  do not outvote the rest; it is correlated with the Krumhansl-Kessler major and minor key profiles rotated to
  each of the 12 tonics. The best of the 24 wins; ``key_strength`` is its correlation's margin over the best
  key that is not a neighbour on the circle of fifths (its relative, dominant or subdominant), so it says how
  clearly the music is in that key rather than how well the neighbours fit too.
- Tempo: each window's onset strength (the positive spectral flux of its log-mel spectrogram, averaged over
  bands), their autocorrelations summed over windows and normalised by overlap, weighted by a log-normal prior
  around 120 BPM (as librosa's tempo estimate is, a little narrower), the best lag between 40 and 240 BPM refined between its
  neighbours. Windows of 3 s hold about 6 beats at 120 BPM.

``model/keytempo.py`` is checked on synthesised chord progressions and drum patterns of known key and tempo
(``tests/model/test_keytempo.py``); docs/keytempo.md gives its accuracy.
"""

from __future__ import annotations

import numpy as np

from ..model.dsp import chroma_filters, hann

NOTES = ["C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B"]
FLATS = {"DB": "C#", "EB": "D#", "GB": "F#", "AB": "G#", "BB": "A#", "CB": "B", "FB": "E", "E#": "F", "B#": "C"}
# Krumhansl & Kessler (1982) probe-tone profiles, tonic first
MAJOR = np.array([6.35, 2.23, 3.48, 2.33, 4.38, 4.09, 2.52, 5.19, 2.39, 3.66, 2.29, 2.88])
MINOR = np.array([6.33, 2.68, 3.52, 5.38, 2.60, 3.53, 2.54, 4.75, 3.98, 2.69, 3.34, 3.17])
CHROMA_FFT = 4096
CHROMA_HOP = 4096
BPM_RANGE = (40.0, 240.0)
#: the tempo prior's spread (octaves, log-normal around 120 BPM). librosa's 1.0 took the eighth-note pulse of
#: a hi-hat for the beat more often: on 64 synthesised songs of 70-180 BPM, 0.80 within 4% against 0.84 at 0.7
#: (0.4-0.5 measured no better); either is right up to a factor of 2 or 3 on every song
PRIOR_OCTAVES = 0.7


def key_of_chroma(chroma: np.ndarray) -> tuple[str, float]:
    """The key (e.g. ``"A minor"``) whose profile correlates best with a 12-bin chroma vector, and the margin
    of its correlation over the best key that is not a neighbour (see the module's docstring)."""
    c = np.asarray(chroma, np.float64)
    c = (c - c.mean()) / (c.std() + 1e-12)
    scores = {}
    for mode, profile in (("major", MAJOR), ("minor", MINOR)):
        p = (profile - profile.mean()) / profile.std()
        for tonic in range(12):
            scores[f"{NOTES[tonic]} {mode}"] = float(np.dot(c, np.roll(p, tonic)) / 12)
    best = max(scores, key=scores.get)
    near = set(compatible_keys(best))
    rest = [v for k, v in scores.items() if k not in near]
    return best, scores[best] - max(rest)


def parse_key(text: str) -> str:
    """A key as this module names it: ``"a minor"``, ``"Am"``, ``"Bb major"``, ``"F#m"`` -> ``"A minor"`` etc.
    Raises ValueError for anything else."""
    t = " ".join(str(text).replace("♯", "#").replace("♭", "b").split())
    low = t.lower()
    mode = "major"
    for suffix, m in ((" minor", "minor"), (" min", "minor"), (" major", "major"), (" maj", "major"), ("m", "minor")):
        if low.endswith(suffix) and len(t) > len(suffix):
            t, mode = t[: -len(suffix)].strip(), m
            break
    note = t[:1].upper() + t[1:].lower().replace("b", "B") if t else ""
    note = note.upper()
    note = FLATS.get(note, note)
    if note not in NOTES:
        raise ValueError(f"not a key: {text!r} (e.g. 'A minor', 'Am', 'F# major', 'Bb')")
    return f"{note} {mode}"


def compatible_keys(key: str) -> list[str]:
    """The keys a DJ mixes ``key`` with (the Camelot wheel's neighbours): itself, its relative major or minor,
    and the keys a fifth above and below in the same mode."""
    note, mode = parse_key(key).split()
    i = NOTES.index(note)
    relative = f"{NOTES[(i + 3) % 12]} major" if mode == "minor" else f"{NOTES[(i - 3) % 12]} minor"
    return [f"{note} {mode}", relative, f"{NOTES[(i + 7) % 12]} {mode}", f"{NOTES[(i + 5) % 12]} {mode}"]


def wanted_keys(keys, compatible: bool = False) -> list[str]:
    """The keys a key filter keeps: ``keys`` as :func:`parse_key` names them, with ``compatible`` widened to
    each one's :func:`compatible_keys`. Raises ValueError for a text that is not a key."""
    named = [parse_key(k) for k in keys]
    return list(dict.fromkeys(c for k in named for c in compatible_keys(k))) if compatible else named


def chroma(windows: np.ndarray, *, sample_rate: int) -> np.ndarray:
    """A track's 12-bin chroma from its windows ``[n, samples]`` at ``sample_rate`` (Hz); zeros for silence."""
    y = np.asarray(windows, np.float32)
    if y.shape[1] < CHROMA_FFT:
        y = np.pad(y, ((0, 0), (0, CHROMA_FFT - y.shape[1])))
    frames = np.lib.stride_tricks.sliding_window_view(y, CHROMA_FFT, axis=1)[:, ::CHROMA_HOP].reshape(-1, CHROMA_FFT)
    import scipy.fft  # (runs in decode workers: SciPy's float32 FFT is 7x NumPy's here)

    spec = scipy.fft.rfft(frames * hann(CHROMA_FFT, symmetric=True), axis=1)
    # power, not magnitude: fundamentals outweigh their overtones (a note's third harmonic is its fifth); on
    # synthesised songs (benchmarks/keytempo.py) 0.71 of keys exact against 0.58
    power = spec.real**2 + spec.imag**2  # [frames, bins]
    c = power @ chroma_filters(sample_rate, CHROMA_FFT).T  # [frames, 12]
    total = c.sum(axis=1, keepdims=True)
    loud = total[:, 0] > 1e-3 * max(float(total.max()), 1e-12)
    if not loud.any():
        return np.zeros(12)
    return (c[loud] / total[loud]).sum(axis=0)


def onset_acf(*, logmel: np.ndarray) -> np.ndarray:
    """Summed, overlap-normalised autocorrelation of the windows' onset strength; ``logmel`` ``[n, mels, frames]``."""
    x = np.asarray(logmel, np.float32)
    env = np.maximum(0.0, np.diff(x, axis=2)).mean(axis=1)  # [n, frames - 1]
    env = env - env.mean(axis=1, keepdims=True)
    m = env.shape[1]
    spec = np.fft.rfft(env, n=2 * m, axis=1)
    acf = np.fft.irfft(np.abs(spec) ** 2, axis=1)[:, :m]  # [n, lags]
    energy = acf[:, :1]
    acf = np.where(energy > 1e-12, acf / np.maximum(energy, 1e-12), 0.0)
    return acf.sum(axis=0) / (m - np.arange(m)) * m  # each lag by the products it sums


def tempo_of_acf(acf: np.ndarray, *, frame_rate: float) -> float | None:
    """The tempo (BPM) at the autocorrelation's best lag (``frame_rate``: its lags a second, in Hz) under a
    log-normal prior around 120 BPM."""
    lags = np.arange(1, len(acf), dtype=np.float64)
    bpm = 60.0 * frame_rate / lags
    usable = (bpm >= BPM_RANGE[0]) & (bpm <= BPM_RANGE[1])
    if not usable.any() or float(np.max(acf[1:][usable])) <= 0:
        return None
    prior = np.exp(-0.5 * ((np.log2(bpm) - np.log2(120.0)) / PRIOR_OCTAVES) ** 2)
    weighted = np.where(usable, np.maximum(acf[1:], 0.0) * prior, -np.inf)
    best = int(np.argmax(weighted))
    shift = 0.0
    if 0 < best < len(weighted) - 1 and np.isfinite(weighted[best - 1 : best + 2]).all():
        y0, y1, y2 = weighted[best - 1 : best + 2]  # a parabola through the peak and its neighbours
        if y0 - 2 * y1 + y2 != 0:
            shift = float(np.clip(0.5 * (y0 - y2) / (y0 - 2 * y1 + y2), -0.5, 0.5))
    return 60.0 * frame_rate / (lags[best] + shift)


def estimate(windows: np.ndarray, *, sample_rate: int, logmel: np.ndarray | None = None,
             hop_length: int = 256) -> dict:
    """``{"bpm", "key", "key_strength"}`` of a track from its analysis windows ``[n, samples]`` (mono, any
    level, ``sample_rate`` in Hz) and, when the caller has them, their log-mel spectrograms ``[n, mels, frames]``
    at ``hop_length`` samples a frame (else they are computed: 96 bands up to ``sample_rate / 2``). Silence gives
    Nones."""
    windows = np.asarray(windows, np.float32)
    if windows.size == 0 or float(np.max(np.abs(windows))) < 1e-5:
        return {"bpm": None, "key": None, "key_strength": None}
    if logmel is None:
        from ..model.dsp import mel_spectrogram

        mel = mel_spectrogram(windows, sample_rate, 1024, hop_length, 96, 0.0, sample_rate / 2)
        logmel = np.log10(1.0 + 10000.0 * mel)
    c = chroma(windows, sample_rate=sample_rate)
    key, strength = key_of_chroma(c) if c.any() else (None, None)
    bpm = tempo_of_acf(onset_acf(logmel=logmel), frame_rate=sample_rate / hop_length)
    return {"bpm": None if bpm is None else round(float(bpm), 1), "key": key,
            "key_strength": None if strength is None else round(float(strength), 3)}
