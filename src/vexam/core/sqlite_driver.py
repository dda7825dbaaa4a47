"""SQLite through aiosqlite with one trip to its thread per statement.

aiosqlite runs every call of a sqlite3 connection on a thread of its own. SQLAlchemy's
aiosqlite adapter makes four such calls for a statement that returns rows (open a cursor,
execute, fetch all, close) and three for one that does not; each trip costs the event loop
a queue put, a wake-up through its self-pipe and a task switch (≈ 40 µs of CPU here, where
the statement itself often takes under 10 µs). The cursor below does the four in one call
on aiosqlite's thread and keeps what SQLAlchemy reads afterwards (the rows, the
description, the row count, the last row id), so a statement costs one trip.

A transaction's BEGIN rides with its first statement (`begin_with_next_statement`): the
statement finds its lock taken on the thread, not one trip later, and a transaction costs a
trip less. On a busy event loop every trip waits its turn in the loop's queue, and an
IMMEDIATE transaction holds SQLite's one write lock through all of those waits.

Everything else is aiosqlite's and SQLAlchemy's adapter unchanged: the connection, its
thread, transactions (a commit or rollback is one trip, and none outside a transaction,
where sqlite3 does nothing either), server-side cursors (streamed results fetch as they
go), errors (sqlite3's, raised from the thread).

Like SQLAlchemy's own adapter (its isolation-level setter), this reaches into aiosqlite's
queue of calls (`Connection._execute`): aiosqlite has no public way to run a function on
its thread. pyproject.toml admits only the minor releases of both that were checked, and
the whole test suite runs on it.
"""

from __future__ import annotations

import sqlite3
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any, cast

import aiosqlite
from sqlalchemy.dialects.sqlite.aiosqlite import (
    AsyncAdapt_aiosqlite_connection,
    AsyncAdapt_aiosqlite_cursor,
    AsyncAdapt_aiosqlite_dbapi,
    AsyncAdapt_aiosqlite_ss_cursor,
)

if TYPE_CHECKING:
    from sqlalchemy.connectors.asyncio import AsyncAdapt_dbapi_connection

# What a statement left for SQLAlchemy to read: description, rows, row count, last row id.
_Outcome = tuple[Any, Sequence[Any], int, int | None]


def _run(
    connection: aiosqlite.Connection,
    operation: str,
    parameters: Any,
    many: bool,
    begin: str | None = None,
) -> _Outcome:
    """On aiosqlite's thread: `begin` first when given (e.g. "BEGIN IMMEDIATE"), then the
    statement, its rows and counts, the cursor closed."""
    if begin is not None:
        _begin(connection, begin)
    cursor: sqlite3.Cursor = connection._conn.cursor()
    try:
        if many:
            cursor.executemany(operation, parameters)
        elif parameters is None:
            cursor.execute(operation)
        else:
            cursor.execute(operation, parameters)
        description = cursor.description
        rows = cursor.fetchall() if description else ()
        # After the fetch: sqlite3 counts the rows of an INSERT … RETURNING as they are read.
        return description, rows, cursor.rowcount, cursor.lastrowid
    finally:
        cursor.close()


def _begin(connection: aiosqlite.Connection, begin: str) -> None:
    """On aiosqlite's thread: open the transaction (its statement, e.g. "BEGIN IMMEDIATE")."""
    connection._conn.execute(begin).close()


def _on_thread(connection: aiosqlite.Connection) -> Callable[..., Awaitable[_Outcome]]:
    """aiosqlite's (untyped) call of a function on the connection's thread."""
    return cast("Callable[..., Awaitable[_Outcome]]", connection._execute)


class OneTripCursor(AsyncAdapt_aiosqlite_cursor):
    """A client-side cursor whose statement runs in one call on aiosqlite's thread."""

    __slots__ = ("_arraysize", "_description", "_lastrowid", "_rowcount")

    def __init__(self, adapt_connection: AsyncAdapt_dbapi_connection) -> None:
        # No sqlite3 cursor is opened here (the base class spends a trip on it).
        self._adapt_connection = adapt_connection
        self._connection = adapt_connection._connection
        self._rows = deque()
        self._description: Any = None
        self._rowcount = -1
        self._lastrowid: int | None = None
        self._arraysize = 1

    @property
    def description(self) -> Any:
        return self._description

    @property
    def rowcount(self) -> int:
        return self._rowcount

    @property
    def lastrowid(self) -> int:
        return cast(int, self._lastrowid)

    @property
    def arraysize(self) -> int:
        return self._arraysize

    @arraysize.setter
    def arraysize(self, value: int) -> None:
        self._arraysize = value

    async def _async_soft_close(self) -> None:
        """Nothing to close: the sqlite3 cursor was closed on the thread."""

    def close(self) -> None:
        self._rows.clear()

    async def _execute_async(self, operation: Any, parameters: Any) -> None:
        await self._one_trip(operation, parameters, many=False)

    async def _executemany_async(self, operation: Any, seq_of_parameters: Any) -> None:
        await self._one_trip(operation, seq_of_parameters, many=True)

    async def _one_trip(self, operation: Any, parameters: Any, *, many: bool) -> None:
        connection = cast(aiosqlite.Connection, self._connection)
        begin = cast(OneTripConnection, self._adapt_connection).take_begin()
        async with self._adapt_connection._execute_mutex:
            outcome = await _on_thread(connection)(
                _run, connection, operation, parameters, many, begin
            )
        self._description, rows, self._rowcount, self._lastrowid = outcome
        self._rows = deque(rows)


class OneTripServerSideCursor(AsyncAdapt_aiosqlite_ss_cursor):
    """SQLAlchemy's streaming cursor, after the transaction's pending BEGIN (its own trip)."""

    __slots__ = ()

    async def _execute_async(self, operation: Any, parameters: Any) -> Any:
        begin = cast(OneTripConnection, self._adapt_connection).take_begin()
        if begin is not None:
            connection = cast(aiosqlite.Connection, self._connection)
            async with self._adapt_connection._execute_mutex:
                await _on_thread(connection)(_begin, connection, begin)
        return await super()._execute_async(operation, parameters)


class OneTripConnection(AsyncAdapt_aiosqlite_connection):
    """SQLAlchemy's aiosqlite connection, its client-side cursors `OneTripCursor`s."""

    __slots__ = ("_pending_begin",)

    _cursor_cls = OneTripCursor
    _ss_cursor_cls = OneTripServerSideCursor

    def __init__(self, dbapi: Any, connection: Any) -> None:
        super().__init__(dbapi, connection)
        self._pending_begin: str | None = None

    def begin_with_next_statement(self, begin: str) -> None:
        """Open a transaction with `begin` (e.g. "BEGIN IMMEDIATE") on the thread, just before
        the next statement and in its trip. A commit or rollback before any statement drops
        it: there was nothing to commit."""
        self._pending_begin = begin

    def take_begin(self) -> str | None:
        """The pending BEGIN, now for the caller to send (None when there is none)."""
        begin, self._pending_begin = self._pending_begin, None
        return begin

    def _idle(self) -> bool:
        """Whether the sqlite3 connection is open and outside a transaction, where its
        commit and rollback do nothing (sqlite3's own rule), so no trip is needed: the
        pool rolls back every connection it gets back, most of them just committed. Read
        from the event loop's thread: sqlite3 allows it, and no statement of this
        connection is running while SQLAlchemy commits or rolls it back."""
        raw = cast(aiosqlite.Connection, self._connection)._connection
        return raw is not None and not raw.in_transaction

    def commit(self) -> None:
        self._pending_begin = None
        if not self._idle():
            super().commit()

    def rollback(self) -> None:
        self._pending_begin = None
        if not self._idle():
            super().rollback()


class OneTripDbapi(AsyncAdapt_aiosqlite_dbapi):
    """The DBAPI module to give `create_async_engine(module=…)` for sqlite+aiosqlite URLs."""

    def __init__(self) -> None:
        super().__init__(aiosqlite, sqlite3)

    def connect(self, *arg: Any, **kw: Any) -> OneTripConnection:
        adapted = super().connect(*arg, **kw)
        return OneTripConnection(self, adapted._connection)
