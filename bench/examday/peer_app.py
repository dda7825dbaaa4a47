"""The peer: a bare FastAPI app with one endpoint doing one indexed read on the same
PostgreSQL table vexam reads per request (the session by its token hash), through the same
SQLAlchemy async engine and asyncpg driver; no middleware, no unit of work, no ORM objects.

    uvicorn bench.examday.peer_app:app   (VEXAM_DATABASE_URL names the database)
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, HTTPException, Request
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

_QUERY = text("SELECT user_id, expires_at FROM auth_sessions WHERE token_hash = :token_hash")


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    # vexam's default pool (`vexam.core.db.Database`): 20 connections kept, none past them.
    engine = create_async_engine(
        os.environ["VEXAM_DATABASE_URL"], pool_size=20, max_overflow=0, pool_timeout=10
    )
    app.state.engine = engine
    try:
        yield
    finally:
        await engine.dispose()


app = FastAPI(lifespan=_lifespan)


@app.get("/peer")
async def peer(request: Request) -> dict[str, Any]:
    """The caller's session row, found by the SHA-256 of its bearer token."""
    token = request.headers.get("authorization", "").removeprefix("Bearer ").strip()
    token_hash = hashlib.sha256(token.encode()).hexdigest()
    engine: AsyncEngine = request.app.state.engine
    async with engine.connect() as connection:
        row = (await connection.execute(_QUERY, {"token_hash": token_hash})).first()
    if row is None:
        raise HTTPException(401)
    return {"user_id": row.user_id, "expires_at": row.expires_at.isoformat()}
