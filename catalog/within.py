"""Within-track whitening: the library transform of the default encoder's stores.

A track's raw vector is the mean and the spread (standard deviation) of its windows' features. Songs differ from
each other in some directions of that space, and a song's own windows (its sections, its mix changing) swing
in others; a cosine over standardised means weighs both alike. This transform keeps the directions in which songs
differ and scales down those in which a song differs from itself:

- the mean block is standardised by the windows' own spread per feature, projected on the principal axes of the
  library's track means (at most WIDTH), and there whitened against the covariance of windows about their own
  track's mean, shrunk towards SHRINK times its mean variance (so no direction is blown up from noise);
- the spread block is standardised over tracks and projected on its principal axes (at most SPREAD_WIDTH), then
  scaled so that its mean length is SPREAD_WEIGHT times the mean block's;
- both side by side, unit length: cosine, no rescoring.

It is one linear map after centring, so it lives in the index's own transform (``indexes.Fitted``): a query
costs what it did, and the index is narrower (at most WIDTH + SPREAD_WIDTH wide). It needs no labels, only which
windows belong to one track: the indexer hands every track's window features to the store writer, which keeps
their running sums (:class:`WithinScatter`, one file a generation) for the next fit. A store without them
(repaired from its shards) is standardised as before.

Measured on two corpora of real music with ``benchmarks/track_vectors.py`` (docs/quality.md).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .layout import StoreError
from . import indexes
from .indexes import Fitted

WIDTH = 256  # principal axes of the track means kept, at most
SPREAD_WIDTH = 64  # principal axes of the spread kept, at most
SHRINK = 0.5  # the within-track covariance is shrunk towards this share of its mean variance
SPREAD_WEIGHT = 0.3  # the spread block's mean length, against the mean block's
MAX_TRACKS = 50_000  # tracks whose windows the sums take in; past it, later tracks change nothing
MIN_TRACKS = 3  # fewer tracks (of two windows or more) fit no whitening: the store standardises
FIT_TRACKS = 20_000  # raw vectors the axes are fitted on, at most (of the index build's sample: 320 axes need few)
_FLUSH_ROWS = 2048  # centred windows gathered before one product adds them to the scatter


class WithinScatter:
    """Running sums over the library's windows of the features of each track: the scatter of windows about their
    own track's mean (``[d, d]``, float64), and the sum and sum of squares of every window (for each feature's
    spread over windows). ``d`` is the window width: half the raw vector's (mean and spread)."""

    def __init__(self, dim: int):
        self.dim = int(dim)
        self.tracks = 0
        self.windows = 0
        self.total = np.zeros(self.dim, np.float64)
        self.squares = np.zeros(self.dim, np.float64)
        self.scatter = np.zeros((self.dim, self.dim), np.float64)
        self._pending: list[np.ndarray] = []
        self._pending_rows = 0
        self.dirty = False

    @property
    def full(self) -> bool:
        return self.tracks >= MAX_TRACKS

    def add(self, windows: np.ndarray) -> None:
        """One track's window features ``[n, d]`` (a track of fewer than two windows adds nothing)."""
        w = np.asarray(windows, np.float64)
        if w.ndim != 2 or w.shape[1] != self.dim:
            raise ValueError(f"window features of width {w.shape[-1]}, not {self.dim}")
        if len(w) < 2 or self.full or not np.isfinite(w).all():
            return
        self.tracks += 1
        self.windows += len(w)
        self.total += w.sum(axis=0)
        self.squares += np.einsum("ij,ij->j", w, w)
        self._pending.append(w - w.mean(axis=0))
        self._pending_rows += len(w)
        self.dirty = True
        if self._pending_rows >= _FLUSH_ROWS:
            self._flush()

    def _flush(self) -> None:
        if self._pending:
            c = np.concatenate(self._pending)
            self.scatter += c.T @ c
            self._pending, self._pending_rows = [], 0

    def window_std(self) -> np.ndarray:
        """Each feature's standard deviation over every window taken in (1 where it does not vary)."""
        n = max(self.windows, 1)
        var = np.maximum(self.squares / n - np.square(self.total / n), 0)
        sd = np.sqrt(var)
        return np.where(sd < 1e-6, 1.0, sd)

    def covariance(self) -> np.ndarray:
        """The covariance of windows about their own track's mean ``[d, d]``."""
        self._flush()
        return self.scatter / max(self.windows, 1)

    def save(self, f) -> None:
        self._flush()
        np.savez(f, scatter=self.scatter, total=self.total, squares=self.squares,
                 counts=np.array([self.tracks, self.windows], np.int64))

    @classmethod
    def load(cls, p: Path, dim: int) -> "WithinScatter":
        """The sums saved at ``p``; a StoreError naming the file when it cannot be read or does not fit."""
        out = cls(dim)
        try:
            with np.load(p) as z:
                out.scatter, out.total, out.squares = z["scatter"], z["total"], z["squares"]
                out.tracks, out.windows = (int(v) for v in z["counts"])
        except Exception as err:
            raise StoreError(f"{p}: unreadable within-track sums ({type(err).__name__}: {err})") from None
        if out.scatter.shape != (dim, dim) or out.total.shape != (dim,) or out.squares.shape != (dim,):
            raise StoreError(f"{p}: within-track sums of width {out.total.shape[0]}, not {dim}")
        return out


def whitening(zm: np.ndarray, within: np.ndarray, *, width: int = WIDTH, shrink: float = SHRINK) -> np.ndarray | None:
    """The whitening basis ``[d, k]`` for tracks' scaled means ``zm`` ``[n, d]`` (centred, each feature divided by
    its spread over windows) and the within-track covariance of the same scaled features ``[d, d]``: the means'
    ``width`` principal axes (at most n - 1), whitened against the within-track covariance in that subspace,
    shrunk towards its mean eigenvalue by ``shrink``. None when the windows do not vary within tracks."""
    k = min(width, len(zm) - 1, zm.shape[1])
    axes = indexes.principal_axes(zm, k)[0].astype(np.float64)
    lam, e = np.linalg.eigh(axes.T @ within @ axes)
    lam = np.maximum(lam, 0)
    if lam.mean() <= 0:
        return None
    return axes @ (e / np.sqrt(lam + shrink * lam.mean()))


def fit(standardised: Fitted, sample: np.ndarray, sums: WithinScatter, *, width: int = WIDTH,
        spread_width: int = SPREAD_WIDTH, shrink: float = SHRINK, weight: float = SPREAD_WEIGHT,
        rotate: bool = True) -> Fitted | None:
    """The whitening transform from the library's standardisation (its mean is the centre), a sample of raw
    vectors ``[n, 2d]`` (mean, then spread; NaN where unmeasured) and the within-track sums; None when they are
    too few to fit one (the store then keeps the standardisation).

    ``rotate``: then a fixed random rotation, as after the standardised transform's PCA: it changes no inner
    product, only what 8-bit codes see. The whitened axes still hold unequal shares of the variance (the dev
    corpora's decay as i^-0.9), and at a million tracks the inverted lists' codes without it found 0.96 of the
    exact neighbours even probing every list, so reaching 0.95 took 384 of 2048 lists (8.9 ms a query)."""
    d = sums.dim
    if sample.shape[1] != 2 * d:
        raise ValueError(f"raw vectors of width {sample.shape[1]}: the within-track sums are for {2 * d}")
    if len(sample) > FIT_TRACKS:  # (the sample is uniform already: its first rows are as good as any)
        sample = sample[:FIT_TRACKS]
    n = len(sample)
    if sums.tracks < MIN_TRACKS or n < MIN_TRACKS:
        return None
    mean = np.asarray(standardised.mean, np.float32)
    sw = sums.window_std()
    ss = np.asarray(standardised.std, np.float32)[d:]
    zm = np.nan_to_num((np.asarray(sample[:, :d], np.float32) - mean[:d]) / sw.astype(np.float32))
    zs = np.nan_to_num((np.asarray(sample[:, d:], np.float32) - mean[d:]) / ss)
    ks = min(spread_width, n - 1, d)
    whiten = whitening(zm, sums.covariance() / np.outer(sw, sw), width=width, shrink=shrink)
    if whiten is None:
        return None
    k = whiten.shape[1]
    spread_axes = indexes.principal_axes(zs, ks)[0].astype(np.float64)
    a, b = zm @ whiten.astype(np.float32), zs @ spread_axes.astype(np.float32)
    scale = weight * np.sqrt(np.square(a).sum(axis=1).mean() / max(np.square(b).sum(axis=1).mean(), 1e-30))
    basis = np.zeros((2 * d, k + ks), np.float64)
    basis[:d, :k] = whiten
    basis[d:, k:] = scale * spread_axes
    if rotate:
        basis = basis @ indexes.rotation(k + ks)
    std = np.concatenate([sw.astype(np.float32), ss])
    return Fitted(standardised.mean, std, np.ascontiguousarray(basis, dtype=np.float32), standardised.fitted_on)
