"""Engines, sessions and the unit of work: the only place that commits."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy import event, text
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

log = logging.getLogger(__name__)

AfterCommit = Callable[[], Awaitable[None]]
_AFTER_COMMIT = "vexam.after_commit"
_AFTER_ROLLBACK = "vexam.after_rollback"


class KeepChanges(Exception):
    """Mixin for refusals whose writes must be kept (a failed-login counter, a wrong code)."""


def after_commit(session: AsyncSession, hook: AfterCommit) -> None:
    """Run `hook` once the unit of work owning `session` commits; drop it on rollback."""
    session.info.setdefault(_AFTER_COMMIT, []).append(hook)


def after_rollback(session: AsyncSession, hook: AfterCommit) -> None:
    """Run `hook` if the unit of work owning `session` rolls back (undo a side effect).

    For writes outside the database done before the commit, e.g. a blob the request stored
    and the rows naming it: if the rows are rolled back, the blob must go too.
    """
    session.info.setdefault(_AFTER_ROLLBACK, []).append(hook)


async def _run_hooks(hooks: list[AfterCommit], what: str) -> None:
    for hook in hooks:
        try:
            await hook()
        except Exception:
            # The state is settled; a periodic sweep re-drives what a lost hook misses.
            log.exception("%s hook failed", what)


def _configure_sqlite(engine: AsyncEngine) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy, not the driver, decide where transactions begin (see "begin").
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(connection: Any) -> None:
        # IMMEDIATE takes the write lock up front: two writers wait in line instead of
        # both reading and then deadlocking on the upgrade to a write lock.
        connection.exec_driver_sql("BEGIN IMMEDIATE")


class Database:
    """One engine and session factory for one database URL."""

    def __init__(self, url: str, *, echo: bool = False) -> None:
        self.url = url
        self.is_sqlite = url.startswith("sqlite")
        kwargs: dict[str, Any] = {"echo": echo, "pool_pre_ping": not self.is_sqlite}
        if not self.is_sqlite:
            kwargs.update(pool_size=10, max_overflow=20)
        self.engine = create_async_engine(url, **kwargs)
        if self.is_sqlite:
            _configure_sqlite(self.engine)
        self.sessionmaker = async_sessionmaker(self.engine, expire_on_commit=False)

    @asynccontextmanager
    async def unit_of_work(self) -> AsyncIterator[AsyncSession]:
        """Yield a session; commit on success, roll back on error, then run after-commit hooks.

        An exception that is a `KeepChanges` commits first and is then re-raised, so a
        refusal can still count (e.g. a wrong password towards the lockout).
        """
        session = self.sessionmaker()
        try:
            try:
                yield session
            except KeepChanges:
                await session.commit()
                raise
            await session.commit()
        except BaseException as exc:
            session.info.pop(_AFTER_COMMIT, None)
            committed = isinstance(exc, KeepChanges) and not session.in_transaction()
            undo: list[AfterCommit] = [] if committed else session.info.pop(_AFTER_ROLLBACK, [])
            await session.rollback()
            await session.close()
            await _run_hooks(undo, "after-rollback")
            raise
        hooks: list[AfterCommit] = session.info.pop(_AFTER_COMMIT, [])
        await session.close()
        await _run_hooks(hooks, "after-commit")

    async def ping(self) -> None:
        """Raise if the database cannot answer a trivial query."""
        async with self.engine.connect() as connection:
            await connection.execute(text("SELECT 1"))

    async def dispose(self) -> None:
        """Close every pooled connection."""
        await self.engine.dispose()


LIKE_ESCAPE = "\\"


def contains_pattern(text: str) -> str:
    """A LIKE pattern (with `escape=LIKE_ESCAPE`) matching `text` anywhere, its own % and _
    taken literally."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"
