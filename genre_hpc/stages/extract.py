"""The extract stage: one Dask task per batch of tracks, each writing its own Parquet parts.

Parts are named after the tracks they hold and written under a temporary name, then renamed,
so a batch that runs twice (a retried task, a lost worker) replaces its own part instead of
adding rows, and a part is either whole or absent. A rerun reads which tracks are already
in the dataset or in the error table and only submits the rest.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq
from distributed import Client, as_completed
from omegaconf import DictConfig

from genre_hpc import __version__
from genre_hpc.core.atomic import atomic_path
from genre_hpc.core.errors import AudioError, ConfigError, DatasetError
from genre_hpc.flow import audio, corpus, dataset, features
from genre_hpc.flow.features import FeatureParams
from genre_hpc.flow.schema import (
    FEATURE_VERSION,
    ID_COLUMNS,
    PARTITION_COLUMN,
    arrow_schema,
    empty_errors,
    error_schema,
)
from genre_hpc.infra import config, manifest
from genre_hpc.infra.cluster import warm_workers, worker_slots

log = logging.getLogger(__name__)

FEATURES_DIR = "features"
ERRORS_FILE = "errors.parquet"
# Per-batch error parts, merged into errors.parquet at the end of every run.
ERROR_PARTS_DIR = ".errors"


def run(cfg: DictConfig, client: Client) -> dict[str, Any]:
    """Extract features for every track not yet in the dataset; return the stage's record."""
    started = time.perf_counter()
    out = config.output_dir(cfg)
    params = config.feature_params(cfg)
    features_dir = out / FEATURES_DIR
    root = corpus.resolve_root(cfg)
    _check_compatible(out, params, root)
    tracks = corpus.scan(root, extensions=tuple(cfg.data.extensions))
    done = finished_tracks(out)
    todo = tracks[~tracks.track_id.isin(done)]
    log.info(
        "extract: %d tracks in %s, %d already done, %d to do",
        len(tracks), root, len(tracks) - len(todo), len(todo),
    )  # fmt: skip

    if len(todo):
        # numba's JIT (or loading its cache) once per connected worker, not inside a first task;
        # workers that join later pay it in their first batch
        warm_workers(client, features.warm_up)
    batch_size = cfg.extract.batch_size or _auto_batch_size(len(todo), worker_slots(client))
    batches = [todo.iloc[i : i + batch_size] for i in range(0, len(todo), batch_size)]
    futures = [
        client.submit(
            process_batch,
            list(batch.itertuples(index=False, name=None)),
            params=params,
            block_segments=cfg.extract.block_segments,
            output_dir=str(out),
            corpus_root=str(root.resolve()),
            key=f"extract-{batch_id(batch.track_id)}",
            retries=1,
        )
        for batch in batches
    ]
    summaries = _collect(futures, n_tracks=len(todo))
    error_count = merge_errors(out)
    seconds = time.perf_counter() - started
    rows = sum(s["rows"] for s in summaries)
    audio_seconds = sum(s["audio_seconds"] for s in summaries)
    record = {
        "corpus_root": str(root),
        "tracks_in_corpus": len(tracks),
        "tracks_skipped_as_done": len(tracks) - len(todo),
        "tracks_processed": len(todo),
        "batches": len(batches),
        "batch_size": batch_size,
        "rows_written": rows,
        "rows_total": dataset_rows(features_dir),
        "parts_total": len(list(features_dir.rglob("*.parquet"))) if features_dir.exists() else 0,
        "errors_total": error_count,
        "audio_seconds": audio_seconds,
        "task_seconds": sum(s["seconds"] for s in summaries),
        "wall_seconds": seconds,
        "workers": len(client.scheduler_info()["workers"]),
        "feature_params": asdict(params),
    }
    if seconds > 0 and audio_seconds:
        record["audio_seconds_per_wall_second"] = audio_seconds / seconds
    manifest.update(out, "extract", record, config=config.plain(cfg))
    log.info(
        "extract: wrote %d rows for %d tracks in %.1f s (%d errors in total, see %s)",
        rows, len(todo), seconds, error_count, out / ERRORS_FILE,
    )  # fmt: skip
    if record["rows_total"] == 0:
        raise DatasetError(f"no track of {root} could be used: read {out / ERRORS_FILE} for why")
    return record


def process_batch(
    batch: list[tuple[str, str, str, int]],
    *,
    params: FeatureParams,
    block_segments: int,
    output_dir: str,
    corpus_root: str = "",
) -> dict[str, Any]:
    """Extract one batch of (track_id, path, label, size) and write its parts; runs on a worker."""
    started = time.perf_counter()
    out = Path(output_dir)
    frames, errors = [], []
    audio_seconds = 0.0
    for track_id, path, label, _size in batch:
        try:
            frame = track_features(path, params=params, block_segments=block_segments)
        except AudioError as exc:
            errors.append({"track_id": track_id, "path": path, "stage": "extract", "error": str(exc)})
            continue
        frame.insert(0, "track_id", track_id)
        frame.insert(1, "path", path)
        frame.insert(2, "label", label)
        audio_seconds += float(frame.duration_s.sum())
        frames.append(frame)
    name = f"part-{batch_id(t[0] for t in batch)}.parquet"
    rows = 0
    if frames:
        table = pa.Table.from_pandas(pd.concat(frames, ignore_index=True), preserve_index=False)
        table = table.cast(arrow_schema(n_mfcc=params.n_mfcc)).replace_schema_metadata(
            _metadata(params, corpus_root)
        )
        rows = table.num_rows
        for label in sorted(set(table.column(PARTITION_COLUMN).to_pylist())):
            part = table.filter(pc.equal(table[PARTITION_COLUMN], label))
            part = part.drop_columns([PARTITION_COLUMN])
            write_atomic(part, out / FEATURES_DIR / f"{PARTITION_COLUMN}={label}" / name)
    if errors:
        table = pa.Table.from_pylist(errors, schema=error_schema())
        write_atomic(table, out / ERROR_PARTS_DIR / name)
    return {
        "tracks": len(batch),
        "rows": rows,
        "errors": len(errors),
        "audio_seconds": audio_seconds,
        "seconds": time.perf_counter() - started,
    }


def track_features(path: str, *, params: FeatureParams, block_segments: int) -> pd.DataFrame:
    """All segments of one track: identity columns (bar track/path/label) and features."""
    blocks, tuning = [], None
    for block in audio.iter_segments(
        path,
        sample_rate=params.sample_rate,
        segment_samples=params.segment_samples,
        min_samples=params.min_samples,
        block_segments=block_segments,
    ):
        if tuning is None:  # once per track, from its first block
            tuning = features.estimate_tuning(block.samples, params=params)
        values = features.extract(block.samples, params=params, tuning=tuning)
        n, length = block.samples.shape
        index = np.arange(block.first, block.first + n)
        blocks.append((index, length, values))
    if any(not np.isfinite(values).all() for _, _, values in blocks):
        raise AudioError("features are not finite (NaN or inf): the audio holds invalid samples")
    index = np.concatenate([b[0] for b in blocks])
    values = np.concatenate([b[2] for b in blocks])
    seg_seconds = params.segment_samples / params.sample_rate
    frame = pd.DataFrame(values, columns=params.names())
    frame.insert(0, "segment", index.astype(np.int32))
    frame.insert(1, "start_s", index * seg_seconds)
    frame.insert(2, "duration_s", np.concatenate([[b[1]] * len(b[0]) for b in blocks]) / params.sample_rate)
    return frame


def batch_id(track_ids) -> str:
    """Stable name of a batch: the same tracks always give the same part names."""
    digest = hashlib.sha1()
    for track_id in track_ids:
        digest.update(track_id.encode())
        digest.update(b"\0")
    return digest.hexdigest()[:16]


def finished_tracks(out: Path) -> set[str]:
    """Tracks with rows in the dataset, or recorded as errors by an earlier run."""
    done: set[str] = set()
    features_dir = out / FEATURES_DIR
    if features_dir.exists() and any(features_dir.rglob("*.parquet")):
        table = ds.dataset(features_dir, format="parquet", partitioning="hive").to_table(columns=["track_id"])
        done.update(pc.unique(table["track_id"]).to_pylist())
    done.update(_read_error_parts(out).track_id)
    return done


def merge_errors(out: Path) -> int:
    """Rewrite errors.parquet from all error parts; return its row count."""
    errors = _read_error_parts(out).drop_duplicates().sort_values(["path", "stage"])
    table = pa.Table.from_pandas(errors, schema=error_schema(), preserve_index=False)
    write_atomic(table, out / ERRORS_FILE)
    return table.num_rows


def dataset_rows(features_dir: Path) -> int:
    if not features_dir.exists():
        return 0
    return ds.dataset(features_dir, format="parquet", partitioning="hive").count_rows()


def _read_error_parts(out: Path) -> pd.DataFrame:
    parts = sorted((out / ERROR_PARTS_DIR).glob("part-*.parquet"))
    if not parts:
        return empty_errors()
    return pa.concat_tables(pq.read_table(p, schema=error_schema()) for p in parts).to_pandas()


def write_atomic(table: pa.Table, path: Path) -> None:
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp, compression="zstd")


def _metadata(params: FeatureParams, corpus_root: str) -> dict[bytes, bytes]:
    info = {
        "corpus_root": corpus_root,
        "feature_version": FEATURE_VERSION,
        "genre_hpc_version": __version__,
        "feature_params": asdict(params),
        "id_columns": list(ID_COLUMNS),
    }
    return {b"genre_hpc": json.dumps(info).encode()}


def _check_compatible(out: Path, params: FeatureParams, root: Path) -> None:
    """Refuse to append rows of another corpus, feature-set version or settings to a dataset.

    Read from the parts themselves (a killed first run leaves parts but no manifest record);
    dataset.feature_info raises for another feature-set version.
    """
    features_dir = out / FEATURES_DIR
    if not features_dir.exists() or not any(features_dir.rglob("*.parquet")):
        return
    info = dataset.feature_info(features_dir)
    for key, value in asdict(params).items():
        old = info["feature_params"].get(key)
        if old != value:
            raise ConfigError(
                f"features.{key}",
                f"{value!r} differs from the {old!r} that {features_dir} was extracted with",
                "use a new output.dir, or the old value",
            )
    previous = info.get("corpus_root")
    if previous and Path(previous) != root.resolve():
        # track ids are paths inside the corpus: another corpus's blues/blues.00000.wav would
        # count as done and keep the first corpus's rows
        raise ConfigError(
            "data.root",
            f"{root} is not the corpus {previous} whose features {features_dir} holds",
            "use a new output.dir for another corpus",
        )


def _auto_batch_size(n_tracks: int, slots: int) -> int:
    """About four tasks per worker slot, so late tasks even out the load; 1..64 tracks each."""
    return int(min(64, max(1, -(-n_tracks // (4 * slots)))))


def _collect(futures: list, *, n_tracks: int) -> list[dict[str, Any]]:
    """Wait for the batches, logging progress as each completes."""
    summaries: list[dict[str, Any]] = []
    started = time.perf_counter()
    tracks = 0
    last_log = 0.0
    for future in as_completed(futures):
        summary = future.result()
        summaries.append(summary)
        tracks += summary["tracks"]
        elapsed = time.perf_counter() - started
        if elapsed - last_log >= 2.0 or len(summaries) == len(futures):
            last_log = elapsed
            rate = tracks / elapsed if elapsed else 0.0
            eta = (n_tracks - tracks) / rate if rate else float("nan")
            log.info(
                "extract: %d/%d batches, %d/%d tracks, %.1f tracks/s, ETA %.0f s",
                len(summaries), len(futures), tracks, n_tracks, rate, eta,
            )  # fmt: skip
        future.release()
    return summaries
