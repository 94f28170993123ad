"""SLURMRunner: scheduler, client and workers are the tasks of one allocation (srun)."""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from distributed import Client
from omegaconf import DictConfig

from genre_hpc.core.errors import ClusterError
from genre_hpc.infra.cluster.worker_env import PRELOAD
from genre_hpc.infra.tasks import describe

log = logging.getLogger(__name__)


def connect(cfg: DictConfig) -> Iterator[Client]:
    """Every task of the srun step calls this: rank 0 serves as scheduler and rank 2+ as workers until
    the client ends (they leave through SystemExit, never reaching the stage); rank 1 gets the client."""
    spec = cfg.cluster
    if "SLURM_PROCID" not in os.environ:
        raise ClusterError(
            "cluster=slurm_runner runs inside an allocation of at least 3 tasks launched with srun: "
            "`sbatch -N 2 --ntasks-per-node=2 slurm/extract.sh cluster=slurm_runner`"
        )
    scheduler_file = Path(str(spec.scheduler_file)).expanduser().resolve()
    scheduler_file.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    threads = spec.threads or int(os.environ.get("SLURM_CPUS_PER_TASK", "1"))
    dashboard = spec.dashboard_address
    local_directory = str(spec.local_directory)
    Path(local_directory).mkdir(parents=True, exist_ok=True)
    runner = _runner_class()(
        scheduler_file=str(scheduler_file),
        wait_seconds=spec.connect_timeout,
        scheduler_options={
            "interface": spec.interface,
            "dashboard": bool(dashboard),
            "dashboard_address": dashboard or "127.0.0.1:0",
        },
        worker_options={
            "nthreads": threads,
            "memory_limit": spec.memory_limit,
            "local_directory": local_directory,
            "interface": spec.interface,
            "death_timeout": spec.connect_timeout,
            # a no-op while workers run inside the rank (it took its copy in the CLI); needed if
            # they ever run in a process of their own
            "preload": [PRELOAD],
        },
    )
    # only the client rank gets here
    with runner, Client(runner) as client:
        try:
            client.wait_for_workers(runner.n_workers, timeout=spec.connect_timeout)
        except (TimeoutError, asyncio.TimeoutError):
            raise ClusterError(
                f"{len(client.scheduler_info()['workers'])} of {runner.n_workers} runner workers connected "
                f"within cluster.connect_timeout={spec.connect_timeout} s: check cluster.interface"
            ) from None
        log.info("dask: SLURMRunner, %s; scheduler %s", describe(client), runner.scheduler_address)
        yield client


def _runner_class() -> type:
    from dask_jobqueue.slurm import SLURMRunner

    class Runner(SLURMRunner):
        """SLURMRunner whose ranks give up on a scheduler file that never appears (a path the nodes
        do not share would otherwise hang until the walltime)."""

        def __init__(self, *args: Any, wait_seconds: float, **kwargs: Any) -> None:
            self._wait_seconds = wait_seconds
            super().__init__(*args, **kwargs)

        async def get_scheduler_address(self) -> str:
            deadline = time.monotonic() + self._wait_seconds
            while not self.scheduler_file.exists():
                if time.monotonic() > deadline:
                    raise ClusterError(
                        f"no scheduler file {self.scheduler_file} after {self._wait_seconds} s: "
                        "cluster.scheduler_file must be on a filesystem every node of the job sees"
                    )
                await asyncio.sleep(0.2)
            return await super().get_scheduler_address()

    return Runner
