"""How often the tempo and key estimates are right, on synthesised songs of known tempo and key.

Each song: a chord progression of its key (I-IV-V-I or I-vi-IV-V in major; i-iv-V-i or i-VI-III-VII in minor)
in a random voicing and timbre (2-8 harmonics, decaying), a bass line on the roots, a melody of scale notes,
a drum pattern (kick, snare or clap, hi-hats) at its tempo, white noise at 20-40 dB below, a random level. It
is written as a FLAC file and indexed exactly as a library is (the default front end's 16 windows,
``model.keytempo`` in the decode workers), and the store's ``bpm`` and ``key`` columns are scored:

- key: exact; or a neighbour (relative, fifth above or below: the errors a DJ's "compatible" mixing absorbs)
- tempo: within 4% (MIREX's "accuracy 1"); or within 4% of 1/3, 1/2, 2 or 3 times it ("accuracy 2")

    python benchmarks/keytempo.py [--songs 96] [--seed 0]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

SR = 22050
MAJOR_STEPS = [0, 2, 4, 5, 7, 9, 11]
MINOR_STEPS = [0, 2, 3, 5, 7, 8, 10]  # natural minor; the V chord takes the raised seventh
NOTES = ["C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B"]


def note_hz(midi: float) -> float:
    return 440.0 * 2 ** ((midi - 69) / 12)


def voice(freq: float, seconds: float, rng, harmonics: int, decay: float) -> np.ndarray:
    t = np.arange(int(seconds * SR)) / SR
    amps = rng.uniform(0.3, 1.0, harmonics) / np.arange(1, harmonics + 1)
    y = sum(a * np.sin(2 * np.pi * freq * (h + 1) * t + rng.uniform(0, 6)) for h, a in enumerate(amps))
    return y * np.exp(-decay * t) * np.minimum(1.0, t * 200)


def add(y: np.ndarray, at: int, v: np.ndarray) -> None:
    """Mix ``v`` into ``y`` from sample ``at``, cut at the end of ``y``."""
    if at < len(y):
        y[at : at + len(v)] += v[: len(y) - at]


def triad(tonic: int, minor: bool, degree: int, *, dominant_major: bool = False) -> list[int]:
    steps = MINOR_STEPS if minor else MAJOR_STEPS
    notes = [tonic + steps[(degree + k) % 7] + 12 * ((degree + k) // 7) for k in (0, 2, 4)]
    if minor and dominant_major and degree == 4:
        notes[1] += 1  # the raised seventh: V is major in a minor key
    return notes


def song(tonic: int, minor: bool, bpm: float, seconds: float, rng) -> np.ndarray:
    n = int(seconds * SR)
    y = np.zeros(n + SR)
    beat = 60.0 / bpm
    prog = ([0, 3, 4, 0] if rng.random() < 0.5 else [0, 5, 3, 4]) if not minor else \
        ([0, 3, 4, 0] if rng.random() < 0.5 else [0, 5, 2, 6])
    harm, decay = int(rng.integers(2, 9)), rng.uniform(0.5, 3.0)
    base = 48 + tonic
    t, i = 0.0, 0
    while t < seconds:
        chord = triad(base, minor, prog[i % len(prog)], dominant_major=True)
        at = int(t * SR)
        for m in chord:
            add(y, at, voice(note_hz(m + 12 * int(rng.integers(0, 2))), 4 * beat, rng, harm, decay) * 0.25)
        add(y, at, voice(note_hz(chord[0] - 12), 2 * beat, rng, 3, 2.0) * 0.4)
        for k in range(4):  # melody: scale notes, one a beat
            steps = MINOR_STEPS if minor else MAJOR_STEPS
            m = base + 12 + steps[int(rng.integers(0, 7))]
            add(y, at + int(k * beat * SR), voice(note_hz(m), beat, rng, 4, 4.0) * 0.2)
        t += 4 * beat
        i += 1
    kick_t = np.arange(int(0.12 * SR)) / SR
    kick = np.sin(2 * np.pi * (50 + 90 * np.exp(-kick_t * 30)) * kick_t) * np.exp(-kick_t * 25)
    snare = rng.standard_normal(int(0.1 * SR)) * np.exp(-np.arange(int(0.1 * SR)) / (0.02 * SR)) * 0.4
    hat = rng.standard_normal(int(0.03 * SR)) * np.exp(-np.arange(int(0.03 * SR)) / (0.006 * SR)) * 0.15
    k = 0
    while k * beat < seconds:
        at = int(k * beat * SR)
        add(y, at, kick if k % 2 == 0 else snare)
        add(y, at + int(beat * SR / 2), hat)
        k += 1
    y = y[:n]
    y /= np.max(np.abs(y)) + 1e-9
    y += rng.standard_normal(n) * 10 ** (-rng.uniform(20, 40) / 20)
    return (y / np.max(np.abs(y)) * rng.uniform(0.2, 0.9)).astype(np.float32)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--songs", type=int, default=96)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    import soundfile as sf

    from soundalike.catalog.store import Store
    from soundalike.indexer.run import index_library
    from soundalike.model.keytempo import compatible_keys

    rng = np.random.default_rng(args.seed)
    truth = {}
    with tempfile.TemporaryDirectory() as tmp:
        lib = Path(tmp) / "songs"
        lib.mkdir()
        for s in range(args.songs):
            tonic, minor = s % 12, (s // 12) % 2 == 1
            bpm = float(rng.uniform(70, 180))
            key = f"{NOTES[tonic]} {'minor' if minor else 'major'}"
            path = lib / f"song{s:03d}.flac"
            sf.write(str(path), song(tonic, minor, bpm, float(rng.uniform(60, 180)), rng), SR)
            truth[str(path)] = (bpm, key)
        store = Path(tmp) / "songs.soundalike"
        index_library(lib, store, progress=sys.stderr.isatty(), log=lambda m: print(m, file=sys.stderr))
        rows = [r for r in Store(store).tracks.to_pylist() if r["status"] == "ok"]
    key_exact = key_near = bpm1 = bpm2 = 0
    for r in rows:
        bpm, key = truth[r["path"]]
        key_exact += r["key"] == key
        key_near += r["key"] in compatible_keys(key)
        got = r["bpm"] or 0.0
        bpm1 += abs(got - bpm) <= 0.04 * bpm
        bpm2 += any(abs(got - bpm * f) <= 0.04 * bpm * f for f in (1 / 3, 0.5, 1, 2, 3))
    n = len(rows)
    print(f"{n} synthesised songs (24 keys, 70-180 BPM), indexed as a library")
    print(f"key: exact {key_exact / n:.3f}, exact or a neighbour (relative, fifth) {key_near / n:.3f}")
    print(f"tempo: within 4% {bpm1 / n:.3f}, within 4% of 1/3, 1/2, 1, 2 or 3 times {bpm2 / n:.3f}")


if __name__ == "__main__":
    main()
