"""Filters over one generation's searchable tracks: genre (the files' tags, the encoder's prediction, or
either), excluded ids and artists, estimated tempo and key; and the id bitmaps FAISS filters with
(``IDSelectorBitmap``), the recent ones kept for the next query with the same filter.

A :class:`TrackFilters` belongs to one searcher (one generation); its caches fill on first use and are safe to
share between the threads of a service.
"""

from __future__ import annotations

import threading

import numpy as np

from ..catalog.memo import Memo
from ..catalog.tags import normalise_genre
from ..catalog.track import codes_np, floats_np
from .errors import QueryError

GENRE_SOURCES = {"tags": "genre", "predicted": "predicted_genre"}
#: filters whose bitmaps are kept (a bitmap over a million ids costs milliseconds to build)
KEPT_BITMAPS = 16


def _sources(source: str) -> list[str]:
    if source == "any":
        return list(GENRE_SOURCES)
    if source not in GENRE_SOURCES:
        raise QueryError(f"genre source must be tags, predicted or any, not {source!r}")
    return [source]


class _Codes:
    """A text column as integer codes: a mask for a set of values is one vectorised comparison."""

    def __init__(self, column, rows: np.ndarray):
        """``column``: an Arrow string column (nulls and empty strings have no code), of which ``rows`` count."""
        codes, names = codes_np(column)
        self.codes = codes[rows]
        self.code = {n: i for i, n in enumerate(names) if n}
        counts = np.bincount(self.codes[self.codes >= 0], minlength=len(names)) if len(names) else []
        self.counts = {n: int(c) for n, c in zip(names, counts) if n}

    def mask(self, wanted) -> np.ndarray:
        return np.isin(self.codes, [self.code[w] for w in wanted if w in self.code])


class TrackFilters:
    """Masks over the searchable tracks of a store (``ids``: their ids, ``rows``: their rows in the track table
    ``table``, whose other columns are read from ``store`` when first needed)."""

    def __init__(self, store, table, rows: np.ndarray, ids: np.ndarray):
        self.store, self._table, self._rows, self._ids = store, table, rows, ids
        self.id_space = int(ids.max()) + 1 if len(ids) else 0
        # genres and keys as integer codes, tempo as numbers: built on the first filter or listing that needs them
        self._columns = Memo()
        self._bitmaps: dict[tuple, tuple[np.ndarray, int]] = {}  # recent filters' bitmaps
        self._lock = threading.Lock()

    def values(self, column: str) -> list:
        """One column's values for the searchable tracks, in the order of ``ids``."""
        values = (self._table if column in self._table.column_names else self.store).column(column).to_pylist()
        return [values[r] for r in self._rows.tolist()]

    def genres(self, source: str = "tags") -> dict[str, int]:
        """Genre -> number of searchable tracks, most common first, from tags, predictions or ``any``."""
        counts: dict[str, int] = {}
        for src in _sources(source):
            for g in self._genres_of(src).counts:
                counts[g] = int(self._genre_mask([g], source).sum())
        return dict(sorted(counts.items(), key=lambda gc: (-gc[1], gc[0])))

    def _genres_of(self, src: str) -> "_Codes":
        """A genre source's codes over the searchable tracks (a query without a genre filter never needs them)."""
        def codes():
            col = GENRE_SOURCES[src]
            column = self._table.column(col) if col in self._table.column_names else self.store.column(col)
            return _Codes(column, self._rows)

        return self._columns.get(src, codes)

    def _genre_mask(self, wanted, source: str) -> np.ndarray:
        m = np.zeros(len(self._ids), dtype=bool)
        for src in _sources(source):
            m |= self._genres_of(src).mask(wanted)
        return m

    def mask(self, *, genres=None, genre_source: str = "tags", exclude_ids=(), exclude_artists=()) -> np.ndarray:
        """Boolean mask over searchable tracks (aligned with ``self._ids``) for the given filters.

        ``genre_source``: ``tags`` (the files' genre tags), ``predicted`` (the encoder's best genre for each
        track) or ``any`` (either)."""
        m = np.ones(len(self._ids), dtype=bool)
        if genres:
            wanted = {normalise_genre(g) for g in genres}
            known = set().union(*(self._genres_of(src).counts for src in _sources(genre_source)))
            unknown = sorted(str(g) for g in wanted if g not in known)
            if unknown:
                shown = ", ".join(list(self.genres(genre_source))[:12]) or "none"
                raise QueryError(f"unknown genre {', '.join(unknown)} (genres from {genre_source} in this store: {shown})")
            m &= self._genre_mask(wanted, genre_source)
        if len(exclude_ids):
            m &= ~np.isin(self._ids, np.asarray(list(exclude_ids), dtype=np.int64))
        artists = {a.casefold() for a in exclude_artists if a}
        if artists:
            m &= np.asarray([(a or "").casefold() not in artists for a in self.values("artist")], dtype=bool)
        return m

    def music_mask(self, *, bpm: tuple[float, float] | None = None, keys=None) -> np.ndarray:
        """Mask over searchable tracks (aligned with ``self._ids``): estimated tempo within ``bpm`` (low, high;
        inclusive) and key among ``keys`` (any spelling ``model.keytempo.parse_key`` reads). Tracks without an
        estimate pass neither filter."""
        from ..model.keytempo import parse_key

        m = np.ones(len(self._ids), dtype=bool)
        if bpm is not None:
            lo, hi = bpm
            tempo = self._columns.get("bpm", lambda: floats_np(self.store.column("bpm"))[self._rows])
            if len(tempo) and np.isnan(tempo).all():
                raise QueryError(f"{self.store.path}: no tempo stored (tracks indexed before tempo and key were "
                                 f"estimated; 'soundalike index DIR --db STORE --force' analyses them again)")
            with np.errstate(invalid="ignore"):
                m &= (tempo >= lo) & (tempo <= hi)
        if keys:
            try:
                wanted = {parse_key(k) for k in keys}
            except ValueError as err:
                raise QueryError(str(err)) from None
            codes = self._columns.get("key", lambda: _Codes(self.store.column("key"), self._rows))
            if len(self._ids) and not codes.counts:
                raise QueryError(f"{self.store.path}: no keys stored (tracks indexed before tempo and key were "
                                 f"estimated; 'soundalike index DIR --db STORE --force' analyses them again)")
            m &= codes.mask(wanted)
        return m

    def packed(self, mask: np.ndarray) -> tuple[np.ndarray, int]:
        """A mask over searchable tracks as an id bitmap for ``IDSelectorBitmap``, and how many it selects."""
        bits = np.zeros(self.id_space, dtype=bool)
        bits[self._ids[mask]] = True
        return np.packbits(bits, bitorder="little"), int(mask.sum())


    def bitmap(self, genres, genre_source: str, exclude_artists) -> tuple[np.ndarray, int]:
        """The bitmap of a genre and artist filter, kept for the next query with the same filter."""
        key = (tuple(sorted(genres or ())), genre_source, tuple(sorted({a.casefold() for a in exclude_artists if a})))
        with self._lock:
            packed = self._bitmaps.get(key)
        if packed is None:
            packed = self.packed(self.mask(genres=genres, genre_source=genre_source, exclude_artists=exclude_artists))
            with self._lock:
                while len(self._bitmaps) >= KEPT_BITMAPS:
                    self._bitmaps.pop(next(iter(self._bitmaps)))
                self._bitmaps[key] = packed
        return packed
