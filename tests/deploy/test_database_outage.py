"""Issue 10 faults, in process: while the database cannot be reached (PostgreSQL restarting)
a request is answered 503 `service_unavailable` with Retry-After — answered, not raised, so
the server keeps the connection and a proxy does not take the process for a dead one. That
holds whether nothing listens on the database's port or PostgreSQL answers that it is
starting up (replaying its log after a crash) or shutting down."""

from __future__ import annotations

import asyncio
import socket
import struct
from collections.abc import AsyncIterator
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


def _error_response(sqlstate: str, message: str) -> bytes:
    """A PostgreSQL ErrorResponse message (protocol 3.0) with severity FATAL."""
    fields = b"".join(
        kind + text.encode() + b"\0"
        for kind, text in ((b"S", "FATAL"), (b"V", "FATAL"), (b"C", sqlstate), (b"M", message))
    )
    body = fields + b"\0"
    return b"E" + struct.pack("!I", len(body) + 4) + body


@pytest.fixture
async def refusing_postgres(request: pytest.FixtureRequest) -> AsyncIterator[int]:
    """A port where a 'PostgreSQL server' refuses every session with the SQLSTATE and
    message of `request.param`, as a real one does while it recovers or shuts down."""
    sqlstate, message = request.param

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                (length,) = struct.unpack("!I", await reader.readexactly(4))
                payload = await reader.readexactly(length - 4)
                if payload[:4] == struct.pack("!I", 80877103):  # SSLRequest: no TLS here
                    writer.write(b"N")
                    continue
                writer.write(_error_response(sqlstate, message))  # the startup message
                await writer.drain()
                return
        except (asyncio.IncompleteReadError, ConnectionError):
            return
        finally:
            writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    try:
        yield int(server.sockets[0].getsockname()[1])
    finally:
        server.close()


async def _ask(
    tmp_path: Path, resources: dict[str, object], port: int, path: str
) -> httpx.Response:
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        env=Environment.test,
        data_dir=tmp_path,
        database_url=f"postgresql+asyncpg://postgres@127.0.0.1:{port}/vexam",
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
            return await client.get(
                path, headers={"Authorization": "Bearer some-token", "Accept": "application/json"}
            )


def _assert_retry_later(answer: httpx.Response) -> None:
    assert answer.status_code == 503, answer.text
    assert answer.json()["code"] == "service_unavailable"
    assert answer.headers["Retry-After"] == "2"


@pytest.mark.parametrize("path", ["/api/v1/me", "/"])
async def test_requests_get_503_while_the_database_refuses(
    tmp_path: Path, resources: dict[str, object], path: str
) -> None:
    _assert_retry_later(await _ask(tmp_path, resources, _closed_port(), path))


@pytest.mark.parametrize(
    "refusing_postgres",
    [
        ("57P03", "the database system is starting up"),
        ("57P01", "terminating connection due to administrator command"),
    ],
    indirect=True,
    ids=["starting-up", "shutting-down"],
)
async def test_requests_get_503_while_the_database_restarts(
    tmp_path: Path, resources: dict[str, object], refusing_postgres: int
) -> None:
    _assert_retry_later(await _ask(tmp_path, resources, refusing_postgres, "/api/v1/me"))
