"""The compare stage: the origin study's model lineup on one split, one model per Dask task."""

from __future__ import annotations

import json
import logging
import time
from typing import Any

import numpy as np
import pandas as pd
from distributed import Client
from omegaconf import DictConfig
from sklearn.ensemble import RandomForestClassifier
from sklearn.neighbors import KNeighborsClassifier
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC
from xgboost import XGBClassifier, XGBRFClassifier

from genre_hpc.core.atomic import atomic_path, write_json
from genre_hpc.flow import plots
from genre_hpc.infra import config, manifest
from genre_hpc.stages import train

log = logging.getLogger(__name__)

# The origin study's lineup; settings are common defaults, one thread per fit (the cluster
# provides the parallelism, one model per task).
MODELS = {
    "knn": lambda seed: KNeighborsClassifier(n_neighbors=5),
    "random_forest": lambda seed: RandomForestClassifier(n_estimators=300, n_jobs=1, random_state=seed),
    "svm": lambda seed: SVC(C=10.0, probability=True, random_state=seed),
    "mlp": lambda seed: MLPClassifier(hidden_layer_sizes=(256, 128), max_iter=400, random_state=seed),
    "xgboost": lambda seed: XGBClassifier(n_estimators=300, max_depth=6, n_jobs=1, random_state=seed),
    "xgboost_rf": lambda seed: XGBRFClassifier(n_estimators=300, max_depth=8, n_jobs=1, random_state=seed),
}


def run(cfg: DictConfig, client: Client) -> pd.DataFrame:
    """Fit every model in `compare.models` on the split's train side; score its test side."""
    started = time.perf_counter()
    data = train.prepare(cfg)
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
        scores = train.evaluate(proba, ids, data.classes)
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
    out = config.output_dir(cfg) / "compare" / data.split.name
    out.mkdir(parents=True, exist_ok=True)
    with atomic_path(out / "comparison.csv") as tmp:
        table.to_csv(tmp, index=False)
    summary = {"split": data.split.summary(), "label": data.split.label(), "models": rows}
    write_json(out / "comparison.json", summary)
    plots.comparison_png(table, out / "comparison.png", title=f"test side of the {data.split.label()}")
    manifest.update(
        config.output_dir(cfg),
        f"compare_{data.split.name}",
        {"models": rows, "split": data.split.summary(), "wall_seconds": time.perf_counter() - started},
        config=config.plain(cfg),
    )
    return table


def fit_and_predict(
    name: str, x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray, *, n_classes: int, seed: int
) -> tuple[np.ndarray, float]:
    """Fit one model (standardised inputs) and return its test probabilities; runs on a worker."""
    model = make_pipeline(StandardScaler(), MODELS[name](seed))
    started = time.perf_counter()
    model.fit(x_train, y_train)
    fit_seconds = time.perf_counter() - started
    proba = model.predict_proba(x_test)
    # a class absent from the training side has no column; put one back for every class
    full = np.zeros((len(x_test), n_classes))
    full[:, model.classes_] = proba
    return full, fit_seconds


def results(cfg: DictConfig) -> dict[str, Any]:
    """Every comparison written under output.dir, by split name."""
    found = {}
    for path in sorted((config.output_dir(cfg) / "compare").glob("*/comparison.json")):
        found[path.parent.name] = json.loads(path.read_text())
    return found
