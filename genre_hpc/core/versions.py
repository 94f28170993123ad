"""The versions of genre-hpc, Python and the libraries its outputs depend on, as recorded beside them."""

from __future__ import annotations

import platform
from importlib import metadata

from genre_hpc import __version__

LIBRARIES = (
    "dask", "distributed", "dask-jobqueue", "dask-ml", "librosa", "numpy", "pandas",
    "pyarrow", "scikit-learn", "xgboost", "hydra-core", "soundfile", "soxr",
)  # fmt: skip


def versions() -> dict[str, str]:
    """genre-hpc, Python and each of LIBRARIES ("not installed" where one is missing)."""
    found = {"genre-hpc": __version__, "python": platform.python_version()}
    for name in LIBRARIES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = "not installed"
    return found
