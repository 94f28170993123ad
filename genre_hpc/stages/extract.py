"""The extract stage: one Dask task per batch of tracks, each writing its own parts to the feature store.

What makes a rerun or a retried task safe (parts named after their tracks, written atomically,
finished tracks skipped) is the FeatureStore's (flow/dataset.py); this module submits the
batches and follows them.

A batch writes its tracks in fixed chunks of about `extract.chunk_seconds` of audio (by the
durations validate read from the headers) as they finish, not all at the end: a worker that
retires mid-batch (its walltime is near: `--lifetime`) or is lost keeps what it finished, and the
batch, started again on another worker, skips the chunks already written. Chunks are fixed slices
of the batch, named after their tracks, so two runs of one batch (a retry while the retired worker
still finishes a chunk) write the same parts, never a row twice. Each chunk is reported to the
driver as it is written (infra/progress), which logs progress as tracks finish.
"""

from __future__ import annotations

import itertools
import logging
import time
from dataclasses import asdict
from typing import Any

from distributed import Client, as_completed
from omegaconf import DictConfig

from genre_hpc.core.errors import DatasetError
from genre_hpc.core.layout import OutputLayout
from genre_hpc.flow import corpus, features, validation
from genre_hpc.flow.dataset import FeatureStore, batch_id
from genre_hpc.flow.params import FeatureParams
from genre_hpc.flow.track import batch_features
from genre_hpc.infra import config, manifest, progress, tasks

log = logging.getLogger(__name__)

# The topic on which batches report their chunks to the driver (infra/progress).
PROGRESS_TOPIC = "genre-hpc-extract"


def run(cfg: DictConfig, client: Client, out: OutputLayout) -> dict[str, Any]:
    """Extract features for every track not yet in the dataset; return the stage's record."""
    timer = manifest.StageTimer(out, cfg)
    params = config.feature_params(cfg)
    store = FeatureStore(out)
    found = corpus.load(cfg)
    root = found.root
    store.check_compatible(params, root)
    corpus.write(out, found)  # also when validate did not run first (run stages=[extract, ...])
    tracks = found.tracks[corpus.TRACK_COLUMNS]
    done = store.finished_tracks()
    rows_before = store.row_count()
    # a set lookup per id: pandas' isin on a string column took 0.15 s per 10^4 tracks (pandas 3.1)
    todo = tracks[[track_id not in done for track_id in tracks.track_id.tolist()]]
    log.info(
        "extract: %s; %d already done, %d to do",
        found.describe(), len(tracks) - len(todo), len(todo),
    )  # fmt: skip

    if len(todo):
        # numba's JIT (or loading its cache) once per connected worker, not inside a first task;
        # workers that join later pay it in their first batch
        tasks.warm_workers(client, features.warm_up)
    batch_size = cfg.extract.batch_size or tasks.batch_size(len(todo), tasks.worker_slots(client))
    batches = tasks.batches(todo, batch_size)
    # chunks small enough that a worker retiring mid-batch loses little, large enough that writing
    # a part per chunk costs little (with 3-s tracks, one part per track made extract 1.5-3x slower)
    durations = validation.read(out).drop_duplicates("track_id").set_index("track_id").duration_s
    futures = [
        client.submit(
            process_batch,
            list(batch.itertuples(index=False, name=None)),
            store=store,
            params=params,
            block_segments=cfg.extract.block_segments,
            corpus_root=str(root.resolve()),
            chunk_sizes=tasks.chunks(
                batch.track_id.map(durations).astype(float).tolist(), cfg.extract.chunk_seconds
            ),
            key=f"extract-{batch_id(batch.track_id)}",
            retries=1,
        )
        for batch in batches
    ]
    with progress.Progress(
        client, PROGRESS_TOPIC, log=log, name="extract", total=len(todo), tasks=len(futures)
    ) as tracker:
        summaries = _collect(futures, tracker)
    # counted in the dataset, not from the tasks' results: a resumed batch's earlier chunks count too
    rows = store.row_count() - rows_before
    merged = merge_small_parts(client, store, int(cfg.extract.part_rows))
    error_count = store.merge_errors()
    duplicates = validation.summarize(validation.merge_hashes(out, store.content_hashes(merge=True)))
    validation.log_duplicates(log, duplicates)
    seconds = timer.seconds
    audio_seconds = store.audio_seconds(todo.track_id)
    record = {
        "corpus_root": str(root),
        "tracks_in_corpus": len(tracks),
        "tracks_skipped": found.skip_counts(),
        "duplicate_groups": duplicates["duplicate_groups"],
        "duplicate_files": duplicates["duplicate_files"],
        "tracks_skipped_as_done": len(tracks) - len(todo),
        "tracks_processed": len(todo),
        "batches": len(batches),
        "batch_size": batch_size,
        "chunk_seconds": int(cfg.extract.chunk_seconds),
        "tracks_resumed": tracker.resumed,
        "rows_written": rows,
        "rows_total": store.row_count(),
        "parts_merged": merged,
        "parts_total": store.part_count(),
        "errors_total": error_count,
        "audio_seconds": audio_seconds,
        "task_seconds": sum(s["seconds"] for s in summaries),
        "wall_seconds": seconds,
        "workers": len(client.scheduler_info()["workers"]),
        "feature_params": asdict(params),
    }
    if seconds > 0 and audio_seconds:
        record["audio_seconds_per_wall_second"] = audio_seconds / seconds
    timer.finish("extract", record)
    log.info(
        "extract: wrote %d rows for %d tracks in %.1f s (%d errors in total, see %s); %d files in "
        "%d groups of identical audio",
        rows, len(todo), seconds, error_count, out.errors, duplicates["duplicate_files"],
        duplicates["duplicate_groups"],
    )  # fmt: skip
    if record["rows_total"] == 0:
        raise DatasetError(f"no track of {root} could be used: read {out.errors} for why")
    return record


def process_batch(
    batch: list[tuple[str, str, str, int]],
    *,
    store: FeatureStore,
    params: FeatureParams,
    block_segments: int,
    corpus_root: str = "",
    chunk_sizes: list[int] | None = None,
) -> dict[str, Any]:
    """Extract one batch of (track_id, path, label, size) on a worker, writing (and reporting) each
    chunk (consecutive tracks, `chunk_sizes` of them; default: one track each) as it finishes and
    skipping chunks an earlier run of the batch wrote; then merge the batch's chunks into one part
    per genre.

    The summary counts what this run of the batch did (`audio_seconds`, `seconds`); `chunks` maps
    every chunk of the batch to its tracks, `resumed` counts the tracks found already written.
    """
    started = time.perf_counter()
    sizes = chunk_sizes or [1] * len(batch)
    if sum(sizes) != len(batch):
        raise DatasetError(f"chunks of {sum(sizes)} tracks asked of a batch of {len(batch)}")
    starts = itertools.accumulate(sizes, initial=0)
    chunks = [batch[start : start + size] for start, size in zip(starts, sizes, strict=False)]
    names = [batch_id(t[0] for t in chunk) for chunk in chunks]
    written = store.written(names)
    task = batch_id(t[0] for t in batch)
    resumed = sum(len(c) for c, name in zip(chunks, names, strict=True) if name in written)
    if resumed:
        progress.report(PROGRESS_TOPIC, task=task, resumed=resumed, of=len(batch))
    summary = {
        "tracks": len(batch),
        "chunks": {name: len(chunk) for chunk, name in zip(chunks, names, strict=True)},
        "resumed": resumed,
        "errors": 0,
        "audio_seconds": 0.0,
    }
    for chunk, name in zip(chunks, names, strict=True):
        if name in written:
            continue
        result = batch_features(chunk, params=params, block_segments=block_segments, stage="extract")
        if not tasks.still_wanted():  # this worker retired: the batch runs elsewhere, and writes
            return summary | {"seconds": time.perf_counter() - started}
        store.write_batch(
            name,
            result.frame,
            result.errors,
            params=params,
            corpus_root=corpus_root,
            hashes=result.hashes,
        )
        progress.report(PROGRESS_TOPIC, piece=name, units=len(chunk))
        summary["errors"] += len(result.errors)
        summary["audio_seconds"] += result.audio_seconds
    if tasks.still_wanted():
        store.compact(names)
    summary["seconds"] = time.perf_counter() - started
    return summary


def merge_small_parts(client: Client, store: FeatureStore, part_rows: int) -> int:
    """Merge each genre's small parts into parts of at least `part_rows` rows, one Dask task per new
    part; return how many parts were merged away. Also finishes the merges of a killed run."""
    started = time.perf_counter()
    plan = store.merge_plan(part_rows)
    if not plan:
        return 0
    futures = [
        client.submit(store.merge_parts, group, key=f"merge-{batch_id(group)}", retries=1) for group in plan
    ]
    client.gather(futures)
    sources = sum(len(group) for group in plan)
    log.info(
        "extract: merged %d small parts into %d of at least %d rows (or a genre's all) in %.1f s",
        sources, len(plan), part_rows, time.perf_counter() - started,
    )  # fmt: skip
    return sources - len(plan)


def _collect(futures: list, tracker: progress.Progress) -> list[dict[str, Any]]:
    """Wait for the batches; `tracker` logs progress as their chunks are written and as they end."""
    summaries: list[dict[str, Any]] = []
    for future in as_completed(futures):
        summary = future.result()
        summaries.append(summary)
        tracker.finished_task(summary["chunks"])
        future.release()
    return summaries
