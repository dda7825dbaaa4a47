"""SPEC §4–§6 the school console's exam dashboard: counts (enrolled, paid, mock, per subject
submitted / uploaded / verified / flagged / refused), the charts' buckets, the lists of
candidates who still need something, and who may see the page."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import event

from tests.exams.test_exam_setup import new_school
from tests.helpers import app_ctx, bearer, staff
from vexam.accounts.models import User
from vexam.core.context import Ctx, Principal, Role
from vexam.exams import dashboard as counts
from vexam.exams import schemas
from vexam.exams import service as exams
from vexam.exams.models import (
    Application,
    Exam,
    PaymentOrder,
    Recording,
    Sitting,
    Submission,
    Upload,
)
from vexam.schools import dashboard
from vexam.schools.models import RosterRow

pytestmark = pytest.mark.usefixtures("app")
HTML = {"Accept": "text/html"}
# 2027-01-10 09:00 to 2027-01-12 18:00 in Asia/Shanghai, and 24 h of upload grace.
STARTS = datetime(2027, 1, 10, 1, 0, tzinfo=UTC)
ENDS = datetime(2027, 1, 12, 10, 0, tzinfo=UTC)


@dataclass
class Candidate:
    """What a candidate did, for `seed`: enrolled, paid, a mock sitting, and per subject
    position (upload state, media, submitted at)."""

    name: str
    enrolled: bool = True
    paid: bool = False
    mock: bool = False
    formal: dict[int, tuple[str, dict[str, Any], datetime]] = field(default_factory=dict)


async def dashboard_exam(ctx: Ctx, school_id: int, fee_cents: int = 18000) -> Exam:
    """A published exam of the school with two subjects over the window above."""
    body = schemas.ExamIn.model_validate(
        {
            "code": f"dash-{secrets.token_hex(3)}",
            "name": "钢琴演奏",
            "name_en": "Piano performance",
            "season": "2027",
            "formal_starts_at": STARTS.isoformat(),
            "formal_ends_at": ENDS.isoformat(),
            "fee_cents": fee_cents,
            "published": True,
            "subjects": [
                {"name": "练习曲", "name_en": "Etude", "attempts": 2, "max_seconds": 300},
                {"name": "乐曲", "name_en": "Piece", "attempts": 2, "max_seconds": 300},
            ],
        }
    )
    operator = Principal(0, Role.operator, None, None, 0, "")
    created = await exams.create_exam(ctx, operator, school_id, body)
    return await exams.get_exam(ctx, operator, created.id)


async def seed(ctx: Ctx, exam: Exam, people: list[Candidate]) -> dict[str, int]:
    """Roster rows, applications, orders, sittings, submissions and uploads as the flows
    leave them (the flows themselves are tested elsewhere); the roster row id by name."""
    now = ctx.now()
    subjects = await exams.subjects_of(ctx, exam.id)
    rows: dict[str, int] = {}
    for number, person in enumerate(people):
        user = User(
            phone=f"139{secrets.randbelow(10**8):08d}",
            password_hash="-",
            role="candidate",
            created_at=now,
            password_changed_at=now,
        )
        ctx.session.add(user)
        row = RosterRow(
            school_id=exam.school_id,
            exam_id=exam.id,
            name=person.name,
            id_number_enc="-",
            id_number_index=secrets.token_hex(16),
            id_number_masked=f"110101********{number:03d}X",
            province="北京",
            candidate_number=f"2711010100{number:04d}",
            created_at=now,
            updated_at=now,
        )
        ctx.session.add(row)
        await ctx.session.flush()
        rows[person.name] = row.id
        ctx.session.add(
            Application(
                user_id=user.id,
                exam_id=exam.id,
                status="enrolled" if person.enrolled else "matched",
                roster_row_id=row.id,
                name=person.name,
                province="北京",
                created_at=now,
                updated_at=now,
            )
        )
        if person.paid:
            ctx.session.add(
                PaymentOrder(
                    user_id=user.id,
                    exam_id=exam.id,
                    amount_cents=exam.fee_cents,
                    status="paid",
                    provider="sandbox",
                    paid_at=now,
                    created_at=now,
                    updated_at=now,
                )
            )
        modes = (["mock"] if person.mock else []) + (["formal"] if person.formal else [])
        for mode in modes:
            sitting = Sitting(
                user_id=user.id,
                exam_id=exam.id,
                school_id=exam.school_id,
                roster_row_id=row.id,
                mode=mode,
                number=1,
                reviewable=mode == "formal",
                state="open",
                face_state="passed",
                created_at=now,
                updated_at=now,
            )
            ctx.session.add(sitting)
            await ctx.session.flush()
            if mode == "mock":
                continue
            for position, (state, media, at) in person.formal.items():
                subject = subjects[position]
                recording = Recording(
                    sitting_id=sitting.id,
                    subject_id=subject.id,
                    attempt=1,
                    state="completed",
                    device_id="d",
                    orientation="landscape",
                    max_seconds=300,
                    started_at=at,
                    ends_by=at,
                    finished_at=at,
                    created_at=at,
                    updated_at=at,
                )
                ctx.session.add(recording)
                await ctx.session.flush()
                submission = Submission(
                    sitting_id=sitting.id,
                    subject_id=subject.id,
                    recording_id=recording.id,
                    sha256="0" * 64,
                    size_bytes=10,
                    upload_state=state,
                    reviewable=True,
                    device_id="d",
                    submitted_at=at,
                    created_at=at,
                )
                ctx.session.add(submission)
                await ctx.session.flush()
                if state == "pending":
                    continue
                done = at + timedelta(hours=2)
                ctx.session.add(
                    Upload(
                        id=secrets.token_hex(16),
                        submission_id=submission.id,
                        user_id=user.id,
                        length=10,
                        received=10,
                        state=state,
                        expires_at=done + timedelta(days=7),
                        media=media,
                        completed_at=None if state == "receiving" else done,
                        verified_at=done if state in ("verified", "invalid") else None,
                        created_at=at,
                        updated_at=done,
                    )
                )
    await ctx.session.flush()
    return rows


def at(hours: float) -> datetime:
    return STARTS + timedelta(hours=hours)


PEOPLE = [
    Candidate(
        "甲",
        paid=True,
        mock=True,
        formal={
            0: ("verified", {"ok": True, "flags": [{"kind": "no_face"}]}, at(0.5)),
            1: ("invalid", {"ok": False, "reason": "not_video"}, at(3.2)),
        },
    ),
    Candidate("乙", paid=True, mock=True, formal={0: ("received", {}, at(0.7))}),
    Candidate("丙", paid=True),
    Candidate("丁"),
    Candidate(
        "戊",
        paid=True,
        mock=True,
        formal={0: ("verified", {"ok": True, "audit": {"flags": []}}, at(26))},
    ),
    Candidate("己", enrolled=False),
]


async def test_counts_lists_and_series(app) -> None:
    """Grouped counts per exam and subject; each list names exactly who needs it."""
    async with app_ctx(app) as ctx:
        school_id = await new_school(app)
        exam = await dashboard_exam(ctx, school_id)
        rows = await seed(ctx, exam, PEOPLE)
        other = await dashboard_exam(ctx, school_id)
        await seed(ctx, other, [Candidate("庚", paid=True, mock=True)])

        seen = await counts.overview(ctx, exam)
        assert (seen.enrolled, seen.paid, seen.mock_taken, seen.fee_required) == (5, 4, 3, True)
        first, second = seen.subjects
        assert (first.submitted, first.uploaded, first.verified, first.flagged) == (3, 3, 2, 1)
        assert first.refused == 0
        assert (second.submitted, second.uploaded, second.verified, second.refused) == (1, 1, 0, 1)
        assert second.flagged == 0

        def names(found: list[counts.Need]) -> list[tuple[str, int | None]]:
            by_id = {row_id: name for name, row_id in rows.items()}
            position = {first.id: 0, second.id: 1}
            return [(by_id[n.roster_row_id], position.get(n.subject_id or 0)) for n in found]

        assert names(await counts.needs(ctx, exam, "unpaid")) == [("丁", None)]
        assert names(await counts.needs(ctx, exam, "no_mock")) == [("丙", None), ("丁", None)]
        missing = names(await counts.needs(ctx, exam, "not_submitted"))
        assert missing == [("乙", 1), ("丙", 0), ("丙", 1), ("丁", 0), ("丁", 1), ("戊", 1)]
        only_first = await counts.needs(ctx, exam, "not_submitted", first.id)
        assert names(only_first) == [("丙", 0), ("丁", 0)]
        waiting = await counts.needs(ctx, exam, "not_verified")
        assert names(waiting) == [("甲", 1), ("乙", 0)]
        assert [n.upload_state for n in waiting] == ["invalid", "received"]
        assert names(await counts.needs(ctx, exam, "refused")) == [("甲", 1)]

        listed, total = await dashboard.needs_page(ctx, exam, "not_submitted", None, 2, 4)
        assert total == 6 and len(listed) == 2
        assert listed[0].person is not None and listed[0].person.name == "丁"
        assert listed[0].person.id_number_masked.startswith("110101****")

        series = await counts.series(ctx, exam, "Asia/Shanghai")
        assert series.step == timedelta(hours=1)
        # From 09:00 on the 10th to the end of the grace period, 18:00 on the 13th.
        assert len(series.starts) == 81 and series.starts[0] == STARTS
        assert sum(series.submissions) == 4 and series.submissions[0] == 2
        assert series.submissions[3] == 1 and series.submissions[26] == 1
        # Uploads completed (the whole file arrived) 2 hours after each submission.
        assert sum(series.uploads) == 4 and series.uploads[2] == 2

        chart = dashboard.chart(series.starts, series.step, series.submissions, "Asia/Shanghai")
        assert chart.total == 4 and chart.top == 2 and len(chart.bars) == 81
        assert all(bar.x + bar.width <= chart.width for bar in chart.bars)
        assert 1 <= len(chart.ticks) <= 9
        assert chart.now_x is None
        now = dashboard.chart(series.starts, series.step, series.uploads, "UTC", at(10.5))
        assert now.now_x is not None and now.bars[10].x < now.now_x < now.bars[11].x

        free = await dashboard_exam(ctx, school_id, fee_cents=0)
        audited = {"ok": True, "audit": {"flags": [{"kind": "another_person"}]}}
        await seed(
            ctx,
            free,
            [
                Candidate("辛"),
                Candidate("壬", mock=True, formal={0: ("verified", audited, at(1))}),
                Candidate("癸", mock=True, formal={0: ("verified", {"flags": []}, at(1))}),
            ],
        )
        seen = await counts.overview(ctx, free)
        assert seen.fee_required is False and seen.enrolled == 3 and seen.paid == 0
        assert (seen.subjects[0].verified, seen.subjects[0].flagged) == (2, 1)
        assert await counts.needs(ctx, free, "unpaid") == []


async def test_long_window_counts_by_local_day(app) -> None:
    """A window of more than four days is drawn by the school's calendar day."""
    async with app_ctx(app) as ctx:
        exam = await dashboard_exam(ctx, await new_school(app))
        exam.formal_ends_at = STARTS + timedelta(days=9)
        starts, step = counts.buckets(exam, "Asia/Shanghai")
        assert step == timedelta(days=1)
        # Local midnight (16:00 UTC the day before), 10 days plus the grace period's day.
        assert starts[0] == datetime(2027, 1, 9, 16, 0, tzinfo=UTC)
        assert len(starts) == 11


async def test_page_for_its_school_only(app, client, new_phone) -> None:
    """The exam's school admin and operators see the dashboard (zh and en); another
    school's admin is told there is no such exam; a candidate is refused."""
    school_id = await new_school(app)
    async with app_ctx(app) as ctx:
        exam = await dashboard_exam(ctx, school_id)
        await seed(ctx, exam, PEOPLE)
        exam_id = exam.id
    admin = {**bearer(await staff(app, client, new_phone(), "school_admin", school_id)), **HTML}
    url = f"/school/exams/{exam_id}/dashboard"

    page = await client.get(url, headers=admin)
    assert page.status_code == 200, page.text
    assert 'data-testid="count-enrolled">5<' in page.text
    assert "<svg" in page.text and 'class="bar"' in page.text
    assert 'data-total="6" data-need="not_submitted"' in page.text
    assert "110101********003X" in page.text  # masked, from the roster
    assert "未提交" in page.text or "Not yet submitted" in page.text
    english = await client.get(url, headers={**admin, "Accept-Language": "en"})
    assert "Formal submissions" in english.text and "Not yet submitted" in english.text

    refused = await client.get(f"{url}?need=refused", headers=admin)
    assert 'data-total="1" data-need="refused"' in refused.text
    odd = await client.get(f"{url}?need=nonsense&subject=x&page=x", headers=admin)
    assert odd.status_code == 200 and 'data-need="not_submitted"' in odd.text

    home = await client.get("/school", headers=admin)
    assert f'href="/school/exams/{exam_id}/dashboard"' in home.text

    operator = {**bearer(await staff(app, client, new_phone(), "operator")), **HTML}
    assert (await client.get(url, headers=operator)).status_code == 200
    stranger_school = await new_school(app)
    stranger = bearer(await staff(app, client, new_phone(), "school_admin", stranger_school))
    assert (await client.get(url, headers={**stranger, **HTML})).status_code == 404
    reviewer = bearer(await staff(app, client, new_phone(), "reviewer", school_id))
    assert (await client.get(url, headers={**reviewer, **HTML})).status_code == 403
    candidate = bearer(await staff(app, client, new_phone(), "candidate"))
    assert (await client.get(url, headers={**candidate, **HTML})).status_code == 403
    assert (await client.get(url, headers=HTML)).status_code in (303, 401)


async def test_queries_do_not_grow_with_the_candidates(app) -> None:
    """The dashboard asks the database the same number of times for 3 or 30 candidates."""
    engine = app.state.db.engine.sync_engine
    statements: list[str] = []

    def count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement)

    async def asked(people: list[Candidate]) -> int:
        async with app_ctx(app) as ctx:
            exam = await dashboard_exam(ctx, await new_school(app))
            await seed(ctx, exam, people)
            statements.clear()
            event.listen(engine, "before_cursor_execute", count)
            try:
                await counts.overview(ctx, exam)
                await counts.series(ctx, exam, "Asia/Shanghai")
                for need in counts.NEEDS:
                    await dashboard.needs_page(ctx, exam, need, None, 1, 50)
            finally:
                event.remove(engine, "before_cursor_execute", count)
            return len(statements)

    done = {0: ("verified", {"flags": [{"kind": "no_face"}]}, at(1))}
    few = await asked([Candidate(f"甲{i}", formal=done) for i in range(3)])
    many = await asked([Candidate(f"乙{i}", formal=done) for i in range(30)])
    assert few == many <= 14
