"""Encoder artefacts, the track-level split, scanning, tags and the store's commits."""

from __future__ import annotations

import dataclasses
import json
import os

import numpy as np
import pytest
from conftest import synth, write_audio, write_av

from soundalike.catalog.scan import scan
from soundalike.catalog.store import EncoderMismatch, Store, StoreLocked, StoreWriter
from soundalike.catalog.tags import normalise_genre, read_tags
from soundalike.catalog.track import Track
from soundalike.model.encoder import KerasEncoder, ModelError, fingerprint
from soundalike.model.frontend import FrontEnd
from soundalike.model.dataset import DatasetError, list_dataset
from soundalike.model.train import split_tracks

# ---------------------------------------------------------------------------------------------- model


def test_saved_model_reloads_with_the_same_fingerprint_and_outputs(trained_model, small_frontend):
    enc = KerasEncoder.load(trained_model)
    side = json.loads(trained_model.with_suffix(".json").read_text())
    assert enc.fingerprint == side["fingerprint"] and enc.frontend == small_frontend
    w = np.stack([synth(k, seed=1, seconds=1.0) for k in ("tones", "noise")])
    emb, probs = enc.encode(enc.features(w))
    assert emb.shape == (2, 128) and probs.shape == (2, 3)
    np.testing.assert_allclose(probs.sum(1), 1.0, atol=1e-5)
    track_vec = enc.summarize(emb)
    assert track_vec.shape == (128,) and abs(np.linalg.norm(track_vec) - 1) < 1e-5


def test_fingerprint_changes_with_weights_and_every_frontend_parameter(small_frontend):
    w = [np.ones((3, 3), np.float32)]
    base = fingerprint("seedcnn", small_frontend, w)
    assert fingerprint("seedcnn", small_frontend, [np.ones((3, 3), np.float32)]) == base
    assert fingerprint("seedcnn", small_frontend, [w[0] + 1e-3]) != base
    for field in dataclasses.fields(FrontEnd):
        value = getattr(small_frontend, field.name)
        changed = dataclasses.replace(small_frontend, **{field.name: value * 2 if value else 1})
        assert fingerprint("seedcnn", changed, w) != base, field.name


def test_tampered_weights_are_refused(trained_model, tmp_path):
    import shutil

    copy = tmp_path / "m.keras"
    shutil.copy(trained_model, copy)
    side = json.loads(trained_model.with_suffix(".json").read_text())
    side["fingerprint"] = "0" * 32
    copy.with_suffix(".json").write_text(json.dumps(side))
    with pytest.raises(ModelError, match="do not match"):
        KerasEncoder.load(copy)
    copy.with_suffix(".json").unlink()
    with pytest.raises(ModelError, match="sidecar missing"):
        KerasEncoder.load(copy)


def test_split_is_by_track_stratified_and_repeatable():
    labels = np.repeat(np.arange(4), [10, 5, 2, 1])
    tr, va = split_tracks(labels, val_fraction=0.2, seed=3)
    assert set(tr).isdisjoint(va) and len(tr) + len(va) == len(labels)
    assert [int(np.sum(labels[va] == c)) for c in range(4)] == [2, 1, 1, 0]  # one-track class stays in train
    tr2, va2 = split_tracks(labels, val_fraction=0.2, seed=3)
    assert list(va) == list(va2)


def test_windows_of_a_track_never_cross_the_split(tmp_path):
    from conftest import make_library

    lib = make_library(tmp_path / "ds", per_kind=5, seconds=3.0, formats=("wav",))
    ds = list_dataset(lib.root)
    tr, va = split_tracks(ds.labels, val_fraction=0.3, seed=0)
    assert {ds.paths[i] for i in tr}.isdisjoint({ds.paths[i] for i in va})
    assert ds.classes == ["beats", "noise", "tones"]


def test_dataset_needs_two_classes(tmp_path):
    write_audio(tmp_path / "only" / "a.wav", synth("tones", seed=1, seconds=1.0))
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="at least two class folders"):
        list_dataset(tmp_path)


# -------------------------------------------------------------------------------------------- catalog


def test_scan_skips_hidden_and_non_audio_and_survives_symlink_loops(tmp_path):
    root = tmp_path / "lib"
    a = write_audio(root / "a" / "song.flac", synth("tones", seed=1, seconds=1.0))
    write_audio(root / ".hidden" / "secret.flac", synth("tones", seed=1, seconds=1.0))
    write_audio(root / "a" / ".partial.flac", synth("tones", seed=1, seconds=1.0))
    (root / "a" / "cover.jpg").write_bytes(b"\xff\xd8\xff")
    (root / "a" / "notes.txt").write_text("hello")
    os.symlink(root, root / "a" / "loop")  # a folder that contains itself
    found = [e.path for e in scan(root)]
    assert found == [str(a)]


def test_tags_and_fallbacks(tmp_path):
    p = write_audio(tmp_path / "My Song.mp3", synth("tones", seed=1, seconds=1.0),
                    tags={"title": "Título", "artist": "Ünïcode Artist", "album": "A", "genre": "Hip_Hop "})
    t = read_tags(p)
    assert (t["title"], t["artist"], t["album"], t["genre"]) == ("Título", "Ünïcode Artist", "A", "hip-hop")
    assert t["duration_s"] == pytest.approx(1.0, abs=0.1)
    bare = write_audio(tmp_path / "no tags.flac", synth("tones", seed=1, seconds=1.0))
    assert read_tags(bare)["title"] == "no tags" and read_tags(bare)["genre"] is None
    junk = tmp_path / "junk.mp3"
    junk.write_bytes(b"nothing")
    assert read_tags(junk)["title"] == "junk"


def _tag_natively(path, fields):
    """Tag a file through mutagen's own API for its format (the keys that format's taggers write)."""
    import mutagen

    keys = {
        "ASF": ("Title", "Author", "WM/AlbumTitle", "WM/Genre"),
        "MP4": ("\xa9nam", "\xa9ART", "\xa9alb", "\xa9gen"),
        "OggOpus": ("TITLE", "ARTIST", "ALBUM", "GENRE"),
        "WavPack": ("Title", "Artist", "Album", "Genre"),  # APEv2
        "AIFF": ("TIT2", "TPE1", "TALB", "TCON"),  # ID3 frames
    }
    f = mutagen.File(str(path))
    if f.tags is None:
        f.add_tags()
    for key, value in zip(keys[type(f).__name__], fields):
        if type(f).__name__ == "AIFF":
            from mutagen import id3

            f.tags.add(getattr(id3, key)(encoding=3, text=value))
        else:
            f[key] = value
    f.save()


@pytest.mark.parametrize("name, codec, container, sr, sample_format", [
    ("a.wma", "wmav2", "asf", 22050, None),
    ("a.m4a", "aac", "ipod", 22050, None),
    ("a.opus", "libopus", "ogg", 48000, None),
    ("a.wv", "wavpack", "wv", 22050, "s16p"),
    ("a.aiff", "pcm_s16be", "aiff", 22050, None),
])
def test_tags_of_every_tagging_scheme(tmp_path, name, codec, container, sr, sample_format):
    """WMA (ASF attributes), MP4 atoms, Vorbis comments, APEv2 and ID3 chunks: each read under its own keys;
    of several values the first is taken."""
    p = write_av(tmp_path / name, synth("tones", seed=1, seconds=1.0, sr=sr), sr, codec, container, sample_format)
    _tag_natively(p, (["Título"], ["Ünïcode Artist", "Other Artist"], ["A"], ["Hip_Hop "]))
    t = read_tags(p)
    assert (t["title"], t["artist"], t["album"], t["genre"]) == ("Título", "Ünïcode Artist", "A", "hip-hop")
    assert t["duration_s"] == pytest.approx(1.0, abs=0.1)


@pytest.mark.parametrize("raw, norm", [("  Rock ", "rock"), ("Hip Hop", "hip hop"), ("hip - hop", "hip-hop"),
                                       ("(17)", "rock"), ("(17)Rock", "rock"), ("", None), (None, None)])
def test_normalise_genre(raw, norm):
    assert normalise_genre(raw) == norm


def _writer(path, fp="fp-a"):
    return StoreWriter(path, encoder={"name": "test", "fingerprint": fp, "dim": 4})


def _track(w, i):
    return Track(id=w.id_for(f"/m/{i}.flac"), path=f"/m/{i}.flac", size=1, mtime=1.0, genre="g")


def test_store_commit_reopen_and_generations(tmp_path, rng):
    path = tmp_path / "s.soundalike"
    with _writer(path) as w:
        for i in range(5):
            w.put(_track(w, i), rng.standard_normal(4))
        w.commit()
    s1 = Store(path)
    assert s1.generation == 1 and s1.index().ntotal == 5
    with _writer(path) as w:
        w.put(_track(w, 5), rng.standard_normal(4))
        w.checkpoint()  # a checkpoint: readers see the new track, index built from the shards
        s2 = Store(path)
        assert s2.generation == 2 and len(s2.tracks) == 6 and s2.index().ntotal == 6
        w.remove(0)
        w.commit()
    s3 = Store(path)
    assert sorted(s3.tracks.column("id").to_pylist()) == [1, 2, 3, 4, 5] and s3.index().ntotal == 5
    # every file the manifest names exists with its recorded size
    for name, meta in s3.manifest["files"].items():
        assert (path / name).stat().st_size == meta["size"]


def test_crash_before_the_manifest_switch_keeps_the_last_generation(tmp_path, rng, monkeypatch):
    path = tmp_path / "s.soundalike"
    with _writer(path) as w:
        for i in range(3):
            w.put(_track(w, i), rng.standard_normal(4))
        w.commit()
    import soundalike.catalog.store as cs

    real = cs.atomic_write

    def failing(p, write):
        if p.name == cs.MANIFEST:
            raise OSError(28, "No space left on device")
        return real(p, write)

    monkeypatch.setattr(cs, "atomic_write", failing)
    with pytest.raises(OSError), _writer(path) as w:
        w.put(_track(w, 9), rng.standard_normal(4))
        w.commit()
    monkeypatch.undo()
    s = Store(path)
    assert s.generation == 1 and len(s.tracks) == 3 and s.index().ntotal == 3


def test_one_writer_at_a_time_and_encoder_mismatch(tmp_path, rng):
    path = tmp_path / "s.soundalike"
    with _writer(path) as w:
        w.put(_track(w, 0), rng.standard_normal(4))
        w.commit()
        with pytest.raises(StoreLocked, match="another soundalike process"):
            _writer(path)
    with pytest.raises(EncoderMismatch, match="fp-a.*fp-b"):
        _writer(path, fp="fp-b")
