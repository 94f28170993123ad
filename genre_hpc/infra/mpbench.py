"""The origin study's multiprocessing rows of the scheduler comparison: Pool and Process, same batches.

Each variant runs the per-batch task it is given (benchmark's, what every Dask scheduler row
runs) over the same batches of the same files, in `n` spawned processes that load the compiled code
before the clock starts, as the Dask workers and the processes scheduler do.
"""

from __future__ import annotations

import multiprocessing
import time
from collections.abc import Callable
from typing import Any

from genre_hpc.infra import jitcache

VARIANTS = (
    "multiprocessing Pool.apply",
    "multiprocessing Pool.apply_async",
    "multiprocessing Pool.map",
    "multiprocessing Pool.map_async",
    "multiprocessing Process per worker",
)


def time_variants(
    task: Callable[[list[str]], int], batches: list[list[str]], *, n: int
) -> list[dict[str, Any]]:
    """One row per variant: workers, seconds, files and segments extracted.

    `task` (picklable: a module-level function or a partial of one) extracts one batch of paths
    and returns its number of segments.
    """
    context = multiprocessing.get_context("spawn")
    rows = []
    with context.Pool(n, initializer=jitcache.warm_process) as pool:
        pool.map(time.sleep, [0.5] * n, chunksize=1)  # every process started and warm
        runs = {
            # blocks on each batch in turn: one process works at a time
            VARIANTS[0]: lambda: [pool.apply(task, (b,)) for b in batches],
            VARIANTS[1]: lambda: [r.get() for r in [pool.apply_async(task, (b,)) for b in batches]],
            VARIANTS[2]: lambda: pool.map(task, batches),
            VARIANTS[3]: lambda: pool.map_async(task, batches).get(),
        }
        for name, run in runs.items():
            started = time.perf_counter()
            segments = run()
            rows.append(_row(name, n, time.perf_counter() - started, batches, segments))
    seconds, segments = _process_per_worker(context, task, batches, n)
    rows.append(_row(VARIANTS[4], n, seconds, batches, segments))
    return rows


def _row(name: str, n: int, seconds: float, batches: list[list[str]], segments: list[int]) -> dict[str, Any]:
    return {"scheduler": name, "workers": n, "seconds": seconds,
            "files": sum(len(b) for b in batches), "segments": int(sum(segments))}  # fmt: skip


def _process_per_worker(context, task, batches, n) -> tuple[float, list[int]]:
    """n Processes, each given every n-th batch; the clock starts once all are warm."""
    ready, go, results = context.Barrier(n + 1), context.Event(), context.Queue()
    workers = [
        context.Process(target=_worker, args=(task, batches[i::n], ready, go, results)) for i in range(n)
    ]
    for w in workers:
        w.start()
    ready.wait()
    started = time.perf_counter()
    go.set()
    segments = [results.get() for _ in workers]
    seconds = time.perf_counter() - started
    for w in workers:
        w.join()
        if w.exitcode != 0:
            raise RuntimeError(f"bench: a multiprocessing Process exited with code {w.exitcode}")
    return seconds, segments


def _worker(task, batches, ready, go, results) -> None:
    jitcache.warm_process()
    ready.wait()
    go.wait()
    results.put(sum(task(b) for b in batches))
