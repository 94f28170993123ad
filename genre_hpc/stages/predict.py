"""The predict stage: genres of new audio files from a saved model, with the extraction it was trained on."""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from omegaconf import DictConfig

from genre_hpc.core.atomic import write_csv, write_text
from genre_hpc.core.errors import AudioError
from genre_hpc.core.layout import ModelFiles, OutputLayout
from genre_hpc.flow.corpus import audio_files
from genre_hpc.flow.model import SavedModel

log = logging.getLogger(__name__)


def run(cfg: DictConfig, client: Any, out: OutputLayout) -> pd.DataFrame:
    """Print the top genres of each input and write predictions.csv/json under output.dir (no cluster)."""
    model = SavedModel(ModelFiles(Path(str(cfg.model_dir)).expanduser()))
    top_k = min(int(cfg.top_k), len(model.classes))
    rows: list[dict[str, Any]] = []
    for path in audio_files(cfg.inputs):
        row: dict[str, Any] = {"path": str(path), "error": None}
        try:
            proba = model.track_probabilities(str(path))
        except AudioError as exc:
            row["error"] = str(exc)
            log.error("predict: %s: %s", path, exc)
        else:
            for rank, index in enumerate(np.argsort(proba)[::-1][:top_k], start=1):
                row[f"genre_{rank}"] = model.classes[index]
                row[f"probability_{rank}"] = float(proba[index])
        rows.append(row)
        sys.stdout.write(_line(row, top_k) + "\n")
    table = pd.DataFrame(rows)
    write_csv(out.predictions_table, table)
    write_text(out.predictions_records, table.to_json(orient="records", indent=2) + "\n")
    log.info(
        "predict: %d files, %d unreadable; written to %s",
        len(table), table.error.notna().sum(), out.predictions,
    )  # fmt: skip
    return table


def _line(row: dict[str, Any], top_k: int) -> str:
    if row["error"]:
        return f"{row['path']}\tERROR: {row['error']}"
    best = ", ".join(f"{row[f'genre_{i}']} {row[f'probability_{i}']:.2f}" for i in range(1, top_k + 1))
    return f"{row['path']}\t{best}"
