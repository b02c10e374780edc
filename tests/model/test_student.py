"""The distilled student: shipped in the package, close to its teacher, small in memory, and trainable here."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import make_library, synth, write_audio

SOUNDALIKE = str(Path(sys.executable).with_name("soundalike"))


def test_student_loads_from_the_installed_package_without_a_download():
    """``student`` is a built-in encoder: its weights are files of the installed package, read from there."""
    import soundalike
    from soundalike.model.registry import load_encoder
    from soundalike.model.student import SHIPPED

    assert SHIPPED.is_file() and SHIPPED.with_suffix(".json").is_file()
    assert Path(soundalike.__file__).parent in SHIPPED.parents
    enc = load_encoder("student")
    assert enc.name == "student" and enc.dim == 1906 and enc.frontend.n_windows == 16
    meta = json.loads(SHIPPED.with_suffix(".json").read_text())
    assert meta["trained"]["tracks"] > 100  # trained on real music, not a stub
    assert SHIPPED.stat().st_size < 20e6


def _windows_of(kinds_seeds, enc):
    from soundalike.model.audio import peak_normalise, resample

    out = []
    for kind, seed in kinds_seeds:
        y = resample(synth(kind, seed=seed, seconds=12.0), 22050, enc.sample_rate)
        n = enc.frontend.window_samples
        w = np.stack([y[i * n : (i + 1) * n] for i in range(len(y) // n)])
        out.append(enc.features(peak_normalise(w)))
    return out


def test_student_vectors_agree_with_the_teachers_on_synthesised_audio():
    """On sounds it never heard (tones, noise, rhythms), the student's track vectors point where the teacher's
    do. The stated tolerance, in the teacher's standardised space: a track's two vectors at cosine 0.7 on
    average and 0.4 at least (band-passed noise, furthest from music, is the worst); the two similarity
    matrices of the tracks correlated at 0.95 or more; every track's nearest other track of the same kind under
    both."""
    from soundalike.model.musicnn import MusicnnEncoder
    from soundalike.model.student import StudentEncoder

    student = StudentEncoder.load(runtime_route="openvino-f32")
    teacher = MusicnnEncoder(pool="mean", runtime_route="openvino-f32")  # the mean over windows, as the student's
    tracks = _windows_of([(k, s) for k in ("tones", "noise", "beats") for s in (1, 2, 3)], student)
    mean, std = student.arrays["target_mean"], student.arrays["target_std"]

    def vectors(enc):
        v = np.stack([(enc.summarize(enc.encode(f)[0]) - mean) / std for f in tracks])
        return v / np.linalg.norm(v, axis=1, keepdims=True)

    s, t = vectors(student), vectors(teacher)
    pair = np.sum(s * t, axis=1)
    assert pair.mean() >= 0.7 and pair.min() >= 0.4, pair
    iu = np.triu_indices(len(tracks), 1)
    assert np.corrcoef((s @ s.T)[iu], (t @ t.T)[iu])[0, 1] >= 0.95
    kinds = np.repeat(np.arange(3), 3)
    for v in (s, t):
        sim = v @ v.T
        np.fill_diagonal(sim, -np.inf)
        assert (kinds[np.argmax(sim, axis=1)] == kinds).all()


@pytest.mark.parametrize("bands", [0, 6, 12])
def test_the_openvino_graph_computes_what_the_keras_network_computes(tmp_path, bands):
    """Indexing runs the student as an OpenVINO graph built from its arrays, each batch norm folded in; the
    ``tensorflow`` route and training run the Keras network. For every pooling the recipe knows, with batch
    norms that are not the identity, the two agree within float32 rounding."""
    from soundalike.model.distill import build_student, save_student
    from soundalike.model.runtime import compile_model
    from soundalike.model.student import StudentEncoder

    rng = np.random.default_rng(bands)
    net = build_student(1906, widths=(4, 4, 8, 8, 8), embedding=16, bands=bands)
    weights = []
    for w in net.weights:
        shape = tuple(w.shape)
        var = "variance" in w.path
        weights.append(rng.uniform(0.5, 2.0, shape) if var else rng.normal(0, 0.5, shape))
    net.set_weights([w.astype(np.float16).astype(np.float32) for w in weights])  # as shipped: float16
    mean, std = rng.normal(size=1906).astype(np.float32), rng.uniform(0.1, 3, 1906).astype(np.float32)
    out = tmp_path / "s.npz"
    save_student(out, net, mean=mean, std=std, widths=(4, 4, 8, 8, 8), embedding=16, bands=bands,
                 trained={"tracks": 0})
    x = rng.normal(0, 2, (5, 187, 96)).astype(np.float32)
    ov_feats, ov_tags = StudentEncoder(out, runtime_route="openvino-f32").encode(np.transpose(x, (0, 2, 1)))
    tf_feats, tf_tags = StudentEncoder(out, runtime_route="tensorflow").encode(np.transpose(x, (0, 2, 1)))
    assert np.abs(tf_feats).max() > 1 and tf_tags.std() > 0.01  # a network that computes something
    np.testing.assert_allclose(ov_feats, tf_feats, rtol=1e-4, atol=1e-4 * np.abs(tf_feats).max())
    np.testing.assert_allclose(ov_tags, tf_tags, atol=1e-5)
    direct = np.asarray(net(x, training=False)) * std + mean  # the network itself, scaled as the encoder scales
    np.testing.assert_allclose(tf_feats, direct, rtol=1e-4, atol=1e-4 * np.abs(direct).max())


def _index(library: Path, store: Path, cache: Path, model: str = "student") -> tuple[dict, int]:
    """``soundalike index`` as its own process: its JSON report and its peak RSS in MB (measured as the
    benchmarks measure it: through a small process of its own, not as a child of this big one)."""
    from test_benchmarks import bench_module

    env = {**os.environ, "SOUNDALIKE_CACHE": str(cache), "SOUNDALIKE_INFERENCE": "openvino-f32"}
    cmd = [SOUNDALIKE, "index", str(library), "--db", str(store), "--model", model, "--workers", "2", "--json", "--quiet"]
    done, peak = bench_module("peers").run_measured(cmd, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout), peak


def test_indexing_with_the_student_stays_small_in_memory(tmp_path):
    """A library of synthesised songs indexed with the student, twice in new processes with a new cache (the
    first also writes OpenVINO's own caches): under 1 GB at its peak each time, and its neighbours are of the
    same kind."""
    lib = make_library(tmp_path / "music", per_kind=6, seconds=40.0, formats=("ogg", "flac", "mp3"), seed=3)
    cache = tmp_path / "cache"
    report, first = _index(lib.root, tmp_path / "first.soundalike", cache)
    assert report["failed"] == 0 and report["added"] == len(lib.files)
    report, warm = _index(lib.root, tmp_path / "warm.soundalike", cache)
    assert report["added"] == len(lib.files)
    assert first < 1000, f"first run peaked at {first} MB"
    assert warm < 1000, f"warm run peaked at {warm} MB"

    from soundalike.search.searcher import Searcher

    s = Searcher(tmp_path / "warm.soundalike")
    right = 0
    for path, kind in lib.files.items():
        hits = s.search_path(path, k=3, collapse=False, excerpt=False)
        right += sum(lib.files[h.path] == kind for h in hits if h.path != path)
    assert right >= 0.8 * 2 * len(lib.files)


def test_distill_collects_trains_resumes_and_the_result_indexes(tmp_path):
    """``soundalike distill`` on a folder of synthesised music writes a student that ``index --model`` uses;
    run again (with the finer 12-band network), it collects nothing twice; a file that cannot be decoded is named
    and skipped."""
    lib = make_library(tmp_path / "music", per_kind=2, seconds=20.0, formats=("flac", "ogg"), seed=5)
    (tmp_path / "music" / "broken.mp3").write_bytes(b"not audio at all" * 100)
    work, out = tmp_path / "work", tmp_path / "mine.npz"
    env = {**os.environ, "SOUNDALIKE_INFERENCE": "openvino-f32"}
    run = subprocess.run([SOUNDALIKE, "distill", str(lib.root), "--work", str(work), "-o", str(out), "--epochs", "2",
                          "--workers", "0", "--json"], capture_output=True, text=True, env=env, timeout=900)
    assert run.returncode == 0, run.stderr[-2000:]
    res = json.loads(run.stdout)
    assert res["tracks"] == len(lib.files) and res["collected"]["failed"] == 1
    assert "broken.mp3" in run.stderr
    assert out.is_file() and json.loads(out.with_suffix(".json").read_text())["trained"]["windows"] > 0
    again = subprocess.run([SOUNDALIKE, "distill", str(lib.root), "--work", str(work), "-o", str(out), "--epochs", "1",
                            "--bands", "12", "--workers", "0", "--json"], capture_output=True, text=True, env=env,
                           timeout=900)
    assert again.returncode == 0, again.stderr[-2000:]
    assert json.loads(out.with_suffix(".json").read_text())["bands"] == 12  # the finer network, indexed below
    assert json.loads(again.stdout)["collected"]["windows"] == 0  # nothing decoded again
    assert res["collected"]["augmented"] > 0 and json.loads(again.stdout)["collected"]["augmented"] == 0

    report, _ = _index(lib.root, tmp_path / "mine.soundalike", tmp_path / "cache", model=str(out))
    assert report["added"] == len(lib.files)
    from soundalike.catalog.store import Store

    assert Store(tmp_path / "mine.soundalike").encoder_info["spec"]["kind"] == "student"


def test_distill_refuses_a_bad_output_name(tmp_path):
    run = subprocess.run([SOUNDALIKE, "distill", str(tmp_path), "--work", str(tmp_path / "w"), "-o", "x.keras"],
                         capture_output=True, text=True)
    assert run.returncode == 2 and "x.keras" in run.stderr and "Traceback" not in run.stderr


@pytest.mark.parametrize("model", ["student", "musicnn"])
def test_a_warm_index_run_imports_no_tensorflow(tmp_path, model):
    """Indexing with the student never imports TensorFlow (its OpenVINO graph is built from its arrays); with the
    teacher, once a process of this machine has converted it: the converted model is found by a hash of its
    checkpoint files. Both runs give the same vectors."""
    lib = make_library(tmp_path / "music", per_kind=1, seconds=8.0, formats=("flac",), seed=9)
    script = (
        "import json, sys\n"
        "from soundalike.indexer.run import index_library\n"
        f"r = index_library({str(lib.root)!r}, sys.argv[1], model={model!r}, workers=0, progress=False, log=lambda m: None)\n"
        "print(json.dumps({'added': r.added, 'tf': 'tensorflow' in sys.modules}))\n"
    )
    env = {**os.environ, "SOUNDALIKE_CACHE": str(tmp_path / "cache"), "SOUNDALIKE_INFERENCE": "openvino-f32"}

    def run(store):
        out = subprocess.run([sys.executable, "-c", script, str(tmp_path / store)], capture_output=True, text=True,
                             env=env, timeout=600)
        assert out.returncode == 0, out.stderr[-2000:]
        return json.loads(out.stdout.strip().splitlines()[-1])

    first, second = run("a.soundalike"), run("b.soundalike")
    assert first == {"added": 3, "tf": model == "musicnn"} and second == {"added": 3, "tf": False}
    from soundalike.catalog.store import Store

    (ia, va), (ib, vb) = (Store(tmp_path / s).vectors() for s in ("a.soundalike", "b.soundalike"))
    assert list(ia) == list(ib)
    np.testing.assert_allclose(va, vb, rtol=1e-3, atol=1e-3)  # the same vectors, read from the cache


def test_a_time_limit_fits_the_whole_learning_rate_decay_into_it(tmp_path):
    """``--time-limit`` shapes the schedule: after the first epoch the trainer counts the epochs that fit, the
    learning rate decays to nothing over them, and it stops there instead of running on at a high rate; the
    student written loads and answers in the teacher's dimension."""
    from soundalike.model import distill
    from soundalike.model.student import StudentEncoder

    rng = np.random.default_rng(0)
    n, dim = 96, 1906
    mel = rng.normal(size=(n, 96, 187)).astype(np.float16)
    teacher = (mel.astype(np.float32).mean(axis=2) @ rng.normal(size=(96, dim)) * 0.1).astype(np.float16)
    windows = distill.Windows(mel=mel, teacher=teacher, track=np.repeat(np.arange(12), 8),
                              paths=[f"t{i}.ogg" for i in range(12)], groups=["g"] * 12, augmented=np.zeros(12, bool))
    lines = []
    res = distill.train(windows, tmp_path / "s.npz", epochs=1000, time_limit_s=20.0, widths=(4, 4, 4, 4, 8),
                        embedding=16, progress=False, log=lines.append)
    planned = [line for line in lines if "fit the time limit" in line]
    assert len(planned) == 1, lines
    fit = int(planned[0].split()[0])
    assert 2 <= fit < 1000 and len(res["history"]) <= fit
    enc = StudentEncoder(tmp_path / "s.npz")
    feats, _ = enc.encode(rng.normal(size=(3, 96, 187)).astype(np.float32))
    assert feats.shape == (3, dim) and np.isfinite(feats).all()
