"""The musicnn port against the original TF1 graph (golden outputs made by tests/golden/make_musicnn_golden.py)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from soundalike.model import musicnn
from soundalike.model.registry import load_encoder

GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "musicnn_golden.npz"
TOLERANCE = {"taggram": 1e-4, "logits": 1e-4, "penultimate": 1e-4, "mean_pool": 1e-3, "max_pool": 1e-3}


@pytest.fixture(scope="module")
def golden():
    with np.load(GOLDEN) as z:
        return {k: z[k] for k in z.files}


@pytest.mark.parametrize("variant", ["MSD_musicnn", "MTT_musicnn"])
def test_port_matches_the_original_graph(golden, variant):
    net = musicnn.load(variant)
    outputs = dict(zip(["taggram", "logits", "penultimate", "mean_pool", "max_pool"],
                       [np.asarray(o) for o in net(golden["inputs"], training=False)]))
    for name, tol in TOLERANCE.items():
        ref = golden[f"{variant}/{name}"]
        assert outputs[name].shape == ref.shape
        diff = float(np.max(np.abs(outputs[name] - ref)))
        assert diff <= tol, f"{variant} {name}: max abs difference {diff:.2e} > {tol}"


def test_front_end_reproduces_the_reference_inputs(golden):
    fe = musicnn.frontend(peak=0.0)  # the original's: at the recorded level
    feats = fe.features(golden["audio"])  # [n, mels, frames]
    np.testing.assert_allclose(np.transpose(feats, (0, 2, 1)), golden["inputs"], atol=1e-4)


def test_encoder_vectors_tags_and_fingerprint(golden):
    enc = musicnn.MusicnnEncoder("MSD_musicnn", n_windows=4, runtime_route="openvino-f32")
    feats = np.transpose(golden["inputs"], (0, 2, 1))
    window_feats, tags = enc.encode(feats)
    np.testing.assert_allclose(window_feats[:, :753], golden["MSD_musicnn/mean_pool"], atol=1e-3)
    np.testing.assert_allclose(window_feats[:, 753:], golden["MSD_musicnn/penultimate"], atol=1e-4)
    np.testing.assert_allclose(tags, golden["MSD_musicnn/taggram"], atol=1e-4)
    vec = enc.summarize(window_feats)
    assert vec.shape == (enc.dim,) == (953,)
    np.testing.assert_allclose(vec, window_feats.mean(0), rtol=1e-5)
    # stores made before keep mean and spread: their spec has no "pool", and loads as they were made
    old = load_encoder({"kind": "musicnn", "variant": "MSD_musicnn", "n_windows": 4, "peak": musicnn.LEVEL_PEAK})
    assert old.pool == "mean+std" and old.dim == 1906 and old.fingerprint != enc.fingerprint
    np.testing.assert_allclose(old.summarize(window_feats), np.concatenate([window_feats.mean(0), window_feats.std(0)]), rtol=1e-5)
    assert load_encoder(enc.spec()).fingerprint == enc.fingerprint
    genre, score, top, scores = enc.predicted(tags[2])  # the rhythm patch
    assert genre in musicnn.GENRE_TAGS["MSD_musicnn"] and top[0] in musicnn.MSD_LABELS and scores == sorted(scores, reverse=True)
    # the fingerprint covers the window count (a front-end parameter) and the weights (another model)
    assert musicnn.MusicnnEncoder("MSD_musicnn", n_windows=8).fingerprint != enc.fingerprint
    assert musicnn.MusicnnEncoder("MTT_musicnn", n_windows=4).fingerprint != enc.fingerprint
    assert musicnn.MusicnnEncoder("MSD_musicnn", n_windows=4).fingerprint == enc.fingerprint


@pytest.mark.parametrize("route", ["tensorflow", "openvino-f32"])
def test_exact_inference_routes_match_the_original_graph(golden, route):
    feats = np.transpose(golden["inputs"], (0, 2, 1))
    for variant in ("MSD_musicnn", "MTT_musicnn"):
        enc = musicnn.MusicnnEncoder(variant, runtime_route=route)
        window_feats, tags = enc.encode(feats)
        assert enc.runtime.startswith(route.split("-")[0]) and enc.runtime.endswith("f32")
        for got, name, tol in ((tags, "taggram", 1e-4), (window_feats[:, 753:], "penultimate", 1e-4),
                               (window_feats[:, :753], "mean_pool", 1e-3)):
            diff = float(np.max(np.abs(got - golden[f"{variant}/{name}"])))
            assert diff <= tol, f"{route} {variant} {name}: max abs difference {diff:.2e} > {tol}"


def test_bf16_route_stays_close_to_the_original_graph(golden):
    from soundalike.model.runtime import cpu_has_bf16

    if not cpu_has_bf16():
        pytest.skip("this CPU has no native bf16 instructions")
    feats = np.transpose(golden["inputs"], (0, 2, 1))
    auto = musicnn.MusicnnEncoder("MSD_musicnn")
    assert auto.runtime.startswith("openvino") and auto.runtime.endswith("bf16")  # auto picks bf16 here
    window_feats, tags = auto.encode(feats)
    ref = np.concatenate([golden["MSD_musicnn/mean_pool"], golden["MSD_musicnn/penultimate"]], axis=1)
    cos = np.sum(window_feats * ref, 1) / np.linalg.norm(window_feats, axis=1) / np.linalg.norm(ref, axis=1)
    assert cos.min() > 0.9995, cos
    assert np.max(np.abs(tags - golden["MSD_musicnn/taggram"])) < 0.02
    for got, want in zip(tags, golden["MSD_musicnn/taggram"]):  # the same top-3 tags for every patch
        assert set(np.argsort(-got)[:3]) == set(np.argsort(-want)[:3])


def test_unknown_inference_route_is_refused(monkeypatch):
    from soundalike.model.runtime import RuntimeChoiceError

    monkeypatch.setenv("SOUNDALIKE_INFERENCE", "gpu-fp8")
    with pytest.raises(RuntimeChoiceError, match="SOUNDALIKE_INFERENCE='gpu-fp8' is not a known inference route"):
        musicnn.MusicnnEncoder("MSD_musicnn")


def test_openvino_route_sends_and_writes_nothing(tmp_path, golden):
    """Offline by design: converting and running the model opens no network connection, never imports the
    converter's telemetry and writes nothing in the home folder."""
    import subprocess
    import sys

    home = tmp_path / "home"
    home.mkdir()
    script = (
        "import socket, sys, json, numpy as np\n"
        "calls = []\n"
        "real = socket.socket.connect\n"
        "def spy(self, addr, *a): calls.append(str(addr)); return real(self, addr, *a)\n"
        "socket.socket.connect = spy\n"
        "from soundalike.model.musicnn import MusicnnEncoder\n"
        "enc = MusicnnEncoder('MSD_musicnn', runtime_route='openvino-f32')\n"
        f"x = np.load({str(GOLDEN)!r})['inputs'].transpose(0, 2, 1)\n"
        "enc.encode(x)\n"
        "print(json.dumps({'runtime': enc.runtime, 'connects': calls,\n"
        "                  'telemetry': sys.modules.get('openvino_telemetry') is not None}))\n"
    )
    env = {k: v for k, v in __import__("os").environ.items() if k not in ("CI", "SOUNDALIKE_CACHE")}
    env.update(HOME=str(home), XDG_CONFIG_HOME=str(home / ".config"), XDG_CACHE_HOME=str(home / ".cache"))
    out = subprocess.run([sys.executable, "-c", script], cwd=Path(__file__).resolve().parents[2], env=env,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    rec = json.loads(out.stdout.strip().splitlines()[-1])
    assert rec["runtime"].startswith("openvino")
    assert rec["connects"] == [] and rec["telemetry"] is False
    # TensorFlow's Keras writes its config and matplotlib its font cache, and the compiled encoder is kept in
    # the cache folder for queries; nothing else may appear (OpenVINO's telemetry would keep a client id and
    # consent file under ~/intel)
    written = {str(p.relative_to(home)) for p in home.rglob("*") if p.is_file()}
    assert any(w.startswith(".cache/soundalike/encoders/") and w.endswith("model.xml") for w in written), written
    benign = ("/matplotlib/", ".keras/keras.json", ".cache/soundalike/encoders/")
    assert {w for w in written if not any(b in w for b in benign)} == set(), written


def test_missing_weights_name_the_install_command(monkeypatch):
    import importlib.util

    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(musicnn.WeightsMissing, match="pip install --no-deps musicnn==0.1.0"):
        musicnn.checkpoint_prefix("MSD_musicnn")


def test_golden_file_records_how_it_was_made(golden):
    meta = json.loads(str(golden["meta"]))
    assert "tensorflow" in json.dumps(meta)


def test_the_default_runs_both_models_side_by_side(golden):
    enc = musicnn.MusicnnEncoder(n_windows=4, runtime_route="openvino-f32")
    assert enc.variant == "MSD_musicnn+MTT_musicnn" and enc.name == "musicnn" and enc.window_dim == 1906
    assert enc.pool == "mean+std" and enc.dim == 3812  # a track: its windows' mean and spread
    feats = np.transpose(golden["inputs"], (0, 2, 1))
    window_feats, tags = enc.encode(feats)
    # the mean-pooled features of both, then both penultimate layers; the tag scores are MSD's
    for at, part in ((0, "MSD_musicnn/mean_pool"), (753, "MTT_musicnn/mean_pool"), (1506, "MSD_musicnn/penultimate"),
                     (1706, "MTT_musicnn/penultimate")):
        ref = golden[part]
        np.testing.assert_allclose(window_feats[:, at : at + ref.shape[1]], ref, atol=1e-3)
    np.testing.assert_allclose(tags, golden["MSD_musicnn/taggram"], atol=1e-4)
    assert enc.excerpt_dim == 753  # excerpts keep MSD's mean-pooled features, as before
    assert load_encoder(enc.spec()).fingerprint == enc.fingerprint
    assert musicnn.MusicnnEncoder("MSD_musicnn", n_windows=4).fingerprint != enc.fingerprint
    # its stores whiten within tracks and rank by cosine; the MSD network alone keeps the mean, standardised, CSLS
    assert enc.store_transform == "whiten" and enc.rescore is None
    msd = musicnn.MusicnnEncoder("MSD_musicnn", n_windows=4)
    assert (msd.pool, msd.store_transform, msd.rescore) == ("mean", "standardize", "csls")


def test_default_encoder_indexes_a_library_without_training(tmp_path):
    from conftest import make_library

    from soundalike.catalog.store import Store
    from soundalike.indexer.run import index_library
    from soundalike.search.searcher import Searcher

    library = make_library(tmp_path / "music", per_kind=2, seconds=50.0)  # long enough for every window
    store = tmp_path / "default.soundalike"
    report = index_library(library.root, store, workers=0, progress=False, log=lambda m: None)
    assert report.added == len(library.files) and report.failed == 0
    s = Store(store)
    assert s.encoder_info["name"] == "musicnn" and s.dim == 3812 and not s.manifest.get("neighbours")
    assert s.encoder_info["runtimes"] == [report.runtime] and report.runtime.startswith("openvino")
    n = len(library.files)
    assert s.manifest["transform"]["kind"] == "whiten" and s.manifest["transform"]["fitted_on"] == n
    assert s.manifest["within"]["tracks"] == n  # every track's windows went into the within-track sums
    # the index holds the raw vectors kept in the shards through the whitening: centred, scaled, projected on
    # the fitted basis (the axes n tracks span, for the means and for the spread), unit length
    ids, raw = s.vectors()
    assert raw.shape == (n, 3812) and np.isfinite(raw).all()
    fitted = s.fitted()
    assert fitted.basis.shape == (3812, 2 * (n - 1)) and s.index().width == 2 * (n - 1)
    z = (raw - fitted.mean) / fitted.std @ fitted.basis
    expected = z / np.linalg.norm(z, axis=1, keepdims=True)
    got = np.stack([s.index().reconstruct(int(i)) for i in ids])
    np.testing.assert_allclose(got, expected, atol=5e-3)  # to the 8-bit codes the index holds

    rows = s.tracks.to_pylist()
    assert all(r["predicted_genre"] and len(r["predicted_tags"]) == 5 for r in rows)
    searcher = Searcher(store)
    query = sorted(library.files)[0]
    hits = searcher.search_path(query, k=5)
    assert len(hits) == 5 and all(h.path != query for h in hits)
    # filtering on the predicted genre works on a library whose genre tags could be absent
    genre = rows[0]["predicted_genre"]
    members = {r["path"] for r in rows if r["predicted_genre"] == genre}
    # (every member listed: the synthetic noise tracks are near-copies to this encoder, so none is collapsed)
    hits = searcher.search_path(query, k=50, genres=[genre], genre_source="predicted", collapse=False)
    assert {h.path for h in hits} == members - {query}


def test_outside_query_through_the_library_transform(library, tmp_path):
    from conftest import synth, write_audio

    from soundalike.indexer.run import index_library
    from soundalike.search.searcher import Searcher

    store = tmp_path / "default.soundalike"
    index_library(library.root, store, workers=0, progress=False, log=lambda m: None)
    searcher = Searcher(store)
    # the same music in another file outside the library must land on that file with a cosine of ~1
    from conftest import reencoded

    src = sorted(library.files)[3]
    copy = reencoded(src, tmp_path / "copy.wav")
    # (by default its original is left out as its copy; a 6 s file would be searched as an excerpt)
    hits = searcher.search_path(copy, k=1, collapse=False, excerpt=False)
    assert hits[0].path == src and hits[0].score > 0.999
    outside = write_audio(tmp_path / "other.wav", synth("beats", seed=4321, seconds=6.0))
    assert len(searcher.search_path(outside, k=3)) == 3


def test_front_end_computes_librosas_log_mel_without_librosa():
    import librosa

    from soundalike.model.frontend import FrontEnd

    rng = np.random.default_rng(3)
    for fe in (musicnn.frontend(), FrontEnd()):
        t = np.arange(fe.window_samples) / fe.sample_rate
        w = np.stack([np.sin(2 * np.pi * 440 * t) * 0.5, rng.standard_normal(fe.window_samples) * 0.1,
                      np.zeros(fe.window_samples)]).astype(np.float32)
        mel = librosa.feature.melspectrogram(y=w, sr=fe.sample_rate, n_fft=fe.n_fft, hop_length=fe.hop_length,
                                             n_mels=fe.n_mels, fmin=fe.fmin, fmax=fe.fmax, power=2.0)
        np.testing.assert_allclose(fe.features(w), np.log10(1.0 + fe.log_gain * mel), atol=1e-5)


def test_outside_queries_load_the_compiled_encoder_without_tensorflow(library, tmp_path, monkeypatch):
    """Indexing keeps the converted model in the cache; a new query process embeds an outside file with it
    alone (no TensorFlow, Keras or librosa imported) and finds the file's original; a damaged cache is
    rebuilt from the package's weights."""
    import subprocess
    import sys

    from soundalike.catalog.store import Store
    from soundalike.indexer.run import index_library
    from soundalike.model import compiled

    cache = tmp_path / "cache"
    monkeypatch.setenv("SOUNDALIKE_CACHE", str(cache))
    store = tmp_path / "default.soundalike"
    index_library(library.root, store, workers=0, progress=False, log=lambda m: None)
    fingerprint = Store(store).encoder_info["fingerprint"]
    [folder] = [f for f in (cache / "encoders").iterdir() if f.name != "aliases"]
    assert (folder / "model.xml").is_file() and (folder / "meta.json").is_file()

    from conftest import reencoded

    src = sorted(library.files)[2]
    copy = reencoded(src, tmp_path / "copy.wav")
    script = (
        "import json, sys\n"
        "from soundalike.search.searcher import Searcher\n"
        f"hits = Searcher({str(store)!r}).search_path({str(copy)!r}, k=1, collapse=False, excerpt=False)\n"
        "print(json.dumps({'path': hits[0].path, 'score': hits[0].score,\n"
        "                  'imported': [m for m in ('tensorflow', 'keras', 'librosa') if m in sys.modules]}))\n"
    )

    def query() -> dict:
        out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
        assert out.returncode == 0, out.stderr[-2000:]
        return json.loads(out.stdout.strip().splitlines()[-1])

    got = query()
    assert got["imported"] == [] and got["path"] == src and got["score"] > 0.99
    # the same vectors as the encoder built from the weights, on the same route
    from soundalike.model.musicnn import MusicnnEncoder

    enc = MusicnnEncoder.cached(fingerprint)
    assert enc is not None and enc.fingerprint == fingerprint

    x = np.random.default_rng(0).random((3, musicnn.N_MELS, musicnn.FRAMES), dtype=np.float32) * 3
    ref = MusicnnEncoder(runtime_route=enc._compiled.route).encode(x)[0]
    np.testing.assert_allclose(enc.encode(x)[0], ref, atol=1e-4 if enc._compiled.route.endswith("f32") else 0.1)
    # damaged: the query falls back to the weights (TensorFlow), still answers, and the cache is made anew
    (folder / "model.xml").write_text("not a model")
    got = query()
    assert "tensorflow" in got["imported"] and got["path"] == src
    assert compiled.load(fingerprint) is not None
    assert query()["imported"] == []


def test_routes_can_share_a_store(library, tmp_path, monkeypatch):
    """A store indexed in float32 TensorFlow, then grown and queried through OpenVINO bf16 (or float32 where the
    CPU has no bf16): both routes' vectors live in one index, a copy still finds its original, and the store
    lists both routes."""
    import shutil

    from conftest import reencoded

    from soundalike.catalog.store import Store
    from soundalike.indexer.run import index_library
    from soundalike.search.searcher import Searcher

    store = tmp_path / "mixed.soundalike"
    files = sorted(library.files)
    moved = tmp_path / "later" / Path(files[0]).name
    moved.parent.mkdir()
    shutil.move(files[0], moved)
    monkeypatch.setenv("SOUNDALIKE_INFERENCE", "tensorflow")
    first = index_library(library.root, store, workers=0, progress=False, log=lambda m: None)
    monkeypatch.delenv("SOUNDALIKE_INFERENCE")
    shutil.move(moved, files[0])
    second = index_library(library.root, store, workers=0, progress=False, log=lambda m: None)
    assert first.runtime.startswith("tensorflow") and second.runtime.startswith("openvino") and second.added == 1
    assert Store(store).encoder_info["runtimes"] == [first.runtime, second.runtime]
    searcher = Searcher(store)
    for src in files[:4]:  # queries embedded by the second route, against vectors of both
        copy = reencoded(src, tmp_path / "copy.wav")
        hits = searcher.search_path(copy, k=1, collapse=False, excerpt=False)
        assert hits[0].path == src and hits[0].score > 0.99, (src, hits[0])


def test_auto_route_falls_back_to_tensorflow(monkeypatch):
    """Without OpenVINO the model runs in TensorFlow quietly; with a broken OpenVINO, with a one-line warning."""
    from soundalike.model import runtime
    from soundalike.model._quiet import import_keras

    keras = import_keras()
    inp = keras.Input((4, 3))
    net = keras.Model(inp, [keras.layers.Dense(2)(keras.layers.Flatten()(inp))])
    x = np.random.default_rng(0).normal(size=(5, 4, 3)).astype(np.float32)
    want = np.asarray(net(x))

    def missing(*a):
        raise ImportError("No module named 'openvino'")

    def broken(*a):
        raise RuntimeError("CPU plugin\nfailed to load")

    for fail, warned in ((missing, []), (broken, ["OpenVINO unavailable (CPU plugin failed to load); running the model in TensorFlow"])):
        monkeypatch.setattr(runtime, "_openvino", fail)
        messages = []
        compiled = runtime.compile_model(net, (4, 3), "auto", warn=messages.append)
        assert compiled.route == "tensorflow" and messages == warned
        np.testing.assert_allclose(compiled(x)[0], want, rtol=1e-5, atol=1e-6)
    monkeypatch.setattr(runtime, "_openvino", missing)
    with pytest.raises(runtime.RuntimeChoiceError, match="OpenVINO is not installed"):
        runtime.compile_model(net, (4, 3), "openvino-f32")


def test_short_tracks_find_their_own_kind_not_each_other(tmp_path):
    """A track too short for several windows is the mean of the windows it has, its spread unmeasured (NaN,
    which the index takes as the library's mean): a spread of 0 made every short track the neighbour of every
    other."""
    from conftest import synth, write_audio

    from soundalike.catalog.store import Store
    from soundalike.indexer.run import index_library
    from soundalike.search.searcher import Searcher

    kinds = ("tones", "noise", "beats")
    for i, kind in enumerate(kinds):
        for j in range(3):
            write_audio(tmp_path / "lib" / kind / f"long-{j}.flac", synth(kind, seed=10 * i + j, seconds=60.0))
        for j in range(2):
            write_audio(tmp_path / "lib" / kind / f"short-{j}.flac", synth(kind, seed=100 + 10 * i + j, seconds=3.5))
    store = tmp_path / "s.soundalike"
    index_library(tmp_path / "lib", store, model="musicnn", workers=0, progress=False, log=lambda m: None)
    s = Searcher(store)
    rows = {r["path"]: r for r in Store(store).tracks.to_pylist()}  # every column (a searcher reads only its own)
    shorts = [p for p in rows if "/short-" in p]
    assert all(rows[p]["windows"] == 1 for p in shorts) and len(s) == 15
    raw = dict(zip(*s.store.vectors()))
    half = s.store.dim // 2
    assert all(np.isfinite(raw[rows[p]["id"]][:half]).all() and np.isnan(raw[rows[p]["id"]][half:]).all() for p in shorts)
    kind_of = lambda p: Path(p).parent.name  # noqa: E731
    for p in shorts:
        hits = s.search_path(p, k=4)
        other_short = [h for h in hits if "/short-" in h.path and kind_of(h.path) != kind_of(p)]
        same_kind = [h for h in hits if kind_of(h.path) == kind_of(p)]
        assert not other_short and len(same_kind) == 4, (p, [(h.path, round(h.score, 3)) for h in hits])


def test_copies_collapse_and_dupes_lists_them_but_not_different_tracks(tmp_path):
    """Re-encoded copies of library tracks (WAV; FLAC at another rate; one trimmed by 0.5 s at each end), indexed
    with them: ``dupes`` groups each with its original and nothing else (different tracks of one style are not copies); search leaves a copy of the
    query out (and names it), lists a result's copies under it, and shows them as results with
    --keep-copies."""
    from click.testing import CliRunner
    from conftest import reencoded, write_audio

    from soundalike.cli import main
    import soundfile as sf

    from soundalike.demo.synth import STYLES, render
    from soundalike.indexer.run import index_library
    from soundalike.model.audio import resample
    from soundalike.search.searcher import Searcher

    root = tmp_path / "music"
    files = []
    # the demo's six synthesised styles: tracks of one style differ (cosine < 0.7). (The library standardises
    # each dimension over its tracks: a library of a handful of synthetic tracks has dimensions of almost no
    # spread, which magnify a lossy codec's changes; two dozen make it a library.)
    for style in STYLES:
        for j in range(4):
            files.append(str(write_audio(root / style / f"{style}-{j}.flac", render(style, seed=50 + j, duration_s=15.0))))
    a, b = files[4], files[9]
    a_copy = str(reencoded(a, root / "copies" / "a-copy.wav"))
    # resampled to 32 kHz (lossy codecs are measured on real music in benchmarks/dupes.py: on these synthetic
    # tracks their copies score 0.76-0.999, too close to call for a test)
    y, sr = sf.read(b, dtype="float32")
    b_copy = str(write_audio(root / "copies" / "b-copy.flac", resample(y, sr, 32000), 32000))
    c = files[14]
    y, sr = sf.read(c, dtype="float32")
    c_copy = str(write_audio(root / "copies" / "c-trimmed.flac", y[int(0.5 * sr) : -int(0.5 * sr)], sr))
    store = tmp_path / "copies.soundalike"
    index_library(root, store, workers=0, progress=False, log=lambda m: None)
    runner = CliRunner()
    res = runner.invoke(main, ["dupes", "--db", str(store), "--json"])
    assert res.exit_code == 0, res.output
    groups = [sorted(t["path"] for t in g["tracks"]) for g in json.loads(res.output)]
    assert sorted(groups) == sorted([sorted([a, a_copy]), sorted([b, b_copy]), sorted([c, c_copy])])
    listed = runner.invoke(main, ["dupes", "--db", str(store), "--m3u", "-"]).output.splitlines()
    assert listed[0] == "#EXTM3U" and sorted(l for l in listed if not l.startswith("#")) == sorted([a, a_copy, b, b_copy, c, c_copy])

    s = Searcher(store)
    from soundalike.search.query import Query, run

    result = run(s, Query.parse([a], k=5))
    assert a_copy not in [h.path for h in result.hits] and [c.path for c in result.copies_of_query] == [a_copy]
    assert [h.path for h in s.search_path(a, k=5)] == [h.path for h in result.hits]
    assert s.search_path(a, k=5, collapse=False)[0].path == a_copy
    # from another track, the pair is one result with the other listed under it
    near = s.search_path(files[10], k=len(files))
    paths = [h.path for h in near]
    assert (b in paths) != (b_copy in paths)
    pair = near[paths.index(b if b in paths else b_copy)]
    assert [c["path"] for c in pair.copies] == [b_copy if pair.path == b else b]
    table = runner.invoke(main, ["search", a, "--db", str(store), "-k", "3"])
    assert table.exit_code == 0 and "left out 1 copy of the query" in table.output
    assert "a-copy.wav" in runner.invoke(main, ["search", a, "--db", str(store), "-k", "1", "--keep-copies"]).output


def test_tags_rank_the_library_alone_or_narrow_a_seeds_neighbours(library, tmp_path):
    from click.testing import CliRunner

    from soundalike.catalog.store import Store
    from soundalike.catalog.track import vectors_np
    from soundalike.cli import main
    from soundalike.indexer.run import index_library

    store = tmp_path / "tags.soundalike"
    index_library(library.root, store, workers=0, progress=False, log=lambda m: None)
    s = Store(store)
    labels = s.encoder_info["labels"]
    table = s.tracks
    scores = vectors_np(table.column("tag_scores"), len(labels))
    assert scores.shape == (len(library.files), 50) and np.isfinite(scores).all() and (scores >= 0).all()
    # the stored scores agree with the top tags each track records
    first = table.slice(0, 1).to_pylist()[0]
    assert first["predicted_tags"][0] == labels[int(np.argmax(scores[0]))]
    paths = table.column("path").to_pylist()
    runner = CliRunner()
    res = runner.invoke(main, ["search", "--tag", "Jazz", "--tag", "chillout", "--db", str(store), "-k", "4", "--json"])
    assert res.exit_code == 0, res.output
    want = (scores[:, labels.index("jazz")] + scores[:, labels.index("chillout")]) / 2
    got = json.loads(res.output)
    assert [h["path"] for h in got] == [paths[i] for i in np.argsort(-want, kind="stable")[:4]]
    np.testing.assert_allclose([h["score"] for h in got], np.sort(want)[::-1][:4], atol=1e-6)
    # with a seed: its neighbours among the tenth of the library highest on the tag, the seed left out
    seed = paths[0]
    res = runner.invoke(main, ["search", seed, "--tag", "jazz", "--db", str(store), "-k", "5", "--json"])
    assert res.exit_code == 0, res.output
    high = {paths[i] for i in np.flatnonzero(scores[:, labels.index("jazz")] >= np.quantile(scores[:, labels.index("jazz")], 0.9))}
    found = [h["path"] for h in json.loads(res.output)]
    assert found and set(found) <= high - {seed}
    bad = runner.invoke(main, ["search", "--tag", "polka", "--db", str(store)])
    assert bad.exit_code != 0 and "unknown tag polka" in bad.output and "jazz" in bad.output
    assert "needs a QUERY" in runner.invoke(main, ["search", "--db", str(store)]).output


def test_level_is_normalised_and_stores_made_before_keep_the_recorded_level(library, tmp_path):
    """The same music 6 dB quieter is the same vector; a store whose encoder spec predates the level
    normalisation (no "peak") loads the recorded-level front end it was built with, same fingerprint."""
    import soundfile as sf

    from conftest import write_audio

    from soundalike.indexer.run import index_library
    from soundalike.model.registry import load_encoder
    from soundalike.search.searcher import Searcher

    store = tmp_path / "level.soundalike"
    index_library(library.root, store, workers=0, progress=False, log=lambda m: None)
    s = Searcher(store)
    src = sorted(library.files)[1]
    y, sr = sf.read(src, dtype="float32", always_2d=True)
    quiet = write_audio(tmp_path / "quiet.wav", y.mean(axis=1) * 0.5, sr)
    original = s.vector(s.id_for_path(src))
    assert float(s.embed_file(quiet) @ original) > 0.999
    new = load_encoder("musicnn")
    old = load_encoder({"kind": "musicnn", "variant": "MSD_musicnn", "n_windows": 16})
    assert new.frontend.peak == musicnn.LEVEL_PEAK and old.frontend.peak == 0.0
    assert old.fingerprint != new.fingerprint
    assert old.fingerprint == musicnn.MusicnnEncoder("MSD_musicnn", peak=0.0, pool="mean+std").fingerprint
    assert load_encoder(new.spec()).fingerprint == new.fingerprint
