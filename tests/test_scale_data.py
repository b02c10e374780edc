"""The scale benchmark's libraries (benchmarks/scale_data.py): planted copies are copies, the two shapes differ
as they claim, and synthetic windows keep the statistics of the windows they were drawn from."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import scale_data  # noqa: E402
from scale_data import COPY_EVERY, MusicLike, WindowLike, is_copy_row  # noqa: E402

from soundalike.catalog import indexes  # noqa: E402


def standardised(x: np.ndarray) -> np.ndarray:
    m = indexes.Moments(x.shape[1])
    m.add(x)
    return indexes.standardize(x, *m.result())


def test_planted_copies_are_copies_and_the_floor_shape_is_flatter():
    n = 2 * COPY_EVERY
    shares = {}
    for shape in ("music", "floor"):
        z = standardised(MusicLike(n, dim=640, shape=shape).chunk(0, n))
        copies = np.flatnonzero(is_copy_row(np.arange(n)))
        assert len(copies) == 2
        for j in copies:
            others = np.delete(z @ z[j], [j, j - 1])
            assert z[j] @ z[j - 1] > 0.93 and z[j] @ z[j - 1] > others.max()  # nearer its original than anything
        _, share = indexes.principal_axes(z, 256)
        shares[shape] = share.sum()
    assert shares["music"] > 0.95 and shares["floor"] < shares["music"] - 0.05  # 256 dimensions hold less of it


def test_synthetic_windows_keep_the_real_windows_statistics():
    rng = np.random.default_rng(0)
    owners = np.repeat(np.arange(60), 16)
    centres = rng.standard_normal((60, 48)) * 2
    real = (centres[owners] + rng.standard_normal((len(owners), 48)) + 5).astype(np.float32)
    like = WindowLike(real, owners)
    fake = like.chunk(0, 400).astype(np.float32)  # [400 tracks, 16 windows, 48]
    flat = fake.reshape(-1, 48)
    np.testing.assert_allclose(flat.mean(0), real.mean(0), atol=0.4)
    np.testing.assert_allclose(flat.std(0), real.std(0), rtol=0.2)
    # windows of one track lie nearer each other than windows of two tracks, as the real ones do
    within = np.mean([np.linalg.norm(f - f.mean(0), axis=1).mean() for f in fake])
    between = np.linalg.norm(fake.mean(1) - flat.mean(0), axis=1).mean()
    real_within = np.mean([np.linalg.norm(real[owners == t] - real[owners == t].mean(0), axis=1).mean() for t in range(60)])
    assert within < between and abs(within - real_within) < 0.2 * real_within


def test_a_library_of_the_default_encoder_is_whitened_within_tracks(tmp_path, monkeypatch):
    """The default's stores: raw vectors of mean and spread, window features for the within-track sums (the
    first WITHIN_TRACKS tracks), and the index built through the whitening."""
    from soundalike.catalog.check import reindex
    from soundalike.catalog.store import Store

    monkeypatch.setattr(scale_data, "WITHIN_TRACKS", 120)
    data, spread = MusicLike(300, dim=scale_data.DIM), MusicLike(300, dim=scale_data.DIM, seed=101)
    raw, feats = scale_data.spread_of(data, spread, 100, 200)
    assert raw.shape == (100, 2 * scale_data.DIM) and np.allclose(raw[:, : scale_data.DIM], data.chunk(100, 200))
    assert all(f.shape == (16, scale_data.DIM) for f in feats[:20]) and all(f is None for f in feats[20:])
    held = scale_data.write_store(tmp_path / "w.soundalike", 300)
    assert held["synthetic"] == 300
    reindex(tmp_path / "w.soundalike")
    s = Store(tmp_path / "w.soundalike")
    assert s.manifest["within"]["tracks"] == 120 and s.manifest["transform"]["kind"] == "whiten"
    assert s.index().width == 256 + 64 and s.dim == 2 * scale_data.DIM
