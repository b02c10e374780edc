"""The command line, through click's CliRunner, as a user types it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import synth, write_audio

from soundalike.cli import main

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def runner():
    return CliRunner()


def test_help_imports_no_heavy_library(tmp_path):
    code = "import sys, soundalike.cli; print(sorted(m for m in ('tensorflow', 'keras', 'faiss', 'librosa', 'pyarrow') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
    res = CliRunner().invoke(main, ["--help"])
    assert res.exit_code == 0
    for verb in ("index", "search", "info", "train", "demo"):
        assert verb in res.output


def test_index_search_info_round_trip(runner, library, trained_model, tmp_path):
    store = tmp_path / "cli.soundalike"
    res = runner.invoke(main, ["index", str(library.root), "--db", str(store), "--model", str(trained_model), "--quiet", "--workers", "0"])
    assert res.exit_code == 0, res.output
    assert f"added {len(library.files)}" in res.output and "failed 0" in res.output

    again = runner.invoke(main, ["index", str(library.root), "--db", str(store), "--json"])
    report = json.loads(again.output)
    assert report["added"] == 0 and report["unchanged"] == len(library.files)

    query = sorted(library.files)[0]
    res = runner.invoke(main, ["search", query, "--db", str(store), "-k", "4", "--json"])
    assert res.exit_code == 0, res.output
    hits = json.loads(res.output)
    assert len(hits) == 4
    assert {"id", "path", "score", "title", "artist", "album", "genre"} <= set(hits[0])
    assert all(Path(h["path"]).is_absolute() and h["path"] != query for h in hits)
    assert [h["score"] for h in hits] == sorted((h["score"] for h in hits), reverse=True)

    by_id = runner.invoke(main, ["search", str(hits[0]["id"]), "--id", "--db", str(store), "-k", "3", "--genre", "Noise", "--json"])
    assert by_id.exit_code == 0, by_id.output
    assert [h["genre"] for h in json.loads(by_id.output)] == ["noise"] * 3

    table = runner.invoke(main, ["search", query, "--db", str(store), "-k", "2"])
    assert table.exit_code == 0 and "score" in table.output and len(table.output.strip().splitlines()) == 3

    m3u = tmp_path / "list.m3u"
    res = runner.invoke(main, ["search", query, "--db", str(store), "-k", "3", "--m3u", str(m3u)])
    assert res.exit_code == 0
    lines = m3u.read_text().splitlines()
    assert lines[0] == "#EXTM3U" and len(lines) == 7
    assert all(Path(line).is_file() for line in lines[2::2]) and lines[1].startswith("#EXTINF:")

    info = runner.invoke(main, ["info", "--db", str(store), "--json"])
    data = json.loads(info.output)
    assert data["counts"]["ok"] == len(library.files) and data["genres"] == {"beats": 4, "noise": 4, "tones": 4}
    assert data["encoder"]["name"] == "seedcnn" and data["disk_bytes"] > 0
    text = runner.invoke(main, ["info", "--db", str(store)]).output
    assert "seedcnn" in text and "beats 4" in text


def test_outside_file_query(runner, indexed, tmp_path):
    library, store = indexed
    outside = write_audio(tmp_path / "query.ogg", synth("noise", seed=77, seconds=5.0))
    res = runner.invoke(main, ["search", str(outside), "--db", str(store), "-k", "2", "--json"])
    assert res.exit_code == 0, res.output
    assert len(json.loads(res.output)) == 2


@pytest.mark.parametrize(
    "args, message",
    [
        (["search", "nope.mp3"], "no such file"),
        (["search", "999999", "--id"], "no track with id 999999"),
        (["search", "abc", "--id"], "integer"),
        (["search", "0", "--id", "--genre", "polka"], "unknown genre polka"),
        (["search", "0", "--id", "-k", "0"], "-k"),
    ],
)
def test_bad_requests_are_one_line_errors_with_exit_2(runner, indexed, args, message):
    _, store = indexed
    res = runner.invoke(main, args + ["--db", str(store)])
    assert res.exit_code == 2, res.output
    assert message in res.output and "Traceback" not in res.output


def test_unknown_inference_route_is_a_one_line_error(runner, library, tmp_path, monkeypatch):
    monkeypatch.setenv("SOUNDALIKE_INFERENCE", "fp8")
    res = runner.invoke(main, ["index", str(library.root), "--db", str(tmp_path / "s"), "--quiet"])
    assert res.exit_code == 2, res.output
    assert "SOUNDALIKE_INFERENCE='fp8' is not a known inference route" in res.output and "Traceback" not in res.output


def test_not_a_store(runner, tmp_path):
    res = runner.invoke(main, ["info", "--db", str(tmp_path)])
    assert res.exit_code == 2 and "not a soundalike store" in res.output


@pytest.mark.parametrize("backbone", ["none", "musicnn"])
def test_train_writes_a_model_and_sidecar(runner, tmp_path, backbone):
    from conftest import make_library

    data = make_library(tmp_path / "ds", per_kind=3, seconds=7.0, formats=("wav",))
    out = tmp_path / "m.keras"
    res = runner.invoke(main, ["train", str(data.root), "-o", str(out), "--backbone", backbone, "--epochs", "2",
                               "--windows", "2", "--workers", "0", "--json"])
    assert res.exit_code == 0, res.output
    result = json.loads(res.output[res.output.index("{"):])
    assert result["classes"] == ["beats", "noise", "tones"] and result["epochs"] == 2
    assert len(result["history"]["loss"]) == 2
    side = json.loads(out.with_suffix(".json").read_text())
    assert side["labels"] == ["beats", "noise", "tones"] and side["embedding_dim"] == 128
    assert side["frontend"]["n_windows"] == 2 and side["fingerprint"] == result["fingerprint"]
    assert (side.get("kind") == "head") == (backbone == "musicnn")
    # the trained model is an encoder: index and search with it
    store = tmp_path / "trained.soundalike"
    res = runner.invoke(main, ["index", str(data.root), "--db", str(store), "--model", str(out), "--quiet", "--workers", "0"])
    assert res.exit_code == 0 and "added 9" in res.output, res.output
    query = sorted(data.files)[0]
    hits = json.loads(runner.invoke(main, ["search", query, "--db", str(store), "-k", "3", "--json"]).output)
    assert len(hits) == 3 and query not in {h["path"] for h in hits}


def test_spectrogram_json(runner, tmp_path):
    p = write_audio(tmp_path / "a.flac", synth("beats", seed=1, seconds=8.0))
    out = tmp_path / "spec.png"
    res = runner.invoke(main, ["spectrogram", str(p), "-o", str(out), "--offset", "5", "--duration", "20", "--json"])
    assert res.exit_code == 0, res.output
    data = json.loads(res.output)
    assert data["output"] == str(out.resolve()) and out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert data["path"] == str(p.resolve()) and data["offset_s"] == 5.0
    assert data["duration_s"] == pytest.approx(3.0, abs=0.01)  # cut at the end of the 8 s file
    assert data["file_duration_s"] == pytest.approx(8.0, abs=0.01) and data["sample_rate"] == 22050
    n_mels, frames = data["shape"]
    assert n_mels == data["n_mels"] and frames == pytest.approx(3.0 * 22050 / data["hop_length"], abs=2)


def test_find_lists_tracks_by_title_artist_album_or_path_with_their_ids(runner, indexed):
    library, store = indexed
    # titles are "<kind> <j>", artists "<kind> artist <j % 2>", albums "<kind>"
    res = runner.invoke(main, ["find", "BEATS", "artist", "1", "--db", str(store), "--json"])
    assert res.exit_code == 0, res.output
    found = json.loads(res.output)
    expected = {p for p, kind in library.files.items() if kind == "beats"}
    assert found and {h["path"] for h in found} <= expected
    # every word in the artist ranks first (others may hold a word in their path)
    assert [h["artist"] for h in found[:2]] == ["beats artist 1"] * 2 and found[0]["score"] == 0.75
    assert all(h["score"] < 0.75 for h in found[2:])
    # a word of the path only (a file name); the ids found are the ones search --id takes
    name = Path(sorted(library.files)[0]).stem
    hits = json.loads(runner.invoke(main, ["find", name, "--db", str(store), "--json"]).output)
    assert [h["path"] for h in hits] == [sorted(library.files)[0]] and hits[0]["score"] == 0.25
    by_id = runner.invoke(main, ["search", str(hits[0]["id"]), "--id", "--db", str(store), "-k", "2", "--json"])
    assert by_id.exit_code == 0 and len(json.loads(by_id.output)) == 2
    # title matches come first; a table fits the terminal; nothing found says so
    first = json.loads(runner.invoke(main, ["find", "tones", "--db", str(store), "--json", "-n", "3"]).output)
    assert len(first) == 3 and all(h["title"].startswith("tones") and h["score"] == 1.0 for h in first)
    table = runner.invoke(main, ["find", "tones", "--db", str(store)])
    assert table.exit_code == 0 and "id" in table.output.splitlines()[0]
    assert runner.invoke(main, ["find", "zzzz-nothing", "--db", str(store)]).output.strip() == "no tracks match"
