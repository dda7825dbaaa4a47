"""Hot read statements sent straight through asyncpg (issue 10: the exam day's status poll).

Around a statement that asyncpg alone sends and reads in about 0.05 ms of CPU, SQLAlchemy's
session spends 0.3-0.5 ms more (the ORM execution state, the execution context, the cursor
adapter, the result). For the few statements an exam day runs most often, `DirectSelect`
keeps SQLAlchemy as the statement's author and the connection's owner, and only the
sending and reading skip it: in a unit of work for reads on PostgreSQL, the statement
compiled once by SQLAlchemy is sent on the session's own asyncpg connection (which asyncpg
prepares once per connection and keeps), and each value of the rows goes through the
result processor SQLAlchemy would have applied to it (its column type's, for the type the
server describes). The rows are the ones `session.execute(statement, params).all()` gives,
as tuples.

Everywhere else (SQLite, a unit of work with a transaction, changes waiting for a flush, an
engine that logs its statements) `rows` runs the statement the ordinary way
(`db.execute_flushed`). So it does when a parameter is missing (SQLAlchemy names it) and when
asyncpg raises: SQLAlchemy then sends the statement again on the same connection and reports
the failure as it always does, invalidating a lost connection (a read sent twice changes
nothing). Listeners of the engine's `before_cursor_execute` (statement counters in tests
and benchmarks) are told of a direct statement with its connection, SQL and parameters (no
cursor or execution context: there is none).
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Select
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncSession

from vexam.core.db import execute_flushed, in_reads_unit

Processor = Callable[[Any], Any] | None


@dataclass
class _Plan:
    """The statement compiled for one dialect: its SQL, its parameters' order and fixed
    values, and (after the first run) the result processor of each column."""

    sql: str
    names: tuple[str, ...]
    fixed: dict[str, Any]
    processors: list[Processor] | None = None


class DirectSelect:
    """A SELECT sent straight through asyncpg where that is safe (see the module docstring).

    Its parameters must need no conversion on the way in (ids, strings, numbers: a type
    with a bind processor is refused when the statement is first compiled, as are
    expanding IN lists); its columns may be of any type.
    """

    def __init__(self, statement: Select[Any]) -> None:
        self.statement = statement
        self._plans: weakref.WeakKeyDictionary[Dialect, _Plan] = weakref.WeakKeyDictionary()
        self.sent = 0  # statements sent directly in this process (the tests read it)

    async def rows(
        self, session: AsyncSession, params: Mapping[str, Any]
    ) -> Sequence[tuple[Any, ...]]:
        """The rows of the statement with `params`, as `session.execute` would give them."""
        bind = session.get_bind()
        dialect = bind.dialect
        if (
            dialect.driver != "asyncpg"
            or not in_reads_unit(session)
            or _pending(session)
            or bind.engine.echo  # SQLAlchemy logs every statement (`Database(echo=True)`): let it
        ):
            return await self._through_sqlalchemy(session, params)
        plan = self._plan(dialect)
        try:
            args = [params[name] if name in params else plan.fixed[name] for name in plan.names]
        except KeyError:
            return await self._through_sqlalchemy(session, params)
        connection = await session.connection()
        sync = connection.sync_connection
        driver = (await connection.get_raw_connection()).driver_connection
        if sync is None or driver is None:  # not so once checked out; SQLAlchemy would say why
            return await self._through_sqlalchemy(session, params)
        if sync.dispatch.before_cursor_execute:
            sync.dispatch.before_cursor_execute(sync, None, plan.sql, tuple(args), None, False)
        try:
            if plan.processors is None:
                prepared = await driver.prepare(plan.sql)
                plan.processors = _processors(self.statement, dialect, prepared)
            records = await driver.fetch(plan.sql, *args)
        except Exception:  # reported as SQLAlchemy reports it (see the module docstring)
            return await self._through_sqlalchemy(session, params)
        self.sent += 1
        processors = plan.processors
        if not any(processors):
            return [tuple(record) for record in records]
        return [
            tuple(
                value if process is None else process(value)
                for process, value in zip(processors, record, strict=True)
            )
            for record in records
        ]

    async def _through_sqlalchemy(
        self, session: AsyncSession, params: Mapping[str, Any]
    ) -> list[tuple[Any, ...]]:
        rows = (await execute_flushed(session, self.statement, params)).all()
        return [tuple(row) for row in rows]

    def _plan(self, dialect: Dialect) -> _Plan:
        plan = self._plans.get(dialect)
        if plan is None:
            plan = self._plans[dialect] = _compile(self.statement, dialect)
        return plan


def _compile(statement: Select[Any], dialect: Dialect) -> _Plan:
    compiled = statement.compile(dialect=dialect)
    if compiled.positiontup is None or getattr(compiled, "post_compile_params", None):
        raise ValueError("DirectSelect needs positional parameters without expanding lists")
    for name in compiled.positiontup:
        bound = compiled.binds[name]
        if bound.type.dialect_impl(dialect).bind_processor(dialect) is not None:
            raise ValueError(f"DirectSelect: parameter {name!r} needs a conversion")
    return _Plan(
        sql=compiled.string,
        names=tuple(compiled.positiontup),
        fixed={
            name: compiled.binds[name].effective_value
            for name in compiled.positiontup
            if not compiled.binds[name].required
        },
    )


def _processors(statement: Select[Any], dialect: Dialect, prepared: Any) -> list[Processor]:
    """What SQLAlchemy applies to each column: its type's result processor for the type the
    server describes (asyncpg's type oid, as SQLAlchemy's cursor reports it)."""
    columns = list(statement.selected_columns)
    described = prepared.get_attributes()
    if len(columns) != len(described):
        raise ValueError("DirectSelect: the server describes other columns than selected")
    return [
        column.type.dialect_impl(dialect).result_processor(dialect, attribute.type.oid)
        for column, attribute in zip(columns, described, strict=True)
    ]


def _pending(session: AsyncSession) -> bool:
    return bool(session.new or session.dirty or session.deleted)
