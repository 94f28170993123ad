"""Finds the audio: the corpus (data.*, or a generated demo) as a table of tracks, or files named.

Three kinds of corpus (data.kind): genre folders (GTZAN's layout), FMA (tracks.csv and audio by
id) and any table of path and label. Each gives one row per usable track (TRACK_COLUMNS, then
metadata such as `split` and `artist`) and the tracks it skipped, with the reason.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
from omegaconf import DictConfig, OmegaConf

from genre_hpc.core.atomic import write_parquet
from genre_hpc.core.errors import ConfigError, CorpusError
from genre_hpc.core.layout import OutputLayout
from genre_hpc.flow import demo, metadata
from genre_hpc.flow.audio import SUPPORTED_EXTENSIONS

TRACK_COLUMNS = ["track_id", "path", "label", "size_bytes"]
SKIPPED_COLUMNS = ["track_id", "path", "reason"]
KINDS = ("folders", "fma", "table")

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


@dataclass(frozen=True)
class Corpus:
    """The tracks of data.*: root, one row per usable track, and the skipped tracks with their reason."""

    root: Path
    tracks: pd.DataFrame
    skipped: pd.DataFrame

    def skip_counts(self) -> dict[str, int]:
        return {str(k): int(v) for k, v in self.skipped.reason.value_counts().sort_index().items()}

    def describe(self) -> str:
        """One line for the log: how many tracks, how many skipped and why."""
        counts = self.skip_counts()
        why = ", ".join(f"{n} {reason}" for reason, n in counts.items())
        return f"{len(self.tracks)} tracks in {self.root}" + (f"; skipped {why}" if counts else "")


# Within `read_once`: the corpora read so far, by data.* and the table file's size and mtime.
_read: dict[str, Corpus] | None = None


@contextmanager
def read_once() -> Iterator[None]:
    """Within it, `load` reads each corpus once: one command's check_root, validate and extract
    share one scan of data.root and one parse of data.tracks (each 1-2 s at 10^5 FMA tracks,
    more for FMA's real, wide tracks.csv). A changed table file (size or mtime) is read again."""
    global _read
    outer, _read = _read, {} if _read is None else _read
    try:
        yield
    finally:
        _read = outer


def load(cfg: DictConfig) -> Corpus:
    """The corpus data.* names (generating the demo corpus when data.root is unset)."""
    if _read is None:
        return _load(cfg)
    key = _read_key(cfg)
    if key not in _read:
        _read[key] = _load(cfg)
    found = _read[key]
    # the caller may change its frames; the next caller gets them as read
    return replace(found, tracks=found.tracks.copy(), skipped=found.skipped.copy())


def _read_key(cfg: DictConfig) -> str:
    data = OmegaConf.to_container(cfg.data, resolve=True)
    given = cfg.data.get("tracks")
    stamp = None
    if given is not None:
        try:
            info = Path(str(given)).expanduser().stat()
            stamp = (info.st_size, info.st_mtime_ns)
        except OSError:
            pass  # _load raises the readable error
    rate = OmegaConf.select(cfg, "features.sample_rate")  # the demo corpus is written at it
    return json.dumps([data, rate, stamp], sort_keys=True, default=str)


def _load(cfg: DictConfig) -> Corpus:
    kind = OmegaConf.select(cfg, "data.kind", default="folders")
    root = resolve_root(cfg)
    if kind == "folders":
        tracks = scan(root, extensions=tuple(cfg.data.extensions))
        return Corpus(root, tracks, pd.DataFrame(columns=SKIPPED_COLUMNS))
    _check_folder(root)
    if kind == "fma":
        found = metadata.fma(root, _tracks_file(cfg), subset=str(cfg.data.subset), cache=_table_cache(cfg))
    elif kind == "table":
        columns = OmegaConf.to_container(cfg.data.columns, resolve=True)
        found = metadata.table(root, _tracks_file(cfg), columns=columns)
    else:
        raise ConfigError("data.kind", f"unknown corpus kind {kind!r}", f"use data={' | '.join(KINDS)}")
    if not len(found.tracks):
        raise CorpusError(
            f"no usable track in data.tracks={cfg.data.tracks} (root {root}): "
            + (", ".join(f"{n} {r}" for r, n in found.skipped.reason.value_counts().items()) or "it is empty")
        )
    return Corpus(root, found.tracks, found.skipped)


def _table_cache(cfg: DictConfig) -> Path | None:
    """Where FMA's parsed tracks.csv columns are kept (none without an output.dir)."""
    return OutputLayout.of(cfg).table_cache if OmegaConf.select(cfg, "output.dir") else None


def check_root(cfg: DictConfig) -> None:
    """Fail fast on an unusable data.root or data.tracks, before a cluster is started for nothing."""
    if cfg.data.root is None:
        return
    kind = OmegaConf.select(cfg, "data.kind", default="folders")
    root = Path(str(cfg.data.root)).expanduser()
    if kind == "folders":
        load(cfg)  # its scan, shared with the stages within `read_once`
    else:
        _check_folder(root)
        _tracks_file(cfg)


def resolve_root(cfg: DictConfig) -> Path:
    """data.root, or the demo corpus of data.kind (generated on first use) when it is unset."""
    if cfg.data.root is not None:
        return Path(str(cfg.data.root)).expanduser()
    kind = OmegaConf.select(cfg, "data.kind", default="folders")
    spec = cfg.data.get("demo")
    if spec is None or kind == "table":
        raise ConfigError("data.root", "is not set", "give the folder the table's paths are relative to")
    root = Path(str(spec.root)).expanduser()
    if not root.exists():
        log.info("data.root is unset: generating the demo corpus in %s", root)
    if kind == "fma":
        return demo_fma(cfg).audio
    demo.generate(
        root,
        n_per_genre=spec.n_per_genre,
        seconds=spec.seconds,
        sample_rate=cfg.features.sample_rate,
        seed=spec.seed,
    )
    return root


def demo_fma(cfg: DictConfig) -> demo.FmaCorpus:
    """The FMA-shaped demo corpus of data.demo.* (data=fma), generated on first use."""
    spec = cfg.data.demo
    return demo.generate_fma(
        Path(str(spec.root)).expanduser(),
        genres=spec.genres,
        artists_per_genre=spec.artists_per_genre,
        tracks_per_artist=spec.tracks_per_artist,
        seconds=spec.seconds,
        sample_rate=cfg.features.sample_rate,
        seed=spec.seed,
    )


def write(out: OutputLayout, corpus: Corpus) -> None:
    """OUT/tracks.parquet (every usable track with its metadata: what splits read) and OUT/skipped.parquet."""
    tracks = corpus.tracks.drop(columns=["path", "size_bytes"])
    write_parquet(out.tracks, pa.Table.from_pandas(tracks, preserve_index=False))
    skipped = corpus.skipped.astype({c: object for c in SKIPPED_COLUMNS})
    write_parquet(out.skipped, pa.Table.from_pandas(skipped[SKIPPED_COLUMNS], preserve_index=False))


def read_tracks(out: OutputLayout) -> pd.DataFrame | None:
    """OUT/tracks.parquet, or None when no validate or extract of this version wrote it."""
    return pd.read_parquet(out.tracks) if out.tracks.exists() else None


def _tracks_file(cfg: DictConfig) -> Path:
    """data.tracks, or the demo corpus's tracks.csv when data.root is unset (data=fma)."""
    given = cfg.data.get("tracks")
    if given is None:
        if cfg.data.root is None and cfg.data.kind == "fma":
            return demo_fma(cfg).tracks
        raise ConfigError(
            "data.tracks", "is not set", "give the table of tracks, e.g. fma_metadata/tracks.csv"
        )
    path = Path(str(given)).expanduser()
    if not path.is_file():
        raise ConfigError("data.tracks", f"{path} is not a file", "give the table of tracks")
    return path


def _check_folder(root: Path) -> None:
    if not root.is_dir():
        raise CorpusError(f"data.root={root} is not a folder: give the folder that holds the audio")


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
