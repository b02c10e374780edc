"""Encoders: log-mel windows in, unit vectors out.

An encoder artefact is a Keras ``.keras`` file plus a JSON sidecar beside it (same name, ``.json``) holding
the front-end parameters, the class names, the embedding width and a fingerprint: a SHA-256 of the encoder
name, every front-end parameter and every weight. Stores record the fingerprint and refuse vectors from any
other encoder.

TensorFlow is imported only when a model is actually loaded.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Protocol

import numpy as np

from ..errors import SoundalikeError
from ..model._quiet import import_keras

from ..model.frontend import FrontEnd

SIDECAR_FORMAT = "soundalike-encoder"
SIDECAR_VERSION = 1


class ModelError(SoundalikeError):
    """A model artefact that cannot be used; the message names the file and the reason."""


def sidecar_path(model_path: str | os.PathLike) -> Path:
    return Path(model_path).with_suffix(".json")


def fingerprint(name: str, frontend: FrontEnd, weights: list[np.ndarray]) -> str:
    """SHA-256 (hex, first 16 bytes) of the encoder name, front-end parameters and weights, in order."""
    h = hashlib.sha256()
    h.update(name.encode())
    h.update(frontend.canonical().encode())
    for w in weights:
        w = np.ascontiguousarray(w)
        h.update(str((w.dtype.str, w.shape)).encode())
        h.update(w.tobytes())
    return h.hexdigest()[:32]


def l2_normalise(x: np.ndarray, axis: int = -1) -> np.ndarray:
    """Unit length along ``axis`` as contiguous float32; all-zero rows stay zero."""
    x = np.asarray(x, dtype=np.float32)
    norm = np.linalg.norm(x, axis=axis, keepdims=True)
    return np.ascontiguousarray(x / np.maximum(norm, 1e-12), dtype=np.float32)


def read_sidecar(model_path: str | os.PathLike) -> dict:
    side = sidecar_path(model_path)
    try:
        meta = json.loads(side.read_text())
    except FileNotFoundError:
        raise ModelError(f"{side}: sidecar missing (a model is a .keras file plus its .json sidecar)") from None
    except (OSError, ValueError) as err:
        raise ModelError(f"{side}: unreadable sidecar ({err})") from None
    if meta.get("format") != SIDECAR_FORMAT:
        raise ModelError(f"{side}: not a soundalike encoder sidecar")
    if int(meta.get("version", 0)) > SIDECAR_VERSION:
        raise ModelError(f"{side}: written by a newer soundalike (sidecar version {meta.get('version')})")
    return meta


class Encoder(Protocol):
    """What the indexer, the store and search ask of an encoder (``model.registry.load_encoder`` makes one)."""

    name: str
    fingerprint: str  # a hash of the weights and every front-end parameter: vectors of two encoders never mix
    dim: int  # the track vector's width
    labels: list[str]  # class names or tags, in the order of ``encode``'s scores
    frontend: FrontEnd
    excerpt_dim: int  # leading columns of a window's features the excerpt index keeps (0: none)
    store_transform: str | None  # "standardize": the store standardises the library's vectors; None: as they are
    rescore: str | None  # "csls": search ranks a store of this encoder by CSLS; None: by cosine
    copy_threshold: float | None  # the cosine above which two tracks are copies, as measured (None: not measured)

    @property
    def runtime(self) -> str: ...

    def encode(self, features: np.ndarray) -> tuple[np.ndarray, np.ndarray]: ...

    def summarize(self, window_embeddings: np.ndarray) -> np.ndarray: ...

    def predicted(self, scores: np.ndarray, *, top: int = 5) -> tuple[str, float, list[str], list[float]]: ...

    def track_scores(self, window_scores: np.ndarray) -> np.ndarray:
        """A track's scores (``[len(labels)]``, what ``predicted`` takes) from its windows' (``encode``'s)."""

    def window_probs(self, window_scores: np.ndarray) -> np.ndarray:
        """Each window's scores (``[n, len(labels)]``) from ``encode``'s."""

    def track_parts(self, window_scores: np.ndarray) -> dict[str, np.ndarray]:
        """A track's scores by each part of a classifier made of parts, by name (empty: one part only)."""

    def spec(self) -> dict | None:
        """What a store records to load the encoder again without files (None: the store keeps ``artefacts``)."""

    def artefacts(self) -> list[Path]:
        """The files a store copies in to load the encoder again (a trained model and its sidecar)."""


class EncoderBase:
    """What every encoder shares (the defaults of :class:`Encoder`), front-end shortcuts and the raw-window
    conveniences. Subclasses set ``name``, ``dim``, ``frontend``, ``labels``, ``fingerprint`` and implement
    ``encode`` and ``summarize``."""

    frontend: FrontEnd
    excerpt_dim: int = 0
    store_transform: str | None = None
    rescore: str | None = None
    copy_threshold: float | None = None
    #: the file it was loaded from, when it was (a trained model)
    path: Path | None = None

    def spec(self) -> dict | None:
        return None

    def track_scores(self, window_scores: np.ndarray) -> np.ndarray:
        return np.asarray(window_scores).mean(axis=0)

    def window_probs(self, window_scores: np.ndarray) -> np.ndarray:
        return np.asarray(window_scores)

    def track_parts(self, window_scores: np.ndarray) -> dict[str, np.ndarray]:
        return {}

    def artefacts(self) -> list[Path]:
        return [] if self.path is None else [self.path, sidecar_path(self.path)]

    @property
    def sample_rate(self) -> int:
        return self.frontend.sample_rate

    @property
    def segment_seconds(self) -> float:
        return self.frontend.window_s

    @property
    def runtime(self) -> str:
        """Where inference runs (recorded by stores): Keras models run in TensorFlow, float32."""
        import tensorflow as tf

        return f"tensorflow {tf.__version__} f32"

    def features(self, windows: np.ndarray) -> np.ndarray:
        return self.frontend.features(windows)

    def embed(self, windows: np.ndarray) -> np.ndarray:
        """Window features for raw windows ``[n, window_samples]``."""
        return self.encode(self.features(windows))[0]

    def predict(self, windows: np.ndarray) -> np.ndarray:
        """Class probabilities (or tag scores) for raw windows."""
        return self.encode(self.features(windows))[1]


class KerasEncoder(EncoderBase):
    """A Keras classifier whose named penultimate layer is the embedding.

    Attributes: ``name``, ``dim`` (track vector width), ``frontend``, ``labels`` (class names),
    ``fingerprint``, plus ``sample_rate`` and ``segment_seconds`` from the front end.
    """

    def __init__(self, model, *, name: str, frontend: FrontEnd, labels: list[str], embedding_layer: str = "embedding"):
        keras = import_keras()

        self.name = name
        self.frontend = frontend
        self.labels = list(labels)
        self.model = model
        self.embedding_layer = embedding_layer
        self._both = keras.Model(model.inputs, [model.get_layer(embedding_layer).output, model.outputs[0]])
        self.dim = int(self._both.outputs[0].shape[-1])
        self.fingerprint = fingerprint(name, frontend, [np.asarray(w) for w in model.get_weights()])

    # -- model calls ---------------------------------------------------------------------------------------
    def encode(self, features: np.ndarray, *, batch_size: int = 128) -> tuple[np.ndarray, np.ndarray]:
        """Window embeddings and class probabilities for log-mel windows.

        Parameters
        ----------
        features : np.ndarray [shape=(n, n_mels, frames)]

        Returns
        -------
        embeddings : np.ndarray [shape=(n, dim), dtype=float32], not normalised
        probs : np.ndarray [shape=(n, len(labels)), dtype=float32]
        """
        features = np.asarray(features, dtype=np.float32)
        if features.ndim != 3 or features.shape[1:] != self.frontend.input_shape:
            raise ValueError(f"features must have shape (n, {self.frontend.input_shape}), got {features.shape}")
        embs, probs = [], []
        for i in range(0, len(features), batch_size):
            e, p = self._both([features[i : i + batch_size, ..., None]], training=False)
            embs.append(np.asarray(e, dtype=np.float32))
            probs.append(np.asarray(p, dtype=np.float32))
        if not embs:
            return np.zeros((0, self.dim), np.float32), np.zeros((0, len(self.labels)), np.float32)
        return np.concatenate(embs), np.concatenate(probs)

    def predicted(self, scores: np.ndarray, *, top: int = 5) -> tuple[str, float, list[str], list[float]]:
        """From a track's mean class probabilities: the best class and its probability, and the ``top`` classes."""
        order = np.argsort(-scores)[:top]
        return self.labels[order[0]], float(scores[order[0]]), [self.labels[i] for i in order], [float(scores[i]) for i in order]

    @staticmethod
    def summarize(window_embeddings: np.ndarray) -> np.ndarray:
        """A track's vector: the normalised mean of its unit window vectors. ``[m, dim] -> [dim]`` float32."""
        return l2_normalise(l2_normalise(window_embeddings).mean(axis=0))

    # -- artefact ------------------------------------------------------------------------------------------
    def save(self, path: str | os.PathLike, *, extra: dict | None = None) -> Path:
        """Write ``path`` (.keras) and its JSON sidecar atomically; returns the sidecar path."""
        path = Path(path)
        if path.suffix != ".keras":
            raise ModelError(f"{path}: a model file must end in .keras")
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.stem}.tmp.keras")
        self.model.save(tmp)
        os.replace(tmp, path)
        meta = {
            "format": SIDECAR_FORMAT,
            "version": SIDECAR_VERSION,
            "name": self.name,
            "kind": "keras",
            "embedding_layer": self.embedding_layer,
            "embedding_dim": self.dim,
            "labels": self.labels,
            "frontend": self.frontend.to_dict(),
            "fingerprint": self.fingerprint,
            **(extra or {}),
        }
        side = sidecar_path(path)
        tmp_side = side.with_name(f".{side.name}.tmp")
        tmp_side.write_text(json.dumps(meta, indent=2) + "\n")
        os.replace(tmp_side, side)
        return side

    @classmethod
    def load(cls, path: str | os.PathLike) -> "KerasEncoder":
        """Load a ``.keras`` model and its sidecar; the weights must match the sidecar's fingerprint. A head
        (``model.head``) needs its backbone: ``model.registry.load_encoder`` loads both."""
        model, meta = read_keras(path)
        if meta.get("kind") == "head":
            raise ModelError(f"{path}: a head on a pretrained backbone: load it with model.registry.load_encoder")
        enc = cls(
            model,
            name=meta["name"],
            frontend=FrontEnd.from_dict(meta["frontend"]),
            labels=meta.get("labels", []),
            embedding_layer=meta.get("embedding_layer", "embedding"),
        )
        enc.path = Path(path)
        return check_fingerprint(path, enc, meta)


def read_keras(path: str | os.PathLike):
    """A ``.keras`` model file and its sidecar: ``(model, meta)``, or a one-line ModelError."""
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"{path}: model file not found")
    meta = read_sidecar(path)
    keras = import_keras()
    try:
        model = keras.models.load_model(path, compile=False)
    except Exception as err:
        raise ModelError(f"{path}: cannot load Keras model ({' '.join(str(err).split())[:200]})") from None
    return model, meta


def check_fingerprint(path: str | os.PathLike, enc, meta: dict):
    """``enc`` when its weights are the ones its sidecar describes, else a ModelError naming both."""
    if meta.get("fingerprint") and meta["fingerprint"] != enc.fingerprint:
        raise ModelError(
            f"{path}: weights do not match the sidecar (fingerprint {enc.fingerprint} != {meta['fingerprint']})"
        )
    return enc
