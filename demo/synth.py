"""Synthesise a small, labelled music library in six clearly different styles.

Every track is rendered from scratch with numpy and scipy: drums are pitch-swept
sines and filtered noise, tonal instruments are additive, FM or band-limited
(polyBLEP) sawtooth voices. Tempo, key, chord progression, timbre and levels are
drawn per track from a seeded generator, so tracks within a style differ while
the style stays recognisable from its spectrum and rhythm.

All internal signals are float64 arrays of shape ``(n,)`` at sample rate ``sr``;
``rng`` is always a :class:`numpy.random.Generator`.
"""
from __future__ import annotations

import os
import pathlib
import re
from dataclasses import dataclass
from collections.abc import Iterable

import mutagen
import numpy as np
import soundfile as sf
from scipy import signal

STYLES: tuple[str, ...] = ("electronic", "jazz", "rock", "ambient", "piano", "hiphop")

_PEAK = 0.9
_MAJOR = (0, 2, 4, 5, 7, 9, 11)
_MINOR = (0, 2, 3, 5, 7, 8, 10)
_PROGRESSIONS = {  # 0-based diatonic scale degrees
    _MAJOR: ((0, 4, 5, 3), (0, 5, 3, 4), (0, 3, 4, 3), (5, 3, 0, 4)),
    _MINOR: ((0, 5, 2, 6), (0, 3, 4, 0), (0, 6, 5, 6), (0, 5, 3, 4)),
}


# --------------------------------------------------------------------- primitives
def _hz(midi: float) -> float:
    return 440.0 * 2.0 ** ((midi - 69.0) / 12.0)


def _fold(midi: int, lo: int) -> int:
    """Move ``midi`` by whole octaves into ``[lo, lo + 12)``."""
    return lo + (midi - lo) % 12


def _key(rng, lo: int, modes=(_MAJOR, _MINOR)):
    """Random tonic in ``[lo, lo + 12)``, a scale from ``modes`` and a progression."""
    scale = modes[rng.integers(len(modes))]
    progressions = _PROGRESSIONS[scale]
    return int(lo + rng.integers(12)), scale, progressions[rng.integers(len(progressions))]


def _chord(tonic: int, scale, degree: int, size: int = 3) -> list[int]:
    """MIDI notes of the diatonic chord stacked in thirds on ``degree``."""
    steps = [degree + 2 * k for k in range(size)]
    return [tonic + scale[s % 7] + 12 * (s // 7) for s in steps]


def _filter(x, sr, cutoff, kind="lowpass", order=2):
    """Butterworth filter; ``cutoff`` is Hz, or ``(lo, hi)`` for a bandpass."""
    nyq = 0.45 * sr
    if kind == "bandpass":
        hi = min(cutoff[1], nyq)
        cutoff = (min(cutoff[0], 0.5 * hi), hi)
    else:
        cutoff = min(cutoff, nyq)
    return signal.sosfilt(signal.butter(order, cutoff, btype=kind, fs=sr, output="sos"), x)


def _env(n, sr, *, decay=np.inf, attack=0.002, release=0.005):
    """Envelope of shape (n,): linear attack, exponential decay, linear fade-out."""
    n = max(int(n), 0)
    e = np.exp(-np.arange(n) / (decay * sr))
    na, nr = min(n, max(1, int(attack * sr))), min(n, max(1, int(release * sr)))
    e[:na] *= np.linspace(0.0, 1.0, na, endpoint=False)
    e[n - nr:] *= np.linspace(1.0, 0.0, nr)
    return e


def _unit(x):
    """Scale ``x`` to peak 1 (silence stays silence)."""
    peak = np.max(np.abs(x)) if x.size else 0.0
    return x / peak if peak > 0 else x


def _add(out, x, start):
    """Mix ``x`` into ``out`` at sample ``start``, cropping at both ends."""
    start = int(start)
    if start < 0:
        x, start = x[-start:], 0
    end = min(out.size, start + x.size)
    if end > start:
        out[start:end] += x[: end - start]


def _saw(freq, n, sr, phase=0.0):
    """Band-limited (polyBLEP) sawtooth in [-1, 1]; ``freq`` scalar or shape (n,)."""
    dt = np.broadcast_to(np.asarray(freq, dtype=float) / sr, (n,))
    p = (phase + np.cumsum(dt) - dt) % 1.0
    y = 2.0 * p - 1.0
    lo, hi = p < dt, p > 1.0 - dt
    x = p[lo] / dt[lo]
    y[lo] -= 2.0 * x - x * x - 1.0
    x = (p[hi] - 1.0) / dt[hi]
    y[hi] -= x * x + 2.0 * x + 1.0
    return y


def _partials(n, sr, hz, *, ratios, amps, decays):
    """Sum of decaying sine partials at ``hz * ratios`` (those below Nyquist), shape (n,)."""
    ratios, amps, decays = (np.asarray(a, dtype=float) for a in (ratios, amps, decays))
    keep = hz * ratios < 0.45 * sr
    t = np.arange(n)[:, None] / sr
    waves = np.sin(2 * np.pi * hz * ratios[keep] * t) * np.exp(-t / decays[keep])
    return waves @ amps[keep]


def _smear(x, sr, rng, *, decay_s, wet):
    """Cheap reverb: convolve with an exponentially decaying, darkened noise burst."""
    n = int(3 * decay_s * sr)
    ir = _filter(rng.standard_normal(n), sr, 5000) * _env(n, sr, decay=decay_s, attack=0.01)
    ir /= np.sqrt(np.sum(ir**2))
    return x + wet * signal.fftconvolve(x, ir)[: x.size]


# -------------------------------------------------------------------- instruments
def _kick(sr, *, f0, f1, sweep, decay):
    """Sine whose pitch falls exponentially from ``f0`` to ``f1`` Hz."""
    n = int(5 * decay * sr)
    t = np.arange(n) / sr
    freq = f1 + (f0 - f1) * np.exp(-t / sweep)
    return np.sin(2 * np.pi * np.cumsum(freq) / sr) * _env(n, sr, decay=decay, attack=0.0005)


def _noise_hit(sr, rng, *, band, decay, attack=0.001, n=None):
    """Filtered noise burst of ``n`` samples (default 5 decays); ``band=(lo, None)`` is a highpass."""
    n = n or int(5 * decay * sr)
    lo, hi = band
    x = rng.standard_normal(n)
    x = _filter(x, sr, lo, "highpass") if hi is None else _filter(x, sr, band, "bandpass")
    return _unit(x * _env(n, sr, decay=decay, attack=attack))


def _snare(sr, rng, *, tone_hz, decay, snap):
    """Drum-head tone plus bright noise; ``snap`` in [0, 1] is the noise share."""
    noise = _noise_hit(sr, rng, band=(1200, 9000), decay=decay)
    tone = _partials(noise.size, sr, tone_hz, ratios=(1, 1.6), amps=(1, 0.5), decays=(0.05, 0.03))
    return _unit((1 - snap) * _unit(tone) + snap * noise)


def _clap(sr, rng, *, decay):
    """Three quick noise bursts followed by a short tail."""
    n = int((0.03 + 5 * decay) * sr)
    t = np.arange(n) / sr
    gate = sum(np.where(t >= d, np.exp(-(t - d) / 0.004), 0.0) for d in (0.0, 0.011, 0.022))
    gate = np.maximum(gate, np.where(t >= 0.03, 0.6 * np.exp(-(t - 0.03) / decay), 0.0))
    return _unit(_filter(rng.standard_normal(n), sr, (900, 4000), "bandpass") * gate)


def _cymbal(sr, rng, *, base_hz, decay, noise):
    """Metallic ride/crash: inharmonic partials plus a highpassed noise wash."""
    n = int(4 * decay * sr)
    ratios = np.array([1.0, 1.34, 1.59, 2.14, 2.72, 3.17, 3.91, 4.62]) * rng.uniform(0.97, 1.03, 8)
    tone = _partials(n, sr, base_hz, ratios=ratios, amps=1 / np.sqrt(np.arange(1, 9)),
                     decays=decay * np.linspace(1.0, 0.4, 8))
    wash = _noise_hit(sr, rng, band=(5000, None), decay=0.6 * decay, n=n)
    mix = (1 - noise) * _unit(tone) + noise * wash
    return _unit(_filter(mix, sr, 2500, "highpass") * _env(n, sr, attack=0.0005))


def _pluck(n, sr, hz, *, decay, bright):
    """Plucked bass note: harmonics that decay faster the higher they are."""
    k = np.arange(1, 5)
    tone = _partials(n, sr, hz, ratios=k, amps=bright ** (k - 1), decays=decay / k)
    return tone * _env(n, sr, attack=0.004, release=0.02)


def _epiano(n, sr, hz, *, decay, bark):
    """Rhodes-like FM note: 1:1 modulator with a decaying index plus a short tine."""
    t = np.arange(n) / sr
    y = np.sin(2 * np.pi * hz * t + bark * np.exp(-t / 0.25) * np.sin(2 * np.pi * hz * t))
    if 14 * hz < 0.45 * sr:
        y += 0.2 * bark * np.exp(-t / 0.04) * np.sin(2 * np.pi * 14 * hz * t)
    return y * _env(n, sr, decay=decay, attack=0.002, release=0.01)


def _piano(n, sr, hz, *, tau, bright, inharm):
    """Piano-like note: stretched partials, higher ones decaying faster, two-stage decay."""
    k = np.arange(1, 11)
    tau = tau * (262.0 / hz) ** 0.3  # low strings ring longer
    tone = _partials(n, sr, hz, ratios=k * np.sqrt(1 + inharm * k**2),
                     amps=bright ** (k - 1) / np.sqrt(k), decays=tau / k**0.8)
    t = np.arange(n) / sr
    return tone * (0.35 + 0.65 * np.exp(-t / 0.2)) * _env(n, sr, attack=0.001, release=0.05)


def _voices(n, sr, notes, *, detune, rng):
    """Detuned saw stack (root, fifth, octave or a chord), mean of all voices."""
    y = np.zeros(n)
    for m in notes:
        for cents in (-detune, 0.0, detune):
            y += _saw(_hz(m + cents / 100), n, sr, phase=rng.random())
    return y / (3 * len(notes))


def _synth_line(events: Iterable[tuple[int, int]], n, sr, *, note_env, square=0.0):
    """Monophonic saw/square line; ``events`` are ``(start_sample, midi)`` pairs."""
    freq, env = np.full(n, 55.0), np.zeros(n)
    for start, midi in events:
        freq[start:start + note_env.size] = _hz(midi)
        _add(env, note_env, start)
    saw = _saw(freq, n, sr)
    return ((1 - square) * saw + square * (saw - _saw(freq, n, sr, phase=0.5))) * env


def _vinyl(n, sr, rng, *, rate):
    """Sparse highpassed clicks (``rate`` per second) over faint hiss."""
    clicks = np.zeros(n)
    k = rng.poisson(rate * n / sr)
    clicks[rng.integers(0, n, k)] = rng.standard_normal(k) * rng.exponential(1.0, k)
    hiss = _filter(rng.standard_normal(n), sr, 4000)
    return _unit(_filter(clicks, sr, 2000, "highpass")) + 0.03 * _unit(hiss)


# ------------------------------------------------------------------------- styles
def _electronic(rng, n, sr):
    bl = 60.0 / rng.uniform(118, 132) * sr  # samples per beat
    tonic, scale, prog = _key(rng, 33)
    beats, chord_beats = int(n / bl) + 2, 4 * int(rng.integers(1, 3))
    kick = _kick(sr, f0=rng.uniform(110, 170), f1=rng.uniform(42, 55),
                 sweep=rng.uniform(0.02, 0.05), decay=rng.uniform(0.12, 0.25))
    hat = _noise_hit(sr, rng, band=(rng.uniform(6000, 9000), None), decay=rng.uniform(0.015, 0.04))
    clap = _clap(sr, rng, decay=rng.uniform(0.06, 0.12))
    sixteenths = rng.random() < 0.5
    low, top = np.zeros(n), np.zeros(n)
    for b in range(beats):
        _add(low, kick, b * bl)
        _add(top, hat * rng.uniform(0.35, 0.5), (b + 0.5) * bl)
        if sixteenths:
            _add(top, hat * rng.uniform(0.1, 0.2), (b + 0.25) * bl)
        if b % 2:
            _add(top, clap * 0.6, b * bl)
    roots = [_chord(tonic, scale, prog[(b // chord_beats) % len(prog)])[0] for b in range(beats)]
    pattern = (((0.5, 0),), ((0.25, 0), (0.5, 12), (0.75, 0)), ((0.5, 0), (0.75, 7)))[rng.integers(3)]
    events = [(int((b + off) * bl), roots[b] + iv) for b in range(beats) for off, iv in pattern]
    note_env = _env(int(rng.uniform(0.15, 0.24) * bl), sr, decay=rng.uniform(0.05, 0.2), release=0.01)
    raw = _synth_line([e for e in events if e[0] < n], n, sr, note_env=note_env, square=rng.random())
    bass = _filter(raw, sr, rng.uniform(300, 1200))
    pad = np.zeros(n)
    if rng.random() < 0.7:
        seg, detune = int(chord_beats * bl), rng.uniform(5, 12)
        for k in range(n // seg + 1):
            notes = [m + 24 for m in _chord(tonic, scale, prog[k % len(prog)], 4)]
            chord = _voices(seg, sr, notes, detune=detune, rng=rng)
            _add(pad, chord * _env(seg, sr, attack=0.05, release=0.05), k * seg)
        pump = 1 - 0.7 * np.exp(-(np.arange(n) % bl) / (0.15 * sr))  # sidechain to the kick
        pad = _unit(_filter(pad, sr, rng.uniform(1200, 3000))) * pump * rng.uniform(0.15, 0.35)
    mix = low + _unit(bass) * rng.uniform(0.5, 0.8)
    return mix + _smear(top * rng.uniform(1.0, 1.4) + pad, sr, rng, decay_s=0.4, wet=0.3)


def _jazz(rng, n, sr):
    bl = 60.0 / rng.uniform(100, 180) * sr
    swing, tonic = rng.uniform(0.6, 0.68), int(36 + rng.integers(12))
    prog = ((1, 4, 0, 0), (1, 4, 0, 5), (0, 5, 1, 4))[rng.integers(3)]  # ii-V-I flavours
    chord_beats, bars = 4 * int(rng.integers(1, 3)), int(n / (4 * bl)) + 2

    def chord(bar, size):
        return _chord(tonic, _MAJOR, prog[(4 * bar // chord_beats) % len(prog)], size)

    ride = _cymbal(sr, rng, base_hz=rng.uniform(1800, 2600), decay=rng.uniform(0.3, 0.6),
                   noise=rng.uniform(0.2, 0.5))
    chick = _noise_hit(sr, rng, band=(5000, None), decay=0.02)
    brush = _noise_hit(sr, rng, band=(1500, 7000), decay=rng.uniform(0.08, 0.15), attack=0.01)
    drums = np.zeros(n)
    for b in range(4 * bars):
        _add(drums, ride * (0.5 if b % 2 else 0.38), b * bl)
        if b % 2:  # "ding, ding-a" plus hi-hat foot and brush on 2 and 4
            _add(drums, ride * 0.3, (b + swing) * bl)
            _add(drums, chick * 0.25, b * bl)
            _add(drums, brush * 0.35, b * bl)
        elif rng.random() < 0.3:
            _add(drums, brush * 0.15, (b + swing) * bl)

    bass, comp = np.zeros(n), np.zeros(n)
    decay, bright, bark = rng.uniform(0.3, 0.7), rng.uniform(0.2, 0.5), rng.uniform(0.3, 1.2)
    walks = ((0, 1, 2), (0, 2, 1), (0, 2, 3), (0, 1, 3))  # chord tones on beats 1-3
    comp_slots = (0.0, swing, 1 + swing, 2.0, 2 + swing, 3 + swing)
    for bar in range(bars):
        tones = chord(bar, 4)
        line = [tones[i] for i in walks[rng.integers(len(walks))]]
        line.append(chord(bar + 1, 1)[0] + rng.choice((-1, 1)))  # chromatic approach
        for j, m in enumerate(line):
            note = _pluck(int(0.95 * bl), sr, _hz(_fold(m, 31)), decay=decay, bright=bright)
            _add(bass, note * rng.uniform(0.8, 1.0), (4 * bar + j) * bl)
        voicing = [_fold(m, 52) for m in chord(bar, 5)[1:]]  # rootless 3-5-7-9
        for slot in rng.choice(comp_slots, size=int(rng.integers(1, 3)), replace=False):
            length = int(rng.choice((0.5, 1.0, 1.5)) * bl)
            hit = sum(_epiano(length, sr, _hz(m), decay=0.6, bark=bark) for m in voicing)
            _add(comp, hit * rng.uniform(0.7, 1.0), (4 * bar + slot) * bl)
    mix = drums + _unit(bass) * rng.uniform(0.7, 0.9) + _unit(comp) * rng.uniform(0.3, 0.5)
    return _smear(mix, sr, rng, decay_s=rng.uniform(0.3, 0.7), wet=rng.uniform(0.15, 0.3))


def _rock(rng, n, sr):
    bl = 60.0 / rng.uniform(100, 150) * sr
    tonic, scale, prog = _key(rng, 40, modes=(_MINOR, _MINOR, _MAJOR))
    bars, chord_bars = int(n / (4 * bl)) + 2, int(rng.integers(1, 3))
    roots = [_fold(_chord(tonic, scale, prog[(b // chord_bars) % len(prog)])[0], 40) for b in range(bars)]
    strum = ("OMMMOMMM", "OOOOOOOO", "MMMMOMMM", "OMMOMMOM")[rng.integers(4)]
    decays, levels = {"O": rng.uniform(0.3, 0.6), "M": rng.uniform(0.05, 0.1)}, {"O": 1.0, "M": 0.6}
    drive, detune, eighth = rng.uniform(4, 10), rng.uniform(4, 12), int(bl / 2)
    gtr = np.zeros(n)
    for bar, root in enumerate(roots):
        # palm-muted strums are shorter and quieter, hence also less distorted
        env = np.concatenate([_env(eighth, sr, decay=decays[c], release=0.004) * levels[c] for c in strum])
        chord = _voices(env.size, sr, (root, root + 7, root + 12), detune=detune, rng=rng)
        _add(gtr, np.tanh(drive * chord * env), 4 * bar * bl)
    gtr = _filter(_filter(gtr, sr, 80, "highpass"), sr, rng.uniform(2500, 4500), order=4)

    bass_env = _env(int(0.45 * bl), sr, decay=0.25, release=0.01)
    events = [(int((4 * bar + k / 2) * bl), _fold(r, 28)) for bar, r in enumerate(roots) for k in range(8)]
    bass = _synth_line([e for e in events if e[0] < n], n, sr, note_env=bass_env)
    bass = _filter(bass, sr, rng.uniform(500, 900))

    kick = _kick(sr, f0=rng.uniform(90, 130), f1=rng.uniform(45, 60), sweep=0.03,
                 decay=rng.uniform(0.15, 0.3))
    snare = _snare(sr, rng, tone_hz=rng.uniform(170, 230), decay=rng.uniform(0.12, 0.2),
                   snap=rng.uniform(0.5, 0.75))
    hat = _noise_hit(sr, rng, band=(6000, None), decay=rng.uniform(0.03, 0.06))
    crash = _cymbal(sr, rng, base_hz=rng.uniform(1200, 1800), decay=rng.uniform(0.8, 1.4), noise=0.7)
    drums = np.zeros(n)
    for b in range(4 * bars):
        if b % 2:
            _add(drums, snare * 0.8, b * bl)
        else:
            _add(drums, kick, b * bl)
            if b % 4 == 2 and rng.random() < 0.4:
                _add(drums, kick * 0.8, (b + 0.5) * bl)
        for off in (0.0, 0.5):
            _add(drums, hat * rng.uniform(0.15, 0.25), (b + off) * bl)
        if b % 16 == 0:
            _add(drums, crash * 0.5, b * bl)
    mix = drums + _unit(gtr) * rng.uniform(0.5, 0.8) + _unit(bass) * rng.uniform(0.4, 0.6)
    return _smear(mix, sr, rng, decay_s=rng.uniform(0.2, 0.4), wet=0.15)


def _ambient(rng, n, sr):
    tonic, scale, prog = _key(rng, 48)
    seg, fade = int(rng.uniform(4, 8) * sr), int(rng.uniform(1.0, 2.5) * sr)
    detune, rate = rng.uniform(6, 15), rng.uniform(0.1, 0.4)
    pad, shimmer = np.zeros(n), np.zeros(n)
    for k in range(n // seg + 1):
        notes = _chord(tonic, scale, prog[k % len(prog)], 4)
        notes[0] -= 12  # open voicing
        length, start = seg + fade, k * seg - fade // 2
        env = _env(length, sr, attack=fade / sr, release=fade / sr)
        _add(pad, _voices(length, sr, notes, detune=detune, rng=rng) * env, start)
        tremolo = 1 + 0.5 * np.sin(2 * np.pi * rate * np.arange(length) / sr + rng.uniform(0, 2 * np.pi))
        high = _partials(length, sr, _hz(notes[-1] + 24), ratios=(1, 1.5), amps=(1, 0.5),
                         decays=(np.inf, np.inf))
        _add(shimmer, high * env * tremolo, start)
    lfo = 1 + 0.15 * np.sin(2 * np.pi * rng.uniform(0.03, 0.1) * np.arange(n) / sr)
    pad = _unit(_filter(pad, sr, rng.uniform(600, 2000)) * lfo)
    mix = pad + _unit(shimmer) * rng.uniform(0.04, 0.12)
    return _smear(mix, sr, rng, decay_s=rng.uniform(1.5, 3.0), wet=rng.uniform(0.5, 0.8))


def _piano_solo(rng, n, sr):
    bpm = rng.uniform(70, 140)
    bl = 60.0 / bpm * sr
    tonic, scale, prog = _key(rng, 55)
    steps = 4 if bpm < 95 else int(rng.choice((2, 3)))  # notes per beat
    chord_beats = int(rng.choice((4, 8)))
    patterns = ((0, 1, 2, 3, 4, 5), (0, 1, 2, 3, 4, 3, 2, 1), (0, 2, 1, 2), (0, 2, 1, 3, 2, 4))
    pattern = patterns[rng.integers(len(patterns))]  # indices into the arpeggiated chord tones
    ring = int(rng.uniform(1.2, 2.0) * sr)
    timbre = dict(tau=rng.uniform(0.8, 1.6), bright=rng.uniform(0.5, 0.8), inharm=rng.uniform(1e-4, 4e-4))
    out, cache = np.zeros(n), {}

    def play(midi, beat, velocity):
        if midi not in cache:
            cache[midi] = _piano(ring, sr, _hz(midi), **timbre)
        _add(out, cache[midi] * velocity, beat * bl + rng.normal(0, 0.004 * sr))

    for k in range(int(n / (chord_beats * bl)) + 1):
        triad = _chord(tonic, scale, prog[k % len(prog)])
        tones = triad + [m + 12 for m in triad] + [triad[0] + 24]
        play(_fold(triad[0], 36), k * chord_beats, 0.9)
        play(_fold(triad[0], 36) + 12, k * chord_beats + chord_beats / 2, 0.6)
        for s in range(chord_beats * steps):
            velocity = (0.75 if s % steps == 0 else 0.55) * rng.uniform(0.85, 1.0)
            play(tones[pattern[s % len(pattern)]], k * chord_beats + s / steps, velocity)
    return _smear(out, sr, rng, decay_s=rng.uniform(0.5, 1.2), wet=rng.uniform(0.2, 0.4))


def _hiphop(rng, n, sr):
    step = 60.0 / rng.uniform(80, 96) * sr / 4  # samples per sixteenth
    swing = rng.uniform(0.54, 0.62)

    def at(s):  # swung sixteenth index -> sample position
        return (s - s % 2 + 2 * swing * (s % 2)) * step

    tonic, scale, _ = _key(rng, 36, modes=(_MINOR, _MINOR, _MAJOR))
    loop = ((0, 3), (0, 5), (0, 6), (5, 4))[rng.integers(4)]  # two chords, one bar each
    kicks = ((0, 7, 10), (0, 3, 10), (0, 8, 10, 15), (0, 6, 9))[rng.integers(4)]
    stabs = ((0,), (0, 6), (0, 3, 10), (2, 10))[rng.integers(4)]
    bars = int(n / (16 * step)) + 2

    kick = _kick(sr, f0=rng.uniform(100, 140), f1=rng.uniform(40, 50), sweep=0.04,
                 decay=rng.uniform(0.3, 0.45))
    snare = _snare(sr, rng, tone_hz=rng.uniform(180, 220), decay=rng.uniform(0.15, 0.25),
                   snap=rng.uniform(0.6, 0.8))
    hat = _noise_hit(sr, rng, band=(7000, None), decay=rng.uniform(0.02, 0.04))
    drums, sub, keys = np.zeros(n), np.zeros(n), np.zeros(n)
    kick_at = [(int(at(16 * b + s)), b) for b in range(bars) for s in kicks if at(16 * b + s) < n]
    for (pos, bar), (nxt, _) in zip(kick_at, kick_at[1:] + [(n + sr, 0)]):
        _add(drums, kick, pos)
        root = _fold(_chord(tonic, scale, loop[bar % 2])[0], 28)
        _add(sub, _pluck(nxt - pos, sr, _hz(root), decay=0.8, bright=0.15), pos)
    for bar in range(bars):
        for s in range(0, 16, 2):
            _add(drums, hat * (0.45 if s % 4 == 0 else 0.3) * rng.uniform(0.8, 1.0), at(16 * bar + s))
            if rng.random() < 0.15:
                _add(drums, hat * 0.2, at(16 * bar + s + 1))
        for s in (4, 12):
            _add(drums, snare * 0.85, at(16 * bar + s))

    length, bark, decay = int(rng.uniform(2, 6) * step), rng.uniform(0.5, 1.5), rng.uniform(0.4, 1.0)
    chords = [sum(_epiano(length, sr, _hz(_fold(m, 48)), decay=decay, bark=bark)
                  for m in _chord(tonic, scale, degree, 4)) for degree in loop]
    for bar in range(bars):
        for s in stabs:
            _add(keys, chords[bar % 2], at(16 * bar + s))
    levels = rng.uniform(24, 64)  # crude bit reduction for a sampled, lo-fi feel
    keys = np.round(_unit(keys) * levels) / levels
    keys = _filter(_filter(keys, sr, 150, "highpass"), sr, rng.uniform(2000, 3500))
    mix = drums + np.tanh(1.5 * _unit(sub)) * rng.uniform(0.5, 0.7)
    mix += _smear(_unit(keys) * rng.uniform(0.3, 0.45), sr, rng, decay_s=0.3, wet=0.2)
    return mix + _vinyl(n, sr, rng, rate=rng.uniform(5, 20)) * rng.uniform(0.03, 0.08)


_RENDERERS = {"electronic": _electronic, "jazz": _jazz, "rock": _rock,
              "ambient": _ambient, "piano": _piano_solo, "hiphop": _hiphop}


def render(style: str, *, seed: int, duration_s: float = 20.0, sr: int = 22050) -> np.ndarray:
    """Render one synthetic track of ``style`` (one of :data:`STYLES`).

    Tempo, key, progression, timbre and levels derive from the non-negative
    ``seed``; the result is deterministic for ``(style, seed, duration_s, sr)``.

    Returns
    -------
    numpy.ndarray
        float32 mono signal, shape ``(round(duration_s * sr),)``, peak 0.9.

    Raises
    ------
    ValueError
        For an unknown style, an empty length or ``sr < 8000``.
    """
    if style not in _RENDERERS:
        raise ValueError(f"unknown style {style!r}; expected one of {STYLES}")
    n = int(round(duration_s * sr))
    if n <= 0 or sr < 8000:
        raise ValueError(f"need duration_s * sr >= 1 and sr >= 8000, got {duration_s=} {sr=}")
    rng = np.random.default_rng([seed, STYLES.index(style)])
    y = _RENDERERS[style](rng, n, int(sr)) * _env(n, sr, attack=0.01, release=0.05)
    return (_PEAK * _unit(y)).astype(np.float32)


# ------------------------------------------------------------------------ library
_ARTISTS = {  # style -> (artist, album) pairs, assigned round-robin
    "electronic": (("Neon Grid", "Pulse Lines"), ("Kilohertz Kids", "Afterhours"),
                   ("Vector Bloom", "Night Drive")),
    "jazz": (("The Cobalt Room Trio", "Late Set"), ("Harlow & Finch", "Blue Hours"),
             ("The Velvet Sevenths", "Brushes"), ("Dorian Street Quartet", "Walking Home")),
    "rock": (("Rust Engine", "Overdrive"), ("Granite Sky", "Loud Weather"),
             ("The Loud Maples", "Fuzz Season")),
    "ambient": (("Glass Meridian", "Slow Light"), ("Aurora Fields", "Tidal"), ("Hollow Tide", "Drift")),
    "piano": (("Clara Nocturne", "Quiet Rooms"), ("Ivory Hours", "Études"), ("Felix Amsel", "Morning Keys")),
    "hiphop": (("Dusty Crates", "Dig Deep"), ("Boom Bap Bureau", "Case Files"),
               ("MC Lowend", "Sub Culture"), ("Crackle & Pop", "Needle Drops")),
}
_WORDS_A = ("Velvet", "Midnight", "Golden", "Hollow", "Electric", "Silent", "Paper", "Crimson", "Glass",
            "Distant", "Lunar", "Broken", "Quiet", "Amber", "Northern", "Slow", "Wild", "Blue", "Static", "Faded")
_WORDS_B = ("Circuit", "Harbor", "Avenue", "Signal", "Garden", "Echo", "Motel", "Tides", "Engine", "Lanterns",
            "Rain", "Horizon", "Orbit", "Letters", "Highway", "Bloom", "Alley", "Drift", "Season", "Frequencies")
_FORMATS = {"mp3": ("MP3", "MPEG_LAYER_III"), "flac": ("FLAC", "PCM_16"), "ogg": ("OGG", "VORBIS")}


@dataclass(frozen=True)
class DemoTrack:
    """One written demo file and the tags it carries (genre is ``style``)."""

    path: pathlib.Path
    style: str
    title: str
    artist: str
    album: str


def _title(rng, used: set[str]) -> str:
    """Invented two-word title, made unique within ``used`` (which it updates)."""
    base = f"{_WORDS_A[rng.integers(len(_WORDS_A))]} {_WORDS_B[rng.integers(len(_WORDS_B))]}"
    title, k = base, 2
    while title in used:
        title, k = f"{base} {k}", k + 1
    used.add(title)
    return title


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def _write_track(path: pathlib.Path, y: np.ndarray, sr: int, ext: str, tags: dict[str, str]) -> None:
    """Write audio with soundfile, then tag it with mutagen (ID3 or Vorbis comments)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fmt, subtype = _FORMATS[ext]
    sf.write(path, y, sr, format=fmt, subtype=subtype)
    audio = mutagen.File(path, easy=True)
    if audio is None:
        raise RuntimeError(f"mutagen cannot open the file it was given: {path}")
    if audio.tags is None:
        audio.add_tags()
    for key, value in tags.items():
        audio[key] = value
    audio.save()


def write_library(out_dir: str | os.PathLike, *, styles: Iterable[str] = STYLES, per_style: int = 16,
                  duration_s: float = 20.0, sr: int = 22050, formats: Iterable[str] = ("mp3", "flac", "ogg"),
                  seed: int = 0) -> list[DemoTrack]:
    """Render and write a tagged demo library; return its tracks in a stable order.

    Writes ``out_dir/<style>/<nn>-<title-slug>.<ext>`` for ``per_style`` tracks of
    each style in ``styles`` (always rewriting; nothing else in ``out_dir`` is
    touched). Track ``i`` of a style uses ``formats[(STYLES.index(style) + i) %
    len(formats)]``, its own seed derived from ``(seed, style, i)``, and tags
    title, artist, album and genre=style; each style's 3-4 artists are assigned
    round-robin. ``duration_s`` and ``sr`` are passed to :func:`render`.

    Returns
    -------
    list of DemoTrack
        Ordered by ``styles``, then by track number.
    """
    styles, formats = tuple(styles), tuple(formats)
    unknown = [s for s in styles if s not in STYLES] + [f for f in formats if f not in _FORMATS]
    if unknown or not formats or per_style < 0:
        raise ValueError(f"bad styles/formats/per_style: {unknown=} {formats=} {per_style=}")
    root, tracks = pathlib.Path(out_dir), []
    for style in styles:
        s, used = STYLES.index(style), set()
        for i in range(per_style):
            track_seed = int(np.random.SeedSequence([seed, s, i]).generate_state(1)[0])
            title = _title(np.random.default_rng(track_seed), used)
            artist, album = _ARTISTS[style][i % len(_ARTISTS[style])]
            ext = formats[(s + i) % len(formats)]
            path = root / style / f"{i + 1:02d}-{_slug(title)}.{ext}"
            y = render(style, seed=track_seed, duration_s=duration_s, sr=sr)
            _write_track(path, y, sr, ext, {"title": title, "artist": artist, "album": album, "genre": style})
            tracks.append(DemoTrack(path=path, style=style, title=title, artist=artist, album=album))
    return tracks
