"""Tempo and key estimates on synthesised music of known tempo and key."""

from __future__ import annotations

import numpy as np
import pytest

from soundalike.model.keytempo import estimate, key_of_chroma

SR = 16000


def tone(freqs, seconds, sr=SR):
    t = np.arange(int(seconds * sr)) / sr
    y = sum(np.sin(2 * np.pi * f * h * t) / h for f in freqs for h in (1, 2, 3))
    return y * np.exp(-2.0 * (t % seconds))


def progression(chords, bpm=100.0, bars=4, sr=SR):
    """Block chords (MIDI note numbers), one a beat, four beats a chord."""
    beat = 60.0 / bpm
    parts = []
    for _ in range(bars):
        for chord in chords:
            freqs = [440.0 * 2 ** ((n - 69) / 12) for n in chord]
            parts += [tone(freqs, beat, sr) for _ in range(4)]
    y = np.concatenate(parts)
    return (y / np.max(np.abs(y)) * 0.8).astype(np.float32)


def windows_of(y, n=16, seconds=2.976, sr=SR):
    size = int(seconds * sr)
    starts = np.linspace(0, len(y) - size, n).astype(int)
    return np.stack([y[a : a + size] for a in starts])


@pytest.mark.parametrize("chords, key", [
    ([(60, 64, 67), (65, 69, 72), (67, 71, 74), (60, 64, 67)], "C major"),  # C F G C
    ([(57, 60, 64), (62, 65, 69), (64, 68, 71), (57, 60, 64)], "A minor"),  # Am Dm E Am
    ([(62, 66, 69), (67, 71, 74), (69, 73, 76), (62, 66, 69)], "D major"),  # D G A D
])
def test_key_of_a_chord_progression(chords, key):
    assert estimate(windows_of(progression(chords)), sample_rate=SR)["key"] == key


@pytest.mark.parametrize("bpm", [90.0, 120.0, 140.0])
def test_tempo_of_a_drum_pattern(bpm):
    rng = np.random.default_rng(int(bpm))
    beat = int(SR * 60 / bpm)
    y = np.zeros(SR * 60)
    kick_t = np.arange(int(0.12 * SR)) / SR
    kick = np.sin(2 * np.pi * (50 + 90 * np.exp(-kick_t * 30)) * kick_t) * np.exp(-kick_t * 25)
    hat = rng.standard_normal(int(0.03 * SR)) * np.exp(-np.arange(int(0.03 * SR)) / (0.006 * SR)) * 0.3
    for i, at in enumerate(range(0, len(y) - len(kick), beat)):
        y[at : at + len(kick)] += kick
        if at + beat // 2 + len(hat) < len(y):
            y[at + beat // 2 : at + beat // 2 + len(hat)] += hat
    got = estimate(windows_of(y.astype(np.float32)), sample_rate=SR)["bpm"]
    assert got == pytest.approx(bpm, rel=0.03), got


def test_silence_has_no_tempo_or_key_and_a_flat_chroma_no_margin():
    assert estimate(np.zeros((4, SR * 3), np.float32), sample_rate=SR) == {"bpm": None, "key": None, "key_strength": None}
    assert key_of_chroma(np.ones(12))[1] == pytest.approx(0.0)
