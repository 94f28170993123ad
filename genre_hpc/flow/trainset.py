"""The training data the model stages share: the dataset's rows, one row per track, the split, its sides.

`TrainingData.tracks.group` is the one grouping key of every split and fold (see track_table).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

import dask.dataframe as dd
import pandas as pd
from omegaconf import DictConfig, OmegaConf

from genre_hpc.core.errors import ConfigError, DatasetError
from genre_hpc.core.layout import OutputLayout
from genre_hpc.flow import corpus, validation
from genre_hpc.flow.dataset import FeatureStore
from genre_hpc.flow.schema import feature_names
from genre_hpc.flow.split import Split, connected_groups, make_split

log = logging.getLogger(__name__)


class TrainingData:
    """The dataset, its feature columns, classes and the track split that train, tune and compare share."""

    def __init__(self, out: OutputLayout, split_spec: DictConfig) -> None:
        store = FeatureStore(out)
        self.store = store
        self.kept: frozenset[str] | None = None  # set when some extracted tracks are left out
        info = store.info()  # refuses a dataset of another feature-set version
        self.feature_params: dict[str, Any] = info["feature_params"]
        self.names = feature_names(n_mfcc=self.feature_params["n_mfcc"])
        self.frame = store.load()
        metadata = corpus.read_tracks(out)
        self.tracks = track_table(
            self.frame,
            hashes=_hashes(store, out),
            metadata=metadata,
            group_by=OmegaConf.select(split_spec, "group_by", default=None),
        )
        if metadata is not None and len(metadata):
            self._keep_corpus_tracks(set(metadata.track_id))
        self.split: Split = make_split(self.tracks, split_spec)
        self.classes: list[str] = sorted(self.tracks.label.unique())

    def _keep_corpus_tracks(self, listed: set[str]) -> None:
        """Only tracks of the corpus that the last validate or extract read: a dataset extracted for
        data.subset=medium then read for small, or files since deleted, keeps rows it must not use."""
        stale = ~self.tracks.track_id.isin(listed)
        if not stale.any():
            return
        log.info(
            "training data: %d of %d extracted tracks are not in the corpus the last validate or extract "
            "read (another data.subset, or files gone) and are left out", stale.sum(), len(stale),
        )  # fmt: skip
        keep = set(self.tracks.track_id[~stale])
        self.kept = frozenset(keep)
        self.frame = self.frame.map_partitions(
            lambda part: part[part.track_id.isin(keep)], meta=self.frame._meta
        )
        self.tracks = self.tracks[~stale].reset_index(drop=True)

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

    def reader(self, which: str) -> SideReader:
        """What reads the rows of some parts on the train or test side, on a worker."""
        return SideReader(self.store, self.split, which, self.kept)

    def side_tracks(self, which: str) -> pd.DataFrame:
        """The rows of `tracks` (track_id, label, group, ...) with segments on `which` side: every
        track for the leaky split, whose sides share tracks."""
        if self.split.leaky:
            return self.tracks
        chosen = self.split.test_tracks if which == "test" else self.split.train_tracks
        return self.tracks[self.tracks.track_id.isin(chosen)]

    def train_classes(self) -> list[str]:
        """The genres on the training side, in `classes` order: what a model trained on it can name
        (the split's summary names the others, whose test tracks count as wrong)."""
        if self.split.leaky:
            return self.classes
        known = set(self.tracks.label[self.tracks.track_id.isin(self.split.train_tracks)])
        if len(known) < 2:
            raise DatasetError(
                f"the training side of the {self.split.label()} holds {len(known)} genre(s) "
                f"({', '.join(sorted(known))}): a classifier needs 2; check split.* and the corpus's labels"
            )
        return [c for c in self.classes if c in known]

    def codes(self, labels: pd.Series | dd.Series, classes: list[str] | None = None) -> Any:
        """Labels as class indices (the order of `classes`, default all), as xgboost wants them."""
        mapping = {label: i for i, label in enumerate(self.classes if classes is None else classes)}
        if isinstance(labels, dd.Series):
            return labels.map(mapping, meta=("label", "int32")).astype("int32")
        return labels.map(mapping).astype("int32")


@dataclass(frozen=True)
class SideReader:
    """Reads some parts of the dataset and keeps one side's rows; small and picklable, so it is
    sent to the workers that read their own shares."""

    store: FeatureStore
    split: Split
    which: str
    kept: frozenset[str] | None = None

    def __call__(
        self, parts: list[str], then: Callable[[pd.DataFrame], pd.DataFrame] | None = None
    ) -> pd.DataFrame:
        """The side's rows of `parts`, filtered part by part as they are read (`then`: more to do
        to each part's kept rows, e.g. a cap on segments per track)."""
        return self.store.read_parts(parts, each=partial(self.keep, then=then)).reset_index(drop=True)

    def keep(
        self, rows: pd.DataFrame, then: Callable[[pd.DataFrame], pd.DataFrame] | None = None
    ) -> pd.DataFrame:
        """The side's rows of `rows`."""
        mask = self.split.mask(rows, self.which)
        if self.kept is not None:
            mask &= rows.track_id.isin(self.kept).to_numpy()
        return rows[mask] if then is None else then(rows[mask])


def track_table(
    frame: dd.DataFrame,
    *,
    hashes: pd.Series | None = None,
    metadata: pd.DataFrame | None = None,
    group_by: str | None = None,
) -> pd.DataFrame:
    """One row per track: track_id, label, `group`, then the corpus's metadata (split, artist, ...).

    `group` is the one key every split and tuning fold keeps on one side: tracks that share a
    content hash (`hashes`, by track_id), the corpus's own group column (data.columns.group) or
    a value of the metadata column `group_by` are one group, transitively. Without any of them
    every track is its own group.
    """
    # de-duplicate within partitions first: a global drop_duplicates would shuffle
    pairs = frame[["track_id", "label"]].map_partitions(pd.DataFrame.drop_duplicates)
    tracks = pairs.compute().drop_duplicates().sort_values("track_id").reset_index(drop=True)
    keys = []
    if hashes is not None and len(hashes):
        keys.append(tracks.track_id.map(hashes))
    meta = None
    if metadata is not None and len(metadata):
        meta = metadata.drop(columns=["label"], errors="ignore").drop_duplicates("track_id")
        meta = tracks[["track_id"]].merge(meta, on="track_id", how="left")
        if "group" in meta:
            keys.append(meta.pop("group"))
    if group_by is not None:
        if meta is None or group_by not in meta.columns:
            known = [c for c in (meta.columns if meta is not None else []) if c != "track_id"]
            raise ConfigError(
                "split.group_by",
                f"{group_by!r} is not a column of the corpus's tracks ({known or 'none recorded'})",
                "name one, e.g. split.group_by=artist with data=fma; run validate or extract once "
                "with this genre-hpc to record the tracks' metadata",
            )
        keys.append(meta[group_by])
    tracks["group"] = connected_groups(tracks.track_id, keys)
    if meta is not None:
        tracks = pd.concat([tracks, meta.drop(columns=["track_id"])], axis=1)
    return tracks


def _hashes(store: FeatureStore, out: OutputLayout) -> pd.Series:
    """track_id -> content hash: extract's, else an older validate's (which hashed in its own decode)."""
    found = validation.read(out).dropna(subset=["content_hash"]).set_index("track_id").content_hash
    extracted = store.content_hashes().set_index("track_id").content_hash
    return pd.concat([found[~found.index.isin(extracted.index)], extracted])
