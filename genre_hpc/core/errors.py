"""The one exception family of genre-hpc; every message says what to change."""

from __future__ import annotations


class GenreHpcError(Exception):
    """Base class: the CLI prints these as one line and exits non-zero, without a traceback."""

    exit_code = 2


class ConfigError(GenreHpcError):
    """A config value is wrong; the message names the key and an accepted value."""

    def __init__(self, key: str, problem: str, fix: str = "") -> None:
        self.key = key
        message = f"config `{key}`: {problem}"
        if fix:
            message += f" ({fix})"
        super().__init__(message)


class ClusterError(GenreHpcError):
    """The cluster did not come up (no worker connected in time, a submission was refused)."""


class JitCacheError(GenreHpcError):
    """numba's compiled code could not be primed or copied (see infra/jitcache)."""


class CorpusError(GenreHpcError):
    """The corpus as a whole cannot be used (missing root, no audio)."""


class AudioError(GenreHpcError):
    """One file cannot be used; recorded in errors.parquet and the run goes on."""


class DatasetError(GenreHpcError):
    """The feature dataset is missing, empty or of another feature-set version."""


class ModelError(GenreHpcError):
    """A saved model cannot be used with this data or this version of the features."""
