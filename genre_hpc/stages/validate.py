"""The validate stage: one pass over the corpus recording what each file holds, and its duplicates.

GTZAN holds exact replicas, some filed under two genres (Sturm 2012); a split that puts two
copies of one recording on both sides measures memory, not genre. The content hash recorded
here groups such copies so that every split keeps them on one side.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
from distributed import Client
from omegaconf import DictConfig

from genre_hpc.core.errors import AudioError
from genre_hpc.flow import audio, corpus
from genre_hpc.infra import config, manifest
from genre_hpc.infra.cluster import worker_slots
from genre_hpc.stages.extract import write_atomic

log = logging.getLogger(__name__)

VALIDATION_FILE = "validation.parquet"
COLUMNS = [
    "track_id", "path", "label", "size_bytes", "format", "sample_rate", "channels",
    "duration_s", "content_hash", "duplicate_of", "error",
]  # fmt: skip


def run(cfg: DictConfig, client: Client) -> dict[str, Any]:
    """Probe every file not probed before (same path and size); write validation.parquet."""
    started = time.perf_counter()
    out = config.output_dir(cfg)
    root = corpus.resolve_root(cfg)
    tracks = corpus.scan(root, extensions=tuple(cfg.data.extensions))
    previous = read(out)
    if len(previous):
        same = tracks.merge(previous, on=["track_id", "path", "size_bytes"], how="left", indicator=True)
        todo = tracks[(same["_merge"] == "left_only").to_numpy()]
        keep = previous[previous.track_id.isin(tracks.track_id) & ~previous.track_id.isin(todo.track_id)]
    else:
        todo, keep = tracks, previous
    rows = list(keep.drop(columns=["duplicate_of"], errors="ignore").to_dict("records"))
    size = max(1, -(-len(todo) // (4 * worker_slots(client))))
    batches = [todo.iloc[i : i + size].to_dict("records") for i in range(0, len(todo), size)]
    for batch_rows in client.gather(client.map(probe_batch, batches, pure=False)):
        rows.extend(batch_rows)
    table = with_duplicates(pd.DataFrame(rows, columns=[c for c in COLUMNS if c != "duplicate_of"]))
    write_atomic(pa.Table.from_pandas(table, preserve_index=False), out / VALIDATION_FILE)
    record = summarize(table)
    record.update(probed=len(todo), wall_seconds=time.perf_counter() - started)
    manifest.update(out, "validate", record, config=config.plain(cfg))
    log.info(
        "validate: %d files (%d probed now), %d undecodable, %d in %d duplicate groups "
        "(%d spanning two genres), %.1f s",
        record["files"], len(todo), record["undecodable"], record["duplicate_files"],
        record["duplicate_groups"], record["cross_genre_duplicate_groups"], record["wall_seconds"],
    )  # fmt: skip
    for group in record["duplicates"][:20]:
        log.warning("validate: identical audio: %s", ", ".join(group))
    return record


def probe_batch(batch: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Probe a batch of corpus rows; runs on a worker."""
    rows = []
    for track in batch:
        row = {**track, "format": None, "sample_rate": None, "channels": None,
               "duration_s": None, "content_hash": None, "error": None}  # fmt: skip
        try:
            row.update(asdict(audio.probe(track["path"])))
        except AudioError as exc:
            row["error"] = str(exc)
        rows.append(row)
    return rows


def with_duplicates(table: pd.DataFrame) -> pd.DataFrame:
    """Add `duplicate_of`: the first track_id with the same audio (None for unique files)."""
    table = table.sort_values("track_id").reset_index(drop=True)
    first = table.dropna(subset=["content_hash"]).groupby("content_hash").track_id.transform("first")
    table["duplicate_of"] = None
    copies = first[first != table.loc[first.index, "track_id"]]
    table.loc[copies.index, "duplicate_of"] = copies
    return table[COLUMNS]


def summarize(table: pd.DataFrame) -> dict[str, Any]:
    hashed = table.dropna(subset=["content_hash"])
    groups = hashed.groupby("content_hash").filter(lambda g: len(g) > 1).groupby("content_hash")
    duplicates = [sorted(g.track_id) for _, g in groups]
    return {
        "files": len(table),
        "undecodable": int(table.error.notna().sum()),
        "duplicate_groups": len(duplicates),
        "duplicate_files": sum(len(g) for g in duplicates),
        "cross_genre_duplicate_groups": int(sum(g.label.nunique() > 1 for _, g in groups)),
        "duplicates": duplicates,
        "sample_rates": {str(k): int(v) for k, v in hashed.sample_rate.value_counts().items()},
        "formats": {str(k): int(v) for k, v in hashed.format.value_counts().items()},
    }


def read(out: Path) -> pd.DataFrame:
    path = out / VALIDATION_FILE
    return pd.read_parquet(path) if path.exists() else pd.DataFrame(columns=COLUMNS)
