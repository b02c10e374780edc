"""The HTTP service (``soundalike serve``), started on 127.0.0.1 on a free port and stopped, queried over real
HTTP as a client would."""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
import uuid

import pytest
from click.testing import CliRunner
from conftest import make_library, reencoded, running, synth, write_audio

pytest.importorskip("fastapi")

from soundalike.cli import main  # noqa: E402
from soundalike.indexer.run import index_library  # noqa: E402
from soundalike.search.service import TOKEN_HEADER, create_app  # noqa: E402


def get(url: str, headers: dict | None = None) -> tuple[int, dict, bytes]:
    req = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as err:
        return err.code, dict(err.headers), err.read()


def upload(url: str, name: str, data: bytes) -> tuple[int, bytes]:
    boundary = uuid.uuid4().hex
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{name}\"\r\n"
            f"Content-Type: application/octet-stream\r\n\r\n").encode() + data + f"\r\n--{boundary}--\r\n".encode()
    req = urllib.request.Request(url, data=body, headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
    try:
        with urllib.request.urlopen(req, timeout=120) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


@pytest.fixture(scope="module")
def served(tmp_path_factory, trained_model):
    """(library, store, base URL) of a running service over a freshly indexed library."""
    root = tmp_path_factory.mktemp("service")
    library = make_library(root / "music")
    store = root / "lib.soundalike"
    index_library(library.root, store, model=trained_model, workers=0, progress=False, log=lambda m: None)
    with running(create_app(store, max_upload=2 << 20)) as url:
        yield library, store, url


def test_search_by_id_find_similar_and_track_metadata(served):
    library, store, url = served
    status, _, body = get(f"{url}/api/find?q=tones%202")
    found = json.loads(body)
    assert status == 200 and found[0]["title"] == "tones 2"
    tid = found[0]["id"]
    status, _, body = get(f"{url}/api/search?id={tid}&k=4")
    hits = json.loads(body)
    assert status == 200 and len(hits) == 4 and tid not in [h["id"] for h in hits]
    assert [h["genre"] for h in hits].count("tones") >= 3  # the synthesised kinds are far apart
    status, _, body = get(f"{url}/api/similar?id={tid}&count=5")
    similar = json.loads(body)
    assert status == 200 and len(similar) == 5 and all(0.0 <= s["similarity"] <= 1.0 for s in similar)
    assert [s["id"] for s in similar] == [h["id"] for h in json.loads(get(f"{url}/api/search?id={tid}&k=5")[2])]
    assert similar[0]["similarity"] >= similar[-1]["similarity"]
    status, headers, body = get(f"{url}/api/search?id={tid}&k=3&format=m3u")
    lines = body.decode().splitlines()
    assert status == 200 and "mpegurl" in headers["content-type"] and lines[0] == "#EXTM3U"
    assert len([l for l in lines if not l.startswith("#")]) == 3
    assert json.loads(get(f"{url}/api/tracks/{tid}")[2])["path"] in library.files
    assert get(f"{url}/api/tracks/999999")[0] == 404
    for path in ("search?id=999999", "similar?id=999999", f"path?from={tid}&to=999999"):
        status, _, body = get(f"{url}/api/{path}")
        assert status == 404 and "no track with id 999999" in json.loads(body)["detail"], (path, status, body)
    status, _, body = get(f"{url}/api/search?id={tid}&genre=polka")
    assert status == 400 and "unknown genre polka" in json.loads(body)["detail"]
    assert get(f"{url}/openapi.json")[0] == 200 and get(f"{url}/docs")[0] == 200
    status, _, body = get(f"{url}/map")
    assert status == 200 and body.decode().count('"id": ') == len(library.files)  # the map, a point a track
    other = json.loads(get(f"{url}/api/find?q=beats%203")[2])[0]["id"]
    status, _, body = get(f"{url}/api/path?from={tid}&to={other}&steps=3")
    route = json.loads(body)
    assert status == 200 and route["tracks"][0]["id"] == tid and route["tracks"][-1]["id"] == other
    status, _, body = get(f"{url}/api/playlist?id={tid}&length=5&max_per_artist=1")
    mix = json.loads(body)
    assert status == 200 and len(mix) == 5 and len({h["artist"] for h in mix}) == 5 - sum(h["artist"] is None for h in mix)


def test_upload_search_and_its_refusals(served, tmp_path):
    library, store, url = served
    src = sorted(library.files)[7]
    copy = reencoded(src, tmp_path / "copy.flac")
    status, body = upload(f"{url}/api/search?k=3", "copy.flac", copy.read_bytes())
    assert status == 200 and json.loads(body)[0]["genre"] == library.files[src]
    # an upload takes every filter a search by id takes (the command line's options, by the same names)
    other = next(g for g in sorted(set(library.files.values())) if g != library.files[src])
    status, body = upload(f"{url}/api/search?k=3&genre={other}&max_per_artist=1", "copy.flac", copy.read_bytes())
    hits = json.loads(body)
    assert status == 200 and hits and {h["genre"] for h in hits} == {other}
    assert len({h["artist"] for h in hits}) == len(hits)
    status, body = upload(f"{url}/api/search?k=3&bpm_min=1&bpm_max=2", "copy.flac", copy.read_bytes())
    assert status == 200 and json.loads(body) == []  # no track is that slow
    status, body = upload(f"{url}/api/search?k=3&key=H%20dorian", "copy.flac", copy.read_bytes())
    assert status == 400 and "H dorian" in json.loads(body)["detail"]
    status, body = upload(f"{url}/api/search", "notes.txt", b"this is not audio\n" * 100)
    assert status == 415 and "notes.txt" in json.loads(body)["detail"]
    big = write_audio(tmp_path / "big.wav", synth("noise", seed=1, seconds=60.0))  # 2.6 MB, over the 2 MB limit
    status, body = upload(f"{url}/api/search", "big.wav", big.read_bytes())
    assert status == 413 and "larger than 2 MB" in json.loads(body)["detail"]


def test_audio_is_streamed_with_ranges_and_only_the_stores_files(served):
    library, store, url = served
    hit = json.loads(get(f"{url}/api/find?q=beats%201")[2])[0]
    data = open(hit["path"], "rb").read()
    status, headers, body = get(f"{url}/api/tracks/{hit['id']}/audio", {"Range": "bytes=100-199"})
    assert status == 206 and body == data[100:200] and headers["content-range"] == f"bytes 100-199/{len(data)}"
    status, _, body = get(f"{url}/api/tracks/{hit['id']}/audio")
    assert status == 200 and body == data
    for bad in ("..%2F..%2F..%2Fetc%2Fpasswd", "%2Fetc%2Fpasswd", "-1"):
        status, _, body = get(f"{url}/api/tracks/{bad}/audio")
        assert status in (404, 422) and b"root:" not in body


def test_a_token_guards_every_request_and_other_addresses_need_one(served):
    library, store, _ = served
    with running(create_app(store, token="s3cret")) as url:
        assert get(f"{url}/api/info")[0] == 401
        assert get(f"{url}/api/info", {TOKEN_HEADER: "wrong"})[0] == 401
        status, _, body = get(f"{url}/api/info", {TOKEN_HEADER: "s3cret"})
        assert status == 200 and json.loads(body)["tracks"] == len(library.files)
        assert get(f"{url}/api/info", {"Authorization": "Bearer s3cret"})[0] == 200
    res = CliRunner().invoke(main, ["serve", "--db", str(store), "--host", "0.0.0.0"], env={"SOUNDALIKE_TOKEN": ""})
    assert res.exit_code == 2 and "set a token" in res.output


def test_a_commit_is_picked_up_while_requests_are_in_flight(tmp_path, trained_model):
    library = make_library(tmp_path / "music", per_kind=2)
    store = tmp_path / "lib.soundalike"
    index_library(library.root, store, model=trained_model, workers=0, progress=False, log=lambda m: None)
    with running(create_app(store)) as url:
        tid = json.loads(get(f"{url}/api/find?q=noise%201")[2])[0]["id"]
        statuses, stop = [], threading.Event()

        def hammer():
            while not stop.is_set():
                statuses.append(get(f"{url}/api/search?id={tid}&k=3")[0])

        threads = [threading.Thread(target=hammer) for _ in range(3)]
        for t in threads:
            t.start()
        write_audio(library.root / "late" / "late.flac", synth("beats", seed=77), tags={"title": "the late one"})
        index_library(library.root, store, model=trained_model, workers=0, progress=False, log=lambda m: None)
        time.sleep(0.3)
        stop.set()
        for t in threads:
            t.join(30)
        found = json.loads(get(f"{url}/api/find?q=late%20one")[2])
        assert [h["title"] for h in found] == ["the late one"]
        assert statuses and set(statuses) == {200}, sorted(set(statuses))


def test_concurrent_requests_of_different_filters_answer_as_one_at_a_time_across_a_commit(tmp_path, trained_model):
    """Many request threads share one searcher (and its cache of filter bitmaps, more filters than it keeps)
    while a commit lands: every answer equals the one the same request gets alone from the same generation."""
    from concurrent.futures import ThreadPoolExecutor

    from soundalike.search.service import GENERATION_HEADER

    library = make_library(tmp_path / "music", per_kind=3)
    for n, genre in enumerate(("ambient", "drone", "chiptune")):  # more genres: more filters to combine
        write_audio(library.root / genre / f"{genre}.flac", synth(("tones", "noise", "beats")[n], seed=50 + n),
                    tags={"title": f"{genre} piece", "artist": f"{genre} artist", "genre": genre})
    store = tmp_path / "lib.soundalike"
    index_library(library.root, store, model=trained_model, workers=0, progress=False, log=lambda m: None)
    kinds = sorted(set(library.files.values()) | {"ambient", "drone", "chiptune"})
    with running(create_app(store)) as url:
        ids = [h["id"] for h in json.loads(get(f"{url}/api/find?q=0")[2])][:3]
        genre_sets = [[a] for a in kinds] + [[a, b] for i, a in enumerate(kinds) for b in kinds[i + 1:]]
        filters = ["".join(f"&genre={g}" for g in gs) + f"&genre_source={src}"
                   for gs in genre_sets for src in ("tags", "any")]
        assert len(filters) > 16  # more filters than the searcher keeps bitmaps of
        requests = [f"search?id={i}&k=4{f}{extra}" for i in ids for f in filters for extra in ("", "&max_per_artist=1")]
        requests += [f"search?id={ids[0]}&id={ids[1]}&k=5", f"similar?id={ids[2]}&count=6"]

        def ask(req):
            status, headers, body = get(f"{url}/api/{req}")
            assert status == 200, (req, status, body)
            return req, int(headers[GENERATION_HEADER.lower()]), json.loads(body)

        alone = {}
        for req in requests:
            _, gen, body = ask(req)
            alone[(req, gen)] = body
        first = {gen for _, gen in alone}
        stop = threading.Event()

        def hammer(offset):
            got, at = [], offset
            while not stop.is_set():
                got.append(ask(requests[at % len(requests)]))
                at += 7
            return got

        with ThreadPoolExecutor(4) as pool:
            hammering = [pool.submit(hammer, n) for n in range(4)]
            time.sleep(0.5)
            write_audio(library.root / "late" / "late.flac", synth("beats", seed=77), tags={"title": "the late one"})
            index_library(library.root, store, model=trained_model, workers=0, progress=False, log=lambda m: None)
            for req in requests:  # the new generation, one request at a time
                _, gen, body = ask(req)
                alone[(req, gen)] = body
            time.sleep(0.5)
            stop.set()
            answers = [a for f in hammering for a in f.result(timeout=300)]
        second = {gen for _, gen in alone} - first
        assert len(first) == 1 and len(second) == 1 and max(second) > max(first)
        compared = [(req, gen, body) for req, gen, body in answers if (req, gen) in alone]
        assert len(compared) >= len(answers) * 0.9  # answered from a generation asked alone too
        assert {gen for _, gen, _ in compared} == first | second  # both generations answered concurrently
        for req, gen, body in compared:
            assert body == alone[(req, gen)], (req, gen)
