"""The benchmarks that choose defaults: several corpora in one run, each variant's paired interval on each and
pooled, the rule's verdict, and the peers beside soundalike on the same files. Run on two small corpora of
synthesised songs (a folder per group), as a user runs them on real ones."""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import make_library

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"


def bench_module(name: str):
    sys.path.insert(0, str(BENCH))
    try:
        spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCH / f"{name}.py")
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        return mod
    finally:
        sys.path.remove(str(BENCH))


def test_the_rule_for_a_default():
    tv = bench_module("track_vectors")
    # gains pooled beyond the interval, loses beyond it on no corpus
    assert tv.verdict([(0.01, (-0.005, 0.03)), (0.04, (0.02, 0.06))], (0.025, (0.01, 0.04))) == "GAINS"
    # a loss beyond the interval on one corpus rules it out, whatever the pool says
    assert tv.verdict([(-0.02, (-0.035, -0.004)), (0.08, (0.05, 0.11))], (0.03, (0.01, 0.05))) == "loses"
    assert tv.verdict([(0.01, (-0.01, 0.03)), (0.0, (-0.02, 0.02))], (0.005, (-0.006, 0.016))) == "level"
    # pooled: each corpus weighs the same, whatever its number of queries
    small, big = np.full(10, 0.1), np.zeros(1000)
    lo, hi = tv.pooled_interval([small, big])
    assert lo == pytest.approx(0.05) and hi == pytest.approx(0.05)


@pytest.fixture(scope="module")
def corpora(tmp_path_factory):
    root = tmp_path_factory.mktemp("corpora")
    return [make_library(root / name, per_kind=3, seconds=4.0, formats=("flac", "ogg"), seed=seed).root
            for name, seed in (("A", 1), ("B", 2))]


def run(script: str, *args) -> subprocess.CompletedProcess:
    out = subprocess.run([sys.executable, str(BENCH / script), *map(str, args)], capture_output=True, text=True,
                         timeout=900)
    assert out.returncode == 0, out.stderr[-3000:]
    return out


def test_track_vectors_reports_each_corpus_and_pooled(corpora, tmp_path):
    out = tmp_path / "tv.json"
    res = run("track_vectors.py", *corpora, "--json", out, "--markdown")
    data = json.loads(out.read_text())
    assert [c["corpus"] for c in data["corpora"]] == ["A", "B"] and all(c["tracks"] == 9 for c in data["corpora"])
    rows = {r["variant"]: r for r in data["rows"]}
    ref = rows[data["reference"]]
    assert ref["rule"] == "" and ref["pooled_d_p_at_k"] == 0
    for row in data["rows"]:
        assert [c["corpus"] for c in row["corpora"]] == ["A", "B"]
        # the pooled difference is the mean of the corpora's, and the rule agrees with the intervals
        assert row["pooled_d_p_at_k"] == pytest.approx(np.mean([c["d_p_at_k"] for c in row["corpora"]]))
        lo, hi = row["pooled_d_p_at_k_ci"]
        assert lo <= row["pooled_d_p_at_k"] + 1e-9 and row["pooled_d_p_at_k"] <= hi + 1e-9
        if row is not ref:
            losing = any(c["d_p_at_k_ci"][1] < 0 for c in row["corpora"])
            assert (row["rule"] == "loses") == losing
            assert (row["rule"] == "GAINS") == (not losing and lo > 0)
    assert "| variant | A p@10 |" in res.stdout and "CSLS" in res.stdout and "whitened" in res.stdout
    # another reference pairs every row with it instead
    other = "MSD+MTT mean: CSLS, k=10"
    run("track_vectors.py", *corpora, "--reference", other, "--json", out)
    data = json.loads(out.read_text())
    assert data["reference"] == other and {r["variant"]: r for r in data["rows"]}[other]["pooled_d_p_at_k"] == 0


def test_peers_rank_every_system_on_the_same_tracks(corpora, tmp_path):
    have = [s for s, mod in (("musly", "pymusly"), ("bliss", "bliss_audio")) if importlib.util.find_spec(mod)]
    if "musly" in have and not shutil.which("ffmpeg"):
        have.remove("musly")  # pymusly decodes through the ffmpeg program
    out = tmp_path / "peers.json"
    run("peers.py", *corpora, "--workers", "1", "--only", ",".join(["soundalike", *have]), "--json", out)
    data = json.loads(out.read_text())
    assert data["workers"] == 1 and data["inference"] == "openvino-f32"
    for corpus in data["corpora"]:
        systems = [r["system"] for r in corpus["rows"]]
        assert systems == ["soundalike", *have] and corpus["compared"] == 9
        for r in corpus["rows"]:
            assert r["tracks"] == 9 and r["failed"] == 0 and r["tracks_per_hour"] > 0
            assert 0 <= r["p_at_k"] <= 1 and len(corpus["per_query_p_at_k"][r["system"]]) == 9
        assert corpus["rows"][0]["peak_rss_mb"] > 0


def test_index_speed_times_first_and_warm_runs_beside_the_peers(corpora, tmp_path):
    """Each encoder indexes twice as a new process (an empty model cache, then the one the first run left):
    tracks an hour, stage times and peak RSS of both, the peers beside them on the same files."""
    have = [s for s, mod in (("musly", "pymusly"), ("bliss", "bliss_audio")) if importlib.util.find_spec(mod)]
    out = tmp_path / "speed.json"
    res = run("index_speed.py", corpora[0], "--workers", "1", "--models", "student",
              *([] if have == ["musly", "bliss"] and shutil.which("ffmpeg") else ["--no-peers"]), "--json", out)
    data = json.loads(out.read_text())
    [corpus] = data["corpora"]
    rows = {r["system"]: r for r in corpus["rows"]}
    first, warm = rows["student cold"], rows["student warm"]
    for r in (first, warm):
        assert r["tracks"] == 9 and r["failed"] == 0 and r["tracks_per_hour"] > 0
        assert set(r["stages"]) >= {"decode", "features", "encode", "write"}
    # the student never holds TensorFlow (its graph is built from its arrays): a first run is no heavier than a
    # warm one, and both stay under a gigabyte
    assert max(first["peak_rss_mb"], warm["peak_rss_mb"]) < 1000
    assert abs(first["peak_rss_mb"] - warm["peak_rss_mb"]) < 100
    assert warm["p_at_k"] == pytest.approx(first["p_at_k"], abs=0.01)  # the same model both times
    assert "student warm:" in res.stdout and "tracks/h" in res.stdout


def test_distill_quality_pairs_a_student_with_its_teacher(tmp_path):
    """The student against the teacher on the same collected windows, per corpus and pooled, with the rule."""
    lib = make_library(tmp_path / "music", per_kind=3, seconds=12.0, formats=("flac",), seed=4)
    from soundalike.model import distill

    distill.collect([str(lib.root)], tmp_path / "work", workers=0, progress=False, log=lambda m: None)
    from soundalike.model.student import SHIPPED

    out = run("distill_quality.py", SHIPPED, tmp_path / "work", "--windows", "4", "--json").stdout
    data = json.loads(out)
    [c] = data["corpora"]
    assert c["tracks"] == 9 and 0 <= c["teacher"] <= 1 and 0 <= c["student"] <= 1
    assert c["delta"] == pytest.approx(c["student"] - c["teacher"])
    assert data["verdict"] in ("GAINS", "loses", "level") and 0 < c["window_cosine_median"] <= 1
