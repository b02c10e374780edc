"""The libraries ``scale.py`` measures: music-like track vectors, window features with real windows' statistics,
planted copies, and real tracks inside.

Track vectors (``MusicLike``) are a Gaussian mixture whose standardised spectrum follows the dev corpus's
(eigenvalues ~ i^-1.57), in groups of 20 tracks (an album, a soundtrack) that hold 21% of the variance, then a
mean and a scale per dimension, so that the standardisation matters. Two shapes:

- ``music``: that spectrum in 512 directions, nothing else (the dev corpus's vectors have no floor to speak of);
- ``floor``: the same, plus an isotropic floor holding FLOOR_SHARE of the variance over every dimension: a
  flatter spectrum, which a PCA to a few hundred dimensions cannot hold.

Every COPY_EVERY-th track is a copy of the track before it (another encoding of one recording: its vector and
windows moved by COPY_NOISE of their within-group spread), for ``soundalike dupes`` to find.

Windows (``WindowLike``, with ``--real``): 16 a track, drawn with the statistics of a real store's windows: the
per-dimension mean and spread, and the covariance between tracks and within a track, in the real windows'
top RANK_WINDOWS principal directions (the rest as an isotropic floor of the variance they leave). A synthetic
track is a centre drawn from the between-track covariance (shrunk by BETWEEN_SHRINK towards its mean variance,
so that a million tracks are not confined to the real tracks' span) and 16 windows around it from the within
covariance. The real tracks themselves (``--real``) are written into the library with their own vectors,
windows and tags, so their clips can be searched among the million.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

DIM = 1906  # the default encoder's window features (both musicnn models'); a track: their mean and spread
#: how a library's tracks are stored: ``whiten``, the default (mean and spread, 3812, whitened within tracks:
#: catalog.within), or ``before``, the default before it (the mean, 1906, standardised, ranked by CSLS)
ENCODERS = ("whiten", "before")
WITHIN_TRACKS = 2_000  # tracks whose window features go into the store's within-track sums
SPREAD_SEED = 101  # the spread's mixture: another seed of the same spectrum (``seed + SPREAD_SEED``)
#: a synthetic song's windows swing about its mean along the mixture's directions with variances ~ i^-WITHIN_DECAY,
#: flatter than the songs' own spectrum (i^-1.57): so that the whitened vectors' spectrum decays as the dev corpora's
#: do (eigenvalues 2-100 ~ i^-0.86 on A, i^-0.96 on B; here 0.84 at 0.9 and 1.0 at 0.67). Swings with the songs'
#: own spectrum would whiten to an almost flat one (i^-0.55), which no real library showed, and which inverted
#: lists serve worst.
WITHIN_DECAY = 0.8
GROUP = 20
BETWEEN = 0.21  # share of the variance between groups (corpus A: 0.21, corpus B: 0.38; the harder one)
ALPHA = 1.57  # eigenvalue decay of the standardised track vectors (eigenvalues 2-100: A 1.54, B 1.60)
RANK = 512  # directions the mixture lives in (the rest is a small isotropic floor)
FLOOR_SHARE = 0.10  # the "floor" shape: share of the variance spread evenly over every dimension
SHAPES = ("music", "floor")
SHARD = 10_000
GENRES = [f"genre{i}" for i in range(10)]
COPY_EVERY = 1000  # track j is a copy of track j - 1 when j % COPY_EVERY == COPY_EVERY - 1
COPY_NOISE = 0.12  # a copy's change, as a share of the within-group spread
RANK_WINDOWS = 256
BETWEEN_SHRINK = 0.2
WINDOWS = 16


def is_copy_row(j: np.ndarray) -> np.ndarray:
    return np.asarray(j) % COPY_EVERY == COPY_EVERY - 1


class MusicLike:
    """Chunks of raw track vectors drawn from the mixture (the same seed gives the same library)."""

    def __init__(self, n: int, dim: int = DIM, seed: int = 0, shape: str = "music"):
        if shape not in SHAPES:
            raise ValueError(f"shape {shape!r}: one of {SHAPES}")
        rng = np.random.default_rng(seed)
        self.n, self.dim, self.shape = n, dim, shape
        lam = (1 + np.arange(RANK)) ** -ALPHA
        lam /= lam.sum()
        if shape == "floor":
            lam *= 1 - FLOOR_SHARE
        self.floor = np.sqrt(FLOOR_SHARE / dim) if shape == "floor" else 1e-3 / 30
        self.sd_between = np.sqrt(lam * BETWEEN).astype(np.float32)
        self.sd_within = np.sqrt(lam * (1 - BETWEEN)).astype(np.float32)
        q, _ = np.linalg.qr(rng.standard_normal((dim, RANK)))
        self.basis = q.T.astype(np.float32)  # [RANK, dim], orthonormal rows
        self.mu = rng.normal(0, 2, dim).astype(np.float32)
        self.scale = np.exp(rng.normal(0, 0.5, dim)).astype(np.float32)
        self.seed = seed

    def chunk(self, start: int, stop: int) -> np.ndarray:
        rng = np.random.default_rng([self.seed, start])
        groups = np.arange(start, stop) // GROUP
        uniq = np.unique(groups)
        centres = np.stack([np.random.default_rng([self.seed, 1, int(g)]).standard_normal(RANK) for g in uniq])
        c = centres[np.searchsorted(uniq, groups)].astype(np.float32) * self.sd_between
        w = rng.standard_normal((stop - start, RANK)).astype(np.float32) * self.sd_within
        copies = is_copy_row(np.arange(start, stop))
        copies[0] = False  # (a chunk's first row has no predecessor in it; COPY_EVERY divides the chunk size)
        prev = np.flatnonzero(copies) - 1
        floor = rng.standard_normal((stop - start, self.dim)).astype(np.float32) * self.floor
        w[copies], c[copies] = w[prev] + COPY_NOISE * w[copies], c[prev]
        floor[copies] = floor[prev] + COPY_NOISE * floor[copies]  # (the floor is part of the recording too)
        x = (c + w) @ self.basis + floor
        return (self.mu + self.scale * x * 30).astype(np.float32)


class WindowLike:
    """Window features with a real store's windows' statistics (see the module's text)."""

    def __init__(self, windows: np.ndarray, owners: np.ndarray, seed: int = 0):
        x = np.asarray(windows, np.float32)
        self.dim, self.seed = x.shape[1], seed
        self.mean = x.mean(axis=0)
        self.std = np.maximum(x.std(axis=0), 1e-6)
        z = (x - self.mean) / self.std
        _, inv = np.unique(owners, return_inverse=True)
        centres = np.zeros((inv.max() + 1, self.dim))
        np.add.at(centres, inv, z)
        centres /= np.bincount(inv)[:, None]
        within = z - centres[inv]
        w, v = np.linalg.eigh(np.cov(z, rowvar=False))
        r = min(RANK_WINDOWS, self.dim)
        basis = v[:, np.argsort(w)[::-1][:r]]  # [dim, r]
        between = np.cov(centres @ basis, rowvar=False)
        between = (1 - BETWEEN_SHRINK) * between + BETWEEN_SHRINK * np.trace(between) / r * np.eye(r)
        within_r = np.cov(within @ basis, rowvar=False)
        self.l_between = np.linalg.cholesky(between + 1e-6 * np.eye(r)).T.astype(np.float32)
        self.l_within = np.linalg.cholesky(within_r + 1e-6 * np.eye(r)).T.astype(np.float32)
        left = max(float(np.trace(np.cov(z, rowvar=False)) - np.trace(between) - np.trace(within_r)), 0.0)
        self.floor = np.float32(np.sqrt(left / self.dim))
        self.basis = basis.T.astype(np.float32)  # [r, dim]

    @classmethod
    def of_store(cls, path: Path, seed: int = 0) -> "WindowLike":
        from soundalike.catalog.shards import iter_latest_rows
        from soundalike.catalog.store import Store

        from soundalike.catalog.shards import live_ids

        store = Store.open(path)
        wins, owners = [], []
        for ids, _, windows in iter_latest_rows(store.path, store.manifest["shards"], live_ids(store.tracks)):
            for i, w in zip(ids, windows):
                if w is not None:
                    wins.append(np.asarray(w, np.float32))
                    owners.append(np.full(len(w), i))
        if not wins:
            raise SystemExit(f"{path}: keeps no windows (index it with windows)")
        return cls(np.concatenate(wins), np.concatenate(owners), seed)

    def chunk(self, start: int, stop: int) -> np.ndarray:
        """float16[stop - start, WINDOWS, dim]: the windows of tracks ``start`` .. ``stop``, copies as in
        :class:`MusicLike`."""
        n, r = stop - start, self.basis.shape[0]
        rng = np.random.default_rng([self.seed, 2, start])
        c = rng.standard_normal((n, 1, r), dtype=np.float32) @ self.l_between
        e = rng.standard_normal((n, WINDOWS, r), dtype=np.float32) @ self.l_within
        copies = is_copy_row(np.arange(start, stop))
        copies[0] = False
        prev = np.flatnonzero(copies) - 1
        c[copies], e[copies] = c[prev], e[prev] + COPY_NOISE * e[copies]
        z = (c + e).reshape(-1, r) @ self.basis
        z += rng.standard_normal(z.shape, dtype=np.float32) * self.floor
        return (self.mean + self.std * z).astype(np.float16).reshape(n, WINDOWS, self.dim)


def real_tracks(path: Path):
    """``(tracks, vectors, windows)`` of a real store's live tracks, a shard at a time."""
    from soundalike.catalog.shards import iter_latest_rows
    from soundalike.catalog.store import Store
    from soundalike.catalog.track import from_row

    from soundalike.catalog.shards import live_ids

    store = Store.open(path)
    table = store.tracks
    rows = {int(r["id"]): r for r in table.to_pylist()}
    for ids, vecs, windows in iter_latest_rows(store.path, store.manifest["shards"], live_ids(table)):
        yield [from_row(rows[int(i)]) for i in ids], vecs, windows


def spread_of(data: "MusicLike", spread: "MusicLike", start: int, stop: int) -> tuple[np.ndarray, list]:
    """Raw vectors of the default encoder (mean, then spread: a second mixture, its own spectrum) and, for the
    first WITHIN_TRACKS tracks, 16 window features each around the mean (their swing in the mixture's
    directions, with the spectrum WITHIN_DECAY gives), for the within-track sums."""
    mean = data.chunk(start, stop)
    raw = np.hstack([mean, spread.chunk(start, stop)])
    feats: list = [None] * (stop - start)
    rng = np.random.default_rng([data.seed, 3, start])
    sd = (1 + np.arange(RANK)) ** (-WITHIN_DECAY / 2)
    sd = (sd * np.sqrt(np.sum(data.sd_between**2 + data.sd_within**2) / np.sum(sd**2))).astype(np.float32)
    for j in range(start, min(stop, WITHIN_TRACKS)):
        swing = (rng.standard_normal((WINDOWS, RANK)).astype(np.float32) * sd) @ data.basis
        feats[j - start] = mean[j - start] + data.scale * swing * 30
    return raw, feats


def write_store(path: Path, n: int, seed: int = 0, *, shape: str = "music", real: Path | None = None,
                encoder: str = "whiten") -> dict:
    """Write a library of ``n`` synthetic tracks (and, with ``real``, that store's tracks, and windows for
    every track) as an index run writes it, without an index (``reindex`` builds it). Returns what it holds."""
    from soundalike.catalog.store import Store, StoreWriter
    from soundalike.catalog.track import Track

    data = MusicLike(n, seed=seed, shape=shape)
    whiten = encoder == "whiten"
    spread = MusicLike(n, seed=seed + SPREAD_SEED, shape=shape) if whiten else None
    dim = 2 * DIM if whiten else DIM
    enc = {"name": "bench", "fingerprint": f"bench-{encoder}-{dim}", "dim": dim, "labels": [],
           "transform": "whiten" if whiten else "standardize", "rescore": None if whiten else "csls"}
    wins = None
    if real is not None:
        enc = Store.open(real).encoder_info  # the real encoder: clips are embedded as the real tracks were
        wins = WindowLike.of_store(real, seed)
    held = {"synthetic": n, "copies": int(is_copy_row(np.arange(n)).sum()), "real": 0}
    with StoreWriter(path, encoder=enc) as w:
        for start in range(0, n, SHARD):
            stop = min(n, start + SHARD)
            vecs, feats = spread_of(data, spread, start, stop) if whiten else (data.chunk(start, stop), None)
            feats = feats or [None] * (stop - start)
            windows = wins.chunk(start, stop) if wins is not None else [None] * (stop - start)
            for j, (v, win, f) in enumerate(zip(vecs, windows, feats), start):
                p = f"/music/{GENRES[j % 10]}/album{j // GROUP:06d}/track{j:07d}.flac"
                w.put(Track(id=w.id_for(p), path=p, size=5_000_000, mtime=1.7e9, duration_s=240.0,
                            title=f"Track {j}", artist=f"Artist {j // (GROUP * 5)}", album=f"Album {j // GROUP}",
                            genre=GENRES[j % 10]), v, win, f)
            w.checkpoint()  # a shard and a Parquet part: no index yet
        if real is not None:
            for tracks, vecs, windows in real_tracks(real):
                for t, v, win in zip(tracks, vecs, windows):
                    w.put(dataclasses.replace(t, id=w.id_for(t.path)), v, win)
                    held["real"] += 1
            w.checkpoint()
    return held
