"""The one atomic writer: every file genre-hpc writes appears whole or not at all.

A writer gets a temporary name beside the target (same directory, so the rename never crosses
a filesystem), the data is flushed to disk, and `os.replace` publishes it in one step. If the
writer raises, or the process is killed, the target keeps its old contents (or stays absent)
and the temporary file is removed (on a kill, it is a dot-file that dataset readers skip).
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

TMP_SUFFIX = ".tmp"


@contextmanager
def atomic_path(path: str | Path, *, durable: bool = True) -> Iterator[Path]:
    """Yield a temporary path for the caller to write `path`'s contents to; publish it on success.

    For writers that want a file name (pyarrow, pandas, matplotlib, soundfile); they must be told
    the format, since the temporary name ends in `.tmp`. `durable` fsyncs the file before the
    rename and the folder after it, so a crash cannot leave a renamed but empty file: on for
    data, off for figures and pages that the next run redraws.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # a dot name is invisible to Parquet dataset readers until the rename publishes it; the
    # random part keeps two writers of one file (a retried task) from sharing a temporary file
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}{TMP_SUFFIX}")
    try:
        yield tmp
        if durable:
            _fsync_file(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    if durable:
        _fsync_folder(path.parent)


def write_bytes(path: str | Path, data: bytes, *, durable: bool = True) -> Path:
    """Write `data` to `path` atomically."""
    with atomic_path(path, durable=durable) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def write_text(path: str | Path, text: str, *, durable: bool = True) -> Path:
    """Write `text` (UTF-8) to `path` atomically."""
    return write_bytes(path, text.encode("utf-8"), durable=durable)


def write_json(path: str | Path, data: Any) -> Path:
    """Write `data` as indented, key-sorted JSON atomically: readers never see half a file."""
    return write_text(path, json.dumps(data, indent=2, sort_keys=True, default=_plain) + "\n")


def write_parquet(path: str | Path, table: Any) -> Path:
    """Write a pyarrow Table as one zstd-compressed Parquet file, atomically."""
    import pyarrow.parquet as pq  # deferred: the writer itself needs no pyarrow

    with atomic_path(path) as tmp:
        pq.write_table(table, tmp, compression="zstd")
    return Path(path)


def write_csv(path: str | Path, frame: Any) -> Path:
    """Write a pandas DataFrame as CSV without its index, atomically."""
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False)
    return Path(path)


def _plain(value: Any) -> Any:
    """numpy scalars as Python numbers, anything else as its text."""
    return value.item() if hasattr(value, "item") else str(value)


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_folder(path: Path) -> None:
    """Make the rename itself durable; best effort, as some filesystems refuse it for folders."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:  # e.g. EINVAL on some network filesystems: the rename has happened all the same
        pass
    finally:
        os.close(fd)
