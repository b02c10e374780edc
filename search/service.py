"""The HTTP service of ``soundalike serve``: one loaded store answering many requests (FastAPI on uvicorn).

JSON endpoints under ``/api`` (OpenAPI at ``/docs`` and ``/openapi.json``); ``format=m3u`` gives a playlist.
``similar`` follows the OpenSubsonic ``sonicSimilarity`` extension's meaning (``getSonicSimilarTracks``): a
track id and a count in, tracks with a similarity in [0, 1] out, 1 for identical ((1 + cosine) / 2). A track's audio is served from the path the store records for it and nothing else, with HTTP range
requests so a browser can seek. A commit by a running ``index`` is picked up by the next request: each request
takes the searcher of the newest generation (the one it started with answers it to the end).

Bound to anything but loopback, every API request needs the token the user set, in the ``X-Soundalike-Token``
header (or ``Authorization: Bearer``, or a ``token`` query parameter for what a browser loads by URL). ``/``
is the web page (``search/web/index.html``: plain HTML and JavaScript, nothing fetched from elsewhere).
"""

# (no ``from __future__ import annotations``: FastAPI reads the endpoints' annotations, which name classes
# imported inside create_app, so they must be evaluated where the endpoints are defined)
import hmac
import ipaddress
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .current import Current

#: uploads larger than this are refused (413): a clip or a song, not an album
MAX_UPLOAD = 64 << 20
TOKEN_HEADER = "X-Soundalike-Token"
#: the store generation a search was answered from (a commit makes the next one)
GENERATION_HEADER = "X-Soundalike-Generation"


def is_loopback(host: str) -> bool:
    if host in ("localhost", ""):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def create_app(store: str | os.PathLike, *, token: str | None = None, max_upload: int = MAX_UPLOAD,
               subsonic: tuple[str, str] | None = None):
    """The FastAPI application serving ``store``; ``token``: required on every request when set; ``subsonic``:
    (user, password) of the Subsonic API under ``/rest/`` (None: off)."""
    from fastapi import Depends, FastAPI

    from .current import Current

    current = Current(store)
    app = FastAPI(title="soundalike", description="Music search by sound: tracks that sound like a track, a file "
                  "or several seeds.", version="1")
    guard = [Depends(_authoriser(token))]
    for router in (_pages(current, guard), _track_routes(current, guard), _search_routes(current, guard, max_upload),
                   _list_routes(current, guard)):
        app.include_router(router)
    if subsonic is not None:
        from . import subsonic as api

        app.include_router(api.router(current, str(store), *subsonic))
    return app


def _authoriser(token: str | None):
    """The dependency every guarded route has: the token, from a header, a bearer or (for what a browser loads
    by URL: an <audio> element, a download link) a query parameter; nothing when no token is set."""
    from fastapi import HTTPException, Request

    def authorised(request: Request) -> None:
        if token is None:
            return
        given = request.headers.get(TOKEN_HEADER) or request.query_params.get("token") or ""
        bearer = request.headers.get("authorization", "")
        if bearer.lower().startswith("bearer "):
            given = given or bearer[7:]
        if not hmac.compare_digest(given.encode(), token.encode()):
            raise HTTPException(401, f"missing or wrong token (send it in the {TOKEN_HEADER} header)")

    return authorised


def _answer(call, *args, **kwargs):
    """``call(*args, **kwargs)``; a SoundalikeError becomes its HTTP status with its one line."""
    from fastapi import HTTPException

    from ..errors import SoundalikeError

    try:
        return call(*args, **kwargs)
    except SoundalikeError as err:
        raise HTTPException(err.http_status, str(err)) from None


def _hits_out(hits, fmt: str, generation: int, body=None):
    """Hits as JSON (``body``, when given, instead of the hits' records), or as an M3U playlist; the store
    generation that answered is in the ``X-Soundalike-Generation`` header."""
    from fastapi.responses import JSONResponse, PlainTextResponse

    from .searcher import m3u

    headers = {GENERATION_HEADER: str(generation)}
    if fmt == "m3u":
        return PlainTextResponse(m3u(hits), media_type="audio/x-mpegurl", headers=headers)
    return JSONResponse([h.to_dict() for h in hits] if body is None else body, headers=headers)


FORMAT_PATTERN = "^(json|m3u)$"


def _pages(current: "Current", guard):
    """The web page and the library map."""
    from fastapi import APIRouter
    from fastapi.responses import HTMLResponse

    router = APIRouter()
    page = (Path(__file__).parent / "web" / "index.html").read_text(encoding="utf-8")
    maps_made: dict = {}

    @router.get("/", response_class=HTMLResponse, include_in_schema=False)
    def index():
        """The web page: find a track, hear it and its neighbours, make a mix or a path, save it (everything
        it needs is in the page; its API calls carry the token)."""
        return page

    @router.get("/map", response_class=HTMLResponse, dependencies=guard, include_in_schema=False)
    def library_map():
        """The library's map (``soundalike map``), made once per generation; a click plays a track."""
        from . import maps

        s = current.get()
        if s.store.generation not in maps_made:
            xy, hits, labels, figures = maps.make_map(s)
            maps_made.clear()
            maps_made[s.store.generation] = maps.html(xy, hits, labels, f"{len(hits)} tracks, {figures['method']}")
        return maps_made[s.store.generation]

    return router


def _track_routes(current: "Current", guard):
    """What the store holds: its summary, a track, its audio, tracks by text."""
    from fastapi import APIRouter, HTTPException, Query
    from fastapi.responses import FileResponse

    router = APIRouter(dependencies=guard)

    @router.get("/api/info")
    def info():
        s = current.get()
        return {"tracks": len(s), "generation": s.store.generation, "encoder": s.store.encoder_info.get("name"),
                "genres": s.genres("tags"), "excerpts": bool(s.store.manifest.get("windows"))}

    @router.get("/api/tracks/{track_id}")
    def track(track_id: int):
        return _answer(current.get().hit, track_id).to_dict()

    @router.get("/api/tracks/{track_id}/audio")
    def audio(track_id: int):
        """The track's audio file as the store records it (range requests supported)."""
        hit = _answer(current.get().hit, track_id)
        if not os.path.isfile(hit.path):
            raise HTTPException(404, f"track {track_id}: its file {hit.path} is out of reach")
        return FileResponse(hit.path, filename=os.path.basename(hit.path))

    @router.get("/api/find")
    def find(q: str, limit: int = Query(20, ge=1, le=1000)):
        return [h.to_dict() for h in _answer(current.get().find, q, limit=limit)]

    return router


def _search_routes(current: "Current", guard, max_upload: int):
    """Tracks like a track, like several, or like an uploaded file or clip."""
    from fastapi import APIRouter, Depends, File, HTTPException, UploadFile
    from fastapi import Query as Query_

    from .query import Query, run
    from .searcher import QueryError

    router = APIRouter(dependencies=guard)

    class Filters:
        """The filters every search takes, from query parameters: the command line's options, by the same names."""

        def __init__(self, k: int = Query_(10, ge=1, le=1000), genre: list[str] = Query_([]),
                     genre_source: str = Query_("tags", pattern="^(tags|predicted|any)$"),
                     max_per_artist: int | None = Query_(None, ge=1), max_per_album: int | None = Query_(None, ge=1),
                     exclude_artist_of_query: bool = Query_(False, description="leave out the query's artist"),
                     keep_copies: bool = Query_(False, description="near-duplicates as results of their own"),
                     bpm_min: float | None = Query_(None, gt=0, description="estimated tempo at least this"),
                     bpm_max: float | None = Query_(None, gt=0, description="estimated tempo at most this"),
                     key: list[str] = Query_([], description="estimated key, e.g. 'A minor' or Am (repeatable)"),
                     compatible_key: bool = Query_(False, description="widen key (or the query's own) to its "
                                                                      "relative and the keys a fifth above and below"),
                     tag: list[str] = Query_([], description="the encoder's predicted tags (repeatable)")):
            self.options = {"k": k, "genres": genre, "genre_source": genre_source, "max_per_artist": max_per_artist,
                            "max_per_album": max_per_album, "exclude_artist_of_query": exclude_artist_of_query,
                            "keep_copies": keep_copies, "bpm_min": bpm_min, "bpm_max": bpm_max, "keys": key,
                            "compatible_key": compatible_key, "tags": tag}

    @router.get("/api/search")
    def search(id: list[int] = Query_(..., description="one track id, or several: tracks like all of them"),
               filters: Filters = Depends(), format: str = Query_("json", pattern=FORMAT_PATTERN)):
        s = current.get()
        result = _answer(run, s, _answer(Query.parse, id, by_id=True, **filters.options))
        return _hits_out(result.hits, format, s.store.generation)

    @router.post("/api/search")
    def search_file(file: UploadFile = File(..., description="an audio file or a clip of one"),
                    filters: Filters = Depends(),
                    excerpt: bool | None = Query_(None, description="match as an excerpt (default: when shorter "
                                                  "than a track vector's span)"),
                    format: str = Query_("json", pattern=FORMAT_PATTERN)):
        s = current.get()
        suffix = Path(file.filename or "upload").suffix[:16]
        with tempfile.TemporaryDirectory(prefix="soundalike-upload-") as tmp:
            dest = Path(tmp) / f"upload{suffix}"
            size = 0
            with open(dest, "wb") as out:
                while chunk := file.file.read(1 << 20):
                    size += len(chunk)
                    if size > max_upload:
                        raise HTTPException(413, f"upload larger than {max_upload >> 20} MB")
                    out.write(chunk)
            q = _answer(Query.parse, [str(dest)], excerpt=excerpt, **filters.options)
            try:
                hits = run(s, q).hits
            except QueryError as err:
                name = file.filename or "upload"
                raise HTTPException(415, str(err).replace(str(dest), name)) from None
        return _hits_out(hits, format, s.store.generation)

    return router


def _list_routes(current: "Current", guard):
    """Lists for players: sonicSimilarity's similar tracks and path, and a mix around seeds."""
    from fastapi import APIRouter, Query

    router = APIRouter(dependencies=guard)

    @router.get("/api/similar")
    def similar(id: int, count: int = Query(20, ge=1, le=1000), format: str = Query("json", pattern=FORMAT_PATTERN)):
        """sonicSimilarity's getSonicSimilarTracks: ``count`` tracks like track ``id``, each with a similarity in
        [0, 1] (1: identical; (1 + cosine) / 2)."""
        from .searcher import ranked_similarities

        s = current.get()
        hits = _answer(s.search_id, id, k=count)
        return _hits_out(hits, format, s.store.generation, body=[
            {"id": h.id, "similarity": x, "track": h.to_dict()} for h, x in zip(hits, ranked_similarities(hits))])

    @router.get("/api/playlist")
    def playlist(id: list[int] = Query(..., description="seed track ids"), length: int = Query(20, ge=1, le=1000),
                 genre: list[str] = Query([]), max_per_artist: int = Query(2, ge=0), max_per_album: int = Query(0, ge=0),
                 format: str = Query("json", pattern=FORMAT_PATTERN)):
        """A listening list around the seeds: diverse (0: no limit), near-duplicates collapsed, small steps."""
        from .playlists import playlist as make

        s = current.get()
        hits = _answer(make, s, id, by_id=True, length=length, genres=genre,
                       max_per_artist=max_per_artist or None, max_per_album=max_per_album or None)
        return _hits_out(hits, format, s.store.generation)

    @router.get("/api/path")
    def path(start: int = Query(..., alias="from"), end: int = Query(..., alias="to"), steps: int = Query(8, ge=1, le=1000),
             format: str = Query("json", pattern=FORMAT_PATTERN)):
        """sonicSimilarity's findSonicPath: tracks leading from one track to another, each closer to the end."""
        from .playlists import path as make

        s = current.get()
        hits, figures = _answer(make, s, start, end, steps=steps, by_id=True)
        return _hits_out(hits, format, s.store.generation,
                         body={"tracks": [h.to_dict() for h in hits], "smoothness": figures})

    return router


def serve(store: str | os.PathLike, *, host: str = "127.0.0.1", port: int = 8731, token: str | None = None,
          log_level: str = "warning", subsonic: tuple[str, str] | None = None) -> None:
    """Run the service until interrupted. Binding to anything but loopback needs a ``token``."""
    import uvicorn

    if not is_loopback(host) and not token:
        raise ValueError(f"binding to {host} opens the store to the network: set a token (--token, or the "
                         f"SOUNDALIKE_TOKEN environment variable) that clients send in {TOKEN_HEADER}")
    uvicorn.run(create_app(store, token=token, subsonic=subsonic), host=host, port=port, log_level=log_level)
