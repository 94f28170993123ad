"""Dask nanny preload (``--preload-nanny``) of cluster.warm_start: the nanny of a batch worker job loads
what a worker runs (its copy of the primed numba cache, the feature code and its compiled functions)
and then forks the worker (distributed.worker.multiprocessing-method=fork), which starts with all
of it in memory.

Dask's default spawns the worker as a fresh interpreter: it imports distributed again and then, at
its first task, numpy, scipy and numba, and loads the compiled functions. Forked, the worker
skips the second start-up and its first task finds the code loaded. The nanny does this once,
before it starts its worker, so a restarted worker (the nanny's reason to be) is forked warm as
well.
"""

from __future__ import annotations

from genre_hpc.infra import jitcache


def dask_setup(nanny: object = None) -> None:
    jitcache.dask_setup(nanny)  # numba's cache folder is fixed when the feature code is imported: first
    from genre_hpc.flow import features

    features.warm_up()
