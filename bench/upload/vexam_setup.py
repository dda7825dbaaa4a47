"""A fresh vexam database and data folder with one submission per bench file, prepared
through the services the way tests/uploads do it (school, certified candidate, exam sitting,
recording, submission receipt declaring the file's size and SHA-256)."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import update
from tests.conftest import TEST_DATA_KEY, TEST_SECRET, Sms
from tests.exams.test_exam_setup import new_school
from tests.helpers import app_ctx, bearer, staff
from tests.uploads.conftest import submitted_with

from vexam.accounts.models import AuthSession
from vexam.accounts.sms import MemorySmsSender
from vexam.config import Environment, Settings
from vexam.core.clock import FrozenClock
from vexam.core.db import Database
from vexam.exams.models import Exam
from vexam.exams.payments import SandboxProvider
from vexam.identity.engines import IdentityEngines
from vexam.identity.registers import FormatOnlyRegister
from vexam.main import create_app
from vexam.migrate import upgrade


@dataclass
class Slot:
    """A submission waiting for the upload of one bench file."""

    headers: dict[str, str]  # the candidate's auth and device headers
    submission_id: int


def settings_for(workdir: Path, database_url: str) -> Settings:
    """The settings the prepared database and the served app share."""
    return Settings(
        env=Environment.test,
        data_dir=workdir / "data",
        database_url=database_url,
        queue_url=f"sqlite:///{workdir / 'queue.db'}",
        queue_name="vexam-bench-upload",
        storage_url="",
        secret_key=TEST_SECRET,
        data_key=TEST_DATA_KEY,
        sms_sender="memory",
        argon2_time_cost=1,
        argon2_memory_kib=64,
    )


async def prepare(workdir: Path, database_url: str, files: list[tuple[str, int]]) -> list[Slot]:
    """Migrate the database and make one submission per (sha256 hex, size) in `files`."""
    db = Database(database_url)
    await upgrade(db)
    await db.dispose()
    settings = settings_for(workdir, database_url)
    sms = MemorySmsSender()
    resources: dict[str, object] = {
        "sms_sender": sms,
        "id_register": FormatOnlyRegister(),
        "identity_engines": IdentityEngines(),
        "payment_provider": SandboxProvider(settings.secret_key),
    }
    app: Any = create_app(settings, clock=FrozenClock(), resources=resources)
    slots: list[Slot] = []
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, client=("10.9.9.9", 40000))
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            inbox = Sms(app, sms)

            def new_phone() -> str:
                return f"139{secrets.randbelow(10**8):08d}"

            school_id = await new_school(app)
            world = {
                "school_id": school_id,
                "admin": bearer(await staff(app, client, new_phone(), "school_admin", school_id)),
                "agent": bearer(await staff(app, client, new_phone(), "support")),
            }
            for number, (sha256, size) in enumerate(files):
                # Each candidate from its own address: SMS codes are rate-limited per address.
                address = (f"10.{number // 250 % 250}.{number % 250}.7", 40000)
                alone = httpx.ASGITransport(app=app, client=address)
                async with httpx.AsyncClient(transport=alone, base_url="http://testserver") as own:
                    sub = await submitted_with(
                        app, own, inbox, new_phone, world, b"", sha256=sha256, size=size
                    )
                slots.append(Slot(sub.who, sub.submission_id))
        async with app_ctx(app) as ctx:
            # The server runs on the real clock, the preparation on a frozen one.
            await ctx.session.execute(update(Exam).values(upload_grace_minutes=10**7))
            later = datetime.now(UTC) + timedelta(days=30)
            await ctx.session.execute(update(AuthSession).values(expires_at=later))
        await app.state.queue.drain()
    return slots
