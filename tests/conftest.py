"""Shared fixtures: a fresh database per run (SQLite, or PostgreSQL when configured),
a real job queue (SQLite file, or Redis when configured), a frozen clock, an app per test.

Environment:
  VEXAM_TEST_DATABASE_URL  postgresql+asyncpg://user@host:port/name → a fresh database
                           `<name>_<random>` is created for the run and dropped after it.
                           Unset: an SQLite file in a temporary folder.
  VEXAM_TEST_QUEUE_URL     redis://host:port/db → the Redis queue (a unique queue name per
                           test). Unset: an SQLite queue file per test.
"""

from __future__ import annotations

import os
import re
import secrets
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from vexam.accounts.sms import MemorySmsSender
from vexam.config import Environment, Settings
from vexam.core.clock import FrozenClock
from vexam.core.db import Database
from vexam.exams.payments import SandboxProvider
from vexam.identity.engines import IdentityEngines
from vexam.identity.registers import FormatOnlyRegister
from vexam.main import create_app
from vexam.migrate import upgrade

TEST_SECRET = "test-secret-key-0123456789abcdef0123456789"
TEST_DATA_KEY = "test-data-key-0123456789abcdef0123456789ab"
CODE_RE = re.compile(r"(\d{6})")


def _postgres_admin_url(url: str) -> tuple[str, str]:
    base, _, name = url.rpartition("/")
    return f"{base}/postgres", name or "vexam_test"


@pytest.fixture(scope="session")
async def database_url(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[str]:
    """A migrated, empty database for this test run."""
    configured = os.environ.get("VEXAM_TEST_DATABASE_URL", "")
    if not configured:
        url = f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('db') / 'vexam.db'}"
        db = Database(url)
        await upgrade(db)
        await db.dispose()
        yield url
        return
    admin_url, name = _postgres_admin_url(configured)
    fresh = f"{name}_{secrets.token_hex(4)}"
    admin = create_async_engine(admin_url, isolation_level="AUTOCOMMIT")
    async with admin.connect() as connection:
        await connection.execute(text(f'CREATE DATABASE "{fresh}"'))
    url = configured.rpartition("/")[0] + f"/{fresh}"
    db = Database(url)
    await upgrade(db)
    await db.dispose()
    try:
        yield url
    finally:
        async with admin.connect() as connection:
            await connection.execute(text(f'DROP DATABASE IF EXISTS "{fresh}" WITH (FORCE)'))
        await admin.dispose()


@pytest.fixture
def is_postgres(database_url: str) -> bool:
    """Whether this run is on PostgreSQL."""
    return database_url.startswith("postgresql")


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    """Settings of one test: its own queue and blob folder, fast password hashing."""
    queue_url = os.environ.get("VEXAM_TEST_QUEUE_URL", "")
    return Settings(
        env=Environment.test,
        data_dir=tmp_path / "data",
        database_url=database_url,
        queue_url=queue_url or f"sqlite:///{tmp_path / 'queue.db'}",
        queue_name=f"vexam-test-{uuid.uuid4().hex[:12]}",
        storage_url="",
        secret_key=TEST_SECRET,
        data_key=TEST_DATA_KEY,
        sms_sender="memory",
        argon2_time_cost=1,
        argon2_memory_kib=64,
    )


@pytest.fixture
def clock() -> FrozenClock:
    """The test's clock: moves only when the test moves it."""
    return FrozenClock()


@pytest.fixture
def sms() -> MemorySmsSender:
    """Messages the app 'sent' (after the queue ran the job)."""
    return MemorySmsSender()


@pytest.fixture(scope="session")
def identity_engines() -> IdentityEngines:
    """One face engine and ID-card reader for the whole run (models load once)."""
    return IdentityEngines()


@pytest.fixture
def resources(
    sms: MemorySmsSender, identity_engines: IdentityEngines, settings: Settings
) -> dict[str, object]:
    """The pluggable services of a test app: memory SMS, format-only register, shared engines,
    sandbox payments."""
    return {
        "sms_sender": sms,
        "id_register": FormatOnlyRegister(),
        "identity_engines": identity_engines,
        "payment_provider": SandboxProvider(settings.secret_key),
    }


@pytest.fixture
async def app(
    settings: Settings, clock: FrozenClock, resources: dict[str, object]
) -> AsyncIterator[object]:
    """A running application (lifespan entered) for one test."""
    application = create_app(settings, clock=clock, resources=resources)
    async with application.router.lifespan_context(application):
        yield application
        # Every test leaves the queue empty: jobs it enqueued must have been run or dropped.
        await application.state.queue.drain()


def _random_ip() -> str:
    return f"10.{secrets.randbelow(250)}.{secrets.randbelow(250)}.{secrets.randbelow(250) + 1}"


@pytest.fixture
async def client(app: object) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client talking to the app in-process, from its own client address."""
    transport = httpx.ASGITransport(app=app, client=(_random_ip(), 40000))  # type: ignore[arg-type]
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        yield http


_phones: Iterator[int] = iter(range(10**8))


@pytest.fixture
def new_phone() -> object:
    """Return a function giving a phone number no other test uses in this run."""
    prefix = f"13{secrets.randbelow(10)}"

    def _make() -> str:
        return f"{prefix}{secrets.randbelow(10**8):08d}"

    return _make


class Sms:
    """Reads codes the app sent, running queued jobs first."""

    def __init__(self, app: object, sender: MemorySmsSender) -> None:
        self.app = app
        self.sender = sender

    async def code_for(self, phone: str) -> str:
        """The code in the newest message to `phone` (runs pending jobs first)."""
        await self.app.state.queue.drain()  # type: ignore[attr-defined]
        for to, message in reversed(self.sender.outbox):
            if to == phone:
                match = CODE_RE.search(message)
                assert match, message
                return match.group(1)
        raise AssertionError(f"no SMS was sent to {phone}")


@pytest.fixture
def inbox(app: object, sms: MemorySmsSender) -> Sms:
    """The SMS inbox of the test's phones."""
    return Sms(app, sms)
