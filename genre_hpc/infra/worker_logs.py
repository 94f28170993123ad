"""Worker log records that report Dask's own shutdown race as an error.

A worker's heartbeat that is in flight when the worker closes fails as its connection pool is
closed, and distributed logs it with a traceback ("Failed to communicate with scheduler during
heartbeat.", dask/distributed issues 7192 and 9032), after every task has finished and every row is
written. On a loaded machine, where the scheduler answers slowly, every run's end may print one.
Only the records of a worker that is closing are dropped: a heartbeat that fails while it runs
still reaches the log.
"""

from __future__ import annotations

import logging

from distributed.core import Status

HEARTBEAT_FAILED = "Failed to communicate with scheduler during heartbeat."
_CLOSING = (Status.closing, Status.closed, Status.closing_gracefully)


class _ClosingHeartbeat(logging.Filter):
    def __init__(self, worker: object) -> None:
        super().__init__()
        self.worker = worker

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.msg == HEARTBEAT_FAILED and getattr(self.worker, "status", None) in _CLOSING)


def quiet_heartbeat_at_close(worker: object) -> None:
    """Drop `worker`'s heartbeat failures once it is closing (distributed.worker's logger)."""
    logging.getLogger("distributed.worker").addFilter(_ClosingHeartbeat(worker))
