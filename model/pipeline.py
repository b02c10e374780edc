"""Decode and compute features for many files, on every core.

Workers run NumPy, soundfile, soxr and librosa only; the model stays in the calling process, which batches
the features of many files into one model call. A file that fails comes back with its one-line reason; it
never stops the others.
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator

import numpy as np

from ..model import keytempo
from ..model.audio import AudioError, AudioInfo
from ..model.frontend import FrontEnd


@dataclasses.dataclass
class Extracted:
    """One file's analysis input, or why there is none."""

    path: str
    features: np.ndarray | None = None  # [n_windows, n_mels, frames] float32
    info: AudioInfo | None = None
    error: str | None = None  # one line, without the path
    extra: object = None  # what the caller's ``per_file`` hook returned
    music: dict | None = None  # model.keytempo.estimate: bpm, key, key_strength
    decode_s: float = 0.0
    features_s: float = 0.0


def extract(path: str, frontend: FrontEnd, per_file: Callable[[str], object] | None = None) -> Extracted:
    """Decode the windows of ``path`` and compute their log-mel features. Never raises for a bad file."""
    out = Extracted(path=path)
    try:
        if per_file is not None:
            out.extra = per_file(path)
        t0 = time.perf_counter()
        windows, out.info = frontend.windows(path)
        t1 = time.perf_counter()
        out.features = frontend.features(windows)
        out.music = keytempo.estimate(windows, sample_rate=frontend.sample_rate, logmel=out.features,
                                      hop_length=frontend.hop_length)
        out.decode_s, out.features_s = t1 - t0, time.perf_counter() - t1
    except AudioError as err:
        out.error = err.reason
    except MemoryError:
        out.error = "out of memory while decoding"
    except Exception as err:  # a decoder bug must not stop a library-wide run
        out.error = f"{type(err).__name__}: {' '.join(str(err).split())[:200]}"
    return out


#: Seconds one file may take to decode in a worker before it is given up as hung (its worker is killed and
#: replaced). Decoding reads only the analysed windows, well under a second for an ordinary file.
DECODE_TIMEOUT_S = 120.0


def default_workers(n_files: int) -> int:
    """Worker processes for ``n_files``: none for a handful (start-up would dominate), else one per core."""
    if n_files < 12:
        return 0
    return max(1, min(os.cpu_count() or 1, n_files))


def extract_many(
    paths: Iterable[str],
    frontend: FrontEnd,
    *,
    workers: int | None = None,
    per_file: Callable[[str], object] | None = None,
    n_files: int | None = None,
    timeout_s: float = DECODE_TIMEOUT_S,
    ahead: int = 0,
) -> Iterator[Extracted]:
    """Yield :class:`Extracted` for every path, in completion order.

    ``workers=0`` runs in this process; ``None`` picks :func:`default_workers`. In worker processes each file
    is isolated: one that crashes its decoder, or takes longer than ``timeout_s``, comes back with that reason
    and costs only its own worker, which is replaced. Workers end with this process, even when it is killed.
    ``per_file`` (a picklable module-level function) runs in the worker too, for work that belongs beside
    decoding (reading tags). ``ahead``: files the workers may decode before the caller takes them (at least
    two a worker); a caller that encodes batches of N files passes N, so decoding goes on while it encodes.
    """
    paths = list(paths)
    if workers is None:
        workers = default_workers(n_files if n_files is not None else len(paths))
    if workers <= 0:
        for p in paths:
            yield extract(p, frontend, per_file)
        return
    pool = DecodePool(min(workers, max(1, len(paths))), frontend, per_file, timeout_s=timeout_s, ahead=ahead)
    try:
        yield from pool.run(paths)
    finally:
        pool.close()


# ------------------------------------------------------------------------------------------------ workers


def _die_with_parent(parent_pid: int) -> None:
    """End this worker when the process that started it ends, however it ends (kill -9 included)."""
    import signal
    import sys
    import threading

    if sys.platform.startswith("linux"):
        try:
            import ctypes

            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG: the kernel kills us when the parent dies
        except Exception:  # pragma: no cover - no prctl: the watchdog below still works
            pass

    def watchdog():  # portable fallback, and covers a parent that died before prctl ran
        while True:
            if os.getppid() != parent_pid:
                os._exit(1)
            time.sleep(0.5)

    if os.getppid() != parent_pid:
        os._exit(1)
    threading.Thread(target=watchdog, daemon=True, name="parent-watchdog").start()


def _worker_main(conn, frontend: FrontEnd, per_file, parent_pid: int) -> None:
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle; it ends the workers
    # one decode per core: keep BLAS/FFT libraries from spawning threads of their own
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
        os.environ[var] = "1"
    _die_with_parent(parent_pid)
    # warm up (imports, librosa's caches) before saying ready, so a file's time limit counts only its own work
    frontend.features(np.zeros((1, frontend.window_samples), np.float32))
    conn.send(("ready", None))
    while True:
        try:
            path = conn.recv()
        except (EOFError, OSError):
            return
        if path is None:
            return
        conn.send(("done", extract(path, frontend, per_file)))


class _Slot:
    """One worker process and the file it is on."""

    def __init__(self, ctx, frontend, per_file):
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=_worker_main, args=(child, frontend, per_file, os.getpid()), daemon=True,
                                name="soundalike-decode")
        self.proc.start()
        child.close()
        self.ready = False
        self.path: str | None = None
        self.since = 0.0

    def assign(self, path: str) -> None:
        self.conn.send(path)
        self.path, self.since = path, time.monotonic()

    def kill(self) -> None:
        if self.proc.is_alive():
            self.proc.kill()
        self.proc.join(5)
        self.conn.close()


_DONE = object()  # the end of a run


class DecodePool:
    """Worker processes that decode one file each at a time, managed by a thread of the calling process (so
    hung or crashed workers are dealt with while the caller runs its model). :meth:`run` may be called again
    (one call at a time): the workers stay until :meth:`close`."""

    def __init__(self, workers: int, frontend: FrontEnd, per_file, *, timeout_s: float = DECODE_TIMEOUT_S,
                 ahead: int = 0):
        import multiprocessing as mp

        self.ahead = max(2 * workers, ahead)
        self.ctx = mp.get_context("spawn")  # never fork a process that may hold TensorFlow's threads
        self.n, self.frontend, self.per_file, self.timeout_s = workers, frontend, per_file, timeout_s
        self._slots: list[_Slot] = []
        self._stop = False
        self._thread = None

    def run(self, paths: list[str]) -> Iterator[Extracted]:
        import queue
        import threading

        out: queue.Queue = queue.Queue(maxsize=self.ahead)
        if self._thread is None:
            # one managing thread for the pool's life: the workers it starts die with it (the kernel's
            # parent-death signal follows the thread that started a process), so it outlives each run
            self._jobs = queue.Queue()
            self._thread = threading.Thread(target=self._serve, daemon=True, name="soundalike-decode-pool")
            self._thread.start()
        self._jobs.put((paths, out))
        while True:
            item = out.get()
            if item is _DONE:
                return
            if isinstance(item, BaseException):
                raise item
            yield item

    def _serve(self) -> None:
        import queue

        while True:
            job = self._jobs.get()
            if job is None:
                return
            paths, out = job
            try:
                for item in self._manage(paths):
                    while not self._stop:
                        try:
                            out.put(item, timeout=0.2)
                            break
                        except queue.Full:
                            continue
            except BaseException as err:  # handed to the caller
                self._hand(out, err)
            finally:
                self._hand(out, _DONE)

    def _hand(self, out, item) -> None:
        """Give the caller ``item``, unless the pool is closing and nobody reads any more."""
        import queue

        while True:
            try:
                out.put(item, timeout=0.2)
                return
            except queue.Full:
                if self._stop:
                    return

    def _spawn(self) -> _Slot:
        return _Slot(self.ctx, self.frontend, self.per_file)

    def _manage(self, paths: list[str]) -> Iterator[Extracted]:
        from multiprocessing.connection import wait

        todo = deque(paths)
        if not self._slots:  # (a pool run again keeps its workers, started and warm)
            self._slots = [self._spawn() for _ in range(self.n)]
        failed_starts = 0
        while not self._stop and (todo or any(s.path for s in self._slots)):
            for s in self._slots:
                if s.ready and s.path is None and todo:
                    s.assign(todo.popleft())
            now = time.monotonic()
            deadlines = [s.since + self.timeout_s for s in self._slots if s.path]
            wait_s = min(1.0, max(0.0, min(deadlines) - now)) if deadlines else 1.0
            ready = set(wait([s.conn for s in self._slots] + [s.proc.sentinel for s in self._slots], timeout=wait_s))
            for i, s in enumerate(self._slots):
                reason = None
                if s.conn in ready:
                    try:
                        kind, payload = s.conn.recv()
                    except (EOFError, OSError):
                        kind = None
                    if kind == "ready":
                        s.ready = True
                        continue
                    if kind == "done":
                        s.path = None
                        yield payload
                        continue
                    reason = "the decoder crashed on this file (its worker process died)"
                elif s.proc.sentinel in ready:
                    reason = "the decoder crashed on this file (its worker process died)"
                elif s.path and time.monotonic() - s.since > self.timeout_s:
                    reason = f"decoding took longer than {self.timeout_s:g} s (a hung decoder?); skipped"
                if reason is None:
                    continue
                # this worker is dead or hung: its file gets the reason, a new worker takes its place
                path, was_ready = s.path, s.ready
                s.kill()
                if path is not None:
                    yield Extracted(path=path, error=reason)
                elif not was_ready:
                    failed_starts += 1
                    if failed_starts > 3:
                        raise RuntimeError(f"decode workers die as they start (exit code {s.proc.exitcode})")
                self._slots[i] = self._spawn()

    def close(self) -> None:
        """Stop the workers (at once: a pool closed early has nothing more to do) and the managing thread."""
        self._stop = True
        if self._thread is not None:
            self._jobs.put(None)
            self._thread.join(10)
        for s in self._slots:
            try:
                s.conn.send(None)
            except OSError:
                pass
        for s in self._slots:
            s.proc.join(0.5)
            s.kill()
