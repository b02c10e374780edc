"""A track's fields are declared once (catalog.track.FIELDS): the Track record, the Parquet schema, the search
results' columns and what an index run reads to plan all follow from that table."""

from __future__ import annotations

import dataclasses
import pickle

from soundalike.catalog.track import FIELDS, HIT_FIELDS, PLAN_COLUMNS, SCHEMA, Track, rows_table, to_table
from soundalike.search.searcher import Hit, Searcher


def test_the_record_and_the_schema_are_the_table():
    names = [f.name for f in FIELDS]
    assert [f.name for f in dataclasses.fields(Track)] == names == SCHEMA.names
    assert not SCHEMA.field("id").nullable and not SCHEMA.field("path").nullable and SCHEMA.field("bpm").nullable
    t = Track(id=3, path="/m/a.flac", size=10, mtime=1.5, bpm=120.0, key="A minor")
    assert t.status == "ok" and t.title is None
    assert pickle.loads(pickle.dumps(t)) == t  # crosses process boundaries (decode workers, Ray)
    row = to_table([t]).to_pylist()[0]
    assert row["bpm"] == 120.0 and row["key"] == "A minor" and row["id"] == 3
    assert rows_table([row]).schema == SCHEMA


def test_results_show_the_hit_fields_and_planning_skips_the_label_arrays():
    shown = {f.name for f in dataclasses.fields(Hit)}
    assert set(HIT_FIELDS) - {"missing_since"} <= shown and {"score", "missing", "copies", "at_s"} <= shown
    assert Searcher.HIT_COLUMNS == HIT_FIELDS
    assert "tag_scores" not in PLAN_COLUMNS and {"path", "size", "mtime", "content_hash"} <= set(PLAN_COLUMNS)
    a, b = Hit(id=1, score=0.5, path="/a"), Hit(id=2, score=0.4, path="/b")
    a.copies.append({"id": 9})
    assert b.copies == [] and a.to_dict()["copies"] == [{"id": 9}]  # each result its own list
