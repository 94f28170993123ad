"""Subsets of the training data that keep what a split keeps: whole groups of tracks, every genre.

Learning at scale takes less than all of it in three places: the tracks that early stopping
watches (`stratified_tracks` with a fraction: never trained on), the tracks a model that cannot
scale is fitted on, or a search is run on (`stratified_tracks` with a count), and the segments
of a long track that train a model (`cap_segments`). All three are pure and fixed by a seed, so
the same run chooses the same rows.
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def stratified_tracks(
    tracks: pd.DataFrame,
    *,
    fraction: float | None = None,
    count: int | None = None,
    seed: int,
    keep_one: bool = False,
) -> frozenset[str]:
    """Track ids of whole groups (`tracks`: track_id, label, group), about `fraction` of the groups,
    or groups holding about `count` tracks, in each genre's proportion (a genre's groups are drawn
    in a seeded shuffle, so the choice is the same on every run).

    keep_one=True leaves every genre at least one group outside the choice (a validation slice must
    not take a genre's only group away from training); keep_one=False gives every genre at least one
    group inside it (a sample must not lose a genre).
    """
    if (fraction is None) == (count is None):
        raise ValueError("give one of fraction and count")
    groups = tracks.get("group", tracks.track_id)
    by_group = (
        pd.DataFrame({"group": groups.to_numpy(), "label": tracks.label.to_numpy()})
        .groupby("group", sort=True)
        .agg(label=("label", "first"), size=("label", "size"))
    )
    if fraction is None:
        fraction = min(1.0, count / max(len(tracks), 1))
    rng = np.random.default_rng(seed)
    chosen: list[str] = []
    for label in sorted(by_group.label.unique()):
        mine = by_group.index[by_group.label == label].to_numpy()
        n = len(mine)
        take = int(round(fraction * n))
        take = min(take, n - 1) if keep_one else max(take, 1)
        if take > 0:
            chosen.extend(mine[rng.permutation(n)[:take]])
    return frozenset(tracks.track_id[groups.isin(set(chosen)).to_numpy()])


def cap_segments(rows: pd.DataFrame, cap: int | None) -> pd.DataFrame:
    """At most `cap` rows of each track (`rows`: track_id, segment, ...), spread evenly over the track:
    of a track's n segments in order, the middle one of each of `cap` equal stretches. Tracks of at
    most `cap` segments keep all of them; None keeps everything. Row order is kept."""
    if cap is None or rows.empty:
        return rows
    order = np.lexsort((rows.segment.to_numpy(), rows.track_id.to_numpy()))
    ids = rows.track_id.to_numpy()[order]
    starts = np.r_[True, ids[1:] != ids[:-1]]
    run = np.cumsum(starts) - 1  # which track, in sorted order
    first = np.flatnonzero(starts)
    pos = np.arange(len(ids)) - first[run]  # position within the track
    n = np.diff(np.r_[first, len(ids)])[run]  # the track's segment count
    # position pos is kept when it is floor((j + 1/2) n / cap) for an integer j in [0, cap), i.e.
    # j = ceil((2 pos cap - n) / 2n) and (2j + 1) n < 2 cap (pos + 1); in integers, no rounding
    j = -((n - 2 * cap * pos) // (2 * n))
    keep_sorted = (n <= cap) | ((j >= 0) & (j < cap) & ((2 * j + 1) * n < 2 * cap * (pos + 1)))
    keep = np.empty(len(rows), dtype=bool)
    keep[order] = keep_sorted
    return rows[keep]
