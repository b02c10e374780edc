"""The commit plan is a pure function of the manifest and a few counts: what a commit fits, compacts,
retrains, keeps or rebuilds, decided without reading a file."""

from __future__ import annotations

from soundalike.catalog.indexes import Policy
from soundalike.catalog.store import REFIT_GROWTH, plan_commit


def manifest(*, transform="standardize", fitted_on=1000, shards=3, index=True, policy=None, template_trained_on=None,
             kind="Center,LT256,L2norm,IDMap2,SQ8"):
    m = {"encoder": {"transform": transform, "dim": 8}, "shards": [f"vectors/shard-{i:06d}.npz" for i in range(shards)]}
    if transform not in (None, "none") and fitted_on:
        m["transform"] = {"file": "transform.g000001.npz", "fitted_on": fitted_on}
    if index:
        m["index"] = {"file": "tracks.g000001.faiss", "kind": kind, "shards_indexed": shards,
                      "policy": (policy or Policy()).to_dict()}
    if template_trained_on is not None:
        m["index_template"] = {"file": "template.g000001.faiss", "trained_on": template_trained_on}
    return m


def test_a_small_change_keeps_the_index_and_fits_nothing():
    plan = plan_commit(manifest(), live=1010, shard_rows=1100, policy=Policy())
    assert plan.keep_index and not (plan.fit or plan.compact or plan.retrain)
    assert not plan.rebuild_windows and not plan.recompute_neighbours


def test_growth_past_the_refit_rule_fits_the_transform_and_rebuilds():
    at = int(REFIT_GROWTH * 1000)
    assert not plan_commit(manifest(), live=at - 1, shard_rows=at, policy=Policy()).fit
    plan = plan_commit(manifest(), live=at, shard_rows=at, policy=Policy())
    assert plan.fit and not plan.keep_index and plan.recompute_neighbours


def test_no_transform_yet_means_a_fit():
    assert plan_commit(manifest(fitted_on=0), live=10, shard_rows=10, policy=Policy()).fit


def test_asked_refit_and_rebuild():
    refit = plan_commit(manifest(), live=1000, shard_rows=1000, policy=Policy(), refit=True)
    assert refit.fit and not refit.keep_index and refit.rebuild_windows
    rebuild = plan_commit(manifest(), live=1000, shard_rows=1000, policy=Policy(), rebuild=True)
    assert not rebuild.fit and not rebuild.keep_index and rebuild.rebuild_windows and rebuild.recompute_neighbours


def test_mostly_dead_shards_are_compacted():
    plan = plan_commit(manifest(), live=1000, shard_rows=2001, policy=Policy())
    assert plan.compact and not plan.keep_index and plan.rebuild_windows
    assert not plan_commit(manifest(), live=1000, shard_rows=2000, policy=Policy()).compact
    assert not plan_commit(manifest(shards=1), live=1000, shard_rows=5000, policy=Policy()).compact  # one shard: nothing to gain


def test_another_index_policy_or_the_first_format_rebuilds():
    assert not plan_commit(manifest(), live=1000, shard_rows=1000, policy=Policy(kind="ivf")).keep_index
    assert not plan_commit(manifest(kind="IDMap2,Flat"), live=1000, shard_rows=1000, policy=Policy()).keep_index
    assert not plan_commit(manifest(index=False), live=1000, shard_rows=1000, policy=Policy()).keep_index


def test_an_encoder_without_a_transform_never_fits_but_retrains_its_quantisers_when_grown():
    m = manifest(transform="none", template_trained_on=1000)
    plan = plan_commit(m, live=10_000, shard_rows=10_000, policy=Policy(), refit=True)
    assert not plan.fit and plan.retrain and not plan.keep_index
    assert plan.recompute_neighbours  # asked for
    assert not plan_commit(m, live=1000, shard_rows=1000, policy=Policy()).retrain


def test_a_kept_index_takes_a_delta_until_the_change_is_a_fiftieth_of_it_then_is_updated():
    from soundalike.catalog.store import DELTA_FRACTION, index_step

    prev = {"type": "flat"}
    step = lambda **kw: index_step(prev, Policy(), **{"held": 10_000, "hidden": 0, "added": 0, "width": 256,  # noqa: E731
                                                      "template_type": "flat", **kw})
    assert step(added=1) == "delta" and step(hidden=5, added=5) == "delta"
    assert step(added=int(DELTA_FRACTION * 10_000)) == "delta" and step(added=int(DELTA_FRACTION * 10_000) + 1) == "update"
    assert step(added=1, template_type=None) == "update"  # no frozen template of its kind to code a delta with


def test_a_kept_index_grown_past_its_kind_is_rebuilt_as_the_kind_its_size_calls_for():
    from soundalike.catalog.indexes import FLAT_MAX
    from soundalike.catalog.store import index_step

    near = dict(held=FLAT_MAX - 10, hidden=0, width=256, template_type="flat")
    assert index_step({"type": "flat"}, Policy(), added=5, **near) == "delta"
    assert index_step({"type": "flat"}, Policy(), added=20, **near) == "rebuild"  # past FLAT_MAX: inverted lists
    # a memory budget the 8-bit codes no longer fit: product-quantised codes
    assert index_step({"type": "flat"}, Policy(memory=1000 * (256 + 16)), held=1000, hidden=0, added=1, width=256,
                      template_type="flat") == "rebuild"
    assert index_step({"type": "ivf"}, Policy(kind="ivf"), held=100, hidden=90, added=0, width=256,
                      template_type="ivf") == "update"  # a kind asked for by hand stays, however small
