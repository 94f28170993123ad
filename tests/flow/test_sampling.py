"""Subsets of the training data: whole groups, every genre, spread over each track, fixed by a seed."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from genre_hpc.flow.sampling import cap_segments, stratified_tracks


def segments(lengths: dict[str, int]) -> pd.DataFrame:
    rows = pd.DataFrame(
        [(track, s) for track, n in lengths.items() for s in range(n)], columns=["track_id", "segment"]
    )
    return rows.sample(frac=1.0, random_state=1)  # parts hold rows in no particular order


def tracks_table(n_groups: dict[str, int], per_group: int = 2) -> pd.DataFrame:
    rows = [
        (f"{label}-{g}-{t}", label, f"{label}-{g}")
        for label, groups in n_groups.items()
        for g in range(groups)
        for t in range(per_group)
    ]
    return pd.DataFrame(rows, columns=["track_id", "label", "group"])


def test_cap_keeps_at_most_cap_segments_of_each_track_spread_over_it():
    rows = segments({"long": 90, "short": 5, "odd": 11})
    kept = cap_segments(rows, 10)
    by_track = kept.groupby("track_id").segment.apply(sorted).to_dict()
    assert by_track["short"] == [0, 1, 2, 3, 4]  # shorter than the cap: whole
    assert len(by_track["odd"]) == 10
    long = by_track["long"]
    assert len(long) == 10
    # one segment from each ninth-of-a-stretch: first near the start, last near the end, even gaps
    assert long[0] < 9 and long[-1] > 80 and set(np.diff(long)) == {9}
    assert list(kept.index) == [i for i in rows.index if i in set(kept.index)]  # order kept


@pytest.mark.parametrize("n", [1, 7, 30, 91])
def test_cap_takes_the_middle_of_equal_stretches(n):
    for cap in range(1, n + 1):
        kept = cap_segments(segments({"t": n}), cap).segment.sort_values().tolist()
        assert kept == [int((j + 0.5) * n / cap) for j in range(cap)]


def test_no_cap_keeps_every_row():
    rows = segments({"a": 40})
    assert cap_segments(rows, None) is rows


def test_a_fraction_of_groups_per_genre_never_a_genre_s_last_group():
    tracks = tracks_table({"rock": 50, "jazz": 20, "solo": 1})
    chosen = stratified_tracks(tracks, fraction=0.1, seed=0, keep_one=True)
    picked = tracks[tracks.track_id.isin(chosen)]
    assert picked.groupby("label").group.nunique().to_dict() == {"rock": 5, "jazz": 2}
    # whole groups: every track of a chosen group is chosen
    assert set(tracks.track_id[tracks.group.isin(set(picked.group))]) == chosen
    assert stratified_tracks(tracks, fraction=0.1, seed=0, keep_one=True) == chosen
    assert stratified_tracks(tracks, fraction=0.1, seed=1, keep_one=True) != chosen


def test_a_count_of_tracks_keeps_every_genre():
    tracks = tracks_table({"rock": 400, "jazz": 100, "solo": 1})
    chosen = stratified_tracks(tracks, count=100, seed=0)
    picked = tracks[tracks.track_id.isin(chosen)]
    assert 90 <= len(chosen) <= 110
    assert set(picked.label) == {"rock", "jazz", "solo"}
    assert picked.label.value_counts()["rock"] == 4 * picked.label.value_counts()["jazz"]
