"""MPD radio against a real MPD: Debian's ``mpd`` started on loopback with a null audio output over a music
directory of synthesised songs, ``soundalike radio`` run as a user runs it, and the test skipping through the
songs as a listener would. Skipped, saying why, where ``mpd`` is not installed."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import synth, write_audio

from soundalike.indexer.run import index_library

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(shutil.which("mpd") is None, reason="Debian's mpd is not installed (apt-get install mpd)")]

KINDS = ("tones", "noise", "beats")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class MPD:
    """Debian's mpd on 127.0.0.1, a null output, over ``music``; started and stopped by the test."""

    def __init__(self, root: Path, music: Path):
        self.root, self.music, self.port = root, music, free_port()
        self.conf = root / "mpd.conf"
        self.conf.write_text(f'music_directory "{music}"\ndb_file "{root}/db"\nstate_file "{root}/state"\n'
                             f'log_file "{root}/log"\nbind_to_address "127.0.0.1"\nport "{self.port}"\n'
                             'auto_update "no"\naudio_output {\n type "null"\n name "null"\n mixer_type "none"\n}\n')
        self.proc = None

    def start(self) -> "MPD":
        self.proc = subprocess.Popen(["mpd", "--no-daemon", str(self.conf)], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        deadline = time.time() + 20
        while time.time() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return self
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"mpd did not start: {(self.root / 'log').read_text(errors='replace')[-500:]}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=20)

    def client(self):
        import mpd

        c = mpd.MPDClient()
        c.timeout = 20
        c.connect("127.0.0.1", self.port)
        return c


def library(root: Path) -> dict[str, dict]:
    """36 songs of three kinds by nine artists (each with songs of every kind), in 12 albums of one kind each:
    MPD path -> tags."""
    tags = {}
    for i in range(36):
        kind = KINDS[i % 3]
        rel = f"{kind}/album{i % 12:02d}/{i:02d}.flac"
        t = {"title": f"{kind} {i}", "artist": f"artist {(i // 3) % 9}", "album": f"album {i % 12}", "genre": kind}
        write_audio(root / rel, synth(kind, seed=500 + i, seconds=6.0), tags=t)
        tags[rel] = t
    return tags


def wait_until(check, timeout: float = 30.0, what: str = "") -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if check():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def test_radio_keeps_a_real_mpd_queue_ahead_without_repeats_within_the_artist_limit_and_survives_a_restart(
        tmp_path, trained_model):
    music = tmp_path / "music"
    tags = library(music)
    store = tmp_path / "lib.soundalike"
    index_library(music, store, model=trained_model, workers=0, progress=False, log=lambda m: None)
    server = MPD(tmp_path, music).start()
    radio = None
    try:
        c = server.client()
        c.update()
        wait_until(lambda: "updating_db" not in c.status() and int(c.stats()["songs"]) == 36, what="MPD's database")
        first = "beats/album02/02.flac"
        c.add(first)
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONFAULTHANDLER": "1"}
        # started as from a terminal: a suite run in the background (`make test &`) ignores SIGINT, which its
        # children would inherit, and Ctrl-C below would never reach the radio
        outer = signal.signal(signal.SIGINT, signal.default_int_handler)  # (handled, not ignored: reset at exec)
        try:
            radio = subprocess.Popen([sys.executable, "-m", "soundalike.cli", "radio", "--db", str(store), "--mpd",
                                      f"127.0.0.1:{server.port}", "--ahead", "5", "--max-per-artist", "1", "--json"],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        finally:
            signal.signal(signal.SIGINT, outer)
        wait_until(lambda: len(c.playlistinfo()) >= 5, timeout=120, what="the radio's first songs")
        c.play(0)
        played = [first]

        def ahead() -> list[str]:
            queue = [q["file"] for q in c.playlistinfo()]
            return queue[int(c.status().get("song", len(queue))) + 1:]

        for skip in range(16):  # a listener skipping through 16 songs (a minute and a half of music)
            wait_until(lambda: len(ahead()) >= 5, what=f"5 songs queued ahead (skip {skip})")
            queue = [q["file"] for q in c.playlistinfo()]
            assert len(queue) == len(set(queue)), "a song came back within the queue"
            assert all(q in tags for q in queue)
            artists = [tags[q]["artist"] for q in ahead()]
            assert len(artists) == len(set(artists)), f"an artist twice among the next {len(artists)}: {artists}"
            c.next()
            wait_until(lambda: c.status().get("state") == "play", what="playing")
            played.append(c.currentsong()["file"])
            if skip == 8:  # MPD restarts under the radio, keeping its queue (its state file)
                c.disconnect()
                server.stop()
                server.start()
                c = server.client()
                if c.status().get("state") != "play":
                    c.play(int(c.status().get("song", 0)))
        assert len(played) == len(set(played)) == 17
        queued = len(c.playlistinfo()) - 1  # every song but the first came from the radio
        c.disconnect()
    finally:
        deaf = None
        if radio is not None:
            radio.send_signal(signal.SIGINT)  # Ctrl-C
            try:
                out, err = radio.communicate(timeout=30)
            except subprocess.TimeoutExpired:  # abort it: faulthandler prints where each of its threads was
                radio.send_signal(signal.SIGABRT)
                out, err = radio.communicate(timeout=30)
                deaf = f"the radio ignored Ctrl-C for 30 s; where it was:\n{err[-4000:]}"
        server.stop()
        assert deaf is None, deaf
    events = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    kinds = [e["event"] for e in events]
    assert radio.returncode == 0 and kinds[-1] == "stopped", err[-2000:]
    assert kinds.count("connected") >= 2 and "waiting" in kinds  # it waited MPD's restart out
    # (counted in MPD's queue: an add that MPD took as it went down is in the queue, not in the radio's log)
    assert queued >= 5 + 15  # (one a skip, after five)
    assert 0 < sum(len(e["tracks"]) for e in events if e["event"] == "queued") <= queued
    # the first songs it chose sound like the first one more than the library does on average
    first_batch = next(e["tracks"] for e in events if e["event"] == "queued")
    assert np.mean([tags[t]["genre"] == "beats" for t in first_batch]) > 1 / 3
