"""Reference ("golden") outputs of the ORIGINAL musicnn TF1 graph, for testing the Keras 3 port.

This script is NOT part of the test suite and does not import soundalike. It runs the graph of the PyPI
package ``musicnn==0.1.0`` (ISC licence) exactly as the package builds it (``musicnn.models.define_model``
inside a ``tf.compat.v1`` graph, restored with ``tf.compat.v1.train.Saver``), on six fixed log-mel patches
computed from six deterministic synthetic signals, and writes ``musicnn_golden.npz`` beside itself.

Reference environment (outside the repository; the package's own dependencies pin ancient numpy and
TensorFlow 1, so they are never installed: ``tf_keras`` and ``musicnn`` go in with ``--no-deps``)::

    python3 -m venv ../musicnn-refenv
    ../musicnn-refenv/bin/pip install "tensorflow-cpu==2.21.0" numpy librosa
    ../musicnn-refenv/bin/pip install --no-deps "tf_keras==2.21.0" "musicnn==0.1.0"

Run (from the repository root; writes tests/golden/musicnn_golden.npz, takes ~10 s on 2 cores)::

    TF_USE_LEGACY_KERAS=1 ../musicnn-refenv/bin/python tests/golden/make_musicnn_golden.py

(The script sets TF_USE_LEGACY_KERAS=1 itself before importing TensorFlow; tf.compat.v1.layers needs it.)

Contents of the npz (all float32 unless said):

- ``audio``   [6, 47616]     the six 16 kHz signals (186 * 256 samples each -> 187 centred STFT frames),
                             on the 16-bit grid (k / 32768): int16 = audio * 32768 is exact
- ``inputs``  [6, 187, 96]   log-mel patches (time x mel), ``log10(1 + 10000 * mel_power)`` in float32
                             (NOT the package's ``batch_data``, which casts to float16 and overflows)
- ``names``   [6] str        what each signal is
- for M in MSD_musicnn, MTT_musicnn:
  ``M/taggram`` [6, 50] sigmoid(logits); ``M/logits`` [6, 50]; ``M/penultimate`` [6, 200];
  ``M/mean_pool`` [6, 753]; ``M/max_pool`` [6, 753] (time-pooled concatenation of the front end's 561
  channels [timbral 204 + 204, temporal 51 + 51 + 51] and the three 64-channel mid-end layers)
- ``meta``    str            JSON: versions, commands, checkpoint digests, labels, signal names

The signals: a sustained A minor chord, band-passed noise, a kick/hat rhythm, a mix of these with a bass
line, and near-silence are built from one 0.48 s beat (30 hops) tiled, like loop-based music, which keeps
the npz small (~400 KB); the fifth, an 80 Hz -> 7 kHz sweep over the whole patch, is not periodic.

Checks done while generating: every graph variable is restored from the checkpoint (no initializer is run;
the package's own extractor silently swallows restore errors), two runs give bit-identical outputs, and
running the patches one at a time agrees with the batch. Measured numerical noise of the reference itself
(useful for the port's tolerances): batch vs single patch and oneDNN on vs off (TF_ENABLE_ONEDNN_OPTS=0)
differ by up to ~2e-6 in taggram, ~2e-5 in logits, ~1e-5 in penultimate, ~4e-5 in mean_pool and ~2.5e-4
in max_pool (whose values reach ~110).
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import sys
import warnings
from pathlib import Path

os.environ["TF_USE_LEGACY_KERAS"] = "1"  # tf.compat.v1.layers comes from tf_keras
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

warnings.filterwarnings("ignore", message=r".*is deprecated and will be removed", category=UserWarning)

SR = 16000
N_FFT = 512
HOP = 256
N_MELS = 96
FRAMES = 187
N_SAMPLES = (FRAMES - 1) * HOP  # 47616: librosa's centred STFT gives 1 + n // hop = 187 frames
MODELS = ("MSD_musicnn", "MTT_musicnn")
OUT = Path(__file__).resolve().with_name("musicnn_golden.npz")
SETUP_COMMANDS = [
    "python3 -m venv ../musicnn-refenv",
    '../musicnn-refenv/bin/pip install "tensorflow-cpu==2.21.0" numpy librosa',
    '../musicnn-refenv/bin/pip install --no-deps "tf_keras==2.21.0" "musicnn==0.1.0"',
]
RUN_COMMAND = "TF_USE_LEGACY_KERAS=1 ../musicnn-refenv/bin/python tests/golden/make_musicnn_golden.py"


# ----------------------------------------------------------------------------------------------- signals
LOOP = 30 * HOP  # 7680 samples = 0.48 s = one beat at 125 BPM, a whole number of STFT hops


def _bandpass(x: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """Brick-wall band-pass by FFT mask; circular, so a loop stays seamless when tiled."""
    spec = np.fft.rfft(x)
    f = np.fft.rfftfreq(len(x), 1.0 / SR)
    spec[(f < lo) | (f > hi)] = 0.0
    return np.fft.irfft(spec, n=len(x))


def _fold(event: np.ndarray, start: int) -> np.ndarray:
    """An event starting at ``start`` inside a LOOP-long loop, its tail wrapped around (loop already playing)."""
    buf = np.zeros(-(-(start + len(event)) // LOOP) * LOOP)
    buf[start:start + len(event)] = event
    return buf.reshape(-1, LOOP).sum(axis=0)


def _chord_loop(t: np.ndarray) -> np.ndarray:
    """A minor triad, 6 harmonics each with 1/k amplitudes. Fundamentals are multiples of SR / LOOP
    (220.8, 262.5, 329.2 Hz, within 8 cents of A3 C4 E4) so the loop is seamless; a gentle pulse per beat."""
    y = np.zeros_like(t)
    for n in (106, 126, 158):
        for k in range(1, 7):
            y += np.sin(2 * np.pi * n * k * t * SR / LOOP + 0.3 * k) / k
    return y * (0.85 + 0.15 * np.cos(2 * np.pi * t * SR / LOOP))


def _rhythm_loop(rng: np.random.Generator) -> np.ndarray:
    """One beat of a drum machine: kick (150 -> 45 Hz) on the beat, the same sampled hat on every 16th."""
    tt = np.arange(2 * LOOP) / SR
    kick = np.sin(2 * np.pi * (45.0 * tt + (150.0 - 45.0) * 0.04 * (1 - np.exp(-tt / 0.04)))) * np.exp(-tt / 0.15)
    hat = _bandpass(rng.standard_normal(2 * LOOP), 6000.0, 7900.0)
    hat = hat / np.max(np.abs(hat)) * np.exp(-tt / 0.02)
    y = 0.8 * _fold(kick, 0)
    for i, gain in enumerate((0.3, 0.12, 0.25, 0.12)):
        y += gain * _fold(hat, i * LOOP // 4)
    return y


def make_signals() -> tuple[list[str], np.ndarray]:
    """Six deterministic 16 kHz signals of exactly N_SAMPLES samples: float32 on the 16-bit PCM grid
    (k / 32768, so they can be written to a 16-bit file losslessly), peak <= 0.9.

    All but the chirp are built like loop-based music, from one beat (LOOP samples) tiled, which keeps the
    npz small (deflate finds the repeats) and the log-mel frames periodic; the chirp is one long sweep over
    the whole patch, so at least one input changes throughout time.
    """
    rng = np.random.default_rng(20240611)
    t = np.arange(LOOP) / SR
    tiles = -(-N_SAMPLES // LOOP)
    names, sigs = [], []

    def looped(loop: np.ndarray) -> np.ndarray:
        return np.tile(loop, tiles)[:N_SAMPLES]

    names.append("chord")  # sustained harmonic A minor chord
    sigs.append(looped(0.12 * _chord_loop(t)))

    names.append("bandnoise")  # frozen band-passed (300-3000 Hz) noise, swelling once per beat
    y = _bandpass(rng.standard_normal(LOOP), 300.0, 3000.0)
    sigs.append(looped(0.25 * y / np.std(y) * (0.6 - 0.4 * np.cos(2 * np.pi * t * SR / LOOP))))

    names.append("rhythm")  # kick / hat pattern at 125 BPM
    rhythm = _rhythm_loop(rng)
    sigs.append(looped(rhythm))

    names.append("chirp")  # one exponential sweep 80 Hz -> 7000 Hz over the whole patch (not a loop)
    tc = np.arange(N_SAMPLES) / SR
    f0, f1 = 80.0, 7000.0
    k = np.log(f1 / f0) / tc[-1]
    sigs.append(0.4 * np.sin(2 * np.pi * f0 * (np.exp(k * tc) - 1) / k))

    names.append("mix")  # chord + rhythm + bass (54.2 Hz, 83.3 Hz eighths) + a little noise
    half = np.arange(LOOP // 2) / SR
    bass = np.concatenate([np.sin(2 * np.pi * 13 * half * SR / (LOOP // 2)),
                           np.sin(2 * np.pi * 20 * half * SR / (LOOP // 2))])
    noise = _bandpass(rng.standard_normal(LOOP), 100.0, 7000.0)
    sigs.append(looped(0.08 * _chord_loop(t) + 0.7 * rhythm + 0.3 * bass + 0.02 * noise / np.std(noise)))

    names.append("near_silence")  # frozen faint white noise, about -80 dBFS
    sigs.append(looped(1e-4 * rng.standard_normal(LOOP)))

    audio = np.stack(sigs)
    peak = np.max(np.abs(audio), axis=1, keepdims=True)
    audio = np.where(peak > 0.9, audio * (0.9 / np.maximum(peak, 1e-12)), audio)
    audio = (np.clip(np.round(audio * 32768), -32768, 32767) / 32768).astype(np.float32)
    assert audio.shape == (6, N_SAMPLES) and audio.dtype == np.float32
    return names, audio


def logmel(y: np.ndarray) -> np.ndarray:
    """(frames, 96) float32 log-mel exactly as musicnn's training data, but without the float16 cast."""
    import librosa

    mel = librosa.feature.melspectrogram(y=y, sr=SR, hop_length=HOP, n_fft=N_FFT, n_mels=N_MELS).astype(np.float32)
    return np.log10(np.float32(10000) * mel + np.float32(1)).T.astype(np.float32)


# ----------------------------------------------------------------------------------------------- graph
def checkpoint_prefix(model: str) -> str:
    import musicnn

    # the files are named ".index", ".data-00000-of-00001", ".meta": the prefix is the folder + "/"
    return os.path.join(os.path.dirname(musicnn.__file__), model) + "/"


def reference_graph(model: str):
    """The package's own graph with its checkpoint restored: ``(session, input placeholder, feed extras, fetch
    dict)``. Also used by benchmarks/encoder_speed.py to time the original graph."""
    import tensorflow as tf
    from musicnn import models

    tf.compat.v1.disable_eager_execution()
    graph = tf.Graph()
    with graph.as_default():
        with tf.name_scope("model"):  # as musicnn.extractor does (does not prefix variable names)
            x = tf.compat.v1.placeholder(tf.float32, [None, FRAMES, N_MELS])
            is_training = tf.compat.v1.placeholder(tf.bool)
            (logits, _timbral, _temporal, _cnn1, _cnn2, _cnn3, mean_pool, max_pool,
             penultimate) = models.define_model(x, is_training, model, 50)
            taggram = tf.nn.sigmoid(logits)
        prefix = checkpoint_prefix(model)
        graph_vars = tf.compat.v1.global_variables()
        sess = tf.compat.v1.Session(graph=graph)
        # no global_variables_initializer: every variable must come from the checkpoint
        tf.compat.v1.train.Saver().restore(sess, prefix)
        reader = tf.compat.v1.train.NewCheckpointReader(prefix)
        for v in graph_vars:  # restore really happened (the package swallows restore errors)
            name = v.op.name
            assert np.array_equal(sess.run(v), reader.get_tensor(name)), name
    fetch = {"taggram": taggram, "logits": logits, "penultimate": penultimate,
             "mean_pool": mean_pool, "max_pool": max_pool}
    return sess, x, {is_training: False}, fetch


def run_graph(model: str, batch: np.ndarray, runs: int = 2) -> dict[str, np.ndarray]:
    """Build the package's own graph, restore its checkpoint, run ``batch`` through it ``runs`` times."""
    sess, x, extra, fetch = reference_graph(model)
    with sess:
        outs = [sess.run(fetch, feed_dict={x: batch, **extra}) for _ in range(runs)]
        for o in outs[1:]:
            for k in fetch:
                assert np.array_equal(o[k], outs[0][k]), f"{model}/{k} not deterministic"
        # one patch at a time must agree with the batch (tolerance only: summation order may differ)
        single = [sess.run(fetch, feed_dict={x: batch[i:i + 1], **extra}) for i in range(len(batch))]
        for k in fetch:
            stacked = np.concatenate([s[k] for s in single])
            err = float(np.max(np.abs(stacked - outs[0][k])))
            scale = float(np.max(np.abs(outs[0][k])))
            print(f"  {model}/{k}: max |value| {scale:.3g}, batch-vs-single max |diff| {err:.3g}")
            assert err <= 1e-5 * max(1.0, scale), (k, err, scale)
    res = {k: np.asarray(v, dtype=np.float32) for k, v in outs[0].items()}
    assert res["taggram"].shape == (len(batch), 50)
    assert res["penultimate"].shape == (len(batch), 200)
    assert res["mean_pool"].shape == res["max_pool"].shape == (len(batch), 753)
    return res


def _sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def main() -> None:
    import librosa
    import tensorflow as tf
    import tf_keras
    from importlib.metadata import version
    from musicnn import configuration

    names, audio = make_signals()
    inputs = np.stack([logmel(y) for y in audio]).astype(np.float32)
    assert inputs.shape == (6, FRAMES, N_MELS) and np.all(np.isfinite(inputs))
    for n, y, m in zip(names, audio, inputs):
        print(f"  {n:13s} peak {np.max(np.abs(y)):.3f}  logmel min {m.min():.4f} mean {m.mean():.4f} max {m.max():.4f}")

    out: dict[str, np.ndarray] = {"audio": audio, "inputs": inputs, "names": np.array(names)}
    digests = {}
    for model in MODELS:
        res = run_graph(model, inputs)
        for k, v in res.items():
            out[f"{model}/{k}"] = v
        labels = configuration.MSD_LABELS if model.startswith("MSD") else configuration.MTT_LABELS
        for n, row in zip(names, res["taggram"]):
            top = np.argsort(-row)[:3]
            print(f"  {model} {n:13s} " + ", ".join(f"{labels[i]} {row[i]:.3f}" for i in top))
        prefix = checkpoint_prefix(model)
        digests[model] = {s: _sha256(prefix + s) for s in (".index", ".data-00000-of-00001")}

    meta = {
        "what": "outputs of the original musicnn==0.1.0 TF1 graph (musicnn.models.define_model), is_training=False",
        "versions": {
            "python": platform.python_version(),
            "tensorflow": tf.__version__,
            "tensorflow_distribution": "tensorflow-cpu " + version("tensorflow-cpu"),
            "tf_keras": tf_keras.__version__,
            "librosa": librosa.__version__,
            "numpy": np.__version__,
            "musicnn": version("musicnn"),
        },
        "setup_commands": SETUP_COMMANDS,
        "run_command": RUN_COMMAND,
        "env": {k: os.environ.get(k) for k in ("TF_USE_LEGACY_KERAS", "TF_ENABLE_ONEDNN_OPTS")},
        "frontend": "np.log10(10000 * librosa.feature.melspectrogram(y=y, sr=16000, hop_length=256, n_fft=512, "
                    "n_mels=96).astype(np.float32) + 1).T, float32 throughout",
        "checkpoint_sha256": digests,
        "signals": names,
        "labels": {"MSD_musicnn": configuration.MSD_LABELS, "MTT_musicnn": configuration.MTT_LABELS},
        "platform": platform.platform(),
        "argv": sys.argv,
    }
    out["meta"] = np.array(json.dumps(meta))
    np.savez_compressed(OUT, **out)
    print(f"wrote {OUT} ({OUT.stat().st_size / 1024:.0f} KiB)")


if __name__ == "__main__":
    main()
