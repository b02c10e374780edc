"""A query is parsed once, whether it comes from the command line or from HTTP: the checks and the forms of
tempo and key a person types."""

from __future__ import annotations

import math

import pytest

from soundalike.search.query import Query, parse_bpm
from soundalike.search.searcher import QueryError


def test_a_plain_query_and_ids():
    q = Query.parse(["song.flac"])
    assert q.seeds == ("song.flac",) and q.k == 10 and q.bpm is None and q.keys == () and q.excerpt is None
    assert Query.parse(["3", "4"], by_id=True).seeds == (3, 4)
    with pytest.raises(QueryError, match="integer"):
        Query.parse(["abc"], by_id=True)


def test_tempo_as_text_or_as_ends():
    assert parse_bpm("118-126") == (118.0, 126.0) and parse_bpm("118 .. 126") == (118.0, 126.0)
    lo, hi = parse_bpm("120")
    assert math.isclose(lo, 115.2) and math.isclose(hi, 124.8)
    assert Query.parse([1], by_id=True, bpm_min=100).bpm == (100.0, float("inf"))
    assert Query.parse([1], by_id=True, bpm_max=90).bpm == (0.0, 90.0)
    for bad in ("fast", "126-118", "-5"):
        with pytest.raises(QueryError, match="bpm"):
            parse_bpm(bad)
    with pytest.raises(QueryError, match="one range"):
        Query.parse([1], by_id=True, bpm="120", bpm_min=100)
    with pytest.raises(QueryError, match="low to high"):
        Query.parse([1], by_id=True, bpm_min=130, bpm_max=120)


def test_keys_are_read_as_people_write_them():
    assert Query.parse([1], by_id=True, keys=["Am", "f# major", "Bb"]).keys == ("A minor", "F# major", "A# major")
    with pytest.raises(QueryError):
        Query.parse([1], by_id=True, keys=["H dorian"])
    with pytest.raises(QueryError, match="one QUERY"):
        Query.parse([1, 2], by_id=True, compatible_key=True)
    assert Query.parse([1], by_id=True, compatible_key=True).compatible_key


def test_what_cannot_be_asked():
    with pytest.raises(QueryError, match="needs a QUERY"):
        Query.parse([])
    with pytest.raises(QueryError, match="--excerpt takes one QUERY file"):
        Query.parse(["a.flac", "b.flac"], excerpt=True)
    with pytest.raises(QueryError, match="genre source"):
        Query.parse(["a.flac"], genre_source="moods")
    with pytest.raises(QueryError, match="at least 1"):
        Query.parse(["a.flac"], max_per_artist=0)
    assert Query.parse([], tags=["piano"]).tags == ("piano",)  # tags alone rank the library
