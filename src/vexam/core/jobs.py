"""The job queue: Huey (SQLite file or Redis) carrying named, idempotent async jobs."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Awaitable, Callable, Mapping
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from huey import RedisHuey, SqliteHuey
from huey.api import Huey

from vexam.config import Settings
from vexam.core.clock import Clock
from vexam.core.context import Ctx
from vexam.core.db import Database
from vexam.core.storage import BlobStore

log = logging.getLogger(__name__)

JobHandler = Callable[[Ctx, dict[str, Any]], Awaitable[None]]
_TASK_NAME = "vexam.run_job"


class UnknownJob(LookupError):
    """A job name no domain registered."""


def build_huey(url: str, name: str) -> Huey:
    """A Huey instance for `sqlite:///path` or `redis://host:port/db`."""
    parsed = urlparse(url)
    if parsed.scheme == "sqlite":
        path = Path(parsed.path)
        path.parent.mkdir(parents=True, exist_ok=True)
        return SqliteHuey(name=name, filename=str(path), results=False)
    if parsed.scheme in ("redis", "rediss"):
        return RedisHuey(name=name, url=url, results=False)
    raise ValueError(f"VEXAM_QUEUE_URL must be sqlite:///path or redis://..., not {url!r}")


@dataclass
class JobRuntime:
    """Where jobs run: a database, an event loop that owns its engine, and the clock."""

    db: Database
    settings: Settings
    clock: Clock
    loop: asyncio.AbstractEventLoop
    resources: dict[str, Any]
    store: BlobStore | None = None


class JobQueue:
    """Enqueue named jobs and run them, each in its own unit of work.

    Jobs are async functions `(ctx, payload)`; payloads are small JSON-like dicts.
    A job must be idempotent: it may run again after a crash or a retry.
    """

    def __init__(
        self,
        url: str,
        name: str,
        handlers: Mapping[str, JobHandler],
        every_minutes: Mapping[str, int] | None = None,
    ) -> None:
        self.url = url
        self.huey = build_huey(url, name)
        self.handlers = dict(handlers)
        self.runtime: JobRuntime | None = None
        self._task = self.huey.task(name=_TASK_NAME, retries=3, retry_delay=10)(self._execute)
        for job, minutes in (every_minutes or {}).items():
            self._every(job, minutes)

    def _every(self, job: str, minutes: int) -> None:
        """Run `job` (with an empty payload) every `minutes` minutes, from any worker."""
        if job not in self.handlers or not 1 <= minutes <= 60:
            raise ValueError(f"periodic job {job!r} every {minutes} min is not possible")

        def due(moment: datetime) -> bool:
            return (moment.hour * 60 + moment.minute) % minutes == 0

        def run() -> None:
            self._execute(job, {})

        self.huey.periodic_task(due, name=f"vexam.every.{job}")(run)

    def _execute(self, job: str, payload: dict[str, Any]) -> None:
        # Huey runs this in a consumer thread; the job itself runs on the loop that owns
        # the database engine.
        runtime = self.runtime
        if runtime is None:
            raise RuntimeError("job runtime not started")
        future: Future[None] = asyncio.run_coroutine_threadsafe(
            self.run(job, payload), runtime.loop
        )
        future.result()

    async def run(self, job: str, payload: dict[str, Any]) -> None:
        """Run one job now, in a unit of work of its own."""
        runtime = self.runtime
        if runtime is None:
            raise RuntimeError("job runtime not started")
        handler = self.handlers.get(job)
        if handler is None:
            raise UnknownJob(job)
        async with runtime.db.unit_of_work() as session:
            ctx = Ctx(
                session=session,
                clock=runtime.clock,
                settings=runtime.settings,
                jobs=self,
                extra=runtime.resources,
                store=runtime.store,
            )
            await handler(ctx, payload)

    def enqueue_sync(self, job: str, payload: dict[str, Any]) -> None:
        """Put a job on the queue (blocking I/O; prefer `enqueue` on the event loop)."""
        if job not in self.handlers:
            raise UnknownJob(job)
        self._task(job, payload)

    async def enqueue(self, job: str, payload: dict[str, Any]) -> None:
        """Put a job on the queue without blocking the event loop."""
        await asyncio.to_thread(self.enqueue_sync, job, payload)

    def pending_count(self) -> int:
        """Jobs waiting in the queue (also proves the queue is reachable)."""
        return int(self.huey.pending_count())

    async def ping(self) -> None:
        """Raise if the queue's storage cannot be reached."""
        await asyncio.to_thread(self.pending_count)

    async def drain(self, limit: int = 1000) -> int:
        """Run every queued job in this event loop, in order; return how many ran.

        For tests and the CLI: a worker process does the same through Huey's consumer.
        """
        ran = 0
        while ran < limit:
            # Look before dequeuing: Redis dequeues block for a second on an empty queue.
            if not await asyncio.to_thread(self.huey.pending_count):
                return ran
            task = await asyncio.to_thread(self.huey.dequeue)
            if task is None:
                return ran
            job, payload = task.args
            await self.run(job, payload)
            ran += 1
        return ran


class InProcessWorker:
    """A thread that runs queued jobs inside the web process (`vexam demo`, small sites)."""

    def __init__(self, queue: JobQueue, poll_seconds: float = 0.2) -> None:
        self.queue = queue
        self.poll_seconds = poll_seconds
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="vexam-jobs", daemon=True)

    def start(self) -> None:
        """Begin polling the queue."""
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop after the job in hand finishes."""
        self._stop.set()
        self._thread.join(timeout)

    def _loop(self) -> None:
        huey = self.queue.huey
        last_minute: datetime | None = None
        while not self._stop.is_set():
            try:
                # Retries wait in Huey's schedule; move the due ones back onto the queue.
                for due in huey.read_schedule():
                    huey.enqueue(due)
                # Periodic jobs, once a minute, as Huey's own consumer does (UTC, naive).
                minute = datetime.now(UTC).replace(tzinfo=None, second=0, microsecond=0)
                if minute != last_minute:
                    last_minute = minute
                    for periodic in huey.read_periodic(minute):
                        huey.enqueue(periodic)
                task = huey.dequeue()
                if task is None:
                    self._stop.wait(self.poll_seconds)
                    continue
                huey.execute(task)
            except Exception:
                # Huey records retries itself; a failing job must not end the worker.
                log.exception("in-process job failed")
                self._stop.wait(self.poll_seconds)
