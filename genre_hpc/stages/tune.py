"""The tune stage: dask-ml GridSearchCV over XGBClassifier with track-grouped folds, then the final fit."""

from __future__ import annotations

import logging
import time
import warnings
from typing import Any

import numpy as np
import pandas as pd
from dask_ml.model_selection import GridSearchCV
from distributed import Client
from omegaconf import DictConfig, OmegaConf
from sklearn.exceptions import FitFailedWarning
from sklearn.model_selection import ParameterGrid, StratifiedKFold
from xgboost import XGBClassifier

from genre_hpc.core.atomic import write_csv, write_json
from genre_hpc.core.errors import DatasetError
from genre_hpc.core.layout import OutputLayout
from genre_hpc.flow import model, plots
from genre_hpc.flow.metrics import interval_text
from genre_hpc.flow.split import LEAK_WARNING, grouped_folds
from genre_hpc.flow.trainset import TrainingData
from genre_hpc.infra import manifest

log = logging.getLogger(__name__)


def run(cfg: DictConfig, client: Client, out: OutputLayout) -> dict[str, Any]:
    """Search `search.grid` on the training tracks; train and score the best on the test tracks."""
    timer = manifest.StageTimer(out, cfg)
    data = TrainingData(out, cfg.split)
    base = OmegaConf.to_container(cfg.model.params, resolve=True)
    grid = OmegaConf.to_container(cfg.search.grid, resolve=True)

    # Folds live in memory (what GridSearchCV is built for); each candidate x fold is one
    # single-threaded task on the cluster.
    frame = data.side("train").compute()
    x = frame[data.names].to_numpy(dtype="float32")
    # codes of the genres the training side has (all, unless the split leaves one out)
    y = data.codes(frame.label, data.train_classes()).to_numpy()
    # folds follow the split's own protocol: grouped by TrainingData.tracks.group (track,
    # duplicate audio, split.group_by), or (random_segments, to show the leak) by segment
    groups = frame.track_id.map(data.tracks.set_index("track_id").group).to_numpy()
    if data.split.leaky:
        folds = StratifiedKFold(n_splits=cfg.search.cv_folds, shuffle=True, random_state=cfg.split.seed)
        fold_kind = f"{cfg.search.cv_folds}-fold StratifiedKFold of segments ({LEAK_WARNING})"
    else:
        folds, note = grouped_folds(groups, y, n_splits=cfg.search.cv_folds, seed=cfg.split.seed)
        by = data.split.details.get("group_by")
        fold_kind = (
            f"{cfg.search.cv_folds} folds of whole training tracks (grouped by track and by duplicate "
            f"audio{f', and by {by}' if by else ''}), stratified by genre" + (f"; {note}" if note else "")
        )
    estimator = XGBClassifier(**{**base, "n_jobs": 1})
    # error_score=nan: dask-ml retries a failing fit forever; a failed fit becomes a NaN score,
    # which is reported below instead
    search = GridSearchCV(
        estimator, grid, cv=folds, scoring=cfg.search.scoring, refit=False, scheduler=client,
        error_score=np.nan,
    )  # fmt: skip
    n_candidates = len(ParameterGrid(grid))
    log.info(
        "tune: %d candidates x %d folds = %d fits on %d segments of %d training tracks",
        n_candidates, cfg.search.cv_folds, n_candidates * cfg.search.cv_folds, len(x),
        frame.track_id.nunique(),
    )  # fmt: skip
    search_started = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FitFailedWarning)  # counted and reported just below
        search.fit(x, y)  # the folds already hold the groups
    search_seconds = time.perf_counter() - search_started

    results = pd.DataFrame(search.cv_results_)
    failed = results[results.mean_test_score.isna()]
    if len(failed):
        raise DatasetError(
            f"{len(failed)} of {len(results)} grid candidates failed to fit "
            f"({', '.join(map(str, failed.params.head(3)))}): check search.grid and model.params"
        )
    write_csv(out.cv_results, results)
    # refit=False (the final fit is xgboost.dask's), so read the winner off the table
    best_row = results.loc[results.rank_test_score.idxmin()]
    best = dict(best_row.params)
    summary = {
        "best_params": best,
        "best_cv_score": float(best_row.mean_test_score),
        "scoring": cfg.search.scoring,
        # GridSearchCV scores the rows it is handed, segments, each alone: not the tracks' vote that
        # train's and evaluate's track accuracy are, so every place that shows it says so
        "scored_per": "segment",
        "cv": fold_kind,
        "search_seconds": search_seconds,
    }
    write_json(out.best_params, summary)
    plots.cv_results_png(results, out.cv_figure, scoring=f"{cfg.search.scoring} per segment")

    metrics = model.fit_and_evaluate(client, data, params={**base, **best}, files=out.tune_model)
    metrics["tuning"] = summary
    metrics["wall_seconds"] = timer.seconds
    write_json(out.tune_metrics, metrics)
    timer.finish(
        "tune",
        {
            **summary,
            "segment_accuracy": metrics["segment_accuracy"],
            "track_accuracy": metrics["track_accuracy"],
            "track_accuracy_interval": metrics["track_accuracy_interval"],
            "split": metrics["split"],
            "wall_seconds": metrics["wall_seconds"],
        },
    )
    log.info(
        "tune: best %s (cv %s per segment %.3f); %s, test side: segment accuracy %.3f, "
        "track accuracy %s (%.1f s)",
        best, cfg.search.scoring, summary["best_cv_score"], data.split.label(), metrics["segment_accuracy"],
        interval_text(metrics["track_accuracy"], metrics["track_accuracy_interval"]), metrics["wall_seconds"],
    )  # fmt: skip
    return metrics
