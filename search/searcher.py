"""Answering "what sounds like this" over one store.

Filters (genre, artist exclusion, the query itself, any boolean mask over the catalog) are applied inside
FAISS through ``SearchParameters(sel=IDSelectorBitmap(...))``, so a rare genre still returns ``k`` results
when it has them. A query for a track already in the store reads its stored vector: no TensorFlow. An
outside file is embedded with the store's own encoder artefact, loaded once and kept.
"""

from __future__ import annotations

import dataclasses
import os

import numpy as np

from ..catalog.memo import Memo
from ..catalog.store import Store, StoreError
from ..catalog.track import FIELDS, HIT_FIELDS, REQUIRED, equals_np, ints_np, make_record
from .errors import QueryError, UnknownTrack
from .excerpt import rank_excerpt
from .filters import TrackFilters
from .outside import OutsideAudio
from .rescore import Rescorer, overfetch

__all__ = ["Hit", "QueryError", "Searcher", "UnknownTrack", "m3u"]


TAG_SHARE = 0.10  # --tag with a seed: the seed's neighbours among this share of the library highest on the tags


def _same_bytes(a: str, b: str, chunk: int = 1 << 20) -> bool:
    """Whether two files of the same size hold the same bytes (False when either cannot be read)."""
    try:
        with open(a, "rb") as fa, open(b, "rb") as fb:
            while True:
                x, y = fa.read(chunk), fb.read(chunk)
                if x != y:
                    return False
                if not x:
                    return True
    except OSError:
        return False


def m3u(hits, relative_to: str | os.PathLike | None = None) -> str:
    """An extended M3U playlist of ``hits`` (``#EXTINF`` with duration and artist - title, then the path; paths
    relative to the folder ``relative_to`` when given, as a playlist file kept beside the music wants)."""
    lines = ["#EXTM3U"]
    for h in hits:
        name = " - ".join(x for x in (h.artist, h.title) if x) or os.path.basename(h.path)
        lines.append(f"#EXTINF:{int(round(h.duration_s or -1))},{name}")
        lines.append(os.path.relpath(h.path, relative_to) if relative_to is not None else h.path)
    return "\n".join(lines) + "\n"




#: a search result's fields: its id and score, the track fields shown with results (``catalog.track.FIELDS``,
#: ``hit=True``; the time a file went missing shows as ``missing``), the copies collapsed into it, and where an
#: excerpt matched
Hit = make_record("Hit", "One search result (its fields: the track fields shown with results, and the score).", [
    ("id", int, REQUIRED), ("score", float, REQUIRED), ("path", str, REQUIRED),
    *((f.name, f.py, None) for f in FIELDS if f.hit and f.name not in ("id", "path", "missing_since")),
    ("missing", bool, False),  # the file was out of reach at the last index run (its vector is still searchable)
    ("copies", list, []),  # near-duplicates collapsed into this result
    ("at_s", "float | None", None),  # excerpt search: where in the track the clip matched best (seconds)
], module=__name__, methods={"to_dict": lambda self: dataclasses.asdict(self)})


def similarity(cosine: float) -> float:
    """A cosine as the similarity players are given (OpenSubsonic's ``sonicSimilarity``): 1.0 for the same
    song down to 0.0 for the most different, (1 + cosine) / 2, four decimals."""
    return round(max(0.0, min(1.0, (1.0 + float(cosine)) / 2.0)), 4)


def ranked_similarities(hits) -> list[float]:
    """The hits' similarities, best first as they are ranked: hub-aware ranking (CSLS) may rank a track of a
    slightly higher cosine below another, and its similarity is then shown as the one above it."""
    out: list[float] = []
    for h in hits:
        out.append(min(similarity(h.score), out[-1]) if out else similarity(h.score))
    return out


def _number(v) -> float | None:
    """A stored float as a Python float; a null or NaN as None."""
    return None if v is None or v != v else float(v)


class Searcher:
    """Search over one committed generation of a store: a snapshot, never changed once made. It keeps answering
    from its generation however many commits a writer makes later; :meth:`refreshed` gives a new searcher of
    the newest (``search.current.Current`` does that for a service).

    What it reads on first use (columns, filter codes, the window index, the encoder) is made once and shared
    (``catalog.memo``), so one searcher serves the threads of a service; its answers are values (hits), never
    left on the searcher."""

    #: the track columns a searcher reads (the others, e.g. predicted tags, stay on disk)
    COLUMNS = ["id"]  # (and the status; genres are read on the first genre filter)
    DICTIONARY = ("status", "genre", "predicted_genre")  # read as codes, as Parquet keeps them
    #: read for the hits only, from the row groups that hold them
    HIT_COLUMNS = HIT_FIELDS

    #: candidates a hub-aware ranking takes from the index by cosine (at least; twice k when k is larger) and
    #: orders by CSLS. On the dev corpora every query's exact CSLS top ten lay within its 45 nearest by cosine;
    #: one search of 256 costs what one of 10 does on a flat scan, and little more through inverted lists.
    RESCORE_POOL = 256

    def __init__(self, store: Store | str | os.PathLike, *, rescore: bool = True):
        self.store = (store.load() if isinstance(store, Store) else
                      Store.open(store, columns=self.COLUMNS, dictionary=self.DICTIONARY))
        # the searchable tracks stay Arrow columns as stored (rows become Python objects only for the hits
        # returned; no filtering or taking, which would import Arrow's compute module into a cold query)
        t, _ = self.store.track_rows()
        self._table = t
        self._rows = self.store.live_rows()  # searchable position -> table row
        self._ids = ints_np(t.column("id"))[self._rows]
        # (a base table is written in id order: no sort of a million ids when they already are)
        self._order = (np.arange(len(self._ids)) if len(self._ids) < 2 or bool(np.all(self._ids[1:] > self._ids[:-1]))
                       else np.argsort(self._ids, kind="stable"))
        self._sorted_ids = self._ids[self._order]
        self.filters = TrackFilters(self.store, t, self._rows, self._ids)
        self.outside = OutsideAudio(self.store)
        self._nprobe_filtered = self.store.index_infos().get("nprobe_filtered")
        self._tag_scores = Memo()  # the predicted tag scores, read on the first search by tag
        #: rank by CSLS where the store keeps neighbourhoods (catalog.neighbours); False: by plain cosine
        self.rescore = rescore

    def values(self, column: str) -> list:
        """One column's values for the searchable tracks, in the order of :attr:`ids`."""
        return self.filters.values(column)

    def genres(self, source: str = "tags") -> dict[str, int]:
        """Genre -> number of searchable tracks, most common first, from tags, predictions or ``any``."""
        return self.filters.genres(source)

    def mask(self, **filters) -> np.ndarray:
        """Boolean mask over the searchable tracks (:meth:`TrackFilters.mask`)."""
        return self.filters.mask(**filters)

    def music_mask(self, **filters) -> np.ndarray:
        """Boolean mask over the searchable tracks by estimated tempo and key (:meth:`TrackFilters.music_mask`)."""
        return self.filters.music_mask(**filters)

    @property
    def ids(self) -> np.ndarray:
        """Ids of the searchable tracks."""
        return self._ids

    def refreshed(self) -> "Searcher":
        """This searcher if its generation is still the store's newest, else a new one of the newest (the
        loaded encoder is handed over). A service asks through :class:`search.current.Current`, which reads
        the manifest only when its file has changed."""
        from ..catalog.store import read_manifest

        if read_manifest(self.store.path)["generation"] == self.store.generation:
            return self
        new = Searcher(self.store.path, rescore=self.rescore)
        new.outside.adopt(self.outside)
        return new

    def warm_up(self, *, wait: bool = False, previous: "Searcher | None" = None) -> bool:
        """Ready this searcher to answer many queries: the index makes its fast-scan sketch in the background
        (inverted lists only: ``catalog.sketch``; until it is made, queries scan the 8-bit codes as before).
        ``wait``: until it is made. ``previous``: the searcher of the generation before, whose sketch is taken
        when its main index is the same file (a commit that wrote only a delta). What a service does with each
        generation it opens."""
        if previous is not None and self.index.adopt_sketch(previous.index):  # (the same index: no)
            return True
        return self.index.start_sketch(wait=wait)

    # -- catalogue -----------------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self._ids)

    @property
    def index(self):
        return self.store.index()

    def position(self, track_id: int) -> int | None:
        """Position of a searchable track in ``self._ids`` (and ``self._rows``), or None."""
        i = int(np.searchsorted(self._sorted_ids, int(track_id)))
        if i < len(self._sorted_ids) and self._sorted_ids[i] == int(track_id):
            return int(self._order[i])
        return None

    def id_for_path(self, path: str | os.PathLike) -> int | None:
        """The id of a file in the store: matched by its path as spelt (absolute, then resolved), else as the
        same file (same device and inode: a symlink, a bind mount, another spelling of the folder), else as a
        byte-identical copy (same size, same content)."""
        p = os.path.abspath(os.path.expanduser(os.fspath(path)))
        ids = ints_np(self._table.column("id"))
        searchable = None
        for candidate in dict.fromkeys((p, os.path.realpath(p))):
            rows = self.store.rows_of_path(candidate)  # through the path maps: no path column read
            if rows is None:  # (a store written before path maps)
                if searchable is None:
                    searchable = np.zeros(len(self._table), bool)
                    searchable[self._rows] = True
                rows = np.flatnonzero(equals_np(self.store.column("path"), candidate) & searchable)
            elif len(self._rows):  # (the searchable rows are sorted: a binary search, not a pass over them)
                at = np.minimum(np.searchsorted(self._rows, rows), len(self._rows) - 1)
                rows = rows[self._rows[at] == rows]
            if len(rows):
                return int(ids[rows[-1]])
        if searchable is None:
            searchable = np.zeros(len(self._table), bool)
            searchable[self._rows] = True
        try:
            st = os.stat(p)
        except OSError:
            return None
        # tracks of the very same size are few (usually the file itself, or none): stat them, then compare bytes
        rows = np.flatnonzero((ints_np(self.store.column("size")) == st.st_size) & searchable)
        paths = [self.store.column("path")[int(r)].as_py() for r in rows[:64]]
        for r, other in zip(rows, paths):
            try:
                o = os.stat(other)
            except OSError:
                continue
            if (o.st_dev, o.st_ino) == (st.st_dev, st.st_ino):
                return int(ids[r])
        for r, other in zip(rows, paths):
            if _same_bytes(p, other):
                return int(ids[r])
        return None

    def hits(self, track_ids, scores) -> list[Hit]:
        """Hits for searchable track ids (their rows read from the row groups that hold them)."""
        positions = [self.position(i) for i in track_ids]
        if any(p is None for p in positions):
            raise UnknownTrack(f"no track with id {track_ids[positions.index(None)]} in {self.store.path}")
        out = []
        for r, score in zip(self.store.cells(self._rows[positions], self.HIT_COLUMNS), scores):
            r = dict(r)
            r["missing"] = r.pop("missing_since") is not None
            r["id"], r["duration_s"], bpm = int(r["id"]), _number(r["duration_s"]), _number(r["bpm"])
            r["bpm"] = None if bpm is None else round(bpm, 1)
            out.append(Hit(score=float(score), **r))
        return out

    def hit(self, track_id: int, score: float = 1.0) -> Hit:
        return self.hits([track_id], [score])[0]

    def vector(self, track_id: int) -> np.ndarray:
        """The unit vector stored for a track (from the index, no model)."""
        if self.position(track_id) is None:
            raise UnknownTrack(f"no track with id {track_id} in {self.store.path}")
        try:
            return self.index.reconstruct(int(track_id))
        except KeyError:  # listed as indexed, but its vector is not in the index: a damaged store
            raise StoreError(f"{self.store.path}: track {track_id} has no vector in the index; 'soundalike verify' "
                             f"checks the store, 'soundalike repair' rebuilds what it can") from None

    def find(self, text: str, *, limit: int = 20) -> list[Hit]:
        """Searchable tracks whose title, artist, album or path hold every word of ``text`` (case-insensitive),
        those matched in the title first, then in the artist, then the album, then by path; ``score`` is 1
        for a title match, 0.75 artist, 0.5 album, 0.25 path only."""
        import pyarrow.compute as pc

        words = text.casefold().split()
        if not words:
            raise QueryError("find: give some words of a title, artist, album or path")
        fields = ("title", "artist", "album", "path")
        # which searchable tracks hold each word in each field (from the column as stored, vectorised)
        holds = {f: [np.asarray(pc.fill_null(pc.match_substring(self.store.column(f), w, ignore_case=True), False))[self._rows]
                     for w in words] for f in fields}
        where = {f: np.logical_and.reduce(holds[f]) for f in fields}  # every word in this one field
        every = np.logical_and.reduce([np.logical_or.reduce([holds[f][i] for f in fields]) for i in range(len(words))])
        rank = np.select([where["title"], where["artist"], where["album"]], [1.0, 0.75, 0.5], 0.25)
        pos = np.flatnonzero(every)
        order = pos[np.argsort(-rank[pos], kind="stable")][:limit]  # (within a rank, in the table's order)
        return self.hits([int(self._ids[i]) for i in order], [float(rank[i]) for i in order])

    # -- filters -------------------------------------------------------------------------------------------
    def music_of(self, query, *, by_id: bool = False) -> dict:
        """Tempo and key of a query: a track's stored estimates, or an outside file's, estimated as the indexer
        does."""
        track = int(query) if by_id else self.id_for_path(query)
        if track is not None:
            h = self.hit(track)
            return {"bpm": h.bpm, "key": h.key}
        return self.outside.music_of(query)

    # -- queries -------------------------------------------------------------------------------------------
    def search_vectors(self, queries: np.ndarray, *, k: int = 10, mask: np.ndarray | None = None,
                       packed: tuple[np.ndarray, int] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Raw batched search: (scores float32[nq, k], ids int64[nq, k]); missing results have id -1.

        ``queries`` are L2-normalised here; ``mask`` (over searchable tracks) restricts the candidates
        inside FAISS.
        """
        import faiss

        if k < 1:
            raise QueryError(f"k must be at least 1, not {k}")
        q = np.atleast_2d(np.asarray(queries, dtype=np.float32))
        q = np.ascontiguousarray(q / np.maximum(np.linalg.norm(q, axis=1, keepdims=True), 1e-12))  # a copy: the caller's array stays
        k_eff = min(k, max(1, len(self._ids)))
        # a single query is faster on one thread than split over OpenMP threads that then spin; the setting is
        # this thread's (OpenMP keeps it per thread) and is put back afterwards
        before = faiss.omp_get_max_threads()
        faiss.omp_set_num_threads(1 if len(q) <= 4 else (os.cpu_count() or 1))
        try:
            if packed is None and mask is not None and not mask.all():
                packed = self.filters.packed(mask)
            if packed is None:
                scores, ids = self.index.search(q, k_eff)
            else:
                bits, selected = packed
                sel = faiss.IDSelectorBitmap(len(bits), faiss.swig_ptr(bits))  # n is in bytes; bits outlive the search
                # a filter's nearest lie farther away, in more lists: the nprobe measured for a 10% filter
                scores, ids = self.index.search(q, k_eff, selector=sel, nprobe=self._nprobe_filtered, within=bits)
                # inverted lists probe only some of the library: when a narrow filter leaves fewer than k there,
                # the same search over every list finds all k that exist
                if self.index.is_ivf and (ids >= 0).sum(axis=1).min() < min(k_eff, selected):
                    scores, ids = self.index.search(q, k_eff, selector=sel, nprobe=self.index.exhaustive_nprobe(),
                                                    within=bits)
        finally:
            faiss.omp_set_num_threads(before)
        return scores, ids

    def search_vector(self, vector: np.ndarray, *, k: int = 10, genres=None, genre_source: str = "tags",
                      exclude_ids=(), exclude_artists=(), max_per_artist: int | None = None,
                      max_per_album: int | None = None, collapse: bool | None = None,
                      query_duration: float | None = None, mask: np.ndarray | None = None,
                      bpm: tuple[float, float] | None = None, keys=None,
                      copies_of_query: list | None = None) -> list[Hit]:
        """The ``k`` best tracks for one vector, best first, under the filters (``mask``: any further one,
        over the searchable tracks).

        ``collapse`` (default: where the store's encoder has a measured copy threshold, ``search.dupes``):
        near-duplicates of a result (re-encodings, other mixes) are listed in its ``copies`` instead of
        taking places of their own, and with ``query_duration`` (a single query's) copies of the query are
        left out (and appended to ``copies_of_query`` when given). ``max_per_artist`` /
        ``max_per_album``: no artist (album: album name in one folder) more than that many times, the best of
        each kept (tracks without the tag are not limited). ``bpm`` (low, high) and ``keys``: only tracks of
        that estimated tempo and key (:meth:`music_mask`)."""
        from .dupes import COPY_COSINE, threshold_for

        if bpm is not None or keys:
            music = self.music_mask(bpm=bpm, keys=keys)
            mask = music if mask is None else mask & music

        threshold = threshold_for(self.store.encoder_info)
        collapse = threshold is not None if collapse is None else collapse
        threshold = threshold or COPY_COSINE  # (asked for on an encoder not measured: the default encoder's)
        if not (collapse or max_per_artist or max_per_album):
            return self.hits(*self.ranked(vector, k, genres, genre_source, exclude_ids, exclude_artists, mask))
        rescorer = Rescorer(k=k, max_per_artist=max_per_artist, max_per_album=max_per_album, collapse=collapse,
                            threshold=threshold, query_duration=query_duration, reconstruct=self.index.reconstruct)
        copies: list[Hit] = []

        def one_round(fetch: int) -> tuple[list[Hit], bool]:
            ids, scores = self.ranked(vector, fetch, genres, genre_source, exclude_ids, exclude_artists, mask)
            out, copies[:] = rescorer.keep(self.hits(ids, scores))
            return out, len(ids) < fetch

        out = overfetch(k, 4 * k if (max_per_artist or max_per_album) else k + 5, one_round)
        if copies_of_query is not None:
            copies_of_query.extend(copies)
        return out

    def ranked(self, vector, k, genres, genre_source, exclude_ids, exclude_artists,
                mask: np.ndarray | None = None) -> tuple[list[int], list[float]]:
        """Ids and scores of the ``k`` best tracks for one vector under the filters (and ``mask``, over the
        searchable tracks), best first. The few ids to leave out (the query itself) are dropped from k + that
        many results, exact."""
        packed = None
        if mask is not None:
            packed = self.filters.packed(mask & self.mask(genres=genres, genre_source=genre_source,
                                                          exclude_artists=exclude_artists))
        elif genres or any(exclude_artists):
            packed = self.filters.bitmap(genres, genre_source, exclude_artists)
        drop = {int(i) for i in exclude_ids}
        hubs = self.store.neighbourhoods() if self.rescore else None
        fetch = k + len(drop) if hubs is None else max(self.RESCORE_POOL, 2 * (k + len(drop)))
        scores, ids = self.search_vectors(vector, k=fetch, packed=packed)
        keep = [(int(i), float(s)) for s, i in zip(scores[0], ids[0]) if i >= 0 and int(i) not in drop]
        if hubs is None:
            keep = keep[:k]
            return [i for i, _ in keep], [s for _, s in keep]
        # CSLS, less the query's own constant: cos - r(x) / 2 (catalog.neighbours); exact whenever the pool holds
        # every candidate, as in a library (or under a filter) of fewer tracks than the pool
        cos = np.asarray([s for _, s in keep], np.float64)
        rank = cos - hubs.of(np.asarray([i for i, _ in keep], np.int64)) / 2
        order = np.argsort(-rank, kind="stable")[:k]
        return [keep[j][0] for j in order], [keep[j][1] for j in order]

    def search_id(self, track_id: int, *, k: int = 10, genres=None, genre_source: str = "tags",
                  exclude_artist_of_query: bool = False, **diversity) -> list[Hit]:
        """Neighbours of a track in the store (never the track itself); ``diversity``: ``max_per_artist``,
        ``max_per_album`` (see :meth:`search_vector`)."""
        vec = self.vector(track_id)
        me = self.hit(track_id)
        artists = [me.artist] if exclude_artist_of_query else []
        return self.search_vector(vec, k=k, genres=genres, genre_source=genre_source, exclude_ids=[track_id],
                                  exclude_artists=artists, query_duration=me.duration_s, **diversity)

    def search_path(self, path: str | os.PathLike, **options) -> list[Hit]:
        """Neighbours of a file: its stored vector when it is in the store, else embedded on the fly (the options
        of :meth:`search_file`)."""
        return self.search_file(path, **options)[0]

    def search_file(self, path: str | os.PathLike, *, k: int = 10, genres=None, genre_source: str = "tags",
                    exclude_artist_of_query: bool = False, excerpt: bool | None = None,
                    **diversity) -> tuple[list[Hit], bool, str]:
        """Neighbours of a file, whether they were found as an excerpt's, and why in a few words (the file is
        looked up in the store once). ``excerpt``: rank tracks by their windows that best match the file's
        (:meth:`search_excerpt`); None (the default): for an outside file shorter than the stretch a track
        vector spans, when the store keeps windows."""
        track_id = self.id_for_path(path)
        why = ""
        if excerpt is None:
            excerpt, why = (False, "") if track_id is not None else self.outside.excerpt_wanted(path)
        return self._search_file(path, track_id, bool(excerpt), k=k, genres=genres, genre_source=genre_source,
                                 exclude_artist_of_query=exclude_artist_of_query, **diversity), bool(excerpt), why

    def _search_file(self, path, track_id: int | None, excerpt: bool, *, k, genres, genre_source,
                     exclude_artist_of_query, **diversity) -> list[Hit]:
        if excerpt:
            return self.search_excerpt(path, k=k, genres=genres, genre_source=genre_source,
                                       exclude_ids=[] if track_id is None else [track_id],
                                       exclude_artist_of_query=exclude_artist_of_query,
                                       max_per_artist=diversity.get("max_per_artist"),
                                       max_per_album=diversity.get("max_per_album"), bpm=diversity.get("bpm"),
                                       keys=diversity.get("keys"))
        if track_id is not None:
            return self.search_id(track_id, k=k, genres=genres, genre_source=genre_source,
                                  exclude_artist_of_query=exclude_artist_of_query, **diversity)
        vec, duration = self.outside.embed(path)
        artists = self.artists_of([path], [None]) if exclude_artist_of_query else []
        return self.search_vector(vec, k=k, genres=genres, genre_source=genre_source, exclude_artists=artists,
                                  query_duration=duration, **diversity)

    def search_excerpt(self, path: str | os.PathLike, *, k: int = 10, genres=None, genre_source: str = "tags",
                       exclude_ids=(), exclude_artist_of_query: bool = False, max_per_artist: int | None = None,
                       max_per_album: int | None = None, bpm=None, keys=None) -> list[Hit]:
        """Tracks holding the clip ``path``, ranked by how well their windows match the clip's: the mean over
        the clip's windows of each one's best cosine with the track's windows (``search.excerpt``). A hit's
        ``at_s`` is where in the track the clip starts, as placed by the best matching pair of windows."""
        index = self.store.excerpt_index()
        if index is None:
            raise QueryError(f"{self.store.path}: the store keeps no windows for excerpt search (indexed before "
                             f"they were kept, or by an encoder that keeps none); 'soundalike index DIR --db STORE "
                             f"--force' embeds the library again with them")
        feats, offsets, _ = self.clip_features(path)
        artists = self.artists_of([path], [None]) if exclude_artist_of_query else []
        allowed = self.mask(genres=genres, genre_source=genre_source, exclude_ids=exclude_ids, exclude_artists=artists)
        if bpm is not None or keys:
            allowed &= self.music_mask(bpm=bpm, keys=keys)
        live = np.zeros(self.filters.id_space, bool)
        live[self._ids[allowed]] = True
        return rank_excerpt(index, feats, offsets, live=live, restricted=not allowed.all(), hits=self.hits,
                            frontend=self.store.encoder_info["frontend"], k=k, max_per_artist=max_per_artist,
                            max_per_album=max_per_album)

    def search_seeds(self, seeds, *, by_id: bool = False, k: int = 10, genres=None, genre_source: str = "tags",
                     exclude_artist_of_query: bool = False, seed_vectors=None, **diversity) -> list[Hit]:
        """"More like these": tracks near the centroid of several seeds (track ids with ``by_id``, else files in
        the store or outside it), none of the seeds returned (``seed_vectors``: what :meth:`seed_vectors` gave
        for them, when the caller has it already). The centroid of the seeds' unit vectors, searched
        as one query, was measured on the dev corpus (``benchmarks/seeds.py``: 3 seeds of one soundtrack find
        its other tracks at precision@10 0.420 against 0.335 for one seed alone, +0.084 [+0.068, +0.100]); the
        union of the seeds' neighbourhoods (each track's best similarity to a seed) and reciprocal-rank fusion
        measured no better (0.414, 0.410)."""
        unit, tracks = seed_vectors or self.seed_vectors(seeds, by_id)
        ids = [t for t in tracks if t is not None]
        artists = self.artists_of(seeds, tracks) if exclude_artist_of_query else []
        return self.search_vector(unit.mean(axis=0), k=k, genres=genres, genre_source=genre_source, exclude_ids=ids,
                                  exclude_artists=artists, **diversity)

    def artists_of(self, seeds, tracks) -> list[str]:
        """The artists of query seeds: a track's stored tag, an outside file's tag (``tracks``: each seed's
        track id, None for an outside file); seeds without one are left out."""
        from ..catalog.tags import read_tags

        artists = [self.hit(t).artist if t is not None else read_tags(seed).get("artist")
                   for seed, t in zip(seeds, tracks)]
        return [a for a in artists if a]

    def seed_vectors(self, seeds, by_id: bool) -> tuple[np.ndarray, list[int | None]]:
        """Unit vectors of seeds (track ids, or files in the store or outside it), and each seed's track id
        (None: an outside file)."""
        vectors, tracks = [], []
        for seed in seeds:
            track = int(seed) if by_id else self.id_for_path(seed)
            vectors.append(self.vector(track) if track is not None else self.embed_file(seed))
            tracks.append(track)
        if not vectors:
            raise QueryError("no seeds given")
        return np.stack([v / max(float(np.linalg.norm(v)), 1e-12) for v in vectors]), tracks

    def tag_scores(self, tags) -> np.ndarray:
        """The mean predicted score of ``tags`` (the encoder's labels, any case) for each searchable track, in
        the order of :attr:`ids` (NaN: the track has none stored)."""
        from ..catalog.track import vectors_np

        labels = list(self.store.encoder_info.get("labels") or [])
        if not labels:
            raise QueryError(f"{self.store.path}: encoder {self.store.encoder_info.get('name')} predicts no tags")
        lower = {lab.casefold(): i for i, lab in enumerate(labels)}
        unknown = [t for t in tags if t.casefold() not in lower]
        if unknown:
            raise QueryError(f"unknown tag {', '.join(unknown)} (this encoder's tags: {', '.join(labels)})")
        matrix = self._tag_scores.get("all", lambda: vectors_np(self.store.column("tag_scores"), len(labels))[self._rows])
        if np.isnan(matrix).all():
            raise QueryError(f"{self.store.path}: no tag scores stored (tracks indexed before they were kept; "
                             f"'soundalike index DIR --db STORE --force' embeds them again)")
        return matrix[:, [lower[t.casefold()] for t in tags]].mean(axis=1)

    def search_tags(self, tags, *, k: int = 10, seeds=(), by_id: bool = False, genres=None,
                    genre_source: str = "tags", bpm=None, keys=None) -> list[Hit]:
        """Tracks by the encoder's predicted ``tags`` (the mean of their scores). Alone: the library ranked by
        that score (the hits' ``score``). With ``seeds``: tracks like the seeds (cosine, as
        :meth:`search_seeds`) among the TAG_SHARE of the library that scores highest on the tags."""
        score = self.tag_scores(tags)
        known = ~np.isnan(score)
        if genres:
            known &= self.mask(genres=genres, genre_source=genre_source)
        if bpm is not None or keys:
            known &= self.music_mask(bpm=bpm, keys=keys)
        if not len(seeds):
            order = np.flatnonzero(known)[np.argsort(-score[known], kind="stable")][:k]
            return self.hits([int(self._ids[i]) for i in order], [float(score[i]) for i in order])
        cut = np.quantile(score[known], 1.0 - TAG_SHARE) if known.any() else np.inf
        vectors, tracks = self.seed_vectors(seeds, by_id)
        return self.search_vector(vectors.mean(axis=0), k=k, exclude_ids=[t for t in tracks if t is not None],
                                  mask=known & (score >= cut))

    # -- outside audio -------------------------------------------------------------------------------------
    def encoder(self):
        """The store's encoder, loaded on first use (:meth:`OutsideAudio.encoder`)."""
        return self.outside.encoder()

    def embed_file(self, path: str | os.PathLike) -> np.ndarray:
        """The unit track vector of an outside audio file, as the indexer would compute it."""
        return self.outside.embed(path)[0]

    def clip_features(self, path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray, float]:
        """An outside file's window features for excerpt search (:meth:`OutsideAudio.clip_features`)."""
        return self.outside.clip_features(path)

