"""bench's new-worker probe: how long a worker that the configured cluster starts (a SLURM job on a node
that has run nothing yet, or a local process) takes to its first result, with nothing primed and
with the primed caches of infra/jitcache.

Two clocks per worker, both read where they can be compared: from its process start to its first
track's features (the worker's own clock: interpreter, imports, connecting, numba's code, the
track), and from its connection to that result (the driver's clock; what a stage waits for).
"""

from __future__ import annotations

import copy
import logging
import os
import socket
import sys
import time
from typing import Any

import pandas as pd
from omegaconf import DictConfig, OmegaConf

log = logging.getLogger(__name__)

VARIANTS = (("nothing primed", False), ("numba code and bytecode primed", True))


def probe(cfg: DictConfig, path: str) -> pd.DataFrame:
    """One row per variant: a cluster of one new worker, its first track of `path` timed."""
    from genre_hpc.infra.cluster import connect

    rows = []
    for label, primed in VARIANTS:
        one = _one_worker(cfg, primed)
        with connect(one) as client:
            client.wait_for_workers(1)
            connected = time.perf_counter()
            worker = next(iter(client.scheduler_info()["workers"]))
            result = client.submit(
                first_result, path, cfg.bench.block_segments, (socket.gethostname(), os.getpid()),
                workers=[worker], pure=False,
            ).result()  # fmt: skip
            since_connect = time.perf_counter() - connected
        rows.append({"worker": label, "cluster": str(cfg.cluster.kind), **result,
                     "connected_to_result_s": round(since_connect, 2)})  # fmt: skip
        log.info("bench: new worker, %s: first result %.1f s after its process started", label,
                 result["process_to_result_s"])  # fmt: skip
    return pd.DataFrame(rows)


def first_result(path: str, block_segments: int, driver: tuple[str, int]) -> dict[str, Any]:
    """On the new worker: warm up as extract does, extract one track; the times since it started."""
    import psutil

    from genre_hpc.flow import features
    from genre_hpc.flow.params import FeatureParams
    from genre_hpc.flow.track import track_features

    started = time.perf_counter()
    features.warm_up()
    warmed = time.perf_counter()
    track_features(path, params=FeatureParams(), block_segments=int(block_segments))
    done = time.time()
    return {
        "host": socket.gethostname(),
        "numba_cache": os.environ.get("NUMBA_CACHE_DIR", ""),
        "bytecode_prefix": sys.pycache_prefix or "",
        "warm_up_s": round(warmed - started, 2),
        "first_track_s": round(time.perf_counter() - warmed, 2),
        "process_to_result_s": round(done - _started_at(psutil.Process(), driver), 2),
    }


def _started_at(process: Any, driver: tuple[str, int]) -> float:
    """When this worker's first process started: a SLURM job's nanny, else the worker itself
    (a LocalCluster's nanny lives in the driver, which started long before)."""
    start = process.create_time()
    for parent in process.parents():
        if parent.name() != process.name() or (socket.gethostname(), parent.pid) == driver:
            break
        start = parent.create_time()
    return start


def _one_worker(cfg: DictConfig, primed: bool) -> DictConfig:
    one = copy.deepcopy(cfg)  # unresolved: SLURM's \${TMPDIR} must reach the job script escaped
    OmegaConf.update(one, "cluster.n_workers", 1, force_add=True)
    OmegaConf.update(one, "cluster.threads_per_worker", 1, force_add=True)
    OmegaConf.update(one, "cluster.jobs", 1, force_add=True)
    OmegaConf.update(one, "cluster.prime_worker_caches", primed, force_add=True)
    return one
