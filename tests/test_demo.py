"""The demo's data: made through the services, safe to seed again, its exam kept open."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

from openpyxl import load_workbook
from sqlalchemy import func, select

from vexam.accounts.models import User
from vexam.config import Settings
from vexam.core.clock import FrozenClock
from vexam.core.db import Database
from vexam.demo import (
    CERTIFIED_ALREADY,
    DEMO_EXAM,
    DEMO_OPEN_EXAM,
    DEMO_PEOPLE,
    SAMPLE_ROSTER,
    demo_settings,
    seed,
)
from vexam.exams.models import Exam
from vexam.identity.idnumbers import IdNumberError, parse_id_number
from vexam.identity.models import Identity, ManualReview
from vexam.migrate import upgrade
from vexam.review.models import ReviewAssignment
from vexam.schools.models import RosterRow
from vexam.support.models import SupportTicket, SupportTicketMessage


async def counts(settings: Settings) -> tuple[int, int, list[str], dict[str, Exam]]:
    db = Database(settings.effective_database_url)
    try:
        async with db.unit_of_work() as session:
            exams = list((await session.execute(select(Exam))).scalars())
            rows = await session.scalar(select(func.count()).select_from(RosterRow))
            statuses = list((await session.execute(select(Identity.status))).scalars())
            return len(exams), int(rows or 0), statuses, {exam.code: exam for exam in exams}
    finally:
        await db.dispose()


async def assignments(settings: Settings) -> int:
    db = Database(settings.effective_database_url)
    try:
        async with db.unit_of_work() as session:
            found = await session.scalar(select(func.count()).select_from(ReviewAssignment))
            return int(found or 0)
    finally:
        await db.dispose()


async def tickets(settings: Settings) -> list[str]:
    db = Database(settings.effective_database_url)
    try:
        async with db.unit_of_work() as session:
            return list((await session.execute(select(SupportTicket.state))).scalars())
    finally:
        await db.dispose()


async def read_texts(settings: Settings) -> list[str]:
    """What people read of the seeded data: names, the ticket, the review's decision."""
    db = Database(settings.effective_database_url)
    try:
        async with db.unit_of_work() as session:
            found = [
                *(await session.execute(select(User.display_name))).scalars(),
                *(await session.execute(select(SupportTicket.subject))).scalars(),
                *(await session.execute(select(SupportTicketMessage.body))).scalars(),
                *(await session.execute(select(ManualReview.decision_reason))).scalars(),
            ]
            return [text for text in found if text]
    finally:
        await db.dispose()


async def test_seed_twice_and_the_exam_stays_open(tmp_path: Path) -> None:
    """Seeding again adds nothing; a passed window moves forward: the piano exam's to the
    coming week, the vocal exam's to open now."""
    settings = demo_settings(tmp_path / "data")
    settings.data_dir.mkdir(parents=True)
    db = Database(settings.effective_database_url)
    await upgrade(db)
    await db.dispose()
    clock = FrozenClock()
    await seed(settings, clock)
    await seed(settings, clock)
    exams, rows, statuses, by_code = await counts(settings)
    assert (exams, rows, statuses) == (2, 2 * len(DEMO_PEOPLE), ["certified"])
    exam, open_now = by_code[DEMO_EXAM], by_code[DEMO_OPEN_EXAM]
    assert exam.published and exam.fee_cents == 18000
    assert exam.formal_starts_at > clock.now()
    assert open_now.published and open_now.fee_cents == 0
    assert open_now.formal_starts_at <= clock.now() < open_now.formal_ends_at
    assert CERTIFIED_ALREADY in DEMO_PEOPLE

    assert await assignments(settings) == 4  # the demo reviewer: both subjects of both exams
    assert await tickets(settings) == ["open"]  # 13900000006's question, asked once
    texts = await read_texts(settings)  # Chinese only, like the demo's default pages
    assert len(texts) >= 9 and not [text for text in texts if re.search("[A-Za-z]", text)]

    clock.advance(timedelta(days=30))
    await seed(settings, clock)
    exams, rows, _, moved = await counts(settings)
    assert (exams, rows) == (2, 2 * len(DEMO_PEOPLE))
    assert moved[DEMO_EXAM].formal_starts_at > clock.now()
    assert moved[DEMO_OPEN_EXAM].formal_starts_at <= clock.now()
    assert clock.now() < moved[DEMO_OPEN_EXAM].formal_ends_at

    sheet = load_workbook(tmp_path / "data" / SAMPLE_ROSTER).active
    assert sheet is not None
    bad = []
    for row in list(sheet.iter_rows(values_only=True))[1:]:
        try:
            parse_id_number(str(row[1]), today=clock.now().date())
        except IdNumberError as exc:
            bad.append((row[0], exc.reason.value))
    assert bad == [("孙婷", "check_character")]
