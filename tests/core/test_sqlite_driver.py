"""SQLite statements in one trip to aiosqlite's thread (`vexam.core.sqlite_driver`): what
SQLAlchemy reads of a statement (rows, row count, last row id, errors) is what aiosqlite's
own cursor gave, a commit or rollback outside a transaction costs no trip, a
transaction's BEGIN rides with its first statement: IMMEDIATE (the write lock) for ordinary
units of work, DEFERRED (a snapshot, no lock) for units of work for reads, and the
process's writers take turns for the write lock (`WriterLine`).

These use an SQLite file of their own, whatever database the suite runs on."""

from __future__ import annotations

import asyncio
import sqlite3
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiosqlite
import pytest
from sqlalchemy import (
    Column,
    Integer,
    MetaData,
    String,
    Table,
    event,
    func,
    insert,
    select,
    text,
)
from sqlalchemy.exc import IntegrityError

from vexam.core.db import Database
from vexam.core.sqlite_driver import OneTripConnection, WriterLine

NOTES = Table("notes", MetaData(), Column("id", Integer, primary_key=True), Column("body", String))


@pytest.fixture
async def database(tmp_path: Path) -> AsyncIterator[Database]:
    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'driver.db'}")
    async with db.engine.begin() as connection:
        await connection.execute(
            text("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT NOT NULL UNIQUE)")
        )
    yield db
    await db.dispose()


@pytest.fixture
def trips(monkeypatch: pytest.MonkeyPatch) -> Counter[str]:
    """The calls made on aiosqlite's threads from now on, by the name of their function."""
    made: Counter[str] = Counter()
    original = aiosqlite.Connection._execute

    async def counted(self: aiosqlite.Connection, fn: Any, *args: Any, **kwargs: Any) -> Any:
        made[getattr(fn, "__name__", "?")] += 1
        return await original(self, fn, *args, **kwargs)

    monkeypatch.setattr(aiosqlite.Connection, "_execute", counted)
    return made


async def test_the_engine_uses_the_one_trip_connection(database: Database) -> None:
    async with database.engine.connect() as connection:
        raw = await connection.get_raw_connection()
        assert isinstance(raw.dbapi_connection, OneTripConnection)


async def test_a_statement_with_rows_is_one_trip(database: Database, trips: Counter[str]) -> None:
    """SQLAlchemy's own adapter makes four (cursor, execute, fetchall, close). A read
    transaction's BEGIN rides with its first statement."""
    async with database.unit_of_work(reads=True) as session:
        rows = (await session.execute(select(NOTES.c.id))).all()
        assert rows == []
        assert trips == Counter({"_run": 1})
        await session.execute(select(NOTES.c.id))
        assert trips == Counter({"_run": 2})


async def test_rows_counts_and_ids_read_as_sqlite3_gives_them(database: Database) -> None:
    async with database.unit_of_work() as session:
        connection = await session.connection()
        first = await connection.execute(insert(NOTES).values(body="a"))
        assert first.inserted_primary_key == (1,)  # from the cursor's lastrowid
        many = await connection.execute(insert(NOTES), [{"body": "b"}, {"body": "c"}])
        assert many.rowcount == 2  # executemany
        returned = await connection.execute(
            insert(NOTES).values(body="d").returning(NOTES.c.id, NOTES.c.body)
        )
        assert returned.all() == [(4, "d")]
        changed = await connection.execute(
            text("UPDATE notes SET body = body || '!' WHERE id > :low"), {"low": 1}
        )
        assert changed.rowcount == 3
        rows = (await connection.execute(select(NOTES).order_by(NOTES.c.id))).all()
        assert rows == [(1, "a"), (2, "b!"), (3, "c!"), (4, "d!")]
        streamed = await connection.stream(select(NOTES.c.body).order_by(NOTES.c.id))
        assert [row.body async for row in streamed] == ["a", "b!", "c!", "d!"]


async def test_a_failed_statement_raises_and_the_connection_goes_on(database: Database) -> None:
    async with database.unit_of_work() as session:
        await session.execute(insert(NOTES).values(body="same"))
    with pytest.raises(IntegrityError):
        async with database.unit_of_work() as session:
            await session.execute(insert(NOTES).values(body="other"))
            await session.execute(insert(NOTES).values(body="same"))
    async with database.unit_of_work() as session:
        bodies = (await session.execute(select(NOTES.c.body))).scalars().all()
    assert bodies == ["same"]  # "other" was rolled back with the failed unit


async def test_commit_and_rollback_outside_a_transaction_cost_no_trip(
    database: Database, trips: Counter[str]
) -> None:
    """The pool rolls back every connection it gets back: after a commit, nothing to do."""
    async with database.unit_of_work(reads=True) as session:
        await session.execute(select(NOTES.c.id))
        trips.clear()
    assert trips == Counter({"commit": 1})  # the unit's commit; the pool's rollback: none
    trips.clear()
    with pytest.raises(LookupError):
        async with database.unit_of_work(reads=True) as session:
            await session.execute(select(NOTES.c.id))
            raise LookupError  # in a read transaction: a real rollback, one trip
    assert trips["rollback"] == 1
    async with database.unit_of_work() as session:
        await session.execute(insert(NOTES).values(body="kept"))
    async with database.engine.connect() as connection:
        await connection.execute(insert(NOTES).values(body="dropped"))
        await connection.rollback()
    async with database.unit_of_work(reads=True) as session:
        bodies = (await session.execute(select(NOTES.c.body))).scalars().all()
    assert bodies == ["kept"]


def _other_writer(path: Path) -> sqlite3.Connection:
    """Another connection to the file, which gives up at once where it would wait."""
    return sqlite3.connect(path, timeout=0, isolation_level=None)


def _write_locked(path: Path) -> bool:
    """Whether another connection holds SQLite's write lock on the file."""
    other = _other_writer(path)
    try:
        other.execute("BEGIN IMMEDIATE")
    except sqlite3.OperationalError as error:
        if "locked" not in str(error):
            raise
        return True
    finally:
        other.close()  # rolls back its empty transaction
    return False


def _file(database: Database) -> Path:
    return Path(database.url.split("///", 1)[1])


async def test_a_write_transaction_runs_on_the_event_loop_holding_the_lock(
    database: Database, trips: Counter[str]
) -> None:
    """BEGIN IMMEDIATE, the statements and the commit of a write transaction make no trip to
    aiosqlite's thread; the lock is held from the first statement (a second writer is
    refused) and released by the commit."""
    path = _file(database)
    async with database.unit_of_work() as session:
        assert not _write_locked(path)  # nothing sent yet
        assert (await session.execute(select(NOTES.c.id))).all() == []
        assert _write_locked(path)
        await session.execute(insert(NOTES).values(body="mine"))
        assert (await session.execute(select(NOTES.c.body))).scalars().all() == ["mine"]
    assert trips == Counter()
    assert not _write_locked(path)
    with pytest.raises(IntegrityError):
        async with database.unit_of_work() as session:
            await session.execute(insert(NOTES).values(body="other"))
            await session.execute(insert(NOTES).values(body="mine"))
    assert trips == Counter()  # the rollback too
    assert not _write_locked(path)


async def test_many_rows_go_to_the_thread(database: Database, trips: Counter[str]) -> None:
    async with database.unit_of_work() as session:
        connection = await session.connection()
        await connection.execute(insert(NOTES), [{"body": "a"}, {"body": "b"}])
        assert trips == Counter({"_run": 1})
        count = select(func.count()).select_from(NOTES)
        assert (await connection.execute(count)).scalar_one() == 2
    assert trips == Counter({"_run": 1})


async def test_a_writer_of_another_process_is_waited_for_on_the_thread(
    database: Database, trips: Counter[str]
) -> None:
    """Another connection holds the write lock: the BEGIN waits for it on aiosqlite's
    thread while the event loop goes on, and the transaction then runs on the loop."""
    other = _other_writer(_file(database))
    other.execute("BEGIN IMMEDIATE")
    other.execute("INSERT INTO notes (body) VALUES ('theirs')")

    async def write() -> None:
        async with database.unit_of_work() as session:
            await session.execute(insert(NOTES).values(body="mine"))
            await session.execute(insert(NOTES).values(body="mine too"))

    async with asyncio.timeout(20):
        writing = asyncio.create_task(write())
        for _ in range(1000):  # the loop runs on while the BEGIN waits on the thread
            if trips["_run"]:
                break
            await asyncio.sleep(0)
        assert trips["_run"] == 1
        assert not writing.done()
        other.commit()
        await writing
    other.close()
    assert trips == Counter({"_run": 1})  # BEGIN and the first INSERT; the rest on the loop
    async with database.unit_of_work(reads=True) as session:
        bodies = (await session.execute(select(NOTES.c.body).order_by(NOTES.c.id))).scalars()
        assert list(bodies) == ["theirs", "mine", "mine too"]


async def test_a_unit_without_statements_sends_nothing(
    database: Database, trips: Counter[str]
) -> None:
    """Its commit drops the pending BEGIN: the connection goes back to the pool clean, and the
    next unit begins its own transaction."""
    async with database.unit_of_work() as session:
        connection = await session.connection()  # the transaction begins (pending)
        raw = (await connection.get_raw_connection()).dbapi_connection
    assert trips == Counter()
    assert isinstance(raw, OneTripConnection)
    assert raw.take_begin() is None
    async with database.unit_of_work() as session:
        await session.execute(insert(NOTES).values(body="after"))
        assert _write_locked(_file(database))


async def test_a_streamed_first_statement_begins_the_transaction(database: Database) -> None:
    async with database.unit_of_work() as session:
        await session.execute(insert(NOTES).values(body="x"))
    async with database.unit_of_work() as session:
        connection = await session.connection()
        streamed = await connection.stream(select(NOTES.c.body))
        assert [row.body async for row in streamed] == ["x"]
        assert _write_locked(_file(database))
    assert not _write_locked(_file(database))


async def test_a_reads_unit_reads_one_snapshot_and_holds_no_lock(database: Database) -> None:
    """BEGIN DEFERRED: while it is open another connection writes and commits, and the unit
    still reads what it read first (a snapshot, not a statement-by-statement autocommit)."""
    async with database.unit_of_work() as session:
        await session.execute(insert(NOTES).values(body="before"))
    bodies = select(NOTES.c.body).order_by(NOTES.c.id)
    async with database.unit_of_work(reads=True) as session:
        assert (await session.execute(bodies)).scalars().all() == ["before"]
        assert not _write_locked(_file(database))
        other = _other_writer(_file(database))
        try:
            other.execute("INSERT INTO notes (body) VALUES ('meanwhile')")
        finally:
            other.close()
        assert (await session.execute(bodies)).scalars().all() == ["before"]
    async with database.unit_of_work(reads=True) as session:
        assert (await session.execute(bodies)).scalars().all() == ["before", "meanwhile"]


async def test_a_reads_unit_does_not_wait_for_a_writer(database: Database) -> None:
    """Another connection holds the write lock (an uncommitted INSERT): a reads unit reads
    the last committed rows at once; an ordinary unit would wait for the lock."""
    async with database.unit_of_work() as session:
        await session.execute(insert(NOTES).values(body="committed"))
    other = _other_writer(_file(database))
    try:
        other.execute("BEGIN IMMEDIATE")
        other.execute("INSERT INTO notes (body) VALUES ('pending')")
        async with asyncio.timeout(10):  # the busy timeout is 30 s: a wait would fail here
            async with database.unit_of_work(reads=True) as session:
                rows = (await session.execute(select(NOTES.c.body))).scalars().all()
        assert rows == ["committed"]
    finally:
        other.close()


def _never_wait_in_sqlite(database: Database) -> None:
    """busy_timeout 0: a connection that finds the write lock taken fails at once ("database
    is locked") instead of sleeping and retrying, so only the writer line can order writers."""

    @event.listens_for(database.engine.sync_engine, "connect")
    def _no_busy_wait(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA busy_timeout=0")
        cursor.close()


async def test_writers_of_a_process_take_turns(database: Database) -> None:
    """Twenty units of work at once, each holding the write lock across awaits; half of them
    fail (a duplicate) and one is cancelled while it holds its turn. With SQLite's own wait
    switched off, every other writer still gets the lock: each waited for the one before it
    to commit or roll back, and a failed or cancelled writer gave its turn up."""
    await database.dispose()
    _never_wait_in_sqlite(database)
    async with database.unit_of_work() as session:
        await session.execute(insert(NOTES).values(body="taken"))
    holding = asyncio.Event()

    async def write(number: int) -> str:
        async with database.unit_of_work() as session:
            await session.execute(insert(NOTES).values(body=f"note {number}"))
            if number == 7:
                holding.set()
                await asyncio.Event().wait()  # cancelled here, holding its turn
            for _ in range(3):
                await asyncio.sleep(0)  # others run meanwhile, and queue for the lock
            if number % 2:
                await session.execute(insert(NOTES).values(body="taken"))
        return "written"

    async with asyncio.timeout(20):
        tasks = [asyncio.create_task(write(number)) for number in range(20)]
        await holding.wait()
        tasks[7].cancel()
        outcomes = await asyncio.gather(*tasks, return_exceptions=True)
    assert isinstance(outcomes[7], asyncio.CancelledError)
    assert all(isinstance(outcomes[n], IntegrityError) for n in range(1, 20, 2) if n != 7)
    assert [outcomes[n] for n in range(0, 20, 2)] == ["written"] * 10
    async with database.unit_of_work() as session:
        bodies = set((await session.execute(select(NOTES.c.body))).scalars())
    assert bodies == {"taken"} | {f"note {n}" for n in range(0, 20, 2)}


async def test_reads_do_not_queue_behind_writers(database: Database) -> None:
    """A writer holds its turn (and the lock): a reads unit goes on at once."""
    await database.dispose()
    _never_wait_in_sqlite(database)
    async with database.unit_of_work() as writer:
        await writer.execute(insert(NOTES).values(body="uncommitted"))
        async with asyncio.timeout(10), database.unit_of_work(reads=True) as reader:
            assert (await reader.execute(select(NOTES.c.body))).all() == []


async def test_a_turn_held_too_long_lets_the_next_writer_go_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    line = WriterLine(patience=0.01)
    first = await line.enter()
    assert first is not None
    assert await line.enter() is None  # gave up waiting: SQLite's own wait decides
    assert "held over" in caplog.text
    first.release()
    second = await line.enter()
    assert second is first  # the line works again once the turn ends
