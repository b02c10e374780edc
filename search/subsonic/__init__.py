"""A Subsonic-compatible API under ``/rest/``: a Subsonic app browses, searches, streams and gets sound-alike
radio from the store with no other server (OpenSubsonic's ``sonicSimilarity`` extension included).

On only when credentials are set (``SOUNDALIKE_SUBSONIC_USER`` and ``SOUNDALIKE_SUBSONIC_PASSWORD``, or a
file); every method but ``getOpenSubsonicExtensions`` needs them. Methods answer with or without the ``.view``
suffix, by GET or by a form POST. Whatever goes wrong answers a Subsonic error, never an HTTP 500.
"""

# (no ``from __future__ import annotations``: FastAPI reads the endpoint's annotations, which name classes
# imported inside router, so they must be evaluated where the endpoint is defined)
import logging
import threading

from .protocol import GENERIC, NOT_FOUND, Params, SubsonicError, authenticate, credentials, envelope, render

__all__ = ["credentials", "router"]

log = logging.getLogger("soundalike.subsonic")


class _Libraries:
    """The library view of the newest generation, made once a generation (the previous one is dropped)."""

    def __init__(self):
        self._lock = threading.Lock()
        self._made = None  # (generation, its Library)

    def of(self, searcher):
        from .browse import Library

        gen = searcher.store.generation
        made = self._made
        if made is not None and made[0] == gen:
            return made[1]
        with self._lock:
            if self._made is None or self._made[0] != gen:
                self._made = (gen, Library(searcher))
            return self._made[1]


def answer(method: str, params: Params, current, libraries: _Libraries, store: str, user: str, password: str):
    """A method's answer: (payload or FileAnswer, None), or (None, SubsonicError)."""
    from ...errors import NotFound, SoundalikeError
    from .routes import METHODS, PUBLIC, Context

    name = method[:-5] if method.endswith(".view") else method
    try:
        handler = METHODS.get(name)
        if name not in PUBLIC:
            authenticate(params, user, password)
        if handler is None:
            raise SubsonicError(GENERIC, f"unknown method {name[:60]!r}")
        s = current.get()
        return handler(Context(params, s, libraries.of(s), store, user)), None
    except SubsonicError as err:
        return None, err
    except NotFound as err:
        return None, SubsonicError(NOT_FOUND, str(err))
    except SoundalikeError as err:
        return None, SubsonicError(GENERIC, str(err))
    except Exception as err:  # a bug: logged with its traceback, answered as a Subsonic error
        log.exception("subsonic %s failed", name)
        return None, SubsonicError(GENERIC, f"internal error ({type(err).__name__})")


def router(current, store: str, user: str, password: str):
    """The FastAPI router of ``/rest/{method}`` (GET, and POST with a form body)."""
    from fastapi import APIRouter, Request
    from fastapi.responses import FileResponse, Response
    from starlette.concurrency import run_in_threadpool

    from .routes import FileAnswer

    libraries = _Libraries()
    r = APIRouter()

    class RangedFile(FileResponse):
        """A file that honours a Range header whatever the method (Subsonic clients may POST for a stream)."""

        async def __call__(self, scope, receive, send):
            ranged = {**scope, "method": "GET"} if scope.get("method") == "POST" else scope
            await super().__call__(ranged, receive, send)

    @r.api_route("/rest/{method}", methods=["GET", "POST", "HEAD"], include_in_schema=False)
    async def rest(method: str, request: Request):
        items = list(request.query_params.multi_items())
        if request.method == "POST" and "form" in request.headers.get("content-type", ""):
            try:
                form = await request.form()
                items += [(k, v) for k, v in form.multi_items() if isinstance(v, str)]
            except Exception:  # a malformed body: read as no parameters
                pass
        params = Params(items)
        result, error = await run_in_threadpool(answer, method, params, current, libraries, store, user, password)
        if isinstance(result, FileAnswer):
            if result.path is not None:
                return RangedFile(result.path, media_type=result.media_type, filename=result.filename,
                                  content_disposition_type="inline")
            return Response(result.data, media_type=result.media_type)
        body, media = render(envelope(result, error), params.optional("f"), params.optional("callback"))
        unknown = error is not None and str(error).startswith("unknown method")
        return Response(body, status_code=404 if unknown else 200, media_type=media)

    return r
