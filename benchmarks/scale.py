"""The engine at library scale: build, commit, query and memory at N tracks of the default encoder's width.

For each N (default 10,000 and 100,000; ``--million`` adds 1,000,000) it writes a real store through
``StoreWriter`` (vector shards of 10,000, Parquet tracks with ten genres, so one genre holds 10%), then, each
step in a process of its own so that its peak RSS is its own:

- ``build``: a full rebuild of the index from the shards (``soundalike reindex --refit``: the transform is
  fitted, the index built streaming the shards, recall and latency measured and recorded);
- ``commit one``: open the store, add ONE track, commit (what a nightly ``index`` run costs);
- ``cold query``: ``soundalike search ID --id`` and ``soundalike search PATH`` as new processes;
- ``warm``: one process opens a Searcher, runs 200 warm-up queries of each kind, and times single queries
  (one thread), unfiltered and with the 10% genre filter, ranked as search ranks them (CSLS over the index's
  candidates) and by plain cosine; the cosine answers' recall@10 against exact search over the full float
  vectors (NumPy, standardised with the store's own statistics: what the index is measured by), beside NumPy brute force over the same index-space vectors and over the
  full raw vectors, and the memory-bandwidth bound (the index's code bytes over the read bandwidth measured in
  the same run).

The vectors look like real ones, not isotropic noise: a Gaussian mixture whose standardised spectrum follows
the dev corpus's (eigenvalues ~ i^-1.45, measured on 248 real tracks), in groups of about 20 tracks (an
album, a soundtrack) that hold 18% of the variance, as on the dev corpus; then a mean and a scale per
dimension, so that the standardisation matters.

    python benchmarks/scale.py [--sizes 10000 100000] [--million] [--queries 200] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from scale_data import DIM, ENCODERS, GENRES, GROUP, SHAPES, SPREAD_SEED, MusicLike, write_store  # noqa: E402


# ------------------------------------------------------------------------------------------------ steps


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class AnonPeak:
    """The peak of this process's anonymous memory (``RssAnon``: what it allocated), sampled every 0.1 s. Peak
    RSS also counts the pages of memory-mapped files it touched (the on-disk lists it wrote and read), which
    the kernel drops when memory is short."""

    def __init__(self):
        import threading

        self.peak, self._stop = 0, threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()

    def _watch(self) -> None:
        while not self._stop.is_set():
            with open("/proc/self/status") as f:
                for line in f:
                    if line.startswith("RssAnon:"):
                        self.peak = max(self.peak, int(line.split()[1]) // 1024)
            self._stop.wait(0.1)

    def stop(self) -> int:
        self._stop.set()
        self._thread.join()
        return self.peak


def step_build(store: str) -> dict:
    from soundalike.catalog.check import reindex

    from soundalike.catalog.store import read_manifest

    anon = AnonPeak() if os.path.exists("/proc/self/status") else None
    t = time.perf_counter()
    res = reindex(store, refit=True)
    m = read_manifest(store)
    nb, win = m.get("neighbours") or {}, m.get("windows")
    return {"seconds": round(time.perf_counter() - t, 2), "peak_rss_mb": round(_rss_mb()),
            "peak_anon_mb": anon.stop() if anon else None, "index": res["index"],
            "index_infos": res["index_infos"], "neighbours_s": nb.get("seconds"), "windows": win}


def step_commit_one(store: str) -> dict:
    from soundalike.catalog.store import StoreWriter, read_manifest
    from soundalike.catalog.track import Track

    m = read_manifest(store)
    n = m["counts"]["tracks"]
    vec = MusicLike(n + 1).chunk(n, n + 1)[0]
    if int(m["encoder"]["dim"]) == 2 * DIM:  # the default's stores: mean and spread
        vec = np.concatenate([vec, MusicLike(n + 1, seed=SPREAD_SEED).chunk(n, n + 1)[0]])
    t0 = time.perf_counter()
    with StoreWriter(store, encoder=m["encoder"]) as w:
        t1 = time.perf_counter()
        p = f"/music/new/track{n:07d}.flac"
        w.put(Track(id=w.id_for(p), path=p, size=1, mtime=1.0, genre="genre0"), vec)
        w.commit()
    t2 = time.perf_counter()
    m = read_manifest(store)
    return {"seconds": round(t2 - t0, 2), "open_s": round(t1 - t0, 2), "commit_s": round(t2 - t1, 2),
            "peak_rss_mb": round(_rss_mb()), "updated_in_place": m["index"]["updates"] > 0}


def codes_then_sketch(s, cos, timed, genre: str) -> dict:
    """Inverted lists: the 8-bit codes alone timed by cosine (a process that has not warmed up; their hits kept
    for their recall), then the sketch a service makes (catalog.sketch) made for both searchers, its time and
    memory; the steps after it time the sketch."""
    plain = {}
    if s.index.sketch is None and s.index.is_ivf:
        for name, fn in (("codes_p50_ms", lambda q: [h.id for h in cos.search_id(q, k=10)]),
                         ("codes_filtered_p50_ms", lambda q: [h.id for h in cos.search_id(q, k=10, genres=[genre])])):
            plain[name], _, plain[name.replace("p50_ms", "hits")] = timed(fn)
            plain[name] = round(plain[name], 3)
        rss_before, t = _rss_mb(), time.perf_counter()
        for searcher in (s, cos):
            searcher.warm_up(wait=True)
        if s.index.sketch is not None:
            plain.update(sketch_s=round((time.perf_counter() - t) / 2, 2), sketch_rss_mb=round((_rss_mb() - rss_before) / 2),
                         sketch_mb=round(s.index.sketch.nbytes / 1e6))
            # a service's second query with a filter has the filter's own sketch made (in the background)
            t, q = time.perf_counter(), int(s.index.ids()[0])
            for searcher in (s, cos):
                for _ in range(2):
                    searcher.search_id(q, k=10, genres=[genre])
                searcher.index.sketch.wait()
            plain.update(narrowed_s=round((time.perf_counter() - t) / 2, 2),
                         narrowed_mb=round(s.index.sketch.nbytes / 1e6 - plain["sketch_mb"]))
    return plain


def narrow_filter(s, qids, tracks: int = 50) -> dict:
    """A filter of ``tracks`` tracks (too few in the lists a query probes): every list searched, by the 8-bit
    codes and then by the filter's own sketch once made; p50 of each and how many answers agree."""
    import faiss

    index, all_ids = s.index, s.index.ids()
    if index.sketch is None:
        return {}
    keep = np.zeros(int(all_ids.max()) + 1, bool)
    keep[np.random.default_rng(2).choice(all_ids, tracks, replace=False)] = True
    bits = np.packbits(keep, bitorder="little")
    sel, every = faiss.IDSelectorBitmap(len(bits), faiss.swig_ptr(bits)), index.exhaustive_nprobe()
    q = np.stack([index.reconstruct(int(i)) for i in qids[:100]]).astype(np.float32)
    out, found = {}, {}
    for name, within in (("codes", None), ("own_sketch", bits)):
        if within is not None:
            for _ in range(2):
                index.search(q[:1], 10, sel, every, within=within)
            index.sketch.wait()
        times, found[name] = [], []
        for row in q:
            t = time.perf_counter()
            found[name].append(index.search(row[None], 10, sel, every, within=within)[1][0])
            times.append((time.perf_counter() - t) * 1000)
        out[f"narrow_{tracks}_{name}_p50_ms"] = round(float(np.percentile(times, 50)), 3)
    out[f"narrow_{tracks}_agree"] = round(float(np.mean([len(set(a) & set(b)) / 10 for a, b in
                                                          zip(found["codes"], found["own_sketch"])])), 4)
    return out


def step_warm(store: str, queries: int) -> dict:
    import faiss

    from soundalike.catalog.index_files import transform_kind
    from soundalike.catalog.indexes import exact_space, standardize
    from soundalike.search.searcher import Searcher

    faiss.omp_set_num_threads(1)
    rss0 = _rss_mb()
    t = time.perf_counter()
    s = Searcher(store)
    open_s = time.perf_counter() - t
    cos = Searcher(store, rescore=False)  # the index's own answers, for their recall against exact cosine
    rss_open = _rss_mb()
    index = s.index
    ids, raw = s.store.vectors() if s.store.manifest["counts"]["tracks"] <= 200_000 else (None, None)
    rng = np.random.default_rng(1)
    all_ids = index.ids()
    qids = rng.choice(all_ids, size=min(queries, len(all_ids)), replace=False)
    genre = "genre3"

    def timed(fn):
        times, out = [], []
        for q in qids:
            t = time.perf_counter()
            out.append(fn(int(q)))
            times.append((time.perf_counter() - t) * 1000)
        return np.percentile(times, 50), np.percentile(times, 99), out

    # warmed first, as a serving process is: 200 other queries of each kind touch the index's pages and the
    # track tables' row groups that hits are read from (a cold process is the "cold query" step)
    for q in rng.choice(all_ids, size=min(200, len(all_ids)), replace=False):
        s.search_id(int(q), k=10)
        s.search_id(int(q), k=10, genres=[genre])
    plain = codes_then_sketch(s, cos, timed, genre)
    p50, p99, _ = timed(lambda q: [h.id for h in s.search_id(q, k=10)])
    fp50, fp99, _ = timed(lambda q: [h.id for h in s.search_id(q, k=10, genres=[genre])])
    cp50, _, hits = timed(lambda q: [h.id for h in cos.search_id(q, k=10)])
    cfp50, _, fhits = timed(lambda q: [h.id for h in cos.search_id(q, k=10, genres=[genre])])
    res = {"open_s": round(open_s, 3), "searcher_rss_mb": round(rss_open - rss0),
           "p50_ms": round(p50, 3), "p99_ms": round(p99, 3), "filtered_p50_ms": round(fp50, 3),
           "filtered_p99_ms": round(fp99, 3), "cosine_p50_ms": round(cp50, 3), "cosine_filtered_p50_ms": round(cfp50, 3),
           **plain, **narrow_filter(cos, qids)}
    # recall against exact search over the full raw vectors in the store's own metric (what its build measures by)
    fitted = s.store.fitted()
    space = exact_space(fitted, refined=transform_kind(s.store.manifest) == "whiten")
    if ids is None:  # 1M: stream the shards for the exact answers
        from soundalike.catalog.shards import iter_latest

        live = np.sort(all_ids)
        batches = lambda: iter_latest(s.store.path, s.store.manifest["shards"], live)  # noqa: E731
    else:
        batches = lambda: iter([(ids, raw)])  # noqa: E731
    qraw = {}
    for bid, braw in batches():
        hit = np.isin(bid, qids)
        qraw.update(zip(bid[hit].tolist(), braw[hit]))
    qv = space(np.stack([qraw[int(q)] for q in qids]))
    g_of = dict(zip(s.ids.tolist(), s.values("genre")))
    best = np.full((len(qids), 10), -np.inf)
    best_i = np.full((len(qids), 10), -1)
    fbest = best.copy()
    fbest_i = best_i.copy()
    brute_t = []
    for bid, braw in batches():
        u = space(braw)
        t = time.perf_counter()
        sc = qv @ u.T
        brute_t.append(time.perf_counter() - t)
        sc[qids[:, None] == bid[None, :]] = -np.inf
        for b, bi, mask in ((best, best_i, None), (fbest, fbest_i, np.asarray([g_of[int(i)] == genre for i in bid]))):
            scc = sc if mask is None else np.where(mask[None, :], sc, -np.inf)
            cat = np.concatenate([b, scc], axis=1)
            cat_i = np.concatenate([bi, np.broadcast_to(bid, scc.shape)], axis=1)
            top = np.argpartition(-cat, 9, axis=1)[:, :10]
            b[:] = np.take_along_axis(cat, top, 1)
            bi[:] = np.take_along_axis(cat_i, top, 1)
    res["recall_at_10"] = round(float(np.mean([len(set(h) & set(t)) / 10 for h, t in zip(hits, best_i)])), 4)
    res["filtered_recall_at_10"] = round(float(np.mean([len(set(h) & set(t)) / 10 for h, t in zip(fhits, fbest_i)])), 4)
    for name, truth in (("codes_hits", best_i), ("codes_filtered_hits", fbest_i)):  # (the 8-bit codes alone)
        if name in res:
            found = res.pop(name)
            res[name.replace("hits", "recall_at_10")] = round(float(np.mean([len(set(h) & set(t)) / 10
                                                                           for h, t in zip(found, truth)])), 4)
    # NumPy brute force, one query at a time, (a) over the index-space vectors decoded to float32, (b) over the
    # full raw standardised vectors: what the store searched before the compact index
    if len(all_ids) <= 200_000:
        dec = np.stack([index.reconstruct(int(i)) for i in all_ids])
        res["numpy_index_space_p50_ms"] = numpy_p50(dec, 30)
        if ids is not None:
            res["numpy_full_raw_p50_ms"] = numpy_p50(standardize(raw, fitted.mean, fitted.std), 10)  # (unreduced)
    # exact FAISS scan of the same codes (no probing), for the IVF kinds: what exhaustive search costs
    if index.is_ivf:
        t_ex = []
        for q in qids[:20]:
            v = index.reconstruct(int(q))[None]
            t = time.perf_counter()
            index.search(v, 10, nprobe=index.exhaustive_nprobe())
            t_ex.append((time.perf_counter() - t) * 1000)
        res["exhaustive_p50_ms"] = round(float(np.median(t_ex)), 3)
    # the memory bound: the code bytes a full scan reads, over the bandwidth of a plain read in this run
    code_bytes = len(all_ids) * index.width * (1 if "SQ8" in index.describe() else 2)
    buf = np.ones(max(code_bytes, 1 << 24) // 8, np.int64)
    t_bw = []
    for _ in range(5):
        t = time.perf_counter()
        buf.sum()
        t_bw.append(time.perf_counter() - t)
    bw = buf.nbytes / min(t_bw)
    res["read_gb_per_s"] = round(bw / 1e9, 2)
    res["full_scan_bound_ms"] = round(code_bytes / bw * 1000, 3)
    res["peak_rss_mb"] = round(_rss_mb())
    return res


def numpy_p50(vectors: np.ndarray, reps: int) -> float:
    """p50 ms of one NumPy brute-force query (matrix-vector product and top 10) over ``vectors``."""
    q = vectors[0].copy()
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        np.argpartition(-(vectors @ q), 10)[:10]
        times.append((time.perf_counter() - t) * 1000)
    return round(float(np.median(times)), 3)


def cold_query(store: str, args: list[str], reps: int = 3, command: str = "search") -> dict:
    """A CLI command as a new process, ``reps`` times: its median and best wall time, its peak RSS, and the last
    run's output."""
    times, rss = [], []
    extra = ["-k", "10"] if command == "search" else []
    for _ in range(reps):
        t = time.perf_counter()
        out, peak = run_child([sys.executable, "-m", "soundalike.cli", command, *args, "--db", store, "--json", *extra])
        times.append(time.perf_counter() - t)
        rss.append(peak)
    return {"median_s": round(float(np.median(times)), 3), "min_s": round(min(times), 3), "peak_rss_mb": max(rss),
            "output": out}


def run_child(argv: list[str]) -> tuple[str, int]:
    """Run ``argv``: its standard output and its own peak RSS (MB); a failure raises with its last words.

    Started from a process of the multiprocessing fork server (a fresh interpreter), not from this one: a
    child's peak RSS counts the image of the process it was forked from (Linux keeps the high-water mark
    across exec), and this one holds a library's worth of arrays by then."""
    import multiprocessing as mp

    with mp.get_context("forkserver").Pool(1) as pool:
        out, peak, code, err = pool.apply(_spawn_and_wait, (argv,))
    if code != 0:
        raise RuntimeError(f"{' '.join(argv[2:5])}: exit {code}: {err}")
    return out, peak


def _spawn_and_wait(argv: list[str]) -> tuple[str, int, int, str]:
    with tempfile.TemporaryFile("w+") as err:
        p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=err, text=True)
        out = p.stdout.read()
        _, status, usage = os.wait4(p.pid, 0)
        err.seek(0)
        return out, round(usage.ru_maxrss / 1024), os.waitstatus_to_exitcode(status), err.read().strip()[-400:]


def run_step(step: str, store: str, *extra: str) -> dict:
    """One step in a fresh process: its answer and its own peak RSS."""
    out, peak = run_child([sys.executable, __file__, "--step", step, "--store", store, *extra])
    res = json.loads(out.strip().splitlines()[-1])
    res["process_peak_rss_mb"] = peak
    return res


def disk_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def bench(n: int, queries: int, workdir: Path, keep: bool, shape: str = "music", real: Path | None = None,
          clips: int = 100, encoder: str = "whiten") -> dict:
    store = workdir / f"bench-{n}-{shape}-{encoder}{'-real' if real else ''}.soundalike"
    row = {"tracks": n, "width": 2 * DIM if encoder == "whiten" else DIM, "shape": shape, "encoder": encoder}
    if (store / "manifest.json").is_file() and keep:  # kept from a run before: measured again as it is
        print(f"[{n}] the store kept in {store}", file=sys.stderr)
    else:
        shutil.rmtree(store, ignore_errors=True)
        t = time.perf_counter()
        row["held"] = write_store(store, n, shape=shape, real=real, encoder=encoder)
        row["write_s"] = round(time.perf_counter() - t, 1)
        print(f"[{n}] store written in {row['write_s']} s", file=sys.stderr)
    row["build"] = run_step("build", str(store))
    print(f"[{n}] build {row['build']['seconds']} s, {row['build']['process_peak_rss_mb']} MB", file=sys.stderr)
    m = json.loads((store / "manifest.json").read_text())
    row["disk_bytes_per_track"] = round(disk_bytes(store) / n)
    row["index_bytes_per_track"] = round(m["index"]["bytes"] / n)
    row["commit_one"] = [run_step("commit_one", str(store)) for _ in range(2)]
    print(f"[{n}] commit one {[c['seconds'] for c in row['commit_one']]} s", file=sys.stderr)
    some_id = 7
    row["cold_by_id"] = cold_query(str(store), [str(some_id), "--id"])
    path = f"/music/{GENRES[some_id % 10]}/album{some_id // GROUP:06d}/track{some_id:07d}.flac"
    row["cold_by_path"] = cold_query(str(store), [path])
    for key in ("cold_by_id", "cold_by_path"):
        row[key].pop("output")
    print(f"[{n}] cold {row['cold_by_id']} {row['cold_by_path']}", file=sys.stderr)
    row["dupes"] = step_dupes(str(store), n)
    print(f"[{n}] dupes {row['dupes']}", file=sys.stderr)
    if real is not None:
        row["excerpts"] = bench_excerpts(store, real, workdir, clips)
        print(f"[{n}] excerpts {row['excerpts']}", file=sys.stderr)
    row["warm"] = run_step("warm", str(store), "--queries", str(queries))
    print(f"[{n}] warm {row['warm']}", file=sys.stderr)
    if not keep:
        shutil.rmtree(store, ignore_errors=True)
    return row


def step_dupes(store: str, n: int) -> dict:
    """``soundalike dupes`` as a new process: time, peak RSS, and the planted copies it found."""
    import re

    from scale_data import is_copy_row

    from soundalike.model.musicnn import COPY_THRESHOLDS

    whitened = json.loads((Path(store) / "manifest.json").read_text())["encoder"].get("transform") == "whiten"
    threshold = COPY_THRESHOLDS[("musicnn", "mean+std" if whitened else "mean")]  # the default's, now and before
    res = cold_query(store, ["--threshold", str(threshold), "--quiet"], reps=1, command="dupes")
    groups = json.loads(res.pop("output"))
    planted = 0
    for g in groups:
        rows = sorted(int(re.search(r"track(\d+)", t["path"]).group(1)) for t in g["tracks"] if "/music/" in t["path"])
        planted += len(rows) == 2 and rows[1] == rows[0] + 1 and bool(is_copy_row(rows[1]))
    return {**res, "groups": len(groups), "planted_found": int(planted), "planted": int(is_copy_row(np.arange(n)).sum())}


def make_clips(real: Path, folder: Path, count: int, seconds: float = 10.0, seed: int = 0) -> list[dict]:
    """``count`` clean clips of ``seconds``, cut at random offsets from the real store's tracks (where mostly no
    analysis window lies) and written as FLAC: ``[{"clip", "path"}]``."""
    import soundfile as sf

    from soundalike.catalog.store import Store
    from soundalike.model.audio import read_windows

    rows = [r for r in Store.open(real).tracks.select(["path", "duration_s"]).to_pylist()
            if (r["duration_s"] or 0) >= seconds + 6 and Path(r["path"]).is_file()]
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for i, r in enumerate(rng.choice(len(rows), size=min(count, len(rows)), replace=False)):
        path = rows[r]["path"]
        for _ in range(20):  # (a clip of silence has no song: another offset)
            y, sr = read_windows(path, [float(rng.uniform(0, rows[r]["duration_s"] - seconds))], seconds)
            if np.sqrt(np.mean(y**2)) > 1e-3:
                break
        clip = folder / f"clip{i:03d}.flac"
        sf.write(clip, y[0], sr)
        out.append({"clip": str(clip), "path": path})
    return out


def step_excerpts(store: str, clips_file: str) -> dict:
    """Every clip searched as a user's clip is (``Searcher.search_excerpt``, warm): its song's rank."""
    from soundalike.search.searcher import Searcher

    s = Searcher(store)
    ranks, times = [], []
    for c in json.loads(Path(clips_file).read_text()):
        t = time.perf_counter()
        found = [h.path for h in s.search_excerpt(c["clip"], k=10)]
        times.append(time.perf_counter() - t)
        ranks.append(found.index(c["path"]) if c["path"] in found else 99)
    r = np.asarray(ranks)
    return {"clips": len(r), "recall_at_1": round(float((r == 0).mean()), 3), "recall_at_10": round(float((r < 10).mean()), 3),
            "warm_p50_s": round(float(np.median(times)), 3), "ranks": r.tolist(), "peak_rss_mb": round(_rss_mb())}


def bench_excerpts(store: Path, real: Path, workdir: Path, clips: int) -> dict:
    """10 s clips of the real tracks, among the library and in their own store alone (paired), and a cold
    ``soundalike search CLIP`` in a new process."""
    clips_file = workdir / "clips.json"
    if not clips_file.is_file():
        clips_file.write_text(json.dumps(make_clips(real, workdir / "clips", clips)))
    out = {"library": run_step("excerpts", str(store), "--clips-file", str(clips_file)),
           "alone": run_step("excerpts", str(real), "--clips-file", str(clips_file))}
    both = np.asarray([out["library"]["ranks"], out["alone"]["ranks"]])
    out["recall_at_1_change"] = round(float((both[0] == 0).mean() - (both[1] == 0).mean()), 3)
    first = json.loads(clips_file.read_text())[0]["clip"]
    out["cold"] = cold_query(str(store), [first, "--excerpt"])
    out["cold"].pop("output")
    win = json.loads((store / "manifest.json").read_text())["windows"]
    files = [win[k] for k in ("file", "lists") if win.get(k)]
    out["index"] = {"kind": win["kind"], "windows": win["count"], "nprobe": win.get("nprobe"),
                    "recall_at_10": win.get("recall_at_10"), "bytes": sum((store / f).stat().st_size for f in files)}
    return out


def table(rows: list[dict]) -> str:
    lines = ["| tracks | shape, store | index | build s (of it r) / peak RSS | disk B/track | index B/track | "
             "commit one s / RSS | cold id / path s | warm p50 / p99 ms (cosine p50) | 10% filter p50 / p99 ms (cosine p50) | recall@10 (filtered) | "
             "NumPy p50 ms (same vectors / full) | scan bound ms |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        b, w, c = r["build"], r["warm"], r["commit_one"][-1]
        lines.append(
            f"| {r['tracks']:,} | {r['shape']}, {r.get('encoder', 'before')} | {b['index']['kind']} | "
            f"{b['seconds']} ({b.get('neighbours_s')}) / "
            f"{b['process_peak_rss_mb']} MB | {r['disk_bytes_per_track']} | {r['index_bytes_per_track']} | "
            f"{c['seconds']} / {c['process_peak_rss_mb']} MB | "
            f"{r['cold_by_id']['median_s']} / {r['cold_by_path']['median_s']} | {w['p50_ms']} / {w['p99_ms']} "
            f"({w.get('cosine_p50_ms')}) | {w['filtered_p50_ms']} / {w['filtered_p99_ms']} ({w.get('cosine_filtered_p50_ms')}) | "
            f"{w['recall_at_10']} ({w['filtered_recall_at_10']}) | "
            f"{w.get('numpy_index_space_p50_ms', '-')} / {w.get('numpy_full_raw_p50_ms', '-')} | {w['full_scan_bound_ms']} |")
    lines += ["", "| tracks | shape, store | dupes s / peak RSS | groups | planted copies found |",
              "|---|---|---|---|---|"]
    for r in rows:
        d = r["dupes"]
        lines.append(f"| {r['tracks']:,} | {r['shape']}, {r.get('encoder', 'before')} | {d['median_s']} / "
                     f"{d['peak_rss_mb']} MB | {d['groups']} | {d['planted_found']} of {d['planted']} |")
    ex = [r for r in rows if r.get("excerpts")]
    if ex:
        lines += ["", "| tracks | window index | windows | on disk | recall@1 / @10 of clips (alone) | cold CLIP s / RSS | "
                  "warm s |", "|---|---|---|---|---|---|---|"]
        for r in ex:
            e = r["excerpts"]
            lib, alone = e["library"], e["alone"]
            lines.append(f"| {r['tracks']:,} | {e['index']['kind']} (nprobe {e['index']['nprobe']}) | {e['index']['windows']:,} | "
                         f"{e['index']['bytes'] / 1e9:.2f} GB | {lib['recall_at_1']} / {lib['recall_at_10']} "
                         f"({alone['recall_at_1']} / {alone['recall_at_10']}) | {e['cold']['median_s']} / "
                         f"{e['cold']['peak_rss_mb']} MB | {lib['warm_p50_s']} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="*", default=[10_000, 100_000])
    ap.add_argument("--million", action="store_true", help="add 1,000,000 tracks (about 8 GB of shards, ~20 min)")
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--workdir", type=Path, default=None, help="where the stores go (default: a temporary folder)")
    ap.add_argument("--keep", action="store_true", help="keep the stores")
    ap.add_argument("--json", type=Path, help="also write the figures here")
    ap.add_argument("--shape", choices=SHAPES, nargs="+", default=["music"],
                    help="the track vectors' spectrum: the dev corpus's, and/or a flatter one with a noise floor")
    ap.add_argument("--real", type=Path, help="a store of real music indexed with windows (the default encoder): "
                    "its tracks go into each library, every track gets windows with its windows' statistics, and "
                    "10 s clips of its songs are searched among them")
    ap.add_argument("--clips", type=int, default=100, help="clips searched with --real")
    ap.add_argument("--encoder", choices=ENCODERS, nargs="+", default=["whiten"],
                    help="the default's stores (whiten: mean and spread, whitened within tracks) and/or the "
                    "default's before (before: the mean, standardised, CSLS)")
    ap.add_argument("--step", help=argparse.SUPPRESS)
    ap.add_argument("--store", help=argparse.SUPPRESS)
    ap.add_argument("--clips-file", dest="clips_file", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.step:
        fn = {"build": lambda: step_build(args.store), "commit_one": lambda: step_commit_one(args.store),
              "warm": lambda: step_warm(args.store, args.queries),
              "excerpts": lambda: step_excerpts(args.store, args.clips_file)}[args.step]
        print(json.dumps(fn()))
        return
    sizes = args.sizes + ([1_000_000] if args.million else [])
    work = args.workdir or Path(tempfile.mkdtemp(prefix="soundalike-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    rows = []
    try:
        for encoder in args.encoder:
            for shape in args.shape:
                for n in sizes:
                    rows.append(bench(n, args.queries, work, args.keep, shape, args.real, args.clips, encoder))
    finally:
        if args.workdir is None and not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, window width {DIM}, one query thread")
    print(table(rows))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
