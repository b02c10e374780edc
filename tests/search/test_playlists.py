"""Listening lists: ``playlist`` (diverse, smoothly ordered) and ``path`` (A to B, each step closer to B)."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import reencoded, write_audio

from soundalike.cli import main


@pytest.fixture(scope="module")
def styled(tmp_path_factory):
    """Six synthesised styles, five tracks each by two artists per style, plus a re-encoded copy of one track,
    indexed with the default encoder: (root, store, {path: style})."""
    from soundalike.demo.synth import STYLES, render
    from soundalike.indexer.run import index_library

    root = tmp_path_factory.mktemp("lists") / "music"
    files = {}
    for style in STYLES:
        for j in range(5):
            p = write_audio(root / style / f"{style}-{j}.flac", render(style, seed=300 + j, duration_s=12.0),
                            tags={"title": f"{style} {j}", "artist": f"{style} band {j % 2}", "album": style,
                                  "genre": style})
            files[str(p)] = style
    copy = reencoded(sorted(files)[1], root / "copies" / "copy.wav")
    files[str(copy)] = files[sorted(files)[1]]
    store = root.parent / "lists.soundalike"
    index_library(root, store, workers=0, progress=False, log=lambda m: None)
    return root, store, files


def test_a_playlist_is_diverse_and_moves_in_small_steps(styled):
    from soundalike.search.playlists import playlist
    from soundalike.search.searcher import Searcher

    root, store, files = styled
    s = Searcher(store)
    seed = sorted(files)[0]
    seed_id = s.id_for_path(seed)
    hits = playlist(s, [seed_id], by_id=True, length=8)
    paths = [h.path for h in hits]
    assert len(hits) == 8 and seed not in paths
    artists = [h.artist for h in hits]
    assert max(artists.count(a) for a in set(artists)) <= 2
    original, copy = sorted(files)[1], str(root / "copies" / "copy.wav")
    assert not (original in paths and copy in paths)  # near-duplicates are one entry
    # ordered as a walk: its steps are no bigger in total than the same tracks in rank order
    v = np.stack([s.vector(h.id) for h in hits])
    ranked = s.search_seeds([seed_id], by_id=True, k=8, max_per_artist=2)
    w = np.stack([s.vector(h.id) for h in ranked])
    walk = sum(1 - float(v[i] @ v[i - 1]) for i in range(1, len(v)))
    assert sorted(h.id for h in ranked) == sorted(h.id for h in hits)
    assert walk <= sum(1 - float(w[i] @ w[i - 1]) for i in range(1, len(w))) + 1e-6
    # a tighter limit holds too: twelve artists, one track each
    one = playlist(s, [seed_id], by_id=True, length=8, max_per_artist=1)
    assert len(one) == 8 and len({h.artist for h in one}) == 8


def test_a_path_moves_closer_to_b_at_every_step(styled):
    from soundalike.search.playlists import path
    from soundalike.search.searcher import Searcher

    root, store, files = styled
    s = Searcher(store)
    a = next(p for p in sorted(files) if files[p] == "ambient")
    b = next(p for p in sorted(files) if files[p] != "ambient" and "copies" not in p)
    hits, figures = path(s, a, b, steps=5)
    assert hits[0].path == a and hits[-1].path == b and len(hits) == figures["steps"] + 2 >= 3
    vb = s.vector(hits[-1].id)
    closer = [float(s.vector(h.id) @ vb) for h in hits]
    assert all(x < y for x, y in zip(closer, closer[1:]))
    assert figures["max_step_distance"] <= figures["direct_distance"]
    assert len({h.id for h in hits}) == len(hits)


def test_playlist_and_path_write_m3u_and_json(styled, tmp_path):
    root, store, files = styled
    runner = CliRunner()
    seed = sorted(files)[3]
    out = tmp_path / "lists" / "mix.m3u"
    out.parent.mkdir()
    res = runner.invoke(main, ["playlist", seed, "--db", str(store), "--length", "5", "--m3u", str(out), "--relative"])
    assert res.exit_code == 0, res.output
    lines = out.read_text().splitlines()
    entries = [l for l in lines if not l.startswith("#")]
    assert lines[0] == "#EXTM3U" and len(entries) == 5 and all(not os.path.isabs(e) for e in entries)
    assert all(os.path.isfile(out.parent / e) for e in entries)
    assert all(l.startswith("#EXTINF:12,") for l in lines if l.startswith("#EXTINF"))
    a, b = sorted(files)[0], sorted(files)[-2]
    res = runner.invoke(main, ["path", a, b, "--db", str(store), "--steps", "4", "--json"])
    assert res.exit_code == 0, res.output
    data = json.loads(res.output)
    assert data["tracks"][0]["path"] == a and data["tracks"][-1]["path"] == b
    assert set(data["smoothness"]) == {"direct_distance", "max_step_distance", "mean_step_distance", "steps"}
    res = runner.invoke(main, ["path", a, a, "--db", str(store)])
    assert res.exit_code == 2 and "two different tracks" in res.output


def test_map_is_an_image_and_a_page_with_one_point_per_track(styled, tmp_path):
    import re

    import matplotlib.image

    root, store, files = styled
    runner = CliRunner()
    res = runner.invoke(main, ["map", "--db", str(store), "-o", str(tmp_path / "map.png"), "--json"])
    assert res.exit_code == 0, res.output
    figures = json.loads(res.output)
    assert figures["tracks"] == len(files) and figures["method"] == "tsne" and 0 <= figures["neighbours_kept_at_10"] <= 1
    img = matplotlib.image.imread(tmp_path / "map.png")
    assert img.ndim == 3 and img.shape[0] > 300 and img.shape[1] > 300 and img[..., :3].std() > 0.01  # drawn on
    res = runner.invoke(main, ["map", "--db", str(store), "-o", str(tmp_path / "map.html"), "--method", "pca"])
    assert res.exit_code == 0, res.output
    page = (tmp_path / "map.html").read_text()
    points = json.loads(re.search(r"const points = (\[.*?\]);", page).group(1))
    from soundalike.search.searcher import Searcher

    assert sorted(p["id"] for p in points) == sorted(Searcher(store).ids.tolist())  # one point per track
    assert {p["g"] for p in points} >= {"ambient"} and all(p["t"] for p in points)
    assert res.output.startswith(str(tmp_path / "map.html")) and "by pca" in res.output
    assert runner.invoke(main, ["map", "--db", str(store), "-o", str(tmp_path / "map.jpg")]).exit_code == 2
