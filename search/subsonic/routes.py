"""The Subsonic API's methods, served under ``/rest/`` by ``soundalike serve`` (see ``search.subsonic``).

Each method takes the request's :class:`~search.subsonic.protocol.Params`, the searcher of the newest
generation and its artists and albums (``Library`` of ``search.subsonic.browse``), and answers a payload (or a file, for
``stream``, ``download`` and ``getCoverArt``).
"""

from __future__ import annotations

import dataclasses
import mimetypes
import os
import random
import time

import numpy as np

from ...catalog import saved
from ...catalog.tags import cover_art
from ..searcher import ranked_similarities, similarity
from .browse import IGNORED_ARTICLES, UNKNOWN_ARTIST, Album, Artist, Library, artist_id, sort_name
from .protocol import GENERIC, NOT_FOUND, Params, SubsonicError, not_found

MUSIC_FOLDER = 1
MAX_LIST = 500  # the most entries one answer lists (a larger count asks for this many)
_TYPES = {".flac": "audio/flac", ".mp3": "audio/mpeg", ".ogg": "audio/ogg", ".oga": "audio/ogg", ".opus": "audio/ogg",
          ".m4a": "audio/mp4", ".mp4": "audio/mp4", ".aac": "audio/aac", ".wav": "audio/wav", ".aif": "audio/aiff",
          ".aiff": "audio/aiff", ".wma": "audio/x-ms-wma", ".wv": "audio/x-wavpack", ".ape": "audio/x-ape"}


@dataclasses.dataclass
class Context:
    params: Params
    searcher: object
    lib: Library  # the artists and albums of the searcher's generation
    store: str
    user: str


@dataclasses.dataclass
class FileAnswer:
    """A file to send (``stream``, ``download``) or bytes (``getCoverArt``), not a subsonic-response."""

    path: str | None = None
    data: bytes | None = None
    media_type: str = "application/octet-stream"
    filename: str | None = None


def _iso(t: float | None) -> str | None:
    return None if not t else time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


def content_type(path: str) -> str:
    ext = os.path.splitext(path)[1].lower()
    return _TYPES.get(ext) or mimetypes.guess_type(path)[0] or "application/octet-stream"


# ------------------------------------------------------------------------------------------------ entries


def child(lib: Library, hit) -> dict:
    """A song as Subsonic's ``Child``."""
    album = lib.album_of(lib.position(hit.id))
    try:
        size = os.stat(hit.path).st_size
    except OSError:
        size = 0
    rel = os.path.relpath(hit.path, lib.root) if hit.path.startswith(lib.root) else os.path.basename(hit.path)
    return {"id": str(hit.id), "parent": album.id, "isDir": False, "title": hit.title or os.path.basename(hit.path),
            "album": album.name, "artist": hit.artist or UNKNOWN_ARTIST, "genre": hit.genre, "coverArt": album.id,
            "size": size, "contentType": content_type(hit.path), "suffix": os.path.splitext(hit.path)[1][1:].lower(),
            "duration": int(round(hit.duration_s or 0)), "path": rel, "type": "music", "isVideo": False,
            "albumId": album.id, "artistId": artist_id(hit.artist), "mediaType": "song",
            "bpm": int(round(hit.bpm)) if hit.bpm else None}


def songs(ctx: Context, ids, scores=None) -> list[dict]:
    ids = [int(i) for i in ids]
    hits = ctx.searcher.hits(ids, scores if scores is not None else [1.0] * len(ids))
    return [child(ctx.lib, h) for h in hits]


def album_entry(a: Album) -> dict:
    """An album as ``AlbumID3``."""
    return {"id": a.id, "name": a.name, "artist": a.artist, "artistId": a.artist_id, "coverArt": a.id,
            "songCount": len(a.positions), "duration": a.duration, "created": _iso(a.created), "genre": a.genre}


def album_dir(a: Album) -> dict:
    """An album as a directory ``Child`` (``getMusicDirectory``, ``getAlbumList``)."""
    return {"id": a.id, "parent": a.artist_id, "isDir": True, "title": a.name, "album": a.name, "artist": a.artist,
            "coverArt": a.id, "created": _iso(a.created)}


def artist_entry(lib: Library, ar: Artist) -> dict:
    return {"id": ar.id, "name": ar.name, "albumCount": len(ar.albums), "coverArt": ar.albums[0] if ar.albums else None}


def _by_letter(lib: Library, entry) -> list[dict]:
    index: dict[str, list] = {}
    for ar in lib.sorted_artists():
        first = sort_name(ar.name)[:1].upper()
        index.setdefault(first if first.isalpha() else "#", []).append(entry(ar))
    return [{"name": k, "artist": v} for k, v in index.items()]


# ------------------------------------------------------------------------------------------------ lookups


def _album(ctx: Context, name: str = "id") -> Album:
    a = ctx.lib.albums.get(ctx.params.text(name))
    if a is None:
        raise not_found(f"album {ctx.params.text(name)[:60]}")
    return a


def _artist(ctx: Context, name: str = "id") -> Artist:
    ar = ctx.lib.artists.get(ctx.params.text(name))
    if ar is None:
        raise not_found(f"artist {ctx.params.text(name)[:60]}")
    return ar


def song_id(ctx: Context, value: str) -> int:
    """A song id of this library (error 70 for anything else: an album's id, a word, an id of no track)."""
    try:
        track = int(value)
    except (TypeError, ValueError):
        raise not_found(f"song {str(value)[:60]}") from None
    if ctx.lib.position(track) is None:
        raise not_found(f"song {track}")
    return track


def _song(ctx: Context, name: str = "id") -> int:
    return song_id(ctx, ctx.params.text(name))


# ------------------------------------------------------------------------------------------------ system


def ping(ctx):
    return {}


def get_license(ctx):
    return {"license": {"valid": True}}


def get_extensions(ctx):
    return {"openSubsonicExtensions": [{"name": "sonicSimilarity", "versions": [1]},
                                       {"name": "formPost", "versions": [1]}]}


def get_user(ctx):
    roles = dict.fromkeys(("adminRole", "settingsRole", "uploadRole", "coverArtRole", "commentRole", "podcastRole",
                           "jukeboxRole", "shareRole", "videoConversionRole"), False)
    return {"user": {"username": ctx.user, "scrobblingEnabled": True, "downloadRole": True, "streamRole": True,
                     "playlistRole": True, **roles, "folder": [MUSIC_FOLDER]}}


def get_music_folders(ctx):
    return {"musicFolders": {"musicFolder": [{"id": MUSIC_FOLDER, "name": os.path.basename(ctx.lib.root) or "music"}]}}


def get_scan_status(ctx):
    return {"scanStatus": {"scanning": False, "count": len(ctx.lib)}}


def scrobble(ctx):
    for value in ctx.params.all("id") or [ctx.params.text("id")]:
        song_id(ctx, value)
    return {}


def now_playing(ctx):
    return {"nowPlaying": {}}


# ------------------------------------------------------------------------------------------------ browsing


def get_indexes(ctx):
    lib = ctx.lib
    return {"indexes": {"lastModified": int(max((a.created for a in lib.albums.values()), default=0) * 1000),
                        "ignoredArticles": " ".join(IGNORED_ARTICLES),
                        "index": _by_letter(lib, lambda ar: {"id": ar.id, "name": ar.name})}}


def get_artists(ctx):
    lib = ctx.lib
    return {"artists": {"ignoredArticles": " ".join(IGNORED_ARTICLES),
                        "index": _by_letter(lib, lambda ar: artist_entry(lib, ar))}}


def get_artist(ctx):
    ar = _artist(ctx)
    return {"artist": {**artist_entry(ctx.lib, ar), "album": [album_entry(ctx.lib.albums[i]) for i in ar.albums]}}


def get_album(ctx):
    a = _album(ctx)
    return {"album": {**album_entry(a), "song": songs(ctx, ctx.lib.song_ids(a))}}


def get_music_directory(ctx):
    lib, key = ctx.lib, ctx.params.text("id")
    if key in lib.artists:
        ar = lib.artists[key]
        return {"directory": {"id": ar.id, "name": ar.name, "child": [album_dir(lib.albums[i]) for i in ar.albums]}}
    if key in lib.albums:
        a = lib.albums[key]
        return {"directory": {"id": a.id, "parent": a.artist_id, "name": a.name,
                              "child": songs(ctx, lib.song_ids(a))}}
    raise not_found(f"directory {key[:60]}")


def get_song(ctx):
    return {"song": songs(ctx, [_song(ctx)])[0]}


def get_genres(ctx):
    lib = ctx.lib
    albums: dict[str, int] = {}
    for a in lib.albums.values():
        if a.genre:
            albums[a.genre] = albums.get(a.genre, 0) + 1
    return {"genres": {"genre": [{"value": g, "songCount": n, "albumCount": albums.get(g, 0)}
                                 for g, n in ctx.searcher.genres("tags").items()]}}


def _album_list(ctx: Context) -> list[Album]:
    p, lib = ctx.params, ctx.lib
    kind = p.text("type")
    size, offset = p.integer("size", 10, high=MAX_LIST), p.integer("offset", 0)
    albums = list(lib.albums.values())
    if kind == "random":
        picked = random.sample(albums, min(size, len(albums)))
        return picked
    if kind == "newest":
        albums.sort(key=lambda a: -a.created)
    elif kind == "alphabeticalByName":
        albums.sort(key=lambda a: sort_name(a.name))
    elif kind == "alphabeticalByArtist":
        albums.sort(key=lambda a: (sort_name(a.artist), sort_name(a.name)))
    elif kind == "byGenre":
        wanted = p.text("genre").casefold()
        albums = sorted((a for a in albums if (a.genre or "").casefold() == wanted), key=lambda a: sort_name(a.name))
    elif kind in ("byYear", "frequent", "recent", "highest", "starred"):
        albums = []  # no years, plays, ratings or stars are kept
    else:
        raise SubsonicError(GENERIC, f"unknown album list type {kind[:40]!r}")
    return albums[offset : offset + size]


def get_album_list2(ctx):
    return {"albumList2": {"album": [album_entry(a) for a in _album_list(ctx)]}}


def get_album_list(ctx):
    return {"albumList": {"album": [album_dir(a) for a in _album_list(ctx)]}}


def get_random_songs(ctx):
    p, s = ctx.params, ctx.searcher
    size = p.integer("size", 10, high=MAX_LIST)
    genre = p.optional("genre")
    pool = np.arange(len(s.ids))
    if genre:
        known = set(s.genres("tags"))
        from ...catalog.tags import normalise_genre

        if normalise_genre(genre) not in known:
            return {"randomSongs": {"song": []}}
        pool = np.flatnonzero(s.mask(genres=[genre]))
    chosen = np.random.default_rng().choice(pool, size=min(size, len(pool)), replace=False) if len(pool) else []
    return {"randomSongs": {"song": songs(ctx, [int(s.ids[i]) for i in chosen])}}


def search3(ctx, key: str = "searchResult3"):
    p, lib, s = ctx.params, ctx.lib, ctx.searcher
    text = (p.optional("query") or "").strip().strip('"').strip()
    counts = {k: (p.integer(f"{k}Count", 20, high=MAX_LIST), p.integer(f"{k}Offset", 0)) for k in ("artist", "album", "song")}
    words = text.casefold().split()

    def holds(*names) -> bool:
        joined = " ".join(n for n in names if n).casefold()
        return all(w in joined for w in words)

    artists = [ar for ar in lib.sorted_artists() if holds(ar.name)]
    albums = sorted((a for a in lib.albums.values() if holds(a.name, a.artist)), key=lambda a: sort_name(a.name))
    (na, oa), (nb, ob), (ns, os_) = counts["artist"], counts["album"], counts["song"]
    if words:
        found = s.find(text, limit=os_ + ns) if ns else []
        song_ids = [h.id for h in found][os_:]
    else:  # an empty query lists the whole library, page by page (how clients copy it)
        song_ids = [int(i) for i in s.ids[os_ : os_ + ns]]
    return {key: {"artist": [artist_entry(lib, ar) for ar in artists[oa : oa + na]],
                  "album": [album_entry(a) for a in albums[ob : ob + nb]],
                  "song": songs(ctx, song_ids)}}


# ------------------------------------------------------------------------------------------------ files


def stream(ctx):
    track = _song(ctx)
    hit = ctx.searcher.hit(track)
    if not os.path.isfile(hit.path):
        raise SubsonicError(NOT_FOUND, f"song {track}: its file is out of reach")
    return FileAnswer(path=hit.path, media_type=content_type(hit.path), filename=os.path.basename(hit.path))


def get_cover_art(ctx):
    lib, key = ctx.lib, ctx.params.text("id")
    if key in lib.artists and lib.artists[key].albums:
        key = lib.artists[key].albums[0]
    if key in lib.albums:
        tracks = lib.song_ids(lib.albums[key])[:8]
    else:
        tracks = [song_id(ctx, key)]
    for h in ctx.searcher.hits(tracks, [1.0] * len(tracks)):
        art = cover_art(h.path)
        if art is not None:
            return FileAnswer(data=art[0], media_type=art[1])
    raise not_found(f"cover art of {key[:60]}")


# ------------------------------------------------------------------------------------------------ neighbours


def sonic_similar(ctx):
    track = _song(ctx)
    count = ctx.params.integer("count", 10, low=1, high=MAX_LIST)
    hits = ctx.searcher.search_id(track, k=count)
    entries = songs(ctx, [h.id for h in hits])
    return {"sonicMatch": [{"entry": e, "similarity": x} for e, x in zip(entries, ranked_similarities(hits))]}


def sonic_path(ctx):
    from ..playlists import path as make_path

    start, end = _song(ctx, "startSongId"), _song(ctx, "endSongId")
    count = ctx.params.integer("count", 25, low=2, high=MAX_LIST)
    s = ctx.searcher
    if start == end or count == 2:
        ids = [start] if start == end else [start, end]
    else:
        hits, _ = make_path(s, start, end, steps=count - 2, by_id=True)
        ids = [h.id for h in hits]
    first = s.vector(start)
    sims = [similarity(float(first @ s.vector(i))) for i in ids]
    return {"sonicMatch": [{"entry": e, "similarity": x} for e, x in zip(songs(ctx, ids), sims)]}


def similar_songs(ctx, key: str = "similarSongs2"):
    lib, s, value = ctx.lib, ctx.searcher, ctx.params.text("id")
    count = ctx.params.integer("count", 50, low=1, high=MAX_LIST)
    if value in lib.artists:  # an artist's: like its tracks (a few of them), none of its own
        ar = lib.artists[value]
        seeds = [i for a in ar.albums for i in lib.song_ids(lib.albums[a])][:5]
        hits = s.search_seeds(seeds, by_id=True, k=count, exclude_artist_of_query=True)
    else:
        hits = s.search_id(song_id(ctx, value), k=count)
    return {key: {"song": songs(ctx, [h.id for h in hits])}}


# ------------------------------------------------------------------------------------------------ playlists


def _playlist_entry(ctx: Context, p: saved.Saved, with_songs: bool = False) -> dict:
    known = [(i, path) for i, path in p.entries if i is not None and ctx.lib.position(i) is not None]
    out = {"id": p.id, "name": p.name, "owner": ctx.user, "public": False, "songCount": len(known),
           "created": _iso(p.changed), "changed": _iso(p.changed)}
    if with_songs:
        entries = songs(ctx, [i for i, _ in known])
        out["duration"] = sum(e["duration"] for e in entries)
        out["entry"] = entries
    return out


def get_playlists(ctx):
    return {"playlists": {"playlist": [_playlist_entry(ctx, p) for p in saved.listing(ctx.store)]}}


def _saved(ctx: Context, name: str = "id") -> saved.Saved:
    p = saved.get(ctx.store, ctx.params.text(name))
    if p is None:
        raise not_found(f"playlist {ctx.params.text(name)[:60]}")
    return p


def get_playlist(ctx):
    return {"playlist": _playlist_entry(ctx, _saved(ctx), with_songs=True)}


def create_playlist(ctx):
    p = ctx.params
    ids = [song_id(ctx, v) for v in p.all("songId")]
    existing = _saved(ctx, "playlistId") if p.optional("playlistId") else None
    name = p.optional("name") or (existing.name if existing else None)
    if not name:
        raise SubsonicError(10, "required parameter is missing: name or playlistId")
    hits = ctx.searcher.hits(ids, [1.0] * len(ids))
    made = saved.save(ctx.store, name, hits, playlist_id=existing.id if existing else None)
    return {"playlist": _playlist_entry(ctx, saved.get(ctx.store, made.id), with_songs=True)}


def update_playlist(ctx):
    p = ctx.params
    current = _saved(ctx, "playlistId")
    ids = [i for i, _ in current.entries if i is not None and ctx.lib.position(i) is not None]
    drop = set()
    for v in p.all("songIndexToRemove"):
        try:
            drop.add(int(v))
        except ValueError:
            raise SubsonicError(GENERIC, f"songIndexToRemove must be a whole number, not {v[:40]!r}") from None
    ids = [i for n, i in enumerate(ids) if n not in drop] + [song_id(ctx, v) for v in p.all("songIdToAdd")]
    saved.save(ctx.store, p.optional("name") or current.name, ctx.searcher.hits(ids, [1.0] * len(ids)),
               playlist_id=current.id)
    return {}


def delete_playlist(ctx):
    if not saved.delete(ctx.store, ctx.params.text("id")):
        raise not_found(f"playlist {ctx.params.text('id')[:60]}")
    return {}


#: method name -> what answers it
METHODS = {
    "ping": ping, "getLicense": get_license, "getOpenSubsonicExtensions": get_extensions, "getUser": get_user,
    "getMusicFolders": get_music_folders, "getScanStatus": get_scan_status, "scrobble": scrobble,
    "getStarred": lambda ctx: {"starred": {}}, "getStarred2": lambda ctx: {"starred2": {}}, "getNowPlaying": now_playing,
    "getIndexes": get_indexes, "getMusicDirectory": get_music_directory, "getArtists": get_artists,
    "getArtist": get_artist, "getAlbum": get_album, "getSong": get_song, "getGenres": get_genres,
    "getAlbumList": get_album_list, "getAlbumList2": get_album_list2, "getRandomSongs": get_random_songs,
    "search2": lambda ctx: search3(ctx, "searchResult2"), "search3": search3,
    "stream": stream, "download": stream, "getCoverArt": get_cover_art,
    "getSimilarSongs": lambda ctx: similar_songs(ctx, "similarSongs"), "getSimilarSongs2": similar_songs,
    "getSonicSimilarTracks": sonic_similar, "findSonicPath": sonic_path,
    "getPlaylists": get_playlists, "getPlaylist": get_playlist, "createPlaylist": create_playlist,
    "updatePlaylist": update_playlist, "deletePlaylist": delete_playlist,
}
#: answered without credentials (the OpenSubsonic spec asks this of getOpenSubsonicExtensions)
PUBLIC = {"getOpenSubsonicExtensions"}
