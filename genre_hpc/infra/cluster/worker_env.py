"""What every worker process starts with: a primed numba cache to copy, and glibc malloc settings."""

from __future__ import annotations

import os
from pathlib import Path

from omegaconf import DictConfig

from genre_hpc.infra import jitcache

# Dask's nanny sets MALLOC_TRIM_THRESHOLD_=65536 in every worker, which turns off glibc's dynamic
# mmap threshold: each large numpy array is then mmap'd and page-faulted anew, and feature
# extraction ran 1.6x slower in a worker than in a plain process (0.185 vs 0.113 s per 30-s clip).
LOCAL_WORKER_CONFIG = {"distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None}
# Batch-job workers start their own nanny, which keeps Dask's trim threshold; a large mmap threshold
# lets big arrays reuse heap memory again (0.127 s per clip).
JOB_WORKER_ENV = {"MALLOC_MMAP_THRESHOLD_": str(64 * 2**20)}


# Workers run this module first (Dask's --preload): each takes its own copy of the primed cache.
PRELOAD = jitcache.__name__
# cluster.warm_start: batch jobs' nannies run this module (--preload-nanny) and fork their worker.
WARM_NANNY = "genre_hpc.infra.warm_nanny"
FORK_ENV = "DASK_DISTRIBUTED__WORKER__MULTIPROCESSING_METHOD"


def prime_jit_cache(spec: DictConfig) -> None:
    """Compile librosa's and our numba code once, before any worker starts (jitcache says why).

    LocalCluster workers inherit the primed folder, and its bytecode as PYTHONPYCACHEPREFIX (read
    from their first import on), through the environment; batch worker jobs get both from their
    prologue; SLURMRunner ranks are CLI processes that already took their copy. With
    cluster.prime_worker_caches=false, local workers get neither and compile for themselves."""
    primed = jitcache.prime(spec.numba_cache_dir)
    prefix = os.environ.get(BYTECODE_ENV)
    ours = prefix is None or _is_primed_bytecode(prefix)  # never replace a prefix the user set
    if spec.get("prime_worker_caches", True):
        os.environ[jitcache.PRIMED_ENV] = str(primed)
        if ours:
            os.environ[BYTECODE_ENV] = str(jitcache.bytecode_folder(primed))
    else:
        os.environ[jitcache.PRIMED_ENV] = ""
        if ours:
            os.environ.pop(BYTECODE_ENV, None)


BYTECODE_ENV = "PYTHONPYCACHEPREFIX"


def _is_primed_bytecode(prefix: str) -> bool:
    """Whether `prefix` is the bytecode tree of a primed folder (one this function exported)."""
    path = Path(prefix)
    return path.name == jitcache.BYTECODE and (path.parent / jitcache.STAMP).exists()
