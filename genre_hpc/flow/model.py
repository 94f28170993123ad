"""The one owner of a saved model: standardisation, the xgboost.dask fit, model.ubj + preprocess.json.

Train and tune fit and save through it, predict loads through it; compare's lineup scales its
inputs inside each scikit-learn pipeline (flow/lineup.py), as the origin study did.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from functools import partial
from typing import Any

import dask.array as da
import dask.dataframe as dd
import numpy as np
import pandas as pd
import xgboost
from distributed import Client
from xgboost.dask import DaskXGBClassifier

from genre_hpc.core.atomic import write_bytes, write_json
from genre_hpc.core.errors import ConfigError, DatasetError, ModelError
from genre_hpc.core.layout import ModelFiles
from genre_hpc.core.versions import versions
from genre_hpc.flow import shares
from genre_hpc.flow.metrics import evaluate
from genre_hpc.flow.params import FeatureParams
from genre_hpc.flow.schema import FEATURE_VERSION
from genre_hpc.flow.track import track_features
from genre_hpc.flow.trainset import TrainingData


@dataclass(frozen=True)
class Standardizer:
    """(x - mean) / std per feature column, fitted on the training side; saved with the model."""

    names: list[str]
    mean: pd.Series
    std: pd.Series

    @classmethod
    def combine(cls, moments: list[tuple[int, np.ndarray, np.ndarray]], names: list[str]) -> Standardizer:
        """The standardisation of rows held in parts, from each part's (count, mean, squared
        deviations), combined in order (Chan et al.'s pairwise update): the same numbers every run."""
        n, mean, m2 = 0, np.zeros(len(names)), np.zeros(len(names))
        for count, part_mean, part_m2 in moments:
            delta = part_mean - mean
            total = n + count
            mean = mean + delta * count / total
            m2 = m2 + part_m2 + delta**2 * n * count / total
            n = total
        std = pd.Series(np.sqrt(m2 / max(n - 1, 1)), index=names)
        return cls(names, pd.Series(mean, index=names), std.replace(0.0, 1.0))

    @classmethod
    def from_json(cls, info: dict[str, Any]) -> Standardizer:
        names = list(info["feature_names"])
        return cls(names, pd.Series(info["mean"], index=names), pd.Series(info["std"], index=names))

    def to_json(self) -> dict[str, list[float]]:
        return {"mean": self.mean.loc[self.names].tolist(), "std": self.std.loc[self.names].tolist()}

    def scale(self, rows: pd.DataFrame) -> pd.DataFrame:
        """The feature columns of `rows`, standardised in float64, as float32."""
        return ((rows[self.names] - self.mean) / self.std).astype("float32")

    def scale_array(self, rows: pd.DataFrame) -> np.ndarray:
        """`scale` as a C-ordered float32 array."""
        return np.ascontiguousarray(self.scale(rows).to_numpy())

    def dask_array(self, frame: dd.DataFrame) -> da.Array:
        """Every partition scaled, as a float32 Dask array with known chunk sizes."""
        return frame[self.names].map_partitions(self.scale).to_dask_array(lengths=True)


def fit_and_evaluate(
    client: Client, data: TrainingData, *, params: dict[str, Any], files: ModelFiles | None
) -> dict[str, Any]:
    """Fit DaskXGBClassifier on the training tracks, save it (unless `files` is None), score the
    held-out tracks.

    The model knows the genres of the training side; a genre only the test side has is named in
    `labels_absent_from_training`, and its tracks count as wrong (no model can name it)."""
    known = data.train_classes()
    x_train, y_train, scaler = training_arrays(client, data, known)

    model = DaskXGBClassifier(**params)
    model.client = client
    fit_started = time.perf_counter()
    model.fit(x_train, y_train)
    fit_seconds = time.perf_counter() - fit_started

    test = data.side("test")
    x_test = scaler.dask_array(test)
    proba = expand(model.predict_proba(x_test).compute(), known, data.classes)
    ids = test[["track_id", "label"]].compute()  # same partitions, same order as x_test
    if files is not None:
        save(files, model.get_booster(), scaler=scaler, data=data, classes=known)
    metrics = evaluate(proba, ids, data.classes)
    metrics.update(
        split=data.split.summary(),
        evaluated_on=f"test side of the {data.split.label()}",
        model={"name": "xgboost.dask.DaskXGBClassifier", "params": params, "classes": known},
        labels_absent_from_training=sorted(set(data.classes) - set(known)),
        fit_seconds=fit_seconds,
        train_segments=int(len(x_train)),
    )
    return metrics


def training_arrays(
    client: Client, data: TrainingData, classes: list[str]
) -> tuple[da.Array, da.Array, Standardizer]:
    """The training side's scaled features and class codes (the order of `classes`), one chunk per
    worker, each read and kept where xgboost.dask's rank order puts it (flow/shares.py): the same
    fit on every run. Also the standardisation, fitted on those rows."""
    parts = data.store.parts()
    placed = shares.place(client, data.reader("train"), [p for p, _ in parts], [n for _, n in parts])
    if not placed:
        raise DatasetError(f"the {data.split.label()} leaves no train rows: check split.*")
    scaler = Standardizer.combine(shares.gather(client, placed, partial(_moments, data.names)), data.names)
    codes = {label: i for i, label in enumerate(classes)}
    x = shares.array(
        client, placed, scaler.scale_array, tail=(len(data.names),), dtype=np.float32, prefix="train-x"
    )
    y = shares.array(client, placed, partial(_codes, codes), dtype=np.int32, prefix="train-y")
    return x, y, scaler


def _moments(names: list[str], rows: pd.DataFrame) -> tuple[int, np.ndarray, np.ndarray]:
    """Count, mean and sum of squared deviations of each feature of one share (float64)."""
    values = rows[names].to_numpy(dtype=np.float64)
    mean = values.mean(axis=0)
    return len(values), mean, ((values - mean) ** 2).sum(axis=0)


def expand(proba: np.ndarray, known: list[str], classes: list[str]) -> np.ndarray:
    """Probabilities over `known` classes as columns of all `classes` (0 for a class not known)."""
    if proba.ndim == 1:  # a two-class model may return P(second class) only
        proba = np.column_stack([1.0 - proba, proba])
    full = np.zeros((len(proba), len(classes)), dtype=proba.dtype)
    full[:, [classes.index(c) for c in known]] = proba
    return full


def _codes(codes: dict[str, int], rows: pd.DataFrame) -> np.ndarray:
    return rows.label.map(codes).to_numpy(dtype=np.int32)


def save(
    files: ModelFiles,
    booster: xgboost.Booster,
    *,
    scaler: Standardizer,
    data: TrainingData,
    classes: list[str] | None = None,
) -> None:
    """The booster in XGBoost's UBJ format, then what prediction needs to use it.

    preprocess.json names the hash of the model.ubj it belongs to: a run stopped between the
    two writes leaves a pair that `SavedModel` refuses instead of mixing two runs.
    """
    raw = bytes(booster.save_raw(raw_format="ubj"))  # the bytes save_model writes to a .ubj file
    write_bytes(files.booster, raw)
    write_json(
        files.preprocess,
        {
            "feature_version": FEATURE_VERSION,
            "feature_params": data.feature_params,
            "feature_names": data.names,
            # the classes the booster's outputs are, in order: the training side's
            "classes": data.classes if classes is None else classes,
            **scaler.to_json(),
            "split": data.split.summary(),
            "versions": versions(),
            "model_sha256": hashlib.sha256(raw).hexdigest(),
        },
    )


class SavedModel:
    """A saved booster with its preprocessing; refuses a model made for other features."""

    def __init__(self, files: ModelFiles) -> None:
        if not files.booster.exists() or not files.preprocess.exists():
            raise ConfigError(
                "model_dir", f"{files.folder} holds no {files.booster.name} and {files.preprocess.name}",
                "give the model/ folder of a train run, or tune/model",
            )  # fmt: skip
        info = json.loads(files.preprocess.read_text())
        if info.get("feature_version") != FEATURE_VERSION:
            raise ModelError(
                f"{files.folder} was trained on feature-set version {info.get('feature_version')!r}; "
                f"this genre-hpc computes {FEATURE_VERSION!r}, so its answers would be wrong: "
                "retrain it on features extracted by this version"
            )
        raw = files.booster.read_bytes()
        digest = hashlib.sha256(raw).hexdigest()
        if info.get("model_sha256", digest) != digest:  # models saved before the hash was recorded load
            raise ModelError(
                f"{files.booster} is not the model {files.preprocess.name} describes (a run stopped "
                "between writing the two?): train again"
            )
        self.info = info
        self.classes: list[str] = info["classes"]
        self.params = FeatureParams(**info["feature_params"])
        self.scaler = Standardizer.from_json(info)
        self.booster = xgboost.Booster(model_file=bytearray(raw))  # the bytes just checked
        self.booster.set_param({"nthread": 1})

    def track_probabilities(self, path: str) -> np.ndarray:
        """Genre probabilities of one file: the mean over its segments."""
        frame = track_features(path, params=self.params, block_segments=10)
        proba = self.booster.inplace_predict(np.ascontiguousarray(self.scaler.scale(frame).to_numpy()))
        if proba.ndim == 1:  # a two-genre model returns P(second genre) only
            proba = np.column_stack([1.0 - proba, proba])
        return proba.mean(axis=0)
