"""Within-track whitening (``catalog.within``), the library transform of the default encoder's stores: the
running sums over the library's windows, the fit, and a store that keeps the sums commit by commit, whitens
its index with them, and falls back to standardising without them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from soundalike.catalog import within
from soundalike.catalog.indexes import Moments, fit
from soundalike.catalog.layout import read_manifest
from soundalike.catalog.store import Store, StoreWriter
from soundalike.catalog.track import Track

D = 40  # window width: the raw vector is mean and spread, 80
GROUPS = np.repeat(np.arange(4), 12)


def songs(seed: int = 0, groups=GROUPS) -> list[np.ndarray]:
    """Windows ``[16, D]`` of songs of 4 groups that differ along 3 directions, while each song's own windows
    swing far more along 5 others (its sections): enough that the swing survives in the songs' means, and
    standardising makes every direction weigh the same."""
    rng = np.random.default_rng(seed)
    centres = np.zeros((4, D))
    centres[:, :3] = 1.5 * np.array([[1, 1, 1], [1, -1, -1], [-1, 1, -1], [-1, -1, 1]])
    out = []
    for g in groups:
        swing = np.zeros((16, D))
        swing[:, 3:8] = rng.normal(0, 8.0, (16, 5))
        out.append(centres[g] + rng.normal(0, 0.15, D) + swing + rng.normal(0, 0.1, (16, D)))
    return out


def raw_of(windows: list[np.ndarray]) -> np.ndarray:
    return np.array([np.concatenate([w.mean(axis=0), w.std(axis=0)]) for w in windows], np.float32)


def precision_at_5(v: np.ndarray, groups=GROUPS) -> float:
    s = v @ v.T
    np.fill_diagonal(s, -np.inf)
    top = np.argsort(-s, axis=1)[:, :5]
    return float((groups[top] == groups[:, None]).mean())


def through(fitted, raw: np.ndarray) -> np.ndarray:
    z = (raw - fitted.mean) / fitted.std
    z = z @ fitted.basis if fitted.basis is not None else z
    return z / np.linalg.norm(z, axis=1, keepdims=True)


def test_whitening_finds_groups_that_the_standardised_vector_misses():
    windows = songs()
    raw = raw_of(windows)
    sums = within.WithinScatter(D)
    for w in windows:
        sums.add(w)
    moments = Moments(2 * D)
    moments.add(raw)
    standardised = fit("standardize", moments, raw, len(raw), widths=())
    whitened = within.fit(standardised, raw, sums)
    assert whitened is not None and whitened.basis.shape == (2 * D, D + D)  # every axis (48 songs span 40)
    assert precision_at_5(through(whitened, raw)) >= 0.95 > 0.7 > precision_at_5(through(standardised, raw))
    # the rotation after it changes no inner product
    plain = within.fit(standardised, raw, sums, rotate=False)
    np.testing.assert_allclose(through(plain, raw) @ through(plain, raw).T,
                               through(whitened, raw) @ through(whitened, raw).T, atol=1e-4)
    # the spread block holds SPREAD_WEIGHT of the mean block's length on average
    whitened = plain
    z = (raw - whitened.mean) / whitened.std
    a, b = z[:, :D] @ whitened.basis[:D, :D], z[:, D:] @ whitened.basis[D:, D:]
    ratio = np.sqrt(np.square(b).sum(1).mean() / np.square(a).sum(1).mean())
    assert ratio == pytest.approx(within.SPREAD_WEIGHT, rel=1e-3)
    # too few songs fit nothing: the store keeps its standardisation
    few = within.WithinScatter(D)
    for w in windows[:2]:
        few.add(w)
    assert within.fit(standardised, raw[:2], few) is None


def test_the_sums_are_the_covariance_about_each_track_and_survive_a_save(tmp_path):
    windows = songs(1)[:10]
    sums = within.WithinScatter(D)
    for w in windows:
        sums.add(w)
    sums.add(np.ones((1, D)))  # one window: no spread about its own mean, nothing added
    sums.add(np.full((4, D), np.nan))  # unmeasured: nothing added
    resid = np.vstack([w - w.mean(axis=0) for w in windows])
    assert sums.tracks == 10 and sums.windows == 160
    assert np.allclose(sums.covariance(), resid.T @ resid / 160)
    assert np.allclose(sums.window_std(), np.vstack(windows).std(axis=0))
    with open(tmp_path / "w.npz", "wb") as f:
        sums.save(f)
    back = within.WithinScatter.load(tmp_path / "w.npz", D)
    assert (back.tracks, back.windows) == (10, 160) and np.allclose(back.covariance(), sums.covariance())
    with pytest.raises(Exception, match="w.npz: within-track sums of width 40, not 12"):
        within.WithinScatter.load(tmp_path / "w.npz", 12)
    (tmp_path / "bad.npz").write_bytes(b"not numpy")
    with pytest.raises(Exception, match="bad.npz: unreadable within-track sums"):
        within.WithinScatter.load(tmp_path / "bad.npz", D)
    with pytest.raises(ValueError, match="width 5"):
        sums.add(np.zeros((3, 5)))


def test_the_sums_stop_taking_tracks_past_their_cap(monkeypatch):
    monkeypatch.setattr(within, "MAX_TRACKS", 3)
    sums = within.WithinScatter(D)
    for w in songs(2)[:5]:
        sums.add(w)
    assert sums.tracks == 3 and sums.windows == 48


ENC = {"name": "synthetic", "fingerprint": "synthetic-within", "dim": 2 * D, "labels": [], "transform": "whiten",
       "rescore": None}


def write(store: Path, windows: list[np.ndarray], start: int = 0, *, features: bool = True, refit: bool = False):
    raw = raw_of(windows)
    with StoreWriter(store, encoder=ENC) as w:
        for j in range(start, len(windows)):
            p = f"/music/{j:04d}.flac"
            w.put(Track(id=w.id_for(p), path=p, size=1, mtime=1.0), raw[j],
                  features=windows[j].astype(np.float32) if features else None)
        w.commit(refit=refit)


def nearest_groups(store: Path, windows: list[np.ndarray]) -> float:
    """Precision@5 of the store's own index, each track querying by its raw vector."""
    s = Store(store)
    index = s.index()
    hits = []
    raw = raw_of(windows)
    for j in range(len(windows)):
        _, ids = index.search(index.embed(raw[j : j + 1]), 6)
        ids = [int(i) for i in ids[0] if i != j][:5]
        hits.append(np.mean(GROUPS[ids] == GROUPS[j]))
    return float(np.mean(hits))


def test_a_store_whitens_with_the_sums_it_keeps(tmp_path):
    windows = songs(3)
    store = tmp_path / "lib.soundalike"
    write(store, windows[:30])
    m = read_manifest(store)
    assert m["transform"]["kind"] == "whiten" and m["within"]["tracks"] == 30
    assert (store / m["within"]["file"]).is_file()
    assert Store(store).index().width == 29 + 29  # the axes 30 tracks span, for the means and for the spread
    # more tracks: the sums grow, the old file goes, and a refit whitens with all of them
    write(store, windows, start=30, refit=True)
    m2 = read_manifest(store)
    assert m2["within"]["tracks"] == 48 and m2["within"]["file"] != m["within"]["file"]
    assert m2["transform"]["kind"] == "whiten" and m2["transform"]["fitted_on"] == 48
    assert nearest_groups(store, windows) >= 0.95
    # info says what the store was whitened with
    from click.testing import CliRunner

    from soundalike.cli import main

    out = CliRunner().invoke(main, ["info", "--db", str(store)]).output
    assert "transform whiten fitted on 48 tracks" in out and "within-track sums over the windows of 48 tracks" in out


def test_a_store_without_sums_standardises(tmp_path):
    windows = songs(4)
    store = tmp_path / "plain.soundalike"
    write(store, windows, features=False)
    m = read_manifest(store)
    assert m["transform"]["kind"] == "standardize" and "within" not in m
    assert Store(store).index().width == 2 * D
    # the planted swing wins there: what the whitening is for
    assert nearest_groups(store, windows) < 0.7
