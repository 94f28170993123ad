"""Reads the feature dataset into Dask: rows, feature columns, and one row per track."""

from __future__ import annotations

import json
from pathlib import Path

import dask.dataframe as dd
import pandas as pd
import pyarrow.dataset as ds

from genre_hpc.core.errors import DatasetError
from genre_hpc.flow.schema import FEATURE_VERSION, feature_names


def feature_columns(features_dir: Path) -> list[str]:
    """The feature columns the dataset holds, checked against this package's feature version."""
    return feature_names(n_mfcc=feature_info(features_dir)["feature_params"]["n_mfcc"])


def feature_info(features_dir: Path) -> dict:
    """What the parts record of how they were made (version, settings); the version is checked."""
    if not features_dir.exists() or not any(features_dir.rglob("*.parquet")):
        raise DatasetError(
            f"no feature dataset at {features_dir}: run `genre-hpc extract` with the same output.dir first"
        )
    schema = ds.dataset(features_dir, format="parquet", partitioning="hive").schema
    meta = json.loads((schema.metadata or {}).get(b"genre_hpc", b"{}"))
    version = meta.get("feature_version")
    if version != FEATURE_VERSION:
        raise DatasetError(
            f"{features_dir} holds feature-set version {version!r}, this genre-hpc computes "
            f"{FEATURE_VERSION!r}: extract again into a new output.dir"
        )
    return meta


def load(features_dir: Path) -> dd.DataFrame:
    """The dataset as a Dask DataFrame; `label` (the hive partition) as plain strings."""
    frame = dd.read_parquet(str(features_dir), engine="pyarrow", dataset={"partitioning": "hive"})
    # no index to sort on: unknown divisions keep dask from aligning partitions by value
    return frame.assign(label=frame.label.astype(str)).clear_divisions()


def track_table(frame: dd.DataFrame, validation: pd.DataFrame | None = None) -> pd.DataFrame:
    """One row per track: track_id, label, and `group`: tracks of identical audio share one.

    `validation` is the validate stage's table; without it every track is its own group.
    """
    # de-duplicate within partitions first: a global drop_duplicates would shuffle
    pairs = frame[["track_id", "label"]].map_partitions(pd.DataFrame.drop_duplicates)
    tracks = pairs.compute().drop_duplicates().sort_values("track_id").reset_index(drop=True)
    tracks["group"] = tracks.track_id
    if validation is not None and len(validation):
        hashes = validation.dropna(subset=["content_hash"]).set_index("track_id").content_hash
        tracks["group"] = tracks.track_id.map(hashes).fillna(tracks.track_id)
    return tracks
