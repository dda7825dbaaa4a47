"""SQLite statements in one trip to aiosqlite's thread (`vexam.core.sqlite_driver`): what
SQLAlchemy reads of a statement (rows, row count, last row id, errors) is what aiosqlite's
own cursor gave, a commit or rollback outside a transaction costs no trip, and a
transaction's BEGIN rides with its first statement: IMMEDIATE (the write lock) for ordinary
units of work, DEFERRED (a snapshot, no lock) for units of work for reads.

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
from sqlalchemy import Column, Integer, MetaData, String, Table, insert, select, text
from sqlalchemy.exc import IntegrityError

from vexam.core.db import Database
from vexam.core.sqlite_driver import OneTripConnection

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
    """SQLAlchemy's own adapter makes four (cursor, execute, fetchall, close)."""
    async with database.unit_of_work() as session:
        await session.execute(text("SELECT 1"))  # the transaction began with it
        trips.clear()
        rows = (await session.execute(select(NOTES.c.id))).all()
        assert rows == []
        assert trips == Counter({"_run": 1})


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
    async with database.unit_of_work() as session:
        await session.execute(insert(NOTES).values(body="kept"))
        trips.clear()
    assert trips == Counter({"commit": 1})  # the unit's commit; the pool's rollback: none
    trips.clear()
    async with database.engine.connect() as connection:
        await connection.execute(insert(NOTES).values(body="dropped"))
        await connection.rollback()  # in a transaction: a real rollback, one trip
    assert trips["rollback"] == 1
    async with database.unit_of_work() as session:
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


async def test_begin_rides_with_the_first_statement_and_takes_the_write_lock(
    database: Database, trips: Counter[str]
) -> None:
    """One trip for BEGIN IMMEDIATE and the first statement; the lock is held from there on
    (a second writer is refused), and released by the commit."""
    path = _file(database)
    async with database.unit_of_work() as session:
        trips.clear()
        assert not _write_locked(path)  # nothing sent yet
        assert (await session.execute(select(NOTES.c.id))).all() == []
        assert trips == Counter({"_run": 1})
        assert _write_locked(path)
        await session.execute(insert(NOTES).values(body="mine"))
        assert trips == Counter({"_run": 2})
    assert trips == Counter({"_run": 2, "commit": 1})
    assert not _write_locked(path)


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
