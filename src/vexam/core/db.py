"""Engines, sessions and the unit of work: the only place that commits."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any, cast

from sqlalchemy import event, inspect, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Result
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import ORMExecuteState, Session, UOWTransaction
from sqlalchemy.orm.attributes import set_committed_value
from sqlalchemy.sql import Executable

from vexam.config import DATABASE_POOL_SIZE, DATABASE_POOL_TIMEOUT_SECONDS
from vexam.core.sqlite_driver import BUSY_TIMEOUT_MS, IMMEDIATE, OneTripConnection, OneTripDbapi

if TYPE_CHECKING:
    from vexam.config import Settings

log = logging.getLogger(__name__)

AfterCommit = Callable[[], Awaitable[None]]
_AFTER_COMMIT = "vexam.after_commit"
_AFTER_ROLLBACK = "vexam.after_rollback"
_CHANGED = "vexam.changed_tables"
_READS = "vexam.reads_only"


class KeepChanges(Exception):
    """Mixin for refusals whose writes must be kept (a failed-login counter, a wrong code)."""


class TransactionNeeded(Exception):
    """A unit of work opened for reads only (`Database.unit_of_work(reads=True)`) was about
    to write: nothing was written; run the work again in a unit of work with a transaction."""


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


# The execution option naming how an SQLite transaction begins (see _configure_sqlite).
SQLITE_BEGIN = "vexam_sqlite_begin"
SQLITE_READS = {SQLITE_BEGIN: "BEGIN DEFERRED"}


def _configure_sqlite(engine: AsyncEngine) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy, not the driver, decide where transactions begin (see "begin").
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(connection: Any) -> None:
        # IMMEDIATE takes the write lock up front: two writers wait in line instead of
        # both reading and then deadlocking on the upgrade to a write lock. A unit of work
        # for reads (`SQLITE_READS`) begins DEFERRED: in WAL mode it reads one snapshot and
        # neither waits for writers nor holds them up (it never writes: see unit_of_work).
        begin = connection.get_execution_options().get(SQLITE_BEGIN, IMMEDIATE)
        raw = cast(OneTripConnection, connection.connection.dbapi_connection)
        raw.begin_with_next_statement(begin)  # sent with the first statement (sqlite_driver)


def _refuse_flush_in_reads(session: Session, _flush: Any, _instances: Any) -> None:
    if session.info.get(_READS) and (session.new or session.dirty or session.deleted):
        raise TransactionNeeded("a flush of changed objects")


def _changed_columns(instance: object) -> set[str]:
    state = inspect(instance)
    return {attr.key for attr in state.attrs if attr.history.has_changes()}


IDLE_PING_S = 2.0


def _ping_when_idle(engine: AsyncEngine) -> None:
    """Check a pooled connection before use only when it sat idle for `IDLE_PING_S`.

    What `pool_pre_ping` does, without its three round trips on every request of a busy
    process: a connection back in use within seconds is alive (and if the server died in
    between, the failing statement invalidates the whole pool, as any disconnect does).
    """
    pool = engine.sync_engine.pool
    dialect = engine.sync_engine.dialect

    @event.listens_for(pool, "checkin")
    def _on_checkin(_dbapi_connection: Any, record: Any) -> None:
        record.info["vexam.idle_since"] = time.monotonic()

    @event.listens_for(pool, "checkout")
    def _on_checkout(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        idle_since = record.info.pop("vexam.idle_since", None)
        if idle_since is None or time.monotonic() - idle_since < IDLE_PING_S:
            return
        try:
            alive = dialect.do_ping(dbapi_connection)
        except Exception as exc:
            raise DisconnectionError(f"pooled connection is gone: {exc}") from exc
        if alive is False:
            raise DisconnectionError("pooled connection is gone")


class Database:
    """One engine and session factory for one database URL."""

    @classmethod
    def configured(cls, settings: Settings) -> Database:
        """The database `settings` name, with their pool size and wait."""
        return cls(
            settings.effective_database_url,
            pool_size=settings.database_pool_size,
            pool_timeout=settings.database_pool_timeout_seconds,
        )

    def __init__(
        self,
        url: str,
        *,
        echo: bool = False,
        pool_size: int = DATABASE_POOL_SIZE,
        pool_timeout: float = DATABASE_POOL_TIMEOUT_SECONDS,
    ) -> None:
        """On PostgreSQL the process keeps at most `pool_size` connections open, opened as
        needed and kept: a request that finds them all in use waits up to `pool_timeout`
        seconds for one (then `sqlalchemy.exc.TimeoutError`, answered 503). No overflow
        connections: SQLAlchemy closes those as soon as they are returned, so under load
        every request past the pool opened a connection of its own (a server process forked,
        its statements prepared again) and the number open was bounded only by load."""
        self.url = url
        self.is_sqlite = url.startswith("sqlite")
        kwargs: dict[str, Any] = {"echo": echo}
        if self.is_sqlite:  # sqlite+aiosqlite, the one async SQLite driver
            kwargs["module"] = OneTripDbapi()  # a statement in one trip to aiosqlite's thread
            # Write transactions' statements run on the event loop's thread (sqlite_driver).
            kwargs["connect_args"] = {"check_same_thread": False}
        else:
            kwargs.update(pool_size=pool_size, max_overflow=0, pool_timeout=pool_timeout)
        self.engine = create_async_engine(url, **kwargs)
        if self.is_sqlite:
            _configure_sqlite(self.engine)
        else:
            _ping_when_idle(self.engine)
        # A session class of this database's own, so that its watches stay its own.
        session_class = type("VexamSession", (Session,), {})
        self._watches: list[tuple[Mapping[str, frozenset[str]], Callable[[], None]]] = []
        self._watched: dict[str, frozenset[str]] = {}
        event.listen(session_class, "after_flush", self._note_flush)
        event.listen(session_class, "do_orm_execute", self._note_statement)
        event.listen(session_class, "before_flush", _refuse_flush_in_reads)
        self.sessionmaker = async_sessionmaker(
            self.engine, expire_on_commit=False, sync_session_class=session_class
        )
        # Reads without BEGIN and COMMIT (PostgreSQL): each statement is its own transaction,
        # which under READ COMMITTED sees what a statement inside a transaction would see,
        # and saves the two round trips. SQLite keeps its transaction (an autocommit
        # connection would bypass the "begin" hook), begun DEFERRED: no write lock.
        reads_options = SQLITE_READS if self.is_sqlite else {"isolation_level": "AUTOCOMMIT"}
        self._reads_sessionmaker = async_sessionmaker(
            self.engine.execution_options(**reads_options),
            expire_on_commit=False,
            sync_session_class=session_class,
        )

    def watch(self, tables: Mapping[str, frozenset[str]], hook: Callable[[], None]) -> None:
        """Call `hook` once a unit of work on this database commits after changing a row of
        one of `tables` (table name → columns whose changes do not count).

        A change is an ORM update or delete of a loaded row, or an UPDATE/DELETE statement
        run through the session; new rows are not changes. For in-process memories of rows
        (e.g. signed-in sessions) that must be forgotten when their rows change.
        """
        self._watches.append((tables, hook))
        for name, ignored in tables.items():
            self._watched[name] = self._watched.get(name, ignored) & ignored

    def _mark(self, session: Session, table: str) -> None:
        session.info.setdefault(_CHANGED, set()).add(table)

    def _note_flush(self, session: Session, _flush: UOWTransaction) -> None:
        if not self._watched:
            return
        for instance in (*session.dirty, *session.deleted):
            table = getattr(type(instance), "__tablename__", None)
            if table not in self._watched:
                continue
            ignored = self._watched[table]
            if instance in session.deleted or _changed_columns(instance) - ignored:
                self._mark(session, table)

    def _note_statement(self, state: ORMExecuteState) -> None:
        if state.session.info.get(_READS) and (
            state.is_insert or state.is_update or state.is_delete
        ):
            raise TransactionNeeded(str(state.statement))
        if self._watched and (state.is_update or state.is_delete):
            table = getattr(getattr(state.statement, "table", None), "name", None)
            if table in self._watched:
                self._mark(state.session, table)

    def _run_watches(self, changed: set[str]) -> None:
        for tables, hook in self._watches:
            if changed.intersection(tables):
                hook()

    @asynccontextmanager
    async def unit_of_work(self, *, reads: bool = False) -> AsyncIterator[AsyncSession]:
        """Yield a session; commit on success, roll back on error, then run after-commit hooks.

        An exception that is a `KeepChanges` commits first and is then re-raised, so a
        refusal can still count (e.g. a wrong password towards the lockout).

        `reads`: for work that only reads. On PostgreSQL its statements run without a
        transaction (no BEGIN or COMMIT sent), on SQLite in a DEFERRED one (a snapshot, no
        write lock); any write it attempts (an INSERT, UPDATE or
        DELETE statement, or a flush of changed objects) raises `TransactionNeeded` before
        anything is written, for the caller to run the work again with `reads=False`.
        """
        session = (self._reads_sessionmaker if reads else self.sessionmaker)()
        if reads:
            session.info[_READS] = True
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
            changed: set[str] = session.info.pop(_CHANGED, set())
            if committed and changed:
                self._run_watches(changed)
            undo: list[AfterCommit] = [] if committed else session.info.pop(_AFTER_ROLLBACK, [])
            await session.rollback()
            await session.close()
            await _run_hooks(undo, "after-rollback")
            raise
        hooks: list[AfterCommit] = session.info.pop(_AFTER_COMMIT, [])
        changed = session.info.pop(_CHANGED, set())
        if changed:
            self._run_watches(changed)
        await session.close()
        await _run_hooks(hooks, "after-commit")

    async def ping(self) -> None:
        """Raise if the database cannot answer a trivial query."""
        async with self.engine.connect() as connection:
            await connection.execute(text("SELECT 1"))

    async def dispose(self) -> None:
        """Close every pooled connection."""
        await self.engine.dispose()


async def autocommit_next(session: AsyncSession) -> bool:
    """Run the statements `session` sends until its next commit each as a transaction of its
    own (PostgreSQL's autocommit: no BEGIN or COMMIT sent), for work that commits after every
    statement anyway, such as an upload's lease. Only between transactions, with no changed
    objects waiting for a flush, and not on SQLite (its "begin" hook takes the write lock,
    which an autocommit connection would never release); returns whether it did."""
    if session.in_transaction() or session.new or session.dirty or session.deleted:
        return False
    if session.get_bind().dialect.name == "sqlite":
        return False
    await session.connection(execution_options={"isolation_level": "AUTOCOMMIT"})
    return True


def in_reads_unit(session: AsyncSession) -> bool:
    """Whether `session` belongs to a unit of work for reads (`Database.unit_of_work(reads=True)`):
    on PostgreSQL its statements run without a transaction."""
    return bool(session.info.get(_READS))


async def execute_flushed(
    session: AsyncSession, statement: Executable, params: Mapping[str, Any]
) -> Result[Any]:
    """Run a Core statement (built once, with `params`) after flushing the session's pending
    changes, as an ORM statement would have flushed them first (a Core one does not)."""
    await session.flush()
    return await session.execute(statement, params)


def set_committed(instance: object, values: Mapping[str, Any]) -> None:
    """Give a loaded object the values a Core UPDATE just wrote, as committed values (nothing
    to flush again, nothing read back)."""
    for name, value in values.items():
        set_committed_value(instance, name, value)


LIKE_ESCAPE = "\\"


def insert_into(session: AsyncSession, table: Any) -> postgresql.Insert | sqlite.Insert:
    """An INSERT in the session's dialect, which takes ON CONFLICT clauses (both PostgreSQL's
    and SQLite's spell them the same way)."""
    if session.get_bind().dialect.name == "postgresql":
        return postgresql.insert(table)
    return sqlite.insert(table)


def contains_pattern(text: str) -> str:
    """A LIKE pattern (with `escape=LIKE_ESCAPE`) matching `text` anywhere, its own % and _
    taken literally."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"
