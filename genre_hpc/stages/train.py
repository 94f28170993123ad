"""The train stage: xgboost.dask on the shared client, evaluated on held-out tracks."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
from distributed import Client
from omegaconf import DictConfig, OmegaConf

from genre_hpc.core.atomic import write_json
from genre_hpc.core.layout import OutputLayout
from genre_hpc.flow import model, plots
from genre_hpc.flow.metrics import interval_text
from genre_hpc.flow.trainset import TrainingData
from genre_hpc.infra import manifest

log = logging.getLogger(__name__)

# what manifest.json keeps of metrics.json
RECORDED = ("segment_accuracy", "track_accuracy", "track_accuracy_interval", "track_macro_f1", "split",
            "fit_seconds", "wall_seconds", "test_tracks", "test_segments", "train_segments",
            "rounds_used", "rounds_trained", "max_rounds", "early_stopping_rounds", "validation_tracks",
            "validation_segments", "segments_per_track", "segments_left_out_by_cap",
            "per_round_seconds", "fit_setup_seconds")  # fmt: skip


def run(cfg: DictConfig, client: Client, out: OutputLayout) -> dict[str, Any]:
    """Train on the training tracks with `model.params`, early stopping and the segment cap of
    `model.*`; write model/ and metrics.json."""
    timer = manifest.StageTimer(out, cfg)
    data = TrainingData(out, cfg.split)
    params = OmegaConf.to_container(cfg.model.params, resolve=True)
    fitting = model.Fitting.from_config(cfg)
    metrics = model.fit_and_evaluate(client, data, params=params, files=out.model, fitting=fitting)
    metrics["wall_seconds"] = timer.seconds
    write_json(out.metrics, metrics)
    plots.confusion_matrix_png(
        np.array(metrics["confusion_matrix_tracks"]),
        metrics["classes"],
        out.confusion_matrix,
        title=(
            f"xgboost, track level, test side of the {data.split.label()}\ntrack accuracy "
            + interval_text(metrics["track_accuracy"], metrics["track_accuracy_interval"])
        ),
    )
    timer.finish("train", {k: metrics[k] for k in RECORDED if k in metrics})
    log.info(
        "train: %s, test side: segment accuracy %.3f, track accuracy %s (%.1f s)",
        data.split.label(), metrics["segment_accuracy"],
        interval_text(metrics["track_accuracy"], metrics["track_accuracy_interval"]), metrics["wall_seconds"],
    )  # fmt: skip
    return metrics
