"""Transfer learning: a small genre head trained on the frozen pretrained musicnn's window features.

The artefact is a ``.keras`` file holding the head only, plus the usual JSON sidecar naming its backbone
(``{"kind": "musicnn", "variant": ...}``) and the backbone's fingerprint; the backbone's weights come from
the installed package as for the default encoder. As an encoder it runs musicnn, then the head, and its
window embedding is the head's 128-wide batch-normalised layer, like the seed CNN's.

The head classifies twice: each window (a small dense network), and each track (a logistic regression on the
mean of its windows' features and their mean absolute deviation, carried as a layer over windows whose mean
over a track is the regression's logits). A track's class probabilities are the mean of the two: the mean of
its windows' probabilities, and the regression's.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy.special import softmax

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


def ensemble(members: list):
    """One model from heads of :func:`build` trained apart (other seeds): each member's layers copied under its
    own names (member 0 keeps the plain names, so its ``embedding`` is the window embedding), and the class
    probabilities the mean of the members'."""
    if len(members) == 1:
        return members[0]
    keras = import_keras()
    inp = keras.Input(tuple(members[0].inputs[0].shape[1:]), name="backbone_features")
    outs = []
    for m, member in enumerate(members):
        x = inp
        for layer in member.layers[1:]:  # (a chain: input, batch norm, dropout, dense, ...)
            config = {**layer.get_config(), "name": layer.name if m == 0 else f"{layer.name}_{m}"}
            copy = type(layer).from_config(config)
            x = copy(x)
            copy.set_weights(layer.get_weights())
        outs.append(x)
    return keras.Model(inp, keras.layers.Average(name="genre_mean")(outs), name=NAME)


TRACK_LOGITS = "track_logits"


def with_track_classifier(model, x: np.ndarray, y: np.ndarray, owner: np.ndarray, n_classes: int, *, C: float = 1.0):
    """``model`` with a second output: a track-level classifier (scikit-learn's logistic regression on each
    training track's mean of its window features and mean absolute deviation from the training windows' mean,
    standardised) written as a dense layer over each window's features and their deviations, so that the mean
    of its outputs over a track's windows is the regression's logits for that track. ``x``, ``y``, ``owner``:
    the training windows, their classes and tracks."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    keras = import_keras()
    L = keras.layers
    x = np.asarray(x, np.float64)
    centre = x.mean(axis=0)
    tracks = np.unique(owner)
    windows = [x[owner == t] for t in tracks]
    moments = np.stack([np.concatenate([w.mean(0), np.abs(w - centre).mean(0)]) for w in windows])
    labels = np.asarray([y[owner == t][0] for t in tracks])
    scale = StandardScaler().fit(moments)
    clf = LogisticRegression(C=C, max_iter=5000).fit(scale.transform(moments), labels)
    coef, intercept = clf.coef_, clf.intercept_
    if coef.shape[0] == 1:  # two classes: scikit-learn keeps one row, the second class's logit against the first
        coef, intercept = np.vstack([np.zeros_like(coef), coef]), np.r_[0.0, intercept]
    weights = np.zeros((moments.shape[1], n_classes))
    bias = np.full(n_classes, -30.0)  # a class without training tracks is never the regression's answer
    weights[:, clf.classes_] = (coef / scale.scale_).T
    bias[clf.classes_] = intercept - coef @ (scale.mean_ / scale.scale_)
    inp = model.inputs[0]
    centred = L.Normalization(mean=centre, variance=np.ones_like(centre), name="window_centred")(inp)
    relu = L.ReLU(name="window_centred_relu")(centred)
    deviation = L.Subtract(name="window_deviation")([L.Add(name="window_centred_relu2")([relu, relu]), centred])
    both = L.Concatenate(name="window_moments")([inp, deviation])  # |z| = 2 relu(z) - z
    dense = L.Dense(n_classes, name=TRACK_LOGITS)
    logits = dense(both)
    dense.set_weights([weights.astype(np.float32), bias.astype(np.float32)])
    return keras.Model(inp, [model.outputs[0], logits], name=NAME)


class HeadEncoder(KerasEncoder):
    """musicnn (frozen) followed by a trained head; behaves as any encoder."""

    def __init__(self, head, *, backbone, labels: list[str], embedding_layer: str = "embedding"):
        self.backbone = backbone
        super().__init__(head, name=NAME, frontend=backbone.frontend, labels=labels, embedding_layer=embedding_layer)
        self.track_classifier = len(head.outputs) > 1
        if self.track_classifier:  # window scores: the class probabilities, then the track classifier's logits
            self._both = import_keras().Model(head.inputs, [head.get_layer(embedding_layer).output, *head.outputs])
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
        """Embeddings and window scores from backbone window features ``[n, d]``: class probabilities, then (with a
        track classifier) its logits (``track_scores`` and ``window_probs`` read them)."""
        embs, probs = [], []
        for i in range(0, len(window_features), batch_size):
            e, *p = self._both([window_features[i : i + batch_size]], training=False)
            embs.append(np.asarray(e, np.float32))
            probs.append(np.concatenate([np.asarray(q, np.float32) for q in p], axis=1))
        if not embs:
            width = len(self.labels) * (2 if self.track_classifier else 1)
            return np.zeros((0, self.dim), np.float32), np.zeros((0, width), np.float32)
        return np.concatenate(embs), np.concatenate(probs)

    def track_scores(self, window_scores: np.ndarray) -> np.ndarray:
        """The mean of the windows' class probabilities, averaged with the track classifier's probabilities."""
        if not self.track_classifier:
            return super().track_scores(window_scores)
        c = len(self.labels)
        return 0.5 * window_scores[:, :c].mean(axis=0) + 0.5 * softmax(window_scores[:, c:].mean(axis=0))

    def window_probs(self, window_scores: np.ndarray) -> np.ndarray:
        if not self.track_classifier:
            return super().window_probs(window_scores)
        c = len(self.labels)
        return 0.5 * window_scores[:, :c] + 0.5 * softmax(window_scores[:, c:], axis=1)

    def encode(self, features: np.ndarray, *, batch_size: int = 128) -> tuple[np.ndarray, np.ndarray]:
        """Log-mel windows ``[n, 96, 187]`` -> (embeddings ``[n, 128]``, window scores: see ``head_outputs``)."""
        window_features, _ = self.backbone.encode(features, batch_size=batch_size)
        return self.head_outputs(window_features)

    @staticmethod
    def summarize(window_embeddings: np.ndarray) -> np.ndarray:
        return l2_normalise(l2_normalise(window_embeddings).mean(axis=0))
