"""Finds the audio: the corpus (data.root, or the generated demo) as a table of tracks, or files named."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pandas as pd
from omegaconf import DictConfig

from genre_hpc.core.errors import ConfigError, CorpusError
from genre_hpc.flow import demo
from genre_hpc.flow.audio import SUPPORTED_EXTENSIONS

TRACK_COLUMNS = ["track_id", "path", "label", "size_bytes"]

log = logging.getLogger(__name__)


def scan(root: str | Path, *, extensions: tuple[str, ...]) -> pd.DataFrame:
    """One row per audio file under `root`, sorted by track_id.

    The label is the top-level folder; `track_id` is the path relative to `root` (POSIX
    separators), so it is stable across machines and mount points. Hidden files and files
    directly in `root` (no genre folder) are ignored.
    """
    root = Path(root).expanduser()
    if not root.exists():
        raise CorpusError(
            f"data.root={root} does not exist: give the folder that holds one sub-folder per "
            "genre, or leave data.root unset to use the generated demo corpus"
        )
    if not root.is_dir():
        raise CorpusError(f"data.root={root} is a file, not a folder of genre folders")
    root = root.resolve()
    suffixes = {ext.lower() for ext in extensions}
    rows = []
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root)
        if len(rel.parts) < 2 or any(part.startswith(".") for part in rel.parts):
            continue
        if path.suffix.lower() in suffixes and path.is_file():
            rows.append((rel.as_posix(), str(path), rel.parts[0], path.stat().st_size))
    if not rows:
        raise CorpusError(
            f"data.root={root} holds no audio files ({', '.join(sorted(suffixes))}) in genre "
            "sub-folders: expected ROOT/<genre>/<file>, e.g. ROOT/blues/blues.00000.wav"
        )
    return pd.DataFrame(rows, columns=TRACK_COLUMNS)


def check_root(cfg: DictConfig) -> None:
    """Fail fast on an unusable data.root, before a cluster is started for nothing."""
    if cfg.data.root is not None:
        scan(Path(str(cfg.data.root)).expanduser(), extensions=tuple(cfg.data.extensions))


def resolve_root(cfg: DictConfig) -> Path:
    """data.root, or the demo corpus (generated on first use) when it is unset."""
    if cfg.data.root is not None:
        return Path(str(cfg.data.root)).expanduser()
    spec = cfg.data.demo
    root = Path(str(spec.root)).expanduser()
    if not root.exists():
        log.info("data.root is unset: generating the demo corpus in %s", root)
    demo.generate(
        root,
        n_per_genre=spec.n_per_genre,
        seconds=spec.seconds,
        sample_rate=cfg.features.sample_rate,
        seed=spec.seed,
    )
    return root


def audio_files(inputs: Any) -> list[Path]:
    """Files named on the command line (`inputs`); folders are searched for audio files."""
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
