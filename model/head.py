"""Transfer learning: a small genre head trained on the frozen pretrained musicnn's window features.

The artefact is a ``.keras`` file holding the head only, plus the usual JSON sidecar naming its backbone
(``{"kind": "musicnn", "variant": ...}``) and the backbone's fingerprint; the backbone's weights come from
the installed package as for the default encoder. As an encoder it runs musicnn, then the head, and its
window embedding is the head's 128-wide batch-normalised layer, like the seed CNN's.

The head classifies three ways: each window (a small dense network); each track by a logistic regression on
the mean of its windows' features and their mean absolute deviation (carried as a layer over windows whose
mean over a track is the regression's logits); and each track by a vote of its nearest training tracks in a
whitened space (a layer over windows whose mean over a track is the track's whitened vector, as the search's
default store whitens; the training tracks' vectors and classes kept in the model as two more layers). A
track's class probabilities are the mean of the three: the mean of its windows' probabilities, the
regression's, and the vote. Heads saved before the vote (or without a track classifier) score as they did.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy.special import softmax

from ..catalog import within
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
    centre = np.asarray(x).mean(axis=0, dtype=np.float64)
    groups = track_windows(owner)
    windows = (np.asarray(x[rows], np.float64) for rows in groups)
    moments = np.stack([np.concatenate([w.mean(0), np.abs(w - centre).mean(0)]) for w in windows])
    labels = np.asarray([y[rows[0]] for rows in groups])
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


NEIGHBOUR_SPACE, NEIGHBOUR_VECTORS, NEIGHBOUR_LABELS = "neighbour_space", "neighbour_vectors", "neighbour_labels"
#: the vote: this many nearest training tracks, each weighted by exp(cosine / VOTE_TEMPERATURE)
VOTE_NEIGHBOURS, VOTE_TEMPERATURE = 10, 0.05


def track_windows(owner: np.ndarray) -> list[np.ndarray]:
    """The rows of each track's windows, tracks in increasing order of ``owner``'s ids."""
    order = np.argsort(owner, kind="stable")
    starts = np.flatnonzero(np.r_[True, np.diff(np.asarray(owner)[order]) != 0])
    return np.split(order, starts[1:])


def whitening(x: np.ndarray, owner: np.ndarray, *, width: int = within.WIDTH, shrink: float = within.SHRINK):
    """A window-level affine map ``(kernel [d, k], bias [k])`` whose mean over a track's windows is the track's
    whitened vector as a store whitens its vectors' mean half (``catalog.within``), fitted on training windows
    ``x`` of tracks ``owner``, and those tracks' whitened vectors ``[tracks, k]`` (in ``track_windows`` order):
    ``(kernel, bias, vectors)``. None when there are too few tracks to fit one."""
    sums = within.WithinScatter(x.shape[1])
    groups = track_windows(owner)
    for rows in groups:
        sums.add(x[rows])
    if sums.tracks < within.MIN_TRACKS:
        return None
    sw = sums.window_std()
    means = np.stack([np.asarray(x[rows], np.float64).mean(axis=0) for rows in groups])
    mu = means.mean(axis=0)
    basis = within.whitening(((means - mu) / sw).astype(np.float32), sums.covariance() / np.outer(sw, sw),
                             width=width, shrink=shrink)
    if basis is None:
        return None
    kernel = basis / sw[:, None]
    return kernel, -mu @ kernel, (means - mu) @ kernel


def with_neighbour_vote(model, x: np.ndarray, y: np.ndarray, owner: np.ndarray, n_classes: int):
    """``model`` (with its track classifier) with the nearest-track vote's layers: ``neighbour_space``, a dense
    layer over each window's features whose mean over a track's windows is its whitened vector
    (:func:`whitening` fitted on the training windows); ``neighbour_vectors``, each training track's whitened
    vector, unit length, as the kernel of a dense layer over that space (its output: a window's inner product
    with each); ``neighbour_labels``, their classes, one-hot, as a dense layer after it. The model's outputs
    are then its own, the per-class sums of those inner products, and the whitened space; ``HeadEncoder`` reads
    the vectors and classes from the layers' weights. ``model`` unchanged when too few tracks to fit."""
    fitted = whitening(x, owner)
    if fitted is None:
        return model
    keras = import_keras()
    L = keras.layers
    kernel, bias, vectors = fitted
    groups = track_windows(owner)
    vectors /= np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    onehot = np.zeros((len(groups), n_classes), np.float32)
    onehot[np.arange(len(groups)), [int(y[rows[0]]) for rows in groups]] = 1.0
    inp = model.inputs[0]
    space = L.Dense(kernel.shape[1], name=NEIGHBOUR_SPACE)
    projected = space(inp)
    space.set_weights([kernel.astype(np.float32), bias.astype(np.float32)])
    near = L.Dense(len(groups), use_bias=False, name=NEIGHBOUR_VECTORS)
    labels = L.Dense(n_classes, use_bias=False, name=NEIGHBOUR_LABELS)
    per_class = labels(near(projected))
    near.set_weights([vectors.T.astype(np.float32)])
    labels.set_weights([onehot])
    return keras.Model(inp, [*model.outputs, per_class, projected], name=NAME)


def vote(vectors: np.ndarray, onehot: np.ndarray, track_vector: np.ndarray) -> np.ndarray:
    """Class probabilities of a track whose whitened vector is ``track_vector``: its ``VOTE_NEIGHBOURS``
    nearest of the training tracks' unit ``vectors`` by cosine, each weighted by exp(cosine / temperature)."""
    norm = float(np.linalg.norm(track_vector))
    if not np.isfinite(norm) or norm == 0:
        return np.full(onehot.shape[1], 1.0 / onehot.shape[1])
    cos = vectors @ (track_vector / norm)
    top = np.argsort(-cos, kind="stable")[:VOTE_NEIGHBOURS]
    w = np.exp((cos[top] - cos[top[0]]) / VOTE_TEMPERATURE)
    return (w / w.sum()) @ onehot[top]


class HeadEncoder(KerasEncoder):
    """musicnn (frozen) followed by a trained head; behaves as any encoder."""

    def __init__(self, head, *, backbone, labels: list[str], embedding_layer: str = "embedding"):
        self.backbone = backbone
        super().__init__(head, name=NAME, frontend=backbone.frontend, labels=labels, embedding_layer=embedding_layer)
        self.track_classifier = len(head.outputs) > 1
        names = {layer.name for layer in head.layers}
        self.neighbours = None  # (training tracks' unit whitened vectors, their classes one-hot)
        if NEIGHBOUR_SPACE in names:
            self.neighbours = (np.asarray(head.get_layer(NEIGHBOUR_VECTORS).get_weights()[0], np.float64).T,
                               np.asarray(head.get_layer(NEIGHBOUR_LABELS).get_weights()[0], np.float64))
        if self.track_classifier:  # window scores: the class probabilities, the track classifier's logits, then
            # (with the vote) the window's whitened vector
            outputs = [head.get_layer(embedding_layer).output, *head.outputs[:2]]
            if self.neighbours is not None:
                outputs.append(head.get_layer(NEIGHBOUR_SPACE).output)
            self._both = import_keras().Model(head.inputs, outputs)
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
        track classifier) its logits, then (with the vote) the whitened space (``track_parts`` reads them)."""
        embs, probs = [], []
        for i in range(0, len(window_features), batch_size):
            e, *p = self._both([window_features[i : i + batch_size]], training=False)
            embs.append(np.asarray(e, np.float32))
            probs.append(np.concatenate([np.asarray(q, np.float32) for q in p], axis=1))
        if not embs:
            width = len(self.labels) * (2 if self.track_classifier else 1)
            width += 0 if self.neighbours is None else self.neighbours[0].shape[1]
            return np.zeros((0, self.dim), np.float32), np.zeros((0, width), np.float32)
        return np.concatenate(embs), np.concatenate(probs)

    def track_parts(self, window_scores: np.ndarray) -> dict[str, np.ndarray]:
        """A track's class probabilities by each of the head's parts: ``windows`` (the mean of its windows'),
        ``regression`` (the track classifier's) and ``vote`` (its nearest training tracks'), those it has."""
        c = len(self.labels)
        parts = {"windows": window_scores[:, :c].mean(axis=0)}
        if self.track_classifier:
            parts["regression"] = softmax(window_scores[:, c : 2 * c].mean(axis=0))
        if self.neighbours is not None:
            vectors, onehot = self.neighbours
            parts["vote"] = vote(vectors, onehot, window_scores[:, 2 * c :].astype(np.float64).mean(axis=0))
        return parts

    def track_scores(self, window_scores: np.ndarray) -> np.ndarray:
        """The mean of the parts' class probabilities (``track_parts``)."""
        if not self.track_classifier:
            return super().track_scores(window_scores)
        return np.mean(list(self.track_parts(window_scores).values()), axis=0)

    def window_probs(self, window_scores: np.ndarray) -> np.ndarray:
        if not self.track_classifier:
            return super().window_probs(window_scores)
        c = len(self.labels)
        return 0.5 * window_scores[:, :c] + 0.5 * softmax(window_scores[:, c : 2 * c], axis=1)

    def encode(self, features: np.ndarray, *, batch_size: int = 128) -> tuple[np.ndarray, np.ndarray]:
        """Log-mel windows ``[n, 96, 187]`` -> (embeddings ``[n, 128]``, window scores: see ``head_outputs``)."""
        window_features, _ = self.backbone.encode(features, batch_size=batch_size)
        return self.head_outputs(window_features)

    @staticmethod
    def summarize(window_embeddings: np.ndarray) -> np.ndarray:
        return l2_normalise(l2_normalise(window_embeddings).mean(axis=0))
