"""Each worker's share of the training rows, placed so that xgboost.dask fits the same model every run.

xgboost.dask trains each worker on the rows that worker happens to hold: its quantile sketch,
its subsamples and the order of its histogram sums follow them. Rows placed by Dask's load
balancing gave a different model from one run to the next (the demo's train moved between 0.80
and 0.90 track accuracy). Here the dataset's parts, in their fixed order, are cut into one
contiguous share per worker; share i is read by, and stays on, the worker that xgboost.dask
ranks i. The model then depends on the data and the number of workers only: another worker
count gives other shares, so a slightly different model; the same count gives the same bytes.
The driver only plans: the workers read the rows.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import dask.array as da
import numpy as np
import pandas as pd
from dask.highlevelgraph import HighLevelGraph
from distributed import Client, Future


@dataclass(frozen=True)
class Share:
    """One worker's rows: a pandas DataFrame held on `worker`."""

    worker: str
    rows: Future
    length: int


def ranked_workers(client: Client) -> list[str]:
    """The workers' addresses in xgboost.dask's rank order: it ranks by "[xgboost.dask-<name>]:<address>"
    (its CommunicatorContext), so by worker name, which a cluster gives alike on every run."""
    names = client.run(lambda dask_worker: str(dask_worker.name))
    return sorted(names, key=lambda address: f"[xgboost.dask-{names[address]}]:{address}")


def cut(lengths: Sequence[int], shares: int) -> list[tuple[int, int]]:
    """Contiguous ranges [start, stop) of parts, at most `shares` of them, none empty, each holding
    about an equal number of rows (`lengths`: the rows of each part, in order)."""
    ends = np.cumsum(np.asarray(lengths, dtype=np.int64))
    if not len(ends):
        return []
    # the part at which the running total reaches each equal fraction closes a share
    stops = {int(np.searchsorted(ends, ends[-1] * k / shares, side="left")) + 1 for k in range(1, shares)}
    ranges, start = [], 0
    for stop in sorted(s for s in stops if s < len(ends)) + [len(ends)]:
        if stop > start:
            ranges.append((start, stop))
            start = stop
    return ranges


def place(
    client: Client,
    read: Callable[[list[str]], pd.DataFrame],
    parts: list[str],
    lengths: Sequence[int],
    *,
    workers: list[str] | None = None,
) -> list[Share]:
    """`read` each worker's contiguous run of `parts` on that worker, in rank order (or the order of
    `workers`); empty shares are dropped (xgboost.dask trains on the workers that hold rows)."""
    workers = ranked_workers(client) if workers is None else workers
    futures = [
        (worker, _pinned(client, worker, read, parts[start:stop]))
        for worker, (start, stop) in zip(workers, cut(lengths, len(workers)), strict=False)
    ]
    sizes = client.gather([_pinned(client, worker, len, rows) for worker, rows in futures])
    return [Share(worker, rows, int(n)) for (worker, rows), n in zip(futures, sizes, strict=True) if n]


def derive(client: Client, shares: list[Share], fn: Callable[[pd.DataFrame], pd.DataFrame]) -> list[Share]:
    """New shares of `fn(rows)` (some of a share's rows: the training rows, the validation rows),
    each computed and held on its share's worker, in share order; empty ones are dropped. The
    derived shares keep the placement, hence the determinism, of the shares they came from."""
    futures = [(share.worker, _pinned(client, share.worker, fn, share.rows)) for share in shares]
    sizes = client.gather([_pinned(client, worker, len, rows) for worker, rows in futures])
    return [Share(worker, rows, int(n)) for (worker, rows), n in zip(futures, sizes, strict=True) if n]


def array(
    client: Client,
    shares: list[Share],
    make: Callable[[pd.DataFrame], np.ndarray],
    *,
    tail: tuple[int, ...] = (),
    dtype: Any,
    prefix: str,
) -> da.Array:
    """A Dask array of `make(rows)` per share, chunk i computed and held on share i's worker.

    Its chunks are futures under the array's own keys, so a persist (xgboost.dask's first step)
    finds them in memory where they are, instead of placing them anew."""
    name = f"{prefix}-{uuid.uuid4().hex}"
    futures = [
        _pinned(client, share.worker, make, share.rows, key=(name, i, *(0,) * len(tail)))
        for i, share in enumerate(shares)
    ]
    graph = HighLevelGraph.from_collections(name, {f.key: f for f in futures}, dependencies=())
    chunks = (tuple(share.length for share in shares), *((n,) for n in tail))
    return da.Array(graph, name, chunks=chunks, dtype=dtype)


def gather(client: Client, shares: list[Share], fn: Callable[[pd.DataFrame], Any]) -> list[Any]:
    """`fn` of every share's rows, run where the rows are; results in share order."""
    return client.gather([_pinned(client, share.worker, fn, share.rows) for share in shares])


def _pinned(client: Client, worker: str, fn: Callable, *args: Any, key: Any = None) -> Future:
    # allow_other_workers: a lost worker's share is recomputed elsewhere (a different model then,
    # as with another worker count) instead of waiting forever for a worker that is gone
    return client.submit(fn, *args, key=key, workers=[worker], allow_other_workers=True, pure=False)
