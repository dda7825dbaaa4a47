"""Issue 9 / SPEC §4: a school copies last year's exam — same settings and subjects in a new
unpublished draft, the window moved by whole years to the next season, and never the
roster, applications or anything candidates did; other schools cannot copy it."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import func, select

from tests.exams.test_exam_setup import exam_body, new_school
from tests.helpers import app_ctx, bearer, staff
from tests.schools.test_roster import candidate, commit, csv_bytes, id_number, upload
from tests.schools.test_school_pages import HTML
from vexam.core.audit import AuditEntry
from vexam.exams.models import Exam
from vexam.exams.service import shift_years
from vexam.schools.models import RosterRow

pytestmark = pytest.mark.usefixtures("app")


@pytest.fixture
async def school(app, client, new_phone) -> dict[str, Any]:
    """A school, its admin (API and page headers) and last season's exam with a roster."""
    school_id = await new_school(app)
    api = bearer(await staff(app, client, new_phone(), "school_admin", school_id))
    body = exam_body(
        code="piano-2025",
        name="2025 钢琴演奏",
        name_en="Piano performance 2025",
        season="2025",
        formal_starts_at="2025-01-10T09:00:00+08:00",
        formal_ends_at="2025-01-12T18:00:00+08:00",
        upload_grace_minutes=600,
        mock_limit=3,
        anti_cheat={"phone_call": "flag"},
        device_policy={"allowed_classes": ["phone"], "min_os": {"android": "9", "ios": "12"}},
    )
    created = await client.post(f"/api/v1/schools/{school_id}/exams", json=body, headers=api)
    assert created.status_code == 201, created.text
    exam = {"id": created.json()["id"], "school_id": school_id, "admin": api}
    previewed = await upload(
        client, exam, csv_bytes([["张三", id_number(), "北京", candidate(), ""]])
    )
    assert (await commit(client, exam, previewed.json()["id"])).status_code == 200
    return {**exam, "page": {**api, **HTML}, "source": created.json()}


async def copy(client, headers, exam_id: int) -> Any:
    return await client.post(f"/school/exams/{exam_id}/copy", headers=headers)


async def test_copy_makes_a_draft_for_the_next_season(app, client, school) -> None:
    """Settings and subjects are the same; the window is moved by whole years to the first
    season that opens after now (the clock is at 2026-06-01: 2025 → 2027), the season in the
    code and names follows, it is unpublished, no roster row comes along, and it is audited."""
    home = await client.get("/school", headers=school["page"])
    assert f'action="/school/exams/{school["id"]}/copy"' in home.text
    copied = await copy(client, school["page"], school["id"])
    assert copied.status_code == 303, copied.text
    location = copied.headers["location"]
    assert location.endswith("/edit?done=copied")
    new_id = int(location.split("/")[3])
    assert new_id != school["id"]
    form = await client.get(location, headers=school["page"])
    assert form.status_code == 200 and 'value="piano-2027"' in form.text
    assert 'role="status"' in form.text  # "this is a copy: check it, then save"
    new = (await client.get(f"/api/v1/exams/{new_id}", headers=school["admin"])).json()
    old = school["source"]
    assert (new["code"], new["season"], new["name"], new["name_en"]) == (
        "piano-2027",
        "2027",
        "2027 钢琴演奏",
        "Piano performance 2027",
    )
    assert new["formal_starts_at"].startswith("2027-01-10T01:00")  # 09:00 in Asia/Shanghai
    assert new["formal_ends_at"].startswith("2027-01-12T10:00")
    assert new["published"] is False
    for key in ("upload_grace_minutes", "mock_enabled", "mock_limit", "fee_cents"):
        assert new[key] == old[key], key
    assert (new["device_policy"], new["anti_cheat"]) == (old["device_policy"], old["anti_cheat"])
    strip = ("id",)
    assert [{k: v for k, v in s.items() if k not in strip} for s in new["subjects"]] == [
        {k: v for k, v in s.items() if k not in strip} for s in old["subjects"]
    ]
    assert {s["id"] for s in new["subjects"]}.isdisjoint(s["id"] for s in old["subjects"])
    async with app_ctx(app) as ctx:
        rows = await ctx.session.scalar(
            select(func.count()).select_from(RosterRow).where(RosterRow.exam_id == new_id)
        )
        assert rows == 0
        entry = await ctx.session.scalar(
            select(AuditEntry).where(AuditEntry.action == "exam.copied")
        )
        assert entry is not None and entry.subject_id == str(new_id)
        assert (entry.detail["source_exam_id"], entry.detail["years"]) == (school["id"], 2)
    # A second copy of the same exam does not collide with the first.
    again = await copy(client, school["page"], school["id"])
    again_id = int(again.headers["location"].split("/")[3])
    second = (await client.get(f"/api/v1/exams/{again_id}", headers=school["admin"])).json()
    assert second["code"] == "piano-2027-2"


async def test_only_the_exams_school_and_operators_copy_it(app, client, new_phone, school) -> None:
    """Another school's admin gets 404 and nothing is created; other roles are refused."""
    other = await new_school(app)
    stranger = {**bearer(await staff(app, client, new_phone(), "school_admin", other)), **HTML}
    reviewer = {
        **bearer(await staff(app, client, new_phone(), "reviewer", school["school_id"])),
        **HTML,
    }
    async with app_ctx(app) as ctx:
        before = await ctx.session.scalar(select(func.count()).select_from(Exam))
    refused = await copy(client, stranger, school["id"])
    assert refused.status_code == 404
    assert (await copy(client, reviewer, school["id"])).status_code == 403
    assert (await copy(client, stranger, 999999)).status_code == 404
    async with app_ctx(app) as ctx:
        assert await ctx.session.scalar(select(func.count()).select_from(Exam)) == before
    operator = {**bearer(await staff(app, client, new_phone(), "operator")), **HTML}
    assert (await copy(client, operator, school["id"])).status_code == 303


def test_shift_years_keeps_the_local_time_and_29_february() -> None:
    """Whole years in the school's zone: same wall-clock time; 29 Feb lands on 28 Feb."""
    moment = datetime(2024, 2, 29, 1, 0, tzinfo=UTC)  # 09:00 in Shanghai
    assert shift_years(moment, 1, "Asia/Shanghai") == datetime(2025, 2, 28, 1, 0, tzinfo=UTC)
    summer = datetime(2025, 7, 1, 16, 0, tzinfo=UTC)  # 12:00 in New York (daylight time)
    assert shift_years(summer, 2, "America/New_York") == datetime(2027, 7, 1, 16, 0, tzinfo=UTC)
