"""The training pipeline: cache, split, training to a useful accuracy, evaluation reports, resuming."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import make_library, synth, write_audio

from soundalike.cli import main
from soundalike.model.dataset import DatasetError
from soundalike.model.prepare import load_cache_index, prepare
from soundalike.model.train import split_three, train_model

pytestmark = pytest.mark.slow  # a system test: `pytest -m 'not slow'` leaves it out

PNG = b"\x89PNG\r\n\x1a\n"


def test_three_way_split_never_shares_a_track_and_keeps_every_class_in_training():
    labels = np.repeat(np.arange(4), [20, 7, 2, 1])
    tr, va, te = split_three(labels, val_fraction=0.15, test_fraction=0.15, seed=1)
    assert not (set(tr) & set(va) or set(tr) & set(te) or set(va) & set(te))
    assert len(tr) + len(va) + len(te) == len(labels)
    assert all(np.sum(labels[tr] == c) >= 1 for c in range(4))
    assert [int(np.sum(labels[te] == c)) for c in range(4)] == [3, 1, 1, 0]
    assert [list(x) for x in split_three(labels, val_fraction=0.15, test_fraction=0.15, seed=1)] == [list(tr), list(va), list(te)]


def test_prepare_caches_once_and_follows_changes(tmp_path, small_frontend):
    lib = make_library(tmp_path / "ds", per_kind=3, seconds=3.0, formats=("wav", "flac"))
    cache = tmp_path / "cache"
    first = prepare(lib.root, cache, frontend=small_frontend, images=True, workers=0, progress=False, log=lambda m: None)
    assert (first.prepared, first.reused) == (9, 0) and first.images > 0
    pngs = list((cache / "images").rglob("*.png"))
    assert len(pngs) == first.images and all(p.read_bytes()[:8] == PNG for p in pngs)
    again = prepare(lib.root, cache, frontend=small_frontend, workers=0, progress=False, log=lambda m: None)
    assert (again.prepared, again.reused) == (0, 9)  # nothing decoded the second time
    changed, gone = sorted(lib.files)[:2]
    write_audio(type(cache)(changed), synth("noise", seed=9, seconds=3.0))
    os.utime(changed, (1e9, 1e9))
    os.unlink(gone)
    third = prepare(lib.root, cache, frontend=small_frontend, workers=0, progress=False, log=lambda m: None)
    assert (third.prepared, third.reused, third.removed) == (1, 7, 1)
    index = load_cache_index(cache)
    assert len(index["tracks"]) == 8 and all((cache / e["file"]).is_file() for e in index["tracks"])
    # another front end means another cache content: everything is prepared again
    import dataclasses

    other = prepare(lib.root, cache, frontend=dataclasses.replace(small_frontend, n_mels=32), workers=0, progress=False,
                    log=lambda m: None)
    assert other.prepared == 8


def _stop_after(n, stop):
    """``extract_many`` that calls ``stop()`` once ``n`` files have come back."""
    from soundalike.model import pipeline

    def extract_many(*args, **kwargs):
        for i, r in enumerate(pipeline.extract_many(*args, **kwargs)):
            if i == n:
                stop()
            yield r

    return extract_many


def _same_cache_as_uninterrupted(cache, root, frontend, tmp_path):
    """The cache holds every track, and the same windows as a prepare that was never interrupted."""
    whole = tmp_path / "whole"
    prepare(root, whole, frontend=frontend, workers=0, progress=False, log=lambda m: None)
    a, b = load_cache_index(cache), load_cache_index(whole)
    assert [e["path"] for e in a["tracks"]] == [e["path"] for e in b["tracks"]]
    for ea, eb in zip(a["tracks"], b["tracks"]):
        assert np.array_equal(np.load(cache / ea["file"]), np.load(whole / eb["file"])), ea["path"]


def test_interrupted_prepare_keeps_the_tracks_it_finished(tmp_path, small_frontend, monkeypatch):
    import importlib

    lib = make_library(tmp_path / "ds", per_kind=3, seconds=3.0, formats=("wav", "flac"))
    cache = tmp_path / "cache"
    kw = dict(frontend=small_frontend, workers=0, progress=False, log=lambda m: None)

    def interrupt():
        raise KeyboardInterrupt

    mod = importlib.import_module("soundalike.model.prepare")
    monkeypatch.setattr(mod, "extract_many", _stop_after(4, interrupt))
    with pytest.raises(KeyboardInterrupt):
        prepare(lib.root, cache, **kw)
    assert len(load_cache_index(cache)["tracks"]) == 4  # saved on the way out
    monkeypatch.undo()
    again = prepare(lib.root, cache, **kw)
    assert (again.reused, again.prepared) == (4, 5)
    _same_cache_as_uninterrupted(cache, lib.root, small_frontend, tmp_path)


def test_killed_prepare_keeps_the_tracks_it_checkpointed(tmp_path, small_frontend):
    import signal
    import subprocess
    import sys
    from pathlib import Path

    import soundalike

    lib = make_library(tmp_path / "ds", per_kind=3, seconds=3.0, formats=("wav",))
    cache = tmp_path / "cache"
    code = f"""
import os, signal
import soundalike.model.prepare as P
from soundalike.model.frontend import FrontEnd
from test_training import _stop_after
P.extract_many = _stop_after(5, lambda: os.kill(os.getpid(), signal.SIGKILL))
P.prepare({str(lib.root)!r}, {str(cache)!r}, frontend=FrontEnd.from_dict({small_frontend.to_dict()!r}), workers=0,
          progress=False, checkpoint_s=0)
"""
    here = Path(__file__).resolve()  # (this module, and the tests' conftest it imports)
    path = os.pathsep.join([str(Path(soundalike.__file__).parent.parent), str(here.parent), str(here.parents[1])])
    env = {**os.environ, "PYTHONPATH": path + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    again = prepare(lib.root, cache, frontend=small_frontend, workers=0, progress=False, log=lambda m: None)
    assert (again.reused, again.prepared) == (5, 4)
    _same_cache_as_uninterrupted(cache, lib.root, small_frontend, tmp_path)


def test_seed_cnn_learns_distinct_classes_and_evaluate_reports(tmp_path, small_frontend):
    lib = make_library(tmp_path / "ds", per_kind=12, seconds=4.0, formats=("wav",), seed=3)
    model = tmp_path / "m.keras"
    res = train_model(lib.root, model, frontend=small_frontend, cache=tmp_path / "cache", epochs=20, val_fraction=0.2,
                      test_fraction=0.34, patience=8, workers=0, progress=False, log=lambda m: None)
    assert res.n_test_tracks == 12
    assert res.test_track_accuracy >= 0.9, res.history  # held-out tracks, never seen in training
    report_dir = tmp_path / "report"
    out = CliRunner().invoke(main, ["evaluate", str(lib.root), "--model", str(model), "--test-split", "--report",
                                    str(report_dir), "--json", "--workers", "0"])
    assert out.exit_code == 0, out.output
    rep = json.loads(out.output[out.output.index("{"):])
    assert rep["tracks"] == 12 and rep["track_accuracy"] == pytest.approx(res.test_track_accuracy)
    assert {"track_accuracy", "window_accuracy", "macro_f1", "classes", "confusion_matrix"} <= set(rep)
    assert np.asarray(rep["confusion_matrix"]).sum() == 12
    for name in ("curves.png", "confusion.png"):
        assert (report_dir / name).read_bytes()[:8] == PNG
    assert json.loads((report_dir / "report.json").read_text())["macro_f1"] == rep["macro_f1"]


def test_head_default_recipe_runs_its_full_schedule_and_generalises(tmp_path):
    """The head on the pretrained features, with every default (the recipe `soundalike train` uses): no early
    stop, and held-out tracks classified."""
    lib = make_library(tmp_path / "ds", per_kind=6, seconds=7.0, formats=("wav",), seed=5)
    res = train_model(lib.root, tmp_path / "head.keras", backbone="musicnn", n_windows=2, test_fraction=0.34,
                      workers=0, progress=False, log=lambda m: None)
    assert len(res.history["loss"]) == 100 and "val_loss" in res.history
    assert res.n_test_tracks == 6 and res.test_track_accuracy >= 0.9, res.history
    # validation was reported, then the saved head was trained again on training + validation tracks
    side = json.loads((tmp_path / "head.json").read_text())["training"]
    assert side["final_model_trained_on"] == "train+val" and side["val_track_accuracy"] is not None
    assert not list(tmp_path.glob(".head.keras.*"))  # no training backups left behind
    # beside the windows' classifier, a track classifier on their mean and spread, saved in the same model
    from soundalike.model.encoder import read_keras

    model, _ = read_keras(tmp_path / "head.keras")
    assert len(model.outputs) == 4 and model.get_layer("track_logits").units == 3
    # and the nearest-track vote: the 12 tracks it was trained on (training + validation), each with its class
    labels = model.get_layer("neighbour_labels").get_weights()[0]
    assert labels.shape == (12, 3) and (labels.sum(0) == 4).all()
    from soundalike.model.pipeline import extract_many
    from soundalike.model.registry import load_encoder

    enc = load_encoder(tmp_path / "head.keras")
    votes = {}
    for r in extract_many(side["test_paths"], enc.frontend, workers=0):
        parts = enc.track_parts(enc.encode(r.features)[1])
        assert set(parts) == {"windows", "regression", "vote"}
        votes[r.path] = enc.labels[int(parts["vote"].argmax())]
    assert [Path(p).parent.name for p in votes] == list(votes.values())  # the vote alone finds each one's kind
    # evaluate scores the held-out tracks as training did: windows and track classifier together
    out = CliRunner().invoke(main, ["evaluate", str(lib.root), "--model", str(tmp_path / "head.keras"), "--test-split",
                                    "--json", "--workers", "0"])
    assert out.exit_code == 0, out.output
    rep = json.loads(out.output[out.output.index("{"):])
    assert rep["tracks"] == 6 and rep["track_accuracy"] == pytest.approx(res.test_track_accuracy)
    assert rep["part_track_accuracy"]["vote"] == 1.0  # as the vote alone scored above
    assert set(rep["part_track_accuracy"]) == {"windows", "regression", "vote"}
    out = CliRunner().invoke(main, ["evaluate", str(lib.root), "--model", str(tmp_path / "head.keras"), "--test-split",
                                    "--workers", "0"])
    assert out.exit_code == 0 and "track accuracy of each part alone: windows " in out.output, out.output


def test_head_members_are_trained_apart_and_saved_as_one_model_answering_their_mean(tmp_path):
    from soundalike.model._quiet import import_keras
    from soundalike.model.encoder import read_keras

    lib = make_library(tmp_path / "ds", per_kind=3, seconds=4.0, formats=("wav",), seed=6)
    train_model(lib.root, tmp_path / "head.keras", backbone="musicnn", n_windows=1, members=2, epochs=3,
                test_fraction=0.0, workers=0, progress=False, log=lambda m: None)
    model, _ = read_keras(tmp_path / "head.keras")
    members = [model.get_layer(name).output for name in ("genre", "genre_1")]
    probe = import_keras().Model(model.inputs, [model.outputs[0], *members])
    x = np.random.default_rng(0).normal(size=(8, model.inputs[0].shape[-1])).astype(np.float32)
    mean, *each = (np.asarray(p) for p in probe([x], training=False))
    np.testing.assert_allclose(mean, np.mean(each, axis=0), atol=1e-6)
    assert np.abs(each[0] - each[1]).max() > 1e-4  # members that differ (other seeds), not one head twice
    with pytest.raises(DatasetError, match="--members 2"):
        train_model(lib.root, tmp_path / "seed.keras", members=2, workers=0, progress=False, log=lambda m: None)


def _interrupt_after_second_epoch():
    """A Keras callback that stops training like Ctrl-C at the end of the second epoch."""
    from soundalike.model._quiet import import_keras

    class Interrupt(import_keras().callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch == 1:
                raise KeyboardInterrupt

    return Interrupt()


def test_interrupted_training_resumes_from_its_last_epoch(tmp_path, small_frontend):
    lib = make_library(tmp_path / "ds", per_kind=3, seconds=3.0, formats=("wav",))

    model = tmp_path / "m.keras"
    kw = dict(frontend=small_frontend, epochs=4, patience=10, workers=0, progress=False, log=lambda m: None)
    with pytest.raises(KeyboardInterrupt):
        train_model(lib.root, model, callbacks=(_interrupt_after_second_epoch(),), **kw)
    assert not model.exists() and (tmp_path / ".m.keras.training").is_dir()
    res = train_model(lib.root, model, **kw)
    assert len(res.history["loss"]) == 2  # epochs 3 and 4 only: 1 and 2 were done before the interrupt
    assert model.exists() and not (tmp_path / ".m.keras.training").exists()


def test_training_resumes_only_the_same_run(tmp_path, small_frontend):
    """A backup of another dataset or other settings is not resumed: the run starts fresh and says so."""
    lib = make_library(tmp_path / "ds", per_kind=3, seconds=3.0, formats=("wav",))

    model = tmp_path / "m.keras"
    lines = []
    kw = dict(frontend=small_frontend, epochs=4, patience=10, workers=0, progress=False, log=lines.append)

    def interrupted(**changes):
        """Train until the end of the second epoch; a resumed run never gets there, so this raises only when
        the run started fresh."""
        lines.clear()
        with pytest.raises(KeyboardInterrupt):
            train_model(lib.root, model, callbacks=(_interrupt_after_second_epoch(),), **{**kw, **changes})
        return [m for m in lines if "starting fresh" in m or "resuming" in m]

    backup = tmp_path / ".m.keras.training"
    fresh = [f"{backup}: an interrupted training of another dataset or other settings; starting fresh"]
    assert interrupted() == []
    write_audio(lib.root / "tones" / "new.wav", synth("tones", seed=99, seconds=3.0))  # a track added
    assert interrupted() == fresh
    assert interrupted(seed=1) == fresh  # other settings
    os.utime(lib.root / "tones" / "new.wav", (1e9, 1e9))  # a track changed (its mtime)
    assert interrupted(seed=1) == fresh
    lines.clear()
    res = train_model(lib.root, model, **{**kw, "seed": 1})  # the same run: resumed
    assert len(res.history["loss"]) == 2
    resumed = [m for m in lines if "starting fresh" in m or "resuming" in m]
    assert resumed == [f"resuming the interrupted training from epoch 2 ({backup})"]
    assert not backup.exists()


def test_dataset_problems_are_clear(tmp_path, small_frontend):
    root = tmp_path / "ds"
    make_library(root, per_kind=2, seconds=3.0, formats=("wav",))
    (root / "empty").mkdir()
    write_audio(root / "solo" / "only.wav", synth("tones", seed=3, seconds=3.0))
    (root / "beats" / "broken.wav").write_bytes(b"RIFF....WAVE")
    lines = []
    rep = prepare(root, tmp_path / "c", frontend=small_frontend, workers=0, progress=False, log=lines.append)
    text = "\n".join(lines)
    assert "empty: no audio files, class skipped" in text
    assert "solo: only one track" in text
    assert "broken.wav" in text and [p for p, _ in rep.failed] == [str(root / "beats" / "broken.wav")]
    (tmp_path / "one").mkdir()
    write_audio(tmp_path / "one" / "a" / "x.wav", synth("tones", seed=1, seconds=2.0))
    with pytest.raises(DatasetError, match="at least two class folders"):
        prepare(tmp_path / "one", tmp_path / "c2", frontend=small_frontend, workers=0, progress=False, log=lambda m: None)


def test_spectrogram_png(tmp_path):
    p = write_audio(tmp_path / "a.flac", synth("beats", seed=1, seconds=8.0))
    out = tmp_path / "spec.png"
    res = CliRunner().invoke(main, ["spectrogram", str(p), "-o", str(out), "--duration", "5"])
    assert res.exit_code == 0, res.output
    assert out.read_bytes()[:8] == PNG and out.stat().st_size > 10_000


@pytest.mark.parametrize("missing, verb", [
    ("matplotlib", ["spectrogram", "{audio}", "-o", "{tmp}/s.png"]),
    ("matplotlib", ["prepare", "{tmp}", "-o", "{tmp}/cache", "--images", "--backbone", "none"]),
    ("matplotlib", ["evaluate", "{tmp}", "--model", "{tmp}/m.keras"]),
    ("sklearn", ["evaluate", "{tmp}", "--model", "{tmp}/m.keras"]),
])
def test_without_the_train_extra_a_one_line_error(tmp_path, missing, verb):
    """matplotlib and scikit-learn are the optional extra ``soundalike[train]``: without them the verbs that
    draw or score say what to install (exit 2), before any work and without a traceback."""
    import subprocess
    import sys
    from pathlib import Path

    import soundalike

    audio = write_audio(tmp_path / "a.wav", synth("tones", seed=1, seconds=2.0))
    args = [a.format(audio=audio, tmp=tmp_path) for a in verb]
    code = f"import sys; sys.modules[{missing!r}] = None\nfrom soundalike.cli import main\nmain({args!r})"
    path = str(Path(soundalike.__file__).parent.parent)
    env = {**os.environ, "PYTHONPATH": path + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2, proc.stderr
    err = [line for line in proc.stderr.splitlines() if line.startswith("Error:")]
    name = {"sklearn": "scikit-learn"}.get(missing, missing)
    assert len(err) == 1 and name in err[0] and "pip install 'soundalike[train]'" in err[0], proc.stderr
    assert "Traceback" not in proc.stderr and not (tmp_path / "cache").exists()
