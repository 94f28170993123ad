"""The feature store: parts of a batch written once per genre, errors as rows, the version checked on read."""

from __future__ import annotations

import json

import pandas as pd
import pyarrow.parquet as pq
import pytest

from genre_hpc.core.errors import DatasetError
from genre_hpc.core.layout import OutputLayout
from genre_hpc.flow.dataset import FeatureStore, batch_id
from genre_hpc.flow.params import FeatureParams
from genre_hpc.flow.track import batch_features


@pytest.fixture
def store(tmp_path, small_corpus):
    params = FeatureParams()
    batch = [
        (f"{g}/{g}.00000.wav", str(small_corpus / g / f"{g}.00000.wav"), g, 0) for g in ("jazz", "rock")
    ] + [("pop/missing.wav", str(small_corpus / "pop" / "missing.wav"), "pop", 0)]
    result = batch_features(batch, params=params, block_segments=10, stage="extract")
    store = FeatureStore(OutputLayout(tmp_path))
    rows = store.write_batch(batch_id(t[0] for t in batch), result.frame, result.errors, params=params,
                             corpus_root=str(small_corpus))  # fmt: skip
    assert rows == 4
    return store


def test_a_batch_is_one_part_per_genre_and_its_bad_files_are_error_rows(store):
    parts = sorted(p.relative_to(store.path).as_posix() for p in store.path.rglob("*.parquet"))
    assert [p.split("/")[0] for p in parts] == ["label=jazz", "label=rock"]
    assert len({p.split("/")[1] for p in parts}) == 1  # one name: the hash of the batch
    assert store.finished_tracks() == {"jazz/jazz.00000.wav", "rock/rock.00000.wav", "pop/missing.wav"}
    assert store.merge_errors() == 1
    assert store.errors().track_id.tolist() == ["pop/missing.wav"]
    assert store.row_count() == 4 and store.part_count() == 2


def test_a_dataset_of_another_feature_version_is_refused(store):
    for part in store.path.rglob("*.parquet"):
        table = pq.ParquetFile(part).read()
        info = json.loads(table.schema.metadata[b"genre_hpc"])
        info["feature_version"] = "0"
        pq.write_table(table.replace_schema_metadata({b"genre_hpc": json.dumps(info).encode()}), part)
    with pytest.raises(DatasetError, match="feature-set version '0'"):
        store.info()


@pytest.fixture
def one_part_per_track(tmp_path, small_corpus):
    """The small corpus written one track per batch: 5 parts of 2 rows in each of 10 genres."""
    params = FeatureParams()
    store = FeatureStore(OutputLayout(tmp_path))
    for path in sorted(small_corpus.glob("*/*.wav")):
        batch = [(f"{path.parent.name}/{path.name}", str(path), path.parent.name, 0)]
        result = batch_features(batch, params=params, block_segments=10, stage="extract")
        store.write_batch(batch_id([batch[0][0]]), result.frame, result.errors, params=params,
                          corpus_root=str(small_corpus))  # fmt: skip
    return store


def _rows_by_genre(store):
    return {
        folder.name: sorted(pq.read_metadata(p).num_rows for p in folder.glob("*.parquet"))
        for folder in sorted(store.path.iterdir())
    }


def _sorted(frame):
    return frame.sort_values(["track_id", "segment"]).reset_index(drop=True)


def test_small_parts_are_merged_per_genre_until_each_holds_part_rows(one_part_per_track):
    store = one_part_per_track
    before = _sorted(store.load().compute())
    assert set(map(tuple, _rows_by_genre(store).values())) == {(2, 2, 2, 2, 2)}
    plan = store.merge_plan(part_rows=4)
    assert all(len({name.split("/")[0] for name in group}) == 1 for group in plan)  # one genre each
    for group in plan:
        store.merge_parts(group)
    # per genre: 2 + 2, then 2 + 2 with the fifth part that could not make 4 alone
    assert set(map(tuple, _rows_by_genre(store).values())) == {(4, 6)}
    pd.testing.assert_frame_equal(_sorted(store.load().compute()), before)
    assert store.merge_plan(part_rows=4) == []  # nothing left to merge
    # a genre's rows short of part_rows in all end as one part
    for group in store.merge_plan(part_rows=1000):
        store.merge_parts(group)
    assert set(map(tuple, _rows_by_genre(store).values())) == {(10,)}
    pd.testing.assert_frame_equal(_sorted(store.load().compute()), before)
    assert store.finished_tracks() == set(before.track_id)


def test_a_new_small_part_joins_the_smallest_large_one(one_part_per_track, small_corpus):
    store = one_part_per_track
    for group in store.merge_plan(part_rows=4):
        store.merge_parts(group)
    path = small_corpus / "jazz" / "jazz.00000.wav"
    batch = [("jazz/again.wav", str(path), "jazz", 0)]  # a rerun that finds one more track
    result = batch_features(batch, params=FeatureParams(), block_segments=10, stage="extract")
    store.write_batch(batch_id(["jazz/again.wav"]), result.frame, [], params=FeatureParams(),
                      corpus_root=str(small_corpus))  # fmt: skip
    (group,) = store.merge_plan(part_rows=4)
    store.merge_parts(group)
    assert _rows_by_genre(store)["label=jazz"] == [6, 6]  # the 4-row part took the 2 new rows


def test_a_merge_killed_before_its_clean_up_neither_loses_nor_doubles_rows(one_part_per_track):
    store = one_part_per_track
    before = _sorted(store.load().compute())
    group = store.merge_plan(part_rows=4)[0]
    saved = {name: (store.path / name).read_bytes() for name in group}
    store.merge_parts(group)
    for name, data in saved.items():  # the sources back, as a kill between publish and delete leaves them
        (store.path / name).write_bytes(data)
    # whoever reads next deletes what the merged part replaces
    assert store.row_count() == len(before)
    assert not any((store.path / name).exists() for name in group)
    pd.testing.assert_frame_equal(_sorted(store.load().compute()), before)
    # and the merge's retry (Dask retries a task whose worker died) finds its part published
    for name, data in saved.items():
        (store.path / name).write_bytes(data)
    assert store.merge_parts(group) == 4
    pd.testing.assert_frame_equal(_sorted(store.load().compute()), before)


def test_hash_parts_merge_into_one_and_a_killed_merge_is_finished_by_the_next_read(tmp_path, small_corpus):
    params = FeatureParams()
    store = FeatureStore(OutputLayout(tmp_path))
    for path in sorted(small_corpus.glob("jazz/*.wav")):
        batch = [(f"jazz/{path.name}", str(path), "jazz", 0)]
        result = batch_features(batch, params=params, block_segments=10, stage="extract")
        store.write_batch(batch_id([batch[0][0]]), result.frame, [], params=params,
                          corpus_root=str(small_corpus), hashes=result.hashes)  # fmt: skip
    folder = store.out.hash_parts
    sources = {p.name: p.read_bytes() for p in folder.glob("*.parquet")}
    before = store.content_hashes()
    assert len(sources) == len(before) == 5
    merged = store.content_hashes(merge=True)
    pd.testing.assert_frame_equal(merged, before)
    assert [p.name.split("-")[0] for p in folder.glob("*.parquet")] == ["merged"]
    for name, data in sources.items():  # as a kill between publishing and deleting leaves them
        (folder / name).write_bytes(data)
    pd.testing.assert_frame_equal(store.content_hashes(), before)
    assert len(list(folder.glob("*.parquet"))) == 1


def test_chunks_count_as_written_only_whole_and_a_batch_compacts_them_once(tmp_path, small_corpus):
    """A batch's chunks: one whose hash part (written last) is missing is not whole; compacting the
    batch merges its chunks into one part per genre, and a second compaction changes nothing."""
    params = FeatureParams()
    store = FeatureStore(OutputLayout(tmp_path))
    tracks = [(f"{g}/{g}.0000{i}.wav", str(small_corpus / g / f"{g}.0000{i}.wav"), g, 0)
              for g in ("jazz", "rock") for i in range(2)]  # fmt: skip
    chunks = [tracks[:1], tracks[1:3], tracks[3:]]
    names = [batch_id(t[0] for t in chunk) for chunk in chunks]
    for chunk, name in zip(chunks, names, strict=True):
        result = batch_features(chunk, params=params, block_segments=10, stage="extract")
        store.write_batch(name, result.frame, result.errors, params=params, corpus_root=str(small_corpus),
                          hashes=result.hashes)  # fmt: skip
    assert store.written(names) == set(names)
    (store.out.hash_parts / f"part-{names[1]}.parquet").unlink()  # killed before its last file
    assert store.written(names) == {names[0], names[2]}
    result = batch_features(chunks[1], params=params, block_segments=10, stage="extract")
    store.write_batch(names[1], result.frame, [], params=params, corpus_root=str(small_corpus),
                      hashes=result.hashes)  # fmt: skip
    before = _sorted(store.load().compute())
    for _ in range(2):
        store.compact(names)
        assert store.written(names) == set(names)
        assert _rows_by_genre(store) == {"label=jazz": [4], "label=rock": [4]}
        assert [p.name[:7] for p in store.out.hash_parts.glob("*.parquet")] == ["merged-"]
        pd.testing.assert_frame_equal(_sorted(store.load().compute()), before)
    assert len(store.content_hashes()) == 4


def test_a_filter_given_to_read_parts_sees_each_part_alone_and_keeps_what_a_whole_read_would(
    one_part_per_track,
):
    store = one_part_per_track
    parts = [p for p, _ in store.parts()]
    seen = []

    def jazz_and_rock(rows):
        seen.append(len(rows))  # each call gets one part's rows, never the parts together
        return rows[rows.label.isin(["jazz", "rock"]).to_numpy()]

    kept = store.read_parts(parts, each=jazz_and_rock)
    whole = store.read_parts(parts)
    assert seen == [n for _, n in store.parts()]
    expected = whole[whole.label.isin(["jazz", "rock"])].reset_index(drop=True)
    pd.testing.assert_frame_equal(kept.reset_index(drop=True), expected)
    assert 0 < len(kept) < len(whole)
