"""The evaluate stage: K-fold cross-validation of the configured model over whole tracks.

Every track is tested exactly once, by a model that never saw it (nor a copy of its audio, nor
a track of its `split.group_by` value). Each fold is one single-threaded fit as a Dask task, the
folds side by side (`evaluate.engine=tasks`, for data that fits a worker), or one xgboost.dask
fit over the whole cluster per fold, one fold after another (`evaluate.engine=dask`).
"""

from __future__ import annotations

import logging
import time
from typing import Any

import numpy as np
import pandas as pd
from distributed import Client, as_completed
from omegaconf import DictConfig, OmegaConf
from xgboost import XGBClassifier

from genre_hpc.core.atomic import write_csv, write_json
from genre_hpc.core.errors import ConfigError
from genre_hpc.core.layout import OutputLayout
from genre_hpc.flow import model, plots
from genre_hpc.flow.lineup import fit_and_predict_fold
from genre_hpc.flow.metrics import SCORES, bootstrap_interval, evaluate, fold_interval, interval_text
from genre_hpc.flow.split import Split, row_folds
from genre_hpc.flow.trainset import TrainingData
from genre_hpc.infra import manifest

log = logging.getLogger(__name__)


def run(cfg: DictConfig, client: Client, out: OutputLayout) -> dict[str, Any]:
    """Cross-validate `model.params` over `evaluate.folds` folds; write OUT/evaluate/."""
    timer = manifest.StageTimer(out, cfg)
    files = out.evaluation
    data = TrainingData(out, cfg.split)
    k = int(cfg.evaluate.folds)
    rows = data.frame.compute().reset_index(drop=True)
    folds, protocol = row_folds(
        rows, data.tracks, data.split, n_splits=k, seed=cfg.split.seed, key="evaluate.folds"
    )
    params = OmegaConf.to_container(cfg.model.params, resolve=True)
    engine = cfg.evaluate.engine
    log.info(
        "evaluate: %s; %d segments of %d tracks; engine=%s", protocol, len(rows), len(data.tracks), engine
    )
    if engine == "tasks":
        per_fold = _folds_as_tasks(client, data, rows, folds, k, params=params, seed=cfg.split.seed)
    else:
        if data.split.leaky:
            raise ConfigError(
                "evaluate.engine", "dask trains on whole-track folds; the random_segments split has none",
                "use evaluate.engine=tasks to cross-validate the leaky split",
            )  # fmt: skip
        per_fold = _folds_on_dask(client, data, rows, folds, k, params=params)

    table = pd.DataFrame(
        [{key: v for key, v in f.items() if not key.startswith("confusion")} for f in per_fold]
    )
    table = table.sort_values("fold").reset_index(drop=True)
    pooled = np.sum([np.array(f["confusion_matrix_tracks"]) for f in per_fold], axis=0)
    correct = pooled_outcomes(per_fold)
    table = table.drop(columns=["correct_tracks"])
    summary = {
        "protocol": protocol,
        # the folds follow the split's grouping (and leak, for random_segments), not its two sides
        "split": {"name": data.split.name, "label": data.split.label(), "leaky": data.split.leaky},
        "leaky": data.split.leaky,
        "folds": k,
        "engine": engine,
        "model": {"name": "xgboost", "params": params},
        "metrics": {name: fold_interval(table[name].to_numpy()) for name in SCORES},
        "pooled_track_accuracy": float(correct.mean()),
        "pooled_track_accuracy_interval": bootstrap_interval(correct, seed=cfg.split.seed),
        "tested_tracks": int(correct.size),
        "classes": data.classes,
        "confusion_matrix_tracks": pooled.tolist(),
    }
    write_csv(files.folds, table)
    write_json(files.summary, summary)
    assignments = rows[["track_id", "label"]].assign(fold=folds)
    if not data.split.leaky:  # a track's segments share its fold: one row per track
        assignments = assignments.drop_duplicates("track_id").merge(
            data.tracks[["track_id", "group"]], on="track_id"
        )
    else:
        assignments["segment"] = rows.segment.to_numpy()
    write_csv(files.assignments, assignments)
    title = f"{k}-fold CV, {'LEAKY ' if data.split.leaky else ''}pooled over folds"
    plots.confusion_matrix_png(pooled, data.classes, files.confusion, title=f"xgboost, tracks, {title}")
    plots.folds_png(table, summary["metrics"], files.figure, title=protocol)
    track = summary["metrics"]["track_accuracy"]
    timer.finish(
        "evaluate",
        {"protocol": protocol, "folds": k, "engine": engine,
         **{name: summary["metrics"][name] for name in SCORES}},
    )  # fmt: skip
    log.info(
        "evaluate: %s: track accuracy %s, mean over folds (std %.3f); segment accuracy %.3f (%.1f s)",
        protocol, interval_text(track["mean"], track), track["std"],
        summary["metrics"]["segment_accuracy"]["mean"], timer.seconds,
    )  # fmt: skip
    return summary


def _folds_as_tasks(
    client: Client,
    data: TrainingData,
    rows: pd.DataFrame,
    folds: np.ndarray,
    k: int,
    *,
    params: dict,
    seed: int,
) -> list[dict[str, Any]]:
    """One single-threaded XGBClassifier fit per fold, as a task; the data goes to each worker once."""
    x = client.scatter(rows[data.names].to_numpy(np.float32), broadcast=True)
    y = client.scatter(data.codes(rows.label).to_numpy(), broadcast=True)
    fold_of = client.scatter(folds, broadcast=True)
    estimator = XGBClassifier(**{**params, "n_jobs": 1})
    futures = {
        client.submit(
            fit_and_predict_fold,
            estimator,
            x,
            y,
            fold_of,
            fold,
            n_classes=len(data.classes),
            seed=seed,
            pure=False,
        ): fold
        for fold in range(k)
    }
    results = []
    for done, future in enumerate(as_completed(futures), start=1):
        fold = futures[future]
        proba, fit_seconds = future.result()
        ids = rows.loc[folds == fold, ["track_id", "label"]]
        results.append(_fold_row(fold, evaluate(proba, ids, data.classes), fit_seconds))
        log.info(
            "evaluate: fold %d done (%d/%d), track accuracy %.3f",
            fold,
            done,
            k,
            results[-1]["track_accuracy"],
        )
    return results


def _folds_on_dask(
    client: Client, data: TrainingData, rows: pd.DataFrame, folds: np.ndarray, k: int, *, params: dict
) -> list[dict[str, Any]]:
    """xgboost.dask over the whole cluster for each fold in turn: for data too large for one worker."""
    by_track = pd.Series(folds, index=rows.track_id).groupby(level=0).first()
    results = []
    for fold in range(k):
        test = frozenset(by_track.index[by_track == fold])
        data.split = Split(
            name=f"fold {fold}", description=f"fold {fold} of {k}", test_tracks=test,
            train_tracks=frozenset(by_track.index) - test,
        )  # fmt: skip
        started = time.perf_counter()
        metrics = model.fit_and_evaluate(client, data, params=params, files=None)
        results.append(_fold_row(fold, metrics, metrics.get("fit_seconds", time.perf_counter() - started)))
        log.info("evaluate: fold %d/%d done, track accuracy %.3f", fold + 1, k, metrics["track_accuracy"])
    return results


def _fold_row(fold: int, scores: dict[str, Any], fit_seconds: float) -> dict[str, Any]:
    matrix = np.array(scores["confusion_matrix_tracks"])
    return {
        "fold": fold,
        "test_tracks": scores["test_tracks"],
        "test_segments": scores["test_segments"],
        **{name: scores[name] for name in SCORES},
        "fit_seconds": fit_seconds,
        "confusion_matrix_tracks": matrix,
        # one 0/1 per test track, pooled into the all-tracks bootstrap
        "correct_tracks": _correct(matrix),
    }


def pooled_outcomes(per_fold: list[dict[str, Any]]) -> np.ndarray:
    """Every tested track's 0/1 outcome, fold after fold in fold order: folds finish in any order,
    and the pooled bootstrap draws by position, so the order is fixed here for the same interval
    on every run."""
    return np.concatenate([f["correct_tracks"] for f in sorted(per_fold, key=lambda f: f["fold"])])


def _correct(matrix: np.ndarray) -> np.ndarray:
    """Per-track 0/1 outcomes of a confusion matrix (their order does not matter to a bootstrap)."""
    hits = int(np.trace(matrix))
    return np.concatenate([np.ones(hits), np.zeros(int(matrix.sum()) - hits)])
