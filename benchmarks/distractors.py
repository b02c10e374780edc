"""Music-like distractor tracks, synthesised, to fill a search index with thousands of plausible other songs
when benchmarking excerpt search. Each track has its own tempo, key, chord progression, bass line, melody
timbre, drum pattern, mix and room (sometimes a second section with new chords and instruments), and is
reproducible from ``(seed, index)``. Files are written in parallel as ``FOLDER/distractor-00000.mp3`` ...;
existing ones are skipped, so an interrupted run resumes where it stopped.

    python benchmarks/distractors.py FOLDER --count 5000 [--seconds 30] [--seed 0] [--format mp3]
"""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass
from functools import partial
from multiprocessing import Pool
from pathlib import Path

import numpy as np
import soundfile as sf
from scipy import signal
from tqdm import tqdm

SCALES = [[0, 2, 4, 5, 7, 9, 11], [0, 2, 3, 5, 7, 8, 10], [0, 2, 3, 5, 7, 9, 10], [0, 2, 4, 5, 7, 9, 10],
          [0, 2, 3, 5, 7, 8, 11], [0, 1, 3, 5, 7, 8, 10]]  # major, minor, dorian, mixolydian, harmonic, phrygian
PROGRESSIONS = [[0, 4, 5, 3], [0, 5, 3, 4], [0, 3, 4, 0], [5, 3, 0, 4], [0, 3, 0, 4], [1, 4, 0, 0],
                [0, 6, 5, 4], [0, 2, 3, 4]]  # scale degrees of chord roots
BASS_RHYTHMS = [[0.0], [0.0, 2.0], [0.0, 1.0, 2.0, 3.0], [0.0, 1.5, 2.0, 3.5], [x / 2 for x in range(8)]]  # beats
FORMATS = {"mp3": ("MP3", "MPEG_LAYER_III"), "ogg": ("OGG", "VORBIS"), "flac": ("FLAC", "PCM_16")}
MIX_DB = {"lead": (-6, 0), "pad": (-14, -3), "bass": (-9, -1), "kick": (-8, 0), "snare": (-12, -2),
          "hat": (-20, -6)}  # stem level ranges relative to unit RMS
TABLE = 2048  # wavetable length (power of two)
MAX_HARMONICS = 16
BASIS = np.sin(np.outer(np.arange(1, MAX_HARMONICS + 1), np.arange(TABLE) * 2 * np.pi / TABLE))


@dataclass
class Voice:
    amps: np.ndarray  # harmonic amplitudes
    adsr: tuple[float, float, float, float]  # attack s, decay s, sustain level, release s
    vibrato: tuple[float, float]  # rate Hz, depth as a fraction of the frequency
    fm: tuple[float, float, float]  # modulator ratio, index (radians), index decay per second


def _voice(rng: np.random.Generator, attack: float, release: float) -> Voice:
    n = int(rng.integers(1, MAX_HARMONICS + 1))
    amps = rng.random(n) * np.arange(1, n + 1) ** -rng.uniform(0.3, 2.0)
    if rng.random() < 0.3:
        amps[1::2] *= 0.05  # hollow, clarinet-like
    vibrato = (rng.uniform(4, 7), rng.uniform(0.002, 0.008)) if rng.random() < 0.4 else (0.0, 0.0)
    fm = (float(rng.choice([0.5, 1, 2, 3, 3.5])), rng.uniform(0.5, 4), rng.uniform(0, 8)) \
        if rng.random() < 0.3 else (1.0, 0.0, 0.0)
    adsr = (rng.uniform(0.003, attack), rng.uniform(0.05, 0.5), rng.uniform(0.2, 0.9), rng.uniform(0.03, release))
    return Voice(amps / amps.sum(), adsr, vibrato, fm)


def _lookup(table: np.ndarray, cycles: np.ndarray) -> np.ndarray:
    return table[(cycles * TABLE).astype(np.int64) & (TABLE - 1)]


def _note(v: Voice, midis: list[int], dur: float, sr: int) -> np.ndarray:
    """A note (or chord) of ``dur`` seconds plus the voice's release, by band-limited wavetable lookup."""
    a, d, s, r = v.adsr
    t = np.arange(int((dur + r) * sr)) / sr
    env, ads, held = np.full(len(t), s), min(len(t), int((a + d) * sr)), min(len(t), int(dur * sr))
    env[:ads] = np.interp(t[:ads], [0, a, a + d], [0, 1, s])
    env[held:] *= np.linspace(1, 0, len(t) - held)
    y = np.zeros_like(t)
    for m in midis:
        f = 440 * 2 ** ((m - 69) / 12)
        keep = np.arange(1, len(v.amps) + 1) * f < 0.45 * sr
        cycles = f * t
        if v.vibrato[1]:
            cycles += f * v.vibrato[1] / (2 * np.pi * v.vibrato[0]) * (1 - _lookup(BASIS[0], v.vibrato[0] * t + 0.25))
        if v.fm[1]:
            cycles += v.fm[1] / (2 * np.pi) * np.exp(-v.fm[2] * t) * _lookup(BASIS[0], v.fm[0] * f * t)
        y += _lookup(v.amps[keep] @ BASIS[:len(v.amps)][keep], cycles)
    return y * env


def _add(buf: np.ndarray, seconds: float, x: np.ndarray, sr: int, gain: float = 1.0) -> None:
    i = int(seconds * sr)
    x = x[:max(len(buf) - i, 0)]
    buf[i:i + len(x)] += gain * x


def _drum_kit(rng: np.random.Generator, sr: int) -> list[np.ndarray]:
    """Kick (decaying sine sweep), snare (band-passed noise and a tone), hi-hat (high-passed noise)."""
    t = np.arange(int(0.4 * sr)) / sr
    f = rng.uniform(40, 60) + rng.uniform(60, 150) * np.exp(-t * rng.uniform(20, 50))
    kick = np.sin(2 * np.pi * np.cumsum(f) / sr) * np.exp(-t * rng.uniform(6, 14))
    noise = rng.standard_normal(len(t))
    lo = rng.uniform(800, 2000)
    band = signal.butter(2, [lo, min(lo * rng.uniform(2, 5), 0.45 * sr)], "bandpass", fs=sr, output="sos")
    snare = (signal.sosfilt(band, noise) * np.exp(-t * rng.uniform(15, 30))
             + 0.3 * np.sin(2 * np.pi * rng.uniform(150, 250) * t) * np.exp(-t * 30))
    high = signal.butter(4, min(rng.uniform(6000, 9000), 0.4 * sr), "highpass", fs=sr, output="sos")
    hat = signal.sosfilt(high, noise) * np.exp(-t * rng.uniform(40, 120))
    return [x / np.abs(x).max() for x in (kick, snare, hat)]


def _section(rng: np.random.Generator, stems: dict[str, np.ndarray], bars: range, beat: float, tonic: int,
             scale: list[int], kit: list[np.ndarray] | None, sr: int) -> None:
    """Renders bars ``bars`` into ``stems`` with a new progression, instruments, riffs and drum pattern."""
    prog = PROGRESSIONS[rng.integers(len(PROGRESSIONS))] if rng.random() < 0.75 else [0, *rng.integers(0, 7, 3)]
    chord_beats = int(rng.choice([2, 4, 4, 8]))
    pad_style, arp_step, legato = rng.integers(3), float(rng.choice([0.25, 0.5])), rng.uniform(0.4, 1.0)
    lead, bass, pad = _voice(rng, 0.05, 0.3), _voice(rng, 0.02, 0.15), _voice(rng, 0.4, 0.3 + 0.7 * (pad_style == 0))
    pitch = lambda deg, octave: tonic + 12 * (octave + deg // 7) + scale[deg % 7]  # noqa: E731
    root_at = lambda beats: prog[int(beats - bars.start * 4) // chord_beats % len(prog)]  # noqa: E731
    bass_beats = BASS_RHYTHMS[rng.integers(len(BASS_RHYTHMS))]
    onsets = np.flatnonzero((rng.random(8) < rng.uniform(0.3, 0.8)) | (np.arange(8) == 0)) / 2
    durations = np.diff([*onsets, 4.0])
    lead_octave, deg = int(rng.integers(2, 4)), 0
    steps = np.arange(16)
    drums = [(rng.random(16) < 0.15) | np.isin(steps, [0, 8] if rng.random() < 0.6 else [0]),
             (rng.random(16) < 0.05) | np.isin(steps, [4, 12] if rng.random() < 0.7 else [8]),
             steps % rng.choice([1, 2, 2, 4]) == 0]
    swing, hat_gain = rng.choice([0.0, rng.uniform(0.1, 0.3)]), rng.uniform(0.3, 1.0, 16)
    span = min(chord_beats, 4)
    for b in bars:
        for start in range(b * 4, b * 4 + 4, span):
            root = root_at(start)
            chord = [pitch(root + k, 2) for k in (0, 2, 4)]
            for x in bass_beats:
                if x < span:
                    fifth = 4 if x % 2 and rng.random() < 0.3 else 0
                    _add(stems["bass"], (start + x) * beat, _note(bass, [pitch(root + fifth, 0)], 0.8 * beat, sr), sr)
            if pad_style == 0 and (start - bars.start * 4) % chord_beats == 0:
                _add(stems["pad"], start * beat, _note(pad, chord, chord_beats * beat, sr), sr)
            elif pad_style == 1:
                for x in np.arange(0.5, span, 1.0):
                    _add(stems["pad"], (start + x) * beat, _note(pad, chord, 0.3 * beat, sr), sr)
            elif pad_style == 2:
                for j, x in enumerate(np.arange(0, span, arp_step)):
                    arp = _note(pad, [chord[j % 3] + 12 * (j % 6 >= 3)], arp_step * beat, sr)
                    _add(stems["pad"], (start + x) * beat, arp, sr)
        for x, dur in zip(onsets, durations):
            if x % 1 == 0 or rng.random() < 0.3:
                tones = root_at(b * 4 + x) + np.array([-7, -5, -3, 0, 2, 4, 7, 9, 11])
                deg = int(tones[np.argmin(np.abs(tones - deg))])
            else:
                deg = int(np.clip(deg + rng.choice([-2, -1, -1, 1, 1, 2]), -3, 10))
            if rng.random() > 0.15:
                note = _note(lead, [pitch(deg, lead_octave)], legato * dur * beat, sr)
                _add(stems["lead"], (b * 4 + x) * beat, note, sr)
        if kit is not None:
            for k in range(16):
                at = (b * 4 + k / 4 + swing * (k % 2) / 4) * beat
                for stem, sound, pattern, gain in zip(("kick", "snare", "hat"), kit, drums, (1, 1, hat_gain[k])):
                    if pattern[k]:
                        _add(stems[stem], at, sound, sr, gain)


def synth_track(rng: np.random.Generator, seconds: float, sr: int = 22050) -> np.ndarray:
    """A random music-like mono track of ``seconds`` (float32, peak 0.5-0.9)."""
    n = int(seconds * sr)
    beat = 60 / rng.uniform(70, 170)
    tonic, scale = int(33 + rng.integers(12)), SCALES[rng.integers(len(SCALES))]
    kit = _drum_kit(rng, sr) if rng.random() < 0.8 else None
    stems = {k: np.zeros(n, np.float32) for k in MIX_DB}
    n_bars = int(np.ceil(seconds / (4 * beat)))
    cuts = [0, n_bars // 2, n_bars] if n_bars >= 4 and rng.random() < 0.5 else [0, n_bars]
    for first, last in zip(cuts, cuts[1:]):
        _section(rng, stems, range(first, last), beat, tonic, scale, kit, sr)
    y = np.zeros(n, np.float32)
    for name, x in stems.items():
        rms = np.sqrt(np.mean(x ** 2))
        if rms > 0:
            y += 10 ** (rng.uniform(*MIX_DB[name]) / 20) * x / rms
    if rng.random() < 0.6:
        rt = rng.uniform(0.3, 1.5)
        t = np.arange(int(rt * sr)) / sr
        wet = signal.fftconvolve(y, (rng.standard_normal(len(t)) * np.exp(-6.9 * t / rt)).astype(np.float32))[:n]
        y += rng.uniform(0.1, 0.4) * wet * np.sqrt(np.mean(y ** 2) / (np.mean(wet ** 2) + 1e-12))
    if rng.random() < 0.3:
        y = signal.sosfilt(signal.butter(2, rng.uniform(2500, 0.4 * sr), fs=sr, output="sos"), y)
    return (y * rng.uniform(0.5, 0.9) / (np.abs(y).max() + 1e-12)).astype(np.float32)


def _write(i: int, folder: Path, seconds: float, sr: int, seed: int, fmt: str) -> None:
    path = folder / f"distractor-{i:05d}.{fmt}"
    tmp = path.with_name(f".{path.name}.part")
    sf.write(tmp, synth_track(np.random.default_rng([seed, i]), seconds, sr), sr,
             format=FORMATS[fmt][0], subtype=FORMATS[fmt][1])
    os.replace(tmp, path)


def write_distractors(folder: str | Path, n: int, *, seconds: float = 30.0, sr: int = 22050, seed: int = 0,
                      fmt: str = "mp3", workers: int | None = None) -> list[Path]:
    """Writes ``folder/distractor-00000.<fmt>`` ... (n files), skipping those that exist; returns all n paths."""
    if fmt not in FORMATS:
        raise ValueError(f"fmt must be one of {sorted(FORMATS)}")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / f"distractor-{i:05d}.{fmt}" for i in range(n)]
    todo = [i for i, p in enumerate(paths) if not p.exists()]
    if todo:
        job = partial(_write, folder=folder, seconds=seconds, sr=sr, seed=seed, fmt=fmt)
        with Pool(workers or os.cpu_count()) as pool:
            for _ in tqdm(pool.imap_unordered(job, todo, chunksize=4), total=len(todo), desc="distractors"):
                pass
    return paths


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("folder", type=Path)
    ap.add_argument("--count", type=int, required=True)
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--format", choices=sorted(FORMATS), default="mp3")
    ap.add_argument("--workers", type=int, default=None)
    args = ap.parse_args()
    write_distractors(args.folder, args.count, seconds=args.seconds, seed=args.seed, fmt=args.format,
                      workers=args.workers)
