"""The compare stage: the origin study's model lineup on one split, one model per Dask task; or,
with compare.folds=K, on K cross-validation folds, one model x fold per task."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pandas as pd
from distributed import Client
from omegaconf import DictConfig

from genre_hpc.core.atomic import write_csv, write_json
from genre_hpc.core.layout import OutputLayout
from genre_hpc.flow import plots
from genre_hpc.flow.lineup import fit_and_predict, fit_and_predict_fold
from genre_hpc.flow.metrics import SCORES, evaluate, fold_interval, interval_text
from genre_hpc.flow.split import row_folds
from genre_hpc.flow.trainset import TrainingData
from genre_hpc.infra import manifest

log = logging.getLogger(__name__)


def run(cfg: DictConfig, client: Client, out: OutputLayout) -> pd.DataFrame:
    """Fit every model in `compare.models` on the split's train side and score its test side, or
    cross-validate each over `compare.folds` folds."""
    timer = manifest.StageTimer(out, cfg)
    data = TrainingData(out, cfg.split)
    names = list(cfg.compare.models)  # checked by config.check
    if cfg.compare.folds:
        rows, protocol, folds = _cross_validated(
            client, data, names, k=int(cfg.compare.folds), seed=cfg.split.seed
        )
    else:
        rows, protocol, folds = _one_split(client, data, names, seed=cfg.split.seed), data.split.label(), None
    table = pd.DataFrame(rows)
    files = out.comparison(data.split.name)
    write_csv(files.table, table)
    if folds is not None:
        write_csv(files.folds, folds)
    elif files.folds.exists():
        files.folds.unlink()  # a cross-validated comparison of an earlier run is not this one's
    label = f"{data.split.label()}, {protocol}" if folds is not None else data.split.label()
    write_json(
        files.summary, {"split": data.split.summary(), "label": label, "protocol": protocol, "models": rows}
    )
    plots.comparison_png(table, files.figure, title=label)
    timer.finish(
        f"compare_{data.split.name}", {"models": rows, "split": data.split.summary(), "protocol": protocol}
    )
    return table


def _one_split(client: Client, data: TrainingData, names: list[str], *, seed: int) -> list[dict[str, Any]]:
    tr, te = data.side("train").compute(), data.side("test").compute()
    x_train = client.scatter(tr[data.names].to_numpy(np.float32), broadcast=True)
    y_train = client.scatter(data.codes(tr.label).to_numpy(), broadcast=True)
    x_test = client.scatter(te[data.names].to_numpy(np.float32), broadcast=True)
    futures = {
        name: client.submit(
            fit_and_predict,
            name,
            x_train,
            y_train,
            x_test,
            n_classes=len(data.classes),
            seed=seed,
            pure=False,
        )
        for name in names
    }
    ids = te[["track_id", "label"]]
    rows = []
    for name, future in futures.items():
        proba, fit_seconds = future.result()
        scores = evaluate(proba, ids, data.classes, seed=seed)
        interval = scores["track_accuracy_interval"]
        rows.append(
            {
                "model": name,
                "split": data.split.name,
                "leaky": data.split.leaky,
                **{key: scores[key] for key in SCORES},
                "track_accuracy_low": interval["low"],
                "track_accuracy_high": interval["high"],
                "interval": interval["method"],
                "fit_seconds": fit_seconds,
            }
        )
        log.info(
            "compare: %-13s %s, test side: segment accuracy %.3f, track accuracy %s, fit %.1f s",
            name, data.split.label(), scores["segment_accuracy"],
            interval_text(scores["track_accuracy"], interval), fit_seconds,
        )  # fmt: skip
    return rows


def _cross_validated(
    client: Client, data: TrainingData, names: list[str], *, k: int, seed: int
) -> tuple[list[dict[str, Any]], str, pd.DataFrame]:
    """Every model on every fold (one task each); per model the mean over folds and its interval."""
    frame = data.frame.compute().reset_index(drop=True)
    folds, protocol = row_folds(frame, data.tracks, data.split, n_splits=k, seed=seed, key="compare.folds")
    x = client.scatter(frame[data.names].to_numpy(np.float32), broadcast=True)
    y = client.scatter(data.codes(frame.label).to_numpy(), broadcast=True)
    fold_of = client.scatter(folds, broadcast=True)
    futures = {
        (name, fold): client.submit(
            fit_and_predict_fold,
            name,
            x,
            y,
            fold_of,
            fold,
            n_classes=len(data.classes),
            seed=seed,
            pure=False,
        )
        for name in names
        for fold in range(k)
    }
    per_fold = []
    for (name, fold), future in futures.items():
        proba, fit_seconds = future.result()
        scores = evaluate(proba, frame.loc[folds == fold, ["track_id", "label"]], data.classes, seed=seed)
        per_fold.append(
            {"model": name, "fold": fold, **{key: scores[key] for key in SCORES}, "fit_seconds": fit_seconds}
        )
    table = pd.DataFrame(per_fold)
    rows = []
    for name in names:
        mine = table[table.model == name]
        row: dict[str, Any] = {"model": name, "split": data.split.name, "leaky": data.split.leaky, "folds": k}
        infos = {key: fold_interval(mine[key].to_numpy()) for key in SCORES}
        for key, info in infos.items():
            row.update(
                {
                    key: info["mean"],
                    f"{key}_std": info["std"],
                    f"{key}_low": info["low"],
                    f"{key}_high": info["high"],
                }
            )
        row["interval"] = infos["track_accuracy"]["method"]
        row["fit_seconds"] = float(mine.fit_seconds.mean())
        rows.append(row)
        log.info(
            "compare: %-13s %s: segment accuracy %.3f, track accuracy %s, mean over %d folds",
            name, data.split.label(), row["segment_accuracy"],
            interval_text(row["track_accuracy"], infos["track_accuracy"]), k,
        )  # fmt: skip
    return rows, protocol, table
