"""Reads and updates manifest.json: what produced an output folder (config, versions, counts, timings)."""

from __future__ import annotations

import json
import platform
from importlib import metadata
from pathlib import Path
from typing import Any

from genre_hpc import __version__
from genre_hpc.core.atomic import write_json
from genre_hpc.flow.schema import FEATURE_VERSION

LIBRARIES = (
    "dask", "distributed", "dask-jobqueue", "dask-ml", "librosa", "numpy", "pandas",
    "pyarrow", "scikit-learn", "xgboost", "hydra-core", "soundfile", "soxr",
)  # fmt: skip


def versions() -> dict[str, str]:
    found = {"genre-hpc": __version__, "python": platform.python_version()}
    for name in LIBRARIES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = "not installed"
    return found


def read(output_dir: Path) -> dict[str, Any]:
    path = output_dir / "manifest.json"
    return json.loads(path.read_text()) if path.exists() else {}


def update(output_dir: Path, stage: str, record: dict[str, Any], *, config: dict[str, Any]) -> None:
    """Merge one stage's record into manifest.json (written atomically)."""
    manifest = read(output_dir)
    manifest.update({"feature_version": FEATURE_VERSION, "versions": versions(), "config": config})
    manifest.setdefault("stages", {})[stage] = record
    write_json(output_dir / "manifest.json", manifest)
