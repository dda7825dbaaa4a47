"""SQLite through aiosqlite with at most one trip to its thread per statement, and none
while a connection holds the write lock.

aiosqlite runs every call of a sqlite3 connection on a thread of its own. SQLAlchemy's
aiosqlite adapter makes four such calls for a statement that returns rows (open a cursor,
execute, fetch all, close) and three for one that does not; each trip costs the event loop
a queue put, a wake-up through its self-pipe and a task switch (≈ 40 µs of CPU here, where
the statement itself often takes under 10 µs). The cursor below does the four in one call
on aiosqlite's thread and keeps what SQLAlchemy reads afterwards (the rows, the
description, the row count, the last row id), so a statement costs one trip.

Write transactions (BEGIN IMMEDIATE) take SQLite's one write lock, and every other writer
waits while it is held. On a busy event loop a trip's answer waits its turn in the loop's
queue (milliseconds under load), so a transaction of five trips held the lock for five such
waits. So:
- the process's writers queue for the lock in a `WriterLine`, on the event loop: SQLite's
  own wait sleeps and retries (1, 2, 5, … up to 100 ms), and the lock sat free while the
  writers waiting for it slept;
- a writer whose turn has come begins on the event loop's thread when the lock is free
  (`_begin_without_waiting`; when another process holds it, the BEGIN waits on aiosqlite's
  thread as before), and its statements, commit and rollback then run on the event loop's
  thread too: in WAL mode nothing a writer holding the lock does waits for another
  connection. A write transaction that awaits nothing else in between holds the lock only
  while its statements run. Many-row statements (executemany), streamed results and reads
  outside write transactions still go to the thread.

Everything else is aiosqlite's and SQLAlchemy's adapter unchanged: the connection, its
thread, read transactions (BEGIN DEFERRED rides with their first statement; their commit or
rollback is one trip, and none outside a transaction, where sqlite3 does nothing either),
server-side cursors (streamed results fetch as they go), errors (sqlite3's, raised where
the statement ran). The sqlite3 connection is opened with `check_same_thread=False` (the
engine's `connect_args`); this module never uses it from two threads at once.

Like SQLAlchemy's own adapter (its isolation-level setter), this reaches into aiosqlite's
queue of calls (`Connection._execute`) and its sqlite3 connection: aiosqlite has no public
way to run a function on its thread. pyproject.toml admits only the minor releases of both
that were checked, and the whole test suite runs on it.
"""

from __future__ import annotations

import asyncio
import logging
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

log = logging.getLogger(__name__)

IMMEDIATE = "BEGIN IMMEDIATE"
BUSY_TIMEOUT_MS = 30_000  # how long a BEGIN IMMEDIATE waits for another process's writer

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
    statement (`_statement`)."""
    if begin is not None:
        _begin(connection, begin)
    return _statement(connection._conn, operation, parameters, many)


def _statement(raw: sqlite3.Connection, operation: str, parameters: Any, many: bool) -> _Outcome:
    """The statement, its rows and counts, the cursor closed."""
    cursor = raw.cursor()
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


def _begin_without_waiting(raw: sqlite3.Connection, begin: str) -> bool:
    """`begin` at once if SQLite's lock is free; False, with nothing begun, if another
    connection (another process: this one's writers take turns) holds it."""
    raw.execute("PRAGMA busy_timeout=0").close()
    try:
        raw.execute(begin).close()
    except sqlite3.OperationalError as error:
        if error.sqlite_errorcode & 0xFF != sqlite3.SQLITE_BUSY:  # the primary code
            raise
        return False
    finally:
        raw.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}").close()
    return True


def _on_thread(connection: aiosqlite.Connection) -> Callable[..., Awaitable[_Outcome]]:
    """aiosqlite's (untyped) call of a function on the connection's thread."""
    return cast("Callable[..., Awaitable[_Outcome]]", connection._execute)


class WriterLine:
    """The connections of this process that want one SQLite database's write lock, first come
    first served.

    A connection that finds SQLite's write lock taken can only sleep and try again (the busy
    handler sleeps 1, 2, 5, … up to 100 ms between tries), so with many writers waiting the
    lock sat free while they slept. Here each waits on the event loop and goes on as soon as
    the one before it commits or rolls back; SQLite's busy timeout still orders this
    process's writer with other processes'. A turn held past `patience` seconds (a
    connection lost without a rollback) lets the next writer go on to SQLite's own wait,
    with a warning in the log.
    """

    def __init__(self, patience: float) -> None:
        self._patience = patience
        self._lock: asyncio.Lock | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    async def enter(self) -> asyncio.Lock | None:
        """Wait for this connection's turn: the lock to release when it ends (None: patience
        ran out, no turn to end)."""
        loop = asyncio.get_running_loop()
        if self._lock is None or self._loop is not loop:  # a lock serves one event loop
            self._lock, self._loop = asyncio.Lock(), loop
        turn = self._lock
        try:
            async with asyncio.timeout(self._patience):
                await turn.acquire()
        except TimeoutError:
            log.warning("SQLite writer turn held over %.0f s; going on without it", self._patience)
            return None
        return turn


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
        adapted = cast(OneTripConnection, self._adapt_connection)
        begin = await adapted.begin_in_turn()
        raw = None if many else adapted.writer_here(begin)
        if raw is not None and (begin is None or _begin_without_waiting(raw, begin)):
            outcome = _statement(raw, operation, parameters, many)
        else:
            async with adapted._execute_mutex:
                outcome = await _on_thread(connection)(
                    _run, connection, operation, parameters, many, begin
                )
        self._description, rows, self._rowcount, self._lastrowid = outcome
        self._rows = deque(rows)


class OneTripServerSideCursor(AsyncAdapt_aiosqlite_ss_cursor):
    """SQLAlchemy's streaming cursor, after the transaction's pending BEGIN (its own trip)."""

    __slots__ = ()

    async def _execute_async(self, operation: Any, parameters: Any) -> Any:
        adapted = cast(OneTripConnection, self._adapt_connection)
        begin = await adapted.begin_in_turn()
        if begin is not None:
            connection = cast(aiosqlite.Connection, self._connection)
            async with adapted._execute_mutex:
                await _on_thread(connection)(_begin, connection, begin)
        return await super()._execute_async(operation, parameters)


class OneTripConnection(AsyncAdapt_aiosqlite_connection):
    """SQLAlchemy's aiosqlite connection, its client-side cursors `OneTripCursor`s."""

    __slots__ = ("_line", "_pending_begin", "_turn")

    _cursor_cls = OneTripCursor
    _ss_cursor_cls = OneTripServerSideCursor

    def __init__(self, dbapi: Any, connection: Any, line: WriterLine) -> None:
        super().__init__(dbapi, connection)
        self._pending_begin: str | None = None
        self._line = line
        self._turn: asyncio.Lock | None = None  # held while this connection's turn lasts

    async def begin_in_turn(self) -> str | None:
        """The pending BEGIN (see `take_begin`), once this connection's turn has come when it
        is IMMEDIATE. The turn lasts until the transaction ends: the commit or rollback that
        follows every transaction (the pool rolls back what it gets back, a failed BEGIN
        included), or the connection's close."""
        begin = self.take_begin()
        if begin == IMMEDIATE and self._turn is None:
            self._turn = await self._line.enter()
        return begin

    def _sqlite3(self) -> sqlite3.Connection | None:
        """aiosqlite's sqlite3 connection (None once closed)."""
        return cast(aiosqlite.Connection, self._connection)._connection

    def writer_here(self, begin: str | None) -> sqlite3.Connection | None:
        """The sqlite3 connection, for the event loop's thread to use now, when this connection
        holds its writer's turn (`begin` is its BEGIN IMMEDIATE, or its write transaction is
        open) and no trip of it is under way; else None."""
        raw = self._sqlite3()
        if self._turn is None or raw is None or self._execute_mutex.locked():
            return None
        return raw if begin == IMMEDIATE or (begin is None and raw.in_transaction) else None

    def _leave_line(self) -> None:
        turn, self._turn = self._turn, None
        if turn is not None:
            turn.release()  # the next writer in line goes on

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
        raw = self._sqlite3()
        return raw is not None and not raw.in_transaction

    def commit(self) -> None:
        self._end("commit")

    def rollback(self) -> None:
        self._end("rollback")

    def _end(self, how: str) -> None:
        """Commit or roll back (`how`): on the event loop's thread in a writer's turn, else
        aiosqlite's trip, none outside a transaction; then the turn ends."""
        self._pending_begin = None
        try:
            if (raw := self.writer_here(None)) is not None:
                getattr(raw, how)()
            elif not self._idle():
                getattr(super(), how)()
        finally:
            raw = self._sqlite3()
            if raw is None or not raw.in_transaction:
                self._leave_line()

    def close(self) -> None:
        self._leave_line()
        super().close()

    def _terminate_force_close(self) -> None:
        self._leave_line()
        super()._terminate_force_close()

    async def _terminate_graceful_close(self) -> None:
        self._leave_line()
        await super()._terminate_graceful_close()


class OneTripDbapi(AsyncAdapt_aiosqlite_dbapi):
    """The DBAPI module to give `create_async_engine(module=…)` for sqlite+aiosqlite URLs."""

    def __init__(self, *, patience: float = 30.0) -> None:
        super().__init__(aiosqlite, sqlite3)
        self.writers = WriterLine(patience)

    def connect(self, *arg: Any, **kw: Any) -> OneTripConnection:
        adapted = super().connect(*arg, **kw)
        return OneTripConnection(self, adapted._connection, self.writers)
