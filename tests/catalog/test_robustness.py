"""Nothing lost, nothing crashes: hostile files, kills, concurrent readers, corrupt stores, a full disk."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from click.testing import CliRunner
from conftest import SR, make_library, synth, write_audio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from soundalike.catalog.store import Store, StoreError, read_manifest
from soundalike.cli import main
from soundalike.indexer.run import index_library
from soundalike.search.searcher import Searcher

ROOT = Path(__file__).resolve().parents[2]


def quiet_index(root, store, **kw):
    kw.setdefault("workers", 0)
    return index_library(root, store, progress=False, log=lambda m: None, **kw)


def cli(*args, timeout=300, **kw):
    """Run the real command line in a child process."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    return subprocess.run([sys.executable, "-m", "soundalike.cli", *map(str, args)], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout, env=env, **kw)


# ------------------------------------------------------------------------------------------- hostile files


def hostile_library(root: Path) -> dict[str, str]:
    """Every kind of surprise a real library holds; returns path -> 'ok' | 'error' (what must happen)."""
    good = synth("tones", seed=1, seconds=5.0)
    expect = {}

    def put(rel, expected, writer):
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        writer(p)
        expect[str(p)] = expected

    for ext in ("mp3", "flac", "wav", "ogg"):
        put(f"empty/empty.{ext}", "error", lambda p: p.write_bytes(b""))
        full = write_audio(root / f"whole/whole.{ext}", good)
        expect[str(full)] = "ok"
        data = full.read_bytes()
        put(f"truncated/cut-header.{ext}", "error", lambda p, d=data: p.write_bytes(d[:20]))
    put("renamed/letter.mp3", "error", lambda p: p.write_text("Dear diary, this is not a song.\n" * 40))
    put("renamed/picture.flac", "error", lambda p: p.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 8))
    put("short/blip.wav", "ok", lambda p: write_audio(p, synth("beats", seed=2, seconds=0.3)))
    put("hires/96k-24bit.flac", "ok", lambda p: sf.write(p, synth("noise", seed=3, seconds=4.0, sr=96000), 96000, subtype="PCM_24"))
    put("lofi/8bit-mono.wav", "ok", lambda p: sf.write(p, synth("beats", seed=4, seconds=4.0, sr=8000), 8000, subtype="PCM_U8"))
    put("surround/5.1.wav", "ok",
        lambda p: sf.write(p, np.stack([synth("tones", seed=i, seconds=4.0) for i in range(6)], axis=1), SR, subtype="PCM_16"))
    # a WAV whose header promises 10 s of audio but holds 2 s: what is there is used
    put("liar/long-header.wav", "ok", lambda p: _lying_wav(p, synth("noise", seed=5, seconds=2.0)))
    put("名前 with spaces/Ünïcödé – song.flac", "ok", lambda p: write_audio(p, synth("tones", seed=6, seconds=4.0)))
    put("silence/nothing.wav", "error", lambda p: write_audio(p, np.zeros(SR * 3, np.float32)))
    (root / "notes.txt").write_text("not audio, not scanned")
    (root / "whole" / ".hidden.flac").write_bytes(b"hidden files are skipped")
    os.symlink(root, root / "whole" / "loop")
    return expect


def _lying_wav(path: Path, y: np.ndarray) -> None:
    write_audio(path, y)
    raw = bytearray(path.read_bytes())
    i = raw.find(b"data")
    raw[i + 4 : i + 8] = (len(y) * 2 * 5).to_bytes(4, "little")
    path.write_bytes(bytes(raw))


def test_hostile_files_index_or_fail_with_one_line_reasons(tmp_path, trained_model):
    expect = hostile_library(tmp_path / "lib")
    store = tmp_path / "s.soundalike"
    report = quiet_index(tmp_path / "lib", store, model=trained_model)
    rows = {r["path"]: r for r in Store(store).tracks.to_pylist()}
    assert set(rows) == set(expect), "every audio file is either indexed or recorded, nothing else"
    for path, want in expect.items():
        assert rows[path]["status"] == want, (path, rows[path]["error"])
        if want == "error":
            assert rows[path]["error"] and "\n" not in rows[path]["error"]
    assert report.failed == sum(v == "error" for v in expect.values())
    assert Store(store).index().ntotal == sum(v == "ok" for v in expect.values())


def test_strict_exit_code_and_failures_listing(tmp_path, trained_model):
    expect = hostile_library(tmp_path / "lib")
    store = tmp_path / "s.soundalike"
    runner = CliRunner()
    res = runner.invoke(main, ["index", str(tmp_path / "lib"), "--db", str(store), "--model", str(trained_model), "--quiet", "--workers", "0"])
    assert res.exit_code == 0
    listed = json.loads(runner.invoke(main, ["failures", "--db", str(store), "--json"]).output)
    assert {f["path"] for f in listed} == {p for p, v in expect.items() if v == "error"}
    (tmp_path / "lib" / "new").mkdir()
    (tmp_path / "lib" / "new" / "bad.mp3").write_bytes(b"\xff\xfb" + b"\x00" * 50)
    res = runner.invoke(main, ["index", str(tmp_path / "lib"), "--db", str(store), "--strict", "--quiet", "--workers", "0"])
    assert res.exit_code == 1 and "failed 1" in res.output


def test_file_deleted_during_the_run_is_recorded(tmp_path, trained_model, monkeypatch):
    lib = make_library(tmp_path / "lib", per_kind=2, seconds=3.0)
    victim = sorted(lib.files)[2]
    import soundalike.indexer.run as indexer_run

    real = indexer_run.read_tags

    def delete_first(path):
        if path == victim:
            os.unlink(path)  # gone between the scan and the decode
        return real(path)

    monkeypatch.setattr(indexer_run, "read_tags", delete_first)
    report = quiet_index(lib.root, tmp_path / "s.soundalike", model=trained_model)
    assert report.failed == 1 and report.failures[0][0] == victim
    monkeypatch.undo()
    again = quiet_index(lib.root, tmp_path / "s.soundalike")
    assert again.removed == 1  # the next run notices it is gone for good


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their permissions "
                    "(test_nothing_lost.py checks unreadable folders as root too)")
def test_unreadable_file(tmp_path, trained_model):
    lib = make_library(tmp_path / "lib", per_kind=1, seconds=3.0)
    locked = sorted(lib.files)[0]
    os.chmod(locked, 0)
    try:
        report = quiet_index(lib.root, tmp_path / "s.soundalike", model=trained_model)
        assert report.failed == 1 and report.failures[0][0] == locked
    finally:
        os.chmod(locked, 0o644)


def test_a_crashing_decoder_costs_one_file(tmp_path, small_frontend):
    from soundalike.model.pipeline import extract_many

    lib = make_library(tmp_path / "lib", per_kind=4, seconds=2.0, formats=("wav",))
    paths = sorted(lib.files)
    paths.insert(5, str(tmp_path / "crash.wav"))
    results = list(extract_many(paths, small_frontend, workers=2, per_file=_crash_on_purpose))
    assert sorted(r.path for r in results) == sorted(paths)
    failed = [r for r in results if r.error]
    assert [r.path for r in failed] == [str(tmp_path / "crash.wav")] and "crashed" in failed[0].error


def _crash_on_purpose(path):
    if path.endswith("crash.wav"):
        os._exit(9)  # what a segfault in a decoder looks like from outside
    return {}


# ------------------------------------------------------------------------------------------------- crashes


def _snapshot(store: Path) -> dict[str, np.ndarray]:
    s = Store(store)
    ids, raw = s.vectors()
    path_of = {r["id"]: r["path"] for r in s.tracks.to_pylist()}
    return {path_of[int(i)]: (int(i), v) for i, v in zip(ids, raw)}


def test_sigkill_at_random_moments_loses_nothing(tmp_path, trained_model):
    lib = make_library(tmp_path / "lib", per_kind=8, seconds=3.0)  # enough work that a kill lands while it runs
    clean = tmp_path / "clean.soundalike"
    assert cli("index", lib.root, "--db", clean, "--model", trained_model, "--workers", "0", "--quiet").returncode == 0

    store = tmp_path / "killed.soundalike"
    rng = random.Random(7)
    args = ["index", lib.root, "--db", store, "--model", trained_model, "--workers", "0", "--quiet", "--checkpoint-every", "0"]
    kept: dict[str, int] = {}
    kills_after_a_commit = 0
    for _ in range(4):
        gen = read_manifest(store)["generation"] if (store / "manifest.json").exists() else -1
        proc = subprocess.Popen([sys.executable, "-m", "soundalike.cli", *map(str, args)], cwd=tmp_path,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
        # kill while it writes, not while TensorFlow starts: after this run's first commit, at a random moment
        deadline = time.time() + 120
        while proc.poll() is None and time.time() < deadline:
            if (store / "manifest.json").exists() and read_manifest(store)["generation"] > gen:
                break
            time.sleep(0.02)
        time.sleep(rng.uniform(0.0, 0.3))
        if proc.poll() is None:
            kills_after_a_commit += 1
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        s = Store(store)  # the store opens at every moment in between, and keeps what was committed
        assert s.index().ntotal == sum(r["status"] == "ok" for r in s.tracks.to_pylist())
        now = {r["path"]: r["id"] for r in s.tracks.to_pylist()}
        assert {p: now.get(p) for p in kept} == kept
        kept = now
    assert kills_after_a_commit >= 2 and 0 < len(kept) < len(lib.files) + 1
    assert cli(*args).returncode == 0
    a, b = _snapshot(clean), _snapshot(store)
    assert set(a) == set(b) == set(lib.files)
    for path in a:
        assert a[path][0] == b[path][0]  # same ids
        np.testing.assert_allclose(a[path][1], b[path][1], atol=1e-5)
    assert not list(store.rglob(".*.tmp*"))  # no temporary leftovers, in vectors/ either


# -------------------------------------------------------------------------------------- concurrent readers

READER = """
import sys, random, time
from soundalike.search.searcher import Searcher
store, deadline = sys.argv[1], time.time() + float(sys.argv[2])
n = 0
while time.time() < deadline:
    try:
        s = Searcher(store)
    except Exception as e:
        if 'not a soundalike store' in str(e) or 'manifest.json: missing' in str(e):
            continue  # the first commit has not happened yet (the folder and its lock come first)
        raise
    if len(s):
        hits = s.search_id(random.choice(list(s._ids)), k=3)
        assert all(h.path for h in hits)
    n += 1
print(n)
"""


def test_a_second_writer_is_refused_with_a_clear_message(tmp_path, trained_model):
    from soundalike.catalog.store import StoreLock

    lib = make_library(tmp_path / "lib", per_kind=1, seconds=3.0)
    store = tmp_path / "busy.soundalike"
    assert cli("index", lib.root, "--db", store, "--model", trained_model, "--workers", "0", "--quiet").returncode == 0
    write_audio(lib.root / "new.flac", synth("tones", seed=9, seconds=3.0))
    before = (store / "manifest.json").read_bytes()
    with StoreLock(store):  # what a running indexer holds
        for verb in (["index", lib.root, "--workers", "0", "--quiet"], ["repair"]):
            second = cli(*verb, "--db", store)
            assert second.returncode == 2 and "another soundalike process is writing" in second.stderr, second.stderr
    assert (store / "manifest.json").read_bytes() == before
    assert cli("index", lib.root, "--db", store, "--workers", "0", "--quiet").returncode == 0  # free again


def test_readers_never_fail_during_indexing(tmp_path, trained_model):
    lib = make_library(tmp_path / "lib", per_kind=5, seconds=3.0)
    store = tmp_path / "busy.soundalike"
    reader = subprocess.Popen([sys.executable, "-c", READER, str(store), "25"], cwd=ROOT, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
    writer = subprocess.Popen([sys.executable, "-m", "soundalike.cli", "index", str(lib.root), "--db", str(store), "--model",
                               str(trained_model), "--workers", "0", "--quiet", "--checkpoint-every", "0"], cwd=ROOT,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert writer.wait(timeout=120) == 0, writer.stderr
    out, err = reader.communicate(timeout=120)
    assert reader.returncode == 0, err
    assert int(out.strip()) > 0
    assert Store(store).index().ntotal == len(lib.files)


# ---------------------------------------------------------------------------------- corruption and mismatch


@pytest.fixture
def built(tmp_path, trained_model):
    lib = make_library(tmp_path / "lib", per_kind=3, seconds=3.0)
    store = tmp_path / "s.soundalike"
    quiet_index(lib.root, store, model=trained_model)
    return lib, store


def _flip_byte(path: Path, at: int) -> None:
    data = bytearray(path.read_bytes())
    data[at] ^= 0xFF
    path.write_bytes(bytes(data))


def test_flipped_byte_is_found_by_verify_and_repaired(built):
    lib, store = built
    runner = CliRunner()
    assert runner.invoke(main, ["verify", "--db", str(store)]).exit_code == 0
    index_file = store / read_manifest(store)["index"]["file"]
    _flip_byte(index_file, index_file.stat().st_size - 100)
    res = runner.invoke(main, ["verify", "--db", str(store)])
    assert res.exit_code == 1 and index_file.name in res.output and "checksum" in res.output
    res = runner.invoke(main, ["repair", "--db", str(store)])
    assert res.exit_code == 0, res.output
    assert runner.invoke(main, ["verify", "--db", str(store)]).exit_code == 0
    assert len(Searcher(store).search_path(sorted(lib.files)[0], k=3)) == 3


@pytest.mark.parametrize("damage", ["truncate_parquet", "truncate_faiss", "missing_shard", "garbage_manifest"])
def test_damage_gives_a_clear_error_naming_file_and_remedy(built, damage):
    lib, store = built
    m = read_manifest(store)
    target = {"truncate_parquet": m["tracks"][0], "truncate_faiss": m["index"]["file"],
              "missing_shard": m["shards"][0], "garbage_manifest": "manifest.json"}[damage]
    p = store / target
    if damage == "missing_shard":
        p.unlink()
    elif damage == "garbage_manifest":
        p.write_text("{ this is not json")
    else:
        p.write_bytes(p.read_bytes()[: p.stat().st_size // 2])
    res = CliRunner().invoke(main, ["search", sorted(lib.files)[0], "--db", str(store), "-k", "2"])
    assert res.exit_code == 2 and "Traceback" not in res.output
    assert Path(target).name in res.output and "soundalike repair" in res.output
    fixed = CliRunner().invoke(main, ["repair", "--db", str(store)])
    if damage == "truncate_parquet":  # the track table cannot be rebuilt from the shards: said plainly
        assert fixed.exit_code == 2 and "new store" in fixed.output
        return
    assert fixed.exit_code == 0, fixed.output
    report = quiet_index(lib.root, store)  # tracks whose vectors were lost are embedded again, same ids
    s = Store(store)
    assert s.index().ntotal == len(lib.files) and report.failed == 0
    assert sorted(r["id"] for r in s.tracks.to_pylist()) == list(range(len(lib.files)))


def test_newer_store_format_is_refused(built):
    _, store = built
    m = json.loads((store / "manifest.json").read_text())
    m["version"] = 99
    (store / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(StoreError, match="newer soundalike"):
        Store(store)


# ----------------------------------------------------------------------------------------------- disk full

DISK_FULL = """
import resource, signal, sys
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG instead of killing us
limit = int(sys.argv[3])
resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
from soundalike.indexer.run import IndexingError, index_library
try:
    index_library(sys.argv[1], sys.argv[2], workers=0, progress=False, log=lambda m: None)
except IndexingError as e:
    print(e)
    sys.exit(3)
"""


def test_disk_full_keeps_the_previous_generation(built, tmp_path):
    lib, store = built
    before = _snapshot(store)
    gen = read_manifest(store)["generation"]
    for i in range(6):  # enough new audio that the next commit needs bigger files
        write_audio(lib.root / "more" / f"m{i}.flac", synth("noise", seed=100 + i, seconds=3.0))
    # the new index file (six more vectors) will not fit under a limit just above the current one
    limit = (store / read_manifest(store)["index"]["file"]).stat().st_size + 64
    proc = subprocess.run([sys.executable, "-c", DISK_FULL, str(lib.root), str(store), str(limit)], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 3, proc.stdout + proc.stderr
    assert "cannot write the store (File too large)" in proc.stdout and f"generation {gen} is intact" in proc.stdout
    assert read_manifest(store)["generation"] >= gen
    after = _snapshot(store)
    assert {p: v[0] for p, v in after.items() if p in before} == {p: v[0] for p, v in before.items()}
    assert CliRunner().invoke(main, ["verify", "--db", str(store)]).exit_code == 0
    assert not list(store.rglob(".*.tmp*"))


# -------------------------------------------------------------------------------------------- bad requests


@pytest.mark.parametrize("case", ["folder", "not_audio", "not_a_store", "store_is_a_file", "huge_k"])
def test_bad_requests_exit_2_with_one_line(built, tmp_path, case):
    lib, store = built
    text = tmp_path / "readme.mp3"
    text.write_text("not audio")
    args = {
        "folder": ["search", str(lib.root), "--db", str(store)],
        "not_audio": ["search", str(text), "--db", str(store)],
        "not_a_store": ["search", sorted(lib.files)[0], "--db", str(tmp_path)],
        "store_is_a_file": ["info", "--db", str(text)],
        "huge_k": ["search", sorted(lib.files)[0], "--db", str(store), "-k", "1000000"],
    }[case]
    res = CliRunner().invoke(main, args)
    assert res.exit_code == 2, res.output
    assert "Traceback" not in res.output and res.output.strip().count("\n") <= 3


# ------------------------------------------------------------------------------------------------- fuzzing

FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@FUZZ
@given(st.one_of(st.binary(max_size=400), st.text(max_size=200).map(str.encode),
                 st.dictionaries(st.text(max_size=8), st.integers() | st.text(max_size=8), max_size=5)
                 .map(lambda d: json.dumps({**d, "format": "soundalike-store"}).encode())))
def test_fuzz_manifest_reader(tmp_path, data):
    (tmp_path / "manifest.json").write_bytes(data)
    try:
        Store(tmp_path)
    except StoreError as err:
        assert "\n" not in str(err)


HEADERS = [b"", b"RIFF\x24\x00\x00\x00WAVEfmt ", b"fLaC", b"OggS", b"ID3\x03\x00\x00\x00\x00\x00\x00", b"\xff\xfb\x90\x00"]


@FUZZ
@given(st.sampled_from(HEADERS), st.binary(max_size=2000), st.sampled_from([".wav", ".flac", ".ogg", ".mp3", ".m4a"]))
def test_fuzz_audio_loader_and_tag_reader(tmp_path, header, body, ext):
    from soundalike.catalog.tags import read_tags
    from soundalike.model.audio import AudioError, load_windows

    p = tmp_path / f"fuzz{ext}"
    p.write_bytes(header + body)
    tags = read_tags(p)  # never raises
    assert tags["title"] == "fuzz"
    try:
        w, _ = load_windows(p, sample_rate=SR, window_s=1.0, n_windows=2)
        assert np.isfinite(w).all()
    except AudioError as err:
        assert str(p) in str(err) and "\n" not in str(err)


# ------------------------------------------------------------------------------------------- bounded memory

PEAK_RSS = """
import resource, sys
from soundalike.model.frontend import FrontEnd
from soundalike.model.audio import load_windows
fe = FrontEnd()
w, info = fe.windows(sys.argv[1])
print(info.duration_s, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def test_memory_does_not_grow_with_file_length(tmp_path):
    """Decoding a 40-minute file takes no more memory than a 1-minute one: only the windows are read."""
    short = write_audio(tmp_path / "short.flac", np.tile(synth("noise", seed=1, seconds=10.0), 6))
    long = write_audio(tmp_path / "long.flac", np.tile(synth("noise", seed=1, seconds=10.0), 240))
    peaks = {}
    for name, p in (("short", short), ("long", long)):
        out = subprocess.run([sys.executable, "-c", PEAK_RSS, str(p)], cwd=ROOT, capture_output=True, text=True, check=True)
        duration, rss_kb = out.stdout.split()
        peaks[name] = (float(duration), int(rss_kb))
    assert peaks["long"][0] == pytest.approx(2400, abs=1)
    full_decode_mb = 2400 * SR * 4 / 1e6  # what decoding the whole file as float32 would take: ~210 MB
    grew_mb = (peaks["long"][1] - peaks["short"][1]) / 1024
    assert grew_mb < 20 < full_decode_mb, peaks


def test_file_changed_during_the_run_is_embedded_again_next_time(tmp_path, trained_model, monkeypatch):
    lib = make_library(tmp_path / "lib", per_kind=2, seconds=3.0)
    victim = sorted(lib.files)[1]
    import soundalike.indexer.run as indexer_run

    real = indexer_run.read_tags

    def rewrite_first(path):
        if path == victim and not rewrite_first.done:
            rewrite_first.done = True
            write_audio(Path(path), synth("noise", seed=55, seconds=3.0))  # rewritten after the scan
            os.utime(path, (time.time() + 10, time.time() + 10))
        return real(path)

    rewrite_first.done = False
    monkeypatch.setattr(indexer_run, "read_tags", rewrite_first)
    store = tmp_path / "s.soundalike"
    quiet_index(lib.root, store, model=trained_model)
    monkeypatch.undo()
    before = {r["path"]: r["id"] for r in Store(store).tracks.to_pylist()}
    again = quiet_index(lib.root, store)  # the store recorded the file as it was at the scan: it is seen as changed
    assert (again.updated, again.added) == (1, 0)
    assert {r["path"]: r["id"] for r in Store(store).tracks.to_pylist()} == before


KILL_IN_COMMIT = """
import os, signal, sys
import soundalike.catalog.store as cs
real = cs.atomic_write
def write(path, fn):
    if path.name == cs.MANIFEST and sys.argv[4] == "manifest":
        os.kill(os.getpid(), signal.SIGKILL)  # new files written, manifest not yet switched
    real(path, fn)
    if path.suffix == ".faiss" and sys.argv[4] == "index":
        os.kill(os.getpid(), signal.SIGKILL)  # the new index is on disk, nothing refers to it
cs.atomic_write = write
from soundalike.indexer.run import index_library
index_library(sys.argv[1], sys.argv[2], model=sys.argv[3], workers=0, progress=False, log=lambda m: None)
"""


@pytest.mark.parametrize("moment", ["manifest", "index"])
def test_sigkill_during_a_commit(tmp_path, trained_model, moment):
    lib = make_library(tmp_path / "lib", per_kind=2, seconds=3.0)
    clean = tmp_path / "clean.soundalike"
    quiet_index(lib.root, clean, model=trained_model)
    store = tmp_path / "s.soundalike"
    half = sorted(lib.files)[: len(lib.files) // 2]
    for p in sorted(lib.files)[len(half):]:  # first a committed generation with half of the library
        os.rename(p, p + ".away")
    quiet_index(lib.root, store, model=trained_model)
    for p in sorted(lib.files)[len(half):]:
        os.rename(p + ".away", p)
    gen = read_manifest(store)["generation"]
    proc = subprocess.run([sys.executable, "-c", KILL_IN_COMMIT, str(lib.root), str(store), str(trained_model), moment],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == -signal.SIGKILL
    s = Store(store)  # the previous generation, whole
    assert s.generation == gen and sorted(r["path"] for r in s.tracks.to_pylist()) == half
    assert CliRunner().invoke(main, ["verify", "--db", str(store)]).exit_code == 0
    quiet_index(lib.root, store)
    a, b = _snapshot(clean), _snapshot(store)
    assert set(a) == set(b)
    for path in a:
        np.testing.assert_allclose(a[path][1], b[path][1], atol=1e-5)
