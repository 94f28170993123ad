"""Walks a corpus in genre folders (ROOT/<genre>/<file>) into a table of tracks."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from .errors import CorpusError

TRACK_COLUMNS = ["track_id", "path", "label", "size_bytes"]


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
