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

from model.audio import AudioError, AudioInfo
from model.frontend import FrontEnd


@dataclasses.dataclass
class Extracted:
    """One file's analysis input, or why there is none."""

    path: str
    features: np.ndarray | None = None  # [n_windows, n_mels, frames] float32
    info: AudioInfo | None = None
    error: str | None = None  # one line, without the path
    extra: object = None  # what the caller's ``per_file`` hook returned
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
        out.decode_s, out.features_s = t1 - t0, time.perf_counter() - t1
    except AudioError as err:
        out.error = err.reason
    except MemoryError:
        out.error = "out of memory while decoding"
    except Exception as err:  # a decoder bug must not stop a library-wide run
        out.error = f"{type(err).__name__}: {' '.join(str(err).split())[:200]}"
    return out


def _init_worker() -> None:
    # one decode per core: keep BLAS/FFT libraries from spawning threads of their own
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
        os.environ[var] = "1"


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
) -> Iterator[Extracted]:
    """Yield :class:`Extracted` for every path, in completion order.

    ``workers=0`` runs in this process; ``None`` picks :func:`default_workers`. At most a few files per worker
    are in flight, so memory stays bounded however long the list. ``per_file`` (a picklable module-level
    function) runs in the worker too, for work that belongs beside decoding (reading tags).
    """
    paths = list(paths)
    if workers is None:
        workers = default_workers(n_files if n_files is not None else len(paths))
    if workers <= 0:
        for p in paths:
            yield extract(p, frontend, per_file)
        return

    import multiprocessing as mp
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
    from concurrent.futures.process import BrokenProcessPool

    ctx = mp.get_context("spawn")  # never fork a process that may hold TensorFlow's threads
    todo = deque(paths)
    suspects: list[str] = []  # in flight when a worker died: each is retried alone to find the culprit
    limit = workers * 3
    while todo or suspects:
        if suspects:
            yield _isolated(suspects.pop(0), frontend, per_file, ctx)
            continue
        pool = ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_init_worker)
        running: dict = {}
        try:
            while todo or running:
                while todo and len(running) < limit:
                    path = todo.popleft()
                    running[pool.submit(extract, path, frontend, per_file)] = path
                done, _ = wait(running, return_when=FIRST_COMPLETED)
                broken = False
                for fut in done:
                    path = running.pop(fut)
                    try:
                        result = fut.result()
                    except BrokenProcessPool:
                        suspects.append(path)
                        broken = True
                        continue
                    yield result
                if broken:  # every other future of this pool is lost too: retry them one by one
                    suspects.extend(running.values())
                    running.clear()
                    break
        finally:
            for fut in running:
                fut.cancel()
            pool.shutdown(wait=not suspects, cancel_futures=True)


def _isolated(path: str, frontend: FrontEnd, per_file, ctx) -> Extracted:
    """Extract one file in a process of its own; a crash there is that file's fault."""
    from concurrent.futures import ProcessPoolExecutor
    from concurrent.futures.process import BrokenProcessPool

    with ProcessPoolExecutor(max_workers=1, mp_context=ctx, initializer=_init_worker) as pool:
        try:
            return pool.submit(extract, path, frontend, per_file).result()
        except BrokenProcessPool:
            return Extracted(path=path, error="the decoder crashed on this file (its worker process died)")
