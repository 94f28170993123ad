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
    """Run `warm_up` (numba's JIT) on every worker without two processes compiling into one cache.

    numba's cache is not safe against concurrent compilation: two processes writing the same
    function can leave a mismatched pair of files that segfaults whoever loads them later
    (numba issues 4807, 10128). So the driver compiles first (it shares the cache of a
    LocalCluster), then one worker per host (node-local caches on SLURM), then the rest, who
    only load.
    """
    warm_up()
    hosts: dict[str, list[str]] = {}
    for address, info in client.scheduler_info()["workers"].items():
        hosts.setdefault(info.get("host", address), []).append(address)
    first = [workers[0] for workers in hosts.values()]
    rest = [address for workers in hosts.values() for address in workers[1:]]
    client.run(warm_up, workers=first)
    if rest:
        client.run(warm_up, workers=rest)
