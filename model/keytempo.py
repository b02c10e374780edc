"""Tempo (BPM) and key of a track from the windows an index run analyses (groundwork for issue "Better
neighbours": not yet stored or used by the indexer).

- Key: the chroma (librosa's ``chroma_stft``) summed over the windows, correlated with the Krumhansl-Kessler
  major and minor key profiles rotated to each of the 12 tonics; the best of the 24 wins, and the margin
  over the runner-up says how sure it is.
- Tempo: each window's onset-strength envelope (librosa), their autocorrelations summed, weighted by a
  log-normal prior around 120 BPM (as librosa's tempo estimate is) and the best lag refined between its
  neighbours; windows of 3 s hold about 6 beats at 120 BPM.
"""

import numpy as np

NOTES = ["C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B"]
# Krumhansl & Kessler (1982) probe-tone profiles, tonic first
MAJOR = np.array([6.35, 2.23, 3.48, 2.33, 4.38, 4.09, 2.52, 5.19, 2.39, 3.66, 2.29, 2.88])
MINOR = np.array([6.33, 2.68, 3.52, 5.38, 2.60, 3.53, 2.54, 4.75, 3.98, 2.69, 3.34, 3.17])
HOP = 512


def key_of_chroma(chroma: np.ndarray) -> tuple[str, float]:
    """The key (e.g. ``"A minor"``) whose profile correlates best with a 12-bin chroma vector, and the margin
    of its correlation over the second best."""
    c = np.asarray(chroma, np.float64)
    c = (c - c.mean()) / (c.std() + 1e-12)
    scores = []
    for mode, profile in (("major", MAJOR), ("minor", MINOR)):
        p = (profile - profile.mean()) / profile.std()
        for tonic in range(12):
            scores.append((float(np.dot(c, np.roll(p, tonic)) / 12), f"{NOTES[tonic]} {mode}"))
    scores.sort(reverse=True)
    return scores[0][1], scores[0][0] - scores[1][0]


def estimate(windows: np.ndarray, sample_rate: int) -> dict:
    """Tempo and key of a track from its analysis windows ``[n, samples]`` (mono, any level)."""
    import librosa

    windows = np.asarray(windows, np.float32)
    chroma = np.zeros(12)
    acf = None
    for w in windows:
        if float(np.max(np.abs(w))) < 1e-5:
            continue
        chroma += librosa.feature.chroma_stft(y=w, sr=sample_rate, hop_length=HOP).sum(axis=1)
        env = librosa.onset.onset_strength(y=w, sr=sample_rate, hop_length=HOP)
        a = librosa.autocorrelate(env - env.mean())
        acf = a if acf is None else acf[: min(len(acf), len(a))] + a[: min(len(acf), len(a))]
    if acf is None:
        return {"bpm": None, "key": None, "key_margin": None}
    key, margin = key_of_chroma(chroma)
    lags = np.arange(1, len(acf))
    bpm_of_lag = 60.0 * sample_rate / (HOP * lags)
    # librosa's log-normal prior around 120 BPM weighs the autocorrelation peaks (as librosa.feature.tempo does)
    prior = np.exp(-0.5 * ((np.log2(bpm_of_lag) - np.log2(120.0)) / 1.0) ** 2)
    usable = (bpm_of_lag >= 40) & (bpm_of_lag <= 240)
    if not usable.any():
        return {"bpm": None, "key": key, "key_margin": round(margin, 3)}
    weighted = np.where(usable, np.maximum(acf[1:], 0) * prior, -np.inf)
    best = int(np.argmax(weighted))
    # refine the lag between its neighbours (a parabola through three points)
    if 0 < best < len(weighted) - 1 and np.isfinite(weighted[best - 1 : best + 2]).all():
        y0, y1, y2 = weighted[best - 1 : best + 2]
        shift = 0.5 * (y0 - y2) / (y0 - 2 * y1 + y2) if (y0 - 2 * y1 + y2) != 0 else 0.0
    else:
        shift = 0.0
    bpm = 60.0 * sample_rate / (HOP * (lags[best] + shift))
    return {"bpm": round(float(bpm), 1), "key": key, "key_margin": round(margin, 3)}
