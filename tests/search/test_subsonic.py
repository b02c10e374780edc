"""The Subsonic API under /rest/, driven by two Subsonic clients no one here wrote (py-opensonic and py-sonic)
and by plain HTTP: browse, search, stream with ranges, cover art, sonic neighbours and paths, playlists;
Subsonic errors for wrong credentials, unknown ids and any malformed request, never an HTTP 500."""

from __future__ import annotations

import asyncio
import hashlib
import json
import urllib.error
import urllib.parse
import urllib.request
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from conftest import KINDS, make_library, running

from soundalike.catalog import saved
from soundalike.indexer.run import index_library
from soundalike.search.service import create_app

USER, PASSWORD = "alice", "s3cret pass"
PNG = bytes.fromhex("89504e470d0a1a0a0000000d4948445200000001000000010806000000"
                    "1f15c4890000000d49444154789c63000100000500010d0a2db40000000049454e44ae426082")
NS = "{http://subsonic.org/restapi}"


def embed_cover(path: Path, data: bytes) -> None:
    from mutagen.flac import FLAC, Picture

    f = FLAC(str(path))
    pic = Picture()
    pic.type, pic.mime, pic.data = 3, "image/png", data
    f.add_picture(pic)
    f.save()


@pytest.fixture(scope="module")
def served(tmp_path_factory, trained_model):
    """(library, store, base URL) of a service with the Subsonic API on."""
    root = tmp_path_factory.mktemp("subsonic")
    library = make_library(root / "music")
    flac = next(p for p in sorted(library.files) if p.endswith(".flac") and "/tones/" in p)
    embed_cover(Path(flac), PNG)
    (root / "music" / "noise" / "cover.jpg").write_bytes(b"\xff\xd8\xff\xe0 a folder's cover")
    store = root / "lib.soundalike"
    index_library(library.root, store, model=trained_model, workers=0, progress=False, log=lambda m: None)
    with running(create_app(store, subsonic=(USER, PASSWORD))) as url:
        yield library, store, url


def rest(url: str, method: str, *, auth: dict | None = None, fmt: str | None = "json", data: bytes | None = None,
         **params):
    """(HTTP status, parsed body or raw bytes) of a /rest/ call by GET (or POST with ``data``)."""
    q = dict(auth if auth is not None else {"u": USER, "p": PASSWORD})
    q.update({"v": "1.16.1", "c": "test"})
    if fmt:
        q["f"] = fmt
    q.update(params)
    target = f"{url}/rest/{method}?{urllib.parse.urlencode(q, doseq=True)}"
    try:
        with urllib.request.urlopen(urllib.request.Request(target, data=data), timeout=60) as r:
            status, ctype, body = r.status, r.headers.get("content-type", ""), r.read()
    except urllib.error.HTTPError as err:
        status, ctype, body = err.code, err.headers.get("content-type", ""), err.read()
    if ctype.startswith("application/json"):
        data = json.loads(body)
        return status, data.get("subsonic-response", data)
    if ctype.startswith("text/xml"):
        return status, ET.fromstring(body)
    return status, body


def opensonic(url: str):
    import libopensonic

    host, port = url.rsplit(":", 1)
    return libopensonic.Connection(host, USER, PASSWORD, port=int(port), app_name="soundalike-test")


def test_an_opensonic_client_browses_searches_streams_and_gets_sonic_neighbours_and_paths(served):
    library, store, url = served
    c = opensonic(url)
    try:
        assert c.ping()
        ext = {e.name: e.versions for e in c.get_open_subsonic_extensions()}
        assert ext["sonicSimilarity"] == [1]
        artists = {a.name for i in c.get_artists().index for a in i.artist}
        assert artists == {f"{k} artist {j}" for k in KINDS for j in (0, 1)}
        albums = c.get_album_list2("alphabeticalByName", size=50)
        assert sorted(a.name for a in albums) == sorted({p.split("/")[-2] for p in library.files})
        tones = next(a for a in albums if a.name == "tones")
        songs = c.get_album(tones.id).song
        assert sorted(s.title for s in songs) == [f"tones {j}" for j in range(4)]
        found = c.search3("tones 2").song
        assert found and found[0].title == "tones 2"
        # streaming: the file's bytes, and a range request answered with just that range
        song = found[0]
        path = next(p for p in library.files if p.endswith(song.path.split("/")[-1]))
        whole = Path(path).read_bytes()
        res = c.stream(song.id)
        assert asyncio.run_coroutine_threadsafe(res.read(), c._loop).result() == whole
        part = c.stream(song.id, byte_range="bytes=100-1099")
        assert part.status == 206 and part.headers["Content-Range"] == f"bytes 100-1099/{len(whole)}"
        assert asyncio.run_coroutine_threadsafe(part.read(), c._loop).result() == whole[100:1100]
        # sonic neighbours: library songs, similarity in [0, 1], best first, never the song itself
        ids = {str(i) for a in albums for i in [s.id for s in c.get_album(a.id).song]}
        matches = c.get_sonic_similar_tracks(song.id, 6)
        sims = [m.similarity for m in matches]
        assert len(matches) == 6 and {m.entry.id for m in matches} <= ids and song.id not in {m.entry.id for m in matches}
        assert all(0.0 <= x <= 1.0 for x in sims) and sims == sorted(sims, reverse=True)
        # a path: the start song first, the end song last, each entry a library song
        end = next(s for s in c.get_album(next(a for a in albums if a.name == "noise").id).song)
        route = c.find_sonic_path(song.id, end.id, 6)
        assert route[0].entry.id == song.id and route[-1].entry.id == end.id and 2 < len(route) <= 6
        assert route[0].similarity == 1.0 and all(0.0 <= m.similarity <= 1.0 for m in route)
        assert {m.entry.id for m in route} <= ids
    finally:
        c.cleanup()


def test_a_py_sonic_client_gets_cover_art_similar_songs_and_keeps_playlists(served):
    import libsonic

    library, store, url = served
    host, port = url.rsplit(":", 1)
    c = libsonic.Connection(host, USER, PASSWORD, port=int(port))
    assert c.ping()
    albums = c.getAlbumList2("alphabeticalByName", size=20)["albumList2"]["album"]
    by_name = {a["name"]: a for a in albums}
    assert c.getCoverArt(by_name["tones"]["coverArt"]).read() == PNG  # embedded in one of its files
    assert c.getCoverArt(by_name["noise"]["coverArt"]).read().startswith(b"\xff\xd8\xff")  # cover.jpg beside them
    songs = c.getAlbum(by_name["beats"]["id"])["album"]["song"]
    similar = c.getSimilarSongs2(songs[0]["id"], count=5)["similarSongs2"]["song"]
    assert len(similar) == 5 and songs[0]["id"] not in [s["id"] for s in similar]
    made = c.createPlaylist(name="Beats & more", songIds=[s["id"] for s in songs[:3]])["playlist"]
    assert made["songCount"] == 3 and [e["id"] for e in made["entry"]] == [s["id"] for s in songs[:3]]
    listed = c.getPlaylists()["playlists"]["playlist"]
    assert [p["name"] for p in listed] == ["Beats & more"]
    # saved as an M3U file any player reads: absolute paths of the library's files, in order
    m3u = (store / saved.FOLDER / f"{made['id']}{saved.SUFFIX}").read_text(encoding="utf-8")
    paths = [ln for ln in m3u.splitlines() if ln and not ln.startswith("#")]
    assert m3u.startswith("#EXTM3U") and len(paths) == 3 and all(p in library.files for p in paths)
    c.updatePlaylist(made["id"], songIdsToAdd=[similar[0]["id"]], songIndexesToRemove=[0])
    entries = c.getPlaylist(made["id"])["playlist"]["entry"]
    assert [e["id"] for e in entries] == [s["id"] for s in songs[1:3]] + [similar[0]["id"]]
    c.deletePlaylist(made["id"])
    assert c.getPlaylists()["playlists"].get("playlist", []) == []


def test_credentials_are_checked_the_subsonic_ways_and_errors_carry_subsonic_codes(served):
    library, store, url = served
    salt = "c19b2d"
    token = hashlib.md5((PASSWORD + salt).encode()).hexdigest()
    assert rest(url, "ping", auth={"u": USER, "t": token, "s": salt})[1]["status"] == "ok"
    assert rest(url, "ping.view", auth={"u": USER, "p": "enc:" + PASSWORD.encode().hex()})[1]["status"] == "ok"
    for auth in ({"u": USER, "p": "wrong"}, {"u": "bob", "p": PASSWORD}, {"u": USER, "t": token, "s": "other"},
                 {"u": USER, "p": "enc:zz"}):
        status, body = rest(url, "getArtists", auth=auth)
        assert status == 200 and body["status"] == "failed" and body["error"]["code"] == 40
    status, body = rest(url, "getArtists", auth={"u": USER})
    assert body["error"]["code"] == 10
    # XML by default, in Subsonic's namespace
    status, root = rest(url, "ping", auth={"u": USER, "p": "wrong"}, fmt=None)
    assert root.tag == NS + "subsonic-response" and root.get("status") == "failed"
    assert root.find(NS + "error").get("code") == "40"
    status, root = rest(url, "getAlbumList2", fmt=None, type="newest")
    assert root.get("status") == "ok" and len(root.find(NS + "albumList2").findall(NS + "album")) == len(KINDS)
    # unknown ids are error 70, and nothing but the library's files is ever served
    for method, params in (("getSong", {"id": "999999"}), ("getAlbum", {"id": "al-nothing"}),
                           ("stream", {"id": "../../etc/passwd"}), ("download", {"id": "/etc/passwd"}),
                           ("getCoverArt", {"id": "../lib.soundalike/manifest.json"}),
                           ("getSonicSimilarTracks", {"id": "al-x"}), ("getPlaylist", {"id": "../../etc/passwd"})):
        status, body = rest(url, method, **params)
        assert status == 200 and body["status"] == "failed" and body["error"]["code"] == 70, (method, body)
    # the extensions are listed without credentials; an unknown method is a 404 with a Subsonic error
    assert rest(url, "getOpenSubsonicExtensions", auth={})[1]["status"] == "ok"
    status, body = rest(url, "getEverything")
    assert status == 404 and body["error"]["code"] == 0
    # a form POST (what clients send to keep credentials out of URLs)
    form = urllib.parse.urlencode({"u": USER, "p": PASSWORD, "f": "json", "query": "beats"}).encode()
    status, body = rest(url, "search3", auth={}, fmt=None, data=form)
    assert body["status"] == "ok" and {s["album"] for s in body["searchResult3"]["song"]} == {"beats"}


def test_without_credentials_the_subsonic_api_is_off(tmp_path, trained_model):
    library = make_library(tmp_path / "music", per_kind=1)
    store = tmp_path / "s.soundalike"
    index_library(library.root, store, model=trained_model, workers=0, progress=False, log=lambda m: None)
    with running(create_app(store)) as url:
        status, _ = rest(url, "ping")
        assert status == 404


def test_the_credentials_come_from_a_file_or_both_variables_never_a_default(tmp_path):
    from soundalike.errors import SoundalikeError
    from soundalike.search.subsonic import credentials

    assert credentials(env={}) is None
    assert credentials(env={"SOUNDALIKE_SUBSONIC_USER": "u", "SOUNDALIKE_SUBSONIC_PASSWORD": "p:w"}) == ("u", "p:w")
    with pytest.raises(SoundalikeError, match="both"):
        credentials(env={"SOUNDALIKE_SUBSONIC_USER": "u"})
    f = tmp_path / "creds"
    f.write_text("\nbob:pa:ss\n")
    assert credentials(f) == ("bob", "pa:ss")
    f.write_text("bob\n")
    with pytest.raises(SoundalikeError, match=str(f)):
        credentials(f)
