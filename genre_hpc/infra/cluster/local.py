"""A LocalCluster on this machine: one single-threaded worker process per core by default."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from pathlib import Path

import dask
from distributed import Client, LocalCluster
from omegaconf import DictConfig

from genre_hpc.infra.cluster.worker_env import LOCAL_WORKER_CONFIG, PRELOAD
from genre_hpc.infra.tasks import describe

log = logging.getLogger(__name__)


def connect(spec: DictConfig) -> Iterator[Client]:
    """A client on a new LocalCluster, both closed when the caller is done."""
    with dask.config.set(LOCAL_WORKER_CONFIG):
        cluster = _local(spec)
    try:
        with Client(cluster) as client:
            log.info("dask: %s, dashboard %s", describe(client), client.dashboard_link)
            yield client
    finally:
        cluster.close()


def _local(spec: DictConfig) -> LocalCluster:
    n_workers = spec.n_workers or max(1, (os.cpu_count() or 1) // spec.threads_per_worker)
    Path(spec.local_directory).mkdir(parents=True, exist_ok=True)
    return LocalCluster(
        n_workers=n_workers,
        threads_per_worker=spec.threads_per_worker,
        processes=True,
        memory_limit=spec.memory_limit,
        local_directory=str(spec.local_directory),
        dashboard_address=spec.dashboard_address,
        # the scheduler is only for this machine: do not listen on every interface
        host="127.0.0.1",
        # each worker process takes its own copy of the primed numba cache before importing numba code
        preload=[PRELOAD],
    )
