"""The feature dataset (OUT/features/): one owner for writing its parts, reading, resuming and compatibility.

Parts are named after the tracks they hold and written atomically, so a batch that runs twice
(a retried task, a lost worker) replaces its own part instead of adding rows, and a part is
either whole or absent. A rerun asks which tracks are already in the dataset or in the error
table and only extracts the rest. Every part records the feature-set version and settings it
was made with: reading checks the version, appending checks the settings and the corpus.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import dask.dataframe as dd
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
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
        tracks; return the rows written."""
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
        if hashes:
            pairs = {"track_id": list(hashes), "content_hash": list(hashes.values())}
            write_parquet(self.out.hash_parts / name, pa.Table.from_pydict(pairs, schema=_HASH_SCHEMA))
        if errors:
            write_parquet(self.out.error_parts / name, pa.Table.from_pylist(errors, schema=error_schema()))
        return rows

    # --- resuming -------------------------------------------------------------------------

    def finished_tracks(self) -> set[str]:
        """Tracks with rows in the dataset, or recorded as errors by an earlier run."""
        done: set[str] = set()
        if self.exists():
            table = self._arrow().to_table(columns=["track_id"])
            done.update(pc.unique(table["track_id"]).to_pylist())
        done.update(self._error_parts().track_id)
        return done

    def merge_errors(self) -> int:
        """Rewrite errors.parquet from all error parts; return its row count."""
        errors = self._error_parts().drop_duplicates().sort_values(["path", "stage"])
        table = pa.Table.from_pandas(errors, schema=error_schema(), preserve_index=False)
        write_parquet(self.out.errors, table)
        return table.num_rows

    def content_hashes(self) -> pd.DataFrame:
        """(track_id, content_hash) of every track extracted: the sha1 of its decoded audio."""
        parts = sorted(self.out.hash_parts.glob("part-*.parquet"))
        if not parts:
            return _HASH_SCHEMA.empty_table().to_pandas()
        table = pa.concat_tables(pq.read_table(p, schema=_HASH_SCHEMA) for p in parts).to_pandas()
        return table.drop_duplicates("track_id", keep="last").reset_index(drop=True)

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
        meta = json.loads((self._arrow().schema.metadata or {}).get(b"genre_hpc", b"{}"))
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
        frame = dd.read_parquet(str(self.path), engine="pyarrow", dataset={"partitioning": "hive"})
        # no index to sort on: unknown divisions keep dask from aligning partitions by value
        return frame.assign(label=frame.label.astype(str)).clear_divisions()

    def read(self, columns: list[str]) -> pd.DataFrame:
        """Some columns of every row, in memory (the report's figures)."""
        return pd.read_parquet(self.path, columns=columns)

    def row_count(self) -> int:
        return self._arrow().count_rows() if self.path.exists() else 0

    def part_count(self) -> int:
        return len(list(self.path.rglob("*.parquet"))) if self.path.exists() else 0

    def _arrow(self) -> ds.Dataset:
        return ds.dataset(self.path, format="parquet", partitioning="hive")

    def _error_parts(self) -> pd.DataFrame:
        parts = sorted(self.out.error_parts.glob("part-*.parquet"))
        if not parts:
            return empty_errors()
        return pa.concat_tables(pq.read_table(p, schema=error_schema()) for p in parts).to_pandas()


_HASH_SCHEMA = pa.schema([pa.field("track_id", pa.string()), pa.field("content_hash", pa.string())])


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
