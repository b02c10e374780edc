"""The genre head's parts that need no backbone: members averaged into one model, the track classifier
written as a layer over windows, and the nearest-track vote (its space the store's whitening)."""

from __future__ import annotations

import numpy as np
import pytest

from soundalike.model import head


def _windows(n_tracks: int, n_classes: int, *, dim: int = 8, per_track: int = 5, seed: int = 0):
    """Window features of tracks whose class moves the mean of some dimensions and the spread of others."""
    rng = np.random.default_rng(seed)
    x, y, owner = [], [], []
    for t in range(n_tracks):
        c = t % n_classes
        w = rng.normal(size=(per_track, dim)) * (1 + c * np.eye(dim)[c % dim]) + 0.3 * c
        x.append(w)
        y += [c] * per_track
        owner += [t] * per_track
    return np.concatenate(x).astype(np.float32), np.asarray(y), np.asarray(owner)


def _regression_logits(x, y, owner, tracks):
    """Logistic regression on the tracks' standardised mean and mean absolute deviation from the training
    windows' mean, as the head is meant to carry it."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    x = x.astype(np.float64)
    centre = x.mean(0)
    moments = lambda ts: np.stack([np.r_[x[owner == t].mean(0), np.abs(x[owner == t] - centre).mean(0)]  # noqa: E731
                                   for t in ts])
    train = np.unique(owner)
    scale = StandardScaler().fit(moments(train))
    clf = LogisticRegression(max_iter=5000).fit(scale.transform(moments(train)), [y[owner == t][0] for t in train])
    return clf, clf.decision_function(scale.transform(moments(tracks))), scale.transform(moments(tracks))


@pytest.mark.parametrize("n_classes", [2, 3])
def test_the_track_classifier_layer_averaged_over_a_tracks_windows_gives_the_regressions_logits(n_classes):
    x, y, owner = _windows(12, n_classes)
    model = head.with_track_classifier(head.build(x.shape[1], n_classes + 1, seed=0), x, y, owner, n_classes + 1)
    probs, logits = (np.asarray(o) for o in model(x, training=False))
    assert probs.shape == logits.shape == (len(x), n_classes + 1)
    tracks = np.unique(owner)
    mean = np.stack([logits[owner == t].mean(0) for t in tracks])
    clf, want, features = _regression_logits(x, y, owner, tracks)
    if n_classes == 2:  # scikit-learn gives the second class's logit against the first
        np.testing.assert_allclose(mean[:, 1] - mean[:, 0], want, atol=2e-3)
    else:
        np.testing.assert_allclose(mean[:, :n_classes] - mean[:, :n_classes].mean(1, keepdims=True),
                                   want - want.mean(1, keepdims=True), atol=2e-3)
    assert (mean[:, n_classes] < -25).all()  # the class no training track has: never the regression's answer
    assert (mean.argmax(1) == clf.predict(features)).all()


def test_members_trained_apart_answer_their_mean():
    x, y, _ = _windows(12, 3)
    members = [head.build(x.shape[1], 3, seed=s) for s in range(3)]
    for m in members:
        m.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
        m.fit(x, y, epochs=2, verbose=0)
    joined = head.ensemble(members)
    each = np.stack([np.asarray(m(x, training=False)) for m in members])
    np.testing.assert_allclose(np.asarray(joined(x, training=False)), each.mean(0), atol=1e-5)
    assert joined.get_layer("embedding") is not None and head.ensemble(members[:1]) is members[0]


def _store_whitened(x, owner):
    """The tracks' whitened vectors as a store whitens its vectors' mean half (``catalog.within.fit``)."""
    from soundalike.catalog import indexes, within

    tracks = np.unique(owner)
    sums = within.WithinScatter(x.shape[1])
    for t in tracks:
        sums.add(x[owner == t])
    raw = np.stack([np.r_[x[owner == t].mean(0), x[owner == t].std(0)] for t in tracks])
    fitted = within.fit(indexes.Fitted(raw.mean(0), raw.std(0), None, len(raw)), raw, sums, rotate=False)
    d, k = x.shape[1], min(within.WIDTH, len(tracks) - 1, x.shape[1])
    return ((raw[:, :d] - fitted.mean[:d]) / fitted.std[:d]) @ fitted.basis[:d, :k]


def _unit(v):
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def test_the_vote_space_averaged_over_a_tracks_windows_is_the_stores_whitened_vector():
    x, y, owner = _windows(30, 3, dim=12, per_track=6)
    model = head.with_neighbour_vote(head.with_track_classifier(head.build(12, 3, seed=0), x, y, owner, 3), x, y,
                                     owner, 3)
    probs, logits, per_class, space = (np.asarray(o) for o in model(x, training=False))
    tracks = np.unique(owner)
    mine = _unit(np.stack([space[owner == t].mean(0) for t in tracks]))
    store = _unit(_store_whitened(x, owner))
    np.testing.assert_allclose(mine @ mine.T, store @ store.T, atol=1e-4)  # the same space, cosine for cosine
    # kept in the model: each training track's unit vector in that space, and its class
    vectors = np.asarray(model.get_layer(head.NEIGHBOUR_VECTORS).get_weights()[0]).T
    np.testing.assert_allclose(vectors, mine, atol=1e-4)
    labels = np.asarray(model.get_layer(head.NEIGHBOUR_LABELS).get_weights()[0])
    assert (labels.argmax(1) == [y[owner == t][0] for t in tracks]).all() and (labels.sum(1) == 1).all()


def test_the_vote_weights_nearer_training_tracks_more():
    onehot = np.eye(3)[[0, 0, 1, 1, 2]]
    vectors = _unit(np.array([[1, 0], [0.9, 0.1], [0, 1], [0.1, 0.9], [-1, 0]], float))
    near_first = head.vote(vectors, onehot, np.array([0.95, 0.05]))
    assert near_first.argmax() == 0 and near_first.sum() == pytest.approx(1)
    assert head.vote(vectors, onehot, np.array([0.05, 0.95])).argmax() == 1
    assert head.vote(vectors, onehot, np.array([-3.0, 0.0]))[2] > 0.99  # the length of a vector does not matter
    np.testing.assert_allclose(head.vote(vectors, onehot, np.zeros(2)), 1 / 3)  # no direction: no opinion


def test_too_few_training_tracks_leave_the_head_without_a_vote():
    x, y, owner = _windows(2, 2)
    model = head.with_track_classifier(head.build(x.shape[1], 2, seed=0), x, y, owner, 2)
    assert head.with_neighbour_vote(model, x, y, owner, 2) is model
