"""The predict stage: genres of new audio files from a saved model, with the extraction it was trained on."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xgboost
from omegaconf import DictConfig

from genre_hpc.core.atomic import atomic_path, write_text
from genre_hpc.core.errors import AudioError, ConfigError, ModelError
from genre_hpc.flow.audio import SUPPORTED_EXTENSIONS
from genre_hpc.flow.features import FeatureParams
from genre_hpc.flow.schema import FEATURE_VERSION
from genre_hpc.infra import config
from genre_hpc.stages.extract import track_features
from genre_hpc.stages.train import MODEL_FILE, PREPROCESS_FILE


class Model:
    """A saved booster with its preprocessing; refuses a model made for other features."""

    def __init__(self, model_dir: Path) -> None:
        info_path = model_dir / PREPROCESS_FILE
        if not (model_dir / MODEL_FILE).exists() or not info_path.exists():
            raise ConfigError(
                "model_dir", f"{model_dir} holds no {MODEL_FILE} and {PREPROCESS_FILE}",
                "give the model/ folder of a train run, or tune/model",
            )  # fmt: skip
        info = json.loads(info_path.read_text())
        if info.get("feature_version") != FEATURE_VERSION:
            raise ModelError(
                f"{model_dir} was trained on feature-set version {info.get('feature_version')!r}; "
                f"this genre-hpc computes {FEATURE_VERSION!r}, so its answers would be wrong: "
                "retrain it on features extracted by this version"
            )
        self.info = info
        self.params = FeatureParams(**info["feature_params"])
        self.booster = xgboost.Booster(model_file=str(model_dir / MODEL_FILE))
        self.booster.set_param({"nthread": 1})

    def track_probabilities(self, path: str) -> np.ndarray:
        """Genre probabilities of one file: the mean over its segments."""
        frame = track_features(path, params=self.params, block_segments=10)
        x = (frame[self.info["feature_names"]].to_numpy(np.float64) - self.info["mean"]) / self.info["std"]
        proba = self.booster.inplace_predict(x.astype(np.float32))
        if proba.ndim == 1:  # a two-genre model returns P(second genre) only
            proba = np.column_stack([1.0 - proba, proba])
        return proba.mean(axis=0)


def run(cfg: DictConfig) -> pd.DataFrame:
    """Print the top genres of each input and write predictions.csv/json under output.dir."""
    log = logging.getLogger(__name__)
    model = Model(Path(str(cfg.model_dir)).expanduser())
    classes = model.info["classes"]
    top_k = min(int(cfg.top_k), len(classes))
    rows: list[dict[str, Any]] = []
    for path in input_files(cfg.inputs):
        row: dict[str, Any] = {"path": str(path), "error": None}
        try:
            proba = model.track_probabilities(str(path))
        except AudioError as exc:
            row["error"] = str(exc)
            log.error("predict: %s: %s", path, exc)
        else:
            for rank, index in enumerate(np.argsort(proba)[::-1][:top_k], start=1):
                row[f"genre_{rank}"] = classes[index]
                row[f"probability_{rank}"] = float(proba[index])
        rows.append(row)
        sys.stdout.write(_line(row, top_k) + "\n")
    table = pd.DataFrame(rows)
    out = config.output_dir(cfg) / "predictions"
    out.mkdir(parents=True, exist_ok=True)
    with atomic_path(out / "predictions.csv") as tmp:
        table.to_csv(tmp, index=False)
    write_text(out / "predictions.json", table.to_json(orient="records", indent=2) + "\n")
    log.info("predict: %d files, %d unreadable; written to %s", len(table), table.error.notna().sum(), out)
    return table


def input_files(inputs: Any) -> list[Path]:
    """Files named on the command line; folders are searched for audio files."""
    if inputs is None or (isinstance(inputs, str) and not inputs):
        raise ConfigError("inputs", "is empty", "e.g. inputs=[a.mp3,b.flac] or inputs=/path/to/folder")
    items = [inputs] if isinstance(inputs, str) else list(inputs)
    files: list[Path] = []
    for item in items:
        path = Path(str(item)).expanduser()
        if path.is_dir():
            files += sorted(p for p in path.rglob("*") if p.suffix.lower() in SUPPORTED_EXTENSIONS)
        else:
            files.append(path)  # a missing file gets its own error row, not a stop
    if not files:
        raise ConfigError("inputs", f"no audio files ({', '.join(SUPPORTED_EXTENSIONS)}) in {items}")
    return files


def _line(row: dict[str, Any], top_k: int) -> str:
    if row["error"]:
        return f"{row['path']}\tERROR: {row['error']}"
    best = ", ".join(f"{row[f'genre_{i}']} {row[f'probability_{i}']:.2f}" for i in range(1, top_k + 1))
    return f"{row['path']}\t{best}"
