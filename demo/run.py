"""The built-in demo: synthesise a library, train the seed CNN on part of it, index all of it, search it.

Everything happens under one work folder (default ``./soundalike-demo``)::

    library/<style>/*.mp3|flac|ogg   the synthetic library, tagged (genre = style)
    train/<style>/                   links to the tracks the CNN is trained on (two thirds of each style)
    model.keras, model.json          the trained seed CNN
    library.soundalike/              the store built with the seed CNN
    library-musicnn.soundalike/      the store built with the pretrained musicnn (no training)
"""

from __future__ import annotations

import os
import shutil
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

import numpy as np

MARKER = ".soundalike-demo"


def _fresh_workdir(workdir: Path) -> None:
    if workdir.exists() and any(workdir.iterdir()) and not (workdir / MARKER).exists():
        from ..indexer.run import IndexingError

        raise IndexingError(f"{workdir}: exists and was not made by the demo; choose another --dir")
    for name in ("library", "train", "library.soundalike", "library-musicnn.soundalike", "model.keras", "model.json"):
        p = workdir / name
        if p.is_dir():
            shutil.rmtree(p)
        elif p.exists():
            p.unlink()
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / MARKER).write_text("made by 'soundalike demo'; safe to delete\n")


def _link(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.symlink(src.resolve(), dst)
    except OSError:
        shutil.copy2(src, dst)


def _evaluate(searcher, held_out, k):
    """Same-style share of each held-out track's ``k`` neighbours; also the first query of each style."""
    shares, per_style, examples, latencies = [], defaultdict(list), {}, []
    for tr in held_out:
        track_id = searcher.id_for_path(tr.path)
        if track_id is None:
            continue
        t = time.perf_counter()
        hits = searcher.search_id(track_id, k=k)
        latencies.append(time.perf_counter() - t)
        share = float(np.mean([h.genre == tr.style for h in hits])) if hits else 0.0
        shares.append(share)
        per_style[tr.style].append(share)
        examples.setdefault(tr.style, (tr, hits))
    return shares, per_style, examples, latencies


def run_demo(
    workdir: str | os.PathLike = "soundalike-demo",
    *,
    per_style: int = 16,
    seconds: float = 20.0,
    epochs: int = 25,
    k: int = 5,
    echo: Callable[[str], None] = print,
) -> dict:
    """Run the whole demo and return its summary (also printed through ``echo``)."""
    from ..demo.synth import STYLES, write_library
    from ..indexer.run import index_library
    from ..model.train import train_seed
    from ..search.searcher import Searcher

    t_all = time.perf_counter()
    workdir = Path(workdir)
    _fresh_workdir(workdir)
    timings = {}

    t = time.perf_counter()
    echo(f"1/4 synthesising {len(STYLES)} styles x {per_style} tracks of {seconds:.0f}s ({', '.join(STYLES)}) ...")
    tracks = write_library(workdir / "library", per_style=per_style, duration_s=seconds)
    timings["synthesise_s"] = time.perf_counter() - t

    by_style, train_paths, held_out = _split(tracks, workdir / "train")

    t = time.perf_counter()
    echo(f"2/4 training the seed CNN on {len(train_paths)} tracks (held out from training: {len(held_out)}) ...")
    model_path = workdir / "model.keras"
    res = train_seed(workdir / "train", model_path, epochs=epochs, progress=False, log=echo)
    timings["train_s"] = time.perf_counter() - t
    acc = res.val_track_accuracy
    test_acc = res.test_track_accuracy
    echo(f"    {len(res.history.get('loss', []))} epochs, track accuracy: validation "
         f"{'n/a' if acc is None else f'{acc:.2f}'}, test {'n/a' if test_acc is None else f'{test_acc:.2f}'} "
         f"({timings['train_s']:.0f}s)")

    echo(f"3/4 indexing all {len(tracks)} tracks with the seed CNN, and with the pretrained musicnn (no training) ...")
    stores = {"seed CNN": workdir / "library.soundalike", "musicnn": workdir / "library-musicnn.soundalike"}
    for (label, store), model in zip(stores.items(), (model_path, "musicnn")):
        t = time.perf_counter()
        report = index_library(workdir / "library", store, model=model, progress=False, log=echo)
        timings[f"index_{label.replace(' ', '_').lower()}_s"] = time.perf_counter() - t
        echo(f"    {label}: added {report.added}, failed {report.failed} ({time.perf_counter() - t:.0f}s)")

    echo(f"4/4 searching: each held-out track asks for its {k} nearest neighbours in the whole library")
    results = {label: _evaluate(Searcher(store), held_out, k) for label, store in stores.items()}
    shares, per_style_share, examples, latencies = results["seed CNN"]
    for style, (tr, hits) in examples.items():
        echo(f"\n  query: {tr.title} by {tr.artist} [{style}]  (seed CNN)")
        for i, h in enumerate(hits, 1):
            echo(f"   {i}. {h.score:.3f}  {h.title:<28.28} {h.artist or '':<18.18} {h.genre}")
    chance = float(np.mean([(len(by_style[tr.style]) - 1) / (len(tracks) - 1) for tr in held_out])) if held_out else 0.0
    summary = {
        "workdir": str(workdir.resolve()),
        "styles": list(by_style),
        "tracks": len(tracks),
        "train_tracks": len(train_paths),
        "held_out_queries": len(shares),
        "k": k,
        "same_style_share": float(np.mean(shares)) if shares else 0.0,
        "chance": chance,
        "val_track_accuracy": acc,
        "test_track_accuracy": res.test_track_accuracy,
        "query_ms_p50": 1000 * float(np.median(latencies)) if latencies else None,
        "timings_s": {k_: round(v, 1) for k_, v in timings.items()},
    }
    summary["encoders"] = {label: {"same_style_share": float(np.mean(r[0])) if r[0] else 0.0,
                                   "by_style": {s_: float(np.mean(v)) for s_, v in r[1].items()}}
                           for label, r in results.items()}
    summary["timings_s"]["total_s"] = round(time.perf_counter() - t_all, 1)
    _report(summary, stores, (held_out[0] if held_out else tracks[0]).path, echo)
    return summary


def _split(tracks, train_dir: Path):
    """Tracks by style, and two thirds of each style (at least 2) linked into ``train_dir`` as a
    folder-per-style dataset: ``(by_style, train_paths, held_out)``."""
    by_style = defaultdict(list)
    for tr in tracks:
        by_style[tr.style].append(tr)
    train_paths, held_out = set(), []
    for style, items in by_style.items():
        n_train = max(2, (2 * len(items)) // 3)
        for tr in items[:n_train]:
            _link(tr.path, train_dir / style / tr.path.name)
            train_paths.add(str(tr.path.resolve()))
        held_out += items[n_train:]
    return by_style, train_paths, held_out


def _report(summary: dict, stores: dict, first: Path, echo: Callable[[str], None]) -> None:
    """The summary's closing lines: each encoder's share of same-style neighbours, and what to try next."""
    k, chance = summary["k"], summary["chance"]
    echo(f"\nshare of the {k} nearest neighbours in the query's style (held-out queries; chance {chance:.2f}):")
    for label, r in summary["encoders"].items():
        echo(f"  {label:<9} {r['same_style_share']:.2f}   " + ", ".join(f"{s_} {v:.2f}" for s_, v in r["by_style"].items()))
    echo(f"library-track query (stored vector, no model): {summary['query_ms_p50']:.2f} ms median; "
         f"demo total {summary['timings_s']['total_s']:.0f}s")
    seed_store, musicnn_store = stores.values()
    echo(f"\ntry it yourself:\n  soundalike search '{first}' --db {seed_store}\n"
         f"  soundalike search '{first}' --db {musicnn_store}\n  soundalike info --db {musicnn_store}\n"
         f"  soundalike serve --db {musicnn_store}     # then open http://127.0.0.1:8731/")
