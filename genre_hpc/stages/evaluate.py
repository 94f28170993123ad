"""The evaluate stage: K-fold cross-validation of the configured model over whole tracks.

Every track is tested exactly once, by a model that never saw it (nor a copy of its audio, nor
a track of its `split.group_by` value). `evaluate.folds=auto` (default) draws 10 folds, or
`evaluate.large_folds` from `evaluate.large_from_rows` rows on, where each fold costs about a train.
`evaluate.engine=auto` (default) chooses by size (flow/crossval.py's fits_worker, logged with its
figures): folds side by side, one single-threaded fit per fold as a Dask task on a worker that read
all rows itself (`tasks`), when a worker can hold them within what xgboost.dask would need for its
share; otherwise one xgboost.dask fit over the whole cluster per fold, one fold after another
(`dask`). The driver draws folds per track and never holds the rows. Each fold stops early on a
validation slice of its training tracks, which it never trains on; folds.csv records the rounds.
"""

from __future__ import annotations

import logging
import time
import uuid
from typing import Any

import numpy as np
import pandas as pd
from distributed import Client, Future, as_completed
from omegaconf import DictConfig, OmegaConf

from genre_hpc.core.atomic import write_csv, write_json
from genre_hpc.core.errors import ConfigError
from genre_hpc.core.layout import OutputLayout
from genre_hpc.flow import crossval, model, plots, shares
from genre_hpc.flow.metrics import SCORES, bootstrap_interval, evaluate, fold_interval, interval_text
from genre_hpc.flow.split import Split, row_folds
from genre_hpc.flow.trainset import TrainingData
from genre_hpc.infra import manifest

log = logging.getLogger(__name__)


def run(cfg: DictConfig, client: Client, out: OutputLayout) -> dict[str, Any]:
    """Cross-validate `model.params` over `evaluate.folds` folds (auto: by size,
    crossval.fold_count); write OUT/evaluate/."""
    timer = manifest.StageTimer(out, cfg)
    files = out.evaluation
    data = TrainingData(out, cfg.split)
    parts = data.store.parts()
    rows = sum(n for _, n in parts)  # from the parts' metadata: the driver reads no row
    k, folds_reason = crossval.fold_count(
        cfg.evaluate.folds, rows=rows, large_folds=int(cfg.evaluate.large_folds),
        large_from_rows=int(cfg.evaluate.large_from_rows),
    )  # fmt: skip
    seed = int(cfg.split.seed)
    tracks = data.tracks
    # the folds of whole tracks (and their groups), drawn on the one-row-per-track table; the leaky
    # split's folds are of segments, drawn where the rows are (only the protocol is used here)
    by_track, protocol = row_folds(tracks, tracks, data.split, n_splits=k, seed=seed, key="evaluate.folds")
    fold_of_track = None if data.split.leaky else pd.Series(by_track, index=tracks.track_id.to_numpy())
    params = OmegaConf.to_container(cfg.model.params, resolve=True)
    engine, why = _engine(cfg, client, data, rows=rows, k=k)
    log.info(
        "evaluate: %s; %d segments of %d tracks; %d folds (%s); engine=%s: %s",
        protocol, rows, len(tracks), k, folds_reason, engine, why,
    )  # fmt: skip
    if engine == "tasks":
        per_fold, tested = _folds_as_tasks(client, cfg, data, parts, fold_of_track, k, params=params)
    else:
        if data.split.leaky:
            raise ConfigError(
                "evaluate.engine", "dask trains on whole-track folds; the random_segments split has none",
                "use evaluate.engine=tasks to cross-validate the leaky split",
            )  # fmt: skip
        per_fold = _folds_on_dask(client, cfg, data, fold_of_track, k, params=params)
        tested = None

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
        "folds_reason": folds_reason,
        "engine": engine,
        "engine_reason": why,
        "model": {"name": "xgboost", "params": params},
        "early_stopping_rounds": OmegaConf.select(cfg, "model.early_stopping_rounds", default=None),
        "validation_fraction": OmegaConf.select(cfg, "model.validation_fraction", default=None),
        "segments_per_track": OmegaConf.select(cfg, "model.segments_per_track", default=None),
        "metrics": {name: fold_interval(table[name].to_numpy()) for name in SCORES},
        "pooled_track_accuracy": float(correct.mean()),
        "pooled_track_accuracy_interval": bootstrap_interval(correct, seed=seed),
        "tested_tracks": int(correct.size),
        "classes": data.classes,
        "confusion_matrix_tracks": pooled.tolist(),
    }
    write_csv(files.folds, table)
    write_json(files.summary, summary)
    if fold_of_track is not None:  # a track's segments share its fold: one row per track
        assignments = tracks[["track_id", "label"]].assign(fold=by_track, group=tracks.group.to_numpy())
    else:  # the leaky folds are of segments: as the workers tested them
        assignments = tested[["track_id", "label", "fold", "segment"]]
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


def _engine(cfg: DictConfig, client: Client, data: TrainingData, *, rows: int, k: int) -> tuple[str, str]:
    """evaluate.engine, or for auto the engine the rows call for (crossval.choose_engine), and why."""
    cap = OmegaConf.select(cfg, "model.segments_per_track", default=None)
    fold_train_rows = rows * (k - 1) // k
    if cap is not None:
        fold_train_rows = min(fold_train_rows, len(data.tracks) * (k - 1) // k * int(cap))
    return crossval.choose_engine(
        client, key="evaluate.engine", asked=cfg.evaluate.engine,
        worker_memory=OmegaConf.select(cfg, "evaluate.worker_memory", default=None), rows=rows,
        fit_rows=fold_train_rows, features=len(data.names), tasks="folds side by side",
        dask="xgboost.dask over the cluster, fold after fold",
    )  # fmt: skip


def _folds_as_tasks(
    client: Client,
    cfg: DictConfig,
    data: TrainingData,
    parts: list[tuple[str, int]],
    fold_of_track: pd.Series | None,
    k: int,
    *,
    params: dict,
) -> tuple[list[dict[str, Any]], pd.DataFrame]:
    """One single-threaded XGBClassifier fit per fold, as a task on a worker that read all rows
    itself (one pinned read per worker, flow/crossval.py); the driver sends track ids, never rows.
    Also every test row's track, label, segment and fold."""
    seed = int(cfg.split.seed)
    workers = shares.ranked_workers(client)
    tracks = data.tracks[["track_id", "label", "group"]]
    token = uuid.uuid4().hex
    # the track ids and their folds go to every worker once, beside the graph (10^5 tracks' ids
    # are megabytes); each fold then names its validation tracks by position
    track_ids = client.scatter(tracks.track_id.to_numpy(dtype=object), broadcast=True)
    folds = None if fold_of_track is None else client.scatter(fold_of_track.to_numpy(), broadcast=True)
    held = [
        client.submit(
            crossval.read_held,
            data.store,
            parts,
            names=data.names,
            classes=data.classes,
            track_ids=track_ids,
            fold_of_track=folds,
            n_splits=k,
            seed=seed,
            workers=[worker],
            allow_other_workers=True,
            pure=False,
            key=f"evaluate-rows-{i}-{token}",
        )
        for i, worker in enumerate(workers)
    ]
    fraction = float(OmegaConf.select(cfg, "model.validation_fraction", default=0.1))
    stopping = OmegaConf.select(cfg, "model.early_stopping_rounds", default=None)
    cap = OmegaConf.select(cfg, "model.segments_per_track", default=None)
    threads = {
        w: int(info.get("nthreads") or 1)
        for w, info in client.scheduler_info(n_workers=-1)["workers"].items()
    }

    def start(fold: int, at: int) -> Future:
        validation = (
            crossval.validation_tracks(tracks, fold_of_track, fold, fraction=fraction, seed=seed)
            if stopping is not None
            else frozenset()
        )
        watched = np.flatnonzero(tracks.track_id.isin(validation))
        future = client.submit(
            crossval.fit_fold, held[at], fold, watched, params=params, n_classes=len(data.classes),
            early_stopping_rounds=stopping, segments_per_track=cap, workers=[workers[at]],
            allow_other_workers=True, pure=False, key=f"evaluate-fold-{fold}-{token}",
        )  # fmt: skip
        placed[future] = at
        return future

    # A worker is handed a fold only when it has a thread free for it: no fold waits in a queue,
    # where Dask's work stealing could move it to an idle worker along with a copy of all the rows
    # (the memory rule counts one copy per worker). Where a fold runs does not change its result.
    pending = list(range(k))
    placed: dict[Future, int] = {}
    running = as_completed(
        [
            start(pending.pop(0), at)
            for at, w in enumerate(workers)
            for _ in range(threads.get(w, 1))
            if pending
        ]
    )
    classes = np.array(data.classes, dtype=object)
    results, tested = [], []
    for done, future in enumerate(running, start=1):
        if pending:  # the thread this fold held is free
            running.add(start(pending.pop(0), placed[future]))
        got = future.result()
        ids = pd.DataFrame({"track_id": got["track_id"], "label": classes[got["y"]]})
        tested.append(ids.assign(fold=got["fold"], segment=got["segment"]))
        row = _fold_row(got["fold"], evaluate(got["proba"], ids, data.classes), got["fit_seconds"])
        row.update({key: got[key] for key in FOLD_FIT})
        results.append(row)
        log.info(
            "evaluate: fold %d done (%d/%d), track accuracy %.3f, %d rounds (%d training segments, "
            "%d validation tracks)", got["fold"], done, k, row["track_accuracy"], got["rounds_used"],
            got["train_segments"], got["validation_tracks"],
        )  # fmt: skip
    held.clear()  # the workers let go of the rows
    tested_rows = pd.concat(tested, ignore_index=True).sort_values("fold", kind="stable")
    return results, tested_rows


# what each fold's fit records in folds.csv beside its scores
FOLD_FIT = ("rounds_used", "train_segments", "train_tracks", "validation_tracks", "validation_segments")


def _folds_on_dask(
    client: Client, cfg: DictConfig, data: TrainingData, fold_of_track: pd.Series, k: int, *, params: dict
) -> list[dict[str, Any]]:
    """xgboost.dask over the whole cluster for each fold in turn: for data too large for one worker."""
    results = []
    for fold in range(k):
        test = frozenset(fold_of_track.index[fold_of_track == fold])
        data.split = Split(
            name=f"fold {fold}", description=f"fold {fold} of {k}", test_tracks=test,
            train_tracks=frozenset(fold_of_track.index) - test,
        )  # fmt: skip
        started = time.perf_counter()
        metrics = model.fit_and_evaluate(
            client, data, params=params, files=None, fitting=model.Fitting.from_config(cfg),
            stage=f"evaluate fold {fold}",
        )  # fmt: skip
        row = _fold_row(fold, metrics, metrics.get("fit_seconds", time.perf_counter() - started))
        # what model.fit_and_evaluate records of the rounds it used (early stopping), when it does
        row.update({key: metrics[key] for key in FOLD_FIT if key in metrics})
        results.append(row)
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
    """Every tested track's 0/1 outcome, fold after fold in fold order (folds finish in any order;
    the pooled bootstrap counts outcomes, so its interval does not depend on it, but the array
    is the same on every run)."""
    return np.concatenate([f["correct_tracks"] for f in sorted(per_fold, key=lambda f: f["fold"])])


def _correct(matrix: np.ndarray) -> np.ndarray:
    """Per-track 0/1 outcomes of a confusion matrix (their order does not matter to a bootstrap)."""
    hits = int(np.trace(matrix))
    return np.concatenate([np.ones(hits), np.zeros(int(matrix.sum()) - hits)])
