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

import os
import signal

from genre_hpc.infra import jitcache


def dask_setup(nanny: object = None) -> None:
    jitcache.dask_setup(nanny)  # numba's cache folder is fixed when the feature code is imported: first
    from genre_hpc.flow import features

    features.warm_up()
    os.register_at_fork(after_in_child=spawned_signal_handlers)


def spawned_signal_handlers() -> None:
    """Give a forked worker the SIGTERM and SIGINT handling of a spawned one (a new interpreter's).

    It would otherwise inherit the nanny's: distributed's handler, which in the child only pokes
    the nanny's event loop (a copy that does not run there), so the worker ignored SIGTERM. The
    SIGTERM that scancel or the walltime sends to every process of the job then left it running
    until its nanny killed it 8 s later, in every warm-started job on the dev SLURM.
    """
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.default_int_handler)
