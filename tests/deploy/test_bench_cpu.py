"""The exam-day bench's CPU accounting: a threaded process's CPU is counted whole.

The cores table of `python -m bench.examday` charges the S3 server and the workers by their
pids. Both do their work on threads (one per connection, one per job), so a measure that
reads only a process's main thread shows them idle and moves their CPU into "the rest".
"""

from __future__ import annotations

import subprocess
import sys

from bench import dbcpu
from bench.examday.load import group_cpu_seconds

# A thread burns 0.3 s of CPU while the main thread waits; then the process says so and
# stays until its stdin closes, so that it is measured alive.
_BUSY_THREAD = """
import sys, threading, time
def burn():
    while time.thread_time() < 0.3:
        pass
worker = threading.Thread(target=burn)
worker.start()
worker.join()
print("ready", flush=True)
sys.stdin.read()
"""


def test_a_process_busy_on_a_thread_is_counted_whole() -> None:
    child = subprocess.Popen(
        [sys.executable, "-c", _BUSY_THREAD],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "ready"
        counted = group_cpu_seconds([child.pid])
        main_thread_only = dbcpu.cpu_seconds([child.pid])
    finally:
        assert child.stdin is not None
        child.stdin.close()
        child.wait(timeout=30)
    assert counted >= 0.28  # /proc counts in clock ticks (10 ms here)
    assert main_thread_only < counted - 0.2  # why the bench does not use dbcpu's measure


def test_an_ended_process_is_left_out() -> None:
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait(timeout=30)
    assert group_cpu_seconds([gone.pid]) == 0.0
