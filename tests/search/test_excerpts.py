"""Excerpt search: a clip of a library track finds the track, and says where in it the clip lies.

The library is songs made of 6 s sections of the demo's synthesised styles (each song its own order of
styles and seeds), so a song's windows differ along it and a clip matches one place."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf
from click.testing import CliRunner

from soundalike.cli import main

SECTION_S = 6.0
SR = 22050


def song(seed: int, sections: int = 7) -> np.ndarray:
    from soundalike.demo.synth import STYLES, render

    rng = np.random.default_rng(seed)
    parts = [render(STYLES[int(rng.integers(len(STYLES)))], seed=int(rng.integers(1 << 30)), duration_s=SECTION_S)
             for _ in range(sections)]
    return np.concatenate([p / (np.max(np.abs(p)) + 1e-9) * 0.8 for p in parts]).astype(np.float32)


@pytest.fixture(scope="module")
def songs(tmp_path_factory):
    """Ten 42 s songs indexed with the default encoder: (root, store, {path: audio})."""
    from conftest import write_audio

    from soundalike.indexer.run import index_library

    root = tmp_path_factory.mktemp("excerpts") / "music"
    audio = {}
    for i in range(10):
        y = song(100 + i)
        audio[str(write_audio(root / f"album{i % 3}" / f"song-{i}.flac", y, SR, tags={"title": f"song {i}", "genre": f"g{i % 2}"}))] = y
    store = root.parent / "songs.soundalike"
    index_library(root, store, workers=0, progress=False, log=lambda m: None)
    return root, store, audio


def clip(y: np.ndarray, start_s: float, seconds: float, path, gain: float = 1.0):
    from conftest import write_audio

    a = int(start_s * SR)
    return write_audio(path, y[a : a + int(seconds * SR)] * gain, SR)


def test_an_mp3_excerpt_finds_its_song_and_where_it_lies(songs, tmp_path):
    """10 s cut where no analysis window starts, re-encoded to MP3 and 6 dB quieter: the song comes first, and
    the reported position is near the cut's."""
    root, store, audio = songs
    runner = CliRunner()
    for n, (path, y) in enumerate(list(audio.items())[:4]):
        start = 7.3 + 5 * n
        q = clip(y, start, 10.0, tmp_path / f"clip{n}.mp3", gain=0.5)
        res = runner.invoke(main, ["search", str(q), "--db", str(store), "-k", "3", "--excerpt", "--json"])
        assert res.exit_code == 0, res.output
        hits = json.loads(res.output)
        assert hits[0]["path"] == path, (path, hits)
        assert abs(hits[0]["at_s"] - start) <= SECTION_S, (start, hits[0]["at_s"])
        assert hits[0]["score"] > hits[1]["score"]


def test_a_short_outside_file_is_searched_as_an_excerpt_and_says_so(songs, tmp_path):
    root, store, audio = songs
    path, y = list(audio.items())[5]
    q = clip(y, 20.0, 8.0, tmp_path / "short.wav")
    res = CliRunner().invoke(main, ["search", str(q), "--db", str(store), "-k", "2"])
    assert res.exit_code == 0, res.output
    assert "excerpt search: the query is 8 s" in res.output
    res = CliRunner().invoke(main, ["search", str(q), "--db", str(store), "-k", "2", "--json"])
    assert res.exit_code == 0 and json.loads(res.output)[0]["path"] == path
    # a whole-track comparison when asked
    res = CliRunner().invoke(main, ["search", str(q), "--db", str(store), "-k", "2", "--no-excerpt", "--json"])
    assert res.exit_code == 0 and all(h["at_s"] is None for h in json.loads(res.output))


def test_excerpt_search_filters_by_genre_and_never_returns_the_query(songs, tmp_path):
    from soundalike.search.searcher import Searcher

    root, store, audio = songs
    s = Searcher(store)
    paths = list(audio)
    path, y = paths[2], audio[paths[2]]  # genre g0
    q = clip(y, 15.0, 10.0, tmp_path / "q.flac")
    hits = s.search_excerpt(q, k=5, genres=["g1"])
    assert hits and all(h.genre == "g1" for h in hits) and path not in [h.path for h in hits]
    # the library file itself, queried as an excerpt: every other track, not itself
    hits = s.search_path(path, k=9, excerpt=True)
    assert path not in [h.path for h in hits] and len(hits) == 9


def test_excerpts_follow_the_library_through_small_commits(songs, tmp_path):
    """A song added by a later run is found (through the commit's delta), a removed one no longer is, shards
    compacted keep the windows of the tracks that count, and a store without windows says how to get them."""
    import shutil

    from conftest import write_audio

    from soundalike.indexer.run import index_library
    from soundalike.search.searcher import QueryError, Searcher

    root0, store0, audio = songs
    root, store = tmp_path / "music", tmp_path / "lib.soundalike"
    shutil.copytree(root0, root)
    index_library(root, store, workers=0, progress=False, log=lambda m: None)
    new = song(999)
    new_path = str(write_audio(root / "late" / "late.flac", new, SR))
    gone = next(p for p in sorted(map(str, root.rglob("song-3.flac"))))
    (root / "album0" / "song-3.flac").unlink()
    index_library(root, store, workers=0, progress=False, log=lambda m: None, prune=True)
    m = json.loads((store / "manifest.json").read_text())
    s = Searcher(store)
    assert s.search_excerpt(clip(new, 11.0, 10.0, tmp_path / "late.mp3"), k=1)[0].path == new_path
    old = audio[str(root0 / "album0" / "song-3.flac")]
    assert gone not in [h.path for h in s.search_excerpt(clip(old, 11.0, 10.0, tmp_path / "gone.mp3"), k=9)]
    assert m["windows"]["count"] > 0 and m["windows"]["delta"]["count"] > 0  # (the new song went into a delta)

    # every track embedded again: once the shards hold mostly dead rows they are compacted, and the windows
    # go with their tracks (the window index is rebuilt from them)
    count = 10 * 12  # ten songs of 42 s: 12 windows each
    for _ in range(3):
        index_library(root, store, workers=0, progress=False, log=lambda m: None, force=True)
        m = json.loads((store / "manifest.json").read_text())
        if len(m["shards"]) == 1:
            break
    assert len(m["shards"]) == 1 and m["shard_windows"] == {m["shards"][0]: count}
    assert m["windows"]["count"] == count and not m["windows"].get("delta")
    assert Searcher(store).search_excerpt(clip(new, 23.0, 10.0, tmp_path / "late2.mp3"), k=1)[0].path == new_path

    bare = json.loads((store / "manifest.json").read_text())
    bare["windows"] = None
    (store / "manifest.json").write_text(json.dumps(bare))
    with pytest.raises(QueryError, match="keeps no windows.*--force"):
        Searcher(store).search_excerpt(clip(new, 11.0, 10.0, tmp_path / "x.wav"), k=1)


def test_within_track_whitening_lets_unseen_parts_of_a_song_find_it():
    """Windows vary within a song along a few shared directions (its sections, its mix) more than songs differ:
    a window from a part of a song not in the index finds the song far more often once the transform is
    whitened against that within-track variation."""
    from soundalike.catalog import indexes
    from soundalike.catalog.excerpts import SLOTS, whiten_within_tracks

    rng = np.random.default_rng(3)
    tracks, per, dim = 300, 8, 48
    centres = rng.standard_normal((tracks, dim))
    sections = rng.standard_normal((4, dim)) * 4.0  # shared directions of within-song change

    def windows(t, n):
        return centres[t] + rng.standard_normal((n, 4)) @ sections + 0.3 * rng.standard_normal((n, dim))

    lib = np.concatenate([windows(t, per) for t in range(tracks)]).astype(np.float32)
    ids = np.repeat(np.arange(tracks) * SLOTS, per) + np.tile(np.arange(per), tracks)
    moments = indexes.Moments(dim)
    moments.add(lib)
    fitted = indexes.fit("standardize", moments, lib, len(lib), widths=(32,))
    whitened = whiten_within_tracks(fitted, lib, ids)
    queries = np.concatenate([windows(t, 1) for t in range(tracks)]).astype(np.float32)

    def found(f):
        embed = lambda x: indexes.unit(indexes.standardize(x, f.mean, f.std) @ f.basis)  # noqa: E731
        nearest = np.argmax(embed(queries) @ embed(lib).T, axis=1)
        return float(np.mean(ids[nearest] // SLOTS == np.arange(tracks)))

    before, after = found(fitted), found(whitened)
    assert after > before + 0.4, (before, after)  # (measured: 0.04 before, 0.64 after)


def test_a_clip_is_placed_where_its_best_window_pair_lies_and_never_outside_the_track():
    from soundalike.model.audio import window_starts
    from soundalike.search.excerpt import clip_start

    fe = {"window_s": 3.0, "n_windows": 8}
    starts = window_starts(100.0, window_s=3.0, n_windows=8)
    offsets = np.array([0.0, 3.0, 12.0])
    # the track's window 4 matched the clip's second window, which starts 3 s into the clip
    assert clip_start(4, 1, offsets, 100.0, fe) == round(starts[4] - 3.0, 1)
    assert clip_start(0, 2, offsets, 100.0, fe) == 0.0  # (a clip cannot start before its track)
    assert clip_start(-1, 0, offsets, 100.0, fe) is None and clip_start(3, 0, offsets, None, fe) is None
    assert clip_start(20, 0, offsets, 100.0, fe) is None  # a window the track does not have
