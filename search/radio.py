"""Sound-alike radio beside MPD: ``soundalike radio --mpd HOST:PORT`` watches what MPD plays and keeps its queue
a few tracks ahead with neighbours of the recent tracks.

Each time MPD's queue or the song playing changes, the radio counts the songs queued after the one playing; below
``ahead``, it asks the store for tracks like the last ``seeds`` songs of the queue (the centroid of their
vectors, as ``search --seeds`` does), leaving out every track played or queued within the last ``no_repeat``,
copies of anything already there collapsed, and no artist (album) more than ``max_per_artist``
(``max_per_album``) times among the last ``ahead`` songs of the queue; optionally near the playing song's
tempo and in a key that mixes with its key. MPD names songs by their path inside its music directory; the
radio maps the store's absolute paths to those (``music_dir``, else MPD's own setting when it is connected
through a local socket, else found from the first song played: the store's path that ends with its name).

It stops cleanly on Ctrl-C (or when ``stop`` is set), and waits for MPD and connects again when MPD restarts.
"""

from __future__ import annotations

import collections
import dataclasses
import os
import time
from typing import Callable

import numpy as np

from .current import Current
from .rescore import artist_album

POLL_S = 0.5


@dataclasses.dataclass
class RadioOptions:
    ahead: int = 5  # songs kept queued after the one playing
    seeds: int = 3  # the last songs of the queue the next ones should sound like
    no_repeat: int = 50  # no song played or queued within this many comes back
    max_per_artist: int = 1  # ... times an artist appears among the last ``ahead`` songs of the queue
    max_per_album: int = 1
    keep_tempo: float | None = None  # a share: only tracks within it of the playing song's tempo (0.08: +-8%)
    keep_key: bool = False  # only tracks in a key that mixes with the playing song's key


def parse_address(text: str) -> tuple[str, int]:
    """``HOST:PORT``, ``HOST`` (port 6600), ``:PORT`` or a socket path."""
    if text.startswith("/"):
        return text, 0
    host, _, port = text.rpartition(":") if ":" in text else (text, "", "6600")
    try:
        return host or "localhost", int(port)
    except ValueError:
        raise ValueError(f"--mpd {text!r}: give HOST:PORT, e.g. localhost:6600") from None


class Radio:
    """Keeps one MPD's queue going from one store."""

    def __init__(self, store, address: tuple[str, int], *, options: RadioOptions | None = None,
                 music_dir: str | None = None, password: str | None = None, log: Callable[[dict], None] = print):
        self.current = Current(store)
        self.address, self.password, self.log = address, password, log
        self.options = options or RadioOptions()
        self.music_dir = None if music_dir is None else os.path.abspath(music_dir)
        self.played: collections.deque[str] = collections.deque(maxlen=max(1, self.options.no_repeat))
        self.added = 0
        self._ids: dict[str, int | None] = {}  # MPD path -> track id, for the generation ``_generation``
        self._generation = None

    # ------------------------------------------------------------------------------------------- MPD side
    def _connect(self):
        import mpd

        client = mpd.MPDClient()
        client.timeout = 30
        client.connect(self.address[0], self.address[1] or None)
        if self.password:
            client.password(self.password)
        if self.music_dir is None:
            try:  # (only answered to a client on MPD's local socket)
                self.music_dir = os.path.abspath(client.config())
            except Exception:
                pass
        return client

    def run(self, stop=None) -> None:
        """Keep the queue going until Ctrl-C or ``stop`` (a threading.Event) is set; MPD going away is waited
        out (connecting again after 1, 2, 4 ... 10 s)."""
        import mpd

        delay = 1.0
        while stop is None or not stop.is_set():
            client = None
            try:
                client = self._connect()
                self.log({"event": "connected", "mpd": f"{self.address[0]}:{self.address[1]}"})
                delay = 1.0
                self._follow(client, stop)
            except KeyboardInterrupt:
                self.log({"event": "stopped", "added": self.added})
                return
            except (OSError, mpd.ConnectionError, mpd.ProtocolError) as err:
                self.log({"event": "waiting", "reason": f"MPD at {self.address[0]}:{self.address[1]}: "
                                                        f"{err or type(err).__name__}; trying again in {delay:.0f} s"})
                if stop is not None and stop.wait(delay):
                    break
                if stop is None:
                    time.sleep(delay)
                delay = min(10.0, delay * 2)
            finally:
                if client is not None:
                    try:
                        client.disconnect()
                    except Exception:
                        pass
        self.log({"event": "stopped", "added": self.added})

    def _follow(self, client, stop) -> None:
        """Top the queue up whenever MPD's queue or the song playing has changed (MPD's status is asked every
        POLL_S: a question of microseconds for MPD, and Ctrl-C or ``stop`` is heard at once)."""
        seen = None
        while stop is None or not stop.is_set():
            status = client.status()
            now = (status.get("playlist"), status.get("songid"), status.get("state"))
            if now != seen:
                self.top_up(client, status)
                seen = (client.status().get("playlist"), now[1], now[2])  # (the songs it queued changed it)
            (stop.wait if stop is not None else time.sleep)(POLL_S)

    # ------------------------------------------------------------------------------------------- choosing
    def top_up(self, client, status: dict | None = None) -> int:
        """Queue tracks until ``ahead`` follow the one playing; the number queued."""
        status = status or client.status()
        queue = client.playlistinfo()
        playing = int(status["song"]) if "song" in status else (-1 if queue else None)
        if playing is None:
            return 0  # nothing queued: nothing to sound like
        if 0 <= playing < len(queue) and (not self.played or self.played[-1] != queue[playing]["file"]):
            self.played.append(queue[playing]["file"])
        need = self.options.ahead - (len(queue) - playing - 1)
        if need <= 0:
            return 0
        picked = self.choose(queue, playing, need)
        for uri in picked:
            client.add(uri)
        self.added += len(picked)
        if picked:
            self.log({"event": "queued", "tracks": picked})
        return len(picked)

    def _root_for(self, s, uri: str) -> str | None:
        """The folder MPD's paths are relative to, found as the store's path that ends with ``uri``."""
        import pyarrow.compute as pc

        column = s.store.column("path")
        hits = np.flatnonzero(np.asarray(pc.fill_null(pc.ends_with(column, "/" + uri), False)))
        if not len(hits):
            return None
        return column[int(hits[0])].as_py()[: -len(uri) - 1]

    def _track(self, s, uri: str) -> int | None:
        """The track id of an MPD path (None: not a track of the store), remembered for the generation."""
        if s.store.generation != self._generation:
            self._ids, self._generation = {}, s.store.generation
        if uri in self._ids:
            return self._ids[uri]
        if self.music_dir is None:
            self.music_dir = self._root_for(s, uri)
            if self.music_dir is not None:
                self.log({"event": "music_dir", "path": self.music_dir})
        track = None if self.music_dir is None else s.id_for_path(os.path.join(self.music_dir, uri))
        if track is not None or self.music_dir is not None:
            self._ids[uri] = track
        return track

    def choose(self, queue: list[dict], playing: int, need: int) -> list[str]:
        """MPD paths of ``need`` tracks to queue after ``queue`` (MPD's playlistinfo; ``playing``: the position
        playing)."""
        o, s = self.options, self.current.get()
        uris = [q["file"] for q in queue]
        seeds = [t for t in (self._track(s, u) for u in uris[max(0, len(uris) - o.seeds):]) if t is not None]
        if not seeds:
            return []
        recent = {t for t in (self._track(s, u) for u in {*self.played, *uris[-o.no_repeat:]}) if t is not None}
        now = self._track(s, uris[playing]) if 0 <= playing < len(uris) else None
        filters = self._continuity(s, now)
        unit, _ = s.seed_vectors(seeds, by_id=True)
        # the artist and album of the last ``ahead`` - 1 songs: each new one is held to the limits among them
        window: collections.deque = collections.deque(maxlen=o.ahead - 1)
        tail = [t for t in (self._track(s, u) for u in uris[len(uris) - window.maxlen:]) if t is not None]
        window.extend(artist_album(h) for h in s.hits(tail, [1.0] * len(tail)))
        chosen: list[str] = []
        for attempt in (filters, {}) if filters else ({},):
            hits = s.search_vector(unit.mean(axis=0), k=max(8 * need, 40), exclude_ids=sorted(recent), **attempt)
            for h in hits:
                if len(chosen) == need:
                    break
                if not self._fits(h, window) or not h.path.startswith(self.music_dir.rstrip("/") + "/"):
                    continue
                chosen.append(os.path.relpath(h.path, self.music_dir))
                recent.add(h.id)
                window.append(artist_album(h))
            if len(chosen) == need:
                break
        return chosen

    def _continuity(self, s, track: int | None) -> dict:
        """Tempo and key filters around the playing track (none where it has no estimate)."""
        from ..model.keytempo import wanted_keys

        if track is None or not (self.options.keep_tempo or self.options.keep_key):
            return {}
        h, out = s.hit(track), {}
        if self.options.keep_tempo and h.bpm:
            out["bpm"] = (h.bpm * (1 - self.options.keep_tempo), h.bpm * (1 + self.options.keep_tempo))
        if self.options.keep_key and h.key:
            out["keys"] = wanted_keys([h.key], compatible=True)
        return out

    def _fits(self, h, window) -> bool:
        """Whether ``h`` keeps the artist and album limits with the songs in ``window`` (the ``ahead`` - 1 songs
        queued before it)."""
        artist, album = artist_album(h)
        return not ((artist and sum(a == artist for a, _ in window) >= self.options.max_per_artist)
                    or (album and sum(b == album for _, b in window) >= self.options.max_per_album))
