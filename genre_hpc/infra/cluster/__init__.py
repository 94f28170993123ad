"""Builds the Dask cluster a run uses (LocalCluster, a dask-jobqueue cluster of batch jobs on SLURM,
SGE, PBS, LSF, HTCondor or OAR, or SLURMRunner) and always closes it.

The only place a cluster is built: stages are handed its client.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

from distributed import Client
from omegaconf import DictConfig

from genre_hpc.core.errors import ConfigError
from genre_hpc.infra.cluster import jobqueue, local, runner
from genre_hpc.infra.cluster.schedulers import KINDS
from genre_hpc.infra.cluster.worker_env import prime_jit_cache

# every value of cluster.kind, in the order the messages list them
CLUSTER_KINDS = ("local", *KINDS, "slurm_runner")


@contextmanager
def connect(cfg: DictConfig) -> Iterator[Client]:
    """Yield a Client on the cluster that `cfg.cluster` describes; close both on exit."""
    spec = cfg.cluster
    # dask logs every worker's start and stop at INFO; a batch log wants the stages' lines
    logging.getLogger("distributed").setLevel(logging.WARNING)
    if spec.kind not in CLUSTER_KINDS:
        kinds = " | ".join(CLUSTER_KINDS)
        raise ConfigError("cluster", f"unknown kind {spec.kind!r}", f"use cluster={kinds}")
    prime_jit_cache(spec)
    if spec.kind == "local":
        yield from local.connect(spec)
    elif spec.kind == "slurm_runner":
        yield from runner.connect(cfg)
    else:
        yield from jobqueue.connect(cfg)
