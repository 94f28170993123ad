"""The feature dataset (OUT/features/): one owner for writing its parts, reading, resuming and compatibility.

Parts are named after the tracks they hold and written atomically, so a batch that runs twice
(a retried task, a lost worker) replaces its own part instead of adding rows, and a part is
either whole or absent. A batch task writes its tracks in fixed chunks as they finish (one part
per chunk and genre); a chunk's hash part is written last, so it says the chunk is whole
(`written`), and a batch retried after its worker retired skips those chunks. Once all its chunks
are written, a batch merges them into one part per genre (`compact`).

A rerun asks which tracks are already in the dataset or in the error table and only extracts the
rest. Every part records the feature-set version and settings it was made with: reading checks
the version, appending checks the settings and the corpus.

Batches make small parts (one per batch and genre; on FMA, whose ids interleave genres, a few
tracks each), so after extract the small parts of a genre are merged into parts of at least
`extract.part_rows` rows. A merged part lists the parts it replaces in its own metadata and is
published before they are deleted; every reader first deletes any part so listed (`settle`), so
a merge killed between the two steps neither loses rows nor shows them twice.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

import dask.dataframe as dd
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from genre_hpc import __version__
from genre_hpc.core.atomic import write_parquet
from genre_hpc.core.errors import ConfigError, DatasetError
from genre_hpc.core.layout import OutputLayout
from genre_hpc.flow.params import FeatureParams
from genre_hpc.flow.schema import (
    FEATURE_VERSION,
    ID_COLUMNS,
    PARTITION_COLUMN,
    arrow_schema,
    empty_errors,
    error_schema,
    feature_names,
)

MERGED_PREFIX = "merged-"
_SOURCES_KEY = b"genre_hpc_merged_from"  # a merged part's metadata: the names of the parts it replaces


def batch_id(track_ids: Iterable[str]) -> str:
    """Stable name of a batch: the same tracks always give the same part names."""
    digest = hashlib.sha1()
    for track_id in track_ids:
        digest.update(track_id.encode())
        digest.update(b"\0")
    return digest.hexdigest()[:16]


@dataclass(frozen=True)
class FeatureStore:
    """The dataset under one output.dir; small and picklable, so a worker writes through it too."""

    out: OutputLayout

    @property
    def path(self) -> Path:
        return self.out.features

    def exists(self) -> bool:
        """Whether any part has been written."""
        return self.path.exists() and any(self.path.rglob("*.parquet"))

    # --- writing (on a worker, one batch of tracks per call) --------------------------------

    def write_batch(
        self,
        batch: str,
        frame: pd.DataFrame | None,
        errors: list[dict[str, str]],
        *,
        params: FeatureParams,
        corpus_root: str,
        hashes: dict[str, str] | None = None,
    ) -> int:
        """Write one batch's rows as one part per genre, its error rows and the content hashes of its
        tracks (last); return the rows written."""
        name = f"part-{batch}.parquet"
        rows = 0
        if frame is not None and len(frame):
            table = pa.Table.from_pandas(frame, preserve_index=False)
            table = table.cast(arrow_schema(n_mfcc=params.n_mfcc)).replace_schema_metadata(
                _metadata(params, corpus_root)
            )
            rows = table.num_rows
            for label in sorted(set(table.column(PARTITION_COLUMN).to_pylist())):
                part = table.filter(pc.equal(table[PARTITION_COLUMN], label))
                part = part.drop_columns([PARTITION_COLUMN])
                write_parquet(self.path / f"{PARTITION_COLUMN}={_folder(label)}" / name, part)
        if errors:
            write_parquet(self.out.error_parts / name, pa.Table.from_pylist(errors, schema=error_schema()))
        # last and always (empty when no track could be used): its presence says the batch is whole
        hashes = hashes or {}
        pairs = {"track_id": list(hashes), "content_hash": list(hashes.values())}
        write_parquet(self.out.hash_parts / name, pa.Table.from_pydict(pairs, schema=_HASH_SCHEMA))
        return rows

    def written(self, batches: list[str]) -> set[str]:
        """Which of `batches` (the chunks of one task, as named to `write_batch`) are written whole:
        their hash part, written last, exists, or `compact` has already merged them all."""
        files = [f"part-{b}.parquet" for b in batches]
        if len(files) > 1 and _merged_path(self.out.hash_parts, sorted(files)).exists():
            return set(batches)
        return {b for b, f in zip(batches, files, strict=True) if (self.out.hash_parts / f).exists()}

    def compact(self, batches: list[str]) -> None:
        """Merge the parts of `batches` (the chunks of one task, all written) into one part per
        genre and one of hashes, as `merge_parts` does: safe to repeat and to kill anywhere. Keeps
        the parts of a run as few as its tasks, however small its chunks."""
        files = sorted(f"part-{b}.parquet" for b in batches)
        if len(files) < 2:
            return
        folders = sorted(p for p in self.path.iterdir() if p.is_dir()) if self.path.exists() else []
        for folder in folders:
            present = [f for f in files if (folder / f).exists()]
            if len(present) > 1:
                self.merge_parts([f"{folder.name}/{f}" for f in present])
        # the hashes last: their merged part is what `written` reads as "all merged"
        target = _merged_path(self.out.hash_parts, files)
        if target.exists():
            self._remove_sources(target)
        else:
            tables = [pq.read_table(self.out.hash_parts / f, schema=_HASH_SCHEMA) for f in files]
            self._publish_merged(target, files, pa.concat_tables(tables))

    # --- resuming -------------------------------------------------------------------------

    def finished_tracks(self) -> set[str]:
        """Tracks with rows in the dataset, or recorded as errors by an earlier run."""
        done: set[str] = set()
        self.settle()
        for part in self._part_files():
            done.update(pc.unique(pq.read_table(part, columns=["track_id"])["track_id"]).to_pylist())
        done.update(self._error_parts().track_id)
        return done

    def merge_errors(self) -> int:
        """Rewrite errors.parquet from all error parts; return its row count."""
        errors = self._error_parts().drop_duplicates().sort_values(["path", "stage"])
        table = pa.Table.from_pandas(errors, schema=error_schema(), preserve_index=False)
        write_parquet(self.out.errors, table)
        return table.num_rows

    def content_hashes(self, *, merge: bool = False) -> pd.DataFrame:
        """(track_id, content_hash) of every track extracted: the sha1 of its decoded audio.

        Batches write one small part each. With `merge` (extract, once its batches are done) the
        parts read are replaced by one, as small feature parts are (a later part wins a track)."""
        self.settle()
        folder = self.out.hash_parts
        parts = sorted(folder.glob("*.parquet"))  # "merged-" sorts before the newer "part-"
        if not parts:
            return _HASH_SCHEMA.empty_table().to_pandas()
        table = pa.concat_tables(pq.read_table(p, schema=_HASH_SCHEMA) for p in parts)
        frame = table.to_pandas().drop_duplicates("track_id", keep="last").reset_index(drop=True)
        if merge and len(parts) > 1:
            names = [p.name for p in parts]
            table = pa.Table.from_pandas(frame, schema=_HASH_SCHEMA, preserve_index=False)
            self._publish_merged(_merged_path(folder, names), names, table)
        return frame

    def errors(self) -> pd.DataFrame:
        """errors.parquet: one row per file that could not be used (empty before any extract)."""
        return pd.read_parquet(self.out.errors) if self.out.errors.exists() else empty_errors()

    # --- compatibility --------------------------------------------------------------------

    def info(self) -> dict[str, Any]:
        """What the parts record of how they were made (version, settings); the version is checked."""
        if not self.exists():
            raise DatasetError(
                f"no feature dataset at {self.path}: run `genre-hpc extract` with the same output.dir first"
            )
        schema = pq.read_schema(self._part_files()[0])  # every part is written with the same metadata
        meta = json.loads((schema.metadata or {}).get(b"genre_hpc", b"{}"))
        version = meta.get("feature_version")
        if version != FEATURE_VERSION:
            raise DatasetError(
                f"{self.path} holds feature-set version {version!r}, this genre-hpc computes "
                f"{FEATURE_VERSION!r}: extract again into a new output.dir"
            )
        return meta

    def feature_columns(self) -> list[str]:
        """The feature columns the dataset holds, checked against this package's feature version."""
        return feature_names(n_mfcc=self.info()["feature_params"]["n_mfcc"])

    def check_compatible(self, params: FeatureParams, root: Path) -> None:
        """Refuse to append rows of another corpus, feature-set version or settings to the dataset.

        Read from the parts themselves (a killed first run leaves parts but no manifest record);
        `info` raises for another feature-set version.
        """
        if not self.exists():
            return
        info = self.info()
        for key, value in asdict(params).items():
            old = info["feature_params"].get(key)
            if old != value:
                raise ConfigError(
                    f"features.{key}",
                    f"{value!r} differs from the {old!r} that {self.path} was extracted with",
                    "use a new output.dir, or the old value",
                )
        previous = info.get("corpus_root")
        if previous and Path(previous) != root.resolve():
            # track ids are paths inside the corpus: another corpus's blues/blues.00000.wav would
            # count as done and keep the first corpus's rows
            raise ConfigError(
                "data.root",
                f"{root} is not the corpus {previous} whose features {self.path} holds",
                "use a new output.dir for another corpus",
            )

    # --- reading --------------------------------------------------------------------------

    def load(self) -> dd.DataFrame:
        """The dataset as a Dask DataFrame; `label` (the hive partition) as plain strings."""
        self.settle()
        frame = dd.read_parquet(str(self.path), engine="pyarrow", dataset={"partitioning": "hive"})
        # no index to sort on: unknown divisions keep dask from aligning partitions by value
        return frame.assign(label=frame.label.astype(str)).clear_divisions()

    def read(self, columns: list[str]) -> pd.DataFrame:
        """Some columns of every row, in memory (the report's figures)."""
        self.settle()
        return pd.read_parquet(self.path, columns=columns)

    def parts(self) -> list[tuple[str, int]]:
        """Every part (its path relative to the dataset) with its rows, in one fixed order: the
        plan by which workers read their shares (flow/shares.py)."""
        self.settle()
        found = sorted(self.path.rglob("*.parquet")) if self.path.exists() else []
        return [(p.relative_to(self.path).as_posix(), pq.read_metadata(p).num_rows) for p in found]

    def read_parts(
        self, parts: list[str], each: Callable[[pd.DataFrame], pd.DataFrame] | None = None
    ) -> pd.DataFrame:
        """The rows of `parts` (paths from `parts()`), in that order, with `label` from each part's
        genre folder, as `load` gives them; `each` (e.g. a side's filter) is applied to every part
        as it is read, so that only the rows it keeps are ever held all together (a worker's share
        of 10^7 rows read whole, then filtered, peaked at 3x the rows it kept)."""
        frames = []
        for part in parts:
            folder = Path(part).parent.name
            label = unquote(folder.split("=", 1)[1])
            rows = pq.read_table(self.path / part).to_pandas().assign(**{PARTITION_COLUMN: label})
            frames.append(rows if each is None else each(rows))
        return pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]

    def audio_seconds(self, tracks: Iterable[str]) -> float:
        """Seconds of audio the rows of `tracks` cover (what extract did, read from the dataset: a
        batch's chunks written by a worker that retired count too)."""
        wanted = pa.array(list(tracks), pa.string())
        total = 0.0
        for part in self._part_files():
            table = pq.read_table(part, columns=["track_id", "duration_s"])
            mine = table.filter(pc.is_in(table["track_id"], value_set=wanted))
            total += pc.sum(mine["duration_s"]).as_py() or 0.0
        return float(total)

    def row_count(self) -> int:
        return sum(pq.read_metadata(part).num_rows for part in self._part_files())

    def part_count(self) -> int:
        return len(self._part_files())

    # --- merging small parts (after extract) -----------------------------------------------

    def merge_plan(self, part_rows: int) -> list[list[str]]:
        """Groups of one genre's parts (paths relative to the dataset) to merge so that every part of
        a genre holds at least `part_rows` rows; a genre with fewer rows in all ends as one part.

        Parts already that large stay as they are, unless a genre's small parts cannot reach
        `part_rows` together: then they join its smallest large part."""
        self.settle()
        plan: list[list[str]] = []
        folders = sorted(p for p in self.path.iterdir() if p.is_dir()) if self.path.exists() else []
        for folder in folders:
            sized = [(pq.read_metadata(p).num_rows, p.name) for p in sorted(folder.glob("*.parquet"))]
            small = [(rows, name) for rows, name in sized if rows < part_rows]
            large = sorted((rows, name) for rows, name in sized if rows >= part_rows)
            groups: list[list[str]] = []
            group: list[str] = []
            total = 0
            for rows, name in small:
                group.append(name)
                total += rows
                if total >= part_rows:
                    groups.append(group)
                    group, total = [], 0
            if group:  # the remainder, short of part_rows
                if groups:
                    groups[-1] += group
                elif large:
                    groups.append([large[0][1], *group])
                else:
                    groups.append(group)
            plan += [[f"{folder.name}/{name}" for name in g] for g in groups if len(g) > 1]
        return plan

    def merge_parts(self, parts: list[str]) -> int:
        """Replace one genre's `parts` (a group of `merge_plan`) by one part; return its rows.

        Runs on a worker. Safe to run twice and to be killed anywhere: the merged part is named
        after its sources, published whole, and lists them, so `settle` finishes a killed merge."""
        folders = {Path(p).parent.name for p in parts}
        if len(folders) != 1:
            raise DatasetError(f"a merge takes one genre's parts, not {sorted(folders)}")
        folder = self.path / folders.pop()
        names = sorted(Path(p).name for p in parts)
        target = _merged_path(folder, names)
        if target.exists():  # a retry of a merge that published its part
            self._remove_sources(target)
        else:
            self._publish_merged(
                target, names, pa.concat_tables(pq.ParquetFile(folder / n).read() for n in names)
            )
        return pq.read_metadata(target).num_rows

    def settle(self) -> None:
        """Delete every part, of the dataset or of the content hashes, that a merged part replaces
        (left by a merge killed before its clean-up)."""
        merged = [
            *self.path.glob(f"*/{MERGED_PREFIX}*.parquet"),
            *self.out.hash_parts.glob(f"{MERGED_PREFIX}*.parquet"),
        ]
        for part in merged:
            self._remove_sources(part)

    def _publish_merged(self, target: Path, names: list[str], table: pa.Table) -> None:
        """Write `table` as `target`, naming the parts `names` it replaces, then delete them."""
        metadata = {**(table.schema.metadata or {}), _SOURCES_KEY: json.dumps(names).encode()}
        write_parquet(target, table.replace_schema_metadata(metadata))
        self._remove_sources(target)

    def _remove_sources(self, merged: Path) -> None:
        metadata = pq.read_schema(merged).metadata or {}
        # only the sources still there: every reader settles, and trying to unlink each of a merged
        # part's ~1,600 long-gone sources (10^5 tracks) cost every reader a second
        present = set(os.listdir(merged.parent))
        for name in json.loads(metadata.get(_SOURCES_KEY, b"[]")):
            if name not in present:
                continue
            try:
                (merged.parent / name).unlink(missing_ok=True)
            except OSError as exc:
                raise DatasetError(
                    f"{merged} replaces {name}, which cannot be deleted ({exc}): delete it, or run "
                    "`genre-hpc extract` with the same output.dir as the dataset's owner"
                ) from None

    def _part_files(self) -> list[Path]:
        """Every part, settled, one file at a time for whoever reads them: a pyarrow dataset over the
        thousands of small parts a large run holds before its merge keeps about 0.4 MB per part
        (count_rows of 6,252 parts took the driver to 4 GB at 10^5 tracks), and reading each
        part's footer or columns on its own holds one at a time."""
        self.settle()
        return sorted(self.path.rglob("*.parquet")) if self.path.exists() else []

    def _error_parts(self) -> pd.DataFrame:
        parts = sorted(self.out.error_parts.glob("part-*.parquet"))
        if not parts:
            return empty_errors()
        return pa.concat_tables(pq.read_table(p, schema=error_schema()) for p in parts).to_pandas()


_HASH_SCHEMA = pa.schema([pa.field("track_id", pa.string()), pa.field("content_hash", pa.string())])


def _merged_path(folder: Path, names: list[str]) -> Path:
    """The merged part that replaces the parts `names` of `folder`: named after them, so a retry
    finds it."""
    return folder / f"{MERGED_PREFIX}{batch_id(names)}.parquet"


def _folder(label: str) -> str:
    """A label as a hive folder name: URI-escaped, as pyarrow, pandas and dask unescape it on read,
    so a genre such as FMA's "Old-Time / Historic" is one folder, not two."""
    return quote(label, safe="")


def _metadata(params: FeatureParams, corpus_root: str) -> dict[bytes, bytes]:
    info = {
        "corpus_root": corpus_root,
        "feature_version": FEATURE_VERSION,
        "genre_hpc_version": __version__,
        "feature_params": asdict(params),
        "id_columns": list(ID_COLUMNS),
    }
    return {b"genre_hpc": json.dumps(info).encode()}
