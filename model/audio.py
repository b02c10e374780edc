"""Audio decoding: only the windows that will be analysed.

WAV, FLAC, AIFF and MP3 are read with soundfile (libsndfile), which seeks sample-accurately (MP3 with a
few frames of pre-roll for its bit reservoir), so a window costs the same whether the file lasts 30 seconds
or 3 hours. Ogg (Vorbis, Opus) and what libsndfile cannot read (M4A/AAC, WMA, ...) go through PyAV
(ffmpeg): it seeks to a packet before each window and decodes forward from there, cutting the window out
by presentation time. (libsndfile 1.2 can read Ogg Vorbis, but its seek lands off by a block after some
seek sequences; ffmpeg's Ogg seeking is exact.)

Every failure is an :class:`AudioError` naming the file and the reason in one line.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import numpy as np

from ..errors import SoundalikeError
from ..model._quiet import quiet_stderr

#: Extensions read by libsndfile. Everything else that is audio goes through PyAV.
SNDFILE_EXTENSIONS = frozenset({".wav", ".flac", ".mp3", ".aif", ".aiff", ".aifc", ".w64", ".rf64", ".caf"})
#: Extensions read by PyAV.
AV_EXTENSIONS = frozenset({".ogg", ".oga", ".opus", ".m4a", ".mp4", ".aac", ".wma", ".webm", ".mka", ".alac", ".ac3", ".ape", ".wv"})
AUDIO_EXTENSIONS = SNDFILE_EXTENSIONS | AV_EXTENSIONS
#: MP3 frames borrow bits from earlier frames (the bit reservoir): decode this many samples before a
#: window and drop them, or its first frames come out garbled.
_PREROLL_EXTENSIONS = frozenset({".mp3"})
_PREROLL = 8 * 1152


class AudioError(SoundalikeError):
    """A file that cannot be used as audio. ``str(err)`` is one line: ``path: reason``."""

    def __init__(self, path: str | os.PathLike, reason: str):
        self.path = str(path)
        self.reason = " ".join(str(reason).split()) or "unknown error"
        super().__init__(f"{self.path}: {self.reason}")


@dataclasses.dataclass(frozen=True)
class AudioInfo:
    """What a file holds, read from its header (no decoding)."""

    sample_rate: int
    channels: int
    frames: int

    @property
    def duration_s(self) -> float:
        return self.frames / self.sample_rate if self.sample_rate else 0.0


def _backend(path: Path) -> str:
    return "av" if path.suffix.lower() in AV_EXTENSIONS else "sndfile"


def probe(path: str | os.PathLike) -> AudioInfo:
    """Read sample rate, channel count and length from the header of ``path``."""
    path = Path(path)
    if _backend(path) == "av":
        return _av_probe(path)
    import soundfile as sf

    try:
        with quiet_stderr(path.suffix.lower() == ".mp3"):  # mpg123 narrates its resyncs on stderr
            info = sf.info(str(path))
    except Exception as err:  # libsndfile raises RuntimeError/LibsndfileError with its own message
        if not path.exists():
            raise AudioError(path, "file not found (deleted or moved)") from None
        raise AudioError(path, f"not readable as audio ({_short(err)})") from None
    if info.samplerate <= 0 or info.channels <= 0:
        raise AudioError(path, "header has no sample rate or no channels")
    return AudioInfo(sample_rate=int(info.samplerate), channels=int(info.channels), frames=max(0, int(info.frames)))


def window_starts(duration_s: float, *, window_s: float, n_windows: int, margin: float = 0.05) -> np.ndarray:
    """Start times (seconds) of up to ``n_windows`` windows spread evenly over a track.

    The first and last ``margin`` of the track (intros, fade-outs) are avoided when the track is long enough.
    A track shorter than one window gets one window at 0 (it is padded later). Fewer windows are used when
    the track cannot hold ``n_windows`` without overlapping.

    Returns
    -------
    starts : np.ndarray [shape=(m,), dtype=float64], 1 <= m <= n_windows
    """
    if duration_s <= window_s:
        return np.zeros(1)
    lo, hi = duration_s * margin, duration_s * (1.0 - margin)
    if hi - lo < window_s:
        lo, hi = 0.0, duration_s
    span = hi - lo
    m = int(max(1, min(n_windows, span // window_s)))
    # centres at (i + 0.5) / m of the usable span, clipped so each window fits
    centres = lo + (np.arange(m) + 0.5) * span / m
    return np.clip(centres - window_s / 2, lo, hi - window_s)


def read_windows(path: str | os.PathLike, starts_s, window_s: float) -> tuple[np.ndarray, int]:
    """Decode only the windows ``[start, start + window_s)`` of ``path``, at the file's own rate, mixed to mono.

    Returns
    -------
    windows : np.ndarray [shape=(len(starts_s), round(window_s * sr)), dtype=float32]
        Zero-padded where a window runs past the end of the file.
    sr : int
        The file's sample rate.
    """
    path = Path(path)
    starts_s = np.asarray(starts_s, dtype=np.float64)
    if _backend(path) == "av":
        return _av_read_windows(path, starts_s, window_s)
    import soundfile as sf

    try:
        with sf.SoundFile(str(path)) as f:
            sr = int(f.samplerate)
            n = int(round(window_s * sr))
            out = np.zeros((len(starts_s), n), dtype=np.float32)
            preroll = _PREROLL if path.suffix.lower() in _PREROLL_EXTENSIONS else 0
            for i, start in enumerate(starts_s):
                first = int(round(start * sr))
                pre = min(preroll, first)
                with quiet_stderr(pre > 0):  # mpg123 reports the half-decodable pre-roll frames
                    f.seek(first - pre)
                    block = f.read(n + pre, dtype="float32", always_2d=True)[pre:]
                out[i, : len(block)] = block.mean(axis=1)
    except AudioError:
        raise
    except Exception as err:
        raise AudioError(path, f"cannot decode ({_short(err)})") from None
    return out, sr


def read_all(path: str | os.PathLike) -> tuple[np.ndarray, int]:
    """Decode a whole file to mono float32 at its own rate (used for checks and short queries)."""
    path = Path(path)
    if _backend(path) == "av":
        info = _av_probe(path)
        windows, sr = _av_read_windows(path, np.zeros(1), info.duration_s + 1.0)
        return windows[0, : info.frames], sr
    import soundfile as sf

    try:
        data, sr = sf.read(str(path), dtype="float32", always_2d=True)
    except Exception as err:
        raise AudioError(path, f"cannot decode ({_short(err)})") from None
    return data.mean(axis=1), int(sr)


def resample(y: np.ndarray, orig_sr: int, target_sr: int) -> np.ndarray:
    """Resample the last axis of ``y`` with soxr (high quality). ``y``: [shape=(..., n)]."""
    if orig_sr == target_sr:
        return np.ascontiguousarray(y, dtype=np.float32)
    import soxr

    y = np.asarray(y, dtype=np.float32)
    flat = y.reshape(-1, y.shape[-1])
    # soxr treats columns as channels: resample all windows in one call
    out = soxr.resample(flat.T, orig_sr, target_sr, quality="HQ").T
    return np.ascontiguousarray(out.reshape(*y.shape[:-1], out.shape[-1]), dtype=np.float32)


def peak_normalise(y: np.ndarray, *, peak: float = 0.95) -> np.ndarray:
    """Scale so that the largest absolute sample equals ``peak``; silence is returned unchanged."""
    m = float(np.max(np.abs(y))) if y.size else 0.0
    if m < 1e-6:
        return y
    return (y * (peak / m)).astype(np.float32, copy=False)


def load_windows(
    path: str | os.PathLike, *, sample_rate: int, window_s: float, n_windows: int, peak: float = 0.95
) -> tuple[np.ndarray, AudioInfo]:
    """The analysis input of one track: windows spread over it, mono, at ``sample_rate``, peak-normalised
    to ``peak`` over all its windows (``peak=0``: left at the recorded level).

    Returns
    -------
    windows : np.ndarray [shape=(m, round(window_s * sample_rate)), dtype=float32], 1 <= m <= n_windows
    info : AudioInfo of the file
    """
    info = probe(path)
    if info.frames <= 0:
        raise AudioError(path, "no audio frames")
    starts = window_starts(info.duration_s, window_s=window_s, n_windows=n_windows)
    raw, sr = read_windows(path, starts, window_s)
    # a file cut short (or a header that overstates its length): windows past the real end come back
    # empty; use the ones that hold audio
    filled = np.any(raw != 0, axis=1)
    if filled.any() and not filled.all():
        raw = raw[filled]
    if not np.isfinite(raw).all():
        raise AudioError(path, "decoded samples are not finite")
    if float(np.max(np.abs(raw))) < 1e-5:
        raise AudioError(path, "silent: every analysed window is digital silence")
    y = resample(raw, sr, sample_rate)
    n = int(round(window_s * sample_rate))
    if y.shape[-1] < n:
        y = np.pad(y, ((0, 0), (0, n - y.shape[-1])))
    y = y[:, :n]
    return (peak_normalise(y, peak=peak) if peak > 0 else y), info


def clip_windows(path: str | os.PathLike, *, sample_rate: int, window_s: float, hop_s: float, max_windows: int,
                 peak: float = 0.95) -> tuple[np.ndarray, np.ndarray, float]:
    """The analysis input of a clip (an outside file searched as an excerpt of some song): the whole file
    decoded, a window every ``hop_s`` seconds (at most ``max_windows``, spread over it; a clip shorter than one
    window is padded), mono, at ``sample_rate``, peak-normalised as :func:`load_windows` does.

    Returns ``(windows [m, window samples] float32, each window's start in seconds, the file's duration)``."""
    y, sr = read_all(path)
    if not len(y) or not np.isfinite(y).all() or float(np.max(np.abs(y))) < 1e-5:
        raise AudioError(path, "silent or not audio (no samples to match)")
    duration = len(y) / sr
    y = resample(y, sr, sample_rate)
    n = int(round(window_s * sample_rate))
    if len(y) < n:
        y = np.pad(y, (0, n - len(y)))
    starts = np.arange(0, len(y) - n + 1, int(hop_s * sample_rate))
    if len(starts) > max_windows:
        starts = np.round(np.linspace(0, len(y) - n, max_windows)).astype(int)
    windows = np.stack([y[a : a + n] for a in starts])
    return (peak_normalise(windows, peak=peak) if peak > 0 else windows), starts / sample_rate, duration


# --------------------------------------------------------------------------------------------- PyAV


def _av_open(path: Path):
    import av

    try:
        container = av.open(str(path), metadata_errors="ignore")
    except Exception as err:
        raise AudioError(path, f"cannot open ({_short(err)})") from None
    if not container.streams.audio:
        container.close()
        raise AudioError(path, "no audio stream")
    return container


def _av_probe(path: Path) -> AudioInfo:
    container = _av_open(path)
    try:
        stream = container.streams.audio[0]
        sr = int(stream.codec_context.sample_rate or stream.rate or 0)
        channels = int(stream.codec_context.channels or 0)
        if stream.duration is not None and stream.time_base is not None:
            seconds = float(stream.duration * stream.time_base)
        elif container.duration is not None:
            seconds = container.duration / 1_000_000
        else:
            seconds = 0.0
        if sr <= 0:
            raise AudioError(path, "audio stream has no sample rate")
        return AudioInfo(sample_rate=sr, channels=max(1, channels), frames=int(round(seconds * sr)))
    finally:
        container.close()


def _av_read_windows(path: Path, starts_s: np.ndarray, window_s: float) -> tuple[np.ndarray, int]:
    container = _av_open(path)
    try:
        stream = container.streams.audio[0]
        sr = int(stream.codec_context.sample_rate)
        n = int(round(window_s * sr))
        out = np.zeros((len(starts_s), n), dtype=np.float32)
        for i, start in enumerate(starts_s):
            first = int(round(start * sr))  # first wanted sample
            for preroll in _AV_PREROLL_S:
                pos, data = _av_decode_span(container, stream, sr, max(0.0, start - preroll), first + n)
                if pos <= first or start - preroll <= 0:
                    break  # else the seek landed past the window's start: again from further back
            a, b = max(pos, first), min(pos + len(data), first + n)
            if b > a:  # a gap before the first frame (encoder delay) stays zero, as does the rest past the end
                out[i, a - first : b - first] = data[a - pos : b - pos]
    except AudioError:
        raise
    except Exception as err:
        raise AudioError(path, f"cannot decode ({_short(err)})") from None
    finally:
        container.close()
    return out, sr


def _av_decode_span(container, stream, sr: int, seek_s: float, stop: int) -> tuple[int, np.ndarray]:
    """Seek to a packet at or before ``seek_s`` and decode, mixed to mono, until sample ``stop`` (or the end):
    the sample index of the first decoded sample, and the samples."""
    import av

    tb = stream.time_base
    container.seek(int(seek_s / tb), stream=stream, backward=True, any_frame=False)
    # per frame only what cannot wait (its buffers and its timestamp, in plain floats: Fraction arithmetic
    # and a channel mix per frame were a third of the time a Vorbis window took); the mix is done once
    channels: list[list[np.ndarray]] = []
    starts, end, lowest = [], 0, None
    to_samples = float(tb) * sr
    resampler = planar = None  # a resampler only for a decoder whose output is not planar float (Vorbis, Opus,
    for frame in container.decode(stream):  # AAC, MP3 are); the format is looked at once
        pts = frame.pts
        if pts is not None:
            # where the span starts, by this frame's timestamp and the samples decoded before it
            first = int(round(pts * to_samples)) - end
            starts.append(first)
            lowest = first if lowest is None or first < lowest else lowest
        if planar is None:
            planar = frame.format.name == "fltp"
        if not planar:
            resampler = resampler or av.AudioResampler(format="fltp", rate=sr)
            frames = resampler.resample(frame)
        else:
            frames = (frame,)
        for f in frames:
            n = f.samples
            planes = f.planes
            if not channels:
                channels = [[] for _ in planes]
            for c, p in zip(channels, planes):
                c.append(np.frombuffer(p, np.float32, count=n))
            end += n
        if lowest is not None and lowest + end >= stop:  # (the lowest estimate: never short of the end)
            break
    if not channels or not channels[0]:
        return int(round(seek_s * sr)), np.zeros(0, np.float32)
    # the timestamps mostly agree; a few are off (Vorbis: a frame at a switch from long to short blocks carries
    # one 448 samples late, 1 window in 20 of the dev corpus started there after a seek): the most common wins
    values, counts = np.unique(np.asarray(starts or [int(round(seek_s * sr))]), return_counts=True)
    pos = int(values[np.argmax(counts)])
    mono = np.concatenate(channels[0])
    for c in channels[1:]:
        mono += np.concatenate(c)
    if len(channels) > 1:
        mono *= 1.0 / len(channels)
    return pos, mono


#: Seconds before a window that a PyAV seek aims at (the decoder needs a packet or two before the first wanted
#: sample); where the seek lands past the window's start anyway, the next, longer pre-roll is tried.
_AV_PREROLL_S = (0.1, 1.0)


_VAGUE = {  # libsndfile's words for "this is not a file I can read", which sound like something else
    "File does not exist or is not a regular file (possibly a pipe?).": "unknown or damaged format",
    "Format not recognised.": "unknown or damaged format",
}


def _short(err: BaseException) -> str:
    """The library's reason without the path it repeats (the path leads every AudioError anyway)."""
    text = getattr(err, "strerror", None) if type(err).__module__.startswith("av") else None
    text = " ".join(str(text or err).split())
    if "': " in text and text.startswith(("Error opening", "Error ")):  # "Error opening 'path': reason"
        text = text.split("': ", 1)[1]
    text = _VAGUE.get(text, text)
    return (text[:200] + "...") if len(text) > 200 else (text or type(err).__name__)
