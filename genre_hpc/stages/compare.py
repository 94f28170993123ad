"""The compare stage: the origin study's model lineup on one split, one model per Dask task."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
from distributed import Client
from omegaconf import DictConfig

from genre_hpc.core.atomic import write_csv, write_json
from genre_hpc.core.layout import OutputLayout
from genre_hpc.flow import plots
from genre_hpc.flow.lineup import fit_and_predict
from genre_hpc.flow.metrics import evaluate
from genre_hpc.flow.trainset import TrainingData
from genre_hpc.infra import manifest

log = logging.getLogger(__name__)


def run(cfg: DictConfig, client: Client, out: OutputLayout) -> pd.DataFrame:
    """Fit every model in `compare.models` on the split's train side; score its test side."""
    timer = manifest.StageTimer(out, cfg)
    data = TrainingData(out, cfg.split)
    names = list(cfg.compare.models)  # checked by config.check
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
            seed=cfg.split.seed,
            pure=False,
        )  # fmt: skip
        for name in names
    }
    ids = te[["track_id", "label"]]
    rows = []
    for name, future in futures.items():
        proba, fit_seconds = future.result()
        scores = evaluate(proba, ids, data.classes)
        rows.append(
            {
                "model": name,
                "split": data.split.name,
                "leaky": data.split.leaky,
                "segment_accuracy": scores["segment_accuracy"],
                "track_accuracy": scores["track_accuracy"],
                "track_macro_f1": scores["track_macro_f1"],
                "segment_macro_f1": scores["segment_macro_f1"],
                "fit_seconds": fit_seconds,
            }
        )
        log.info(
            "compare: %-13s %s, test side: segment accuracy %.3f, track accuracy %.3f, fit %.1f s",
            name, data.split.label(), scores["segment_accuracy"], scores["track_accuracy"], fit_seconds,
        )  # fmt: skip
    table = pd.DataFrame(rows)
    files = out.comparison(data.split.name)
    write_csv(files.table, table)
    write_json(files.summary, {"split": data.split.summary(), "label": data.split.label(), "models": rows})
    plots.comparison_png(table, files.figure, title=f"test side of the {data.split.label()}")
    timer.finish(f"compare_{data.split.name}", {"models": rows, "split": data.split.summary()})
    return table
