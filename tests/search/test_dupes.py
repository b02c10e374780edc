"""Copy detection without a store: which pairs are copies (cosine and duration), how pairs join into groups,
and which threshold a store's encoder gets. (``soundalike dupes`` on real audio: tests of the musicnn encoder.)"""

from __future__ import annotations

from soundalike.search.dupes import COPY_DURATION_S, Copies, durations_match, is_copy, threshold_for


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
    c.offer(1, [2, 7, -1], [0.99, 0.50, 0.0])  # 1-2 copies; 7 too far in sound; -1: no more neighbours
    c.offer(2, [3, 1], [0.96, 0.99])  # 2-3: so 1, 2, 3 are one group, however it was reached
    c.offer(5, [4, 5], [0.97, 1.0])  # itself is never its own copy
    c.offer(6, [9], [0.99])  # close in sound, a third the length: not a copy
    groups = c.groups()
    assert [g.ids for g in groups] == [[1, 2, 3], [4, 5]]
    assert groups[0].weakest == 0.96 and groups[1].weakest == 0.97
    assert Copies(0.95, durations).groups() == []


def test_the_threshold_is_what_the_store_recorded_for_its_encoder():
    assert threshold_for({"name": "anything", "copy_threshold": 0.9}) == 0.9
    assert threshold_for({"name": "never-measured"}) is None
    assert threshold_for(None) is None
