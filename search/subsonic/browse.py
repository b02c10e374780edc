"""The library as a Subsonic client browses it: artists, their albums, an album's songs, one generation's worth.

Subsonic speaks of songs, albums and artists with string ids. Here a song's id is its track id; an album is the
tracks of one album tag in one folder (a folder without album tags is an album named after the folder), as
``--max-per-album`` counts them; its artist is the artist most of its tracks have, and it is listed under every
artist who has a track on it. Album and artist ids are
hashes of their names (and folder), so they stay the same from one generation to the next.

The grouping is computed once per generation with Arrow's vectorised kernels, and holds integer codes, not a
Python object per track: a million tracks' view costs tens of megabytes. A song's own fields are read when a
response shows it (the searcher's hits, from the row groups that hold them).
"""

from __future__ import annotations

import dataclasses
import hashlib
import os

import numpy as np

UNKNOWN_ARTIST = "Unknown artist"
#: what an artist index leaves out before the first letter (``ignoredArticles``)
IGNORED_ARTICLES = ("The", "El", "La", "Los", "Las", "Le", "Les")


def _digest(text: str) -> str:
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=8).hexdigest()


def artist_id(name: str | None) -> str:
    return "ar-" + _digest((name or UNKNOWN_ARTIST).casefold())


def album_name(album: str | None, path: str) -> str:
    return album or os.path.basename(os.path.dirname(path)) or "Unknown album"


def album_id(album: str | None, path: str) -> str:
    """The album of a track with this album tag at this path (an album is one tag in one folder)."""
    return "al-" + _digest(f"{album_name(album, path)}\x00{os.path.dirname(path)}")


def sort_name(name: str) -> str:
    """A name as an index sorts it: without a leading article, case-folded."""
    for article in IGNORED_ARTICLES:
        if name[: len(article) + 1].casefold() == article.casefold() + " ":
            return name[len(article) + 1 :].casefold()
    return name.casefold()


@dataclasses.dataclass
class Album:
    id: str
    name: str
    artist: str
    artist_id: str
    positions: np.ndarray  # the album's tracks, as positions in the searcher's ids, in path order
    created: float  # the newest file's modification time
    genre: str | None
    duration: int  # seconds, all its tracks


@dataclasses.dataclass
class Artist:
    id: str
    name: str
    albums: list[str]  # album ids, by name


class Library:
    """Artists and albums of one searcher's generation (a :class:`~search.searcher.Searcher`)."""

    def __init__(self, searcher):
        import pyarrow as pa
        import pyarrow.compute as pc

        self.searcher = searcher
        self.ids = np.asarray(searcher.ids)
        paths = self._column("path")
        albums = self._column("album")
        folders = pc.replace_substring_regex(paths, pattern=r"/[^/]*$", replacement="")
        key = pc.binary_join_element_wise(pc.fill_null(albums, ""), folders, "\x00")
        album_codes = _codes(key)
        artist_codes = _codes(pc.fill_null(pc.utf8_lower(self._column("artist")), ""))
        order = np.asarray(pc.sort_indices(pa.table({"a": album_codes, "p": paths}),
                                           sort_keys=[("a", "ascending"), ("p", "ascending")]))
        mtimes = np.asarray(self._column("mtime").to_numpy(zero_copy_only=False), np.float64)
        durations = np.nan_to_num(np.asarray(self._column("duration_s").to_numpy(zero_copy_only=False), np.float64))
        genres = self._column("genre")
        artist_text = self._column("artist")
        bounds = np.flatnonzero(np.diff(album_codes[order])) + 1
        self.albums: dict[str, Album] = {}
        self.artists: dict[str, Artist] = {}
        for group in np.split(order, bounds) if len(order) else []:
            first = int(group[0])
            path, album = paths[first].as_py(), albums[first].as_py()
            codes, counts = np.unique(artist_codes[group], return_counts=True)
            lead = int(group[np.flatnonzero(artist_codes[group] == codes[np.argmax(counts)])[0]])
            name = artist_text[lead].as_py() or UNKNOWN_ARTIST
            a = Album(album_id(album, path), album_name(album, path), name, artist_id(name), group,
                      float(mtimes[group].max()), genres[first].as_py(), int(round(durations[group].sum())))
            self.albums[a.id] = a
            # every artist with a track on the album lists it (a compilation is under each of its artists)
            for code in codes:
                named = artist_text[int(group[np.flatnonzero(artist_codes[group] == code)[0]])].as_py() or UNKNOWN_ARTIST
                self.artists.setdefault(artist_id(named), Artist(artist_id(named), named, [])).albums.append(a.id)
        for artist in self.artists.values():
            artist.albums.sort(key=lambda i: sort_name(self.albums[i].name))
        low, high = (pc.min_max(paths)[k].as_py() for k in ("min", "max")) if len(paths) else ("/", "/")
        #: the folder every track lies under (the music folder a client sees; paths are shown relative to it)
        self.root = os.path.commonpath([low, high]) if low and high and low.startswith("/") else "/"
        self._album_of = np.empty(len(self.ids), dtype=object)
        for a in self.albums.values():
            self._album_of[a.positions] = a.id

    def _column(self, name: str):
        """One track column over the searchable tracks, in the order of the searcher's ids (an Arrow array)."""
        import pyarrow as pa

        s = self.searcher
        table, _ = s.store.track_rows()
        column = table.column(name) if name in table.column_names else s.store.column(name)
        return column.take(pa.array(s.store.live_rows())).combine_chunks()

    def __len__(self) -> int:
        return len(self.ids)

    def album_of(self, position: int) -> Album:
        return self.albums[self._album_of[position]]

    def position(self, track_id: int) -> int | None:
        """Where a track id is among the searcher's ids, or None."""
        return self.searcher.position(track_id)

    def sorted_artists(self) -> list[Artist]:
        return sorted(self.artists.values(), key=lambda a: sort_name(a.name))

    def song_ids(self, album: Album) -> list[int]:
        return [int(i) for i in self.ids[album.positions]]


def _codes(column) -> np.ndarray:
    """An Arrow string array as integer codes, equal values equal codes."""
    return np.asarray(column.dictionary_encode().indices.to_numpy(zero_copy_only=False), np.int64)
