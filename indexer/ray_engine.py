"""The Ray engine: decode and features as Ray tasks, encode in a pool of Ray actors, each holding the encoder.

::

    ray.data.from_items(paths)
      .map_batches(decode_batch)                      CPU tasks: extract() per file, tags included
      .map_batches(EncodeActor, compute=actors(n))    the encoder, loaded once per actor; embed_batch()
    driver: iter_batches() -> the same write stage as the local engine (ids, checkpoints, commit)

Ray is optional (``pip install 'soundalike[ray]'``) and imported only here. Workers import the installed
``soundalike`` package; nothing of the repository is shipped. A ``.keras`` model goes to the actors as its
bytes (so a cluster needs no shared folder); built-in encoders load from the installed packages. Each actor
checks that its encoder has the fingerprint the store records.

Each file is decoded as the local engine decodes it: in a worker process of its own (one a Ray worker, started
on its first task and kept), so a decoder that crashes costs only its file, and one that takes longer than
the decode timeout is killed and its file recorded as failed with that reason; the next run tries it again.
"""

from __future__ import annotations

import logging
import os
import pickle
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

from ..model.pipeline import DECODE_TIMEOUT_S, DecodePool
from .stages import Embedded, IndexingError, embed_batch

INSTALL_HINT = "pip install 'soundalike[ray]'"
#: Files per decode task: small enough to spread a library over the cluster, large enough that a task is
#: not mostly overhead.
DECODE_BATCH = 4
#: Bytes a decode task reserves (Ray's logical ``memory`` resource).
DECODE_MEMORY = 256 * 2**20


def import_ray():
    """The ``ray`` module, or an IndexingError saying how to install it."""
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError as err:
        raise IndexingError(f"--engine ray needs Ray, which is not installed ({err}); {INSTALL_HINT}") from None
    return ray


# ----------------------------------------------------------------------------------- run on the workers


_POOLS: dict = {}  # this Ray worker's decode process, by what it decodes with


def decode_batch(batch: dict, *, frontend, per_file: Callable[[str], object] | None,
                 timeout_s: float = DECODE_TIMEOUT_S) -> dict:
    """Ray task: decode and compute features of a batch of paths, each in this worker's decode process (never
    raises for a bad file: a crash or a file over ``timeout_s`` comes back as that file's error)."""
    paths = [str(p) for p in batch["path"]]
    key = pickle.dumps((frontend, per_file, timeout_s))
    pool = _POOLS.get(key)
    if pool is None:
        pool = _POOLS[key] = DecodePool(1, frontend, per_file, timeout_s=timeout_s)
    got = {e.path: e for e in pool.run(paths)}
    done = [pickle.dumps(got[p], protocol=5) for p in paths]
    return {"path": np.asarray(paths, dtype=object), "extracted": np.asarray(done, dtype=object)}


class EncodeActor:
    """Ray actor: one encoder, loaded once; encodes the windows of a batch of files in one model call."""

    def __init__(self, model, fingerprint: str, model_files: dict[str, bytes] | None = None):
        from ..model.registry import load_encoder

        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        if model_files:  # a .keras model and its sidecar, shipped as bytes
            folder = Path(tempfile.mkdtemp(prefix="soundalike-encoder-"))
            for name, data in model_files.items():
                (folder / name).write_bytes(data)
            model = folder / model
        self.encoder = load_encoder(model)
        if self.encoder.fingerprint != fingerprint:
            raise RuntimeError(f"this worker's encoder {self.encoder.name} is {self.encoder.fingerprint}, "
                               f"the store's is {fingerprint}")

    def __call__(self, batch: dict) -> dict:
        extracted = [pickle.loads(b) for b in batch["extracted"]]
        out = embed_batch(self.encoder, extracted)
        return {"path": np.asarray([e.path for e in out], dtype=object),
                "embedded": np.asarray([pickle.dumps(e, protocol=5) for e in out], dtype=object)}


# --------------------------------------------------------------------------------------------- the driver


class RayEngine:
    """Decode+features and encode on Ray Data; results stream back to the caller's write stage.

    ``address``: a running cluster (``ray.init(address=...)``); without one a local Ray instance is started
    with ``num_cpus`` (default: every core, and at least one more than the encoder actors) and shut down by
    :meth:`close`. A Ray already initialised in this process is used as it is and left running."""

    name = "ray"

    def __init__(self, encoder, model_path, *, address: str | None = None, num_cpus: int | None = None,
                 encoders: int = 1, per_file: Callable[[str], object] | None = None, batch_windows: int = 256,
                 progress: bool = False, timeout_s: float = DECODE_TIMEOUT_S):
        self.ray = ray = import_ray()
        self.encoder, self.per_file, self.encoders = encoder, per_file, max(1, int(encoders))
        self.timeout_s = timeout_s
        self.batch_files = max(1, batch_windows // max(1, encoder.frontend.n_windows))
        # a cluster may not see this machine's files: a .keras model goes to its actors as bytes
        self.model, self.model_files = _shippable(model_path) if address else (model_path, None)
        self.started = False
        if not ray.is_initialized():
            try:
                if address:
                    ray.init(address=address, log_to_driver=False, logging_level=logging.WARNING)
                else:
                    cpus = max(num_cpus or os.cpu_count() or 1, self.encoders + 1)  # decode tasks need a core too
                    ray.init(num_cpus=cpus, include_dashboard=False, log_to_driver=False, logging_level=logging.WARNING)
                    self.started = True
            except Exception as err:  # no cluster at that address, a local instance that cannot start
                where = f"the Ray cluster at {address}" if address else "a local Ray instance"
                raise IndexingError(f"cannot reach {where}: {_one_line(err)}") from None
        ctx = ray.data.DataContext.get_current()
        for attr, value in (("enable_progress_bars", progress), ("print_on_execution_start", False)):
            if hasattr(ctx, attr):
                setattr(ctx, attr, value)

    def run(self, paths: list[str]) -> Iterator[tuple[int, list[Embedded]]]:
        """(files finished, their results) per batch the cluster hands back, in completion order."""
        ray = self.ray
        if not paths:
            return
        ds = ray.data.from_items([{"path": p} for p in paths])
        # memory: what a decode task may hold (windows, librosa's buffers), for the scheduler. A resource
        # request that differs from the actors' also keeps Ray from fusing the decode tasks into the encoder
        # actors, where they would run one at a time.
        ds = ds.map_batches(decode_batch, batch_size=DECODE_BATCH, batch_format="numpy", memory=DECODE_MEMORY,
                            fn_kwargs={"frontend": self.encoder.frontend, "per_file": self.per_file,
                                       "timeout_s": self.timeout_s})
        ds = ds.map_batches(EncodeActor, batch_size=self.batch_files, batch_format="numpy",
                            compute=ray.data.ActorPoolStrategy(size=self.encoders),
                            fn_constructor_kwargs={"model": self.model, "fingerprint": self.encoder.fingerprint,
                                                   "model_files": self.model_files})
        try:
            for batch in ds.iter_batches(batch_size=None, batch_format="numpy"):
                done = [pickle.loads(b) for b in batch["embedded"]]
                yield len(done), done
        except ray.exceptions.RayError as err:
            raise IndexingError(f"the Ray engine failed: {_one_line(err)}") from None

    def drain(self) -> list[Embedded]:
        return []  # nothing waits on the driver: a batch is encoded by the time it arrives

    def close(self) -> None:
        if self.started and self.ray.is_initialized():
            self.ray.shutdown()
        self.started = False


def _shippable(model_path) -> tuple[object, dict[str, bytes] | None]:
    """What the actors load: a built-in name or a spec as it is; a ``.keras`` file as (its name, its bytes
    and its sidecar's)."""
    from ..model.registry import is_builtin

    if isinstance(model_path, dict) or is_builtin(model_path):
        return model_path, None
    p = Path(model_path)
    if not p.is_file():
        return str(model_path), None
    side = p.with_suffix(".json")
    return p.name, {p.name: p.read_bytes(), side.name: side.read_bytes()}


def _one_line(err: BaseException) -> str:
    lines = [ln.strip() for ln in str(err).splitlines() if ln.strip()]
    text = lines[-1] if lines else type(err).__name__
    return text[:300]
