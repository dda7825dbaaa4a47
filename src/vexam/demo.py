"""The demo's data: a school, one account per role, a published exam with its roster.

Everything is made through the same services the API uses, so the audit log shows it. Safe
to run again: what exists is kept, and a demo exam whose window has passed moves forward, so
the demo always has an exam open for applications (its formal window next week) and one
whose formal window is open now.

The demo candidate `13900000005` certifies at /identity by typing the first person of
`DEMO_PEOPLE` (no card photo read: the page then asks for any ID-card photo and selfie, and the
support agent approves the manual review at /support/reviews).
The candidate `13900000006` is certified already (through a manual review the demo support
agent approved, with drawn placeholder photos) so applying and paying can be tried at once,
and has asked support one question (an open ticket in the agent's queue at /support/tickets).
"""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from pathlib import Path
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from PIL import Image, ImageDraw

from vexam.config import Environment, Settings
from vexam.core.clock import Clock, SystemClock
from vexam.core.context import Ctx, Principal, Role
from vexam.core.db import Database
from vexam.identity.idnumbers import check_character

if TYPE_CHECKING:
    from vexam.exams.schemas import ExamIn

DEMO_PASSWORD = "vexam-demo-2026"  # noqa: S105 - printed for people trying the demo
DEMO_SCHOOL = "demo-academy"
DEMO_EXAM = "piano-demo"
DEMO_OPEN_EXAM = "vocal-open-demo"
DEMO_ACCOUNTS = [
    ("13900000001", Role.operator, "平台管理员"),
    ("13900000002", Role.school_admin, "院校管理员"),
    ("13900000003", Role.reviewer, "评委"),
    ("13900000004", Role.support, "客服"),
    ("13900000005", Role.candidate, "考生"),
    ("13900000006", Role.candidate, "考生（已认证）"),
]
SAMPLE_ROSTER = "demo-roster.xlsx"


def demo_settings(data_dir: Path, base_url: str = "http://127.0.0.1:8000") -> Settings:
    """The demo's settings: development mode, SQLite, local files, SMS codes on the console."""
    return Settings(
        env=Environment.development,
        data_dir=data_dir,
        database_url="",
        storage_url="",
        queue_url="",
        sms_sender="console",
        base_url=base_url,
    )


def _id_number(first17: str) -> str:
    return first17 + check_character(first17)


@dataclass(frozen=True)
class Person:
    """One candidate of the demo roster (made-up people with valid made-up ID numbers)."""

    name: str
    id_number: str
    province: str
    candidate_number: str
    major: str


DEMO_PEOPLE = [
    Person("张小雨", _id_number("11010520080315002"), "北京", "27110105000101", "钢琴演奏"),
    Person("李明", _id_number("31010420071120003"), "上海", "27310104000102", "钢琴演奏"),
    Person("王芳", _id_number("44010620080102004"), "广东", "27440106000103", "声乐"),
    Person("陈思远", _id_number("51010720070818005"), "四川", "27510107000104", "作曲"),
]
# The candidate account each person belongs to in the demo (None: only on the roster).
CERTIFY_BY_HAND = DEMO_PEOPLE[0]
CERTIFIED_ALREADY = DEMO_PEOPLE[1]
CONSOLE = Principal(
    user_id=0, role=Role.operator, school_id=None, locale=None, session_id=0, masked_phone="demo"
)


def roster_rows(people: list[Person]) -> list[list[str]]:
    """Roster rows in the import's column order."""
    return [[p.name, p.id_number, p.province, p.candidate_number, p.major] for p in people]


ROSTER_HEADER = ["姓名", "身份证号", "高考省份", "考生号", "专业"]


def write_sample_roster(path: Path) -> None:
    """An Excel roster a school admin can import in the demo: the demo people, two more
    candidates, and one row whose ID number has a wrong check character (to fix)."""
    from openpyxl import Workbook

    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.append(ROSTER_HEADER)
    for row in roster_rows(DEMO_PEOPLE):
        sheet.append(row)
    sheet.append(["赵一鸣", _id_number("32010220080909006"), "江苏", "27320102000105", "钢琴演奏"])
    good = _id_number("37010220080606007")
    wrong = good[:17] + ("0" if good[17] != "0" else "1")
    sheet.append(["孙婷", wrong, "山东", "27370102000106", "声乐"])
    book.save(path)


def _drawn_photo(label: str) -> bytes:
    """A plain placeholder picture (the demo has no real card or face to show)."""
    image = Image.new("RGB", (640, 400), (236, 240, 245))
    draw = ImageDraw.Draw(image)
    draw.rectangle((20, 20, 620, 380), outline=(120, 130, 140), width=4)
    draw.text((40, 40), f"DEMO {label}", fill=(60, 60, 60))
    out = io.BytesIO()
    image.save(out, "JPEG", quality=85)
    return out.getvalue()


def demo_window(now: datetime, timezone: str) -> tuple[datetime, datetime]:
    """A formal window in the coming week: opens in 7 days at 09:00, ends 2 days later 18:00."""
    local = now.astimezone(ZoneInfo(timezone)).date()
    zone = ZoneInfo(timezone)
    starts = datetime.combine(local + timedelta(days=7), time(9, 0), zone)
    ends = datetime.combine(local + timedelta(days=9), time(18, 0), zone)
    return starts, ends


def open_window(now: datetime, timezone: str) -> tuple[datetime, datetime]:
    """A formal window open now: from 00:00 today to 23:59 in 7 days (the school's zone)."""
    local = now.astimezone(ZoneInfo(timezone)).date()
    zone = ZoneInfo(timezone)
    starts = datetime.combine(local, time(0, 0), zone)
    ends = datetime.combine(local + timedelta(days=7), time(23, 59), zone)
    return starts, ends


@asynccontextmanager
async def _ctx(
    db: Database, settings: Settings, clock: Clock, actor: Principal | None = None
) -> AsyncIterator[Ctx]:
    from vexam.main import build_queue, build_resources, build_store

    async with db.unit_of_work() as session:
        yield Ctx(
            session=session,
            clock=clock,
            settings=settings,
            jobs=build_queue(settings),
            actor=actor,
            device_id="demo",
            store=build_store(settings),
            extra=build_resources(settings),
        )


async def seed(settings: Settings, clock: Clock | None = None) -> None:
    """Create what the demo needs (once) and keep the demo exams open."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    db = Database.configured(settings)
    clock = clock or SystemClock()
    try:
        users = await _accounts(db, settings, clock)
        exam_ids = [await _exam(db, settings, clock, code) for code in DEMO_EXAMS]
        await _review(db, settings, clock, users["13900000003"], exam_ids)
        await _certify(db, settings, clock, users)
        await _ticket(db, settings, clock, users["13900000006"])
    finally:
        await db.dispose()
    sample = settings.data_dir / SAMPLE_ROSTER
    if not sample.exists():
        write_sample_roster(sample)


async def _accounts(db: Database, settings: Settings, clock: Clock) -> dict[str, Principal]:
    from vexam.accounts import service as accounts
    from vexam.schools import service as schools

    out: dict[str, Principal] = {}
    async with _ctx(db, settings, clock) as ctx:
        school = await schools.school_by_slug(ctx, DEMO_SCHOOL)
        if school is None:
            school = await schools.create_school(
                ctx, DEMO_SCHOOL, "示范艺术学院", name_en="Demo Academy of Arts"
            )
        for phone, role, label in DEMO_ACCOUNTS:
            user = await accounts.user_by_phone(ctx.session, phone)
            if user is None:
                staff_of_school = role in (Role.school_admin, Role.reviewer)
                user = await accounts.create_user(
                    ctx,
                    phone,
                    DEMO_PASSWORD,
                    role=role,
                    display_name=label,
                    school_id=school.id if staff_of_school else None,
                )
            out[phone] = Principal(
                user_id=user.id,
                role=role,
                school_id=user.school_id,
                locale=None,
                session_id=0,
                masked_phone=phone,
            )
    return out


def _piano(starts: datetime, ends: datetime) -> ExamIn:
    from vexam.exams import schemas

    return schemas.ExamIn(
        code=DEMO_EXAM,
        name="钢琴演奏（示范）",
        name_en="Piano performance (demo)",
        season=str(ends.year + (1 if ends.month >= 9 else 0)),
        formal_starts_at=starts,
        formal_ends_at=ends,
        fee_cents=18000,
        mock_limit=None,
        published=True,
        subjects=[
            schemas.SubjectIn(name="练习曲", name_en="Étude", attempts=2, max_seconds=300),
            schemas.SubjectIn(
                name="自选乐曲",
                name_en="Piece of your choice",
                attempts=3,
                max_seconds=600,
                prompt="请完整演奏一首自选乐曲，演奏前报出曲名。",
                face_check_seconds=30,
            ),
        ],
    )


def _vocal(starts: datetime, ends: datetime) -> ExamIn:
    from vexam.exams import schemas

    return schemas.ExamIn(
        code=DEMO_OPEN_EXAM,
        name="声乐（示范，正在考试）",
        name_en="Vocal performance (demo, open now)",
        season=str(ends.year + (1 if ends.month >= 9 else 0)),
        formal_starts_at=starts,
        formal_ends_at=ends,
        fee_cents=0,
        mock_limit=None,
        published=True,
        subjects=[
            schemas.SubjectIn(
                name="视唱",
                name_en="Sight-singing",
                attempts=3,
                max_seconds=60,
                prompt="请先报出考生编号的后四位，再演唱一段音阶。",
                face_check_seconds=20,
            ),
            schemas.SubjectIn(
                name="自选歌曲",
                name_en="Song of your choice",
                attempts=3,
                max_seconds=90,
                prompt="请演唱一首自选歌曲的第一段。",
                face_check_seconds=20,
            ),
        ],
    )


# The demo's exams: code → (window, body). The first opens for applications and the mock
# exam with its formal window next week; the second's formal window is open now, so the
# whole candidate journey (record, submit, upload, verified) can be tried at once.
Window = Callable[[datetime, str], tuple[datetime, datetime]]
DEMO_EXAMS: dict[str, tuple[Window, Callable[[datetime, datetime], ExamIn]]] = {
    DEMO_EXAM: (demo_window, _piano),
    DEMO_OPEN_EXAM: (open_window, _vocal),
}


async def _exam(db: Database, settings: Settings, clock: Clock, code: str) -> int:
    from vexam.exams import service as exams
    from vexam.schools import roster
    from vexam.schools import service as schools

    window, make_body = DEMO_EXAMS[code]
    async with _ctx(db, settings, clock, CONSOLE) as ctx:
        school = await schools.school_by_slug(ctx, DEMO_SCHOOL)
        assert school is not None
        found = [e for e in await exams.list_exams(ctx, CONSOLE, school.id) if e.code == code]
        starts, ends = window(ctx.now(), school.timezone)
        if found and found[0].formal_ends_at > ctx.now():
            return found[0].id
        body = make_body(starts, ends)
        if found:  # the window has passed: the demo exam moves forward
            exam_id = found[0].id
            await exams.update_exam(ctx, CONSOLE, exam_id, body)
            return exam_id
        exam = await exams.create_exam(ctx, CONSOLE, school.id, body)
        text = io.StringIO()
        writer = csv.writer(text)
        writer.writerow(ROSTER_HEADER)
        writer.writerows(roster_rows(DEMO_PEOPLE))
        data = io.BytesIO(text.getvalue().encode("utf-8"))
        preview = await roster.preview(ctx, CONSOLE, exam.id, data, "demo-roster.csv")
        await roster.commit(ctx, CONSOLE, exam.id, preview.id)
        return exam.id


async def _review(
    db: Database, settings: Settings, clock: Clock, reviewer: Principal, exam_ids: list[int]
) -> None:
    """Assign the demo reviewer to every subject of the demo exams, one score per submission
    (once: an exam that has assignments is left as the school set it)."""
    from vexam.exams import service as exams
    from vexam.review import schemas as review_schemas
    from vexam.review import service as review

    async with _ctx(db, settings, clock, CONSOLE) as ctx:
        for exam_id in exam_ids:
            if await review.list_assignments(ctx, CONSOLE, exam_id):
                continue
            await review.update_settings(
                ctx, CONSOLE, exam_id, review_schemas.SettingsIn(reviewers_per_submission=1)
            )
            for subject in await exams.subjects_of(ctx, exam_id):
                await review.assign(
                    ctx,
                    CONSOLE,
                    exam_id,
                    review_schemas.AssignmentIn(
                        reviewer_id=reviewer.user_id, subject_id=subject.id
                    ),
                )


async def _certify(
    db: Database, settings: Settings, clock: Clock, users: dict[str, Principal]
) -> None:
    """Certify 13900000006 as `CERTIFIED_ALREADY` through a manual review, once."""
    from vexam.identity import service

    candidate = users["13900000006"]
    async with _ctx(db, settings, clock, candidate) as ctx:
        if await service.identity_of(ctx, candidate.user_id) is not None:
            return
    await certify_by_review(
        db,
        settings,
        clock,
        candidate,
        users["13900000004"],
        CERTIFIED_ALREADY,
        address="上海市徐汇区示范路1号",
        reason="示范数据：照片与自拍一致",
    )


async def certify_by_review(
    db: Database,
    settings: Settings,
    clock: Clock,
    candidate: Principal,
    agent: Principal,
    person: Person,
    *,
    address: str,
    reason: str,
) -> None:
    """Certify `candidate` as `person` the way a typed certification ends: the details typed,
    drawn card and selfie photos sent for a manual review, and `agent` approving it."""
    from vexam.identity import decisions, schemas, service, verification

    async with _ctx(db, settings, clock, candidate) as ctx:
        await service.submit(
            ctx,
            candidate,
            schemas.CertificationIn(
                identity_type=schemas.IdentityType.gaokao,
                document_type=schemas.DocumentType.resident_id,
                name=person.name,
                id_number=person.id_number,
                address=address,
            ),
        )
        review = await verification.request_review(
            ctx, candidate, _drawn_photo("ID card"), _drawn_photo("selfie")
        )
    async with _ctx(db, settings, clock, agent) as ctx:
        await decisions.decide_review(
            ctx, agent, review.id, schemas.DecisionIn(decision="approve", reason=reason)
        )


async def _ticket(db: Database, settings: Settings, clock: Clock, candidate: Principal) -> None:
    """One open question of 13900000006 for the support agent's queue, once."""
    from vexam.support import schemas, service

    async with _ctx(db, settings, clock, candidate) as ctx:
        if await service.my_tickets(ctx, candidate):
            return
        question = schemas.TicketIn(
            topic="upload",
            subject="上传很慢怎么办？",
            body="家里网络不太稳定，正式考试的视频可以晚点再上传吗？（示范数据）",
        )
        await service.open_ticket(ctx, candidate, question)
