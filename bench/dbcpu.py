"""The CPU PostgreSQL spends serving one database, for a bench run (Linux /proc).

PostgreSQL serves each connection in a process of its own, titled
`postgres: [CLUSTER: ]USER DATABASE HOST(PORT) STATE` (the cluster's name when it has one).
While a run goes on, a thread looks for the processes of one database every `interval`
seconds and keeps the CPU time each has used (`/proc/PID/schedstat`, nanoseconds on a CPU,
user and system together). A connection that closes between two looks loses at most its last
`interval` of CPU: the figure is a floor.
"""

from __future__ import annotations

import contextlib
import os
import threading
from pathlib import Path
from types import TracebackType
from urllib.parse import urlsplit


def database_name(url: str) -> str | None:
    """The database of a PostgreSQL URL (`postgresql+asyncpg://…/NAME`), None for others."""
    parts = urlsplit(url)
    if not parts.scheme.startswith("postgresql"):
        return None
    return parts.path.lstrip("/") or None


def _cpu_ns(pid: int) -> int:
    return int(Path(f"/proc/{pid}/schedstat").read_text().split()[0])


def backends(database: str) -> dict[int, int]:
    """CPU nanoseconds so far of each process serving a connection to `database`."""
    found: dict[int, int] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError, ValueError, IndexError):
            title = Path(entry.path, "cmdline").read_bytes().split(b"\0", 1)[0].decode()
            words = title.split()
            if words[1:2] and words[1].endswith(":"):  # the cluster's name
                del words[1]
            if len(words) >= 4 and words[0] == "postgres:" and words[2] == database:
                found[int(entry.name)] = _cpu_ns(int(entry.name))
    return found


def cpu_seconds(pids: list[int]) -> float:
    """CPU seconds so far of these PostgreSQL server processes together (those that ended
    are left out). Each one's main thread only (`/proc/PID/schedstat`), which is the whole of
    a PostgreSQL server process; a threaded process (a web server, a queue worker) needs
    `/proc/PID/stat`, which counts every thread, as `bench.examday.load.cpu_seconds` does."""
    total = 0
    for pid in pids:
        with contextlib.suppress(FileNotFoundError, ProcessLookupError):
            total += _cpu_ns(pid)
    return total / 1e9


class DatabaseCPU:
    """Use as `with DatabaseCPU(name) as meter:` (or `start()` … `stop()`); then
    `meter.seconds` is the CPU seconds the database's server processes used inside the block
    (0.0 when `name` is None)."""

    def __init__(self, database: str | None, interval: float = 0.1) -> None:
        self.database = database
        self.interval = interval
        self.seconds = 0.0
        self._start: dict[int, int] = {}
        self._last: dict[int, int] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _look(self) -> None:
        assert self.database is not None
        for pid, spent in backends(self.database).items():
            self._last[pid] = max(spent, self._last.get(pid, 0))

    def _watch(self) -> None:
        while not self._stop.wait(self.interval):
            self._look()

    def start(self) -> None:
        """Begin counting (nothing when there is no database to watch)."""
        if self.database is not None:
            self._start = backends(self.database)
            self._last = dict(self._start)
            self._thread = threading.Thread(target=self._watch, daemon=True)
            self._thread.start()

    def stop(self) -> float:
        """End counting; the CPU seconds used since `start` (also kept in `seconds`)."""
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
            self._thread = None
            self._look()
            spent = sum(last - self._start.get(pid, 0) for pid, last in self._last.items())
            self.seconds = spent / 1e9
        return self.seconds

    def __enter__(self) -> DatabaseCPU:
        self.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.stop()
