"""The searcher of a store's newest generation, for a service that answers for as long as it runs.

A :class:`~search.searcher.Searcher` is a snapshot of one generation and stays one. :class:`Current` holds the
snapshot a request should take: while the store's manifest file is the one last seen (a commit replaces it with
a new file), asking costs one ``stat``; when it has changed and names a newer generation, one caller opens
the new snapshot while the others go on answering from the old one, and then every request takes the new one.
A request keeps the snapshot it took to its end.
"""

from __future__ import annotations

import os
import threading

from ..catalog.store import MANIFEST, StoreError
from .searcher import Searcher


def _signature(path) -> tuple | None:
    """What tells one manifest file from the next: inode, modification time and size (None: unreadable)."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_ino, st.st_mtime_ns, st.st_size


class Current:
    """The newest generation's searcher of one store (opened now, so a bad store fails at start)."""

    def __init__(self, store: str | os.PathLike, **options):
        """``options``: what each searcher is made with (:class:`Searcher`'s keyword arguments)."""
        self._searcher = Searcher(store, **options)
        self._searcher.warm_up()  # (a service answers many queries: the index's sketch, made in the background)
        self._manifest = self._searcher.store.path / MANIFEST
        self._seen = _signature(self._manifest)
        self._opening = threading.Lock()

    def get(self) -> Searcher:
        """The searcher of the newest generation committed (the one held, while a commit is being published or
        another thread is opening its successor)."""
        held = self._searcher
        seen = _signature(self._manifest)
        if seen is None or seen == self._seen:
            return held
        if not self._opening.acquire(blocking=False):
            return held  # another request is opening the new generation: this one answers from the last
        try:
            fresh = self._searcher.refreshed()
            fresh.warm_up(previous=held)  # (a commit that wrote only a delta: the sketch made is taken over)
            self._searcher, self._seen = fresh, seen
            return fresh
        except StoreError:
            return held  # a commit landing this instant: the generation loaded still answers
        finally:
            self._opening.release()
