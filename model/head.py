"""Transfer learning: a small genre head trained on the frozen pretrained musicnn's window features.

The artefact is a ``.keras`` file holding the head only, plus the usual JSON sidecar naming its backbone
(``{"kind": "musicnn", "variant": ...}``) and the backbone's fingerprint; the backbone's weights come from
the installed package as for the default encoder. As an encoder it runs musicnn, then the head, and its
window embedding is the head's 128-wide batch-normalised layer, like the seed CNN's.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..model._quiet import import_keras
from ..model.encoder import KerasEncoder, ModelError, check_fingerprint, fingerprint, l2_normalise, read_keras

NAME = "musicnn-head"


def build(input_dim: int, n_classes: int, *, embedding_dim: int = 128, dropout: float = 0.3, weight_decay: float = 1e-3,
          seed: int = 0):
    """Window features of the backbone -> Dense 128 (+ batch norm: the embedding) -> ReLU -> softmax, with L2
    weight decay on both dense layers."""
    keras = import_keras()
    L = keras.layers
    keras.utils.set_random_seed(seed)
    decay = keras.regularizers.l2(weight_decay) if weight_decay else None
    inp = keras.Input((input_dim,), name="backbone_features")
    x = L.BatchNormalization(momentum=0.9, name="input_norm")(inp)
    x = L.Dropout(0.2, name="input_dropout")(x)
    x = L.Dense(embedding_dim, use_bias=False, kernel_regularizer=decay, name="dense")(x)
    x = L.BatchNormalization(momentum=0.9, name="embedding")(x)
    x = L.ReLU(name="relu_embedding")(x)
    x = L.Dropout(dropout, name="dropout")(x)
    out = L.Dense(n_classes, activation="softmax", kernel_regularizer=decay, name="genre")(x)
    return keras.Model(inp, out, name=NAME)


class HeadEncoder(KerasEncoder):
    """musicnn (frozen) followed by a trained head; behaves as any encoder."""

    def __init__(self, head, *, backbone, labels: list[str], embedding_layer: str = "embedding"):
        self.backbone = backbone
        super().__init__(head, name=NAME, frontend=backbone.frontend, labels=labels, embedding_layer=embedding_layer)
        self.fingerprint = fingerprint(f"{NAME}/{backbone.fingerprint}", self.frontend,
                                       [np.asarray(w) for w in head.get_weights()])

    @classmethod
    def load(cls, path, *, backbone) -> "HeadEncoder":
        """A head saved by ``soundalike train`` on ``backbone`` (the encoder its sidecar names, loaded by the
        caller): the backbone must be the one it was trained on."""
        model, meta = read_keras(path)
        if backbone.fingerprint != meta["backbone"].get("fingerprint"):
            raise ModelError(f"{path}: trained on backbone {backbone.name} {meta['backbone'].get('fingerprint')}, "
                             f"but the installed one is {backbone.fingerprint}")
        enc = cls(model, backbone=backbone, labels=meta.get("labels", []),
                  embedding_layer=meta.get("embedding_layer", "embedding"))
        enc.path = Path(path)
        return check_fingerprint(path, enc, meta)

    @property
    def runtime(self) -> str:
        return f"{self.backbone.runtime} + head in tensorflow"

    def backbone_spec(self) -> dict:
        return {**self.backbone.spec(), "fingerprint": self.backbone.fingerprint}

    def head_outputs(self, window_features: np.ndarray, *, batch_size: int = 1024) -> tuple[np.ndarray, np.ndarray]:
        """Embeddings and class probabilities from backbone window features ``[n, d]``."""
        embs, probs = [], []
        for i in range(0, len(window_features), batch_size):
            e, p = self._both([window_features[i : i + batch_size]], training=False)
            embs.append(np.asarray(e, np.float32))
            probs.append(np.asarray(p, np.float32))
        if not embs:
            return np.zeros((0, self.dim), np.float32), np.zeros((0, len(self.labels)), np.float32)
        return np.concatenate(embs), np.concatenate(probs)

    def encode(self, features: np.ndarray, *, batch_size: int = 128) -> tuple[np.ndarray, np.ndarray]:
        """Log-mel windows ``[n, 96, 187]`` -> (embeddings ``[n, 128]``, probabilities ``[n, classes]``)."""
        window_features, _ = self.backbone.encode(features, batch_size=batch_size)
        return self.head_outputs(window_features)

    @staticmethod
    def summarize(window_embeddings: np.ndarray) -> np.ndarray:
        return l2_normalise(l2_normalise(window_embeddings).mean(axis=0))
