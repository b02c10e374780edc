"""Hub-aware ranking (CSLS, ``catalog.neighbours``): a planted hub stops taking a place in everyone's top ten,
search returns exactly the CSLS order computed another way (NumPy over the index's own vectors, filters
included), each track's neighbourhood is kept up to date commit by commit, and stores of other encoders rank by
plain cosine as before."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from soundalike.catalog.store import Store, StoreWriter
from soundalike.catalog.track import Track
from soundalike.search.searcher import Searcher

ENC = {"name": "synthetic", "fingerprint": "synthetic-hubs", "dim": 24, "labels": [], "transform": "standardize",
       "rescore": "csls"}
GENRES = ["rock", "jazz", "folk"]


def library(rng, groups: int = 12, per: int = 15, dim: int = 24, hubs: int = 3) -> np.ndarray:
    """Groups of tracks around their own centres, all sharing one component (as real features share a mean),
    and ``hubs`` tracks planted at that shared component alone (the last rows): nearer to every track than most
    of its own group is, and nobody's true neighbour."""
    shared = np.full(dim, np.sqrt(1.0 / dim))
    centres = rng.standard_normal((groups, dim)) * np.sqrt(1.0 / dim)
    x = shared + np.repeat(centres, per, axis=0) + rng.standard_normal((groups * per, dim)) * np.sqrt(2.0 / dim)
    return np.vstack([x, shared + rng.standard_normal((hubs, dim)) * 0.02]).astype(np.float32)


def write(store: Path, raw: np.ndarray, *, start: int = 0, encoder: dict = ENC, refit: bool = False) -> None:
    with StoreWriter(store, encoder=encoder) as w:
        for j in range(start, len(raw)):
            p = f"/music/{j:04d}.flac"
            w.put(Track(id=w.id_for(p), path=p, size=1, mtime=1.0, genre=GENRES[j % 3]), raw[j])
        w.commit(refit=refit)


def index_space(store: Path) -> tuple[np.ndarray, np.ndarray]:
    s = Store(store)
    ids = np.sort(s.index().ids())
    return ids, np.stack([s.index().reconstruct(int(i)) for i in ids])


def csls_scores(v: np.ndarray, r: np.ndarray, q: int, allowed=None) -> np.ndarray:
    """CSLS of every track for query row ``q`` by NumPy, less the query's constant: cos - r/2 (itself and
    tracks not ``allowed`` at -inf)."""
    score = v @ v[q] - r / 2
    score[q] = -np.inf
    if allowed is not None:
        score[~allowed] = -np.inf
    return score


def hub_store(store: Path) -> tuple[np.ndarray, set[int]]:
    """A store of :func:`library` (no library transform: standardising would take the shared component away,
    and the planted hubs with it): its raw vectors and the hubs' ids."""
    raw = library(np.random.default_rng(3))
    write(store, raw, encoder={**ENC, "transform": None, "fingerprint": "raw-hubs"})
    return raw, set(range(len(raw) - 3, len(raw)))


def test_a_planted_hub_stops_taking_a_place_in_everyones_top_ten(tmp_path):
    store = tmp_path / "hubs.soundalike"
    raw, hubs = hub_store(store)
    plain, csls = Searcher(store, rescore=False), Searcher(store)
    queries = [i for i in range(len(raw)) if i not in hubs]
    in_plain = sum(bool(hubs & {h.id for h in plain.search_id(i, k=10, collapse=False)}) for i in queries)
    in_csls = sum(bool(hubs & {h.id for h in csls.search_id(i, k=10, collapse=False)}) for i in queries)
    # by cosine the hubs crowd a third of all top tens; by CSLS far fewer
    assert in_plain > 0.3 * len(queries)
    assert in_csls < 0.5 * in_plain
    # and the groups find each other at least as well
    group = np.arange(len(raw)) // 15

    def precision(searcher):
        return np.mean([np.mean([group[h.id] == group[i] for h in searcher.search_id(i, k=10, collapse=False)])
                        for i in queries])

    assert precision(csls) >= precision(plain)


def test_search_returns_the_exact_csls_order_with_and_without_filters(tmp_path):
    rng = np.random.default_rng(5)
    raw = library(rng)
    store = tmp_path / "exact.soundalike"
    write(store, raw)
    ids, v = index_space(store)
    searcher = Searcher(store)
    r = Store(store).neighbourhoods().of(ids)
    genre = np.asarray([GENRES[j % 3] for j in range(len(raw))])
    position = {int(i): j for j, i in enumerate(ids)}
    for q in (0, 17, 60, 121):
        for allowed, genres in ((None, None), (genre == "jazz", ["jazz"])):
            hits = searcher.search_id(int(ids[q]), k=10, genres=genres, collapse=False)
            want = csls_scores(v, r, q, allowed)
            got = want[[position[h.id] for h in hits]]
            # the k best by CSLS, best first (to float rounding between FAISS and NumPy)
            np.testing.assert_allclose(got, np.sort(want)[::-1][:10], atol=1e-5)
            # the score shown is still the cosine
            np.testing.assert_allclose([h.score for h in hits], v[[position[h.id] for h in hits]] @ v[q], atol=1e-4)


def test_neighbourhoods_follow_the_library_commit_by_commit(tmp_path):
    rng = np.random.default_rng(7)
    raw = library(rng, groups=10, per=12)
    store = tmp_path / "grow.soundalike"
    write(store, raw[:100])
    first = Store(store).manifest["neighbours"]
    assert first["tracks"] == 100 and first["k"] == 10
    write(store, raw, start=100)  # 23 more: theirs computed, the transform (and everyone else's) frozen
    s = Store(store)
    rec = s.manifest["neighbours"]
    assert rec["tracks"] == len(raw) and rec["recomputed"] == first["recomputed"]
    r = s.neighbourhoods().of(np.arange(len(raw)))
    assert np.isfinite(r).all()
    ids, v = index_space(store)
    sims = v @ v.T
    np.fill_diagonal(sims, -np.inf)
    exact = np.sort(sims, axis=1)[:, -10:].mean(axis=1)
    # the new tracks' r is exact against the library they joined (float16)
    np.testing.assert_allclose(r[100:], exact[100:], atol=2e-3)
    # a refit computes everyone's again, against the whole library
    write(store, raw, start=len(raw), refit=True)
    s = Store(store)
    assert s.manifest["neighbours"]["recomputed"] == s.generation
    ids, v = index_space(store)
    sims = v @ v.T
    np.fill_diagonal(sims, -np.inf)
    np.testing.assert_allclose(s.neighbourhoods().of(ids), np.sort(sims, axis=1)[:, -10:].mean(axis=1), atol=2e-3)
    # a removed track keeps nothing, and the store still answers
    with StoreWriter(store, encoder=ENC) as w:
        w.remove(0)
        w.commit()
    s = Store(store)
    assert s.manifest["neighbours"]["tracks"] == len(raw) - 1
    assert 0 not in {h.id for h in Searcher(store).search_id(1, k=20)}


def test_stores_of_encoders_without_the_rescoring_rank_by_cosine(tmp_path):
    rng = np.random.default_rng(9)
    raw = library(rng)
    store = tmp_path / "plain.soundalike"
    write(store, raw, encoder={**ENC, "rescore": None, "fingerprint": "plain"})
    s = Store(store)
    assert "neighbours" not in s.manifest and s.neighbourhoods() is None
    ids, v = index_space(store)
    hits = Searcher(store).search_id(int(ids[4]), k=10, collapse=False)
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    order = np.argsort(-(v @ v[4]), kind="stable")
    assert [h.id for h in hits] == [int(ids[j]) for j in order if j != 4][:10]


def test_the_command_line_ranks_by_csls_unless_asked_for_cosine_and_info_says_so(tmp_path):
    import json

    from click.testing import CliRunner

    from soundalike.cli import main

    store = tmp_path / "cli.soundalike"
    raw, hubs = hub_store(store)
    runner = CliRunner()

    def hub_places(*extra):
        n = 0
        for q in range(0, len(raw) - 3, 7):
            res = runner.invoke(main, ["search", "--id", str(q), "--db", str(store), "--json", "--keep-copies", *extra])
            assert res.exit_code == 0, res.output
            n += len(hubs & {h["id"] for h in json.loads(res.output)})
        return n

    assert hub_places("--cosine") > 2 * hub_places()
    res = runner.invoke(main, ["info", "--db", str(store)])
    assert res.exit_code == 0 and "CSLS" in res.output and f"known for {len(raw)} tracks" in res.output


def test_a_library_on_inverted_lists_gets_its_neighbourhoods_and_ranks_by_them(tmp_path):
    from soundalike.catalog.indexes import Policy

    rng = np.random.default_rng(11)
    raw = library(rng, groups=60, per=40, dim=24)  # 2,403 tracks: enough for inverted lists
    store = tmp_path / "ivf.soundalike"
    with StoreWriter(store, encoder=ENC, index_policy=Policy(kind="ivf")) as w:
        for j in range(len(raw)):
            p = f"/music/{j:05d}.flac"
            w.put(Track(id=w.id_for(p), path=p, size=1, mtime=1.0, genre=GENRES[j % 3]), raw[j])
        w.commit()
    s = Store(store)
    assert s.index().is_ivf and s.manifest["neighbours"]["tracks"] == len(raw)
    ids, v = index_space(store)
    sims = v @ v.T
    np.fill_diagonal(sims, -np.inf)
    exact = np.sort(sims, axis=1)[:, -10:].mean(axis=1)
    got = s.neighbourhoods().of(ids)
    # as deep as search probes: a near neighbour missed now and then (r a little low), never a far one taken for
    # it (to the codes' and float16's rounding)
    assert np.all(got <= exact + 5e-3) and abs(np.median(exact - got)) < 0.005
    hits = Searcher(store).search_id(int(ids[5]), k=10, collapse=False)
    assert len(hits) == 10 and int(ids[5]) not in {h.id for h in hits}
