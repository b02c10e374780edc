"""The compact track index: every kind answers like exact search within the recall it records, filters
work inside FAISS and return k when k exist, rebuilds from the shards agree with incremental updates, and a
store of the first format opens without re-embedding anything."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from soundalike.catalog import indexes
from soundalike.catalog.check import reindex, verify
from soundalike.catalog.indexes import IndexBuildError, Policy, parse_memory
from soundalike.catalog.layout import VERSION
from soundalike.catalog.store import Store, StoreWriter, read_manifest
from soundalike.catalog.track import Track
from soundalike.cli import main
from soundalike.search.searcher import Searcher

GOLDEN = Path(__file__).resolve().parents[1] / "golden"
GENRES = ["rock", "jazz", "folk", "ambient", "metal", "pop", "soul", "blues", "dub", "rare"]


def clustered(n: int, dim: int, rng, clusters: int = 40) -> tuple[np.ndarray, np.ndarray]:
    """Raw vectors in clusters with a decaying spectrum (like real features: a few strong directions), and a
    cluster label for each."""
    scale = 1.0 / np.sqrt(1 + np.arange(dim))
    centres = rng.standard_normal((clusters, dim)) * scale * 3
    labels = rng.integers(0, clusters, n)
    x = centres[labels] + rng.standard_normal((n, dim)) * scale + 5.0
    return x.astype(np.float32), labels


def make_store(path: Path, raw: np.ndarray, *, policy: Policy | None = None, enc_dim: int | None = None,
               commits: int = 1, genre_of=None) -> list[int]:
    enc = {"name": "synthetic", "fingerprint": "synthetic-1", "dim": enc_dim or raw.shape[1], "labels": [],
           "transform": "standardize"}
    ids = []
    cut = np.linspace(0, len(raw), commits + 1).astype(int)
    for c in range(commits):
        with StoreWriter(path, encoder=enc, index_policy=policy) as w:
            for j in range(cut[c], cut[c + 1]):
                p = f"/m/{j:06d}.flac"
                genre = genre_of(j) if genre_of else GENRES[j % 9]
                t = Track(id=w.id_for(p), path=p, size=1, mtime=1.0, genre=genre, artist=f"a{j % 50}")
                w.put(t, raw[j])
                ids.append(t.id)
            w.commit()
    return ids


def exact_top(raw: np.ndarray, ids: np.ndarray, q: int, k: int, allowed: np.ndarray | None = None) -> list[int]:
    mean, std = raw.mean(0), raw.std(0)
    z = (raw - mean) / std
    u = z / np.linalg.norm(z, axis=1, keepdims=True)
    s = u @ u[q]
    s[q] = -np.inf
    if allowed is not None:
        s[~allowed] = -np.inf
    return [int(ids[i]) for i in np.argsort(-s)[:k] if np.isfinite(s[i])]


def test_golden_store_of_the_first_format_opens_and_answers_as_it_did(tmp_path):
    store = tmp_path / "old.soundalike"
    shutil.copytree(GOLDEN / "store_v1.soundalike", store)
    expected = json.loads((GOLDEN / "store_v1.json").read_text())
    assert read_manifest(store)["version"] == 1
    s = Searcher(store)
    for q in ("0", "5", "33"):
        got = [[h.id, h.score] for h in s.search_id(int(q), k=5)]
        assert [i for i, _ in got] == [i for i, _ in expected[q]]
        np.testing.assert_allclose([sc for _, sc in got], [sc for _, sc in expected[q]], atol=1e-5)
    assert [h.id for h in s.search_id(1, k=5, genres=["rock"])] == expected["rock:1"]
    # its next commit (no audio: the shards hold the vectors) moves it to the compact format, same transform
    m = read_manifest(store)
    with StoreWriter(store, encoder=m["encoder"]) as w:
        w.commit()
    m = read_manifest(store)
    assert m["index"]["kind"].startswith("Center,LT24,L2norm") and m["transform"]["fitted_on"] == 30  # not refitted
    assert m["version"] == VERSION
    assert verify(store)["ok"]
    s = Searcher(store)
    for q in ("0", "5", "33"):
        got = s.search_id(int(q), k=5)
        assert [h.id for h in got][:3] == [i for i, _ in expected[q]][:3]
        np.testing.assert_allclose([h.score for h in got], [sc for _, sc in expected[q]], atol=0.01)


@pytest.mark.parametrize("kind", ["flat", "ivf", "ivfpq"])
def test_every_kind_filters_inside_faiss_within_its_recorded_recall(tmp_path, kind):
    rng = np.random.default_rng(1)
    raw, _ = clustered(3000, 300, rng)
    store = tmp_path / f"{kind}.soundalike"
    ids = np.asarray(make_store(store, raw, policy=Policy(kind=kind)))
    record = read_manifest(store)["index"]
    info = Store(store).index_infos()  # what the build measured, in the infos file beside the index
    assert record["type"] == kind and record["count"] == 3000 and "recall_at_10" not in record
    assert 0.0 <= info["recall_at_10"] <= 1.0 and info["queries"] == indexes.RECALL_QUERIES
    assert record["width"] in indexes.PCA_WIDTHS  # fitted on 3000 tracks: the PCA is in
    s = Searcher(store)
    genres = np.asarray([GENRES[j % 9] for j in range(len(ids))])
    found, found_f, rec_f = [], [], []
    for q in range(0, 3000, 60):
        hits = s.search_id(int(ids[q]), k=10)
        assert len(hits) == 10 and int(ids[q]) not in [h.id for h in hits]
        found.append(len({h.id for h in hits} & set(exact_top(raw, ids, q, 10))) / 10)
        fh = s.search_id(int(ids[q]), k=10, genres=["jazz"])
        assert len(fh) == 10 and all(h.genre == "jazz" for h in fh)
        rec_f.append(len({h.id for h in fh} & set(exact_top(raw, ids, q, 10, genres == "jazz"))) / 10)
    # the recorded recall describes what a user gets, filtered or not (same sample size, some noise allowed)
    assert np.mean(found) >= info["recall_at_10"] - 0.1
    assert np.mean(rec_f) >= info["recall_filtered_at_10"] - 0.1
    if kind != "ivfpq":
        assert info["recall_at_10"] >= 0.8 and info["recall_filtered_at_10"] >= 0.8
    if kind != "flat":  # a filter's neighbours lie in more lists: never probed less deeply than unfiltered
        assert info["nprobe_filtered"] >= info["nprobe"]


def test_inverted_lists_probe_deep_enough_for_the_target_recall_on_other_queries():
    rng = np.random.default_rng(5)
    # albums of 20 in a decaying spectrum, as on real music (cf. benchmarks/scale.py): 8-bit codes can reach
    # the target, and the top ten are not a tie among a hundred equally near points
    lam = (1 + np.arange(128)) ** -1.45
    lam /= lam.sum()
    centres = rng.standard_normal((200, 128)) * np.sqrt(lam * 0.18)
    raw = (centres[np.arange(4000) // 20] + rng.standard_normal((4000, 128)) * np.sqrt(lam * 0.82)) * 30 + 5
    raw = raw.astype(np.float32)
    ids = np.arange(len(raw), dtype=np.int64)
    built = indexes.build(lambda: iter([(ids, raw)]), len(raw), raw.shape[1], transform_kind="standardize",
                          fitted=None, policy=Policy(kind="ivf"))
    info = built.info
    assert info["recall_exhaustive"] >= indexes.RECALL_TARGET + 0.02  # the codes can reach the target...
    assert info["nprobe"] < info["nlist"]  # ... without probing every list,
    assert info["recall_at_10"] >= indexes.RECALL_TARGET  # and the chosen depth reaches it with room to spare
    # what probing loses, measured against a scan of all the codes, is recorded beside it
    assert info["recall_at_10"] - 0.02 <= info["recall_codes_at_10"] < 1.0
    # queries the build did not measure get the same recall at that depth
    others = rng.choice(len(raw), 200, replace=False)
    unit = indexes.standardize(raw, built.fitted.mean, built.fitted.std)  # exact: full float, standardised
    _, got = built.index.search(built.index.embed(raw[others]), 11)
    truth = np.argsort(-(unit[others] @ unit.T), axis=1)[:, 1:11]
    found = np.asarray([[i for i in row if i != q][:10] for row, q in zip(got, others)])
    assert indexes.recall(found, truth) >= indexes.RECALL_TARGET - 0.01


def test_the_recall_bound_holds_back_for_the_spread_of_the_queries():
    truth = np.arange(100 * 10).reshape(100, 10)
    same = truth.copy()
    same[:, 9] = -1  # every query finds 9 of 10
    assert indexes.recall_bound(same, truth) == pytest.approx(0.9)
    spread = truth.copy()
    spread[::2, 8:] = -1  # half find 8, half find 10: the same mean, less certain
    assert indexes.recall(spread, truth) == pytest.approx(0.9)
    assert indexes.recall_bound(spread, truth) < 0.9 - 0.01
    # more queries, a tighter bound
    big_t, big_s = np.vstack([truth] * 4), np.vstack([spread] * 4)
    assert indexes.recall_bound(spread, truth) < indexes.recall_bound(big_s, big_t) < 0.9


def test_a_narrow_filter_on_inverted_lists_returns_k_when_k_exist(tmp_path):
    rng = np.random.default_rng(2)
    raw, labels = clustered(3000, 300, rng)
    # 12 "rare" tracks, all in one cluster far from most queries' lists
    rare = set(np.flatnonzero(labels == labels[0])[:12].tolist())
    store = tmp_path / "ivf.soundalike"
    ids = make_store(store, raw, policy=Policy(kind="ivf"), genre_of=lambda j: "rare" if j in rare else GENRES[j % 9])
    s = Searcher(store)
    far = next(j for j in range(3000) if labels[j] != labels[0])
    hits = s.search_id(ids[far], k=10, genres=["rare"])
    assert len(hits) == 10 and {h.genre for h in hits} == {"rare"}
    assert len(s.search_id(ids[far], k=50, genres=["rare"])) == 12  # all that exist


def test_ivf_grown_incrementally_answers_like_a_rebuild_from_the_shards(tmp_path):
    rng = np.random.default_rng(3)
    raw, _ = clustered(3000, 300, rng)
    store = tmp_path / "grown.soundalike"
    ids = make_store(store, raw[:2400], policy=Policy(kind="ivf"))
    more = make_store_more(store, raw[2400:])  # one more commit: updated in place
    m = read_manifest(store)
    assert m["index"]["updates"] == 1 and m["index"]["count"] == 3000
    queries = [*ids[:40:4], *more[:20:2]]

    def answers():
        # the same codes in the same lists: equal answers at any one nprobe (a rebuild measures its own nprobe
        # for its own size, so both are asked with the same one)
        s = Searcher(store)
        s.index.search_index.nprobe = 8
        return [[(h.id, round(h.score, 5)) for h in s.search_id(i, k=10)] for i in queries]

    before = answers()
    reindex(store)
    assert Store(store).index_infos()["nprobe"] >= 1
    assert answers() == before


def make_store_more(store: Path, raw: np.ndarray) -> list[int]:
    m = read_manifest(store)
    ids = []
    with StoreWriter(store, encoder=m["encoder"]) as w:
        base = len(w.known())
        for j, v in enumerate(raw):
            p = f"/more/{base + j:06d}.flac"
            t = Track(id=w.id_for(p), path=p, size=1, mtime=1.0, genre=GENRES[j % 9])
            w.put(t, v)
            ids.append(t.id)
        w.commit()
    return ids


def test_auto_moves_to_inverted_lists_past_the_memory_budget_and_info_shows_the_measurement(tmp_path):
    rng = np.random.default_rng(4)
    raw, _ = clustered(2500, 300, rng)
    store = tmp_path / "s.soundalike"
    make_store(store, raw)
    assert read_manifest(store)["index"]["type"] == "flat"
    runner = CliRunner()
    # 2500 tracks x (256 + 16) bytes do not fit in 500 kB: product-quantised codes that do
    res = runner.invoke(main, ["reindex", "--db", str(store), "--memory", "500k", "--json"])
    assert res.exit_code == 0, res.output
    info = read_manifest(store)["index"]
    assert info["type"] == "ivfpq" and info["policy"] == {"kind": "auto", "memory": 500 * 1024}
    assert info["kind"].endswith("PQ128")  # the largest code that fits: 2500 x (128 + 16) bytes < 500 kB
    out = runner.invoke(main, ["info", "--db", str(store)]).output
    assert "recall@10 against exact search" in out and "nprobe" in out and "bytes a track" in out
    # the policy sticks: the next commit keeps the kind
    make_store_more(store, raw[:10])
    assert read_manifest(store)["index"]["type"] == "ivfpq" and read_manifest(store)["index"]["updates"] == 1
    res = runner.invoke(main, ["reindex", "--db", str(store), "--memory", "lots"])
    assert res.exit_code == 2 and "--memory 'lots'" in res.output


def test_small_libraries_keep_every_dimension_in_float16_and_big_fits_compact():
    rng = np.random.default_rng(5)
    small, _ = clustered(50, 64, rng)
    fitted = indexes.fit("standardize", moments_of(small), small, 50)
    assert fitted.basis is None
    idx = indexes.empty(fitted, 64, "flat", small, 50)
    assert idx.describe() == "Center,LT64,L2norm,IDMap2,SQfp16" and idx.width == 64
    big, _ = clustered(2000, 300, rng)
    fitted = indexes.fit("standardize", moments_of(big), big, 2000)
    idx = indexes.empty(fitted, 300, "flat", big, 2000)
    assert idx.describe() == "Center,LT256,L2norm,IDMap2,SQ8"
    # an unmeasured value (NaN) is imputed with the library mean: the same vector as the mean itself
    row = big[0].copy()
    row[:10] = np.nan
    filled = big[0].copy()
    filled[:10] = fitted.mean[:10]
    np.testing.assert_allclose(idx.embed(row), idx.embed(filled), atol=1e-6)


def test_the_pca_keeps_as_many_dimensions_as_the_librarys_spectrum_asks_for_and_records_the_share():
    rng = np.random.default_rng(6)
    dim, n = 1100, 2500
    lam = (1 + np.arange(200)) ** -1.6
    basis = np.linalg.qr(rng.standard_normal((dim, 200)))[0].T
    steep = (rng.standard_normal((n, 200)) * np.sqrt(lam)) @ basis + rng.standard_normal((n, dim)) * 1e-4
    # the same, with a tenth of the variance spread evenly over every dimension: no few hundred hold it
    floor = steep / np.sqrt(lam.sum()) * np.sqrt(0.9) + rng.standard_normal((n, dim)) * np.sqrt(0.1 / dim)
    widths = {}
    for name, x in (("steep", steep), ("floor", floor)):
        x = (x * 10 + 3).astype(np.float32)
        fitted = indexes.fit("standardize", moments_of(x), x, n)
        widths[name] = (fitted.width, fitted.kept)
    assert widths["steep"][0] == min(indexes.PCA_WIDTHS) and widths["steep"][1] >= indexes.PCA_KEEP
    assert widths["floor"][0] > 512  # wider: 512 would keep too little of the floor
    assert widths["floor"][1] >= indexes.PCA_KEEP or widths["floor"][0] == max(indexes.PCA_WIDTHS)


def moments_of(x: np.ndarray) -> indexes.Moments:
    m = indexes.Moments(x.shape[1])
    m.add(x)
    return m


def test_memory_sizes_parse_and_bad_ones_are_one_line_errors():
    assert parse_memory("2G") == 2 << 30 and parse_memory("512m") == 512 << 20 and parse_memory("1000") == 1000
    assert parse_memory(None) is None
    for bad in ("lots", "-1G", "0"):
        with pytest.raises(IndexBuildError, match="--memory"):
            parse_memory(bad)
    with pytest.raises(IndexBuildError, match="unknown index kind"):
        Policy(kind="hnsw2")
    with pytest.raises(IndexBuildError, match="memory budget"):
        Policy(kind="ivfpq", memory=1000).pq_bytes(10_000, 256)


def test_streamed_rebuild_reads_each_live_vector_once_newest_first(tmp_path):
    from soundalike.catalog.shards import iter_latest

    rng = np.random.default_rng(6)
    raw, _ = clustered(300, 32, rng)
    store = tmp_path / "s.soundalike"
    ids = make_store(store, raw, commits=3)
    m = read_manifest(store)
    with StoreWriter(store, encoder=m["encoder"]) as w:  # re-embed 5, remove 5
        known = {r["id"]: r for r in w.known().values()}
        for i in ids[:5]:
            w.put(Track(id=i, path=known[i]["path"], size=2, mtime=2.0), np.full(32, 7.0, np.float32))
        for i in ids[5:10]:
            w.remove(i)
        w.checkpoint()
        w.commit()
    s = Store.open(store)
    live = np.asarray(ids[:5] + ids[10:])
    got = list(iter_latest(s.path, s.manifest["shards"], live, rows=64))
    seen = np.concatenate([g[0] for g in got])
    assert sorted(seen.tolist()) == sorted(live.tolist()) and len(seen) == len(set(seen.tolist()))
    vec = {int(i): v for g in got for i, v in zip(*g)}
    assert all(np.all(vec[i] == 7.0) for i in ids[:5])
    assert max(len(g[0]) for g in got) <= 64


@pytest.mark.parametrize("kind", ["flat", "ivf"])
def test_a_small_commit_writes_deltas_that_answer_like_the_folded_index(tmp_path, kind):
    """A commit that changes a few tracks of a big library writes a track part, a removal list, a delta index
    and a hidden list, not a new main index or table; searching main + delta answers exactly what the folded
    index answers; once the change passes DELTA_FRACTION everything is folded."""
    from soundalike.catalog.store import DELTA_FRACTION

    rng = np.random.default_rng(5)
    raw, _ = clustered(2500, 64, rng)
    store = tmp_path / f"{kind}.soundalike"
    ids = make_store(store, raw[:2400], policy=Policy(kind=kind))
    main_file = read_manifest(store)["index"]["file"]
    m0 = read_manifest(store)
    with StoreWriter(store, encoder=m0["encoder"]) as w:
        new = []
        for j in range(2400, 2410):  # ten new tracks
            p = f"/new/{j}.flac"
            t = Track(id=w.id_for(p), path=p, size=1, mtime=1.0, genre="jazz")
            w.put(t, raw[j])
            new.append(t.id)
        for i in ids[:5]:  # five removed
            w.remove(i)
        # one re-embedded (its file changed): the same id, a new vector
        p = "/m/000007.flac"
        assert w.id_for(p) == ids[7]
        w.put(Track(id=ids[7], path=p, size=2, mtime=2.0, genre="metal"), raw[2499])
        w.commit()
    m = read_manifest(store)
    assert m["index"]["file"] == main_file and m["index"]["delta"]["count"] == 11
    assert m["index"]["delta"]["hidden_count"] == 6 and m["index"]["count"] == 2400 - 5 + 10
    assert len(m["tracks"]) == 2 and m["tracks_removed"] and verify(store)["ok"]
    s = Searcher(store)
    assert len(s) == 2405 and s.hit(ids[7]).genre == "metal"
    with pytest.raises(Exception, match="no track"):
        s.search_id(ids[0])
    queries = [*ids[10:200:20], *new[:4], ids[7]]

    def answers(searcher, **kw):
        # asked at one nprobe (a rebuild measures its own for its own size)
        for part in (getattr(searcher.index, "main", searcher.index), getattr(searcher.index, "delta", None)):
            if part is not None and part.is_ivf:
                part.search_index.nprobe = 8
        searcher._nprobe_filtered = 8 if searcher.index.is_ivf else None
        return [[(h.id, round(h.score, 5)) for h in searcher.search_id(i, k=10, **kw)] for i in queries]

    before, before_jazz = answers(s), answers(s, genres=["jazz"])
    assert all(ids[0] not in [i for i, _ in a] for a in before)
    assert any(n in [i for i, _ in a] for a in before_jazz for n in new)  # the delta's tracks are found
    # a reader of the new generation, and the same store folded into one index: the same answers
    reindex(store)
    folded = read_manifest(store)
    assert "delta" not in folded["index"] and len(folded["tracks"]) == 1 and not folded.get("tracks_removed")
    s2 = Searcher(store)
    assert answers(s2) == before and answers(s2, genres=["jazz"]) == before_jazz

    # a change past DELTA_FRACTION of the library folds at once
    more = make_store_more(store, np.repeat(raw[:1], int(DELTA_FRACTION * 2405) + 2, axis=0))
    m = read_manifest(store)
    assert "delta" not in m["index"] and len(m["tracks"]) == 1 and m["index"]["count"] == 2405 + len(more)


def test_rows_checkpointed_by_a_writer_are_committed_once(tmp_path):
    """A writer that checkpoints, then commits, lists every track once (the checkpoint's part is not read back
    as committed rows beside the writer's own)."""
    rng = np.random.default_rng(6)
    raw, _ = clustered(30, 16, rng)
    store = tmp_path / "cp.soundalike"
    make_store(store, raw[:20])
    with StoreWriter(store, encoder=read_manifest(store)["encoder"]) as w:
        for j in range(20, 30):
            p = f"/m/{j:06d}.flac"
            w.put(Track(id=w.id_for(p), path=p, size=1, mtime=1.0, genre="jazz"), raw[j])
            if j == 24:
                w.checkpoint()
                assert len(w.known()) == 25
        w.commit()
    ids = Store(store).tracks.column("id").to_pylist()
    assert sorted(ids) == list(range(30)) and Store(store).index().ntotal == 30 and verify(store)["ok"]


def test_a_searcher_reads_its_own_generation_after_the_writer_collected_its_files(tmp_path):
    """Hit rows, paths and genres are read lazily: from the files a searcher holds open, so a searcher kept
    across several commits (a server) still answers, and from its own generation."""
    rng = np.random.default_rng(8)
    raw, _ = clustered(600, 16, rng)
    store = tmp_path / "kept.soundalike"
    make_store(store, raw[:200])
    first_table = read_manifest(store)["tracks"][0]
    s = Searcher(store)
    before = [(h.id, h.path, h.genre) for h in s.search_id(5, k=5)]
    for i in range(3):
        make_store_more(store, raw[200 + 100 * i : 300 + 100 * i])
    assert not (store / first_table).exists()  # collected by the writer
    assert [(h.id, h.path, h.genre) for h in s.search_id(5, k=5)] == before
    assert s.id_for_path(before[0][1]) == before[0][0] and len(s) == 200
    assert sum(s.genres().values()) == 200 and len(Searcher(store)) == 500


def test_several_seeds_find_their_group_better_than_one_seed(tmp_path):
    """``search A B C``: the centroid of the seeds. On groups whose members are far apart (one seed's
    neighbours are half strangers), seeds of one group find the rest of it more often than one seed does, and
    no seed is ever returned."""
    rng = np.random.default_rng(11)
    groups = np.repeat(np.arange(30), 20)
    centres = rng.standard_normal((30, 64))
    raw = (centres[groups] + rng.standard_normal((600, 64)) * 1.6).astype(np.float32)
    store = tmp_path / "seeds.soundalike"
    ids = np.asarray(make_store(store, raw))
    s = Searcher(store)
    one, many = [], []
    for g in range(30):
        seeds = ids[groups == g][:3]
        rest = set(ids[groups == g][3:].tolist())
        hits = s.search_seeds([str(i) for i in seeds], by_id=True, k=10)
        assert len(hits) == 10 and not {h.id for h in hits} & set(seeds.tolist())
        many.append(np.mean([h.id in rest for h in hits]))
        one.append(np.mean([np.mean([h.id in rest for h in s.search_id(int(q), k=10)]) for q in seeds]))
    assert np.mean(one) < 0.8  # single seeds are far from perfect here...
    assert np.mean(many) > np.mean(one) + 0.1  # ...and three together do clearly better
    # the CLI takes several queries the same way
    res = CliRunner().invoke(main, ["search", *map(str, ids[:3]), "--id", "--db", str(store), "-k", "4", "--json"])
    assert res.exit_code == 0, res.output
    assert [h["id"] for h in json.loads(res.output)] == [h.id for h in s.search_seeds(list(ids[:3]), by_id=True, k=4)]


def test_what_a_build_measured_lies_beside_the_index_and_follows_it_through_updates(tmp_path):
    rng = np.random.default_rng(8)
    raw, _ = clustered(1200, 120, rng)
    store = tmp_path / "s.soundalike"
    make_store(store, raw, policy=Policy(kind="ivf"))
    m = read_manifest(store)
    infos = Store(store).index_infos()
    assert m["index"]["infos"] in m["files"] and (store / m["index"]["infos"]).is_file()
    assert json.loads((store / m["index"]["infos"]).read_text()) == infos
    assert infos["recall_at_10"] >= 0.8 and infos["nprobe"] >= 1 and infos["measured_on"] == 1200
    assert not {"recall_at_10", "nprobe", "latency_ms", "fit_s"} & set(m["index"])  # the record is bookkeeping
    # updated in place (2.5% more tracks), then with deltas, the index keeps its build's measurements; three
    # commits later (files two generations old are gone) they are still there
    make_store_more(store, raw[:30] + 0.01)
    assert read_manifest(store)["index"]["updates"] == 1
    for _ in range(2):
        make_store_more(store, raw[:5] + 0.01)
    m2 = read_manifest(store)
    assert m2["index"]["delta"] and m2["index"]["infos"] == m["index"]["infos"]
    assert Store(store).index_infos() == infos and verify(store)["ok"]
    # a store written when the measurements lay in the record: read as they are, moved out by its next commit
    old = json.loads((store / "manifest.json").read_text())
    old["index"].update(infos)
    del old["index"]["infos"]
    del old["files"][m["index"]["infos"]]
    (store / "manifest.json").write_text(json.dumps(old))
    assert Store(store).index_infos() == infos
    make_store_more(store, raw[:5] + 0.02)
    m3 = read_manifest(store)
    assert "recall_at_10" not in m3["index"] and Store(store).index_infos() == infos and verify(store)["ok"]
    out = CliRunner().invoke(main, ["info", "--db", str(store), "--json"])
    assert json.loads(out.output)["index_infos"]["recall_at_10"] == infos["recall_at_10"]
