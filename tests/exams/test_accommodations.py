"""SPEC §4 accommodations: extra attempts, longer recordings, a later window end; audited."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from tests.exams.test_enrollment import add_roster_row
from tests.exams.test_exam_setup import exam_body, new_school
from tests.helpers import app_ctx, bearer, staff
from tests.identity.conftest import new_id_number
from vexam.core.audit import AuditEntry
from vexam.core.crypto import blind_index
from vexam.exams import accommodations

pytestmark = pytest.mark.usefixtures("app")


@pytest.fixture
async def roster(app, client, new_phone) -> dict[str, Any]:
    """An exam with one roster row, and its school's admin."""
    school_id = await new_school(app)
    admin = bearer(await staff(app, client, new_phone(), "school_admin", school_id))
    exam = (
        await client.post(f"/api/v1/schools/{school_id}/exams", json=exam_body(), headers=admin)
    ).json()
    number = new_id_number()
    await add_roster_row(app, school_id, exam["id"], number)
    rows = (await client.get(f"/api/v1/exams/{exam['id']}/roster", headers=admin)).json()
    return {"exam": exam, "admin": admin, "row": rows["rows"][0], "number": number}


def url(roster: dict[str, Any]) -> str:
    return f"/api/v1/exams/{roster['exam']['id']}/roster/{roster['row']['id']}/accommodation"


async def test_grant_change_and_remove_audited(app, client, roster) -> None:
    """A school admin grants, changes and removes; each step is audited with its reason."""
    granted = await client.put(
        url(roster),
        json={
            "extra_attempts": 2,
            "extra_seconds": 120,
            "window_ends_at": "2027-01-13T18:00:00+08:00",
            "reason": "右手骨折，医院证明已存档",
        },
        headers=roster["admin"],
    )
    assert granted.status_code == 200, granted.text
    body = granted.json()
    assert body["extra_attempts"] == 2 and body["id_number_masked"].count("*") == 8
    key = app.state.settings.data_key
    index = blind_index(key, roster["number"], kind="id_number")
    async with app_ctx(app) as ctx:
        given = await accommodations.granted_to(ctx, roster["exam"]["id"], index)
        other = await accommodations.granted_to(ctx, roster["exam"]["id"], "0" * 64)
    assert (given.extra_attempts, given.extra_seconds) == (2, 120)
    assert given.window_ends_at is not None and given.window_ends_at.isoformat().startswith(
        "2027-01-13T10:00"
    )
    assert other == accommodations.Granted()

    changed = await client.put(
        url(roster), json={"extra_attempts": 1, "reason": "改为一次"}, headers=roster["admin"]
    )
    assert changed.json()["extra_seconds"] == 0 and changed.json()["window_ends_at"] is None
    listed = await client.get(
        f"/api/v1/exams/{roster['exam']['id']}/accommodations", headers=roster["admin"]
    )
    assert [item["extra_attempts"] for item in listed.json()] == [1]
    removed = await client.put(url(roster), json={"reason": "撤销"}, headers=roster["admin"])
    assert removed.status_code == 200 and removed.json() is None
    listed = await client.get(
        f"/api/v1/exams/{roster['exam']['id']}/accommodations", headers=roster["admin"]
    )
    assert listed.json() == []

    async with app.state.db.unit_of_work() as session:
        entries = (
            await session.execute(
                select(AuditEntry)
                .where(AuditEntry.action.like("accommodation.%"))
                .where(AuditEntry.subject_id == str(roster["row"]["id"]))
                .order_by(AuditEntry.id)
            )
        ).scalars()
        trail = [(entry.action, entry.detail["reason"], entry.detail["after"]) for entry in entries]
    assert [action for action, _, _ in trail] == [
        "accommodation.granted",
        "accommodation.granted",
        "accommodation.removed",
    ]
    assert trail[0][1] == "右手骨折，医院证明已存档"
    assert trail[1][2]["extra_attempts"] == 1 and trail[2][2]["extra_attempts"] == 0


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"extra_attempts": 1, "reason": " "}, "accommodation.reason"),
        ({"extra_attempts": -1, "reason": "x1"}, "accommodation.extra_attempts"),
        ({"extra_seconds": 99999, "reason": "x1"}, "accommodation.extra_seconds"),
        (
            {"window_ends_at": "2027-01-12T17:00:00+08:00", "reason": "x1"},
            "accommodation.window_ends_at",
        ),
        (
            {"window_ends_at": "2027-03-12T17:00:00+08:00", "reason": "x1"},
            "accommodation.window_ends_at",
        ),
        (
            {"window_ends_at": "2027-01-13T17:00:00", "reason": "x1"},
            "accommodation.window_ends_at",
        ),
    ],
)
async def test_refused_with_the_field(client, roster, body: dict[str, Any], field: str) -> None:
    """A missing reason, negative or huge grants, an earlier or far later end are refused."""
    refused = await client.put(url(roster), json=body, headers=roster["admin"])
    assert refused.status_code == 422
    assert refused.json()["code"] == "exam_setting_invalid" and refused.json()["field"] == field


async def test_other_school_cannot_grant(app, client, new_phone, roster) -> None:
    """Another school's admin, a reviewer and a candidate get nothing."""
    other_school = await new_school(app)
    other = bearer(await staff(app, client, new_phone(), "school_admin", other_school))
    reviewer = bearer(
        await staff(app, client, new_phone(), "reviewer", roster["exam"]["school_id"])
    )
    body = {"extra_attempts": 5, "reason": "please"}
    for who in (other, reviewer):
        refused = await client.put(url(roster), json=body, headers=who)
        assert refused.status_code == 404 and refused.json()["code"] == "exam_not_found"
    missing = await client.put(
        f"/api/v1/exams/{roster['exam']['id']}/roster/999999/accommodation",
        json=body,
        headers=roster["admin"],
    )
    assert missing.json()["code"] == "roster_row_not_found"
