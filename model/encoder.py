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

import numpy as np

from ..model._quiet import import_keras

from ..model.frontend import FrontEnd

SIDECAR_FORMAT = "soundalike-encoder"
SIDECAR_VERSION = 1


class ModelError(Exception):
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


class EncoderBase:
    """What every encoder shares: front-end shortcuts and the raw-window conveniences. Subclasses set
    ``name``, ``dim``, ``frontend``, ``labels``, ``fingerprint`` and implement ``encode`` and ``summarize``."""

    frontend: FrontEnd
    #: leading columns of a window's features that the excerpt index keeps (0: the encoder keeps no windows)
    excerpt_dim: int = 0

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
        """Load a ``.keras`` model and its sidecar; the weights must match the sidecar's fingerprint."""
        path = Path(path)
        if not path.is_file():
            raise ModelError(f"{path}: model file not found")
        meta = read_sidecar(path)
        keras = import_keras()

        try:
            model = keras.models.load_model(path, compile=False)
        except Exception as err:
            raise ModelError(f"{path}: cannot load Keras model ({' '.join(str(err).split())[:200]})") from None
        if meta.get("kind") == "head":
            from ..model.head import HeadEncoder

            backbone = load_encoder(meta["backbone"])
            if backbone.fingerprint != meta["backbone"].get("fingerprint"):
                raise ModelError(f"{path}: trained on backbone {backbone.name} {meta['backbone'].get('fingerprint')}, "
                                 f"but the installed one is {backbone.fingerprint}")
            enc = HeadEncoder(model, backbone=backbone, labels=meta.get("labels", []),
                              embedding_layer=meta.get("embedding_layer", "embedding"))
        else:
            enc = cls(
                model,
                name=meta["name"],
                frontend=FrontEnd.from_dict(meta["frontend"]),
                labels=meta.get("labels", []),
                embedding_layer=meta.get("embedding_layer", "embedding"),
            )
        if meta.get("fingerprint") and meta["fingerprint"] != enc.fingerprint:
            raise ModelError(
                f"{path}: weights do not match the sidecar (fingerprint {enc.fingerprint} != {meta['fingerprint']})"
            )
        return enc


#: Names of the built-in pretrained encoders (weights shipped by a package, nothing to train).
BUILTIN = {"musicnn": "MSD_musicnn+MTT_musicnn", "musicnn-msd": "MSD_musicnn", "musicnn-mtt": "MTT_musicnn",
           "student": "student"}
DEFAULT_ENCODER = "musicnn"


def is_builtin(ref) -> bool:
    return isinstance(ref, str) and ref in BUILTIN


def load_encoder(ref: str | os.PathLike | dict):
    """An encoder from a ``.keras`` path, a student's ``.npz``, a built-in name (``musicnn``, ``musicnn-msd``,
    ``musicnn-mtt``, ``student``) or the ``spec`` dict a store recorded."""
    if isinstance(ref, dict):
        if ref.get("kind") == "student":
            from ..model.student import StudentEncoder

            return StudentEncoder.load(ref.get("path"), n_windows=int(ref.get("n_windows", 16)),
                                       peak=float(ref.get("peak", 0.95)))
        if ref.get("kind") == "musicnn":
            from ..model.musicnn import MusicnnEncoder

            # a spec without "peak" was written before the level was normalised: the recorded level, as then;
            # without "pool", before the mean alone became the track vector: mean and spread, as then
            return MusicnnEncoder.load(ref["variant"], n_windows=int(ref.get("n_windows", 16)),
                                       peak=float(ref.get("peak", 0.0)), pool=str(ref.get("pool", "mean+std")))
        raise ModelError(f"unknown encoder kind {ref.get('kind')!r}")
    if ref == "student" or str(ref).endswith(".npz"):
        from ..model.student import StudentEncoder

        return StudentEncoder.load(None if ref == "student" else ref)
    if is_builtin(ref):
        from ..model.musicnn import MusicnnEncoder

        return MusicnnEncoder.load(BUILTIN[ref])
    return KerasEncoder.load(ref)
