"""The musicnn port against the original TF1 graph (golden outputs made by tests/golden/make_musicnn_golden.py)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from model import musicnn

GOLDEN = Path(__file__).parent / "golden" / "musicnn_golden.npz"
TOLERANCE = {"taggram": 1e-4, "logits": 1e-4, "penultimate": 1e-4, "mean_pool": 1e-3, "max_pool": 1e-3}


@pytest.fixture(scope="module")
def golden():
    with np.load(GOLDEN) as z:
        return {k: z[k] for k in z.files}


@pytest.mark.parametrize("variant", ["MSD_musicnn", "MTT_musicnn"])
def test_port_matches_the_original_graph(golden, variant):
    net = musicnn.load(variant)
    outputs = dict(zip(["taggram", "logits", "penultimate", "mean_pool", "max_pool"],
                       [np.asarray(o) for o in net(golden["inputs"], training=False)]))
    for name, tol in TOLERANCE.items():
        ref = golden[f"{variant}/{name}"]
        assert outputs[name].shape == ref.shape
        diff = float(np.max(np.abs(outputs[name] - ref)))
        assert diff <= tol, f"{variant} {name}: max abs difference {diff:.2e} > {tol}"


def test_front_end_reproduces_the_reference_inputs(golden):
    fe = musicnn.frontend()
    feats = fe.features(golden["audio"])  # [n, mels, frames]
    np.testing.assert_allclose(np.transpose(feats, (0, 2, 1)), golden["inputs"], atol=1e-4)


def test_encoder_vectors_tags_and_fingerprint(golden):
    enc = musicnn.MusicnnEncoder("MSD_musicnn", n_windows=4)
    feats = np.transpose(golden["inputs"], (0, 2, 1))
    window_feats, tags = enc.encode(feats)
    np.testing.assert_allclose(window_feats, golden["MSD_musicnn/mean_pool"], atol=1e-3)
    np.testing.assert_allclose(tags, golden["MSD_musicnn/taggram"], atol=1e-4)
    vec = enc.summarize(window_feats)
    assert vec.shape == (enc.dim,) == (1506,)
    genre, score, top, scores = enc.predicted(tags[2])  # the rhythm patch
    assert genre in musicnn.GENRE_TAGS["MSD_musicnn"] and top[0] in musicnn.MSD_LABELS and scores == sorted(scores, reverse=True)
    # the fingerprint covers the window count (a front-end parameter) and the weights (another model)
    assert musicnn.MusicnnEncoder("MSD_musicnn", n_windows=8).fingerprint != enc.fingerprint
    assert musicnn.MusicnnEncoder("MTT_musicnn", n_windows=4).fingerprint != enc.fingerprint
    assert musicnn.MusicnnEncoder("MSD_musicnn", n_windows=4).fingerprint == enc.fingerprint


def test_missing_weights_name_the_install_command(monkeypatch):
    import importlib.util

    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(musicnn.WeightsMissing, match="pip install --no-deps musicnn==0.1.0"):
        musicnn.checkpoint_prefix("MSD_musicnn")


def test_golden_file_records_how_it_was_made(golden):
    meta = json.loads(str(golden["meta"]))
    assert "tensorflow" in json.dumps(meta)
