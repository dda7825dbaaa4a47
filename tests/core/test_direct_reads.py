"""`core.direct_reads.DirectSelect`: in a unit of work for reads on PostgreSQL a statement is
sent straight through asyncpg and gives the rows SQLAlchemy gives; everywhere else, and when
asyncpg fails, SQLAlchemy runs it as it always did."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import asyncpg
import pytest
from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Float,
    Integer,
    Numeric,
    String,
    bindparam,
    literal_column,
    select,
    text,
)
from sqlalchemy.exc import DBAPIError, StatementError

from tests.helpers import statements_sent
from vexam.accounts.models import AuthSession
from vexam.core.db import Database, TransactionNeeded
from vexam.core.direct_reads import DirectSelect
from vexam.core.models import UTCDateTime


def typed(rows: Any) -> list[list[tuple[type, Any]]]:
    """Rows with each value's type: 2.5 and Decimal('2.5') compare equal, but are not."""
    return [[(type(value), value) for value in row] for row in rows]


def needs_postgres(database: Any) -> None:
    if database.is_sqlite:
        pytest.skip("PostgreSQL only: on SQLite every DirectSelect runs through SQLAlchemy")


# Values of the types the exam day reads, and those SQLAlchemy converts after asyncpg: a
# numeric read as float (its processor depends on the type the server describes) and a
# timestamp with its zone read as UTC (vexam's own type).
MANY_TYPES = DirectSelect(
    select(
        literal_column("CAST(41 AS BIGINT)", BigInteger).label("big"),
        literal_column("CAST(7 AS INTEGER)", Integer).label("small"),
        literal_column("CAST('考生' AS VARCHAR)", String).label("name"),
        literal_column("CAST(1 = 1 AS BOOLEAN)", Boolean).label("yes"),
        literal_column("CAST(2.5 AS DOUBLE PRECISION)", Float).label("double"),
        literal_column("CAST(2.25 AS NUMERIC(6, 2))", Numeric(6, 2, asdecimal=False)).label("num"),
        literal_column("CAST(3.75 AS NUMERIC(6, 2))", Numeric(6, 2)).label("decimal"),
        literal_column("CAST('{\"a\": [1, 2]}' AS JSON)", JSON).label("doc"),
        literal_column("CAST('2026-12-05 08:00:00+08' AS TIMESTAMPTZ)", UTCDateTime).label("at"),
        literal_column("CAST(NULL AS BIGINT)", BigInteger).label("nothing"),
        bindparam("given", type_=BigInteger),
        bindparam("word", type_=String),
    )
)


async def test_the_rows_are_sqlalchemys_with_every_type(app) -> None:
    """Sent directly (once per unit, counted) and converted as SQLAlchemy converts: the same
    values of the same types as `session.execute` in an ordinary unit of work."""
    database = app.state.db
    needs_postgres(database)
    params = {"given": 2**40, "word": "ok"}
    async with database.unit_of_work() as session:
        expected = [tuple(row) for row in (await session.execute(MANY_TYPES.statement, params))]
    assert MANY_TYPES.sent == 0, "a unit of work with a transaction is not direct"
    async with database.unit_of_work(reads=True) as session:
        direct = await MANY_TYPES.rows(session, params)
    assert MANY_TYPES.sent == 1
    assert typed(direct) == typed(expected)
    row = direct[0]
    assert isinstance(row[5], float) and row[5] == 2.25
    assert row[8] == datetime(2026, 12, 5, 0, 0, tzinfo=UTC) and row[8].tzinfo is UTC
    assert row[7] == {"a": [1, 2]} and row[9] is None and row[10:] == (2**40, "ok")


async def test_everywhere_else_sqlalchemy_runs_it(app) -> None:
    """SQLite, a unit of work with a transaction, an engine that logs its statements, and a
    reads unit with a change waiting for its flush (which refuses it, as a flush there
    always did): nothing is sent directly."""
    database = app.state.db
    lookup = DirectSelect(select(AuthSession.id).where(AuthSession.token_hash == bindparam("h")))
    async with database.unit_of_work() as session:
        assert await lookup.rows(session, {"h": "none"}) == []
    async with database.unit_of_work(reads=True) as session:
        assert await lookup.rows(session, {"h": "none"}) == []
    assert lookup.sent == (0 if database.is_sqlite else 1)
    logged = Database(database.url, echo=True)
    try:
        async with logged.unit_of_work(reads=True) as session:
            assert await lookup.rows(session, {"h": "none"}) == []
    finally:
        await logged.dispose()
    assert lookup.sent == (0 if database.is_sqlite else 1), "an engine that logs: SQLAlchemy's"
    with pytest.raises(TransactionNeeded):
        async with database.unit_of_work(reads=True) as session:
            session.add(AuthSession(token_hash="d" * 64))
            await lookup.rows(session, {"h": "none"})
    assert lookup.sent == (0 if database.is_sqlite else 1)


async def test_statement_counters_see_a_direct_statement(app) -> None:
    """Listeners of the engine's statements (tests, benchmarks) are told of it."""
    database = app.state.db
    needs_postgres(database)
    with statements_sent(app, 3) as sent:
        async with database.unit_of_work(reads=True) as session:
            await MANY_TYPES.rows(session, {"given": 1, "word": "x"})
    assert sent == ["SELECT CAST(41 AS"]


async def test_a_failing_statement_is_reported_as_sqlalchemy_reports_it(app) -> None:
    """A division by zero raises SQLAlchemy's DataError (asyncpg's own error is not what
    callers and the app's handlers expect), and the connection still serves; a missing
    parameter is named as SQLAlchemy names it."""
    database = app.state.db
    needs_postgres(database)
    divide = DirectSelect(select(literal_column("10", Integer) / bindparam("by", type_=Integer)))
    with pytest.raises(DBAPIError) as raised:
        async with database.unit_of_work(reads=True) as session:
            await divide.rows(session, {"by": 0})
    assert isinstance(raised.value.orig.__cause__, asyncpg.DataError)
    async with database.unit_of_work(reads=True) as session:
        assert await divide.rows(session, {"by": 5}) == [(2,)]
    assert divide.sent == 1
    async with database.unit_of_work(reads=True) as session:
        with pytest.raises(StatementError, match="'by'"):
            await divide.rows(session, {})
    assert divide.sent == 1


async def test_a_lost_connection_is_invalidated_as_sqlalchemy_does(app) -> None:
    """The server ends the session's backend: the read fails as a disconnect (503 for the app's
    handlers), the pool forgets that connection, and the next unit of work reads again."""
    database = app.state.db
    needs_postgres(database)
    admin = await asyncpg.connect(database.url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        with pytest.raises(DBAPIError) as raised:
            async with database.unit_of_work(reads=True) as session:
                backend = (await session.execute(text("SELECT pg_backend_pid()"))).scalar_one()
                await admin.execute("SELECT pg_terminate_backend($1)", backend)
                await MANY_TYPES.rows(session, {"given": 1, "word": "x"})
        assert raised.value.connection_invalidated
    finally:
        await admin.close()
    async with database.unit_of_work(reads=True) as session:
        assert len(await MANY_TYPES.rows(session, {"given": 1, "word": "x"})) == 1


async def test_parameters_that_need_a_conversion_are_refused(app) -> None:
    """A parameter SQLAlchemy would convert on the way in (a timestamp, a JSON document) or
    an expanding IN list: refused when first compiled, not sent wrong."""
    database = app.state.db
    needs_postgres(database)
    at = DirectSelect(select(AuthSession.id).where(AuthSession.created_at > bindparam("at")))
    listed = DirectSelect(select(AuthSession.id).where(AuthSession.id.in_(bindparam("ids"))))
    async with database.unit_of_work(reads=True) as session:
        with pytest.raises(ValueError, match="needs a conversion"):
            await at.rows(session, {"at": datetime.now(UTC)})
        with pytest.raises(ValueError, match="expanding"):
            await listed.rows(session, {"ids": [1, 2]})
