"""Issue 10 faults, in process: while the database cannot be reached (PostgreSQL restarting)
a request is answered 503 `service_unavailable` with Retry-After — answered, not raised, so
the server keeps the connection and a proxy does not take the process for a dead one."""

from __future__ import annotations

import socket
from pathlib import Path

import httpx
import pytest

from tests.conftest import TEST_DATA_KEY, TEST_SECRET
from vexam.config import Environment, Settings
from vexam.main import create_app


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])  # nothing listens once the socket is closed


@pytest.mark.parametrize("path", ["/api/v1/me", "/"])
async def test_requests_get_503_while_the_database_refuses(
    tmp_path: Path, resources: dict[str, object], path: str
) -> None:
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        env=Environment.test,
        data_dir=tmp_path,
        database_url=f"postgresql+asyncpg://postgres@127.0.0.1:{_closed_port()}/vexam",
        queue_url=f"sqlite:///{tmp_path / 'queue.db'}",
        secret_key=TEST_SECRET,
        data_key=TEST_DATA_KEY,
        sms_sender="memory",
    )
    app = create_app(settings, resources=resources)
    async with app.router.lifespan_context(app):
        # raise_app_exceptions (the default): an exception reaching the server fails the test.
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            answer = await client.get(
                path, headers={"Authorization": "Bearer some-token", "Accept": "application/json"}
            )
    assert answer.status_code == 503, answer.text
    assert answer.json()["code"] == "service_unavailable"
    assert answer.headers["Retry-After"] == "2"
