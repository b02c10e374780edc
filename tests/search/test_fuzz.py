"""Bad input at every door: generated requests against the running service on loopback, bounded in count and
time. The JSON API is fuzzed from its own OpenAPI description with schemathesis (valid and invalid requests);
the Subsonic API with requests made of its methods and parameters, missing, repeated, malformed, huge and of
the wrong type. No request may get an HTTP 500 or a traceback; a Subsonic request always gets a Subsonic
answer."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import xml.etree.ElementTree as ET

import pytest
from conftest import make_library, running
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from soundalike.indexer.run import index_library
from soundalike.search.service import create_app
from soundalike.search.subsonic.routes import METHODS

USER, PASSWORD = "fuzz", "pw"
BUDGET_S = 120  # each fuzzing run stops generating past this


@pytest.fixture(scope="module")
def served(tmp_path_factory, trained_model):
    root = tmp_path_factory.mktemp("fuzz")
    library = make_library(root / "music", per_kind=2)
    store = root / "lib.soundalike"
    index_library(library.root, store, model=trained_model, workers=0, progress=False, log=lambda m: None)
    with running(create_app(store, subsonic=(USER, PASSWORD), max_upload=1 << 20)) as url:
        yield store, url


SCHEMATHESIS = """
import json, sys, time
import schemathesis
from schemathesis import GenerationMode
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable

url, budget = sys.argv[1], float(sys.argv[2])
schema = schemathesis.openapi.from_url(url + "/openapi.json")
sent, failures, start = [0], [], time.monotonic()
for result in schema.get_all_operations():
    op = result.ok()
    for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
        @settings(max_examples=25, deadline=None, database=None, suppress_health_check=list(HealthCheck))
        @given(case=op.as_strategy(mode))
        def call(case):
            if time.monotonic() - start > budget:
                return
            r = case.call(timeout=60)
            sent[0] += 1
            if r.status_code >= 500 or b"Traceback" in r.content:
                failures.append(f"{case.method} {case.formatted_path} {case.query} -> {r.status_code}")

        try:
            call()
        except Unsatisfiable:  # no invalid request of an operation without parameters
            pass
print(json.dumps({"sent": sent[0], "failures": failures}))
"""


def test_generated_requests_from_the_openapi_description_never_get_a_500(served):
    # (in a process of its own: TensorFlow, loaded by this one, sets the processor to flush subnormal floats,
    # and hypothesis then refuses to generate floats)
    store, url = served
    run = subprocess.run([sys.executable, "-c", SCHEMATHESIS, url, str(BUDGET_S)], capture_output=True, text=True,
                         timeout=BUDGET_S + 300)
    assert run.returncode == 0, run.stderr[-3000:]
    result = json.loads(run.stdout.strip().splitlines()[-1])
    print(f"schemathesis: {result['sent']} requests")
    assert result["sent"] >= 200 and not result["failures"], result["failures"][:5]


WORDS = st.sampled_from(["", " ", "0", "-1", "1", "2", "99999999999999999999", "1e9", "nan", "true", "al-x", "ar-x",
                         "../../etc/passwd", "/etc/passwd", "%00", "random", "newest", "byGenre", "tones", "json",
                         "xml", "jsonp", "enc:zz", "é", "\x00", "x" * 3000])
VALUES = st.one_of(WORDS, st.integers(-2**70, 2**70).map(str), st.text(max_size=40))
KEYS = ["id", "count", "size", "offset", "type", "query", "startSongId", "endSongId", "songId", "playlistId", "name",
        "genre", "artistCount", "albumCount", "songCount", "songOffset", "artistOffset", "albumOffset", "submission",
        "songIdToAdd", "songIndexToRemove", "f", "callback", "fromYear", "toYear", "musicFolderId", "maxBitRate"]
AUTH = st.sampled_from([{"u": USER, "p": PASSWORD}, {"u": USER, "p": PASSWORD}, {"u": USER, "p": PASSWORD},
                        {"u": USER}, {}, {"u": USER, "p": "wrong"}, {"u": USER, "t": "x", "s": "y"},
                        {"u": [USER, "other"], "p": [PASSWORD, PASSWORD]}])
REQUESTS = st.tuples(
    st.one_of(st.sampled_from(sorted(METHODS)), st.sampled_from(sorted(METHODS)).map(lambda m: m + ".view"),
              st.sampled_from(["getEverything", "ping.vie", "stream.view.view", "%2e%2e"])),
    AUTH,
    st.dictionaries(st.sampled_from(KEYS), st.one_of(VALUES, st.lists(VALUES, min_size=2, max_size=3)), max_size=6),
    st.booleans())


def test_generated_subsonic_requests_get_subsonic_answers_never_a_500(served):
    store, url = served
    sent, failures, start, answered = [0], [], time.monotonic(), {"ok": 0, "failed": 0, "file": 0}

    @settings(max_examples=600, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(REQUESTS)
    def call(request):
        if time.monotonic() - start > BUDGET_S:
            return
        method, auth, params, post = request
        query = urllib.parse.urlencode({**auth, **params}, doseq=True)
        target = f"{url}/rest/{method}"
        req = (urllib.request.Request(target, data=query.encode()) if post
               else urllib.request.Request(f"{target}?{query}"))
        try:
            with urllib.request.urlopen(req, timeout=60) as r:
                status, ctype, body = r.status, r.headers.get("content-type", ""), r.read()
        except urllib.error.HTTPError as err:
            status, ctype, body = err.code, err.headers.get("content-type", ""), err.read()
        sent[0] += 1
        where = f"{'POST' if post else 'GET'} {method} {query[:200]}"
        if status >= 500 or b"Traceback" in body:
            failures.append(f"{where} -> {status}")
            return
        if ctype.startswith("application/json"):
            answer = json.loads(body).get("subsonic-response")
            ok = answer is not None and answer["status"] in answered
            answered[answer["status"] if ok else "failed"] += 1
        elif ctype.startswith("text/xml"):
            ok = ET.fromstring(body).get("status") in answered
            answered[ET.fromstring(body).get("status") if ok else "failed"] += 1
        elif ctype.startswith("application/javascript"):
            ok = body.endswith(b");")
        else:  # a file: only stream, download and cover art send one, and only with good credentials
            name = method.removesuffix(".view")
            first = {k: v[0] if isinstance(v, list) else v for k, v in auth.items()}  # (a repeat: its first value)
            ok = (name in ("stream", "download", "getCoverArt") and status in (200, 206)
                  and first.get("p") == PASSWORD and first.get("u") == USER)
            answered["file"] += 1
        if not ok:
            failures.append(f"{where} -> {status} {ctype} {body[:120]!r}")

    call()
    print(f"subsonic fuzzing: {sent[0]} requests, answers {answered}")
    assert sent[0] >= 300 and not failures, failures[:5]
    assert answered["ok"] >= 30 and answered["failed"] >= 30  # (the generated requests reach the methods)
