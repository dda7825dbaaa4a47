"""SQLite statements in one trip to aiosqlite's thread (`vexam.core.sqlite_driver`): what
SQLAlchemy reads of a statement (rows, row count, last row id, errors) is what aiosqlite's
own cursor gave, and a commit or rollback outside a transaction costs no trip.

These use an SQLite file of their own, whatever database the suite runs on."""

from __future__ import annotations

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
        await session.execute(text("SELECT 1"))  # the transaction begins (BEGIN IMMEDIATE)
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
