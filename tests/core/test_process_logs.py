"""A process's log: one line per record with time, level and logger, the package's INFO
records included; in a worker while Redis is unreachable, one line every 10 s, no
tracebacks, with how many failures were held back; every other record passes unchanged."""

from __future__ import annotations

import io
import logging
import re
import sys
from collections.abc import Iterator

import pytest
import redis.exceptions

from vexam.core.logs import QueueOutageLog, log_process_to


class Ticks:
    """A monotonic clock the test moves."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _record(error: BaseException, message: str = "Error reading from queue") -> logging.LogRecord:
    try:
        raise error
    except BaseException:
        exc_info = sys.exc_info()
    return logging.LogRecord(
        "huey.consumer.Worker-1", logging.ERROR, __file__, 1, message, None, exc_info
    )


def test_outages_are_one_line_every_ten_seconds_with_the_count_held_back() -> None:
    ticks = Ticks()
    condensed = QueueOutageLog(every=10.0, monotonic=ticks)
    refused = redis.exceptions.ConnectionError("Error 111 connecting to 127.0.0.1:6379.")

    first = _record(refused)
    assert condensed.filter(first)
    assert first.exc_info is None and first.exc_text is None
    assert first.getMessage() == (
        "Error reading from queue: queue unreachable "
        "(ConnectionError: Error 111 connecting to 127.0.0.1:6379.)"
    )
    held = []
    for _ in range(5):
        ticks.now += 1.5
        held.append(condensed.filter(_record(redis.exceptions.TimeoutError("timed out"))))
    assert held == [False] * 5
    ticks.now += 3.0  # 10.5 s after the first line
    later = _record(ConnectionRefusedError(111, "Connection refused"), "Error reading schedule.")
    assert condensed.filter(later)
    assert later.getMessage().startswith("Error reading schedule.: queue unreachable")
    assert later.getMessage().endswith("; 5 more such failures in the last 10 s")


def test_other_errors_keep_their_traceback() -> None:
    ticks = Ticks()
    condensed = QueueOutageLog(monotonic=ticks)
    assert condensed.filter(_record(redis.exceptions.ConnectionError("down")))
    bug = _record(ValueError("a job's bug"), "Unhandled error during execution of task %s.")
    bug.args = ("abc",)
    assert condensed.filter(bug)  # even right after an outage line
    assert bug.exc_info is not None and bug.getMessage().endswith("task abc.")
    plain = logging.LogRecord("huey", logging.WARNING, __file__, 1, "no error", None, None)
    assert condensed.filter(plain)


@pytest.fixture
def process_loggers() -> Iterator[None]:
    """Put the package's and Huey's loggers back as they were (other tests capture them)."""
    loggers = [logging.getLogger(name) for name in ("vexam", "huey")]
    kept = [(list(lg.handlers), lg.propagate, lg.level) for lg in loggers]
    yield
    for logger, (handlers, propagate, level) in zip(loggers, kept, strict=True):
        logger.handlers[:] = handlers
        logger.propagate, logger.level = propagate, level


@pytest.mark.usefixtures("process_loggers")
def test_web_process_logs_info_lines_with_time_and_level() -> None:
    stream = io.StringIO()
    log_process_to(stream)
    logging.getLogger("vexam.exams.upload_checks").info("upload sweep: %d expired", 2)
    logging.getLogger("huey.consumer").error("not this process's")
    (line,) = stream.getvalue().splitlines()
    assert re.fullmatch(
        r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} INFO vexam\.exams\.upload_checks: "
        r"upload sweep: 2 expired",
        line,
    ), line


@pytest.mark.usefixtures("process_loggers")
def test_worker_log_has_no_traceback_of_an_outage() -> None:
    stream = io.StringIO()
    log_process_to(stream, queue_consumer=True)
    worker = logging.getLogger("huey.consumer.Worker-2")
    for _ in range(50):  # a burst, as Huey's threads log while Redis refuses
        try:
            raise redis.exceptions.ConnectionError("Connection closed by server.")
        except redis.exceptions.ConnectionError:
            worker.exception("Error reading from queue")
    try:
        raise KeyError("job")
    except KeyError:
        worker.exception("Unhandled error during execution of task %s.", "t1")
    lines = stream.getvalue().splitlines()
    assert "ERROR huey.consumer.Worker-2: Error reading from queue: queue unreachable" in lines[0]
    assert sum("queue unreachable" in line for line in lines) == 1
    assert "redis.exceptions" not in stream.getvalue()
    assert "Unhandled error during execution of task t1." in stream.getvalue()
    assert "KeyError: 'job'" in stream.getvalue()  # a job's failure keeps its traceback
