"""Index a library folder into a store: scan, diff, decode and embed what changed, commit.

Stages, each timed: ``scan`` (walk the folder), ``decode`` and ``features`` (in worker processes, summed over
workers), ``encode`` (the model, batched across files), ``write`` (shards, Parquet, FAISS, manifest).
Finished tracks are checkpointed every ``checkpoint_s`` seconds, so an interrupted run resumes where it
stopped: the next run sees them as unchanged.
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from ..catalog.scan import FileEntry, ScanProblem, scan, under
from ..catalog.store import Store, StoreError, StoreWriter, is_store, read_manifest
from ..catalog.tags import normalise_genre, read_tags
from ..catalog.track import STATUS_ERROR, STATUS_OK, Track, from_row
from ..model.encoder import BUILTIN, DEFAULT_ENCODER, ModelError, is_builtin, load_encoder, read_sidecar
from ..model.musicnn import ENCODER_NAMES, WeightsMissing
from ..model.pipeline import DECODE_TIMEOUT_S, Extracted, extract_many
from ..model.runtime import RuntimeChoiceError


class IndexingError(Exception):
    """The run cannot start (no model for a new store, wrong model, bad folder); the message says why."""


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


@dataclasses.dataclass
class IndexReport:
    root: str
    store: str
    scanned: int = 0
    added: int = 0
    updated: int = 0
    removed: int = 0
    unchanged: int = 0
    missing: int = 0  # tracks under the folder that the scan could not reach (kept; see Plan)
    held: int = 0  # tracks gone but not removed (more than the prune limit without --prune)
    failed: int = 0
    failures: list[tuple[str, str]] = dataclasses.field(default_factory=list)
    scan_problems: list[tuple[str, str]] = dataclasses.field(default_factory=list)
    stages: dict[str, float] = dataclasses.field(default_factory=lambda: dict.fromkeys(("scan", "decode", "features", "encode", "write"), 0.0))
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
    held = 0
    if gone and not prune and len(gone) > max(PRUNE_FLOOR, PRUNE_SHARE * len(mine)):
        held, out_of_reach, gone = len(gone), out_of_reach + gone, []
    missing = [row["id"] for row in out_of_reach if row.get("missing_since") is None]
    return Plan(new, changed, unchanged, sorted(row["id"] for row in gone), sorted(missing), sorted(back), held)


def _known_tracks(store_path: Path) -> dict[str, dict]:
    if not is_store(store_path):
        return {}
    return {r["path"]: r for r in Store(store_path).tracks.to_pylist()}


def _genre_from_folder(path: str, root: str) -> str | None:
    rel = os.path.relpath(os.path.dirname(path), root)
    return None if rel in (".", "") else normalise_genre(Path(rel).parts[0])


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
) -> IndexReport:
    """Bring ``store_path`` up to date with the audio files under ``root``. See the module docstring."""
    t_start = time.perf_counter()
    root = os.path.abspath(os.fspath(root))
    store_path = Path(store_path)
    if not os.path.isdir(root):
        raise IndexingError(f"{root}: not a folder")
    if genre_from not in ("tags", "folder"):
        raise IndexingError(f"--genre-from must be 'tags' or 'folder', not {genre_from!r}")
    report = IndexReport(root=root, store=str(store_path), dry_run=dry_run)

    # which encoder: the store's own, or the given model (which must be the store's if the store exists)
    model_path = _resolve_model(store_path, model)

    t0 = time.perf_counter()
    problems: list[ScanProblem] = []
    entries = list(scan(root, problems))
    report.stages["scan"] = time.perf_counter() - t0
    report.scanned = len(entries)
    report.scan_problems = [(p.path, p.reason) for p in problems]
    known = _known_tracks(store_path)
    plan = make_plan(known, entries, root, unreachable=[p.path for p in problems], force=force,
                     retry_failed=retry_failed, prune=prune)
    report.unchanged = plan.unchanged
    report.held = plan.held
    prefix = root.rstrip(os.sep) + os.sep
    still = {row["id"] for row in known.values() if row.get("missing_since") is not None and row["path"].startswith(prefix)}
    redone = {known[e.path]["id"] for e in plan.changed}  # found again and changed: embedded anew, not missing
    report.missing = len((still - set(plan.back) - set(plan.removed) - redone) | set(plan.missing))
    todo = plan.new + plan.changed
    if dry_run:
        report.added, report.updated, report.removed = len(plan.new), len(plan.changed), len(plan.removed)
        report.wall_s = time.perf_counter() - t_start
        return report
    if not todo and not plan.removed and not plan.missing and not plan.back:
        report.wall_s = time.perf_counter() - t_start
        return report

    encoder, files = None, []
    if not todo:  # only bookkeeping (removals, missing marks): the store's own record, no model loaded
        enc_meta = read_manifest(store_path)["encoder"]
    else:
        try:
            encoder = load_encoder(model_path)
            runtime = encoder.runtime  # compiles the model now: a failing route stops before any work
        except (ModelError, WeightsMissing, RuntimeChoiceError) as err:
            raise IndexingError(str(err)) from None
        report.runtime = runtime
        enc_meta = {"name": encoder.name, "fingerprint": encoder.fingerprint, "dim": encoder.dim,
                    "labels": encoder.labels, "runtime": runtime, "frontend": encoder.frontend.to_dict(),
                    "transform": getattr(encoder, "library_transform", None)}
        if hasattr(encoder, "spec"):
            enc_meta["spec"] = encoder.spec()
        else:
            files = [Path(model_path), Path(model_path).with_suffix(".json")]
    entry_of = {e.path: e for e in todo}
    changed_paths = {e.path for e in plan.changed}

    with StoreWriter(store_path, encoder=enc_meta, encoder_files=files) as writer:
        batch: list[Extracted] = []
        batch_windows_now = 0
        last_checkpoint = time.perf_counter()

        def record(track: Track, vector=None) -> None:
            writer.put(track, vector)
            if track.status != STATUS_OK:
                report.failed += 1
                report.failures.append((track.path, track.error or ""))
            elif track.path in changed_paths:
                report.updated += 1
            else:
                report.added += 1

        def base_track(r: Extracted) -> Track:
            e = entry_of[r.path]
            tags = r.extra if isinstance(r.extra, dict) else {}
            genre = tags.get("genre")
            if genre_from == "folder":
                genre = _genre_from_folder(r.path, root) or genre
            duration = r.info.duration_s if r.info is not None else tags.get("duration_s")
            return Track(
                id=writer.id_for(r.path), path=r.path, size=e.size, mtime=e.mtime, duration_s=duration,
                title=tags.get("title"), artist=tags.get("artist"), album=tags.get("album"), genre=genre,
            )

        def flush() -> None:
            nonlocal batch, batch_windows_now
            if not batch:
                return
            t = time.perf_counter()
            embs, probs = encoder.encode(np.concatenate([r.features for r in batch]))
            report.stages["encode"] += time.perf_counter() - t
            at = 0
            for r in batch:
                n = len(r.features)
                track = base_track(r)
                track.windows = n
                if encoder.labels:
                    genre, score, tags, tag_scores = encoder.predicted(probs[at : at + n].mean(axis=0))
                    track.predicted_genre, track.predicted_score = normalise_genre(genre), score
                    track.predicted_tags, track.predicted_tag_scores = tags, tag_scores
                record(track, encoder.summarize(embs[at : at + n]))
                at += n
            report.windows += at
            batch, batch_windows_now = [], 0

        def save(full: bool) -> None:
            t = time.perf_counter()
            try:
                writer.commit() if full else writer.checkpoint()
            except OSError as err:  # disk full, file too large, I/O error: the last generation stays as it was
                gen = read_manifest(store_path)["generation"] if is_store(store_path) else None
                kept = f"generation {gen} is intact" if gen is not None else "nothing had been committed yet"
                raise IndexingError(f"{store_path}: cannot write the store ({err.strerror or err}); {kept}; "
                                    f"free some space and run the same command again to resume") from None
            report.stages["write"] += time.perf_counter() - t

        from tqdm import tqdm

        # reachability first: tracks out of reach keep their vectors and are marked missing; found again, not
        now = time.time()
        by_id = {row["id"]: row for row in known.values()}
        for track_id in plan.missing + plan.back:
            track = from_row(by_id[track_id])
            track.missing_since = now if track_id in plan.missing else None
            writer.put(track)

        bar = tqdm(total=len(todo), desc="index", unit="file", disable=not progress, dynamic_ncols=True)
        try:
            extracted = extract_many([e.path for e in todo], encoder.frontend, workers=workers, per_file=read_tags,
                                     timeout_s=decode_timeout_s) if todo else ()
            for r in extracted:
                report.stages["decode"] += r.decode_s
                report.stages["features"] += r.features_s
                if r.error:
                    track = base_track(r)
                    track.status, track.error = STATUS_ERROR, r.error
                    record(track)
                    bar.set_postfix(failed=report.failed, refresh=False)
                else:
                    batch.append(r)
                    batch_windows_now += len(r.features)
                    if batch_windows_now >= batch_windows:
                        flush()
                bar.update(1)
                if time.perf_counter() - last_checkpoint > checkpoint_s:
                    flush()
                    save(full=False)
                    last_checkpoint = time.perf_counter()
            flush()
        except KeyboardInterrupt:
            report.interrupted = True
            bar.close()
            log("interrupted: saving the tracks finished so far (run the same command again to resume)")
            save(full=False)
            report.wall_s = time.perf_counter() - t_start
            return report
        finally:
            bar.close()
        for track_id in plan.removed:
            writer.remove(track_id)
        report.removed = len(plan.removed)
        save(full=True)
    report.wall_s = time.perf_counter() - t_start
    return report


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
            return str(model)
        try:
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


__all__ = ["IndexReport", "IndexingError", "Plan", "index_library", "make_plan", "StoreError"]
