"""PostgreSQL pool: a connection that died while idle is replaced before a request uses it
(checked only after `IDLE_PING_S` idle, so a busy process pays no ping per request)."""

from __future__ import annotations

import asyncpg
import pytest
from sqlalchemy import text

from vexam.core import db as db_module


async def test_a_connection_killed_while_idle_is_replaced(app, monkeypatch) -> None:
    database = app.state.db
    if database.is_sqlite:
        pytest.skip("PostgreSQL pools only")
    async with database.engine.connect() as connection:
        backend = (await connection.execute(text("SELECT pg_backend_pid()"))).scalar_one()
    url = database.url.replace("postgresql+asyncpg://", "postgresql://", 1)
    admin = await asyncpg.connect(url)
    try:
        assert await admin.fetchval("SELECT pg_terminate_backend($1)", backend)
    finally:
        await admin.close()
    monkeypatch.setattr(db_module, "IDLE_PING_S", 0.0)  # "idle long enough" without sleeping
    async with database.unit_of_work() as session:
        again = (await session.execute(text("SELECT pg_backend_pid()"))).scalar_one()
    assert again != backend
