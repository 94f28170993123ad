"""Builds the Dask cluster a run uses (LocalCluster, SLURMCluster or SLURMRunner) and always closes it."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from distributed import Client, LocalCluster
from omegaconf import DictConfig

from .errors import ConfigError

log = logging.getLogger(__name__)


@contextmanager
def connect(cfg: DictConfig) -> Iterator[Client]:
    """Yield a Client on the cluster that `cfg.cluster` describes; close both on exit."""
    spec = cfg.cluster
    _prepare_numba_cache(spec)
    # dask logs every worker's start and stop at INFO; a batch log wants the stages' lines
    logging.getLogger("distributed").setLevel(logging.WARNING)
    if spec.kind == "local":
        cluster = _local(spec)
    else:
        raise ConfigError("cluster", f"kind {spec.kind!r} is not available yet", "use cluster=local")
    try:
        with Client(cluster) as client:
            log.info("dask: %s, dashboard %s", _describe(client), client.dashboard_link)
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
    )


def _prepare_numba_cache(spec: DictConfig) -> None:
    """librosa's numba JIT costs seconds per new process unless it can cache its compiled code;
    workers inherit the variable (LocalCluster) or get it from the job prologue (SLURM)."""
    cache = spec.get("numba_cache_dir")
    if cache and "NUMBA_CACHE_DIR" not in os.environ:
        Path(cache).mkdir(parents=True, exist_ok=True)
        os.environ["NUMBA_CACHE_DIR"] = str(cache)


def _describe(client: Client) -> str:
    workers = client.scheduler_info()["workers"]
    threads = sum(w["nthreads"] for w in workers.values())
    return f"{len(workers)} workers, {threads} threads"


def worker_slots(client: Client) -> int:
    """Threads across the workers connected now (at least 1)."""
    return max(1, sum(client.nthreads().values()))
