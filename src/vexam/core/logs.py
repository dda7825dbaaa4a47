"""Where a web or worker process writes its log: one line per record, with time and level.

Without this only warnings and errors of the package reach stderr, through Python's
last-resort handler, bare (no time, level or logger), and its INFO records (the upload
sweep's counts) are dropped.
"""

from __future__ import annotations

import logging
from typing import TextIO

from vexam.core.jobs import QueueOutageLog

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


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
