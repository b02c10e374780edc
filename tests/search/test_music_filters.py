"""Tempo and key as a user meets them: estimated while indexing, stored, shown by search, and filters."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from soundalike.cli import main

SR = 22050
NOTE = {"C": 0, "D": 2, "F#": 6, "A": 9}


def voice(freq, seconds):
    t = np.arange(int(seconds * SR)) / SR
    return sum(np.sin(2 * np.pi * freq * h * t) / h for h in (1, 2, 3)) * np.exp(-1.5 * t)


def song(tonic: str, minor: bool, bpm: float, seconds: float = 40.0) -> np.ndarray:
    """Block chords of i-iv-V-i (minor) or I-IV-V-I (major), a chord a bar, over a kick and hi-hat pattern."""
    n = int(seconds * SR)
    y = np.zeros(n + SR)
    beat = 60.0 / bpm
    root = 48 + NOTE[tonic]
    third = 3 if minor else 4
    chords = [(0, third, 7), (5, 5 + third, 12), (7, 11, 14), (0, third, 7)]
    at, i = 0, 0
    while at < n:
        for m in chords[i % 4]:
            v = voice(440.0 * 2 ** ((root + m - 69) / 12), 4 * beat) * 0.3
            y[at : at + len(v)] += v[: len(y) - at]
        at += int(4 * beat * SR)
        i += 1
    kt = np.arange(int(0.12 * SR)) / SR
    kick = np.sin(2 * np.pi * (50 + 90 * np.exp(-kt * 30)) * kt) * np.exp(-kt * 25)
    hat = np.random.default_rng(0).standard_normal(int(0.03 * SR)) * np.exp(-np.arange(int(0.03 * SR)) / 130) * 0.2
    for k in range(int(seconds / beat)):
        a = int(k * beat * SR)
        y[a : a + len(kick)] += kick
        h = a + int(beat * SR / 2)
        y[h : h + len(hat)] += hat
    y = y[:n]
    return (y / np.max(np.abs(y)) * 0.8).astype(np.float32)


SONGS = {"c_major_100": ("C", False, 100.0), "a_minor_100": ("A", True, 100.0),
         "d_major_128": ("D", False, 128.0), "fsharp_minor_128": ("F#", True, 128.0)}


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    import soundfile as sf

    from soundalike.indexer.run import index_library

    root = tmp_path_factory.mktemp("music-keys")
    for name, (tonic, minor, bpm) in SONGS.items():
        sf.write(str(root / f"{name}.flac"), song(tonic, minor, bpm), SR)
    out = root.parent / "keys.soundalike"
    index_library(root, out, workers=0, progress=False, log=lambda m: None)
    return root, out


def run(*args):
    res = CliRunner().invoke(main, [str(a) for a in args])
    return res


def test_every_track_gets_its_tempo_and_key(store):
    from soundalike.catalog.store import Store

    root, path = store
    rows = {r["path"].rsplit("/", 1)[1][:-5]: r for r in Store(path).tracks.to_pylist()}
    for name, (tonic, minor, bpm) in SONGS.items():
        assert rows[name]["bpm"] == pytest.approx(bpm, rel=0.04), (name, rows[name]["bpm"])
        assert rows[name]["key"] == f"{tonic} {'minor' if minor else 'major'}", name
        assert rows[name]["key_strength"] > 0


def test_search_shows_tempo_and_key_and_filters_by_them(store):
    root, path = store
    res = run("search", root / "c_major_100.flac", "--db", path, "--json")
    assert res.exit_code == 0, res.output
    hits = json.loads(res.output)
    assert {h["key"] for h in hits} == {"A minor", "D major", "F# minor"}
    assert all(h["bpm"] for h in hits)
    table = run("search", root / "c_major_100.flac", "--db", path)
    assert "bpm key" in table.output and "F# minor" in table.output

    fast = json.loads(run("search", root / "c_major_100.flac", "--db", path, "--bpm", "120-135", "--json").output)
    assert sorted(h["path"].rsplit("/", 1)[1] for h in fast) == ["d_major_128.flac", "fsharp_minor_128.flac"]
    one = json.loads(run("search", root / "d_major_128.flac", "--db", path, "--bpm", "100", "--json").output)
    assert sorted(h["path"].rsplit("/", 1)[1] for h in one) == ["a_minor_100.flac", "c_major_100.flac"]
    minor = json.loads(run("search", root / "c_major_100.flac", "--db", path, "--key", "F#m", "--json").output)
    assert [h["key"] for h in minor] == ["F# minor"]


def test_compatible_keys_are_the_query_keys_neighbours(store):
    root, path = store
    # C major mixes with A minor (its relative), G and F major; not with D major or F# minor
    res = run("search", root / "c_major_100.flac", "--db", path, "--compatible-key", "--json")
    assert res.exit_code == 0, res.output
    assert [h["key"] for h in json.loads(res.output)] == ["A minor"]
    # given a key: D major's neighbours are B minor, A and G major
    res = run("search", root / "c_major_100.flac", "--db", path, "--compatible-key", "--key", "D", "--json")
    assert [h["key"] for h in json.loads(res.output)] == ["D major"]


def test_bad_filters_say_what_is_wrong(store):
    root, path = store
    res = run("search", root / "c_major_100.flac", "--db", path, "--bpm", "fast")
    assert res.exit_code != 0 and "--bpm expects a range like 118-126" in res.output
    res = run("search", root / "c_major_100.flac", "--db", path, "--key", "H minor")
    assert res.exit_code != 0 and "not a key: 'H minor'" in res.output


def test_key_names_and_neighbours():
    from soundalike.model.keytempo import compatible_keys, parse_key

    assert parse_key("am") == "A minor"
    assert parse_key("Bb major") == "A# major"
    assert parse_key("F#m") == "F# minor"
    assert parse_key("c") == "C major"
    assert sorted(compatible_keys("A minor")) == ["A minor", "C major", "D minor", "E minor"]
    with pytest.raises(ValueError):
        parse_key("major")


def test_the_http_api_filters_by_tempo_and_key(store):
    pytest.importorskip("fastapi")
    import urllib.error
    import urllib.request

    from conftest import running

    from soundalike.search.searcher import Searcher
    from soundalike.search.service import create_app

    root, path = store
    tid = Searcher(path).id_for_path(root / "c_major_100.flac")

    def get(query):
        try:
            with urllib.request.urlopen(f"{url}/api/search?id={tid}&{query}", timeout=60) as r:
                return r.status, json.loads(r.read())
        except urllib.error.HTTPError as err:
            return err.code, json.loads(err.read())

    with running(create_app(path)) as url:
        status, hits = get("bpm_min=120&bpm_max=135")
        assert status == 200 and sorted(h["bpm"] > 120 for h in hits) == [True, True] and len(hits) == 2
        status, hits = get("compatible_key=true")
        assert status == 200 and [h["key"] for h in hits] == ["A minor"]
        status, body = get("key=H")
        assert status == 400 and "not a key" in body["detail"]


def test_info_says_how_many_tracks_have_tempo_and_key(store):
    root, path = store
    res = run("info", "--db", path)
    assert res.exit_code == 0 and "tempo/key 4 / 4 of 4 tracks" in res.output
    data = json.loads(run("info", "--db", path, "--json").output)
    assert data["music"] == {"with_tempo": 4, "with_key": 4}


def test_radio_keeps_to_the_playing_songs_tempo_or_to_keys_that_mix_with_its_key_when_asked(store):
    """The choice MPD radio makes (no MPD needed: the queue is given as MPD lists it)."""
    from soundalike.search.radio import Radio, RadioOptions

    root, path = store
    queue, events = [{"file": "d_major_128.flac"}], []

    def choose(**options) -> list[str]:
        r = Radio(path, ("127.0.0.1", 6600), options=RadioOptions(ahead=3, **options), music_dir=str(root),
                  log=events.append)
        return r.choose(queue, 0, 1)

    assert choose(keep_tempo=0.08) == ["fsharp_minor_128.flac"]  # the other song at 128 bpm
    # D major mixes with B minor, G major and A major, none here: the filter leaves nothing, and the radio
    # goes on without it rather than let the queue run dry
    assert len(choose(keep_key=True)) == 1
    queue[0]["file"] = "c_major_100.flac"
    assert choose(keep_key=True) == ["a_minor_100.flac"]  # C major's relative minor
    assert choose(keep_key=True, keep_tempo=0.08) == ["a_minor_100.flac"]
    assert len(choose()) == 1 and choose() != ["c_major_100.flac"]  # (never the song playing)
