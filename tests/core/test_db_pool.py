"""PostgreSQL pool: a connection that died while idle is replaced before a request uses it
(checked only after `IDLE_PING_S` idle, so a busy process pays no ping per request)."""

from __future__ import annotations

import asyncio

import asyncpg
import httpx
import pytest
from sqlalchemy import text

from vexam.core import db as db_module
from vexam.main import create_app


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


async def test_the_pool_keeps_its_connections_and_opens_no_more(app) -> None:
    """Under more concurrent units of work than the pool holds, the others wait for a pooled
    connection: no connection is opened past the pool, none is closed and opened again."""
    if app.state.db.is_sqlite:
        pytest.skip("PostgreSQL pools only")
    database = db_module.Database(app.state.db.url, pool_size=2, pool_timeout=60)
    release = asyncio.Event()
    two_hold = asyncio.Event()
    backends: list[int] = []

    async def work() -> None:
        async with database.unit_of_work() as session:
            backends.append((await session.execute(text("SELECT pg_backend_pid()"))).scalar_one())
            if len(backends) == 2:
                two_hold.set()
            await release.wait()

    try:
        tasks = [asyncio.create_task(work()) for _ in range(6)]
        await two_hold.wait()
        for _ in range(20):  # the other four get every chance to take a connection
            await asyncio.sleep(0)
        assert len(backends) == 2
        release.set()
        await asyncio.gather(*tasks)
        assert len(backends) == 6
        assert set(backends) == set(backends[:2])
        assert database.engine.sync_engine.pool.checkedin() == 2
    finally:
        release.set()
        await database.dispose()


async def test_a_request_finding_no_free_connection_is_answered_503(settings, clock) -> None:
    """The pool's wait ends in `503 service_unavailable` with Retry-After, not a crash."""
    if not settings.effective_database_url.startswith("postgresql"):
        pytest.skip("PostgreSQL pools only")
    busy = settings.model_copy(
        update={"database_pool_size": 1, "database_pool_timeout_seconds": 0.05}
    )
    application = create_app(busy, clock=clock)
    async with application.router.lifespan_context(application):
        transport = httpx.ASGITransport(app=application)
        async with (
            httpx.AsyncClient(transport=transport, base_url="http://testserver") as http,
            application.state.db.engine.connect() as held,  # the pool's only connection
        ):
            await held.execute(text("SELECT 1"))
            answer = await http.get("/api/v1/me", headers={"Authorization": "Bearer not-a-token"})
        assert answer.status_code == 503
        assert answer.json()["code"] == "service_unavailable"
        assert answer.headers["retry-after"] == "2"
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            again = await http.get("/api/v1/me", headers={"Authorization": "Bearer not-a-token"})
        assert again.status_code == 401  # the connection is free again: served as usual
