"""Statements without transactions on PostgreSQL: units of work for reads
(`Database.unit_of_work(reads=True)`), which refuse any write before it is made
(`TransactionNeeded`), and `autocommit_next` for work that commits after every statement."""

from __future__ import annotations

import asyncpg
import pytest
from sqlalchemy import func, select, text, update

from vexam.accounts.models import AuthSession
from vexam.core.db import TransactionNeeded, autocommit_next


async def _state_of(url: str, backend: int) -> str:
    """What PostgreSQL says the backend is doing (seen from another connection)."""
    admin = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://", 1))
    try:
        return str(
            await admin.fetchval("SELECT state FROM pg_stat_activity WHERE pid = $1", backend)
        )
    finally:
        await admin.close()


async def test_reads_run_without_a_transaction_on_postgresql(app) -> None:
    """After a statement an ordinary unit of work is "idle in transaction"; a reads unit is
    "idle": it sent no BEGIN."""
    database = app.state.db
    if database.is_sqlite:
        pytest.skip("PostgreSQL only: SQLite's reads units (DEFERRED) are in test_sqlite_driver")
    pid = text("SELECT pg_backend_pid()")
    async with database.unit_of_work() as session:
        backend = (await session.execute(pid)).scalar_one()
        assert await _state_of(database.url, backend) == "idle in transaction"
    async with database.unit_of_work(reads=True) as session:
        backend = (await session.execute(pid)).scalar_one()
        assert await _state_of(database.url, backend) == "idle"


async def test_a_reads_unit_refuses_every_write_before_it_is_made(app) -> None:
    """An UPDATE statement and a flush of a new row both raise `TransactionNeeded`; nothing
    was written."""
    database = app.state.db
    count = select(func.count()).select_from(AuthSession)
    async with database.unit_of_work() as session:
        before = (await session.execute(count)).scalar_one()
    with pytest.raises(TransactionNeeded):
        async with database.unit_of_work(reads=True) as session:
            await session.execute(count)
            await session.execute(update(AuthSession).values(user_agent="changed"))
    with pytest.raises(TransactionNeeded):
        async with database.unit_of_work(reads=True) as session:
            session.add(AuthSession(token_hash="x" * 64))
    async with database.unit_of_work(reads=True) as session:
        assert (await session.execute(count)).scalar_one() == before
        changed = (
            select(func.count()).select_from(AuthSession).where(AuthSession.user_agent == "changed")
        )
        assert (await session.execute(changed)).scalar_one() == 0


async def test_autocommit_next_commits_each_statement_by_itself(app) -> None:
    """Between transactions, the next statements each commit at once (another connection sees
    the UPDATE before the session commits); inside a transaction, or with changed objects
    waiting, nothing changes. SQLite keeps its transactions."""
    database = app.state.db
    pid = text("SELECT pg_backend_pid()")
    async with database.unit_of_work() as session:
        if database.is_sqlite:
            assert not await autocommit_next(session)
            return
        assert await autocommit_next(session)
        backend = (await session.execute(pid)).scalar_one()
        assert await _state_of(database.url, backend) == "idle"
        await session.commit()
        await session.execute(pid)
        assert not await autocommit_next(session)  # a transaction is open
        await session.commit()
        session.add(AuthSession(token_hash="y" * 64))
        assert not await autocommit_next(session)  # a flush is waiting
        session.expunge_all()


def test_reads_first_is_for_get_routes_only() -> None:
    """A request that writes runs twice: a route with a body cannot be marked."""
    from vexam.core.web import make_router, reads_first

    router = make_router()

    async def change() -> None:
        """Change something."""

    with pytest.raises(TypeError, match="GET routes only"):
        router.post("/x")(reads_first(change))
    router.get("/y")(reads_first(change))


async def test_a_reads_unit_refuses_a_core_update_too(app) -> None:
    """Hot paths run Core statements built once (e.g. the voiding of overdue recordings that a
    status poll may run): a reads unit refuses them as it refuses ORM ones."""
    table = AuthSession.__table__
    with pytest.raises(TransactionNeeded):
        async with app.state.db.unit_of_work(reads=True) as session:
            await session.execute(table.update().values(user_agent="changed"))
    async with app.state.db.unit_of_work(reads=True) as session:
        changed = select(func.count()).select_from(table).where(table.c.user_agent == "changed")
        assert (await session.execute(changed)).scalar_one() == 0
