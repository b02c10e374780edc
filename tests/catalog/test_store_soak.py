"""The store under random sequences of writes, kills, repairs, verifies and searches (hypothesis stateful
testing), and a soak run: an indexer killed and restarted on a growing folder while other processes search."""

from __future__ import annotations

import pytest

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from conftest import synth, write_audio
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule
from test_nothing_lost import writer_proc

from soundalike.catalog.check import repair, verify
from soundalike.catalog.store import Store, is_store
from soundalike.search.searcher import Searcher

pytestmark = pytest.mark.slow  # a system test: `pytest -m 'not slow'` leaves it out


def _ids(out: str, word: str) -> set[int]:
    ids = set()
    for line in out.splitlines():
        parts = line.split()
        if parts and parts[0] == word:
            ids.update(int(x) for x in parts[1:])
    return ids


class StoreUnderFire(RuleBasedStateMachine):
    """Every committed track survives anything that happens after its commit; the store always opens."""

    def __init__(self):
        super().__init__()
        self.dir = Path(tempfile.mkdtemp(prefix="soundalike-stateful-"))
        self.store = self.dir / "s.soundalike"
        self.committed: set[int] = set()
        self.removed: set[int] = set()
        self.seed = 0

    def _writer(self, n: int, mode: str) -> subprocess.Popen:
        self.seed += 1
        return writer_proc(self.store, n, mode, self.seed)

    @rule(n=st.integers(1, 5), mode=st.sampled_from(["commits", "checkpoints"]))
    def index(self, n, mode):
        proc = self._writer(n, mode)
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        assert "Traceback" not in err
        self.committed |= _ids(out, "committed")

    @rule(n=st.integers(2, 30), delay=st.floats(0.0, 1.5, allow_subnormal=False), mode=st.sampled_from(["commits", "checkpoints"]))
    def index_killed(self, n, delay, mode):
        proc = self._writer(n, mode)
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        out, _ = proc.communicate(timeout=60)
        self.committed |= _ids(out, "committed")  # what it said it committed before it died

    @rule(k=st.integers(1, 3))
    def remove(self, k):
        if not is_store(self.store):
            return
        proc = self._writer(k, "remove")
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        gone = _ids(out, "removed")
        self.committed -= gone
        self.removed |= gone

    @rule()
    def repair(self):
        if is_store(self.store):
            assert repair(self.store)["verify"]["ok"]

    @rule()
    def verify(self):
        if is_store(self.store):
            res = verify(self.store)
            assert res["ok"], res["problems"]

    @rule(pick=st.integers(0, 10**6))
    def search(self, pick):
        if not self.committed:
            return
        s = Searcher(self.store)
        ids = sorted(self.committed)
        hits = s.search_id(ids[pick % len(ids)], k=3)
        assert len(hits) == min(3, len(s) - 1) and all(h.path for h in hits)

    @invariant()
    def nothing_committed_is_lost(self):
        if not is_store(self.store):
            assert not self.committed
            return
        s = Store.open(self.store)
        ok = {r["id"] for r in s.tracks.to_pylist() if r["status"] == "ok"}
        assert self.committed <= ok
        assert not (self.removed & ok)
        assert s.index().ntotal == len(ok)

    def teardown(self):
        shutil.rmtree(self.dir, ignore_errors=True)


StoreUnderFire.TestCase.settings = settings(max_examples=6, stateful_step_count=8, deadline=None)
test_store_under_random_writes_kills_repairs_and_searches = StoreUnderFire.TestCase


# ------------------------------------------------------------------------------------------------- soak

READER = """
import json, random, sys, time
from soundalike.search.searcher import Searcher
store, deadline = sys.argv[1], time.time() + float(sys.argv[2])
queries, failures = 0, []
while time.time() < deadline:
    try:
        s = Searcher(store)
    except Exception as e:
        if 'not a soundalike store' not in str(e):
            failures.append(f"open: {type(e).__name__}: {e}")
        time.sleep(0.05)
        continue
    for _ in range(5):
        if not len(s):
            break
        try:
            i = int(random.choice(list(s._ids)))
            s.search_id(i, k=3)
            s.search_path(s.hit(i).path, k=3)  # a library file: its stored vector, no model
            queries += 2
        except Exception as e:
            failures.append(f"query: {type(e).__name__}: {e}")
print(json.dumps({"queries": queries, "failures": failures[:20], "failed": len(failures)}))
"""


def _snapshot(store: Path) -> dict[str, int]:
    if not is_store(store):
        return {}
    return {r["path"]: r["id"] for r in Store.open(store).tracks.to_pylist() if r["status"] == "ok"}


def test_soak_indexer_killed_and_restarted_while_others_search(tmp_path, trained_model):
    """One process indexes a growing folder and is killed at random points and restarted, while two others
    search without pause. Reports queries, failed queries (must be 0) and tracks lost (must be 0)."""
    seconds = float(os.environ.get("SOUNDALIKE_SOAK_SECONDS", "45"))
    rng = random.Random(11)
    lib, store = tmp_path / "lib", tmp_path / "s.soundalike"
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    readers = [subprocess.Popen([sys.executable, "-c", READER, str(store), str(seconds + 20)], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, env=env, cwd=tmp_path) for _ in range(2)]
    seen: dict[str, int] = {}
    runs = kills = lost = n_files = 0
    deadline = time.time() + seconds
    try:
        while time.time() < deadline:
            for _ in range(2):  # the folder grows between runs
                kind = ("tones", "noise", "beats")[n_files % 3]
                write_audio(lib / kind / f"{n_files:03d}.flac", synth(kind, seed=n_files, seconds=3.0))
                n_files += 1
            proc = subprocess.Popen([sys.executable, "-m", "soundalike.cli", "index", str(lib), "--db", str(store),
                                     "--model", str(trained_model), "--workers", "0", "--quiet", "--checkpoint-every", "0"],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env, cwd=tmp_path)
            runs += 1
            try:
                _, err = proc.communicate(timeout=rng.uniform(3.0, 12.0))
                assert proc.returncode == 0, err
            except subprocess.TimeoutExpired:
                proc.send_signal(signal.SIGKILL)
                proc.communicate()
                kills += 1
            now = _snapshot(store)
            lost += sum(1 for p, i in seen.items() if now.get(p) != i)  # gone, or under another id
            seen.update(now)
        final = subprocess.run([sys.executable, "-m", "soundalike.cli", "index", str(lib), "--db", str(store), "--json"],
                               capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300)
        assert final.returncode == 0, final.stderr
        now = _snapshot(store)
        lost += sum(1 for p, i in seen.items() if now.get(p) != i)
    finally:
        results = []
        for r in readers:
            out, err = r.communicate(timeout=seconds + 120)
            assert r.returncode == 0, err
            results.append(json.loads(out.strip().splitlines()[-1]))
    queries = sum(r["queries"] for r in results)
    failed = sum(r["failed"] for r in results)
    summary = (f"soak {seconds:.0f}s: {runs} index runs ({kills} killed), {n_files} files, {queries} queries, "
               f"{failed} failed, {lost} tracks lost")
    print(summary)
    assert failed == 0, [f for r in results for f in r["failures"]]
    assert lost == 0, summary
    assert kills >= 1 and queries > 100, summary
    assert sorted(now) == sorted(str(p) for p in lib.rglob("*.flac")), "every file indexed in the end"
