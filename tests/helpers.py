"""Small flows many tests share."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any

import httpx
from sqlalchemy import event

from vexam.core.context import Ctx, Role

PASSWORD = "correct-horse-9"


async def send_code(
    client: httpx.AsyncClient, phone: str, purpose: str = "register", **headers: str
) -> httpx.Response:
    """Ask for an SMS code."""
    return await client.post(
        "/api/v1/auth/sms-codes", json={"phone": phone, "purpose": purpose}, headers=headers
    )


async def register(
    client: httpx.AsyncClient, inbox: Any, phone: str, password: str = PASSWORD, **headers: str
) -> dict[str, Any]:
    """Register `phone` through the API and return the token response."""
    sent = await send_code(client, phone, "register")
    assert sent.status_code == 202, sent.text
    code = await inbox.code_for(phone)
    response = await client.post(
        "/api/v1/auth/register",
        json={"phone": phone, "code": code, "password": password},
        headers=headers,
    )
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def bearer(token: str) -> dict[str, str]:
    """Authorization header for `token`."""
    return {"Authorization": f"Bearer {token}"}


@asynccontextmanager
async def app_ctx(app: Any, device_id: str = "tests") -> AsyncIterator[Ctx]:
    """A service context on `app` in a unit of work of its own (as the CLI gets one)."""
    async with app.state.db.unit_of_work() as session:
        yield Ctx(
            session=session,
            clock=app.state.clock,
            settings=app.state.settings,
            jobs=app.state.queue,
            device_id=device_id,
            store=app.state.store,
        )


async def staff(
    app: Any, client: httpx.AsyncClient, phone: str, role: str, school_id: int | None = None
) -> str:
    """Create a staff account directly (as `vexam user create` does); return its token."""
    from vexam.accounts import service as accounts

    async with app_ctx(app) as ctx:
        await accounts.create_user(ctx, phone, PASSWORD, role=Role(role), school_id=school_id)
    response = await client.post("/api/v1/auth/login", json={"phone": phone, "password": PASSWORD})
    assert response.status_code == 200, response.text
    token: str = response.json()["token"]
    return token


@contextmanager
def statements_sent(app: Any, words: int) -> Iterator[list[str]]:
    """The SQL statements `app` sends inside the block, each by its first `words` words."""
    sent: list[str] = []

    def seen(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        sent.append(" ".join(statement.split()[:words]))

    engine = app.state.db.engine.sync_engine
    event.listen(engine, "before_cursor_execute", seen)
    try:
        yield sent
    finally:
        event.remove(engine, "before_cursor_execute", seen)
