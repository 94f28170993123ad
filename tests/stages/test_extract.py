import json
import shutil

import dask.dataframe as dd
import pandas as pd
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest

from genre_hpc.core.layout import OutputLayout
from genre_hpc.flow.dataset import FeatureStore
from genre_hpc.flow.schema import FEATURE_VERSION, ID_COLUMNS, feature_names
from genre_hpc.infra.config import feature_params
from genre_hpc.stages import extract

from ..helpers import make_config, run_stage, write_bad_files


def _cfg(out, root, *extra):
    return make_config("extract", [f"output.dir={out}", f"data.root={root}", *extra])


@pytest.fixture(scope="module")
def extracted(tmp_path_factory, small_corpus, client):
    out = tmp_path_factory.mktemp("extract-out")
    record = run_stage(extract, _cfg(out, small_corpus), client)
    return out, record


def test_dataset_is_hive_partitioned_and_readable_by_every_reader(extracted, small_corpus):
    out, record = extracted
    features = out / "features"
    assert sorted(p.name for p in features.iterdir()) == sorted(
        f"label={g.name}" for g in small_corpus.iterdir() if g.is_dir()
    )
    by_arrow = ds.dataset(features, partitioning="hive").to_table().to_pandas()
    by_pandas = pd.read_parquet(features)
    by_dask = dd.read_parquet(str(features)).compute()
    assert len(by_arrow) == len(by_pandas) == len(by_dask) == 100  # 50 clips x 2 segments
    assert record["rows_total"] == 100 and record["tracks_processed"] == 50


def test_batches_parts_are_merged_into_one_per_genre_below_part_rows(extracted):
    out, record = extracted
    parts = list((out / "features").rglob("*.parquet"))
    assert len(parts) == record["parts_total"] == 10  # 10 rows a genre, far below extract.part_rows
    assert record["parts_merged"] > 0  # a batch of 7 tracks spans two genres: 2 parts, merged
    assert {pq.read_metadata(p).num_rows for p in parts} == {10}


def test_with_a_small_part_rows_every_part_holds_at_least_that_many(tmp_path, small_corpus, client):
    out = tmp_path / "out"
    record = run_stage(
        extract, _cfg(out, small_corpus, "extract.batch_size=1", "extract.part_rows=4"), client
    )
    assert record["batches"] == 50 and record["parts_merged"] > 0
    by_genre = {}
    for part in (out / "features").rglob("*.parquet"):
        by_genre.setdefault(part.parent.name, []).append(pq.read_metadata(part).num_rows)
    assert len(by_genre) == 10 and all(min(rows) >= 4 and sum(rows) == 10 for rows in by_genre.values())
    frame = pd.read_parquet(out / "features")
    assert len(frame) == 100 and not frame.duplicated(["track_id", "segment"]).any()
    # the 50 batches' content-hash parts are one file too, holding every track's hash
    assert [p.name.split("-")[0] for p in (out / ".hashes").glob("*.parquet")] == ["merged"]
    assert len(FeatureStore(OutputLayout(out)).content_hashes()) == 50


def test_rows_follow_the_schema(extracted, small_corpus):
    out, _ = extracted
    frame = pd.read_parquet(out / "features")
    names = feature_names()
    assert list(frame.columns[: len(ID_COLUMNS) - 1]) == [
        "track_id",
        "path",
        "segment",
        "start_s",
        "duration_s",
    ]
    assert set(names) <= set(frame.columns)
    assert (frame[names].dtypes == "float32").all()
    track = frame[frame.track_id == "blues/blues.00003.wav"].sort_values("segment")
    assert track.segment.tolist() == [0, 1]
    assert track.start_s.tolist() == [0.0, 3.0]
    assert track.duration_s.tolist() == [3.0, 3.0]
    assert set(track.label.astype(str)) == {"blues"}
    assert track.path.iloc[0] == str(small_corpus / "blues" / "blues.00003.wav")


def test_parts_record_feature_version_and_settings(extracted):
    out, _ = extracted
    part = next((out / "features").rglob("*.parquet"))
    info = json.loads(pq.read_schema(part).metadata[b"genre_hpc"])
    assert info["feature_version"] == FEATURE_VERSION
    assert info["feature_params"]["segment_seconds"] == 3.0
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["feature_version"] == FEATURE_VERSION
    assert manifest["versions"]["librosa"] and manifest["versions"]["dask"]
    assert manifest["config"]["features"]["n_fft"] == 2048
    assert manifest["stages"]["extract"]["wall_seconds"] > 0


def test_rerun_adds_nothing_and_new_tracks_only_append(tmp_path, small_corpus, client):
    corpus = tmp_path / "corpus"
    shutil.copytree(small_corpus, corpus, ignore=shutil.ignore_patterns("*.0000[34].wav"))
    out = tmp_path / "out"
    first = run_stage(extract, _cfg(out, corpus), client)
    before = pd.read_parquet(out / "features")
    again = run_stage(extract, _cfg(out, corpus), client)
    assert first["tracks_processed"] == 30 and again["tracks_processed"] == 0
    pd.testing.assert_frame_equal(
        pd.read_parquet(out / "features").sort_values(["track_id", "segment"]).reset_index(drop=True),
        before.sort_values(["track_id", "segment"]).reset_index(drop=True),
    )
    shutil.copy(small_corpus / "jazz" / "jazz.00003.wav", corpus / "jazz")
    third = run_stage(extract, _cfg(out, corpus), client)
    assert third["tracks_processed"] == 1 and third["rows_written"] == 2
    after = pd.read_parquet(out / "features")
    assert len(after) == len(before) + 2
    assert not after.duplicated(["track_id", "segment"]).any()


def test_a_batch_run_twice_replaces_its_parts_instead_of_duplicating(tmp_path, small_corpus):
    cfg = _cfg(tmp_path, small_corpus)
    batch = [
        (f"rock/rock.0000{i}.wav", str(small_corpus / "rock" / f"rock.0000{i}.wav"), "rock", 0)
        for i in range(3)
    ]
    params = feature_params(cfg)
    for _ in range(2):  # a retried task, or the same batch on two workers
        extract.process_batch(
            batch, store=FeatureStore(OutputLayout(tmp_path)), params=params, block_segments=10
        )
    parts = list((tmp_path / "features").rglob("*.parquet"))
    assert len(parts) == 1
    assert not list((tmp_path / "features").rglob("*.tmp"))
    assert len(pd.read_parquet(tmp_path / "features")) == 6


def test_bad_files_become_error_rows_and_good_rows_survive(tmp_path, small_corpus, client):
    corpus = tmp_path / "corpus"
    shutil.copytree(small_corpus / "pop", corpus / "pop")
    expected = write_bad_files(corpus)
    out = tmp_path / "out"
    record = run_stage(extract, _cfg(out, corpus), client)
    errors = pd.read_parquet(out / "errors.parquet")
    assert list(errors.columns) == ["track_id", "path", "stage", "error"]
    reasons = {p.split("/")[-1]: e for p, e in zip(errors.path, errors.error, strict=True)}
    assert set(reasons) == set(expected)
    for name, word in expected.items():
        assert word in reasons[name], (name, reasons[name])
    rows = pd.read_parquet(out / "features")
    assert sorted(rows.track_id.unique()) == [f"pop/pop.0000{i}.wav" for i in range(5)]
    assert record["errors_total"] == len(expected)
    # a rerun neither retries nor duplicates the bad files
    again = run_stage(extract, _cfg(out, corpus), client)
    assert again["tracks_processed"] == 0
    assert len(pd.read_parquet(out / "errors.parquet")) == len(expected)


def test_changed_feature_settings_are_refused_on_an_existing_dataset(extracted, small_corpus, client):
    from genre_hpc.core.errors import ConfigError

    out, _ = extracted
    with pytest.raises(ConfigError, match="features.segment_seconds"):
        run_stage(extract, _cfg(out, small_corpus, "features.segment_seconds=2.0"), client)


def test_another_corpus_in_the_same_output_dir_is_refused(extracted, tmp_path, client):
    from genre_hpc.core.errors import ConfigError

    out, _ = extracted
    other = tmp_path / "other"
    (other / "blues").mkdir(parents=True)
    shutil.copy(next((out / "features").rglob("*.parquet")), other / "blues" / "not-audio.wav")
    with pytest.raises(ConfigError, match="data.root"):
        run_stage(extract, _cfg(out, other), client)


def test_settings_are_checked_against_parts_a_killed_first_run_left(tmp_path, small_corpus, client):
    from genre_hpc.core.errors import ConfigError

    cfg = _cfg(tmp_path, small_corpus)
    track = ("rock/rock.00000.wav", str(small_corpus / "rock" / "rock.00000.wav"), "rock", 0)
    # the parts of a first run that died before it wrote any manifest
    store = FeatureStore(OutputLayout(tmp_path))
    extract.process_batch([track], store=store, params=feature_params(cfg), block_segments=10)
    assert not (tmp_path / "manifest.json").exists()
    with pytest.raises(ConfigError, match="features.segment_seconds"):
        run_stage(extract, _cfg(tmp_path, small_corpus, "features.segment_seconds=2.0"), client)
