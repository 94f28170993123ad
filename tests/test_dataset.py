import pandas as pd
import pytest
from omegaconf import OmegaConf

from genre_hpc.dataset import split_tracks
from genre_hpc.errors import DatasetError


def _tracks(per_genre=10, genres=("a", "b", "c")):
    return pd.DataFrame(
        [(f"{g}/{i}.wav", g) for g in genres for i in range(per_genre)], columns=["track_id", "label"]
    )


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_grouped_split_holds_out_whole_tracks_stratified(seed):
    tracks = _tracks()
    split = split_tracks(tracks, OmegaConf.create({"name": "grouped", "test_fraction": 0.2, "seed": seed}))
    assert not split.train_tracks & split.test_tracks
    assert split.train_tracks | split.test_tracks == set(tracks.track_id)
    test_labels = tracks[tracks.track_id.isin(split.test_tracks)].label.value_counts()
    assert test_labels.to_dict() == {"a": 2, "b": 2, "c": 2}
    assert "held-out tracks" in split.summary()["description"]


def test_split_depends_on_seed_only():
    spec = OmegaConf.create({"name": "grouped", "test_fraction": 0.3, "seed": 7})
    assert split_tracks(_tracks(), spec).test_tracks == split_tracks(_tracks(), spec).test_tracks


def test_too_few_tracks_for_the_split_is_a_clear_error():
    with pytest.raises(DatasetError, match="too few"):
        split_tracks(
            _tracks(per_genre=2), OmegaConf.create({"name": "grouped", "test_fraction": 0.2, "seed": 0})
        )
