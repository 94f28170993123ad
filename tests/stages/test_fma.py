"""data=fma end to end on a generated FMA-shaped corpus: tracks, skips and errors, the official split,
and splits and folds that keep every artist on one side (split.group_by=artist)."""

import json
import shutil

import pandas as pd
import pytest

from genre_hpc.core.errors import ConfigError
from genre_hpc.flow import demo
from genre_hpc.flow.metadata import fma_path
from genre_hpc.flow.split import grouped_folds
from genre_hpc.flow.trainset import TrainingData
from genre_hpc.stages import evaluate, extract, train, validate

from ..helpers import layout, make_config, run_cli, run_stage


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("fma-corpus")
    return demo.generate_fma(root, genres=3, artists_per_genre=5, tracks_per_artist=3, seconds=3.5, seed=4)


def _cfg(stage, out, corpus, *extra):
    return make_config(
        stage,
        [f"output.dir={out}", "data=fma", f"data.root={corpus.audio}", f"data.tracks={corpus.tracks}",
         "data.subset=medium", *extra],
    )  # fmt: skip


@pytest.fixture(scope="module")
def extracted(tmp_path_factory, corpus, client):
    out = tmp_path_factory.mktemp("fma-out")
    run_stage(validate, _cfg("validate", out, corpus), client)
    record = run_stage(extract, _cfg("extract", out, corpus), client)
    return out, record


def test_tracks_skips_and_errors_are_recorded(extracted, corpus):
    out, record = extracted
    # 3 genres x 5 artists x 2 tracks of small and medium, and the file with no audio
    assert record["tracks_in_corpus"] == 31
    assert record["tracks_skipped"] == {"file missing": 1, "no genre_top": 1}
    skipped = pd.read_parquet(out / "skipped.parquet")
    assert dict(zip(skipped.track_id, skipped.reason, strict=True)) == {
        fma_path(corpus.no_genre_top): "no genre_top",
        fma_path(corpus.missing_file): "file missing",
    }
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["stages"]["validate"]["skipped"] == {"file missing": 1, "no genre_top": 1}
    errors = pd.read_parquet(out / "errors.parquet")
    assert errors.track_id.tolist() == [fma_path(corpus.no_audio)]
    rows = pd.read_parquet(out / "features")
    assert rows.track_id.nunique() == 30
    assert set(rows.label.astype(str)) == {"Rock", "Old-Time / Historic", "Hip-Hop"}
    tracks = pd.read_parquet(out / "tracks.parquet")
    assert {"track_id", "label", "artist", "split", "subset"} <= set(tracks.columns)
    assert set(tracks.subset) == {"small", "medium"}  # large is not in fma_medium
    # the content hashes come from extract's decode, one per extracted track
    table = pd.read_parquet(out / "validation.parquet")
    assert table.set_index("track_id").content_hash.notna().sum() == 30


def test_training_reads_only_the_subset_that_the_last_run_read(extracted, corpus, tmp_path, client):
    out, _ = extracted
    copy = tmp_path / "out"
    shutil.copytree(out, copy)
    run_stage(validate, _cfg("validate", copy, corpus, "data.subset=small"), client)  # medium before
    split = make_config("train", [f"output.dir={copy}"]).split
    data = TrainingData(layout(make_config("train", [f"output.dir={copy}"])), split)
    assert set(data.tracks.subset) == {"small"}
    assert set(data.frame.track_id.unique().compute()) == set(data.tracks.track_id)
    assert 0 < len(data.tracks) < pd.read_parquet(copy / "features").track_id.nunique()


def test_split_fma_uses_the_official_sides(extracted, corpus):
    out, _ = extracted
    cfg = _cfg("train", out, corpus, "split=fma")
    data = TrainingData(layout(cfg), cfg.split)
    tracks = data.tracks
    assert data.split.test_tracks == set(tracks.track_id[tracks.split == "test"])
    assert data.split.train_tracks == set(tracks.track_id[tracks.split.isin(["training", "validation"])])
    assert len(data.split.test_tracks) == 3 * 2  # one artist of each genre
    assert data.split.summary()["groups_on_both_sides"] == 0


@pytest.mark.parametrize("seed", range(3))
def test_group_by_artist_keeps_every_artist_on_one_side_of_split_and_folds(extracted, corpus, seed):
    out, _ = extracted
    cfg = _cfg("train", out, corpus, "split.group_by=artist", f"split.seed={seed}")
    data = TrainingData(layout(cfg), cfg.split)
    tracks = data.tracks
    # the interface other stages read: one row per track, `group` the one grouping key
    assert not tracks.track_id.duplicated().any()
    assert (tracks.groupby("artist").group.nunique() == 1).all()
    side = tracks.track_id.isin(data.split.test_tracks)
    assert (tracks.assign(test=side).groupby("artist").test.nunique() == 1).all()
    assert side.any() and (~side).any()
    train = tracks[~side]
    folds, _ = grouped_folds(train.group.to_numpy(), train.label.to_numpy(), n_splits=3, seed=seed)
    for fit, held in folds.split():
        assert not set(train.artist.iloc[fit]) & set(train.artist.iloc[held])


def test_without_group_by_an_artist_may_straddle_and_a_wrong_column_names_the_key(extracted, corpus):
    out, _ = extracted
    straddles = 0
    for seed in range(3):
        cfg = _cfg("train", out, corpus, f"split.seed={seed}")
        data = TrainingData(layout(cfg), cfg.split)
        side = data.tracks.track_id.isin(data.split.test_tracks)
        straddles += int((data.tracks.assign(test=side).groupby("artist").test.nunique() > 1).sum())
    assert straddles > 0  # what split.group_by is for
    cfg = _cfg("train", out, corpus, "split.group_by=singer")
    with pytest.raises(ConfigError, match="artist") as info:
        TrainingData(layout(cfg), cfg.split)
    assert info.value.key == "split.group_by"


def test_demo_data_writes_an_fma_shaped_corpus(tmp_path):
    result = run_cli(
        "demo-data", "data=fma", f"output.dir={tmp_path}", "data.demo.genres=2",
        "data.demo.artists_per_genre=1", "data.demo.tracks_per_artist=1", "data.demo.seconds=3", cwd=tmp_path,
    )  # fmt: skip
    audio, tracks = tmp_path / "demo-fma" / "audio", tmp_path / "demo-fma" / "fma_metadata" / "tracks.csv"
    assert f"data.root={audio}" in result.stderr and f"data.tracks={tracks}" in result.stderr
    assert len(list(audio.rglob("*.mp3"))) == 2 + 2  # the clips, and the faults that have a file
    assert pd.read_csv(tracks, index_col=0, header=[0, 1]).shape[0] == 2 + 3


def _reshaped(out, corpus, tmp_path, change):
    """A copy of the extracted dataset whose tracks.csv (FMA's format) `change` rewrites, validated
    again so the run reads the new metadata; returns (output folder, config overrides)."""
    table = pd.read_csv(corpus.tracks, index_col=0, header=[0, 1])
    change(table)
    tracks = tmp_path / "tracks.csv"
    table.to_csv(tracks)
    assert tracks.read_text().splitlines()[2].startswith("track_id,")  # FMA's three-row header
    copy = tmp_path / "out"
    shutil.copytree(out, copy)
    overrides = [f"output.dir={copy}", "data=fma", f"data.root={corpus.audio}", f"data.tracks={tracks}",
                 "data.subset=medium"]  # fmt: skip
    run_cli("validate", *overrides, "cluster.n_workers=1")
    return copy, overrides


def test_a_genre_only_on_the_official_test_side_is_scored_wrong_and_named(extracted, corpus, tmp_path):
    out, _ = extracted

    def hip_hop_only_in_test(table):
        table.loc[table[("track", "genre_top")] == "Hip-Hop", ("set", "split")] = "test"

    copy, overrides = _reshaped(out, corpus, tmp_path, hip_hop_only_in_test)
    result = run_cli("train", *overrides, "split=fma", "cluster.n_workers=2", "model.params.n_estimators=20")
    assert "Traceback" not in result.stderr
    assert "training side of the official split has no track of Hip-Hop" in result.stderr
    metrics = json.loads((copy / "metrics.json").read_text())
    assert metrics["labels_absent_from_training"] == ["Hip-Hop"]
    assert metrics["split"]["labels_absent_from_training"] == ["Hip-Hop"]
    hip_hop = metrics["classes"].index("Hip-Hop")
    matrix = metrics["confusion_matrix_tracks"]
    assert sum(matrix[hip_hop]) == 10 and matrix[hip_hop][hip_hop] == 0  # tested, never named
    assert json.loads((copy / "model" / "preprocess.json").read_text())["classes"] == sorted(
        set(metrics["classes"]) - {"Hip-Hop"}
    )


def test_a_genre_of_one_artist_trains_and_is_named_absent_from_test_and_folds(
    extracted, corpus, tmp_path, client
):
    out, _ = extracted

    def one_rock_artist(table):
        table.loc[table[("track", "genre_top")] == "Rock", ("artist", "id")] = 424242

    copy, overrides = _reshaped(out, corpus, tmp_path, one_rock_artist)
    cfg = make_config("train", [*overrides, "split.group_by=artist", "model.params.n_estimators=20"])
    metrics = run_stage(train, cfg, client)
    assert metrics["split"]["labels_absent_from_test"] == ["Rock"]
    assert metrics["labels_absent_from_training"] == []
    tested = dict(zip(metrics["classes"], map(sum, metrics["confusion_matrix_tracks"]), strict=True))
    assert tested["Rock"] == 0 and tested["Hip-Hop"] > 0
    # macro-F1 averages the genres the test side holds; the absent one is not a zero in it
    report = metrics["classification_report_tracks"]
    f1 = [report[g]["f1-score"] for g in ("Hip-Hop", "Old-Time / Historic")]
    assert metrics["track_macro_f1"] == pytest.approx(sum(f1) / 2)
    cfg = make_config("evaluate", [*overrides, "split.group_by=artist", "evaluate.folds=3",
                                   "model.params.n_estimators=20"])  # fmt: skip
    summary = run_stage(evaluate, cfg, client)
    assert "never tested (one group): Rock" in summary["protocol"]
    assert summary["tested_tracks"] == 20  # the 10 Rock tracks are trained on in every fold
