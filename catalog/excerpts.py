"""The excerpt index: every analysis window of every track, so a clip finds its song.

A track vector summarises 16 windows spread over a song; a 10 s clip's own vector is not its song's. The
excerpt index keeps what each window's features were (for the default encoder, the mid-end's mean-pooled
753) and answers "which tracks hold windows like the clip's?". Its files:

    vectors/shard-000003.npz        beside each track vector: window_rows (int32[m], the row of ``ids`` a
                                    window belongs to, in window order) and windows (float16[m, d])
    windows.g000007.faiss           the window index: the compact form of the track index (the windows'
                                    standardisation, PCA to EXCERPT_WIDTH and rotation, then whitened
                                    against how windows vary within a track; unit length, 8-bit codes;
                                    inverted lists past FLAT_MAX windows); id = track id * SLOTS + window
    windows.g000007.ivfdata         its inverted lists, when it has them (FAISS's on-disk lists: built in parts
                                    of bounded memory, memory-mapped by readers)
    windows.g000007.template.faiss  its trained empty index: frozen transform and quantisers for the delta
    windows.g000009.delta.faiss     windows written since the index was built, in its quantisers

A commit rebuilds the index when the windows written since it was built pass DELTA_FRACTION of it (or
EXCERPT_DELTA_MIN), and otherwise writes only the delta; readers search both and drop the main index's
windows of tracks re-embedded since (their new windows are in the delta) or no longer in the library.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from . import indexes
from .index_files import read_index
from .indexes import LayeredIndex, Policy, TrackIndex
from .layout import DELTA_FRACTION, REMEDY, StoreError, atomic_write, short
from .shards import latest_in_shard, wanted_bitmap

#: window ids: track id * SLOTS + the window's number within its track (an encoder analyses at most SLOTS)
SLOTS = 64
#: the window index keeps this many principal dimensions (8-bit codes and an id: 200 B a window, 3.2 KB a track of
#: 16 windows). The standardised window features are of low rank: on the dev corpus, alone and with 2,000
#: synthesised songs, 192 dimensions held all their variance (128 held 98%, and measured the same recall)
EXCERPT_WIDTH = 192
#: within-track whitening: the within-track covariance is shrunk towards this share of its mean variance
WHITEN_SHRINK = 0.3
#: a commit writes a delta until the windows written since the last build pass this (or DELTA_FRACTION of it)
EXCERPT_DELTA_MIN = 32_768
#: nearest windows fetched for each window of a clip (see ExcerptIndex.match)
PER_WINDOW = 256
#: a clip's windows may find their track this much less often than a scan of every list (see clip_depth)
CLIP_DEPTH_SLACK = 0.02


def window_slots(rows: np.ndarray) -> np.ndarray:
    """Each window's number within its track, for ``window_rows`` in window order (runs of equal rows)."""
    rows = np.asarray(rows)
    if not len(rows):
        return np.zeros(0, np.int64)
    start = np.r_[0, np.flatnonzero(rows[1:] != rows[:-1]) + 1]
    first = np.repeat(start, np.diff(np.r_[start, len(rows)]))
    return np.arange(len(rows)) - first


def iter_latest_windows(root: Path, names: list[str], live: np.ndarray, rows: int = 16_384):
    """Stream the windows of the last vector written for every id in ``live``, as ``(window ids, float32[n,
    d])`` batches (newest shard first). A track whose last vector came without windows (a shard written
    before windows were kept) has none."""

    wanted = wanted_bitmap(live)
    for name in reversed(names):
        try:
            with np.load(root / name) as z:
                ids = z["ids"].astype(np.int64)
                uniq, pos = latest_in_shard(ids, wanted)
                if not len(uniq) or "windows" not in z.files:
                    continue
                wrows = z["window_rows"].astype(np.int64)
                take = np.isin(wrows, pos)
                if not take.any():
                    continue
                wids = ids[wrows[take]] * SLOTS + window_slots(wrows)[take]
                wins = z["windows"][take]
        except Exception as err:
            raise StoreError(f"{root / name}: unreadable vector shard ({short(err)}){REMEDY}") from None
        for at in range(0, len(wids), rows):
            yield wids[at : at + rows], np.ascontiguousarray(wins[at : at + rows], dtype=np.float32)


def count_latest_windows(root: Path, names: list[str], live: np.ndarray) -> tuple[int, int]:
    """(windows, their width) that :func:`iter_latest_windows` would stream, from the shards' ids and window
    rows only (no window feature is read)."""

    wanted = wanted_bitmap(live)
    n, dim = 0, 0
    for name in reversed(names):
        try:
            with np.load(root / name) as z:  # (an .npz reads an array only when it is asked for)
                _, pos = latest_in_shard(z["ids"].astype(np.int64), wanted)
                if len(pos) and "windows" in z.files:
                    n += int(np.isin(z["window_rows"], pos).sum())
                    dim = dim or _npz_width(z, "windows")
        except Exception as err:
            raise StoreError(f"{root / name}: unreadable vector shard ({short(err)}){REMEDY}") from None
    return n, dim


def _npz_width(z, key: str) -> int:
    """The second dimension of array ``key`` in an open .npz, from its header (the array is not read)."""
    fmt = np.lib.format
    with z.zip.open(f"{key}.npy") as f:
        read = fmt.read_array_header_1_0 if fmt.read_magic(f) == (1, 0) else fmt.read_array_header_2_0
        shape, _, _ = read(f)
    return int(shape[1])


def count_windows(m: dict, names: list[str]) -> int:
    """Windows the shards ``names`` hold, live or not (from the manifest)."""
    known = m.get("shard_windows") or {}
    return sum(int(known.get(n, 0)) for n in names)


def commit(root: Path, m: dict, gen: int, live: np.ndarray, *, rebuild: bool, newer_than) -> tuple[dict | None, list[str]]:
    """The window index record for generation ``gen`` and the files written for it. ``newer_than(n)``: the
    shards written since shard number ``n``. A delta when the previous index can take one, else a build."""

    prev = m.get("windows") or {}
    if not count_windows(m, m["shards"]):
        return None, []
    usable = prev and not rebuild and all((root / prev[k]).is_file() for k in ("file", "template", "lists") if k in prev)
    if usable:
        newer = newer_than(prev["shards_indexed"])
        pending = count_windows(m, newer)
        if pending <= max(EXCERPT_DELTA_MIN, DELTA_FRACTION * int(prev.get("count", 0))):
            record = {k: v for k, v in prev.items() if k != "delta"}
            record["generation"] = gen
            written = []
            if pending:
                delta = indexes.load_template((root / prev["template"]).read_bytes())
                for wids, wins in iter_latest_windows(root, newer, live):
                    delta.add(wids, wins)
                if delta.ntotal:
                    name = f"windows.g{gen:06d}.delta.faiss"
                    atomic_write(root / name, delta.write)
                    record["delta"] = {"file": name, "count": int(delta.ntotal)}
                    written.append(name)
            return record, written
    live = np.asarray(live, np.int64)
    n, dim = count_latest_windows(root, m["shards"], live)
    if not n:
        return None, []
    name, tname, lists = (f"windows.g{gen:06d}.{ext}" for ext in ("faiss", "template.faiss", "ivfdata"))
    try:
        built = indexes.build(lambda: iter_latest_windows(root, m["shards"], live), n, dim,
                              transform_kind="standardize", fitted=None, policy=Policy(), widths=(EXCERPT_WIDTH,),
                              refine=whiten_within_tracks, lists_file=root / lists, fit_sample=fit_sample(n),
                              filtered=False)
        depth = clip_depth(built.index, *built.queries) if built.index.is_ivf and built.queries else None
        if depth is not None:
            built.info["nprobe_windows"], built.info["nprobe"] = built.info.get("nprobe"), depth
            built.index.search_index.nprobe = depth
        atomic_write(root / name, built.index.write)
    except BaseException:
        (root / lists).unlink(missing_ok=True)
        raise
    atomic_write(root / tname, lambda f: f.write(built.template))
    info = {k: built.info.get(k) for k in ("type", "width", "nprobe", "nprobe_windows", "nlist", "recall_at_10")
            if built.info.get(k) is not None}
    record = {"file": name, "template": tname, "count": int(built.index.ntotal), "dim": int(dim),
              "kind": built.index.describe(), "generation": gen, "built": gen,
              "shards_indexed": int(m["next_shard"]), **info}
    written = [name, tname]
    if (root / lists).exists():  # inverted lists on disk, beside the index
        record["lists"] = lists
        written.append(lists)
    return record, written


def clip_depth(index: TrackIndex, q_ids: np.ndarray, q_raw: np.ndarray, per_window: int = PER_WINDOW) -> int | None:
    """How many inverted lists a clip's window probes: the fewest (a power of two) at which held-out windows
    find another window of their own track among their ``per_window`` nearest as often as a scan of every
    list does, less CLIP_DEPTH_SLACK. Not the depth at which each window's ten nearest windows are found (what
    the build's recall measures): a clip's score is the mean over its windows, so a window that misses its
    track now and then costs little (10 s clips of real music among a million tracks: recall@1 0.93-0.94 at
    every depth from 32 to the 672 lists that recall asked for, 0.95 alone; 64 lists read 25 MB a window,
    672 read 260 MB)."""
    if not len(q_ids):
        return None
    q, tracks = index.embed(q_raw), np.asarray(q_ids) // SLOTS

    def hits(nprobe: int) -> float:
        _, w = index.search(q, per_window + 1, nprobe=nprobe)
        own = (w >= 0) & (w != np.asarray(q_ids)[:, None]) & (w // SLOTS == tracks[:, None])
        return float(own.any(axis=1).mean())

    full, most = hits(index.exhaustive_nprobe()), int(index.search_index.nprobe)
    depth = 1
    while depth < most and hits(depth) < full - CLIP_DEPTH_SLACK:
        depth *= 2
    return min(depth, most)


def fit_sample(n: int) -> int:
    """Windows the window index's PCA and quantisers are fitted on: FIT_SAMPLE, or enough for 40 a list of the
    inverted lists ``n`` windows get (327,680 at 16 million: lists of 2,000 windows, not 8,000)."""
    return min(n, max(indexes.FIT_SAMPLE, 40 * indexes.nlist_for(n)))


def whiten_within_tracks(fitted: indexes.Fitted, sample: np.ndarray, ids: np.ndarray,
                         shrink: float = WHITEN_SHRINK) -> indexes.Fitted:
    """The window transform, whitened against how windows vary within a track: after the PCA, the directions
    in which a song's own windows differ (its sections, its mix changing) are scaled down and those in which
    songs differ kept, so a clip from a part of a song that was not analysed still lands near the song's
    windows. The within-track covariance comes from the library's own windows (tracks with two or more in
    the sample), shrunk towards ``shrink`` times its mean variance. Measured on the dev corpus with 2,000
    distractors, recall@1 over 100 clips on two draws, paired: with noise at 20 dB SNR +0.06 [+0.01, +0.11]
    (5 s) and +0.08 [+0.03, +0.14] (10 s), clean and MP3 +0.00 to +0.04. Without a PCA (a library of fewer
    than PCA_MIN_FIT windows) it changes nothing."""
    if fitted.basis is None or not len(ids):
        return fitted
    p = np.concatenate([indexes.standardize(sample[at : at + 65_536], fitted.mean, fitted.std) @ fitted.basis
                        for at in range(0, len(sample), 65_536)])  # (a chunk at a time: the sample is large)
    _, inv, counts = np.unique(ids // SLOTS, return_inverse=True, return_counts=True)
    means = np.zeros((len(counts), p.shape[1]))
    np.add.at(means, inv, p)
    means /= counts[:, None]
    resid = (p - means[inv])[counts[inv] >= 2]
    k = p.shape[1]
    if len(resid) < 2 * k:
        return fitted
    within = resid.T @ resid / len(resid)
    w, e = np.linalg.eigh(within + shrink * np.trace(within) / k * np.eye(k))
    whiten = (e * w ** -0.5) @ e.T
    return indexes.Fitted(fitted.mean, fitted.std, np.ascontiguousarray(fitted.basis @ whiten, dtype=np.float32),
                          fitted.fitted_on, fitted.kept)


@dataclasses.dataclass
class WindowMatch:
    """One track's match: its score (the mean over the clip's windows of their best cosine with the track's
    windows), the track window that matched best and the clip window it matched."""

    track_id: int
    score: float
    window: int
    clip_window: int


class ExcerptIndex:
    """A generation's window index (main and delta) as one searchable index over window ids."""

    def __init__(self, index: TrackIndex | LayeredIndex, record: dict):
        self.index, self.record = index, record

    @classmethod
    def open(cls, root: Path, record: dict) -> "ExcerptIndex":

        dim = int(record["dim"])
        main = read_index(root, {k: record[k] for k in ("file", "lists") if k in record}, dim, mmap=True)
        delta = record.get("delta")
        if not delta:
            return cls(main, record)
        d = read_index(root, {"file": delta["file"]}, dim, mmap=False)
        # the main index's windows of tracks re-embedded since: every slot of those tracks (a superset is harmless)
        again = np.unique(d.ids() // SLOTS)
        hidden = (again[:, None] * SLOTS + np.arange(SLOTS)[None, :]).ravel()
        return cls(LayeredIndex(main, d, hidden), record)

    def match(self, clip: np.ndarray, *, live: np.ndarray, k: int = 10, per_window: int = PER_WINDOW,
              restrict: bool = False) -> list[WindowMatch]:
        """The ``k`` tracks (among ``live``, a bitmap over track ids) whose windows best match the clip's
        window features ``clip`` ``[m, d]``: each clip window's ``per_window`` nearest windows are fetched; a
        track's score is the mean over clip windows of its best window's cosine, where a clip window found
        none of the track's windows counting the lowest cosine it fetched (an upper bound). ``restrict``: only
        ``live`` tracks' windows are candidates inside FAISS (for a filter that leaves out much of the library;
        without it, other tracks are dropped after the search)."""
        import faiss

        q = self.index.embed(clip)
        nq = len(q)
        kk = min(per_window, max(1, self.index.ntotal))
        sel = bits = None
        if restrict:
            bits = np.packbits(np.repeat(live, SLOTS), bitorder="little")
            sel = faiss.IDSelectorBitmap(len(bits), faiss.swig_ptr(bits))
        before = faiss.omp_get_max_threads()
        faiss.omp_set_num_threads(1 if nq <= 4 else before)
        try:
            scores, wids = self.index.search(q, kk, selector=sel)
        finally:
            faiss.omp_set_num_threads(before)
        del sel, bits
        found = wids >= 0
        tracks = np.where(found, wids // SLOTS, -1)
        ok = found & (tracks < len(live))
        ok[ok] = live[tracks[ok]]
        floor = np.where(found, scores, np.inf).min(axis=1)  # each clip window's lowest fetched cosine
        floor = np.where(np.isfinite(floor), floor, 0.0)
        cand = np.unique(tracks[ok])
        if not len(cand):
            return []
        best = np.repeat(floor[:, None], len(cand), axis=1).astype(np.float32)  # [clip window, candidate]
        where = np.full((nq, len(cand)), -1, np.int64)
        col = np.searchsorted(cand, tracks[ok])
        row = np.nonzero(ok)[0]
        s, w = scores[ok], wids[ok]
        # the best per (clip window, track): visit in ascending score so the last write is the best
        order = np.argsort(s, kind="stable")
        best[row[order], col[order]] = np.maximum(best[row[order], col[order]], s[order])
        where[row[order], col[order]] = w[order]
        total = best.mean(axis=0)
        top = np.argsort(-total, kind="stable")[:k]
        out = []
        for c in top:
            i = int(np.argmax(np.where(where[:, c] >= 0, best[:, c], -np.inf)))
            wid = int(where[i, c])
            out.append(WindowMatch(int(cand[c]), float(total[c]), wid % SLOTS if wid >= 0 else -1, i))
        return out
