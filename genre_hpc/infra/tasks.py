"""What a stage may ask of the client it is handed: task slots, batches sized to them and cut into
chunks, warm workers; and what a task may ask of its worker: whether it is still wanted.

Nothing here knows how the cluster was built; that is infra/cluster's alone.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import pandas as pd
from distributed import Client, get_worker
from distributed.core import Status
from distributed.worker import thread_state

# A batch is one Dask task; past this many tracks, a task lost with its worker costs too much rerun.
MAX_BATCH = 64


def worker_slots(client: Client) -> int:
    """Threads across the workers connected now (at least 1)."""
    return max(1, sum(client.nthreads().values()))


def batch_size(n_items: int, slots: int) -> int:
    """About four tasks per worker slot, so late tasks even out the load; 1..MAX_BATCH items each."""
    return int(min(MAX_BATCH, max(1, -(-n_items // (4 * slots)))))


def batches(table: pd.DataFrame, size: int) -> list[pd.DataFrame]:
    """`table` cut into consecutive batches of `size` rows (the last one shorter)."""
    return [table.iloc[i : i + size] for i in range(0, len(table), size)]


def chunks(seconds: Sequence[float], budget: float) -> list[int]:
    """The sizes, in order, of consecutive runs of items whose `seconds` add up to at most `budget`:
    at least one item each, and an item of unknown length (NaN) alone."""
    sizes: list[int] = []
    count, total = 0, 0.0
    for value in seconds:
        value = budget if math.isnan(value) else value
        if count and total + value > budget:
            sizes.append(count)
            count, total = 0, 0.0
        count, total = count + 1, total + value
    return [*sizes, count] if count else sizes


def describe(client: Client) -> str:
    """The workers and threads connected now, for the log."""
    workers = client.scheduler_info()["workers"]
    threads = sum(w["nthreads"] for w in workers.values())
    return f"{len(workers)} workers, {threads} threads"


def warm_workers(client: Client, warm_up: Callable[[], None]) -> None:
    """Run `warm_up` on every worker at once: each loads numba's compiled code from its own copy
    of the primed cache (see infra/jitcache), so no first task pays for it and no two workers
    share files."""
    client.run(warm_up)


def still_wanted() -> bool:
    """From inside a task: whether the worker still runs it and will report its result.

    A worker that retires (`--lifetime`) or is told to drop a task cancels it, but the thread
    computing it goes on until the process ends, seconds later, while the task runs again
    elsewhere. A task that writes as it goes asks this before each write, so that an abandoned
    run does not write after the run that replaced it (and after parts it would have replaced were
    merged away). True outside a worker (a task function called directly)."""
    try:
        worker = get_worker()
    except ValueError:
        return True
    task = worker.state.tasks.get(getattr(thread_state, "key", None))
    running = task is not None and task.state in ("executing", "long-running")
    return running and worker.status == Status.running
