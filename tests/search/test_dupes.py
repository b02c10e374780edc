"""Copy detection without a store: which pairs are copies (cosine and duration), how pairs join into groups,
and which threshold a store's encoder gets. (``soundalike dupes`` on real audio: tests of the musicnn encoder; on a store: test_dupes_store.py.)"""

from __future__ import annotations

import numpy as np

from soundalike.search.dupes import (COPY_DURATION_S, EXACT_BELOW, Copies, close_pairs, durations_match, is_copy,
                                     threshold_for)


def test_a_copy_is_close_in_sound_and_in_length():
    assert is_copy(0.96, 200.0, 195.0, threshold=0.95)
    assert not is_copy(0.94, 200.0, 200.0, threshold=0.95)
    assert not is_copy(0.99, 200.0, 170.0, threshold=0.95)  # 30 s apart: another take, not a copy
    assert durations_match(10.0, 10.0 + COPY_DURATION_S)  # short tracks: at least 2 s of slack
    assert not durations_match(10.0, 10.0 + COPY_DURATION_S + 0.5)
    assert durations_match(None, 100.0) and durations_match(float("nan"), 3.0)  # unknown rules nothing out


def test_pairs_join_into_groups_through_shared_copies_largest_first():
    durations = {i: 180.0 for i in range(10)}
    durations[9] = 60.0
    c = Copies(0.95, durations)
    for i, j, s in [(1, 2, 0.99), (1, 7, 0.50),  # 1-2 copies; 7 too far in sound
                    (2, 3, 0.96), (2, 1, 0.99),  # 2-3: so 1, 2, 3 are one group, however it was reached
                    (5, 4, 0.97), (5, 5, 1.0),  # itself is never its own copy
                    (6, 9, 0.99)]:  # close in sound, a third the length: not a copy
        c.join(i, j, s)
    groups = c.groups()
    assert [g.ids for g in groups] == [[1, 2, 3], [4, 5]]
    assert groups[0].weakest == 0.96 and groups[1].weakest == 0.97
    assert Copies(0.95, durations).groups() == []


def test_the_threshold_is_what_the_store_recorded_for_its_encoder():
    assert threshold_for({"name": "anything", "copy_threshold": 0.9}) == 0.9
    assert threshold_for({"name": "never-measured"}) is None
    assert threshold_for(None) is None


def clustered_with_copies(rng, n: int, dim: int = 48, copies: int = 120, low: float = 0.95):
    """``n`` unit vectors in albums of 20 (a decaying spectrum, as music's), ``copies`` of them followed by a
    copy at cosine ``low``-0.995 (of one, two or three copies: a chain joins them); and the planted pairs."""
    lam = (1 + np.arange(dim)) ** -1.2
    centres = rng.standard_normal((n // 20 + 1, dim)) * np.sqrt(lam * 0.3)
    x = centres[np.arange(n) // 20] + rng.standard_normal((n, dim)) * np.sqrt(lam * 0.7)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    planted = set()
    for i in 10 * rng.choice(n // 10 - 1, size=copies, replace=False):  # (chains never overlap)
        for j in range(i + 1, i + 1 + int(rng.integers(1, 4))):
            target = rng.uniform(low, 0.995)  # the copy's cosine with the track before it
            noise = rng.standard_normal(dim)
            noise -= (noise @ x[j - 1]) * x[j - 1]
            x[j] = target * x[j - 1] + np.sqrt(1 - target**2) * noise / np.linalg.norm(noise)
            planted.add((j - 1, j))
    return x.astype(np.float32), planted


def pair_set(x, threshold, **kw):
    pairs = [(int(a), int(b)) for rows_a, rows_b, _ in close_pairs(x, threshold, **kw) for a, b in zip(rows_a, rows_b)]
    assert len(set(pairs)) == len(pairs) and all(a < b for a, b in pairs)  # each pair once, the lower row first
    return set(pairs)


def test_clusters_find_every_pair_the_full_comparison_finds():
    x, planted = clustered_with_copies(np.random.default_rng(5), EXACT_BELOW + 10_000)
    exact = pair_set(x, 0.94, exact=True)
    assert planted <= exact  # (and pairs of copies of one track, or chance neighbours, besides)
    assert pair_set(x, 0.94) == exact
    assert len(pair_set(x, 0.94, probes=1)) < len(exact)  # (its own cluster alone is not enough: the test can fail)


def test_the_full_comparison_gives_each_pair_once_with_its_score():
    x, planted = clustered_with_copies(np.random.default_rng(6), 3000, copies=30)
    got = {}
    for a, b, s in close_pairs(x, 0.94):
        for i, j, c in zip(a, b, s):
            assert (int(i), int(j)) not in got and i < j
            got[(int(i), int(j))] = float(c)
    sims = x @ x.T
    want = {(int(i), int(j)) for i, j in zip(*np.nonzero(np.triu(sims >= 0.94, 1)))}
    assert set(got) == want and planted <= want
    assert all(abs(c - sims[i, j]) < 1e-5 for (i, j), c in got.items())


def test_a_store_on_inverted_lists_with_a_delta_gets_the_same_groups_from_clusters_as_from_every_pair(tmp_path,
                                                                                                  monkeypatch):
    import json

    from click.testing import CliRunner

    from soundalike.catalog.indexes import Policy
    from soundalike.catalog.store import StoreWriter
    from soundalike.catalog.track import Track
    from soundalike.cli import main
    from soundalike.search import dupes
    from soundalike.search.searcher import Searcher

    x, planted = clustered_with_copies(np.random.default_rng(8), 3000, dim=32, copies=40, low=0.985)
    enc = {"name": "synthetic", "fingerprint": "synthetic-copies", "dim": 32, "labels": [], "transform": "standardize",
           "copy_threshold": 0.93}
    store = tmp_path / "copies.soundalike"
    ids = {}
    for part in (range(0, 2960), range(2960, 3000)):  # the second commit goes to a delta beside the main index
        with StoreWriter(store, encoder=enc, index_policy=Policy(kind="ivf")) as w:
            for j in part:
                p = f"/music/{j:05d}.flac"
                ids[j] = w.id_for(p)
                w.put(Track(id=ids[j], path=p, size=1, mtime=1.0, duration_s=200.0), x[j] * 3 + 1)
            if part.start:
                gone = sorted(planted)[0][1]  # one copy removed: its pair is no group any more
                w.remove(ids[gone])
            w.commit()
    s = Searcher(store)
    assert s.index.is_ivf and s.store.manifest["index"].get("delta")
    monkeypatch.setattr(dupes, "EXACT_BELOW", 100)  # clusters on 3,000 tracks
    fast = dupes.groups(s, threshold=0.93)
    assert [g.ids for g in fast] == [g.ids for g in dupes.groups(s, threshold=0.93, exact=True)]
    grouped = {i for g in fast for i in g.ids}
    want = {(ids[a], ids[b]) for a, b in planted if gone not in (a, b)}
    assert all(a in grouped and b in grouped for a, b in want) and ids[gone] not in grouped
    res = CliRunner().invoke(main, ["dupes", "--db", str(store), "--json"])
    assert res.exit_code == 0, res.output
    assert [[t["id"] for t in g["tracks"]] for g in json.loads(res.output)] == [g.ids for g in fast]
