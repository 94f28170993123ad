"""Reads the feature dataset into Dask, and splits it by track (never by segment)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import dask.dataframe as dd
import numpy as np
import pandas as pd
import pyarrow.dataset as ds
from omegaconf import DictConfig
from sklearn.model_selection import StratifiedShuffleSplit

from .errors import ConfigError, DatasetError
from .schema import FEATURE_VERSION, feature_names


def feature_columns(features_dir: Path) -> list[str]:
    """The feature columns the dataset holds, checked against this package's feature version."""
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
    n_mfcc = meta["feature_params"]["n_mfcc"]
    return feature_names(n_mfcc=n_mfcc)


def load(features_dir: Path) -> dd.DataFrame:
    """The dataset as a Dask DataFrame; `label` (the hive partition) as plain strings."""
    frame = dd.read_parquet(str(features_dir), engine="pyarrow", dataset={"partitioning": "hive"})
    # no index to sort on: unknown divisions keep dask from aligning partitions by value
    return frame.assign(label=frame.label.astype(str)).clear_divisions()


@dataclass(frozen=True)
class Split:
    """Which tracks are trained on and which are held out, and how that was decided."""

    name: str
    train_tracks: frozenset[str]
    test_tracks: frozenset[str]
    description: str
    details: dict = field(default_factory=dict)

    def summary(self) -> dict:
        return {
            "name": self.name,
            "description": self.description,
            "train_tracks": len(self.train_tracks),
            "test_tracks": len(self.test_tracks),
            **self.details,
        }


def track_table(frame: dd.DataFrame) -> pd.DataFrame:
    """One row per track: track_id, label (computed on the cluster, small)."""
    # de-duplicate within partitions first: a global drop_duplicates would shuffle
    pairs = frame[["track_id", "label"]].map_partitions(pd.DataFrame.drop_duplicates)
    tracks = pairs.compute().drop_duplicates()
    return tracks.sort_values("track_id").reset_index(drop=True)


def split_tracks(tracks: pd.DataFrame, spec: DictConfig) -> Split:
    """Hold out whole tracks, stratified by genre, as `split.*` says."""
    if spec.name != "grouped":
        raise ConfigError("split", f"unknown split {spec.name!r}", "use split=grouped")
    n_classes = tracks.label.nunique()
    n_test = int(round(spec.test_fraction * len(tracks)))
    if n_test < n_classes or len(tracks) - n_test < n_classes:
        raise DatasetError(
            f"{len(tracks)} tracks in {n_classes} genres are too few for split.test_fraction="
            f"{spec.test_fraction}: each side needs a track of every genre"
        )
    # one row per track, so a stratified split of rows is a grouped split of segments
    splitter = StratifiedShuffleSplit(n_splits=1, test_size=n_test, random_state=spec.seed)
    train_idx, test_idx = next(splitter.split(np.zeros(len(tracks)), tracks.label))
    return Split(
        name="grouped",
        train_tracks=frozenset(tracks.track_id.iloc[train_idx]),
        test_tracks=frozenset(tracks.track_id.iloc[test_idx]),
        description=(
            f"held-out tracks: {spec.test_fraction:.0%} of tracks, stratified by genre, "
            f"seed {spec.seed}; no track has segments on both sides"
        ),
        details={"test_fraction": spec.test_fraction, "seed": spec.seed},
    )
