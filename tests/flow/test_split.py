import numpy as np
import pandas as pd
import pytest
from omegaconf import OmegaConf

from genre_hpc.core.errors import DatasetError
from genre_hpc.flow.split import LEAK_WARNING, grouped_folds, make_split, read_lists, row_folds, track_folds

from ..helpers import CONF


def _tracks(per_genre=10, genres=("a", "b", "c")):
    frame = pd.DataFrame(
        [(f"{g}/{i}.wav", g) for g in genres for i in range(per_genre)], columns=["track_id", "label"]
    )
    frame["group"] = frame.track_id
    return frame


def _spec(**values):
    return OmegaConf.create({"name": "grouped", "test_fraction": 0.2, "seed": 0, **values})


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_grouped_split_holds_out_whole_tracks_stratified(seed):
    tracks = _tracks()
    split = make_split(tracks, _spec(seed=seed))
    assert not split.train_tracks & split.test_tracks
    assert split.train_tracks | split.test_tracks == set(tracks.track_id)
    test_labels = tracks[tracks.track_id.isin(split.test_tracks)].label.value_counts()
    assert test_labels.to_dict() == {"a": 2, "b": 2, "c": 2}
    assert not split.leaky and "held-out tracks" in split.summary()["description"]


@pytest.mark.parametrize("seed", range(6))
def test_copies_of_one_recording_stay_on_one_side_even_across_genres(seed):
    tracks = _tracks()
    # a.3 and c.7 are the same audio filed under two genres; b.1 and b.2 are replicas
    tracks.loc[tracks.track_id.isin(["a/3.wav", "c/7.wav"]), "group"] = "hash-1"
    tracks.loc[tracks.track_id.isin(["b/1.wav", "b/2.wav"]), "group"] = "hash-2"
    split = make_split(tracks, _spec(seed=seed))
    for pair in (["a/3.wav", "c/7.wav"], ["b/1.wav", "b/2.wav"]):
        sides = {"test" if t in split.test_tracks else "train" for t in pair}
        assert len(sides) == 1, (pair, sides)
    assert split.summary()["tracks_in_duplicate_groups"] == 4


def test_rows_are_masked_by_track_for_grouped_splits():
    split = make_split(_tracks(), _spec())
    rows = pd.DataFrame({"track_id": sorted(split.test_tracks)[:2] * 3, "segment": range(6)})
    assert split.mask(rows, "test").all() and not split.mask(rows, "train").any()


def test_random_segments_split_is_leaky_and_says_so():
    split = make_split(
        _tracks(), OmegaConf.create({"name": "random_segments", "test_fraction": 0.3, "seed": 0})
    )
    rows = pd.DataFrame(
        {"track_id": [f"a/{i // 10}.wav" for i in range(2000)], "segment": [i % 10 for i in range(2000)]}
    )
    test = split.mask(rows, "test")
    assert 0.25 < test.mean() < 0.35
    both_sides = rows.assign(test=test).groupby("track_id").test.nunique()
    assert (both_sides == 2).mean() > 0.9  # the leak: nearly every track is on both sides
    assert LEAK_WARNING in split.label() and split.summary()["leaky"]
    assert (split.mask(rows, "train") == ~test).all()


def test_predefined_split_reads_lists_and_skips_missing_entries(tmp_path, caplog):
    tracks = _tracks(per_genre=4)
    (tmp_path / "train.txt").write_text("a/0.wav\na/1.wav\nb/0.wav\nb/1.wav\nc/0.wav\n")
    (tmp_path / "valid.txt").write_text("c/1.wav\n")
    tracks.loc[tracks.track_id == "a/3.wav", "track_id"] = "a/a.00003.wav"
    # a bare unique name resolves; an ambiguous one ("2.wav") and an absent one are reported
    (tmp_path / "test.txt").write_text("a/2.wav\na.00003.wav\nb/9.wav\n2.wav\nc/2.wav\n")
    spec = OmegaConf.create(
        {"name": "predefined", "train_on": ["train", "valid"], "source": "test lists",
         "lists": {s: str(tmp_path / f"{s}.txt") for s in ("train", "valid", "test")}}
    )  # fmt: skip
    split = make_split(tracks, spec)
    assert split.train_tracks == {"a/0.wav", "a/1.wav", "b/0.wav", "b/1.wav", "c/0.wav", "c/1.wav"}
    assert split.test_tracks == {"a/2.wav", "a/a.00003.wav", "c/2.wav"}
    assert split.summary()["missing_from_dataset"] == ["b/9.wav", "2.wav"]
    assert "b/9.wav" in caplog.text


@pytest.mark.parametrize("genres, per_genre", [(("a",), 10), (("a", "b"), 1)])
def test_one_genre_or_only_one_track_genres_is_a_clear_error(genres, per_genre):
    with pytest.raises(DatasetError, match="at least 2 genres"):
        make_split(_tracks(per_genre=per_genre, genres=genres), _spec())


def test_a_fraction_too_small_for_every_genre_still_holds_out_one_track_of_each(caplog):
    tracks = _tracks(per_genre=2)  # 0.2 of 6 tracks rounds to 1, fewer than the 3 genres
    split = make_split(tracks, _spec())
    assert tracks[tracks.track_id.isin(split.test_tracks)].label.value_counts().to_dict() == {
        "a": 1, "b": 1, "c": 1,
    }  # fmt: skip
    assert "holding out 3 groups" in caplog.text


@pytest.mark.parametrize("seed", range(4))
def test_a_genre_of_one_artist_is_trained_on_and_named_not_refused(seed, caplog):
    # real FMA metadata: "c" has a single artist, so split.group_by=artist cannot put it on both sides
    tracks = _tracks(per_genre=6)
    tracks.loc[tracks.label == "c", "group"] = "the only c artist"
    split = make_split(tracks, _spec(seed=seed, group_by="artist"))
    c_tracks = set(tracks.track_id[tracks.label == "c"])
    assert c_tracks <= split.train_tracks and not c_tracks & split.test_tracks
    test_labels = set(tracks.label[tracks.track_id.isin(split.test_tracks)])
    assert test_labels == {"a", "b"}
    summary = split.summary()
    assert summary["labels_absent_from_test"] == ["c"] and summary["labels_absent_from_training"] == []
    assert "not on the test side (fewer than 2 groups): c" in summary["description"]
    assert "test side has no track of c" in caplog.text


def test_a_list_split_names_the_genre_its_training_side_lacks(tmp_path, caplog):
    tracks = _tracks(per_genre=2)
    (tmp_path / "train.txt").write_text("a/0.wav\nb/0.wav\n")
    (tmp_path / "test.txt").write_text("a/1.wav\nb/1.wav\nc/0.wav\nc/1.wav\n")
    spec = OmegaConf.create(
        {"name": "predefined", "train_on": ["train"], "source": "test lists",
         "lists": {s: str(tmp_path / f"{s}.txt") for s in ("train", "test")}}
    )  # fmt: skip
    split = make_split(tracks, spec)
    assert split.summary()["labels_absent_from_training"] == ["c"]
    assert "training side of the predefined split has no track of c" in caplog.text


@pytest.mark.parametrize("seed", range(4))
def test_tuning_folds_are_whole_tracks_and_every_genre_trains_in_every_fold(seed):
    # 10 genres x 8 tracks x 10 segments with hash-like group names: the shape on which
    # StratifiedGroupKFold(shuffle=True) once put all 8 tracks of one genre into one fold
    rng = np.random.default_rng(seed)
    tracks = [(f"{rng.integers(1 << 60):x}", g) for g in range(10) for _ in range(8)]
    rows = pd.DataFrame([t for t in tracks for _ in range(10)], columns=["group", "label"]).sample(
        frac=1, random_state=seed
    )
    folds, note = grouped_folds(rows.group.to_numpy(), rows.label.to_numpy(), n_splits=3, seed=seed)
    assert folds.get_n_splits() == 3 and note == ""
    for train, test in folds.split():
        assert not set(rows.group.iloc[train]) & set(rows.group.iloc[test])
        assert rows.label.iloc[train].nunique() == 10
        per_genre = rows.iloc[test].groupby("label").group.nunique()
        assert per_genre.between(2, 3).all() and len(per_genre) == 10


def test_too_few_tracks_for_the_folds_is_a_clear_error():
    with pytest.raises(DatasetError, match="search.cv_folds"):
        grouped_folds(np.array(["a", "b", "c"]), np.array([0, 0, 1]), n_splits=3, seed=0)


def test_a_genre_with_fewer_groups_than_folds_fills_the_folds_it_can_and_trains_in_all():
    # genre 0: 6 groups; genre 1: 2 groups (fewer than 3 folds); genre 2: one group
    groups = np.array([f"g{i}" for i in range(6)] + ["h0", "h1", "only"])
    labels = np.array([0] * 6 + [1, 1, 2])
    folds, note = grouped_folds(groups, labels, n_splits=3, seed=0)
    fold = folds.test_fold
    assert fold[-1] == -1  # the one-group genre is never tested
    assert sorted(fold[6:8]) != [fold[6]] * 2 and -1 not in fold[:8]  # genre 1 in two different folds
    for train, _ in folds.split():
        assert set(labels[train]) == {0, 1, 2}  # every genre trains in every fold
    assert "fewer test folds than search.cv_folds=3 (one per group): 1 (2)" in note
    assert "never tested (one group): 2" in note


def test_shipped_gtzan_fault_filtered_lists_resolve_against_an_au_corpus():
    spec = OmegaConf.load(CONF / "split" / "gtzan_filtered.yaml")
    lists = read_lists(spec)
    assert lists.split.value_counts().to_dict() == {"train": 443, "test": 290, "valid": 197}
    assert not lists.file.duplicated().any()  # each file on one side only
    genres = sorted({f.split("/")[0] for f in lists.file})
    assert len(genres) == 10
    # the original release's names (.au), with the one file that does not decode left out
    tracks = pd.DataFrame(
        [(f"{g}/{g}.{i:05d}.au", g) for g in genres for i in range(100) if (g, i) != ("jazz", 54)],
        columns=["track_id", "label"],
    )
    split = make_split(tracks, spec)
    assert split.summary()["missing_from_dataset"] == ["jazz/jazz.00054.wav"]
    assert (len(split.train_tracks), len(split.test_tracks)) == (443 + 197 - 1, 290)
    assert not split.train_tracks & split.test_tracks


def _with_copies(n_per_genre=6):
    tracks = pd.DataFrame(
        [(f"{g}/{g}.{i}.wav", g) for g in ("a", "b", "c") for i in range(n_per_genre)],
        columns=["track_id", "label"],
    )
    tracks["group"] = tracks.track_id
    tracks.loc[[0, 1, 2], "group"] = "same recording"  # three copies of one recording
    return tracks


def test_track_folds_test_every_track_once_and_keep_groups_together():
    tracks = _with_copies()
    folds, note = track_folds(tracks, n_splits=3, seed=4, key="evaluate.folds")
    assert note == ""
    assert sorted(folds.index) == sorted(tracks.track_id) and set(folds) == {0, 1, 2}
    assert folds.loc[tracks.track_id[:3]].nunique() == 1
    per_fold = tracks.assign(fold=tracks.track_id.map(folds)).groupby("fold").label.nunique()
    assert (per_fold == 3).all()  # stratified: every genre in every fold


def test_row_folds_follow_the_split_protocol():
    tracks = _with_copies()
    rows = pd.DataFrame({"track_id": np.repeat(tracks.track_id, 4), "label": np.repeat(tracks.label, 4)})
    honest = make_split(tracks, OmegaConf.create({"name": "grouped", "test_fraction": 0.3, "seed": 0}))
    fold, how = row_folds(rows, tracks, honest, n_splits=3, seed=0, key="evaluate.folds")
    assert (rows.assign(fold=fold).groupby("track_id").fold.nunique() == 1).all() and "whole tracks" in how
    leaky = make_split(tracks, OmegaConf.create({"name": "random_segments", "test_fraction": 0.3, "seed": 0}))
    fold, how = row_folds(rows, tracks, leaky, n_splits=3, seed=0, key="evaluate.folds")
    assert (rows.assign(fold=fold).groupby("track_id").fold.nunique() > 1).any() and LEAK_WARNING in how


def test_too_few_tracks_for_the_folds_names_the_setting():
    with pytest.raises(DatasetError, match="evaluate.folds=19"):
        track_folds(_with_copies(), n_splits=19, seed=0, key="evaluate.folds")


def test_track_folds_name_the_genres_that_cannot_fill_every_fold():
    folds, note = track_folds(_with_copies(), n_splits=7, seed=0, key="evaluate.folds")
    # a: 4 groups (3 copies of one recording + 3 tracks), b and c: 6 tracks each, all < 7 folds
    assert "fewer test folds than evaluate.folds=7" in note and "a (4)" in note
    assert set(folds) <= set(range(7)) and (folds >= 0).all()
