"""Index a library folder into a store: scan, diff, decode and embed what changed, commit.

A chain of stages (``indexer.stages``), each timed into ``IndexReport.stages``: ``scan`` (walk the folder),
``plan`` (diff against the store), ``load`` (the encoder), ``decode`` and ``features`` (summed over workers),
``encode`` (the model, batched across files), ``write`` (rows, shards, Parquet, FAISS, manifest). The
:class:`Runner` wires them; which engine runs decode, features and encode (this machine's processes, or Ray
Data on a cluster) is a switch on the runner: the write stage, and so the store, is the same for both.
Finished tracks are checkpointed every ``checkpoint_s`` seconds, so an interrupted run resumes where it
stopped: the next run sees them as unchanged.
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Callable
from pathlib import Path

from ..catalog.indexes import Policy
from ..catalog.scan import FileEntry, content_hash, under
from ..catalog.store import Store, StoreError, StoreWriter, is_store, read_manifest
from ..catalog.tags import read_tags
from ..catalog.track import PLAN_COLUMNS, STATUS_OK
from ..model.encoder import ModelError, read_sidecar
from ..model.registry import BUILTIN, DEFAULT_ENCODER, is_builtin
from ..model.musicnn import ENCODER_NAMES
from ..model.pipeline import DECODE_TIMEOUT_S
from .stages import IndexingError, LocalEngine, WriteStage, load_stage, scan_stage, timed

ENGINES = ("local", "ray")


#: A run may remove at most this share of the library's tracks under its folder (and always up to PRUNE_FLOOR
#: tracks); past that it removes nothing unless told to prune: a drive that is not mounted, an emptied mount
#: point or a moved folder looks like a mass deletion, and decoding a library again costs hours.
PRUNE_SHARE = 0.10
PRUNE_FLOOR = 3


@dataclasses.dataclass
class Plan:
    new: list[FileEntry]
    changed: list[FileEntry]
    unchanged: int
    removed: list[int]  # ids of tracks under the root whose files are gone from folders the scan read
    missing: list[int] = dataclasses.field(default_factory=list)  # ids to mark missing (kept, with their vectors)
    back: list[int] = dataclasses.field(default_factory=list)  # ids marked missing whose files are there again
    held: int = 0  # tracks gone but not removed: more than the prune limit, and no --prune
    moved: list[tuple[int, FileEntry]] = dataclasses.field(default_factory=list)  # (id, where its file is now)


#: The timed stages, in the order they run (``IndexReport.stages``; decode and features are summed over workers)
STAGES = ("scan", "plan", "load", "decode", "features", "encode", "write")


@dataclasses.dataclass
class IndexReport:
    root: str
    store: str
    scanned: int = 0
    added: int = 0
    updated: int = 0
    removed: int = 0
    moved: int = 0  # files moved or renamed under the folder: same id and vector, nothing decoded
    unchanged: int = 0
    missing: int = 0  # tracks under the folder that the scan could not reach (kept; see Plan)
    held: int = 0  # tracks gone but not removed (more than the prune limit without --prune)
    failed: int = 0
    failures: list[tuple[str, str]] = dataclasses.field(default_factory=list)
    scan_problems: list[tuple[str, str]] = dataclasses.field(default_factory=list)
    stages: dict[str, float] = dataclasses.field(default_factory=lambda: dict.fromkeys(STAGES, 0.0))
    windows: int = 0
    wall_s: float = 0.0
    runtime: str = ""
    dry_run: bool = False
    interrupted: bool = False

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["failures"] = [{"path": p, "error": e} for p, e in self.failures]
        d["scan_problems"] = [{"path": p, "error": e} for p, e in self.scan_problems]
        return d


def make_plan(known: dict[str, dict], entries: list[FileEntry], root: str, *, unreachable=(), force: bool = False,
              retry_failed: bool = False, prune: bool = False) -> Plan:
    """Compare a scan with what the store holds under ``root``.

    A known file that the scan did not see is removed only when the scan read the folder it was in; under an
    ``unreachable`` path (a folder that could not be read, a link to a missing target) it is kept and marked
    missing. When more than the prune limit (PRUNE_SHARE of the tracks under ``root``, at least PRUNE_FLOOR)
    would be removed, nothing is removed unless ``prune``: those tracks are marked missing too."""
    new, changed, unchanged, back = [], [], 0, []
    seen = set()
    for e in entries:
        seen.add(e.path)
        row = known.get(e.path)
        if row is None:
            new.append(e)
        elif force or row["size"] != e.size or row["mtime"] != e.mtime or (retry_failed and row["status"] != STATUS_OK):
            changed.append(e)
        else:
            unchanged += 1
            if row.get("missing_since") is not None:
                back.append(row["id"])
    prefix = root.rstrip(os.sep) + os.sep
    mine = [row for path, row in known.items() if path.startswith(prefix)]
    absent = [row for row in mine if row["path"] not in seen]
    out_of_reach = [row for row in absent if under(row["path"], unreachable)]
    gone = [row for row in absent if not under(row["path"], unreachable)]
    new, gone, moved = _moves(new, gone)
    held = 0
    if gone and not prune and len(gone) > max(PRUNE_FLOOR, PRUNE_SHARE * len(mine)):
        held, out_of_reach, gone = len(gone), out_of_reach + gone, []
    missing = [row["id"] for row in out_of_reach if row.get("missing_since") is None]
    return Plan(new, changed, unchanged, sorted(row["id"] for row in gone), sorted(missing), sorted(back), held,
                moved)


def _moves(new: list[FileEntry], gone: list[dict]) -> tuple[list[FileEntry], list[dict], list[tuple[int, FileEntry]]]:
    """New files that are gone tracks moved or renamed: the same size and content hash (only files whose size
    a gone track has are read, 128 KiB each). Returns the new files left, the gone tracks left, and the moves."""
    by_size: dict[int, list[dict]] = {}
    for row in gone:
        if row.get("content_hash") and row["status"] == STATUS_OK:
            by_size.setdefault(row["size"], []).append(row)
    if not by_size:
        return new, gone, []
    left, moved = [], []
    for e in new:
        rows = by_size.get(e.size)
        h = content_hash(e.path) if rows else None
        match = next((r for r in rows or () if h is not None and r["content_hash"] == h), None)
        if match is None:
            left.append(e)
        else:
            rows.remove(match)
            moved.append((match["id"], e))
    taken = {i for i, _ in moved}
    return left, [row for row in gone if row["id"] not in taken], moved


def _known_tracks(store_path: Path) -> dict[str, dict]:
    """Every track the store knows, by path: what the plan reads of it (``PLAN_COLUMNS``; a million rows become
    Python dicts, so not the tag scores' 50 floats each)."""
    if not is_store(store_path):
        return {}
    return {r["path"]: r for r in Store(store_path, columns=PLAN_COLUMNS).tracks.to_pylist()}


def plan_stage(known: dict[str, dict], entries: list[FileEntry], root: str, *, unreachable, force: bool,
               retry_failed: bool, prune: bool) -> tuple[Plan, int]:
    """The plan, and how many tracks under ``root`` stay marked missing after this run."""
    plan = make_plan(known, entries, root, unreachable=unreachable, force=force, retry_failed=retry_failed,
                     prune=prune)
    prefix = root.rstrip(os.sep) + os.sep
    still = {row["id"] for row in known.values() if row.get("missing_since") is not None and row["path"].startswith(prefix)}
    redone = {known[e.path]["id"] for e in plan.changed}  # found again and changed: embedded anew, not missing
    missing = len((still - set(plan.back) - set(plan.removed) - redone) | set(plan.missing))
    return plan, missing


class Runner:
    """Wires the stages of one run: marks, then the engine's results into the write stage as they come
    (checkpointing every ``checkpoint_s``), then removals and the commit. Ctrl-C saves what finished."""

    def __init__(self, engine, write: WriteStage, report: IndexReport, *, checkpoint_s: float, progress: bool,
                 log: Callable[[str], None]):
        self.engine, self.write, self.report = engine, write, report
        self.checkpoint_s, self.progress, self.log = checkpoint_s, progress, log

    def run(self, plan: Plan) -> None:
        from tqdm import tqdm

        report, write, engine = self.report, self.write, self.engine
        todo = [e.path for e in plan.new + plan.changed]
        write.mark(plan.missing, plan.back)
        write.move(plan.moved)
        write.order_ids([e.path for e in plan.new])
        last_checkpoint = time.perf_counter()
        bar = tqdm(total=len(todo), desc="index", unit="file", disable=not self.progress, dynamic_ncols=True)
        results = engine.run(todo) if todo else iter(())
        try:
            for advanced, done in results:
                self._put(done, bar)
                bar.update(advanced)
                if time.perf_counter() - last_checkpoint > self.checkpoint_s:
                    self._put(engine.drain(), bar)
                    write.save(full=False)
                    last_checkpoint = time.perf_counter()
        except KeyboardInterrupt:
            report.interrupted = True
            bar.close()
            self.log("interrupted: saving the tracks finished so far (run the same command again to resume)")
            write.save(full=False)
            return
        finally:
            bar.close()
            if hasattr(results, "close"):
                results.close()  # stops the engine's workers (decode processes, a Ray dataset) now
        write.remove(plan.removed)
        write.save(full=True)

    def _put(self, done, bar) -> None:
        failed = self.report.failed
        for e in done:
            self.write.put(e)
        if self.report.failed != failed:
            bar.set_postfix(failed=self.report.failed, refresh=False)


def make_engine(engine: str, encoder, model_path, *, workers: int | None, batch_windows: int,
                decode_timeout_s: float, address: str | None, encoders: int, progress: bool):
    """The engine that runs decode, features and encode: ``local`` (worker processes of this machine) or
    ``ray`` (Ray Data; a cluster at ``address``, or a local instance)."""
    per_file = read_tags  # looked up now: this module's name is the one to patch
    if engine == "ray":
        from .ray_engine import RayEngine

        return RayEngine(encoder, model_path, address=address, num_cpus=workers or None, encoders=encoders,
                         per_file=per_file, batch_windows=batch_windows, progress=False, timeout_s=decode_timeout_s)
    return LocalEngine(encoder, workers=workers, per_file=per_file, timeout_s=decode_timeout_s,
                       batch_windows=batch_windows)


def index_library(
    root: str | os.PathLike,
    store_path: str | os.PathLike,
    *,
    model: str | os.PathLike | None = None,
    genre_from: str = "tags",
    workers: int | None = None,
    batch_windows: int = 256,
    checkpoint_s: float = 60.0,
    force: bool = False,
    retry_failed: bool = False,
    prune: bool = False,
    decode_timeout_s: float = DECODE_TIMEOUT_S,
    dry_run: bool = False,
    progress: bool = True,
    log: Callable[[str], None] = print,
    engine: str = "local",
    address: str | None = None,
    encoders: int = 1,
    index_policy: dict | None = None,
) -> IndexReport:
    """Bring ``store_path`` up to date with the audio files under ``root``. See the module docstring.

    ``engine``: ``"local"`` (decode in ``workers`` processes, encode here) or ``"ray"`` (Ray Data: decode
    tasks and ``encoders`` encoder actors, on the cluster at ``address`` or on a local Ray instance started
    for the run with ``workers`` CPUs). ``index_policy`` is handed to the store's writer (how its FAISS
    index is chosen)."""
    t_start = time.perf_counter()
    root = os.path.abspath(os.fspath(root))
    store_path = Path(store_path)
    _check_request(root, genre_from, engine, address)
    report = IndexReport(root=root, store=str(store_path), dry_run=dry_run)

    # which encoder: the store's own, or the given model (which must be the store's if the store exists)
    model_path = _resolve_model(store_path, model)

    with timed(report.stages, "scan"):
        entries, problems = scan_stage(root)
    report.scanned = len(entries)
    report.scan_problems = [(p.path, p.reason) for p in problems]
    with timed(report.stages, "plan"):
        known = _known_tracks(store_path)
        plan, report.missing = plan_stage(known, entries, root, unreachable=[p.path for p in problems], force=force,
                                          retry_failed=retry_failed, prune=prune)
    report.unchanged, report.held, report.moved = plan.unchanged, plan.held, len(plan.moved)
    todo = plan.new + plan.changed
    if dry_run:
        report.added, report.updated, report.removed = len(plan.new), len(plan.changed), len(plan.removed)
        report.wall_s = time.perf_counter() - t_start
        return report
    if not todo and not plan.removed and not plan.missing and not plan.back and not plan.moved:
        _finish_index(store_path, index_policy, report)
        report.wall_s = time.perf_counter() - t_start
        return report

    encoder, files = None, []
    if not todo:  # only bookkeeping (removals, missing marks): the store's own record, no model loaded
        enc_meta = read_manifest(store_path)["encoder"]
    else:
        with timed(report.stages, "load"):
            encoder, enc_meta, files = load_stage(model_path)
        report.runtime = enc_meta["runtime"]

    runner_engine = None
    if todo:
        runner_engine = make_engine(engine, encoder, model_path, workers=workers, batch_windows=batch_windows,
                                    decode_timeout_s=decode_timeout_s, address=address, encoders=encoders,
                                    progress=progress)
    try:
        with StoreWriter(store_path, encoder=enc_meta, encoder_files=files, index_policy=index_policy) as writer:
            write = WriteStage(writer, report, entries={e.path: e for e in todo},
                               changed={e.path for e in plan.changed}, root=root, genre_from=genre_from)
            Runner(runner_engine, write, report, checkpoint_s=checkpoint_s, progress=progress, log=log).run(plan)
    finally:
        if runner_engine is not None:
            runner_engine.close()  # a Ray instance started for this run ends with it
    report.wall_s = time.perf_counter() - t_start
    return report


def _check_request(root: str, genre_from: str, engine: str, address: str | None) -> None:
    """A one-line IndexingError for a run that cannot start as asked, before any work."""
    if not os.path.isdir(root):
        raise IndexingError(f"{root}: not a folder")
    if genre_from not in ("tags", "folder"):
        raise IndexingError(f"--genre-from must be 'tags' or 'folder', not {genre_from!r}")
    if engine not in ENGINES:
        raise IndexingError(f"--engine must be one of {', '.join(ENGINES)}, not {engine!r}")
    if address and engine != "ray":
        raise IndexingError("--address is for --engine ray")
    if engine == "ray":
        from .ray_engine import import_ray

        import_ray()  # not installed: say so before any work


def _finish_index(store_path: Path, index_policy: dict | None, report: IndexReport) -> None:
    """Nothing to embed: still build the index when another kind is asked for, or when a run killed after its
    last checkpoint but before its commit left it unbuilt (from the shards, no audio decoded)."""
    m = read_manifest(store_path) if is_store(store_path) else None
    asked = index_policy is not None and m is not None and Policy.from_dict(
        m.get("index_policy")) != Policy.from_dict(index_policy)
    unfinished = m is not None and (m.get("index") or {}).get("generation") != m["generation"]
    if not (asked or unfinished):
        return
    from ..catalog.check import reindex

    with timed(report.stages, "write"):
        if unfinished and not asked:
            with StoreWriter(store_path, encoder=m["encoder"]) as writer:
                writer.commit()
        else:
            reindex(store_path, index_policy=index_policy)


def _resolve_model(store_path: Path, model):
    """The encoder to use (a ``.keras`` path, a built-in name or a store's recorded spec), checked against
    the store's encoder without loading TensorFlow where that is possible."""
    if is_store(store_path):
        have = read_manifest(store_path)["encoder"]
        if model is None:
            if have.get("model"):
                return str(store_path / have["model"])
            if have.get("spec"):
                return have["spec"]
            raise IndexingError(f"{store_path}: the store does not record its encoder; give --model")
        if is_builtin(str(model)):
            if ENCODER_NAMES[BUILTIN[str(model)]] != have["name"]:
                raise IndexingError(f"{store_path}: built with encoder {have['name']} ({have['fingerprint']}), "
                                    f"not {model}; use the store's encoder or a new store")
            return have.get("spec") or str(model)  # (its front end as the store recorded it)
        try:
            if str(model).endswith(".npz"):
                from ..model.student import StudentEncoder

                fp = StudentEncoder(model).fingerprint
            else:
                fp = read_sidecar(model).get("fingerprint")
        except ModelError as err:
            raise IndexingError(str(err)) from None
        if fp != have["fingerprint"]:
            raise IndexingError(
                f"{store_path}: built with encoder {have['name']} ({have['fingerprint']}), but {model} is "
                f"{fp}; use the store's model or a new store"
            )
        return str(model)
    if model is None:
        return DEFAULT_ENCODER
    if is_builtin(str(model)):
        return str(model)
    if not Path(model).is_file():
        raise IndexingError(f"{model}: model file not found (or use a built-in encoder: {', '.join(BUILTIN)})")
    return str(model)


__all__ = ["ENGINES", "IndexReport", "IndexingError", "Plan", "Runner", "index_library", "make_plan", "StoreError"]
