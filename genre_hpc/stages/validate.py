"""The validate stage: probe every file once on the cluster into OUT/validation.parquet; report duplicates."""

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
    """Probe every file not probed before (same path and size); write validation.parquet."""
    timer = manifest.StageTimer(out, cfg)
    root = corpus.resolve_root(cfg)
    tracks = corpus.scan(root, extensions=tuple(cfg.data.extensions))
    todo, rows = validation.pending(tracks, validation.read(out))
    size = tasks.batch_size(len(todo), tasks.worker_slots(client))
    batches = [batch.to_dict("records") for batch in tasks.batches(todo, size)]
    for batch_rows in client.gather(client.map(validation.probe_batch, batches, pure=False)):
        rows.extend(batch_rows)
    table = validation.from_rows(rows)
    validation.write(out, table)
    record = validation.summarize(table)
    record["probed"] = len(todo)
    timer.finish("validate", record)
    log.info(
        "validate: %d files (%d probed now), %d undecodable, %d in %d duplicate groups "
        "(%d spanning two genres), %.1f s",
        record["files"], len(todo), record["undecodable"], record["duplicate_files"],
        record["duplicate_groups"], record["cross_genre_duplicate_groups"], record["wall_seconds"],
    )  # fmt: skip
    for group in record["duplicates"][:20]:
        log.warning("validate: identical audio: %s", ", ".join(group))
    return record
