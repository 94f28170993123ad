"""Corpora labelled by a table: FMA's tracks.csv as published, or any CSV/TSV/Parquet of path and label.

Both give the corpus's tracks (track_id = the path relative to the root, path, label, size_bytes,
then metadata such as `split` and `artist`) and the tracks they skipped, each with its reason.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pyarrow as pa

from genre_hpc.core.atomic import write_parquet
from genre_hpc.core.errors import ConfigError, CorpusError

# FMA's subsets nest: fma_medium is every track whose subset is small or medium.
FMA_SUBSETS = ("small", "medium", "large")

# The columns of FMA's tracks.csv (fma_metadata, 2017), in its order: (top level, column).
FMA_COLUMNS: tuple[tuple[str, str], ...] = (
    *(("album", c) for c in (
        "comments", "date_created", "date_released", "engineer", "favorites", "id", "information",
        "listens", "producer", "tags", "title", "tracks", "type")),
    *(("artist", c) for c in (
        "active_year_begin", "active_year_end", "associated_labels", "bio", "comments", "date_created",
        "favorites", "id", "latitude", "location", "longitude", "members", "name", "related_projects",
        "tags", "website", "wikipedia_page")),
    ("set", "split"), ("set", "subset"),
    *(("track", c) for c in (
        "bit_rate", "comments", "composer", "date_created", "date_recorded", "duration", "favorites",
        "genre_top", "genres", "genres_all", "information", "interest", "language_code", "license",
        "listens", "lyricist", "number", "publisher", "tags", "title")),
)  # fmt: skip

# FMA columns kept with each track, by the name splits and `split.group_by` use.
FMA_KEEP = {"artist": ("artist", "id"), "album": ("album", "id"), "subset": ("set", "subset"),
            "split": ("set", "split")}  # fmt: skip

# Names the corpus table gives its own columns; a table's column of one of these names is not carried.
RESERVED = ("track_id", "path", "label", "size_bytes", "group", "split")

NO_LABEL = "no genre_top"
NO_FILE = "file missing"


@dataclass(frozen=True)
class Labelled:
    """The usable tracks of a labelled corpus, and the skipped ones (track_id, path, reason)."""

    tracks: pd.DataFrame
    skipped: pd.DataFrame


def fma_path(track_id: int) -> str:
    """FMA's audio path of a track, relative to the audio folder: 2 -> 000/000002.mp3."""
    name = f"{int(track_id):06d}"
    return f"{name[:3]}/{name}.mp3"


def read_fma_table(path: str | Path) -> pd.DataFrame:
    """tracks.csv as published: two header rows of columns and a third naming the index."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise ConfigError("data.tracks", f"{path} is not a file", "give fma_metadata/tracks.csv")
    try:
        table = pd.read_csv(path, index_col=0, header=[0, 1], low_memory=False)
    except (ValueError, pd.errors.ParserError) as exc:
        raise CorpusError(f"data.tracks={path} is not FMA's tracks.csv: {exc}") from exc
    missing = [c for c in (("track", "genre_top"), *FMA_KEEP.values()) if c not in table.columns]
    if missing:
        raise CorpusError(
            f"data.tracks={path} lacks the columns {missing}: expected FMA's tracks.csv with its "
            "three-row header (fma_metadata.zip)"
        )
    return table


def fma(root: Path, tracks_csv: str | Path, *, subset: str, cache: Path | None = None) -> Labelled:
    """The tracks of FMA subset `subset` (with the subsets it contains) under the audio folder `root`;
    `cache`: see `fma_columns`."""
    if subset not in FMA_SUBSETS:
        raise ConfigError("data.subset", f"{subset!r} is not an FMA subset", f"use {' | '.join(FMA_SUBSETS)}")
    table = fma_columns(tracks_csv, cache=cache)
    # FMA's own loader makes the subset an ordered categorical: medium selects small and medium
    order = pd.CategoricalDtype(list(FMA_SUBSETS), ordered=True)
    chosen = table[table["subset"].astype(order) <= subset]
    frame = pd.DataFrame(
        {
            "track_id": [fma_path(i) for i in chosen.index],
            "label": _strings(chosen["genre_top"]).to_numpy(),
            **{name: _strings(chosen[name]).to_numpy() for name in FMA_KEEP},
        }
    )
    return _locate(frame, root, no_label=NO_LABEL)


def fma_columns(path: str | Path, *, cache: Path | None = None) -> pd.DataFrame:
    """The columns of tracks.csv that `fma` reads (genre_top, then FMA_KEEP's names), by track id.

    FMA's real tracks.csv (106,574 rows, 52 mostly text columns) takes seconds to parse, in every
    command. With `cache` (a folder), these columns are kept there as Parquet, named after the
    file's path, size and mtime, and read back while the file is unchanged."""
    path = Path(path).expanduser()
    target = None
    if cache is not None and path.is_file():
        info = path.stat()
        name = hashlib.sha1(str(path.resolve()).encode()).hexdigest()[:12]
        target = cache / f"fma-tracks-{name}-{info.st_size}-{info.st_mtime_ns}.parquet"
        if target.exists():
            return pd.read_parquet(target)
    table = read_fma_table(path)
    kept = {key: table[column] for key, column in FMA_KEEP.items()}
    columns = pd.DataFrame({"genre_top": table[("track", "genre_top")], **kept}, index=table.index)
    if target is not None:
        try:
            write_parquet(target, pa.Table.from_pandas(columns))
        except (pa.ArrowException, OSError):
            return columns  # a column Parquet cannot hold as it is (mixed types): parse each time
        for stale in cache.glob(f"fma-tracks-{name}-*.parquet"):  # the file's earlier versions
            if stale != target:
                stale.unlink(missing_ok=True)
    return columns


def table(root: Path, path: str | Path, *, columns: dict[str, str | None]) -> Labelled:
    """The tracks of a CSV, TSV or Parquet table of path (relative to `root`) and label.

    `columns` maps path, label, and the optional group and split, to the table's column names.
    Every other column is kept under its own name (e.g. artist, for `split.group_by`).
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise ConfigError("data.tracks", f"{path} is not a file", "give a CSV, TSV or Parquet table")
    suffix = path.suffix.lower()
    if suffix in (".parquet", ".pq"):
        raw = pd.read_parquet(path)
    elif suffix in (".csv", ".tsv", ".txt"):
        raw = pd.read_csv(path, sep="\t" if suffix != ".csv" else ",", dtype=str, keep_default_na=False,
                          na_values=[""])  # fmt: skip
    else:
        raise ConfigError("data.tracks", f"{path.name}: unknown table format", "use .csv, .tsv or .parquet")
    names = {}
    for key in ("path", "label", "group", "split"):
        name = columns.get(key)
        if name is None and key in ("path", "label"):
            raise ConfigError(f"data.columns.{key}", "is not set", f"name the table's {key} column")
        if name is not None and name not in raw.columns:
            raise ConfigError(
                f"data.columns.{key}",
                f"{path.name} has no column {name!r}",
                f"its columns: {list(raw.columns)}",
            )
        if name is not None:
            names[name] = key
    frame = pd.DataFrame({"track_id": raw[columns["path"]].map(_relative, na_action="ignore")})
    for name, key in names.items():
        if key != "path":
            frame[key] = _strings(raw[name])
    for name in raw.columns:
        if name not in names and name not in RESERVED:
            frame[name] = _strings(raw[name])
    frame = frame.dropna(subset=["track_id"]).drop_duplicates("track_id")
    return _locate(frame, root, no_label="no label")


def _locate(frame: pd.DataFrame, root: Path, *, no_label: str) -> Labelled:
    """Find each track's file under `root`; tracks without a label or a file are skipped with the reason."""
    root = root.resolve()
    frame = frame.sort_values("track_id").reset_index(drop=True)
    # os.path, not pathlib: building two Path objects per track cost more than its stat (0.4 s at 10^4)
    paths = [os.path.join(root, track_id) for track_id in frame.track_id]
    sizes = []
    for path in paths:
        try:
            sizes.append(os.stat(path).st_size)
        except OSError:
            sizes.append(-1)
    first = {"track_id": frame.track_id, "path": paths, "label": frame.label, "size_bytes": sizes}
    frame = pd.DataFrame({**first, **{c: frame[c] for c in frame.columns if c not in first}})
    reason = pd.Series(None, index=frame.index, dtype=object)
    reason[frame.size_bytes < 0] = NO_FILE
    reason[frame.label.isna() | (frame.label.astype(str).str.strip() == "")] = no_label
    skipped = frame.loc[reason.notna(), ["track_id", "path"]].assign(reason=reason[reason.notna()])
    return Labelled(frame[reason.isna()].reset_index(drop=True), skipped.reset_index(drop=True))


def _relative(path: str) -> str:
    """A table's path as a POSIX track_id (relative paths are what the table should hold)."""
    return Path(str(path).strip()).as_posix()


def _strings(column: pd.Series) -> pd.Series:
    """A metadata column as strings, missing values as None. A float column of whole numbers (ids
    that pandas read as floats because some cells are empty) gives '12', not '12.0'; text such as
    '007' stays as it is."""
    out = pd.Series(column.to_numpy(), dtype=object)
    present = out.notna()
    if pd.api.types.is_float_dtype(column.dtype):
        numbers = column.to_numpy()
        whole = present & pd.Series(numbers == numbers.round())
        out[whole] = pd.Series(numbers).astype("float64")[whole].astype("int64").astype(str)
        present &= ~whole
    out[present] = out[present].astype(str)
    return out.where(out.notna(), None)
