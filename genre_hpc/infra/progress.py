"""Progress of a stage's tasks as they go: tasks report work done, the driver counts it and logs it.

A task's result reaches the driver only when the whole task ends, which on a worker whose life is
short may be never (it retires mid-task and the task starts again elsewhere). So tasks also report
each piece of work as it is done, through Dask's worker-to-client events (`Worker.log_event`,
`Client.subscribe_topic`); the driver logs a line every few seconds from them.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Hashable
from typing import Any

from distributed import Client, get_worker

# Seconds between two progress lines: readable logs, yet a line soon after work starts.
LOG_EVERY = 5.0


def report(topic: str, **message: Any) -> None:
    """From inside a task: tell the driver's `Progress` on `topic` what the task just did. Outside
    a worker (a task function called directly) there is nobody to tell, and nothing happens."""
    try:
        worker = get_worker()
    except ValueError:
        return
    worker.log_event(topic, message)


class Progress:
    """Counts the pieces of work tasks `report` on `topic` (each counted once, by its `piece`, however
    often a retried task reports it) and the tasks that ended, and logs both to `log` every `every`
    seconds, as `<name>: 120/384 tracks, 3/12 batches, ...`.

    Use as a context manager around the wait for the tasks; `finished_task` is called by the driver
    as each task's result arrives, with the pieces it holds (so the count is exact at the end even
    if a worker died before its report left it).
    """

    def __init__(
        self,
        client: Client,
        topic: str,
        *,
        log: logging.Logger,
        name: str,
        total: int,
        tasks: int,
        every: float = LOG_EVERY,
    ) -> None:
        self.client, self.topic, self.log, self.name = client, topic, log, name
        self.total, self.tasks, self.every = total, tasks, every
        self._lock = threading.Lock()
        self._pieces: set[Hashable] = set()
        self.done = 0  # units of work (tracks) in the pieces counted
        self.tasks_done = 0
        self.resumed = 0  # units that a retried task found already done
        self._started = time.perf_counter()
        self._last = 0.0

    def __enter__(self) -> Progress:
        self._started = time.perf_counter()
        self.client.subscribe_topic(self.topic, self._on_event)
        return self

    def __exit__(self, *exc: object) -> None:
        self.client.unsubscribe_topic(self.topic)

    def _on_event(self, event: tuple[float, dict[str, Any]]) -> None:
        """Runs in the client's event loop: count, and log what a resumed task found done."""
        _, message = event
        with self._lock:
            if message.get("resumed"):
                self.resumed += int(message["resumed"])
                self.log.info(
                    "%s: task %s resumed on %s: %d of its %d tracks were already written",
                    self.name, message.get("task"), message.get("worker"), message["resumed"],
                    message.get("of", 0),
                )  # fmt: skip
            if message.get("piece") is not None:
                self._count(message["piece"], int(message.get("units", 0)))
            self._maybe_log()

    def finished_task(self, pieces: dict[Hashable, int]) -> None:
        """A task ended; `pieces` maps each piece of work it holds to its units."""
        with self._lock:
            self.tasks_done += 1
            for piece, units in pieces.items():
                self._count(piece, units)
            self._maybe_log(force=self.tasks_done == self.tasks)

    def _count(self, piece: Hashable, units: int) -> None:
        if piece not in self._pieces:
            self._pieces.add(piece)
            self.done += units

    def _maybe_log(self, *, force: bool = False) -> None:
        elapsed = time.perf_counter() - self._started
        if not force and elapsed - self._last < self.every:
            return
        self._last = elapsed
        rate = self.done / elapsed if elapsed else 0.0
        eta = (self.total - self.done) / rate if rate else float("nan")
        self.log.info(
            "%s: %d/%d tracks, %d/%d batches, %.2f tracks/s, ETA %.0f s",
            self.name, min(self.done, self.total), self.total, self.tasks_done, self.tasks, rate, eta,
        )  # fmt: skip
