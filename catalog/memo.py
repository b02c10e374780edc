"""Values computed once and shared between threads.

A reader of one store generation (``catalog.store.Store``, ``search.searcher.Searcher``) is immutable once
made, apart from what it reads on first use: a column, the index, a filter's codes. Those go through a
:class:`Memo`, so that a service answering from many threads computes each once, and every thread sees the
same value.
"""

from __future__ import annotations

import threading
from typing import Callable, Hashable, TypeVar

T = TypeVar("T")


class Memo:
    """Values by key, each made once by the first caller that asks; callers asking for it meanwhile wait for
    that one and get the same value. A failure is not kept: the next caller tries again. Keys are locked one
    by one, so a slow value (the window index) does not hold up a quick one (a column)."""

    def __init__(self):
        self._values: dict = {}
        self._locks: dict = {}
        self._guard = threading.Lock()

    def get(self, key: Hashable, make: Callable[[], T]) -> T:
        try:
            return self._values[key]
        except KeyError:
            pass
        with self._guard:
            lock = self._locks.setdefault(key, threading.Lock())
        with lock:
            if key not in self._values:
                self._values[key] = make()
            return self._values[key]

    def __contains__(self, key: Hashable) -> bool:
        return key in self._values

    def __len__(self) -> int:
        return len(self._values)
