"""Where a web or worker process writes its log: one line per record, with time and level.

Without this only warnings and errors of the package reach stderr, through Python's
last-resort handler, bare (no time, level or logger), and its INFO records (the upload
sweep's counts) are dropped.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TextIO

import redis.exceptions

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

# Failures that mean the queue's server cannot be reached, not that a job is wrong.
_QUEUE_OUTAGES: tuple[type[BaseException], ...] = (
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
    OSError,
)


class QueueOutageLog(logging.Filter):
    """For a worker's log handler: while the queue (Redis) is unreachable, Huey's consumer
    threads log a full traceback for every failed read, several a second per worker. This
    turns such a record into one line naming the failure, and lets at most one through every
    `every` seconds, saying how many it held back. Other records pass unchanged.

    `monotonic` is injectable for tests (seconds, never going back)."""

    def __init__(self, every: float = 10.0, monotonic: Callable[[], float] = time.monotonic):
        super().__init__()
        self.every, self.monotonic = every, monotonic
        self._last: float | None = None
        self._held = 0

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        if not isinstance(error, _QUEUE_OUTAGES):
            return True
        now, last = self.monotonic(), self._last
        if last is not None and now - last < self.every:
            self._held += 1
            return False
        line = f"{record.getMessage()}: queue unreachable ({type(error).__name__}: {error})"
        if self._held and last is not None:
            line += f"; {self._held} more such failures in the last {now - last:.0f} s"
        record.msg, record.args = line, None
        record.exc_info, record.exc_text = None, None
        self._last, self._held = now, 0
        return True


def log_process_to(stream: TextIO, *, queue_consumer: bool = False) -> logging.Handler:
    """Send this package's log records from INFO up to `stream`; with `queue_consumer` (a
    worker process) also those of Huey's consumer, queue outages condensed by
    `QueueOutageLog`. Returns the handler (tests remove it)."""
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter(FORMAT))
    names = ["vexam"]
    if queue_consumer:
        handler.addFilter(QueueOutageLog())
        names.append("huey")
    for name in names:
        logger = logging.getLogger(name)
        logger.addHandler(handler)
        logger.propagate = False
    logging.getLogger("vexam").setLevel(logging.INFO)
    return handler
