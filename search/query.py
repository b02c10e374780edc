"""A search as a value: what is asked (:class:`Query`), parsed once whether it comes from the command line or
from HTTP, and what comes back (:class:`Result`), returned rather than left on the searcher.

A query is seeds (track ids, or files in the store or outside it; one file may be a clip of some song) or
predicted tags or both, with filters: genres, a tempo range, keys (and the keys compatible with them), artist
and album diversity, and whether near-duplicate recordings are collapsed.
"""

from __future__ import annotations

import dataclasses

from .filters import GENRE_SOURCES
from .searcher import Hit, QueryError


@dataclasses.dataclass(frozen=True)
class Query:
    """One search, checked: every field is what the searcher takes."""

    seeds: tuple = ()  # track ids (``by_id``) or paths
    by_id: bool = False
    tags: tuple[str, ...] = ()
    k: int = 10
    genres: tuple[str, ...] = ()
    genre_source: str = "tags"
    exclude_artist_of_query: bool = False
    max_per_artist: int | None = None
    max_per_album: int | None = None
    keep_copies: bool = False
    bpm: tuple[float, float] | None = None  # (low, high)
    keys: tuple[str, ...] = ()  # as given; with ``compatible_key`` widened when the query runs
    compatible_key: bool = False
    excerpt: bool | None = None  # None: decided by the file (an outside clip shorter than a track vector's span)

    @classmethod
    def parse(cls, seeds=(), *, by_id: bool = False, tags=(), k: int = 10, genres=(), genre_source: str = "tags",
              exclude_artist_of_query: bool = False, max_per_artist: int | None = None,
              max_per_album: int | None = None, keep_copies: bool = False, bpm: str | None = None,
              bpm_min: float | None = None, bpm_max: float | None = None, keys=(), compatible_key: bool = False,
              excerpt: bool | None = None) -> "Query":
        """A checked query from what the command line's options or an HTTP request's parameters hold (the tempo
        as text, ``"118-126"`` or ``"120"``, or as ``bpm_min``/``bpm_max``); a QueryError says what is wrong."""
        from ..model.keytempo import parse_key

        seeds, tags = tuple(seeds), tuple(tags)
        if not seeds and not tags:
            raise QueryError("a search needs a QUERY (a file, or an id with --id) or a --tag")
        if excerpt and (by_id or len(seeds) != 1 or tags):
            raise QueryError("--excerpt takes one QUERY file")
        if by_id:
            try:
                seeds = tuple(int(s) for s in seeds)
            except ValueError:
                raise QueryError(f"--id expects integer track ids, not {', '.join(map(str, seeds))}") from None
        if genre_source not in (*GENRE_SOURCES, "any"):
            raise QueryError(f"genre source must be tags, predicted or any, not {genre_source!r}")
        if k < 1 or any(n is not None and n < 1 for n in (max_per_artist, max_per_album)):
            raise QueryError("k, max_per_artist and max_per_album must be at least 1")
        if bpm is not None and (bpm_min is not None or bpm_max is not None):
            raise QueryError("give the tempo as one range, not both a range and its ends")
        tempo = parse_bpm(bpm) if bpm is not None else None
        if bpm_min is not None or bpm_max is not None:
            tempo = (float(bpm_min or 0.0), float(bpm_max if bpm_max is not None else float("inf")))
            if not 0 <= tempo[0] <= tempo[1]:
                raise QueryError(f"the tempo range {tempo[0]:g}-{tempo[1]:g} must be positive and low to high")
        try:
            keys = tuple(parse_key(key) for key in keys)
        except ValueError as err:
            raise QueryError(str(err)) from None
        if compatible_key and not keys and len(seeds) != 1:
            raise QueryError("--compatible-key without --key needs one QUERY, whose key it takes")
        return cls(seeds=seeds, by_id=by_id, tags=tags, k=int(k), genres=tuple(genres or ()), genre_source=genre_source,
                   exclude_artist_of_query=exclude_artist_of_query, max_per_artist=max_per_artist,
                   max_per_album=max_per_album, keep_copies=keep_copies, bpm=tempo, keys=keys,
                   compatible_key=compatible_key, excerpt=excerpt)


@dataclasses.dataclass
class Result:
    """What a query found: the hits, best first; the copies of the query that were left out; which search
    answered (``track``, ``excerpt``, ``seeds`` or ``tags``); and notes for a person (why an excerpt search,
    which keys a compatible-key filter took)."""

    hits: list[Hit]
    copies_of_query: list[Hit] = dataclasses.field(default_factory=list)
    mode: str = "track"
    notes: list[str] = dataclasses.field(default_factory=list)


def parse_bpm(text: str) -> tuple[float, float]:
    """``"118-126"`` -> (118, 126); ``"120"`` -> 120 +- 4%."""
    t = str(text).replace(" ", "").replace("..", "-")
    try:
        if "-" in t.strip("-"):
            lo, hi = (float(x) for x in t.split("-", 1))
        else:
            lo, hi = float(t) * 0.96, float(t) * 1.04
    except ValueError:
        raise QueryError(f"--bpm expects a range like 118-126 or one tempo like 120, not {text!r}") from None
    if not (0 < lo <= hi):
        raise QueryError(f"--bpm {text}: the range must be positive and low to high")
    return lo, hi


def run(searcher, q: Query) -> Result:
    """Answer ``q`` from ``searcher`` (one generation of a store); safe to call from many threads at once."""
    from ..model.keytempo import wanted_keys

    notes: list[str] = []
    keys = list(q.keys)
    if q.compatible_key and not keys:
        own = searcher.music_of(q.seeds[0], by_id=q.by_id).get("key")
        if own is None:
            raise QueryError(f"{q.seeds[0]}: no key is known for the query (give one with --key)")
        keys = [own]
    if keys:
        keys = wanted_keys(keys, q.compatible_key)
        if q.compatible_key:
            notes.append(f"keys: {', '.join(keys)}")
    music = {"bpm": q.bpm, "keys": keys or None}
    filters = {"k": q.k, "genres": list(q.genres), "genre_source": q.genre_source}
    if q.tags:
        hits = searcher.search_tags(list(q.tags), seeds=list(q.seeds), by_id=q.by_id, **filters, **music)
        return Result(hits, mode="tags", notes=notes)
    copies: list[Hit] = []
    diversity = {"max_per_artist": q.max_per_artist, "max_per_album": q.max_per_album, "copies_of_query": copies,
                 "exclude_artist_of_query": q.exclude_artist_of_query, **music}
    if q.keep_copies:
        diversity["collapse"] = False
    if len(q.seeds) > 1:
        hits, mode = searcher.search_seeds(list(q.seeds), by_id=q.by_id, **filters, **diversity), "seeds"
    elif q.by_id:
        hits, mode = searcher.search_id(q.seeds[0], **filters, **diversity), "track"
    else:
        hits, excerpt, why = searcher.search_file(q.seeds[0], excerpt=q.excerpt, **filters, **diversity)
        if why:
            notes.insert(0, why)
        mode = "excerpt" if excerpt else "track"
    return Result(hits, copies_of_query=copies, mode=mode, notes=notes)
