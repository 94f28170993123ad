"""The feature store: parts of a batch written once per genre, errors as rows, the version checked on read."""

from __future__ import annotations

import json

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
