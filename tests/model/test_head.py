"""The genre head's parts that need no backbone: members averaged into one model, and the track classifier
written as a layer over windows."""

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
