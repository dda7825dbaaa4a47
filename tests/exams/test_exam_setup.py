"""SPEC §4 exam setup: settings and subjects, validated with clear codes, scoped to a school."""

from __future__ import annotations

import secrets
from typing import Any

import pytest
from sqlalchemy import select

from tests.helpers import app_ctx, bearer, register, staff
from vexam.core.audit import AuditEntry
from vexam.schools import service as schools

pytestmark = pytest.mark.usefixtures("app")


async def new_school(app: Any) -> int:
    async with app_ctx(app) as ctx:
        school = await schools.create_school(ctx, f"s-{secrets.token_hex(4)}", "音乐学院")
        return school.id


def exam_body(**changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "code": f"piano-{secrets.token_hex(3)}",
        "name": "钢琴演奏",
        "name_en": "Piano performance",
        "season": "2027",
        "formal_starts_at": "2027-01-10T09:00:00+08:00",
        "formal_ends_at": "2027-01-12T18:00:00+08:00",
        "fee_cents": 18000,
        "subjects": [
            {"name": "练习曲", "attempts": 2, "max_seconds": 300, "orientation": "landscape"},
            {
                "name": "乐曲",
                "attempts": 10,
                "max_seconds": 600,
                "prompt": "请演奏一首自选乐曲",
                "camera": "back",
                "face_check_seconds": 30,
                "mock_face_checks": "real",
                "rubric": {"criteria": [{"name": "技巧", "max_points": 50}], "step": 0.5},
            },
        ],
    }
    body.update(changes)
    return body


@pytest.fixture
async def school_admin(app, client, new_phone) -> tuple[int, dict[str, str]]:
    school_id = await new_school(app)
    return school_id, bearer(await staff(app, client, new_phone(), "school_admin", school_id))


async def test_create_exam_with_subjects_and_defaults(client, school_admin, app) -> None:
    """§4: window, grace (24 h by default), fee, policies and per-subject settings are kept."""
    school_id, admin = school_admin
    body = exam_body(anti_cheat={"phone_call": "flag"})
    created = await client.post(f"/api/v1/schools/{school_id}/exams", json=body, headers=admin)
    assert created.status_code == 201, created.text
    exam = created.json()
    assert exam["upload_ends_at"].startswith("2027-01-13T10:00")  # 18:00 +08:00, + 24 h, in UTC
    assert exam["anti_cheat"]["phone_call"] == "flag"  # flag, do not burn the attempt
    assert exam["anti_cheat"]["left_page"] == "void_attempt"  # the default
    assert exam["device_policy"]["allowed_classes"] == ["phone"]
    assert exam["device_policy"]["min_os"] == {"android": "7", "harmonyos": "2", "ios": "10"}
    assert [s["attempts"] for s in exam["subjects"]] == [2, 10]
    assert exam["subjects"][1]["camera"] == "back"
    assert exam["subjects"][1]["rubric"]["criteria"][0]["max_points"] == 50
    fetched = await client.get(f"/api/v1/exams/{exam['id']}", headers=admin)
    assert fetched.json() == exam
    async with app.state.db.unit_of_work() as session:
        actions = (
            await session.execute(
                select(AuditEntry.action).where(AuditEntry.subject_id == str(exam["id"]))
            )
        ).scalars()
        assert "exam.created" in list(actions)


@pytest.mark.parametrize(
    ("changes", "code", "field"),
    [
        ({"formal_ends_at": "2027-01-10T08:00:00+08:00"}, "exam_window_invalid", None),
        ({"formal_ends_at": "2027-01-10T09:00:00+08:00"}, "exam_window_invalid", None),
        (
            {"subjects": [{"name": "x", "attempts": 0}]},
            "exam_setting_invalid",
            "subjects.0.attempts",
        ),
        (
            {"subjects": [{"name": "x", "max_seconds": 5}]},
            "exam_setting_invalid",
            "subjects.0.max_seconds",
        ),
        ({"subjects": []}, "exam_setting_invalid", "subjects"),
        ({"fee_cents": -1}, "exam_setting_invalid", "fee_cents"),
        ({"upload_grace_minutes": -5}, "exam_setting_invalid", "upload_grace_minutes"),
        ({"anti_cheat": {"phone_call": "ignore"}}, "exam_setting_invalid", "anti_cheat.phone_call"),
        (
            {"device_policy": {"allowed_classes": ["watch"]}},
            "exam_setting_invalid",
            "device_policy.allowed_classes",
        ),
        ({"season": "27"}, "exam_setting_invalid", "season"),
    ],
)
async def test_settings_are_refused_with_clear_codes(
    client, school_admin, changes, code, field
) -> None:
    """§4: a window that ends before it starts, zero attempts and the like: clear codes."""
    school_id, admin = school_admin
    response = await client.post(
        f"/api/v1/schools/{school_id}/exams", json=exam_body(**changes), headers=admin
    )
    assert response.status_code == 422, response.text
    assert response.json()["code"] == code
    if field:
        assert response.json()["field"] == field
        assert field in response.json()["detail"]


async def test_update_replaces_settings_and_subjects(client, school_admin) -> None:
    """§4: the school edits an exam; codes stay unique within the school."""
    school_id, admin = school_admin
    first = (
        await client.post(f"/api/v1/schools/{school_id}/exams", json=exam_body(), headers=admin)
    ).json()
    second = (
        await client.post(f"/api/v1/schools/{school_id}/exams", json=exam_body(), headers=admin)
    ).json()
    changed = exam_body(code=first["code"], subjects=[{"name": "视唱", "attempts": 3}])
    updated = await client.put(f"/api/v1/exams/{first['id']}", json=changed, headers=admin)
    assert updated.status_code == 200
    assert [s["name"] for s in updated.json()["subjects"]] == ["视唱"]
    clash = await client.put(
        f"/api/v1/exams/{second['id']}", json=exam_body(code=first["code"]), headers=admin
    )
    assert clash.status_code == 409 and clash.json()["code"] == "exam_code_taken"
    listed = await client.get(f"/api/v1/schools/{school_id}/exams", headers=admin)
    assert {e["id"] for e in listed.json()} == {first["id"], second["id"]}


async def test_staff_of_one_school_never_see_another(
    client, school_admin, app, new_phone, inbox
) -> None:
    """§4: a school admin of school B can neither read nor change school A's exams."""
    school_id, admin = school_admin
    exam = (
        await client.post(f"/api/v1/schools/{school_id}/exams", json=exam_body(), headers=admin)
    ).json()
    other_school = await new_school(app)
    other = bearer(await staff(app, client, new_phone(), "school_admin", other_school))
    candidate = bearer((await register(client, inbox, new_phone()))["token"])
    operator = bearer(await staff(app, client, new_phone(), "operator"))
    for who in (other, candidate):
        assert (await client.get(f"/api/v1/exams/{exam['id']}", headers=who)).json()[
            "code"
        ] == "exam_not_found"
        put = await client.put(f"/api/v1/exams/{exam['id']}", json=exam_body(), headers=who)
        assert put.status_code == 404
        listed = await client.get(f"/api/v1/schools/{school_id}/exams", headers=who)
        assert listed.status_code == 404 and listed.json()["code"] == "school_not_found"
        created = await client.post(
            f"/api/v1/schools/{school_id}/exams", json=exam_body(), headers=who
        )
        assert created.status_code == 404
    assert (await client.get(f"/api/v1/exams/{exam['id']}", headers=operator)).status_code == 200
