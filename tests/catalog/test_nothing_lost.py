"""Nothing lost, round two: folders that vanish, repairs and verifies during commits, readers that stay open,
hung decoders, orphaned workers and malformed manifests."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import VECTOR_ENCODER as ENC
from conftest import make_library, put_tracks, synth, write_audio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from soundalike.catalog.check import repair, verify
from soundalike.catalog.store import Store, StoreError, StoreLock, StoreLocked, StoreWriter
from soundalike.cli import main
from soundalike.indexer.run import index_library
from soundalike.search.info import store_info
from soundalike.search.searcher import QueryError, Searcher


def quiet_index(root, store, **kw):
    kw.setdefault("workers", 0)
    return index_library(root, store, progress=False, log=lambda m: None, **kw)


def rows_by_path(store) -> dict[str, dict]:
    return {r["path"]: r for r in Store(store).tracks.to_pylist()}


# ------------------------------------------------------------------------------------- folders out of reach


def test_a_symlinked_folder_that_vanishes_keeps_its_tracks(tmp_path, trained_model):
    lib = make_library(tmp_path / "music", per_kind=2, seconds=3.0)
    drive = make_library(tmp_path / "drive", per_kind=1, seconds=3.0, seed=3)  # another disk
    os.symlink(drive.root, lib.root / "nas")
    store = tmp_path / "s.soundalike"
    first = quiet_index(lib.root, store, model=trained_model)
    assert first.added == len(lib.files) + len(drive.files)
    before = {p: r["id"] for p, r in rows_by_path(store).items()}
    on_nas = sorted(p for p in before if "/nas/" in p)
    assert len(on_nas) == len(drive.files)

    os.rename(drive.root, tmp_path / "unplugged")  # the drive is not mounted today: the link dangles
    report = quiet_index(lib.root, store)
    assert (report.removed, report.missing, report.added, report.updated) == (0, len(on_nas), 0, 0)
    rows = rows_by_path(store)
    assert {p: r["id"] for p, r in rows.items()} == before  # every track kept, same ids
    assert all(rows[p]["missing_since"] is not None for p in on_nas)
    assert all(rows[p]["missing_since"] is None for p in before if p not in on_nas)
    info = store_info(store)
    assert info["counts"]["missing"] == len(on_nas) and {m["path"] for m in info["missing"]} == set(on_nas)
    # still searchable, and shown as missing where results name them
    s = Searcher(store)
    hits = s.search_id(before[on_nas[0]], k=len(before) - 1)
    assert {h.path for h in hits if h.missing} == set(on_nas) - {on_nas[0]}
    out = CliRunner().invoke(main, ["search", str(before[on_nas[1]]), "--id", "--db", str(store), "-k", "20"])
    assert out.exit_code == 0 and "(missing)" in out.output
    out = CliRunner().invoke(main, ["info", "--db", str(store)])
    assert f"{len(on_nas)} missing" in out.output

    os.rename(tmp_path / "unplugged", drive.root)  # mounted again: nothing is decoded again
    back = quiet_index(lib.root, store)
    assert (back.added, back.updated, back.removed, back.missing, back.windows) == (0, 0, 0, 0, 0)
    rows = rows_by_path(store)
    assert {p: r["id"] for p, r in rows.items()} == before
    assert all(r["missing_since"] is None for r in rows.values())


def test_an_unreadable_folder_keeps_its_tracks(tmp_path, trained_model, monkeypatch):
    lib = make_library(tmp_path / "music", per_kind=2, seconds=3.0)
    store = tmp_path / "s.soundalike"
    quiet_index(lib.root, store, model=trained_model)
    closed = lib.root / "noise"
    if os.geteuid() != 0:
        os.chmod(closed, 0)
    else:  # root reads every folder: the scan meets the same PermissionError through os.scandir
        import soundalike.catalog.scan as scan_module

        real = os.scandir

        def scandir(path):
            if os.fspath(path) == str(closed):
                raise PermissionError(13, "Permission denied", str(closed))
            return real(path)

        monkeypatch.setattr(scan_module.os, "scandir", scandir)
    try:
        report = quiet_index(lib.root, store)
    finally:
        os.chmod(closed, 0o755)
    assert [p for p, _ in report.scan_problems] == [str(closed)]
    assert report.removed == 0 and report.missing == sum(k == "noise" for k in lib.files.values())
    assert set(rows_by_path(store)) == set(lib.files)


def test_a_mass_removal_waits_for_prune(tmp_path, trained_model):
    lib = make_library(tmp_path / "music", per_kind=5, seconds=3.0)  # 15 tracks
    store = tmp_path / "s.soundalike"
    quiet_index(lib.root, store, model=trained_model)
    one = sorted(p for p, k in lib.files.items() if k == "tones")[0]
    os.unlink(one)  # an ordinary deletion is an ordinary removal
    assert quiet_index(lib.root, store).removed == 1
    # a mount point that comes up empty: the folder is readable, its files are gone
    beats = sorted(p for p, k in lib.files.items() if k == "beats")
    shutil.rmtree(lib.root / "beats")
    (lib.root / "beats").mkdir()
    res = CliRunner().invoke(main, ["index", str(lib.root), "--db", str(store), "--quiet", "--workers", "0"])
    assert res.exit_code == 0, res.output
    assert "removed 0" in res.output and f"missing {len(beats)}" in res.output and "--prune" in res.output
    rows = rows_by_path(store)
    assert set(beats) <= set(rows) and all(rows[p]["missing_since"] is not None for p in beats)
    res = CliRunner().invoke(main, ["index", str(lib.root), "--db", str(store), "--quiet", "--workers", "0", "--prune"])
    assert res.exit_code == 0 and f"removed {len(beats)}" in res.output
    assert set(rows_by_path(store)) == set(lib.files) - {one} - set(beats)


# ---------------------------------------------------------------------------------- writers and checkers

WRITER = """
import sys, numpy as np
from soundalike.catalog.store import StoreWriter
from soundalike.catalog.track import Track
enc = {"name": "test", "fingerprint": "fp-test", "dim": 8, "transform": "standardize"}
store, n, mode, seed = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
rng = np.random.default_rng(seed)
with StoreWriter(store, encoder=enc) as w:
    if mode == "remove":
        ids = sorted(w.known()[p]["id"] for p in w.known())
        gone = [int(i) for i in rng.choice(ids, size=min(n, len(ids)), replace=False)] if ids else []
        for i in gone:
            w.remove(i)
        w.commit()
        print("removed", *gone, flush=True)
    else:
        for _ in range(n):
            path = f"/music/{seed}-{rng.integers(1 << 40)}.flac"
            i = w.id_for(path)
            w.put(Track(id=i, path=path, size=1, mtime=1.0, title=path), rng.standard_normal(8))
            if mode == "checkpoints":
                w.checkpoint()
                print("committed", i, flush=True)
            else:
                w.commit()
                print("committed", i, flush=True)
"""


def writer_proc(store: Path, n: int, mode: str, seed: int) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", WRITER, str(store), str(n), mode, str(seed)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def test_repair_takes_the_writer_lock_before_writing_anything(tmp_path, rng):
    store = tmp_path / "s.soundalike"
    with StoreWriter(store, encoder=ENC) as w:
        put_tracks(w, 5, rng)
        w.commit()
        before = (store / "manifest.json").read_bytes()
        with pytest.raises(StoreLocked, match="another soundalike process"):
            repair(store)
        assert (store / "manifest.json").read_bytes() == before  # not a byte written
        put_tracks(w, 2, rng)
        w.commit()  # the writer's generation stands
    assert Store(store).index().ntotal == 7 and verify(store)["ok"]
    res = CliRunner().invoke(main, ["repair", "--db", str(store)])
    assert res.exit_code == 0 and Store(store).index().ntotal == 7


def test_verify_during_commits_never_reports_damage(tmp_path, rng):
    store = tmp_path / "s.soundalike"
    with StoreWriter(store, encoder=ENC) as w:
        put_tracks(w, 3, rng)
        w.commit()
    writer = writer_proc(store, 150, "commits", seed=1)
    checks = []
    while writer.poll() is None:
        res = verify(store)
        checks.append(res["generation"])
        assert res["ok"], res["problems"]
    assert writer.returncode == 0, writer.stderr.read()
    assert len(set(checks)) > 3  # it really checked while the generations moved


def test_a_searcher_kept_open_answers_across_later_commits(tmp_path, rng):
    store = tmp_path / "s.soundalike"
    with StoreWriter(store, encoder=ENC) as w:
        first = put_tracks(w, 20, rng)
        w.commit()
    s = Searcher(store)
    probe = rng.standard_normal(8).astype(np.float32)
    expected = [h.id for h in s.search_vector(s.store.transform()(probe)[0], k=5)]
    for _ in range(4):  # each commit refits the transform and deletes files two generations old
        with StoreWriter(store, encoder=ENC) as w:
            put_tracks(w, 10, rng)
            w.commit()
    # the old searcher still holds its generation whole: the transform outside queries go through, its index
    assert [h.id for h in s.search_vector(s.store.transform()(probe)[0], k=5)] == expected
    assert {h.id for h in s.search_id(first[0], k=19)} == set(first[1:])
    fresh = s.refreshed()
    assert len(fresh) == 60 and fresh.store.generation == s.store.generation + 4
    assert fresh.refreshed() is fresh


def test_search_vectors_leaves_the_callers_array_and_thread_setting_alone(tmp_path, rng):
    import faiss

    store = tmp_path / "s.soundalike"
    with StoreWriter(store, encoder=ENC) as w:
        put_tracks(w, 30, rng)
        w.commit()
    s = Searcher(store)
    q = (rng.standard_normal((2, 8)) * 5).astype(np.float32)
    copy = q.copy()
    faiss.omp_set_num_threads(2)
    s.search_vectors(q, k=3)
    assert faiss.omp_get_max_threads() == 2
    np.testing.assert_array_equal(q, copy)


def test_a_failed_writer_open_releases_the_lock(tmp_path, rng):
    store = tmp_path / "s.soundalike"
    with StoreWriter(store, encoder=ENC) as w:
        put_tracks(w, 2, rng)
        w.commit()
    part = store / Store(store).manifest["tracks"][0]
    part.write_bytes(b"PAR1" + b"\0" * (part.stat().st_size - 8) + b"PAR1")  # right size, unreadable table
    for _ in range(3):
        with pytest.raises(StoreError, match="unreadable track table"):
            StoreWriter(store, encoder=ENC)
    lock = StoreLock(store).acquire()  # nobody holds it: the failed opens let go
    assert lock.held
    lock.release()
    fds = len(os.listdir("/proc/self/fd"))
    for _ in range(5):
        with pytest.raises(StoreError):
            StoreWriter(store, encoder=ENC)
    assert len(os.listdir("/proc/self/fd")) == fds


def test_the_remedy_for_a_changed_encoder_is_one_that_works(tmp_path, rng):
    store = tmp_path / "s.soundalike"
    with StoreWriter(store, encoder={**ENC, "spec": {"kind": "musicnn", "variant": "MSD_musicnn", "n_windows": 16}}) as w:
        put_tracks(w, 2, rng)
        w.commit()
    clip = write_audio(tmp_path / "clip.flac", synth("tones", seed=1, seconds=3.0))
    with pytest.raises(StoreError) as err:
        Searcher(store).search_path(clip)
    assert "--force" not in str(err.value) and "new store" in str(err.value)


# -------------------------------------------------------------------------------------------- decoders


def _hang_on_purpose(path):
    if path.endswith("hang.wav"):
        time.sleep(3600)  # what a decoder stuck in a loop looks like from outside
    return {}


def test_a_hung_decoder_costs_one_file(tmp_path, small_frontend):
    from soundalike.model.pipeline import extract_many

    lib = make_library(tmp_path / "lib", per_kind=2, seconds=2.0, formats=("wav",))
    paths = sorted(lib.files)
    paths.insert(2, str(write_audio(tmp_path / "hang.wav", synth("noise", seed=3, seconds=2.0))))
    t = time.monotonic()
    results = list(extract_many(paths, small_frontend, workers=2, per_file=_hang_on_purpose, timeout_s=10.0))
    assert time.monotonic() - t < 60
    assert sorted(r.path for r in results) == sorted(paths)
    failed = [r for r in results if r.error]
    assert [r.path for r in failed] == [paths[2]] and "longer than 10 s" in failed[0].error
    assert all(r.features is not None for r in results if not r.error)


ORPHANS = """
import os, sys, time
from soundalike.model.frontend import FrontEnd
from soundalike.model.pipeline import extract_many
sys.path[:0] = sys.argv[2:]  # this test's folder, and the tests' (its conftest)
from test_nothing_lost import _hang_on_purpose
paths = [os.path.join(sys.argv[1], f"{i}-hang.wav") for i in range(4)]
for r in extract_many(paths, FrontEnd(window_s=1.0, n_windows=2, n_mels=32), workers=2, per_file=_hang_on_purpose):
    pass
"""


def _children(pid: int) -> list[int]:
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            fields = stat[stat.rindex(")") + 2 :].split()
            if int(fields[1]) == pid:
                out.append(int(entry))
    return out


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2] != "Z"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_decode_workers_end_when_their_parent_is_killed(tmp_path):
    for i in range(4):
        write_audio(tmp_path / f"{i}-hang.wav", synth("noise", seed=i, seconds=2.0))
    parent = subprocess.Popen([sys.executable, "-c", ORPHANS, str(tmp_path), str(Path(__file__).parent),
                               str(Path(__file__).resolve().parents[1])])
    workers = []
    deadline = time.time() + 60
    while time.time() < deadline and len(workers) < 2:
        time.sleep(0.3)
        workers = [c for c in _children(parent.pid) if _alive(c) and "soundalike" not in Path(f"/proc/{c}/comm").read_text()
                   or "multiprocessing" in Path(f"/proc/{c}/cmdline").read_text().replace("\0", " ")]
        workers = [c for c in workers if "spawn_main" in Path(f"/proc/{c}/cmdline").read_text().replace("\0", " ")]
    assert len(workers) == 2, "the two decode workers started"
    time.sleep(2)  # they are busy on their files
    parent.send_signal(signal.SIGKILL)
    parent.wait()
    deadline = time.time() + 10
    while time.time() < deadline and any(_alive(w) for w in workers):
        time.sleep(0.2)
    left = [w for w in workers if _alive(w)]
    for w in left:  # do not leave them behind even when the test fails
        os.kill(w, signal.SIGKILL)
    assert not left, "decode workers outlived their parent"


# ------------------------------------------------------------------------------------------- manifests


@pytest.fixture(scope="module")
def valid_store(tmp_path_factory):
    rng = np.random.default_rng(5)
    store = tmp_path_factory.mktemp("valid") / "s.soundalike"
    with StoreWriter(store, encoder=ENC) as w:
        put_tracks(w, 6, rng)
        w.commit()
        put_tracks(w, 2, rng)
        w.checkpoint()
    return store


def _key_paths(obj, prefix=()):
    """Every key path of a JSON object (nested objects included)."""
    for k, v in obj.items():
        yield prefix + (k,)
        if isinstance(v, dict):
            yield from _key_paths(v, prefix + (k,))


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-3, 1 << 40) | st.floats(allow_nan=True, allow_subnormal=False) | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=6,
)


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_every_manifest_key_of_every_type_opens_or_fails_in_one_line(valid_store, tmp_path_factory, data):
    manifest = json.loads((valid_store / "manifest.json").read_text())
    paths = sorted(_key_paths(manifest), key=str)
    key = data.draw(st.sampled_from(paths), label="key")
    delete = data.draw(st.booleans(), label="delete")
    value = None if delete else data.draw(JSON_VALUES, label="value")
    parent = manifest
    for k in key[:-1]:
        parent = parent[k]
    if delete:
        del parent[key[-1]]
    else:
        parent[key[-1]] = value
    store = tmp_path_factory.mktemp("mutant") / "s.soundalike"
    shutil.copytree(valid_store, store)
    (store / "manifest.json").write_text(json.dumps(manifest))
    for action in (lambda: Searcher(store).search_vector(np.ones(8, np.float32), k=3), lambda: store_info(store),
                   lambda: Store.open(store).transform()):
        try:
            action()
        except (StoreError, QueryError) as err:
            assert "\n" not in str(err) and str(store) in str(err)
    res = verify(store)
    assert isinstance(res["ok"], bool)
    res = CliRunner().invoke(main, ["search", "0", "--id", "--db", str(store)])
    assert res.exit_code in (0, 2) and "Traceback" not in res.output, res.output
    shutil.rmtree(store.parent)
