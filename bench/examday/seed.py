"""Exam-day seeding: a school, one published exam whose formal window is open now, and K
certified candidates with paid applications and a formal sitting whose face verification
passed on the candidate's phone (as after the exam-time face check), each signed in.

Everything goes through the services (create_user, identity submit + certify, apply,
confirm, order, sandbox payment, session, sitting start) in one unit of work per candidate,
a few candidates at a time; the database is migrated first. The candidates are written to a
JSON file that the load generator reads.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import update

from vexam.accounts import service as accounts
from vexam.config import Environment, Settings
from vexam.core.clock import SystemClock
from vexam.core.context import Ctx, Principal, Role
from vexam.core.crypto import blind_index, encrypt_text
from vexam.core.db import Database
from vexam.demo import CONSOLE
from vexam.exams import enrollment, sittings
from vexam.exams import schemas as exam_schemas
from vexam.exams import service as exams
from vexam.exams.models import Sitting
from vexam.identity import schemas as identity_schemas
from vexam.identity import service as identity
from vexam.identity.idnumbers import check_character, mask_id_number
from vexam.main import build_queue, build_resources, build_store
from vexam.migrate import upgrade
from vexam.schools import service as schools
from vexam.schools.models import RosterRow

SECRET = "examday-bench-secret-key-0123456789abcdef"
DATA_KEY = "ZXhhbWRheS1iZW5jaC1kYXRhLWtleS0zMmJ5dGVzISE="
PASSWORD = "examday-bench-9"
PARALLEL = 4


@dataclass
class Candidate:
    """What the load generator needs of one seeded candidate."""

    token: str
    device: str
    exam_id: int
    sitting_id: int
    subject_ids: list[int]


def settings_for(data_dir: Path, database_url: str, queue_url: str) -> Settings:
    """The settings the seeding and the served processes share."""
    return Settings(
        env=Environment.test,
        data_dir=data_dir,
        database_url=database_url,
        queue_url=queue_url,
        queue_name="vexam-examday",
        storage_url="",
        secret_key=SECRET,
        data_key=DATA_KEY,
        sms_sender="memory",
        argon2_time_cost=1,
        argon2_memory_kib=64,
    )


def id_number(n: int) -> str:
    """The n-th of 14,000 distinct valid resident ID numbers."""
    seq = (n // 28) % 500 * 2
    first17 = f"110105200802{n % 28 + 1:02d}{seq:03d}"
    return first17 + check_character(first17)


def _exam_body(now: datetime) -> exam_schemas.ExamIn:
    """A paid exam open now with two subjects; a left page is flagged, not voided."""
    subject = {"attempts": 3, "max_seconds": 600, "orientation": "landscape"}
    return exam_schemas.ExamIn(
        code=f"examday-{now:%H%M%S%f}",
        name="考试日压测",
        season="2027",
        formal_starts_at=now - timedelta(hours=1),
        formal_ends_at=now + timedelta(days=3),
        fee_cents=100,
        anti_cheat={"left_page": "flag"},
        published=True,
        subjects=[
            exam_schemas.SubjectIn(name="练习曲", face_check_seconds=30, **subject),
            exam_schemas.SubjectIn(name="乐曲", face_check_seconds=30, **subject),
        ],
    )


class Seeder:
    """Units of work on one database with the bench's settings."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.db = Database(settings.effective_database_url)
        self.clock = SystemClock()
        self.queue = build_queue(settings)
        self.store = build_store(settings)
        self.resources = build_resources(settings)

    def ctx(self, session: object, actor: Principal | None, device: str) -> Ctx:
        return Ctx(
            session=session,  # type: ignore[arg-type]
            clock=self.clock,
            settings=self.settings,
            jobs=self.queue,
            actor=actor,
            device_id=device,
            store=self.store,
            extra=self.resources,
        )

    async def exam(self) -> tuple[int, int, list[int]]:
        """(school id, exam id, subject ids) of a fresh open exam."""
        async with self.db.unit_of_work() as session:
            ctx = self.ctx(session, CONSOLE, "seed")
            now = ctx.now()
            school = await schools.create_school(ctx, f"examday-{now:%H%M%S%f}", "压测学院")
            exam = await exams.create_exam(ctx, CONSOLE, school.id, _exam_body(now))
            subjects = [s.id for s in await exams.subjects_of(ctx, exam.id)]
            return school.id, exam.id, subjects

    async def candidate(
        self, n: int, school_id: int, exam_id: int, subjects: list[int]
    ) -> Candidate:
        """Candidate number n: certified, enrolled, paid, signed in, sitting ready."""
        device = f"examday-phone-{n:06d}"
        key = self.settings.data_key
        number = id_number(n)
        async with self.db.unit_of_work() as session:
            ctx = self.ctx(session, None, device)
            now = ctx.now()
            user = await accounts.create_user(ctx, f"138{n:08d}", PASSWORD)
            who = Principal(user.id, Role.candidate, None, None, 0, f"138****{n % 10000:04d}")
            ctx.actor = who
            await identity.submit(
                ctx,
                who,
                identity_schemas.CertificationIn(
                    identity_type=identity_schemas.IdentityType.gaokao,
                    document_type=identity_schemas.DocumentType.resident_id,
                    name="张三",
                    id_number=number,
                ),
            )
            held = await identity.identity_of(ctx, user.id)
            assert held is not None
            await identity.certify(
                ctx, held, via="manual_review", from_status=identity.Status(held.status)
            )
            session.add(
                RosterRow(
                    school_id=school_id,
                    exam_id=exam_id,
                    name="张三",
                    id_number_enc=encrypt_text(key, number, context="identity.id_number"),
                    id_number_index=blind_index(key, number, kind="id_number"),
                    id_number_masked=mask_id_number(number),
                    province="北京",
                    candidate_number=f"27110101{n:06d}",
                    major="钢琴",
                    created_at=now,
                    updated_at=now,
                )
            )
            await session.flush()
            await enrollment.apply(ctx, who, exam_id, exam_schemas.ApplyIn(province="11"))
            await enrollment.confirm(ctx, who, exam_id)
            order = await enrollment.create_order(ctx, who, exam_id)
            await enrollment.sandbox_pay(ctx, who, order.id)
            signed = await accounts._start_session(ctx, user, method="password")
            loaded = await sittings.start(ctx, who, exam_id, exam_schemas.SittingIn())
            # As after a passed exam-time face verification on this phone (real faces cost
            # ~0.2 s of CPU each: not part of this load).
            await session.execute(
                update(Sitting)
                .where(Sitting.id == loaded.sitting.id)
                .values(face_state="passed", face_device_id=device, face_check_required=False)
            )
            return Candidate(signed.token, device, exam_id, loaded.sitting.id, subjects)

    async def close(self) -> None:
        await self.db.dispose()


async def seed(settings: Settings, count: int) -> list[Candidate]:
    """Migrate, then seed `count` candidates of one open exam."""
    db = Database(settings.effective_database_url)
    await upgrade(db)
    await db.dispose()
    seeder = Seeder(settings)
    try:
        school_id, exam_id, subjects = await seeder.exam()
        found: list[Candidate] = []
        for start in range(0, count, PARALLEL):
            batch = range(start, min(count, start + PARALLEL))
            found += await asyncio.gather(
                *(seeder.candidate(n, school_id, exam_id, subjects) for n in batch)
            )
    finally:
        await seeder.close()
    return found


def write_candidates(path: Path, candidates: list[Candidate]) -> None:
    """Write the seeded candidates for the load generator (JSON)."""
    path.write_text(json.dumps([asdict(c) for c in candidates]))


def load_candidates(path: Path) -> list[Candidate]:
    """The candidates `seed` wrote."""
    return [Candidate(**row) for row in json.loads(path.read_text())]


def stamp() -> str:
    """A short UTC time stamp for names."""
    return datetime.now(UTC).strftime("%H%M%S")
