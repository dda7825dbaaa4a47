"""Liveness, readiness and Prometheus metrics."""

from __future__ import annotations

import asyncio
import logging

from fastapi import Request, Response
from fastapi.responses import JSONResponse, PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text

from vexam.core.web import make_router, public

log = logging.getLogger(__name__)
router = make_router(tags=["health"])


@router.get("/healthz")
@public
async def healthz() -> dict[str, str]:
    """The process is up (no dependency is checked)."""
    return {"status": "ok"}


@router.get("/readyz")
@public
async def readyz(request: Request) -> Response:
    """The database, the queue and the blob store answer; 503 naming what does not."""
    state = request.app.state
    session = request.state.db
    # A signed-in caller's request already holds a transaction (on SQLite, the write lock):
    # probe the database on it instead of waiting behind it on a second connection.
    database = session.execute(text("SELECT 1")) if session.in_transaction() else state.db.ping()
    checks = {
        "database": database,
        "queue": state.queue.ping(),
        "storage": state.store.ping(),
    }
    results = await asyncio.gather(
        *(asyncio.wait_for(check, timeout=5) for check in checks.values()), return_exceptions=True
    )
    report = {}
    for name, result in zip(checks, results, strict=True):
        if isinstance(result, BaseException):
            # Driver text stays in the log; the probe only needs to know what failed.
            log.warning("readiness check %s failed: %r", name, result)
            report[name] = "unavailable"
        else:
            report[name] = "ok"
    ok = all(value == "ok" for value in report.values())
    return JSONResponse(
        {"status": "ok" if ok else "unavailable", "checks": report}, status_code=200 if ok else 503
    )


@router.get("/metrics", response_class=PlainTextResponse)
@public
async def metrics(request: Request) -> Response:
    """Prometheus exposition of this process's metrics (restrict it at the proxy)."""
    return Response(generate_latest(request.app.state.metrics), media_type=CONTENT_TYPE_LATEST)
