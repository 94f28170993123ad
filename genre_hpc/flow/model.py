"""The one owner of a saved model: standardisation, the xgboost.dask fit, model.ubj + preprocess.json.

Train and tune fit and save through it, predict loads through it; compare's lineup scales its
inputs inside each scikit-learn pipeline (flow/lineup.py), as the origin study did.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import dataclass
from functools import partial
from importlib import resources
from typing import Any

import dask.array as da
import dask.dataframe as dd
import numpy as np
import pandas as pd
import xgboost
from distributed import Client, get_worker
from omegaconf import DictConfig, OmegaConf
from xgboost.callback import TrainingCallback
from xgboost.dask import DaskXGBClassifier

from genre_hpc.core.atomic import write_bytes, write_json
from genre_hpc.core.errors import ConfigError, DatasetError, ModelError
from genre_hpc.core.layout import ModelFiles
from genre_hpc.core.versions import versions
from genre_hpc.flow import shares
from genre_hpc.flow.metrics import evaluate
from genre_hpc.flow.moments import SCALE_BLOCK_ROWS, array_moments, combine_moments, sample_std
from genre_hpc.flow.params import FeatureParams
from genre_hpc.flow.sampling import cap_segments, stratified_tracks
from genre_hpc.flow.schema import FEATURE_VERSION
from genre_hpc.flow.track import track_features
from genre_hpc.flow.trainset import SideReader, TrainingData

log = logging.getLogger(__name__)


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
        n, mean, m2 = combine_moments(moments, len(names))
        return cls(names, pd.Series(mean, index=names), pd.Series(sample_std(n, m2), index=names))

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
        """`scale` as a C-ordered float32 array, the same numbers, computed a block of rows at a time:
        `scale` on a worker's whole share held float64 copies of it (4-6x its float32 size at the
        peak), which at 10^6 rows was most of a training worker's memory."""
        out = np.empty((len(rows), len(self.names)), dtype=np.float32)
        mean, std = self.mean.loc[self.names].to_numpy(), self.std.loc[self.names].to_numpy()
        for start in range(0, len(rows), SCALE_BLOCK_ROWS):
            block = rows.iloc[start : start + SCALE_BLOCK_ROWS][self.names].to_numpy(dtype=np.float64)
            out[start : start + SCALE_BLOCK_ROWS] = (block - mean) / std
        return out

    def dask_array(self, frame: dd.DataFrame) -> da.Array:
        """Every partition scaled, as a float32 Dask array with known chunk sizes."""
        return frame[self.names].map_partitions(self.scale).to_dask_array(lengths=True)


@dataclass(frozen=True)
class Fitting:
    """How `fit_and_evaluate` trains, beyond the booster's own `params`: the `model.*` keys beside
    model.params (conf/model/xgboost.yaml says what each one does)."""

    early_stopping_rounds: int | None = None  # None: always params' n_estimators rounds
    validation_fraction: float = 0.1  # the training side's groups early stopping watches
    segments_per_track: int | None = None  # None: every segment of a training track

    @classmethod
    def from_config(cls, cfg: DictConfig) -> Fitting:
        """The settings of a stage's config (its `model` section)."""
        return cls(
            early_stopping_rounds=OmegaConf.select(cfg, "model.early_stopping_rounds", default=None),
            validation_fraction=float(OmegaConf.select(cfg, "model.validation_fraction", default=0.1)),
            segments_per_track=OmegaConf.select(cfg, "model.segments_per_track", default=None),
        )

    @classmethod
    def defaults(cls) -> Fitting:
        """The shipped defaults: conf/model/xgboost.yaml as installed."""
        text = resources.files("genre_hpc.conf").joinpath("model", "xgboost.yaml").read_text()
        return cls.from_config(OmegaConf.create({"model": OmegaConf.create(text)}))


@dataclass
class TrainingArrays:
    """What a fit is given: the training rows and the validation rows, each one chunk per worker
    that holds some, the standardisation fitted on the training rows, and what was left out."""

    x: da.Array
    y: da.Array
    scaler: Standardizer
    x_valid: da.Array | None  # None: no validation rows (early stopping off, or no track to spare)
    y_valid: da.Array | None
    rows_before_cap: int  # the training side's segments before model.segments_per_track

    @property
    def rows(self) -> int:
        return int(self.x.shape[0])

    @property
    def validation_rows(self) -> int:
        return 0 if self.x_valid is None else int(self.x_valid.shape[0])


class RoundClock(TrainingCallback):
    """Seconds of every boosting round, as the worker that runs it sees them; they reach the driver
    as a booster attribute (`CLOCK_ATTRIBUTE`), which `fit_and_evaluate` removes before anything is
    saved, so the model's bytes do not depend on them. With the seconds go the epochs it saw and
    the rounds the worker's booster held, so that a clock that missed a round says which
    (`best_rounds` logs it)."""

    def __init__(self) -> None:
        # by booster: worker threads may share this object
        self._starts: dict[int, float] = {}
        self._ends: dict[int, list[tuple[int, float]]] = {}

    def before_training(self, model: xgboost.Booster) -> xgboost.Booster:
        self._starts[id(model)] = time.perf_counter()
        self._ends[id(model)] = []
        return model

    def after_iteration(self, model: xgboost.Booster, epoch: int, evals_log: dict) -> bool:
        self._ends.setdefault(id(model), []).append((epoch, time.perf_counter()))
        return False

    def after_training(self, model: xgboost.Booster) -> xgboost.Booster:
        start = self._starts.pop(id(model), None)
        ends = self._ends.pop(id(model), [])
        # xgboost < 3.1 holds callbacks in a set and stops at the first that says stop: when
        # EarlyStopping comes first (set order follows object ids), the last round's
        # after_iteration never reaches this clock; the round ends here, as training does
        rounds = int(model.num_boosted_rounds())
        if ends and ends[-1][0] == rounds - 2:
            ends.append((rounds - 1, time.perf_counter()))
        times = ([] if start is None else [start]) + [t for _, t in ends]
        clock = {
            "seconds": np.diff(times).round(6).tolist(),
            "epochs": [epoch for epoch, _ in ends],
            "started": start is not None,
            "rounds": rounds,
        }
        model.set_attr(**{CLOCK_ATTRIBUTE: json.dumps(clock)})
        return model


CLOCK_ATTRIBUTE = "genre_hpc_round_seconds"


def fit_and_evaluate(
    client: Client,
    data: TrainingData,
    *,
    params: dict[str, Any],
    files: ModelFiles | None,
    fitting: Fitting | None = None,
    stage: str = "train",
    subsample_rows: int | None = None,
    seed: int = 0,
) -> dict[str, Any]:
    """Fit DaskXGBClassifier on the training tracks, save it (unless `files` is None), score the
    held-out tracks.

    `fitting` (default: the shipped model.* defaults, `Fitting.defaults()`; stages pass
    `Fitting.from_config(cfg)`) sets early stopping and the segment cap: with early stopping, a
    `validation_fraction` of the training side's groups (whole groups, stratified by genre, fixed
    by the split's seed) is not trained on; their rows, read by the workers, are xgboost.dask's
    eval_set, and the saved model keeps the rounds up to the best validation loss. `stage` names
    the log lines. `subsample_rows` bounds the rows each round sees, as a subsample of the training
    rows (compare's xgboost); `seed` is the interval's bootstrap's.

    The model knows the genres of the training side; a genre only the test side has is named in
    `labels_absent_from_training`, and its tracks count as wrong (no model can name it)."""
    fitting = Fitting.defaults() if fitting is None else fitting
    known = data.train_classes()
    validation = validation_tracks(data, fitting)
    arrays = training_arrays(client, data, known, validation=validation, cap=fitting.segments_per_track)
    stopping = fitting.early_stopping_rounds if arrays.x_valid is not None else None
    if subsample_rows is not None and arrays.rows > subsample_rows:
        fraction = min(float(params.get("subsample") or 1.0), subsample_rows / arrays.rows)
        params = {**params, "subsample": fraction}

    model = DaskXGBClassifier(**{**params, "early_stopping_rounds": stopping, "callbacks": [RoundClock()]})
    model.client = client
    fit_started = time.perf_counter()
    if stopping is None:
        model.fit(arrays.x, arrays.y)
    else:
        model.fit(arrays.x, arrays.y, eval_set=[(arrays.x_valid, arrays.y_valid)], verbose=False)
    fit_seconds = time.perf_counter() - fit_started
    booster, rounds = best_rounds(model)
    rounds.update(
        max_rounds=int(model.get_num_boosting_rounds()),
        early_stopping_rounds=stopping,
        validation_fraction=fitting.validation_fraction if stopping is not None else None,
        validation_tracks=len(validation) if stopping is not None else 0,
        validation_segments=arrays.validation_rows,
    )
    timing = _timing(rounds.pop("round_seconds"), fit_seconds)

    # the kept rounds only: the scores are those of the model that is saved
    proba, ids = predict_test_side(client, data, booster, arrays.scaler)
    proba = expand(proba, known, data.classes)
    if files is not None:
        save(files, booster, scaler=arrays.scaler, data=data, classes=known)
    metrics = evaluate(proba, ids, data.classes, seed=seed)
    metrics.update(
        split=data.split.summary(),
        evaluated_on=f"test side of the {data.split.label()}",
        model={"name": "xgboost.dask.DaskXGBClassifier", "params": params, "classes": known},
        labels_absent_from_training=sorted(set(data.classes) - set(known)),
        **rounds,
        **timing,
        train_segments=arrays.rows,
        train_tracks=len(data.side_tracks("train")) - (len(validation) if stopping is not None else 0),
        segments_per_track=fitting.segments_per_track,
        segments_left_out_by_cap=arrays.rows_before_cap - arrays.rows - arrays.validation_rows,
    )
    _log_fit(stage, metrics, requested=fitting, cap_before=arrays.rows_before_cap)
    return metrics


def predict_test_side(
    client: Client, data: TrainingData, booster: xgboost.Booster, scaler: Standardizer
) -> tuple[np.ndarray, pd.DataFrame]:
    """The booster's probabilities for every test-side segment, with its track_id and label, in the
    dataset's part order: each worker reads a share of the parts and predicts its own rows; only
    the probabilities travel. (A persisted Dask DataFrame of the side, its lengths, then
    xgboost.dask.predict and the ids computed apart took 1.6-4 s for the demo's 200 test rows on
    a loaded machine; this takes 0.2-0.4 s, the same probabilities.)"""
    parts = data.store.parts()
    placed = shares.place(client, data.reader("test"), [p for p, _ in parts], [n for _, n in parts])
    if not placed:
        raise DatasetError(f"the {data.split.label()} leaves no test rows: check split.*")
    raw = bytes(booster.save_raw(raw_format="ubj"))
    found = shares.gather(client, placed, partial(_predict_rows, raw, scaler))
    proba = np.concatenate([p for p, _ in found])
    ids = pd.concat([i for _, i in found], ignore_index=True)
    return proba, ids


def _predict_rows(raw: bytes, scaler: Standardizer, rows: pd.DataFrame) -> tuple[np.ndarray, pd.DataFrame]:
    booster = xgboost.Booster(model_file=bytearray(raw))
    booster.set_param({"nthread": get_worker().state.nthreads})
    proba = booster.inplace_predict(scaler.scale_array(rows))
    return np.asarray(proba), rows[["track_id", "label"]].reset_index(drop=True)


def validation_tracks(data: TrainingData, fitting: Fitting) -> frozenset[str]:
    """The training tracks early stopping watches instead of training on: `validation_fraction` of
    the training side's groups, whole, stratified by genre, every genre keeping one group to train
    on, the same on every run of the split (its seed). Empty when early stopping is off."""
    if fitting.early_stopping_rounds is None:
        return frozenset()
    tracks = data.side_tracks("train")[["track_id", "label", "group"]]
    fraction = fitting.validation_fraction
    return stratified_tracks(tracks, fraction=fraction, seed=data.split.seed, keep_one=True)


def best_rounds(model: DaskXGBClassifier) -> tuple[xgboost.Booster, dict[str, Any]]:
    """The fitted booster cut to its best round (the last one without early stopping), without the
    round clock; what was trained, what is kept, and the validation loss."""
    booster = model.get_booster()
    clock = json.loads(booster.attr(CLOCK_ATTRIBUTE) or "{}")
    booster.set_attr(**{CLOCK_ATTRIBUTE: None})
    trained = int(booster.num_boosted_rounds())
    seconds = clock.get("seconds", [])
    if clock and len(seconds) != trained:
        log.warning(
            "round clock: %d round times for %d rounds trained (epochs seen %s, before_training seen: %s, "
            "the worker's booster held %s rounds): per-round seconds are over the rounds timed",
            len(seconds), trained, clock.get("epochs"), clock.get("started"), clock.get("rounds"),
        )  # fmt: skip
    info: dict[str, Any] = {"rounds_trained": trained, "rounds_used": trained, "round_seconds": seconds}
    history = model.evals_result() if model.early_stopping_rounds is not None else {}
    if history:
        (metric, losses), *_ = next(iter(history.values())).items()
        best = int(booster.attr("best_iteration"))
        booster = booster[: best + 1]
        # best_iteration and best_score stay as xgboost wrote them (both describe the cut model)
        info.update(
            rounds_used=best + 1,
            validation_metric=metric,
            validation_loss={
                "first": float(losses[0]),
                "best": float(losses[best]),
                "last": float(losses[-1]),
            },
        )
    return booster, info


def _timing(round_seconds: list[float], fit_seconds: float) -> dict[str, float | None]:
    """The fit's clock: all of it, the boosting rounds (each one: its trees and, with early stopping,
    the validation loss), and the rest (matrices and quantile sketch, starting the workers' ring)."""
    boosting = float(np.sum(round_seconds)) if round_seconds else None
    return {
        "fit_seconds": fit_seconds,
        "boosting_seconds": boosting,
        "per_round_seconds": boosting / len(round_seconds) if round_seconds else None,
        "first_round_seconds": float(round_seconds[0]) if round_seconds else None,
        "fit_setup_seconds": fit_seconds - boosting if boosting is not None else None,
    }


def _log_fit(stage: str, metrics: dict[str, Any], *, requested: Fitting, cap_before: int) -> None:
    """What the fit did, in words: the cap, the rounds and why, the clock."""
    cap = requested.segments_per_track
    if cap is not None:
        left = metrics["segments_left_out_by_cap"]
        log.info(
            "%s: model.segments_per_track=%d left out %d of %d training-side segments (%.1f%%)%s",
            stage, cap, left, cap_before, 100.0 * left / max(cap_before, 1),
            "" if left else ": no training track is longer",
        )  # fmt: skip
    trained, used, most = metrics["rounds_trained"], metrics["rounds_used"], metrics["max_rounds"]
    if metrics["early_stopping_rounds"] is not None:
        watched = (
            f"validation {metrics['validation_metric']} on {metrics['validation_tracks']} held-out training "
            f"tracks ({metrics['validation_segments']} segments, never trained on)"
        )
        loss = metrics["validation_loss"]
        if trained < most:
            what = (
                f"stopped at round {trained} of at most {most} ({watched}: best {loss['best']:.4f} at round "
                f"{used}, none better in the {metrics['early_stopping_rounds']} rounds after)"
            )
        else:
            what = f"ran all {most} rounds ({watched}: best {loss['best']:.4f} at round {used})"
        what += f"; the model keeps its first {used} rounds"
    elif requested.early_stopping_rounds is None:
        what = f"{trained} rounds (early stopping off: model.early_stopping_rounds is null)"
    else:
        what = (
            f"{trained} rounds, early stopping off: no validation tracks, as model.validation_fraction="
            f"{requested.validation_fraction} of each genre's training groups rounds to none"
        )
    clock = ""
    if metrics["per_round_seconds"] is not None:
        clock = (
            f"; fit {metrics['fit_seconds']:.1f} s: {metrics['fit_setup_seconds']:.1f} s to build the "
            f"matrices, {metrics['per_round_seconds']:.3f} s per round"
        )
    log.info("%s: %s%s", stage, what, clock)


def training_arrays(
    client: Client,
    data: TrainingData,
    classes: list[str],
    *,
    validation: frozenset[str] = frozenset(),
    cap: int | None = None,
) -> TrainingArrays:
    """The training side's scaled features and class codes (the order of `classes`), one chunk per
    worker, each read and kept where xgboost.dask's rank order puts it (flow/shares.py): the same
    fit on every run. Each worker reads its parts once, caps the segments of each track at `cap`
    and keeps the rows of the `validation` tracks apart, as the validation chunks (on the same
    worker); the standardisation is fitted on the training rows."""
    parts = data.store.parts()
    placed = shares.place(
        client, CappedReader(data.reader("train"), cap), [p for p, _ in parts], [n for _, n in parts]
    )
    before = sum(shares.gather(client, placed, rows_before_cap)) if placed else 0
    train = shares.derive(client, placed, partial(_tracks, validation, False)) if validation else placed
    valid = shares.derive(client, placed, partial(_tracks, validation, True)) if validation else []
    del placed  # the derived shares hold what is kept; a worker need not hold its rows twice
    if not train:
        raise DatasetError(f"the {data.split.label()} leaves no train rows: check split.*")
    scaler = Standardizer.combine(shares.gather(client, train, partial(_moments, data.names)), data.names)
    codes = {label: i for i, label in enumerate(classes)}

    def arrays(held: list[shares.Share], prefix: str) -> tuple[da.Array, da.Array]:
        x = shares.array(
            client, held, scaler.scale_array, tail=(len(data.names),), dtype=np.float32, prefix=f"{prefix}-x"
        )
        return x, shares.array(client, held, partial(_codes, codes), dtype=np.int32, prefix=f"{prefix}-y")

    x, y = arrays(train, "train")
    x_valid, y_valid = arrays(valid, "valid") if valid else (None, None)
    return TrainingArrays(x, y, scaler, x_valid, y_valid, before)


@dataclass(frozen=True)
class CappedReader:
    """A side's reader (TrainingData.reader) that keeps at most `cap` segments of each track, spread
    over it (flow/sampling.py's cap_segments), as each worker reads its share; None keeps all.

    The rows it returns say in `attrs["rows_before_cap"]` how many side rows there were before
    the cap: what the cap left out is counted where the rows are, never by reading them again."""

    read: SideReader
    cap: int | None = None

    def __call__(self, parts: list[str]) -> pd.DataFrame:
        seen = [0]

        def capped(rows: pd.DataFrame) -> pd.DataFrame:
            seen[0] += len(rows)
            return cap_segments(rows, self.cap)

        # a track's segments are all in one part (one batch of one genre): capped part by part
        rows = self.read(parts, then=None if self.cap is None else capped)
        rows.attrs["rows_before_cap"] = seen[0] if self.cap is not None else len(rows)
        return rows


def rows_before_cap(rows: pd.DataFrame) -> int:
    """The side rows a CappedReader saw before its cap."""
    return int(rows.attrs.get("rows_before_cap", len(rows)))


def _tracks(tracks: frozenset[str], inside: bool, rows: pd.DataFrame) -> pd.DataFrame:
    """The rows of `tracks` (inside) or of the others."""
    return rows[rows.track_id.isin(tracks).to_numpy() == inside].reset_index(drop=True)


def _moments(names: list[str], rows: pd.DataFrame) -> tuple[int, np.ndarray, np.ndarray]:
    """Count, mean and sum of squared deviations of each feature of one share (float64)."""
    return array_moments(rows[names])


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
