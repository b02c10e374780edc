"""Incremental commits: the index is updated in place with a frozen library transform, so scores hold between
refits; it answers exactly like an index rebuilt from the same shards; the transform is refitted by the growth
rule or by `reindex --refit`."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from soundalike.catalog.check import reindex, verify
from soundalike.catalog.store import REFIT_GROWTH, Store, StoreWriter, read_manifest
from soundalike.catalog.track import Track
from soundalike.cli import main
from soundalike.search.searcher import Searcher

ENC = {"name": "test", "fingerprint": "fp-inc", "dim": 16, "transform": "standardize"}


def grow(store, n, rng, *, centre=0.0) -> list[int]:
    ids = []
    with StoreWriter(store, encoder=ENC) as w:
        for _ in range(n):
            path = f"/music/{rng.integers(1 << 40)}.flac"
            i = w.id_for(path)
            w.put(Track(id=i, path=path, size=1, mtime=1.0), centre + rng.standard_normal(16))
            ids.append(i)
        w.commit()
    return ids


def answers(store, queries, k=10):
    s = Searcher(store)
    return [[(h.id, round(h.score, 5)) for h in s.search_id(q, k=k)] for q in queries]


def test_adding_tracks_updates_the_index_in_place_and_old_scores_hold(tmp_path, rng):
    store = tmp_path / "s.soundalike"
    old = grow(store, 100, rng)
    fitted = read_manifest(store)["transform"]
    before = {q: dict(a) for q, a in zip(old[:10], answers(store, old[:10], k=99))}
    grow(store, 20, rng, centre=3.0)  # far from the others: a refit would move every score
    m = read_manifest(store)
    assert m["transform"] == fitted and m["index"]["updates"] == 1 and m["index"]["count"] == 120
    after = answers(store, old[:10], k=119)
    for q, hits in zip(old[:10], after):
        assert {i: s for i, s in hits if i in before[q]} == before[q]  # every old pair scores as before
    # the updated index answers exactly like one rebuilt from the same shards with the same transform
    queries = old[:5] + [m["next_id"] - 1]
    incremental = answers(store, queries)
    reindex(store)
    assert read_manifest(store)["transform"] == fitted and read_manifest(store)["index"]["updates"] == 0
    assert answers(store, queries) == incremental
    assert verify(store)["ok"]


def test_removed_and_re_embedded_tracks_leave_and_enter_the_index(tmp_path, rng):
    store = tmp_path / "s.soundalike"
    ids = grow(store, 60, rng)
    with StoreWriter(store, encoder=ENC) as w:
        for i in ids[:5]:
            w.remove(i)
        known = {r["id"]: r for r in w.known().values()}
        for i in ids[5:10]:  # the same files, changed: new vectors under the same ids
            w.put(Track(id=i, path=known[i]["path"], size=2, mtime=2.0), 5 + rng.standard_normal(16))
        w.commit()
    m = read_manifest(store)
    assert m["index"]["updates"] == 1 and m["index"]["count"] == 55
    s = Store.open(store)
    index = s.index()
    live_ids, raw = s.vectors()
    assert sorted(live_ids.tolist()) == sorted(ids[5:])
    got = np.stack([index.reconstruct(int(i)) for i in live_ids])
    np.testing.assert_allclose(got, s.transform()(raw), atol=0.01)  # the new vectors (to their 8-bit codes), not the old
    incremental = answers(store, ids[5:15])
    reindex(store)
    assert answers(store, ids[5:15]) == incremental


def test_the_transform_is_refitted_when_the_library_has_grown_by_half(tmp_path, rng):
    store = tmp_path / "s.soundalike"
    grow(store, 40, rng)
    assert read_manifest(store)["transform"]["fitted_on"] == 40
    grow(store, int(40 * REFIT_GROWTH) - 41, rng)  # one short of the rule
    assert read_manifest(store)["transform"]["fitted_on"] == 40
    grow(store, 1, rng)
    m = read_manifest(store)
    assert m["transform"]["fitted_on"] == int(40 * REFIT_GROWTH) and m["index"]["updates"] == 0
    out = CliRunner().invoke(main, ["info", "--db", str(store)])
    assert f"fitted on {int(40 * REFIT_GROWTH)} tracks" in out.output and "reaches 90 tracks" in out.output


def test_reindex_refit_from_the_command_line(tmp_path, rng):
    store = tmp_path / "s.soundalike"
    ids = grow(store, 50, rng)
    grow(store, 10, rng, centre=2.0)
    before = answers(store, ids[:3])
    res = CliRunner().invoke(main, ["reindex", "--db", str(store), "--refit", "--json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.output)
    assert out["refit"] and out["transform"]["fitted_on"] == 60 and out["vectors"] == 60
    assert answers(store, ids[:3]) != before  # a refit moves scores, on purpose
    res = CliRunner().invoke(main, ["reindex", "--db", str(tmp_path / "nothing")])
    assert res.exit_code == 2 and "not a soundalike store" in res.output


def test_a_store_of_the_previous_format_is_rebuilt_once_then_updated(tmp_path, rng):
    store = tmp_path / "s.soundalike"
    grow(store, 30, rng)
    m = json.loads((store / "manifest.json").read_text())
    for key in ("shards_indexed", "built", "updates"):  # what an index of the previous format lacks
        del m["index"][key]
    del m["transform"]["generation"]
    (store / "manifest.json").write_text(json.dumps(m))
    ids = grow(store, 5, rng)
    m = read_manifest(store)
    assert m["index"]["updates"] == 0 and m["index"]["count"] == 35  # rebuilt from the shards, no audio
    grow(store, 5, rng)
    assert read_manifest(store)["index"]["updates"] == 1 and Store.open(store).index().ntotal == 40
    assert len(Searcher(store).search_id(ids[0], k=5)) == 5


@pytest.fixture
def rng():
    return np.random.default_rng(3)
