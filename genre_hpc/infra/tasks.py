"""What a stage may ask of the client it is handed: task slots, batches sized to them, warm workers.

Nothing here knows how the cluster was built; that is infra/cluster's alone.
"""

from __future__ import annotations

from collections.abc import Callable

import pandas as pd
from distributed import Client

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
