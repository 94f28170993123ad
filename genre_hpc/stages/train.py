"""The train stage: xgboost.dask on the shared client, evaluated on held-out tracks."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import dask
import dask.dataframe as dd
import numpy as np
import pandas as pd
from distributed import Client
from omegaconf import DictConfig, OmegaConf
from sklearn.metrics import accuracy_score, classification_report, confusion_matrix, f1_score
from xgboost.dask import DaskXGBClassifier

from genre_hpc.core.atomic import write_bytes, write_json
from genre_hpc.core.errors import DatasetError
from genre_hpc.flow import dataset, plots
from genre_hpc.flow.schema import FEATURE_VERSION
from genre_hpc.flow.split import Split, make_split
from genre_hpc.infra import config, manifest
from genre_hpc.stages import validate
from genre_hpc.stages.extract import FEATURES_DIR

log = logging.getLogger(__name__)

MODEL_FILE = "model.ubj"
PREPROCESS_FILE = "preprocess.json"


def run(cfg: DictConfig, client: Client) -> dict[str, Any]:
    """Train on the training tracks with `model.params`; write model/ and metrics.json."""
    started = time.perf_counter()
    out = config.output_dir(cfg)
    data = prepare(cfg)
    params = OmegaConf.to_container(cfg.model.params, resolve=True)
    metrics = fit_and_evaluate(client, data, params=params, model_dir=out / "model")
    metrics["wall_seconds"] = time.perf_counter() - started
    write_json(out / "metrics.json", metrics)
    plots.confusion_matrix_png(
        np.array(metrics["confusion_matrix_tracks"]),
        metrics["classes"],
        out / "confusion_matrix.png",
        title=f"xgboost, track level, test side of the {data.split.label()}",
    )
    manifest.update(out, "train", _record(metrics), config=config.plain(cfg))
    log.info(
        "train: %s, test side: segment accuracy %.3f, track accuracy %.3f (%.1f s)",
        data.split.label(), metrics["segment_accuracy"], metrics["track_accuracy"],
        metrics["wall_seconds"],
    )  # fmt: skip
    return metrics


class Prepared:
    """The dataset, its feature columns, classes and the track split every model stage shares."""

    def __init__(self, cfg: DictConfig) -> None:
        out = config.output_dir(cfg)
        self.names = dataset.feature_columns(out / FEATURES_DIR)
        self.feature_params = dataset.feature_info(out / FEATURES_DIR)["feature_params"]
        self.frame = dataset.load(out / FEATURES_DIR)
        self.tracks = dataset.track_table(self.frame, validate.read(out))
        self.split: Split = make_split(self.tracks, cfg.split)
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
        mapping = {label: i for i, label in enumerate(self.classes)}
        if isinstance(labels, dd.Series):
            return labels.map(mapping, meta=("label", "int32")).astype("int32")
        return labels.map(mapping).astype("int32")


def prepare(cfg: DictConfig) -> Prepared:
    return Prepared(cfg)


def fit_and_evaluate(
    client: Client, data: Prepared, *, params: dict[str, Any], model_dir: Path
) -> dict[str, Any]:
    """Fit DaskXGBClassifier on the training tracks, save it, score the held-out tracks."""
    train = data.side("train")
    mean, std = dask.compute(train[data.names].mean(), train[data.names].std())
    std = std.replace(0.0, 1.0)  # a constant feature carries no information; avoid 0/0
    x_train = _standardized(train, data.names, mean, std)
    y_train = data.codes(train.label).to_dask_array(lengths=True)

    model = DaskXGBClassifier(**params)
    model.client = client
    fit_started = time.perf_counter()
    model.fit(x_train, y_train)
    fit_seconds = time.perf_counter() - fit_started

    test = data.side("test")
    x_test = _standardized(test, data.names, mean, std)
    proba = model.predict_proba(x_test).compute()
    ids = test[["track_id", "label"]].compute()  # same partitions, same order as x_test
    save_model(model, model_dir, data=data, mean=mean, std=std)
    metrics = evaluate(proba, ids, data.classes)
    metrics.update(
        split=data.split.summary(),
        evaluated_on=f"test side of the {data.split.label()}",
        model={"name": "xgboost.dask.DaskXGBClassifier", "params": params},
        fit_seconds=fit_seconds,
        train_segments=int(len(x_train)),
    )
    return metrics


def _standardized(frame: dd.DataFrame, names: list[str], mean: pd.Series, std: pd.Series):
    """(x - mean) / std per partition, as a float32 Dask array with known chunk sizes."""
    scaled = frame[names].map_partitions(lambda part: ((part - mean) / std).astype("float32"))
    return scaled.to_dask_array(lengths=True)


def evaluate(proba: np.ndarray, ids: pd.DataFrame, classes: list[str]) -> dict[str, Any]:
    """Segment- and track-level scores; a track's prediction averages its segments' probabilities."""
    ids = ids.reset_index(drop=True)
    truth = ids.label.map({c: i for i, c in enumerate(classes)}).to_numpy()
    seg_pred = proba.argmax(axis=1)
    per_track = pd.DataFrame(proba).groupby(ids.track_id.to_numpy()).mean()
    track_truth = ids.groupby("track_id").label.first().loc[per_track.index]
    track_truth = track_truth.map({c: i for i, c in enumerate(classes)}).to_numpy()
    track_pred = per_track.to_numpy().argmax(axis=1)
    labels = list(range(len(classes)))
    return {
        "segment_accuracy": float(accuracy_score(truth, seg_pred)),
        "track_accuracy": float(accuracy_score(track_truth, track_pred)),
        "segment_macro_f1": float(f1_score(truth, seg_pred, average="macro", labels=labels)),
        "track_macro_f1": float(f1_score(track_truth, track_pred, average="macro", labels=labels)),
        "test_segments": int(len(truth)),
        "test_tracks": int(len(track_truth)),
        "classes": classes,
        "classification_report_tracks": classification_report(
            track_truth,
            track_pred,
            labels=labels,
            target_names=classes,
            output_dict=True,
            zero_division=0,
        ),  # fmt: skip
        "confusion_matrix_tracks": confusion_matrix(track_truth, track_pred, labels=labels).tolist(),
        "confusion_matrix_segments": confusion_matrix(truth, seg_pred, labels=labels).tolist(),
    }


def save_model(
    model: DaskXGBClassifier,
    model_dir: Path,
    *,
    data: Prepared,
    mean: pd.Series,
    std: pd.Series,
) -> None:
    """The booster in XGBoost's UBJ format plus what prediction needs to use it."""
    # the booster as the bytes save_model writes to a .ubj file, published whole
    write_bytes(model_dir / MODEL_FILE, bytes(model.get_booster().save_raw(raw_format="ubj")))
    write_json(
        model_dir / PREPROCESS_FILE,
        {
            "feature_version": FEATURE_VERSION,
            "feature_params": data.feature_params,
            "feature_names": data.names,
            "classes": data.classes,
            "mean": mean.loc[data.names].tolist(),
            "std": std.loc[data.names].tolist(),
            "split": data.split.summary(),
            "versions": manifest.versions(),
        },
    )


def _record(metrics: dict[str, Any]) -> dict[str, Any]:
    keep = ("segment_accuracy", "track_accuracy", "track_macro_f1", "split", "fit_seconds",
            "wall_seconds", "test_tracks", "test_segments", "train_segments")  # fmt: skip
    return {k: metrics[k] for k in keep if k in metrics}
