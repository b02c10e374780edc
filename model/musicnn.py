"""The pretrained musicnn CNN (Pons & Serra, 2019), re-implemented in Keras 3.

The weights come from the PyPI package ``musicnn==0.1.0`` (ISC licence), which ships TF1 checkpoints of the
network trained on the Million Song Dataset's 50 most common tags (``MSD_musicnn``) and on MagnaTagATune's
50 tags (``MTT_musicnn``). The package's own code needs TensorFlow 1, so it is installed without its
dependencies and never imported: only its checkpoint files are read, variable by variable.

Architecture (input: a log-mel patch of 187 frames x 96 bands, 16 kHz, n_fft 512, hop 256,
``log10(1 + 10000 * mel_power)``):

- front end: batch norm of the input; two *timbral* convolutions (204 filters of 7 frames x 38 and x 67
  bands) and three *temporal* convolutions (51 filters of 128, 64 and 32 frames x 1 band), each with ReLU,
  batch norm and a max over frequency, concatenated to 561 channels per frame;
- mid end: three 1-D convolutions over time (64 filters, 7 frames), the last two residual; the front-end
  output and the three mid-end outputs are concatenated to 753 features per frame;
- back end: max and mean over time (interleaved, 1506), batch norm, dense 200 + ReLU + batch norm (the
  "penultimate" layer), dense 50 (logits), sigmoid (tags).
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import numpy as np

from ..errors import SoundalikeError
from ..model._quiet import import_keras
from ..model.encoder import EncoderBase
from ..model.runtime import compile_model, requested

FRAMES = 187
N_MELS = 96
SAMPLE_RATE = 16000
N_FFT = 512
HOP = 256
WINDOW_SAMPLES = (FRAMES - 1) * HOP  # librosa's centred STFT gives 1 + n // hop = 187 frames

MSD_LABELS = [
    "rock", "pop", "alternative", "indie", "electronic", "female vocalists", "dance", "00s", "alternative rock",
    "jazz", "beautiful", "metal", "chillout", "male vocalists", "classic rock", "soul", "indie rock", "Mellow",
    "electronica", "80s", "folk", "90s", "chill", "instrumental", "punk", "oldies", "blues", "hard rock",
    "ambient", "acoustic", "experimental", "female vocalist", "guitar", "Hip-Hop", "70s", "party", "country",
    "easy listening", "sexy", "catchy", "funk", "electro", "heavy metal", "Progressive rock", "60s", "rnb",
    "indie pop", "sad", "House", "happy",
]
MTT_LABELS = [
    "guitar", "classical", "slow", "techno", "strings", "drums", "electronic", "rock", "fast", "piano", "ambient",
    "beat", "violin", "vocal", "synth", "female", "indian", "opera", "male", "singing", "vocals", "no vocals",
    "harpsichord", "loud", "quiet", "flute", "woman", "male vocal", "no vocal", "pop", "soft", "sitar", "solo",
    "man", "classic", "choir", "voice", "new age", "dance", "male voice", "female vocal", "beats", "harp", "cello",
    "no voice", "weird", "country", "metal", "female voice", "choral",
]
LABELS = {"MSD_musicnn": MSD_LABELS, "MTT_musicnn": MTT_LABELS}
#: The encoder name a store records for each model.
#: the cosine (in the store's index space) above which two tracks are copies, measured per network and track-vector
#: pooling (``benchmarks/dupes.py``: copies of 40 tracks of a dev corpus). The default (both networks, the mean
#: over windows): MP3 0.974-1.000, 22 kHz and 6 dB quieter 0.996-1.000, trimmed by 3 s at each end 0.929-0.999
#: (median 0.990, 5th percentile 0.956); the nearest different track of its own soundtrack 0.882 at the 95th
#: percentile; above 0.93 only two versions of one piece (0.973, 0.959) and one composer's pair (0.938). Others
#: (the student included) are not measured and collapse nothing unless asked. The default since (both networks,
#: mean and spread, whitened within tracks: ``catalog.within``), measured alike on dev corpus A: MP3 0.952-1.000,
#: 22 kHz and 6 dB quieter 0.996-1.000, trimmed by 3 s at each end 0.926-0.999 (5th percentile 0.953); the
#: nearest other track 0.731 at the 95th percentile; above 0.85 only two versions of one piece (0.977) and one
#: composer's pair (0.946).
COPY_THRESHOLDS = {("musicnn-msd", "mean+std"): 0.93, ("musicnn-msd", "mean"): 0.95, ("musicnn", "mean"): 0.95,
                   ("musicnn", "mean+std"): 0.92}
ENCODER_NAMES = {"MSD_musicnn": "musicnn-msd", "MTT_musicnn": "musicnn-mtt", "MSD_musicnn+MTT_musicnn": "musicnn",
                 "student": "student"}
#: The default: both models' window features side by side (1906 a window). Measured on two corpora of real music
#: (``benchmarks/track_vectors.py``; A: 248 tracks of 13 soundtracks, B: 156 of 12 others; group precision@10,
#: paired bootstrap over queries), against the MSD model alone: +0.009 [-0.007, +0.026] on A, +0.026 [+0.008,
#: +0.044] on B, +0.017 [+0.006, +0.029] pooled; against mean and spread of the MSD model alone (the default
#: before that, which held on a third collection): +0.023 [+0.003, +0.045], +0.010 [-0.013, +0.031]. Twice
#: the model time.
DEFAULT_VARIANT = "MSD_musicnn+MTT_musicnn"
#: The tags of each model that name a genre (the rest are moods, decades, voices, instruments).
GENRE_TAGS = {
    "MSD_musicnn": ["rock", "pop", "alternative", "indie", "electronic", "dance", "alternative rock", "jazz", "metal",
                    "chillout", "classic rock", "soul", "indie rock", "electronica", "folk", "punk", "blues",
                    "hard rock", "ambient", "experimental", "Hip-Hop", "country", "easy listening", "funk", "electro",
                    "heavy metal", "Progressive rock", "rnb", "indie pop", "House"],
    "MTT_musicnn": ["classical", "techno", "electronic", "rock", "ambient", "indian", "opera", "pop", "new age",
                    "dance", "country", "metal", "choral"],
}
INSTALL_HINT = "pip install --no-deps musicnn==0.1.0"
#: How a track's window features become its raw vector. ``mean``: their mean over the windows, the default.
#: ``mean+std``: mean and standard deviation, the default before; stores made then record no ``pool`` and keep
#: it. Measured on two corpora of real music (``benchmarks/track_vectors.py``, paired bootstrap over queries)
#: with both models: mean and spread -0.017 [-0.033, -0.001] on A, +0.010 [-0.008, +0.029] on B against the
#: mean alone, standardised; whitened within tracks the spread gains (see :data:`WHITENED`).
POOLS = ("mean", "mean+std")
DEFAULT_POOL = "mean"
#: Variants whose stores whiten within tracks (``catalog.within``), with the pooling that needs: mean and spread.
#: The default's: measured on two corpora of real music against its mean ranked by CSLS (docs/quality.md).
WHITENED = {DEFAULT_VARIANT: "mean+std"}


def default_pool(model: str) -> str:
    """The pooling a new store of ``model`` gets."""
    return WHITENED.get(model, DEFAULT_POOL)


def summarize_windows(window_features: np.ndarray, pool: str) -> np.ndarray:
    """A track's raw vector from its window features ``[m, w]`` by ``pool`` (see
    :meth:`MusicnnEncoder.summarize`)."""
    w = np.asarray(window_features, dtype=np.float32)
    if pool == "mean":
        return w.mean(axis=0).astype(np.float32)
    enough = len(w) >= MusicnnEncoder.MIN_WINDOWS_FOR_SPREAD
    spread = w.std(axis=0) if enough else np.full(w.shape[1], np.nan, np.float32)
    return np.concatenate([w.mean(axis=0), spread]).astype(np.float32)


class WeightsMissing(SoundalikeError):
    """The musicnn checkpoint files are not installed; the message names the install command."""


def checkpoint_prefix(model: str = "MSD_musicnn") -> str:
    """The TF1 checkpoint prefix of ``model`` inside the installed musicnn package (the package is located,
    never imported)."""
    if model not in LABELS:
        raise ValueError(f"unknown musicnn model {model!r}; choose from {sorted(LABELS)}")
    spec = importlib.util.find_spec("musicnn")
    if spec is None or not spec.submodule_search_locations:
        raise WeightsMissing(f"the pretrained musicnn weights are not installed; run: {INSTALL_HINT}")
    folder = Path(list(spec.submodule_search_locations)[0]) / model
    if not (folder / ".index").is_file() or not (folder / ".data-00000-of-00001").is_file():
        raise WeightsMissing(f"{folder}: musicnn checkpoint files missing; reinstall with: {INSTALL_HINT}")
    return str(folder) + os.sep


def read_checkpoint(prefix: str) -> dict[str, np.ndarray]:
    """Every variable of a TF1 checkpoint (optimizer slots left out), by name."""
    import_keras()  # TensorFlow, quietly
    from tensorflow.python.training import py_checkpoint_reader

    reader = py_checkpoint_reader.NewCheckpointReader(prefix)
    return {
        name: reader.get_tensor(name)
        for name in reader.get_variable_to_shape_map()
        if "Adam" not in name and "power" not in name
    }


def build(num_classes: int = 50, *, midend_filters: int = 64, backend_units: int = 200, name: str = "musicnn"):
    """The Keras model. Input ``(187, 96)`` log-mel; outputs ``taggram, logits, penultimate, mean_pool,
    max_pool``. Layer names are the checkpoint's variable scopes, so weights load by name."""
    keras = import_keras()
    L, ops = keras.layers, keras.ops

    def bn(name):
        return L.BatchNormalization(epsilon=1e-3, name=name)

    def max_over_freq(x, name):  # [n, T, F, C] -> [n, T, C]
        # a pooling layer rather than a reduction: the same maxima, and runtimes fuse it better (OpenVINO: +10 %)
        y = L.MaxPooling2D((1, x.shape[2]), name=name)(x)
        return L.Reshape((x.shape[1], x.shape[3]), name=f"{name}_squeeze")(y)

    inp = keras.Input((FRAMES, N_MELS), name="logmel")
    x = L.Reshape((FRAMES, N_MELS, 1), name="expand")(inp)
    x = bn("batch_normalization")(x)
    pad7 = L.ZeroPadding2D(((3, 3), (0, 0)), name="pad_timbral")(x)
    branches = []
    for conv, norm, kernel in (("conv2d", "batch_normalization_1", (7, int(0.4 * N_MELS))),
                               ("conv2d_1", "batch_normalization_2", (7, int(0.7 * N_MELS)))):
        y = L.Conv2D(int(1.6 * 128), kernel, padding="valid", activation="relu", name=conv)(pad7)
        branches.append(max_over_freq(bn(norm)(y), f"pool_{conv}"))
    for conv, norm, length in (("conv2d_2", "batch_normalization_3", 128), ("conv2d_3", "batch_normalization_4", 64),
                               ("conv2d_4", "batch_normalization_5", 32)):
        y = L.Conv2D(int(1.6 * 32), (length, 1), padding="same", activation="relu", name=conv)(x)
        branches.append(max_over_freq(bn(norm)(y), f"pool_{conv}"))
    front = L.Concatenate(axis=2, name="frontend")(branches)  # [n, 187, 561]

    # mid end: 1-D convolutions over time (the original writes them as 2-D convolutions spanning all channels
    # of a one-channel image: the same sums, but runtimes handle a 561-channel 1-D convolution much better)
    layers_out = [front]
    prev = front
    for i, (conv, norm) in enumerate((("conv2d_5", "batch_normalization_6"), ("conv2d_6", "batch_normalization_7"),
                                      ("conv2d_7", "batch_normalization_8"))):
        y = L.Conv1D(midend_filters, 7, padding="same", activation="relu", name=conv)(prev)
        y = bn(norm)(y)
        if i > 0:
            y = L.Add(name=f"residual_{conv}")([y, prev])
        layers_out.append(y)
        prev = y
    mid = L.Concatenate(axis=2, name="midend")(layers_out)  # [n, 187, 753]

    max_pool = L.Lambda(lambda t: ops.expand_dims(ops.max(t, axis=1), -1), name="max_pool")(mid)  # [n, 753, 1]
    mean_pool = L.Lambda(lambda t: ops.expand_dims(ops.mean(t, axis=1), -1), name="mean_pool")(mid)
    pooled = L.Concatenate(axis=2, name="pool")([max_pool, mean_pool])  # [n, 753, 2]
    flat = L.Flatten(name="flatten")(pooled)  # interleaved max/mean, as tf.layers.flatten did
    flat = bn("batch_normalization_9")(flat)
    dense = L.Dense(backend_units, activation="relu", name="dense")(L.Dropout(0.5, name="dropout")(flat))
    penultimate = bn("batch_normalization_10")(dense)
    logits = L.Dense(num_classes, name="dense_1")(L.Dropout(0.5, name="dropout_1")(penultimate))
    taggram = L.Activation("sigmoid", name="taggram")(logits)
    width = mid.shape[2]
    mean_flat = L.Reshape((width,), name="mean_pool_flat")(mean_pool)
    max_flat = L.Reshape((width,), name="max_pool_flat")(max_pool)
    return keras.Model(inp, [taggram, logits, penultimate, mean_flat, max_flat], name=name)


def models_of(variant: str) -> list[str]:
    """The pretrained models a variant runs: ``MSD_musicnn``, ``MTT_musicnn``, or both joined by ``+``."""
    models = variant.split("+")
    for m in models:
        if m not in LABELS:
            raise ValueError(f"unknown musicnn model {m!r}; choose from {sorted(LABELS)}")
    return models


def load(model: str = "MSD_musicnn", *, name: str = "musicnn"):
    """The Keras model with the pretrained weights of ``model`` (MSD_musicnn or MTT_musicnn; or both, joined by
    ``+``: one model over the same input whose tag scores and logits are the first's, and whose penultimate,
    mean-pooled and max-pooled outputs are each the models' side by side, the first's first)."""
    models = models_of(model)
    if len(models) > 1:
        keras = import_keras()
        L = keras.layers
        nets = [load(m, name=f"musicnn_{m.split('_')[0]}") for m in models]
        inp = keras.Input((FRAMES, N_MELS), name="logmel")
        outs = [net(inp) for net in nets]
        joined = [L.Concatenate(axis=1, name=f"both_{part}")([o[i] for o in outs])
                  for i, part in ((2, "penultimate"), (3, "mean_pool"), (4, "max_pool"))]
        return keras.Model(inp, [outs[0][0], outs[0][1], *joined], name=name)
    weights = read_checkpoint(checkpoint_prefix(model))
    net = build(len(LABELS[model]), name=name)
    keras = import_keras()
    used = set()
    for layer in net.layers:
        if not layer.weights:
            continue
        if isinstance(layer, keras.layers.BatchNormalization):
            names = [f"{layer.name}/{v}" for v in ("gamma", "beta", "moving_mean", "moving_variance")]
        else:
            names = [f"{layer.name}/{v}" for v in ("kernel", "bias")]
        # Conv1D kernels [7, C, 64] hold the checkpoint's 2-D kernels [7, C, 1, 64]
        layer.set_weights([weights[n].reshape(w.shape) for n, w in zip(names, layer.weights)])
        used.update(names)
    unused = set(weights) - used
    if unused:
        raise ValueError(f"musicnn checkpoint {model}: variables the port does not use: {sorted(unused)}")
    return net


#: The level the analysed windows are brought to: each track's peak over its windows. musicnn's own front end
#: works at the recorded level (``peak=0``), so the same music 6 dB quieter got another vector (cosine 0.71-0.97
#: with its original on the dev corpus) and a quiet excerpt missed its song. Measured on the dev corpus
#: (``benchmarks/level.py``, 248 tracks, paired bootstrap over queries): group precision@10 0.390 against 0.392
#: at the recorded level, -0.002 [-0.014, +0.011]; a track's RMS or each window's RMS to -20 dBFS measured no
#: better (-0.009, -0.006); quieter copies then score 1.000 with their originals. Stores made before record no
#: ``peak`` in their encoder spec and keep the recorded level (and their fingerprint).
LEVEL_PEAK = 0.95


def _alias_key(model: str, n_windows: int, peak: float, pool: str) -> str | None:
    """What identifies an encoder without building it: a hash of its checkpoint files' bytes and its parameters
    (None when the files cannot be read: the encoder is then built, which names the problem)."""
    import hashlib

    h = hashlib.sha256(f"musicnn/{model}/{pool}/{MusicnnEncoder.MIN_WINDOWS_FOR_SPREAD}".encode())
    h.update(frontend(n_windows, peak).canonical().encode())
    try:
        for m in models_of(model):
            prefix = checkpoint_prefix(m)
            for suffix in (".index", ".data-00000-of-00001"):
                h.update(Path(prefix + suffix).read_bytes())
    except (WeightsMissing, OSError):
        return None
    return h.hexdigest()[:32]


def frontend(n_windows: int = 16, peak: float = LEVEL_PEAK):
    """musicnn's front end: 16 kHz mono, each track's analysed windows scaled so that their peak is ``peak``
    (0: the recorded level, as the original), n_fft 512, hop 256, 96 mel bands (librosa's Slaney mel,
    0-8 kHz), ``log10(1 + 10000 * power)``, windows of 187 frames."""
    from ..model.frontend import FrontEnd

    return FrontEnd(sample_rate=SAMPLE_RATE, window_s=WINDOW_SAMPLES / SAMPLE_RATE, n_windows=n_windows,
                    n_fft=N_FFT, hop_length=HOP, n_mels=N_MELS, fmin=0.0, fmax=SAMPLE_RATE / 2,
                    log_gain=10000.0, peak=peak)


class MusicnnEncoder(EncoderBase):
    """The pretrained musicnn as an encoder.

    Window features are the mid-end's time-mean-pooled features (753) and the penultimate layer (200) of each
    model the variant runs: by default both (MSD and MTT, 1906 a window, see :data:`DEFAULT_VARIANT`; the
    mean-pooled features of both first, then both penultimate layers), else one (953). A track's raw vector is,
    for the default, their mean and spread over its windows (``pool="mean+std"``), which the store whitens
    within tracks (``store_transform == "whiten"``, ``catalog.within``) and search ranks by cosine; for one
    network, their mean (``pool="mean"``, see :data:`POOLS`), which the store standardises with the library's
    own statistics and search ranks by CSLS. Class probabilities are the first model's 50 tag scores.
    (``benchmarks/track_vectors.py`` measured the choices on real music; see docs/quality.md.)
    """

    @property
    def whitened(self) -> bool:
        """Whether a store of this encoder whitens within tracks (the default: both networks, mean and spread)."""
        return WHITENED.get(self.variant) == self.pool

    @property
    def store_transform(self) -> str:
        return "whiten" if self.whitened else "standardize"

    @property
    def rescore(self) -> str | None:
        """How search ranks a store of this encoder: a whitened one by cosine (CSLS after it gained nothing
        more), the others by CSLS, discounting hubs (``catalog.neighbours``; measured on two corpora of real
        music: +0.011 in group precision@10 pooled over plain cosine, gaining on both)."""
        return None if self.whitened else "csls"
    #: what a window keeps for excerpt search: the mean-pooled mid-end features (753); matched window to window
    #: on the dev corpus (``benchmarks/excerpt_windows.py``) they found 10 s excerpts' songs at recall@1 0.87
    #: (white noise at 20 dB SNR) to 0.99 (clean, MP3, 22 kHz, -6 dB, low-passed)
    excerpt_dim = 753

    @property
    def copy_threshold(self) -> float | None:
        """The cosine above which two tracks are copies, where measured for this network and pooling."""
        return COPY_THRESHOLDS.get((self.name, self.pool))

    def __init__(self, model: str = DEFAULT_VARIANT, *, n_windows: int = 16, peak: float = LEVEL_PEAK,
                 pool: str | None = None, runtime_route: str | None = None, warn=None):
        from ..model.encoder import fingerprint

        requested(runtime_route)  # an unknown route fails here, before the weights load
        pool = pool or default_pool(model)
        if pool not in POOLS:
            raise ValueError(f"unknown pooling {pool!r}; choose from {', '.join(POOLS)}")
        self.pool = pool

        self.variant = model
        self.name = ENCODER_NAMES[model]
        self.labels = list(LABELS[models_of(model)[0]])  # tag scores: the first model's
        self.frontend = frontend(n_windows, peak)
        self.net = load(model)
        self.window_dim = int(self.net.outputs[3].shape[-1] + self.net.outputs[2].shape[-1])
        self.dim = self.window_dim * (2 if pool == "mean+std" else 1)
        self.fingerprint = fingerprint(f"{self.name}/{pool}(mean_pool,penultimate)", self.frontend,
                                       [np.asarray(w) for w in self.net.get_weights()])
        self._route = runtime_route
        self._warn = warn
        self._compiled = None

    @property
    def runtime(self) -> str:
        """Where inference runs, e.g. ``openvino 2026.4.1 bf16`` (compiles the model on first use)."""
        return self._model().description

    @classmethod
    def load(cls, model: str = DEFAULT_VARIANT, *, n_windows: int = 16, peak: float = LEVEL_PEAK,
             pool: str | None = None, runtime_route: str | None = None) -> "MusicnnEncoder":
        """The encoder ``__init__`` makes, read from ``model.compiled``'s cache without TensorFlow when a process
        of this machine compiled it before (found by a hash of the checkpoint files and every parameter), else
        built from the weights."""
        from ..model import compiled

        pool = pool or default_pool(model)
        key = _alias_key(model, n_windows, peak, pool)
        fp = compiled.read_alias(key) if key else None
        if fp:
            enc = cls.cached(fp, runtime_route)
            if enc is not None:
                return enc
        enc = cls(model, n_windows=n_windows, peak=peak, pool=pool, runtime_route=runtime_route)
        enc._alias = key
        return enc

    @classmethod
    def cached(cls, fingerprint: str, runtime_route: str | None = None) -> "MusicnnEncoder | None":
        """The encoder of ``fingerprint`` from ``model.compiled``'s cache (no TensorFlow), or None when this
        machine has not compiled it for this OpenVINO (or it was summarised differently by another version)."""
        from ..model import compiled

        found = compiled.load(fingerprint, runtime_route)
        if found is None:
            return None
        meta, model = found
        if meta.get("min_windows_for_spread") != cls.MIN_WINDOWS_FOR_SPREAD:
            return None  # summarised differently by another version: not the same encoder
        return cls.from_compiled(meta, model)

    @classmethod
    def from_compiled(cls, meta: dict, compiled) -> "MusicnnEncoder":
        """The encoder around a model compiled elsewhere (``model.compiled``'s cache, no TensorFlow): ``meta``
        holds what ``__init__`` would have computed from the weights."""
        enc = cls.__new__(cls)
        enc.variant, enc.name, enc.fingerprint = meta["variant"], meta["name"], meta["fingerprint"]
        enc.labels = list(LABELS[models_of(enc.variant)[0]])
        from ..model.frontend import FrontEnd

        enc.frontend = FrontEnd.from_dict(meta["frontend"])
        enc.window_dim, enc.dim = int(meta["window_dim"]), int(meta["dim"])
        enc.pool = (meta.get("spec") or {}).get("pool", "mean+std")
        enc.net, enc._route, enc._warn, enc._compiled = None, compiled.route, None, compiled
        return enc

    def _model(self):
        if self._compiled is None:
            self._compiled = compile_model(self.net, (FRAMES, N_MELS), self._route, warn=self._warn)
            if self._compiled.converted is not None:
                # the next process that only queries loads this instead of TensorFlow (model.compiled)
                from ..model import compiled

                if compiled.save(self, self._compiled.converted, self._compiled.order) and getattr(self, "_alias", None):
                    compiled.write_alias(self._alias, self.fingerprint)
                self._compiled.converted = None
        return self._compiled

    def spec(self) -> dict:
        """What a store records to load this encoder again (no files: the weights come from the package)."""
        return {"kind": "musicnn", "variant": self.variant, "n_windows": self.frontend.n_windows,
                "peak": self.frontend.peak, "pool": self.pool}

    #: windows sent to the network at once. Measured on a 2-core CPU (OpenVINO, both networks, 256 windows):
    #: float32 30.7 windows/s at 128 (peak RSS 6.1 GB: a convolution's activations for 128 windows are 1.9 GB),
    #: 60-70 at 4-16 (1.0-1.5 GB); bf16 39.3 at 128, 95-102 at 4-16. Larger batches only overflow the caches.
    MODEL_BATCH = 8

    def encode(self, features: np.ndarray, *, batch_size: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Window features ``[n, window_dim]`` (mean pool, penultimate) and tag scores ``[n, 50]`` for log-mel windows
        ``[n, 96, 187]``."""
        features = np.asarray(features, dtype=np.float32)
        if features.ndim != 3 or features.shape[1:] != (N_MELS, FRAMES):
            raise ValueError(f"features must have shape (n, {N_MELS}, {FRAMES}), got {features.shape}")
        run = self._model()
        batch_size = batch_size or self.MODEL_BATCH
        feats, tags = [], []
        for i in range(0, len(features), batch_size):
            x = np.ascontiguousarray(np.transpose(features[i : i + batch_size], (0, 2, 1)))
            f, t = self._outputs(run(x))
            feats.append(f)
            tags.append(t)
        if not feats:
            return np.zeros((0, self.window_dim), np.float32), np.zeros((0, len(self.labels)), np.float32)
        return np.concatenate(feats), np.concatenate(tags)

    def _outputs(self, out) -> tuple[np.ndarray, np.ndarray]:
        """Window features and tag scores from the model's outputs."""
        taggram, _, penultimate, mean_pool, _ = out
        return (np.concatenate([np.asarray(mean_pool), np.asarray(penultimate)], axis=1).astype(np.float32),
                np.asarray(taggram, dtype=np.float32))

    def predicted(self, scores: np.ndarray, *, top: int = 5) -> tuple[str, float, list[str], list[float]]:
        """From a track's mean tag scores: its best genre tag and score, and its ``top`` tags and scores."""
        genre_idx = [self.labels.index(t) for t in GENRE_TAGS[models_of(self.variant)[0]]]
        g = genre_idx[int(np.argmax(scores[genre_idx]))]
        order = np.argsort(-scores)[:top]
        return self.labels[g], float(scores[g]), [self.labels[i] for i in order], [float(scores[i]) for i in order]

    #: (``pool="mean+std"``) Fewer windows than this and a track's spread over windows is not measured (NaN)
    #: but left to the library mean: the spread of one window is exactly 0, of two or three mostly noise, and
    #: either made short tracks each other's neighbours whatever they sound like. Measured on 248 real tracks
    #: (13 soundtracks) with short tracks simulated by 1-8 consecutive windows, paired bootstrap over queries:
    #: short-query p@10 +4.9 points [4.0, 5.8] over the plain spread, +1.2 [0.9, 1.5] over a threshold of 3.
    #: (The default mean pooling has no spread: a short track's vector is the mean of the windows it has.)
    MIN_WINDOWS_FOR_SPREAD = 4

    def summarize(self, window_features: np.ndarray) -> np.ndarray:
        """Raw track vector from the window features ``[m, w]``: their mean (``[w]``), or with
        ``pool="mean+std"`` mean and standard deviation (``[2w]``; the deviation NaN, unknown, when ``m`` is
        below :data:`MIN_WINDOWS_FOR_SPREAD`: the store's transform maps it to the library mean)."""
        return summarize_windows(window_features, self.pool)
