"""The training data the model stages share: the dataset's rows, one row per track, the split, its sides."""

from __future__ import annotations

from typing import Any

import dask.dataframe as dd
import pandas as pd
from omegaconf import DictConfig

from genre_hpc.core.errors import DatasetError
from genre_hpc.core.layout import OutputLayout
from genre_hpc.flow import validation
from genre_hpc.flow.dataset import FeatureStore
from genre_hpc.flow.schema import feature_names
from genre_hpc.flow.split import Split, make_split


class TrainingData:
    """The dataset, its feature columns, classes and the track split that train, tune and compare share."""

    def __init__(self, out: OutputLayout, split_spec: DictConfig) -> None:
        store = FeatureStore(out)
        info = store.info()  # refuses a dataset of another feature-set version
        self.feature_params: dict[str, Any] = info["feature_params"]
        self.names = feature_names(n_mfcc=self.feature_params["n_mfcc"])
        self.frame = store.load()
        self.tracks = track_table(self.frame, validation.read(out))
        self.split: Split = make_split(self.tracks, split_spec)
        self.classes: list[str] = sorted(self.tracks.label.unique())

    def side(self, which: str) -> dd.DataFrame:
        """The segments of the train or test tracks, persisted, without empty partitions."""
        split = self.split
        rows = self.frame.map_partitions(
            lambda part: part[split.mask(part, which)], meta=self.frame._meta
        ).persist()
        # a part holds one batch of one genre, so most parts fall wholly on one side; empty
        # chunks break xgboost.dask's predict, and cost a task each
        lengths = rows.map_partitions(len).compute()
        keep = [i for i, n in enumerate(lengths) if n]
        if not keep:
            raise DatasetError(f"the {split.label()} leaves no {which} rows: check split.*")
        return rows.partitions[keep]

    def codes(self, labels: pd.Series | dd.Series) -> Any:
        """Labels as class indices (the order of `classes`), as xgboost wants them."""
        mapping = {label: i for i, label in enumerate(self.classes)}
        if isinstance(labels, dd.Series):
            return labels.map(mapping, meta=("label", "int32")).astype("int32")
        return labels.map(mapping).astype("int32")


def track_table(frame: dd.DataFrame, validation_table: pd.DataFrame | None = None) -> pd.DataFrame:
    """One row per track: track_id, label, and `group`: tracks of identical audio share one.

    `validation_table` is the validate stage's table; without it every track is its own group.
    """
    # de-duplicate within partitions first: a global drop_duplicates would shuffle
    pairs = frame[["track_id", "label"]].map_partitions(pd.DataFrame.drop_duplicates)
    tracks = pairs.compute().drop_duplicates().sort_values("track_id").reset_index(drop=True)
    tracks["group"] = tracks.track_id
    if validation_table is not None and len(validation_table):
        hashes = validation_table.dropna(subset=["content_hash"]).set_index("track_id").content_hash
        tracks["group"] = tracks.track_id.map(hashes).fillna(tracks.track_id)
    return tracks
