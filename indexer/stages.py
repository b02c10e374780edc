"""The stages of an index run, each a small callable the runner (``indexer.run``) times on its own.

::

    scan -> plan -> load (the encoder, only when something is to be decoded)
         -> decode and features (worker processes) -> encode (batched, one model)     an engine runs these two
         -> write (track rows and vectors, checkpoints, the final commit)

What crosses from the engine to the write stage is an :class:`Embedded` per file, whichever engine made it
(``LocalEngine`` here, ``RayEngine`` in ``indexer.ray_engine``): the write stage, and so the store, is the
same for both.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

from ..catalog.scan import FileEntry, ScanProblem, content_hash, scan
from ..catalog.store import StoreWriter, is_store, read_manifest
from ..catalog.tags import normalise_genre
from ..catalog.track import STATUS_ERROR, STATUS_OK, Track, from_row
from ..errors import SoundalikeError
from ..model.pipeline import DECODE_TIMEOUT_S, Extracted, extract_many


class IndexingError(SoundalikeError):
    """The run cannot start (no model for a new store, wrong model, bad folder); the message says why."""


@contextlib.contextmanager
def timed(stages: dict[str, float], key: str):
    """Add the seconds spent in the ``with`` block to ``stages[key]``."""
    t0 = time.perf_counter()
    try:
        yield
    finally:
        stages[key] = stages.get(key, 0.0) + time.perf_counter() - t0


# ------------------------------------------------------------------------------------------- scan, plan


def scan_stage(root: str) -> tuple[list[FileEntry], list[ScanProblem]]:
    """Every audio file under ``root`` (sorted), and the folders or links that could not be read."""
    problems: list[ScanProblem] = []
    entries = list(scan(root, problems))
    return entries, problems


# ------------------------------------------------------------------------------------------------- load


def load_stage(model_path) -> tuple[object, dict, list[Path]]:
    """The encoder, the store's record of it (``StoreWriter(encoder=...)``) and the artefact files to copy
    into a new store. Compiles the model now, so that a failing inference route stops before any work."""
    from ..model.encoder import ModelError
    from ..model.registry import load_encoder
    from ..model.musicnn import WeightsMissing
    from ..model.runtime import RuntimeChoiceError

    try:
        encoder = load_encoder(model_path)
        runtime = encoder.runtime
    except (ModelError, WeightsMissing, RuntimeChoiceError) as err:
        raise IndexingError(str(err)) from None
    enc_meta = {"name": encoder.name, "fingerprint": encoder.fingerprint, "dim": encoder.dim,
                "labels": encoder.labels, "runtime": runtime, "frontend": encoder.frontend.to_dict(),
                "transform": encoder.store_transform, "rescore": encoder.rescore,
                "copy_threshold": encoder.copy_threshold}
    spec = encoder.spec()
    if spec is not None:
        enc_meta["spec"] = spec
    return encoder, enc_meta, [] if spec is not None else encoder.artefacts()


# ------------------------------------------------------------------------------------- decode, encode


@dataclasses.dataclass
class Embedded:
    """One file through decode, features and encode: what the write stage makes its Track of."""

    path: str
    vector: np.ndarray | None = None  # the raw track vector, float32[d]; None when the file failed
    windows: int = 0
    tags: dict = dataclasses.field(default_factory=dict)  # what read_tags found (title, artist, genre, ...)
    duration_s: float | None = None
    predicted: tuple | None = None  # (genre, score, top tags, their scores) from a classifier head
    scores: np.ndarray | None = None  # mean score of every label over the windows
    excerpt: np.ndarray | None = None  # float16[windows, encoder.excerpt_dim]: what the excerpt index keeps
    features: np.ndarray | None = None  # float32[windows, window width]: for a store that whitens within tracks
    music: dict | None = None  # tempo and key (model.keytempo)
    error: str | None = None  # one line, without the path
    decode_s: float = 0.0
    features_s: float = 0.0
    encode_s: float = 0.0  # this file's share (by windows) of its batch's model time

    @classmethod
    def of(cls, r: Extracted, **kw) -> "Embedded":
        tags = r.extra if isinstance(r.extra, dict) else {}
        duration = r.info.duration_s if r.info is not None else tags.get("duration_s")
        return cls(path=r.path, tags=tags, duration_s=duration, error=r.error, decode_s=r.decode_s,
                   features_s=r.features_s, music=r.music, **kw)


def embed_batch(encoder, batch: list[Extracted]) -> list[Embedded]:
    """Encode the windows of several decoded files in one model call and summarise each file's windows into
    its track vector. Files that failed to decode come back as failures, in their place."""
    ok = [r for r in batch if not r.error]
    embs = probs = None
    spent = 0.0
    if ok:
        t = time.perf_counter()
        embs, probs = encoder.encode(np.concatenate([r.features for r in ok]))
        spent = time.perf_counter() - t
    total = max(1, sum(len(r.features) for r in ok))
    whiten = getattr(encoder, "store_transform", None) == "whiten"
    out, at = [], 0
    for r in batch:
        if r.error:
            out.append(Embedded.of(r))
            continue
        n = len(r.features)
        predicted = scores = None
        if encoder.labels:
            scores = encoder.track_scores(probs[at : at + n])
            predicted = encoder.predicted(scores)
        dx = encoder.excerpt_dim
        excerpt = embs[at : at + n, :dx].astype(np.float16) if dx else None
        out.append(Embedded.of(r, vector=encoder.summarize(embs[at : at + n]), windows=n, predicted=predicted,
                               scores=scores, excerpt=excerpt, encode_s=spent * n / total,
                               features=np.asarray(embs[at : at + n], np.float32) if whiten else None))
        at += n
    return out


#: decoded files waiting for the model take at most this much memory (the queue is counted in files; a file's
#: windows have a fixed size): 64 MB is 55 files of musicnn's 16 windows, more than two model batches
QUEUE_BYTES = 64 << 20


class LocalEngine:
    """Decode and features in worker processes of this machine (``extract_many``), encode in this process,
    batching the windows of many files into one model call."""

    name = "local"

    def __init__(self, encoder, *, workers: int | None = None, per_file: Callable[[str], object] | None = None,
                 timeout_s: float = DECODE_TIMEOUT_S, batch_windows: int = 256):
        self.encoder, self.workers, self.per_file, self.timeout_s = encoder, workers, per_file, timeout_s
        self.batch_windows = batch_windows
        self._batch: list[Extracted] = []
        self._windows = 0

    def run(self, paths: list[str]) -> Iterator[tuple[int, list[Embedded]]]:
        """(files decoded since the last yield, files finished since the last yield), as they come."""
        # the workers decode the next batch while this one is encoded (a queue of two files a worker stalled
        # them for the whole model call: decoding and encoding took turns)
        fe = self.encoder.frontend
        per_file = fe.n_windows * fe.n_mels * fe.frames * 4  # bytes of one file's log-mel windows, at most
        ahead = max(2, min(2 * max(1, self.batch_windows // max(1, fe.n_windows)), QUEUE_BYTES // per_file))
        for r in extract_many(paths, self.encoder.frontend, workers=self.workers, per_file=self.per_file,
                              timeout_s=self.timeout_s, ahead=ahead):
            if r.error:
                yield 1, [Embedded.of(r)]
                continue
            self._batch.append(r)
            self._windows += len(r.features)
            yield 1, (self.drain() if self._windows >= self.batch_windows else [])
        yield 0, self.drain()

    def drain(self) -> list[Embedded]:
        """Encode what is decoded and waiting for a full batch (before a checkpoint)."""
        batch, self._batch, self._windows = self._batch, [], 0
        return embed_batch(self.encoder, batch) if batch else []

    def close(self) -> None:
        pass


# -------------------------------------------------------------------------------------------------- write


def _genre_from_folder(path: str, root: str) -> str | None:
    rel = os.path.relpath(os.path.dirname(path), root)
    return None if rel in (".", "") else normalise_genre(Path(rel).parts[0])


class WriteStage:
    """Tracks and vectors into the store: rows as they finish, checkpoints, removals and the final commit.

    ``report`` (an ``IndexReport``) gets the counts and the ``write`` time; a write that fails for want of
    space (or any OSError) is an IndexingError that says the last generation is intact."""

    def __init__(self, writer: StoreWriter, report, *, entries: dict[str, FileEntry], changed: set[str],
                 root: str, genre_from: str = "tags"):
        self.writer, self.report, self.entries, self.changed = writer, report, entries, changed
        self.root, self.genre_from = root, genre_from
        self._new: list[str] = []  # new files in the plan's (sorted) order
        self._rank: dict[str, int] = {}
        self._given = 0  # how many of them have an id

    def order_ids(self, new_paths: list[str]) -> None:
        """New files get their ids in this order, whichever engine runs and in whatever order files finish:
        a file's id is given when it is written, after every file before it got one. Files finishing in order
        (one worker) take ids exactly as far as they got, so a run stopped and resumed ends with the ids of a
        run that was not stopped."""
        self._new = list(new_paths)
        self._rank = {p: i for i, p in enumerate(self._new)}
        self._given = 0

    def _id(self, path: str) -> int:
        rank = self._rank.get(path)
        while rank is not None and self._given <= rank:
            self.writer.id_for(self._new[self._given])
            self._given += 1
        return self.writer.id_for(path)  # a changed file keeps its id

    def mark(self, missing: list[int], back: list[int]) -> None:
        """Reachability first: tracks out of reach keep their vectors and are marked missing; found again, not."""
        with timed(self.report.stages, "write"):
            now = time.time()
            for track_id in missing + back:
                track = from_row(self.writer.row(track_id))  # every column (the plan's rows lack some)
                track.missing_since = now if track_id in missing else None
                self.writer.put(track)

    def move(self, moved: list[tuple[int, FileEntry]]) -> None:
        """Files moved or renamed: their tracks take the new path (same id, same vector, nothing decoded)."""
        with timed(self.report.stages, "write"):
            for track_id, entry in moved:
                track = from_row(self.writer.row(track_id))
                track.path, track.size, track.mtime, track.missing_since = entry.path, entry.size, entry.mtime, None
                if self.genre_from == "folder":
                    track.genre = _genre_from_folder(entry.path, self.root) or track.genre
                self.writer.put(track)

    def track(self, e: Embedded) -> Track:
        entry = self.entries[e.path]
        genre = e.tags.get("genre")
        if self.genre_from == "folder":
            genre = _genre_from_folder(e.path, self.root) or genre
        return Track(id=self._id(e.path), path=e.path, size=entry.size, mtime=entry.mtime, duration_s=e.duration_s,
                     title=e.tags.get("title"), artist=e.tags.get("artist"), album=e.tags.get("album"), genre=genre,
                     content_hash=content_hash(e.path))

    def put(self, e: Embedded) -> None:
        r = self.report
        r.stages["decode"] += e.decode_s
        r.stages["features"] += e.features_s
        r.stages["encode"] += e.encode_s
        with timed(r.stages, "write"):
            track = self.track(e)
            if e.error:
                track.status, track.error = STATUS_ERROR, e.error
                self.writer.put(track)
            else:
                track.windows = e.windows
                if e.predicted is not None:
                    genre, score, tags, tag_scores = e.predicted
                    track.predicted_genre, track.predicted_score = normalise_genre(genre), score
                    track.predicted_tags, track.predicted_tag_scores = tags, tag_scores
                if e.scores is not None:
                    track.tag_scores = [float(x) for x in e.scores]
                if e.music:
                    track.bpm, track.key, track.key_strength = e.music["bpm"], e.music["key"], e.music["key_strength"]
                self.writer.put(track, e.vector, windows=e.excerpt, features=e.features)
                r.windows += e.windows
        if track.status != STATUS_OK:
            r.failed += 1
            r.failures.append((track.path, track.error or ""))
        elif track.path in self.changed:
            r.updated += 1
        else:
            r.added += 1

    def remove(self, ids: list[int]) -> None:
        with timed(self.report.stages, "write"):
            for track_id in ids:
                self.writer.remove(track_id)
        self.report.removed = len(ids)

    def save(self, *, full: bool) -> None:
        """A checkpoint (a shard and a Parquet part) or, ``full``, the commit that ends the run."""
        store_path = self.writer.path
        with timed(self.report.stages, "write"):
            try:
                self.writer.commit() if full else self.writer.checkpoint()
            except OSError as err:  # disk full, file too large, I/O error: the last generation stays as it was
                gen = read_manifest(store_path)["generation"] if is_store(store_path) else None
                kept = f"generation {gen} is intact" if gen is not None else "nothing had been committed yet"
                raise IndexingError(f"{store_path}: cannot write the store ({err.strerror or err}); {kept}; "
                                    f"free some space and run the same command again to resume") from None

