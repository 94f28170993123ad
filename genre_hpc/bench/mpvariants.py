"""The origin study's multiprocessing rows of the scheduler comparison: Pool and Process, same batches.

Each variant runs the per-batch task it is given (benchmark's, what every Dask scheduler row
runs) over the same batches of the same files, in `n` spawned processes that load the compiled code
before the clock starts, as the Dask workers and the processes scheduler do.
"""

from __future__ import annotations

import multiprocessing
import pickle
import time
from collections.abc import Callable
from queue import Empty
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
    payload = pickle.dumps(task)
    with context.Pool(n, initializer=_warm, initargs=(payload,)) as pool:
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
    ready, go, results = context.Queue(), context.Event(), context.Queue()
    payload = pickle.dumps(task)
    workers = [
        context.Process(target=_worker, args=(payload, batches[i::n], ready, go, results)) for i in range(n)
    ]
    for w in workers:
        w.start()
    try:
        _collect(ready, workers)
        started = time.perf_counter()
        go.set()
        segments = _collect(results, workers)
        seconds = time.perf_counter() - started
    finally:
        for w in workers:
            w.join(timeout=5)
            if w.is_alive():
                w.terminate()
    return seconds, segments


def _collect(queue, workers) -> list:
    """One item from every worker, failing (instead of waiting forever) if one of them died."""
    items = []
    while len(items) < len(workers):
        try:
            items.append(queue.get(timeout=1.0))
        except Empty:
            dead = [w.exitcode for w in workers if w.exitcode not in (None, 0)]
            if dead:
                raise RuntimeError(f"bench: a multiprocessing Process exited with code {dead[0]}") from None
    return items


def _warm(payload: bytes) -> Callable[[list[str]], int]:
    """A process's numba cache and compiled code, then the task's modules (the task goes pickled:
    unpickling it imports librosa, which must wait for the cache)."""
    jitcache.warm_process()
    return pickle.loads(payload)


def _worker(payload: bytes, batches, ready, go, results) -> None:
    task = _warm(payload)
    ready.put(True)
    go.wait()
    results.put(sum(task(b) for b in batches))
