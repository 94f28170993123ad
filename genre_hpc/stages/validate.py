"""The validate stage: read every file's header on the cluster into OUT/validation.parquet; list tracks."""

from __future__ import annotations

import logging
from typing import Any

from distributed import Client
from omegaconf import DictConfig

from genre_hpc.core.layout import OutputLayout
from genre_hpc.flow import corpus, validation
from genre_hpc.infra import manifest, tasks

log = logging.getLogger(__name__)


def run(cfg: DictConfig, client: Client, out: OutputLayout) -> dict[str, Any]:
    """Probe every file not probed before (same path and size); write validation.parquet and the
    corpus's tracks.parquet and skipped.parquet."""
    timer = manifest.StageTimer(out, cfg)
    found = corpus.load(cfg)
    corpus.write(out, found)
    log.info("validate: %s", found.describe())
    tracks = found.tracks[corpus.TRACK_COLUMNS]
    todo, kept = validation.pending(tracks, validation.read(out))
    size = tasks.batch_size(len(todo), tasks.worker_slots(client))
    batches = [batch.to_dict("records") for batch in tasks.batches(todo, size)]
    rows = []
    for batch_rows in client.gather(client.map(validation.probe_batch, batches, pure=False)):
        rows.extend(batch_rows)
    table = validation.from_rows(rows, kept)
    validation.write(out, table)
    record = validation.summarize(table)
    record["probed"] = len(todo)
    record["batches"] = len(batches)
    record["skipped"] = found.skip_counts()
    timer.finish("validate", record)
    # duplicates are known once extract has hashed the decoded audio (here only from an earlier extract)
    log.info(
        "validate: %d files (%d probed now), %d unreadable, %d skipped, %.1f s",
        record["files"], len(todo), record["undecodable"], len(found.skipped), record["wall_seconds"],
    )  # fmt: skip
    return record
