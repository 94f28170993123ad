"""Labelled corpora: FMA's tracks.csv as published (generated, FMA-shaped), tables of path, label."""

import shutil

import pandas as pd
import pytest
from omegaconf import OmegaConf

from genre_hpc.core.errors import ConfigError
from genre_hpc.flow import demo, metadata
from genre_hpc.flow.metadata import FMA_COLUMNS, fma_path
from genre_hpc.flow.split import connected_groups, make_split


@pytest.fixture(scope="module")
def fma(tmp_path_factory):
    """3 genres x 4 artists x 3 tracks (small, medium, large) of 3.5 s, and FMA's three faults."""
    root = tmp_path_factory.mktemp("fma")
    return demo.generate_fma(root, genres=3, artists_per_genre=4, tracks_per_artist=3, seconds=3.5, seed=2)


def test_tracks_csv_is_written_in_fmas_three_row_header_format(fma):
    head = fma.tracks.read_text().splitlines()[:3]
    assert head[0].startswith(",album,album,") and head[0].endswith(",track")
    assert head[1].startswith(",comments,date_created,") and head[1].endswith(",tags,title")
    assert head[2] == "track_id" + "," * len(FMA_COLUMNS)
    table = pd.read_csv(fma.tracks, index_col=0, header=[0, 1])  # FMA's own way of reading it
    assert list(table.columns) == list(FMA_COLUMNS) and table.index.name == "track_id"


def test_audio_is_found_by_id_in_fmas_layout():
    assert fma_path(2) == "000/000002.mp3"
    assert fma_path(133297) == "133/133297.mp3"


@pytest.mark.parametrize("subset, per_artist", [("small", 1), ("medium", 2), ("large", 3)])
def test_subsets_nest_and_tracks_are_labelled_with_genre_top(fma, subset, per_artist):
    found = metadata.fma(fma.audio, fma.tracks, subset=subset)
    tracks = found.tracks
    allowed = {"small": {"small"}, "medium": {"small", "medium"}, "large": {"small", "medium", "large"}}
    assert set(tracks.subset) <= allowed[subset]
    normal = tracks[tracks.artist.astype(int) < 9000]
    assert len(normal) == 3 * 4 * per_artist
    assert normal.groupby("artist").size().eq(per_artist).all()  # two or more tracks of one artist
    assert set(normal.label) == {"Rock", "Old-Time / Historic", "Hip-Hop"}
    table = pd.read_csv(fma.tracks, index_col=0, header=[0, 1])
    for row in normal.head(5).itertuples():
        track_id = int(row.track_id.split("/")[1].removesuffix(".mp3"))
        assert row.label == table.loc[track_id, ("track", "genre_top")]
        assert row.split == table.loc[track_id, ("set", "split")]
        assert row.path == str((fma.audio / row.track_id).resolve())
        assert row.track_id == fma_path(track_id)  # relative to data.root


def test_tracks_without_genre_top_or_file_are_skipped_with_the_reason(fma):
    found = metadata.fma(fma.audio, fma.tracks, subset="medium")
    reasons = dict(zip(found.skipped.track_id, found.skipped.reason, strict=True))
    assert reasons == {fma_path(fma.no_genre_top): "no genre_top", fma_path(fma.missing_file): "file missing"}
    # a file that holds no audio is listed: extract records it in errors.parquet
    assert fma_path(fma.no_audio) in set(found.tracks.track_id)
    assert not set(found.tracks.track_id) & set(reasons)


def test_official_split_trains_on_training_and_validation_and_tests_on_test(fma):
    tracks = metadata.fma(fma.audio, fma.tracks, subset="medium").tracks
    spec = OmegaConf.create(
        {"name": "official", "train_on": ["training", "validation"], "test_on": ["test"],
         "source": "FMA", "seed": 0, "group_by": None}
    )  # fmt: skip
    split = make_split(tracks, spec)
    assert split.test_tracks == set(tracks.track_id[tracks.split == "test"])
    assert split.train_tracks == set(tracks.track_id[tracks.split.isin(["training", "validation"])])
    # FMA's sides are artist-disjoint, and so are the generated ones
    sides = tracks.assign(test=tracks.track_id.isin(split.test_tracks)).groupby("artist").test.nunique()
    assert (sides == 1).all()


def test_groups_join_duplicate_audio_and_group_by_values_transitively():
    ids = pd.Series(["a", "b", "c", "d", "e"])
    hashes = pd.Series(["h1", "h1", None, "h2", None])
    artists = pd.Series(["x", "y", "y", None, None])
    groups = connected_groups(ids, [hashes, artists])
    # a~b by audio, b~c by artist: one group; d and e alone
    assert groups.tolist() == ["a", "a", "a", "d", "e"]


@pytest.mark.parametrize("suffix", [".csv", ".tsv", ".parquet"])
def test_a_table_corpus_reads_its_columns_by_config_key(tmp_path, fma, suffix):
    root = tmp_path / "audio"
    shutil.copytree(fma.audio / "000", root / "clips")
    files = sorted(p.relative_to(root).as_posix() for p in root.rglob("*.mp3"))[:4]
    frame = pd.DataFrame(
        {
            "file": [*files, "clips/gone.mp3"],
            "genre": ["rock", "jazz", None, "rock", "rock"],
            "singer": ["x", "x", "y", "y", "z"],
            "side": ["train", "train", "test", "test", "train"],
        }
    )
    table = tmp_path / f"tracks{suffix}"
    if suffix == ".parquet":
        frame.to_parquet(table)
    else:
        frame.to_csv(table, sep="\t" if suffix == ".tsv" else ",", index=False)
    columns = {"path": "file", "label": "genre", "group": None, "split": "side"}
    found = metadata.table(root, table, columns=columns)
    assert found.tracks.track_id.tolist() == [files[0], files[1], files[3]]
    assert found.tracks.label.tolist() == ["rock", "jazz", "rock"]
    assert found.tracks.split.tolist() == ["train", "train", "test"]
    assert found.tracks.singer.tolist() == ["x", "x", "y"]  # kept for split.group_by
    assert dict(zip(found.skipped.track_id, found.skipped.reason, strict=True)) == {
        files[2]: "no label",
        "clips/gone.mp3": "file missing",
    }
    grouped = metadata.table(root, table, columns={**columns, "group": "singer"})
    assert grouped.tracks.group.tolist() == ["x", "x", "y"]
    with pytest.raises(ConfigError, match="no column 'genre_top'") as info:
        metadata.table(root, table, columns={**columns, "label": "genre_top"})
    assert info.value.key == "data.columns.label"


def test_a_wrong_subset_or_tracks_file_names_its_key(fma, tmp_path):
    with pytest.raises(ConfigError) as info:
        metadata.fma(fma.audio, fma.tracks, subset="full")
    assert info.value.key == "data.subset"
    with pytest.raises(ConfigError) as info:
        metadata.fma(fma.audio, tmp_path / "nope.csv", subset="small")
    assert info.value.key == "data.tracks"


def test_tracks_csv_columns_are_cached_until_the_file_changes(fma, tmp_path, monkeypatch):
    tracks = tmp_path / "tracks.csv"
    shutil.copy(fma.tracks, tracks)
    cache = tmp_path / "cache"
    parsed = {subset: metadata.fma(fma.audio, tracks, subset=subset) for subset in ("large", "medium")}
    first = metadata.fma(fma.audio, tracks, subset="large", cache=cache)
    [kept] = cache.glob("fma-tracks-*.parquet")
    real = metadata.read_fma_table
    monkeypatch.setattr(metadata, "read_fma_table", lambda path: pytest.fail("parsed again"))
    again = metadata.fma(fma.audio, tracks, subset="medium", cache=cache)  # from the cache
    for found, subset in ((first, "large"), (again, "medium")):
        for name in ("tracks", "skipped"):
            ours, theirs = getattr(found, name), getattr(parsed[subset], name)
            pd.testing.assert_frame_equal(ours.astype(object), theirs.astype(object))
    monkeypatch.setattr(metadata, "read_fma_table", real)
    tracks.write_text(tracks.read_text().replace("Rock", "Folk"))  # rewritten: parsed again
    changed = metadata.fma(fma.audio, tracks, subset="large", cache=cache)
    assert "Folk" in set(changed.tracks.label) and "Rock" not in set(changed.tracks.label)
    [now] = cache.glob("fma-tracks-*.parquet")  # the earlier version's file is gone
    assert now != kept
