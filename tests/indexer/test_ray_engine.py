"""The Ray engine makes the store the local engine makes: same ids, statuses, vectors and search results.

A small local Ray instance (2 CPUs, no dashboard) is started once for the module; the first run reaches it
as a cluster (``--address``, in a subprocess: the model goes to the actors as bytes), the second from this
process, where Ray is already initialised.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from conftest import make_library, synth, write_audio
from soundalike.catalog.store import Store
from soundalike.cli import main

pytestmark = pytest.mark.slow  # a system test: `pytest -m 'not slow'` leaves it out


@pytest.fixture(scope="module")
def ray_cluster():
    ray = pytest.importorskip("ray", reason="Ray is not installed: pip install 'soundalike[ray]'")
    pytest.importorskip("ray.data", reason="Ray Data is not installed: pip install 'soundalike[ray]'")
    # (the workers can import this module and its conftest: a test's hanging decoder is a function here)
    here = Path(__file__).resolve().parent
    path = os.pathsep.join([str(here), str(here.parent), os.environ.get("PYTHONPATH", "")])
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="WARNING",
             runtime_env={"env_vars": {"PYTHONPATH": path}})
    try:
        yield ray.get_runtime_context().gcs_address
    finally:
        ray.shutdown()


@pytest.fixture(scope="module")
def model(tmp_path_factory, small_frontend):
    """An untrained seed CNN: fixed weights are all this comparison needs."""
    from soundalike.model import seedcnn
    from soundalike.model.encoder import KerasEncoder

    path = tmp_path_factory.mktemp("model") / "seed.keras"
    KerasEncoder(seedcnn.build(small_frontend, 3, seed=3), name="seedcnn", frontend=small_frontend,
                 labels=["tones", "noise", "beats"]).save(path)
    return path


def index(*args) -> dict:
    res = CliRunner().invoke(main, ["index", *map(str, args), "--json", "--quiet"])
    assert res.exit_code == 0, res.output
    return json.loads(res.output[res.output.index("{"):])


def index_in_subprocess(*args) -> dict:
    proc = subprocess.run([sys.executable, "-m", "soundalike.cli", "index", *map(str, args), "--json", "--quiet"],
                          capture_output=True, text=True, timeout=180, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout[proc.stdout.index("{"):])


def assert_same_store(a, b) -> None:
    sa, sb = Store(a), Store(b)
    rows_a = {r["path"]: r for r in sa.tracks.to_pylist()}
    rows_b = {r["path"]: r for r in sb.tracks.to_pylist()}
    assert {p: r["id"] for p, r in rows_a.items()} == {p: r["id"] for p, r in rows_b.items()}
    for p, r in rows_a.items():
        for col in ("status", "error", "windows", "genre", "title", "predicted_genre"):
            assert r[col] == rows_b[p][col], (p, col)
    ia, va = sa.vectors()
    ib, vb = sb.vectors()
    np.testing.assert_array_equal(ia, ib)
    np.testing.assert_allclose(va, vb, atol=1e-5)
    assert sa.manifest["encoder"]["fingerprint"] == sb.manifest["encoder"]["fingerprint"]


def assert_same_search(a, b, queries, n) -> None:
    for q in queries:
        hits = []
        for store in (a, b):
            res = CliRunner().invoke(main, ["search", str(q), "--db", str(store), "-k", str(n), "--json"])
            assert res.exit_code == 0, res.output
            hits.append(json.loads(res.output))
        score_a = {h["path"]: h["score"] for h in hits[0]}
        score_b = {h["path"]: h["score"] for h in hits[1]}
        assert score_a.keys() == score_b.keys() and len(score_a) == n - 1  # every other track, ranked
        for p in score_a:
            assert score_a[p] == pytest.approx(score_b[p], abs=1e-4)


def test_ray_engine_makes_the_same_store_as_the_local_engine(tmp_path, ray_cluster, model):
    import ray

    lib = make_library(tmp_path / "music", per_kind=3, seconds=4.0)
    (lib.root / "broken.mp3").write_bytes(b"\xff\xfb" + b"\x00" * 64)
    local, remote = tmp_path / "local.soundalike", tmp_path / "ray.soundalike"

    a = index(lib.root, "--db", local, "--model", model, "--workers", "0")
    b = index_in_subprocess(lib.root, "--db", remote, "--model", model, "--engine", "ray", "--address", ray_cluster)
    for key in ("scanned", "added", "failed", "windows"):
        assert a[key] == b[key], key
    assert (b["added"], b["failed"]) == (len(lib.files), 1) and b["failures"][0]["path"].endswith("broken.mp3")
    assert_same_store(local, remote)
    # the stored model is the one the store was made with: later runs need no --model
    assert (remote / Store(remote).manifest["encoder"]["model"]).is_file()

    # an incremental run, from this process (Ray is initialised here: used as it is and left running)
    paths = sorted(lib.files)
    write_audio(lib.root / "tones" / "new.flac", synth("tones", seed=99, seconds=4.0), tags={"genre": "tones"})
    write_audio(Path(paths[0]), synth("beats", seed=98, seconds=4.0))  # changed: embedded anew, same id
    os.utime(paths[0], (1_000_000_000, 1_000_000_000))
    a = index(lib.root, "--db", local, "--workers", "0")
    b = index(lib.root, "--db", remote, "--engine", "ray")
    unchanged = len(paths) - 1 + 1  # the good files but the changed one, and the broken one
    assert (b["added"], b["updated"], b["unchanged"]) == (a["added"], a["updated"], a["unchanged"]) == (1, 1, unchanged)
    assert ray.is_initialized()
    assert_same_store(local, remote)
    assert_same_search(local, remote, [paths[0], paths[-1], lib.root / "tones" / "new.flac"], n=len(paths) + 1)


def test_ray_engine_without_ray_is_a_one_line_error(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError
    lib = make_library(tmp_path / "music", per_kind=1, seconds=2.0, formats=("wav",))
    res = CliRunner().invoke(main, ["index", str(lib.root), "--db", str(tmp_path / "s.soundalike"), "--engine", "ray"])
    assert res.exit_code == 2
    assert "pip install 'soundalike[ray]'" in res.output and len(res.output.strip().splitlines()) == 1
    assert not (tmp_path / "s.soundalike").exists()


def hang_on_purpose(path):
    """Stands in for the tag reader: what a decoder stuck in a loop looks like from outside, on one file."""
    import time

    if path.endswith("hang.wav"):
        time.sleep(3600)
    return {}


def test_the_ray_engine_gives_up_on_a_hanging_file_and_records_why(tmp_path, ray_cluster, model, monkeypatch):
    import time

    from soundalike.indexer import run

    monkeypatch.setattr(run, "read_tags", hang_on_purpose)
    lib = make_library(tmp_path / "music", per_kind=1, seconds=2.0, formats=("wav",))
    hang = write_audio(lib.root / "hang.wav", synth("noise", seed=3, seconds=2.0))
    store = tmp_path / "ray.soundalike"
    t = time.monotonic()
    report = index(lib.root, "--db", store, "--model", model, "--engine", "ray", "--decode-timeout", "5")
    assert time.monotonic() - t < 120  # not the hour the decoder would take
    assert report["added"] == len(lib.files) and report["failed"] == 1
    assert report["failures"][0]["path"] == str(hang) and "longer than 5 s" in report["failures"][0]["error"]
    rows = {r["path"]: r for r in Store(store).tracks.to_pylist()}
    assert rows[str(hang)]["status"] == "error" and "longer than 5 s" in rows[str(hang)]["error"]
    assert all(rows[p]["status"] == "ok" for p in lib.files)
