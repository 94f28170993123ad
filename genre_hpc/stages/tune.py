"""The tune stage: dask-ml GridSearchCV over XGBClassifier with track-grouped folds on a sample of the
training tracks (read by the workers), then the best refit on all of them with xgboost.dask."""

from __future__ import annotations

import logging
import time
import warnings
from typing import Any

import numpy as np
import pandas as pd
from dask import delayed
from dask_ml.model_selection import GridSearchCV
from distributed import Client
from omegaconf import DictConfig, OmegaConf
from sklearn.exceptions import FitFailedWarning
from sklearn.model_selection import ParameterGrid
from xgboost import XGBClassifier

from genre_hpc.core.atomic import write_csv, write_json
from genre_hpc.core.errors import DatasetError
from genre_hpc.core.layout import OutputLayout
from genre_hpc.flow import crossval, model, plots, shares
from genre_hpc.flow.metrics import interval_text
from genre_hpc.flow.sampling import stratified_tracks
from genre_hpc.flow.split import LEAK_WARNING, track_folds
from genre_hpc.flow.trainset import TrainingData
from genre_hpc.infra import manifest

log = logging.getLogger(__name__)


def run(cfg: DictConfig, client: Client, out: OutputLayout) -> dict[str, Any]:
    """Search `search.grid` on a sample of the training tracks; refit the best on all of them and
    score it on the test tracks."""
    timer = manifest.StageTimer(out, cfg)
    data = TrainingData(out, cfg.split)
    base = OmegaConf.to_container(cfg.model.params, resolve=True)
    grid = OmegaConf.to_container(cfg.search.grid, resolve=True)
    k = int(cfg.search.cv_folds)
    seed = int(cfg.split.seed)

    # the training tracks (the leaky split has segments of every track on its training side)
    tracks = data.tracks
    if not data.split.leaky:
        tracks = tracks[tracks.track_id.isin(data.split.train_tracks)].reset_index(drop=True)
    wanted = OmegaConf.select(cfg, "search.sample_tracks", default=None)
    if wanted is None or wanted >= len(tracks):
        sample = tracks
    else:  # whole groups, in each genre's proportion, every genre kept
        sample = tracks[tracks.track_id.isin(stratified_tracks(tracks, count=int(wanted), seed=seed))]
    sampled = f"{len(sample)} of {len(tracks)} training tracks" + (
        f" (a sample: search.sample_tracks={wanted}, whole groups stratified by genre, seed {seed})"
        if len(sample) < len(tracks) else ""
    )  # fmt: skip
    cap = OmegaConf.select(cfg, "model.segments_per_track", default=None)

    # folds follow the split's own protocol: grouped by TrainingData.tracks.group (track,
    # duplicate audio, split.group_by), or (random_segments, to show the leak) by segment
    if data.split.leaky:
        fold_of_track = None
        fold_kind = f"{k}-fold StratifiedKFold of segments ({LEAK_WARNING})"
    else:
        fold_of_track, note = track_folds(sample, n_splits=k, seed=seed, key="search.cv_folds")
        by = data.split.details.get("group_by")
        fold_kind = (
            f"{k} folds of whole training tracks (grouped by track and by duplicate "
            f"audio{f', and by {by}' if by else ''}), stratified by genre" + (f"; {note}" if note else "")
        )
    fold_kind += f", on {sampled}"

    # The workers read the sample's rows from their own runs of parts; one task joins them into
    # the search's arrays, so dask-ml's graph holds their keys, never the rows.
    parts = data.store.parts()
    reader = crossval.TrackRows(
        data.store, data.names, frozenset(sample.track_id), data.split if data.split.leaky else None, cap
    )
    placed = shares.place(client, reader, [p for p, _ in parts], [n for _, n in parts])
    if not placed:
        raise DatasetError(f"the {data.split.label()} leaves no training rows to search on: check split.*")
    segments = sum(share.length for share in placed)
    arrays = delayed(crossval.search_arrays, nout=3, pure=True)(
        [share.rows for share in placed], names=data.names, classes=data.train_classes(),
        fold_of_track=fold_of_track, n_splits=k, seed=seed,
    )  # fmt: skip
    x, y, fold = arrays

    # each candidate x fold is one single-threaded fit, at search.n_estimators rounds unless the grid
    # names n_estimators; the refit below runs model.params' rounds, stopped early
    rounds = OmegaConf.select(cfg, "search.n_estimators", default=None)
    searched = {**base, "n_jobs": 1}
    if rounds is not None and "n_estimators" not in grid:
        searched["n_estimators"] = int(rounds)
    estimator = XGBClassifier(**searched)
    # error_score=nan: dask-ml retries a failing fit forever; a failed fit becomes a NaN score,
    # which is reported below instead
    search = GridSearchCV(
        estimator, grid, cv=crossval.FoldColumn(k), scoring=cfg.search.scoring, refit=False,
        scheduler=client, error_score=np.nan,
    )  # fmt: skip
    n_candidates = len(ParameterGrid(grid))
    log.info(
        "tune: %d candidates x %d folds = %d fits%s on %d segments of %s, read by the workers; "
        "then the best refit on all %d training tracks with xgboost.dask",
        n_candidates, k, n_candidates * k,
        "" if "n_estimators" in grid else f" of {searched['n_estimators']} rounds", segments, sampled,
        len(tracks),
    )  # fmt: skip
    search_started = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FitFailedWarning)  # counted and reported just below
        search.fit(x, y, groups=fold)
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
        "candidates": n_candidates,
        "folds": k,
        "fits": n_candidates * k,
        # the rounds each candidate was fitted with in the search (the grid's, when it names them)
        "search_rounds": None if "n_estimators" in grid else searched["n_estimators"],
        "sample": {
            "tracks": int(len(sample)),
            "of_training_tracks": int(len(tracks)),
            "segments": int(segments),
            "sample_tracks": wanted,
            "segments_per_track": cap,
            "seed": seed,
            "how": "whole groups of tracks, stratified by genre; rows read by the workers",
        },
        "refit": f"the best candidate on all {len(tracks)} training tracks (xgboost.dask)",
        "search_seconds": search_seconds,
    }
    write_json(out.best_params, summary)
    plots.cv_results_png(results, out.cv_figure, scoring=f"{cfg.search.scoring} per segment")

    # the refit runs model.params' rounds, stopped early, with the segment cap: model.* as configured
    metrics = model.fit_and_evaluate(
        client, data, params={**base, **best}, files=out.tune_model,
        fitting=model.Fitting.from_config(cfg), stage="tune",
    )  # fmt: skip
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
