"""SPEC §5 taking an exam through the API: sittings, face and device checks, attempts,
face checks while recording, events, submission once inside the window, status."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select, update

from tests.exams.test_enrollment import add_roster_row, certified_candidate
from tests.exams.test_exam_setup import exam_body, new_school
from tests.helpers import app_ctx, bearer, staff
from tests.identity.conftest import SHARED_FACES, face_photo, jpeg, manual_entry
from vexam.core.audit import AuditEntry
from vexam.exams.models import ExamEvent, Sitting

pytestmark = pytest.mark.usefixtures("app")

# The frozen clock starts at 2026-06-01 02:00 UTC: the window is open around it.
WINDOW_START = datetime(2026, 6, 1, 0, 0, tzinfo=UTC)
WINDOW_END = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
PHONE = {"device_class": "phone", "os_name": "android", "os_version": "13", "camera": True}
PHONE |= {"microphone": True, "free_bytes": 8 * 1024**3, "upload_kbps": 20000}
SHA = hashlib.sha256(b"video").hexdigest()


@pytest.fixture
async def world(app, client, new_phone) -> dict[str, Any]:
    """A school with its admin, and a support agent who certifies candidates."""
    school_id = await new_school(app)
    return {
        "school_id": school_id,
        "admin": bearer(await staff(app, client, new_phone(), "school_admin", school_id)),
        "agent": bearer(await staff(app, client, new_phone(), "support")),
    }


def device(name: str) -> dict[str, str]:
    """The device header of an app install."""
    return {"X-Device-Id": f"device-{name}-0001"}


def sitting_exam(**changes: Any) -> dict[str, Any]:
    """A free published exam open now: a fixed-landscape subject with 2 attempts, and a
    choose-your-orientation subject with 3 attempts and real mock face checks."""
    body = exam_body(
        published=True,
        fee_cents=0,
        formal_starts_at=WINDOW_START.isoformat(),
        formal_ends_at=WINDOW_END.isoformat(),
        subjects=[
            {"name": "练习曲", "attempts": 2, "max_seconds": 300, "orientation": "landscape"},
            {
                "name": "乐曲",
                "attempts": 3,
                "max_seconds": 600,
                "orientation": "choice",
                "mock_face_checks": "real",
            },
        ],
    )
    body.update(changes)
    return body


async def new_exam(client, world, **changes: Any) -> dict[str, Any]:
    """Create an exam of the world's school."""
    response = await client.post(
        f"/api/v1/schools/{world['school_id']}/exams",
        json=sitting_exam(**changes),
        headers=world["admin"],
    )
    assert response.status_code == 201, response.text
    exam: dict[str, Any] = response.json()
    return exam


async def enrol(app, client, world, who, number, exam_id) -> None:
    """Put the candidate on the exam's roster, apply and confirm."""
    await add_roster_row(app, world["school_id"], exam_id, number)
    applied = await client.post(
        f"/api/v1/exams/{exam_id}/application", json={"province": "11"}, headers=who
    )
    assert applied.status_code == 200, applied.text
    await client.post(f"/api/v1/exams/{exam_id}/application/confirm", headers=who)


async def candidate_for(app, client, inbox, new_phone, world, exam) -> dict[str, str]:
    """A certified candidate enrolled in `exam` (no reference face: certified by a person)."""
    who, number = await certified_candidate(client, inbox, new_phone, world["agent"])
    await enrol(app, client, world, who, number, exam["id"])
    return who


async def force_face(app, sitting_id: int, name: str) -> None:
    """Mark the sitting's face verified on a device (tests that are not about faces)."""
    async with app_ctx(app) as ctx:
        await ctx.session.execute(
            update(Sitting)
            .where(Sitting.id == sitting_id)
            .values(
                face_state="passed",
                face_device_id=device(name)["X-Device-Id"],
                face_check_required=False,
            )
        )


async def start(client, who, exam_id: int, name: str = "a", **body: Any):
    return await client.post(
        f"/api/v1/exams/{exam_id}/sittings", json=body, headers={**who, **device(name)}
    )


async def ready(app, client, who, exam_id: int, name: str = "a", mode: str = "formal") -> dict:
    """A started sitting whose face and device checks passed on device `name`."""
    started = await start(client, who, exam_id, name, mode=mode)
    assert started.status_code == 200, started.text
    sitting: dict[str, Any] = started.json()
    await force_face(app, sitting["id"], name)
    checked = await client.post(
        f"/api/v1/sittings/{sitting['id']}/device-check",
        json=PHONE,
        headers={**who, **device(name)},
    )
    assert checked.status_code == 200, checked.text
    return sitting


async def record(client, who, sitting: dict, position: int = 0, name: str = "a", **body: Any):
    subject_id = sitting["subjects"][position]["subject_id"]
    return await client.post(
        f"/api/v1/sittings/{sitting['id']}/subjects/{subject_id}/recordings",
        json=body,
        headers={**who, **device(name)},
    )


async def complete(client, who, recording_id: int, name: str = "a", **body: Any):
    return await client.post(
        f"/api/v1/recordings/{recording_id}/complete", json=body, headers={**who, **device(name)}
    )


async def submit(client, who, sitting: dict, recording_id: int, position: int = 0, name="a"):
    subject_id = sitting["subjects"][position]["subject_id"]
    return await client.post(
        f"/api/v1/sittings/{sitting['id']}/subjects/{subject_id}/submission",
        json={"recording_id": recording_id, "sha256": SHA, "size_bytes": 1234},
        headers={**who, **device(name)},
    )


async def status(client, who, sitting_id: int, name: str = "a") -> dict[str, Any]:
    response = await client.get(f"/api/v1/sittings/{sitting_id}", headers={**who, **device(name)})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def event(client, who, sitting_id: int, kind: str, name: str = "a", **extra: Any):
    return await client.post(
        f"/api/v1/sittings/{sitting_id}/events",
        json={"kind": kind, "client_at": "2026-06-01T02:00:00Z", **extra},
        headers={**who, **device(name)},
    )


def code(response) -> str:
    return str(response.json().get("code"))


async def test_formal_flow_attempts_submission_receipt_and_status(
    app, client, inbox, new_phone, world
) -> None:
    """§5: record, complete, submit once with a receipt; attempts_exhausted;
    already_submitted; the status says what is next."""
    exam = await new_exam(client, world)
    who = await candidate_for(app, client, inbox, new_phone, world, exam)
    fresh = await start(client, who, exam["id"])
    assert fresh.status_code == 200, fresh.text
    assert fresh.json()["next_step"] == "verify_face" and fresh.json()["reviewable"] is True
    again = await start(client, who, exam["id"])
    assert again.json()["id"] == fresh.json()["id"]  # one formal sitting per candidate and exam
    sitting = await ready(app, client, who, exam["id"])
    assert (await status(client, who, sitting["id"]))["next_step"] == "record"

    first = await record(client, who, sitting, orientation="portrait")
    assert first.status_code == 201, first.text
    assert first.json()["orientation"] == "landscape"  # fixed by the subject
    assert first.json()["max_seconds"] == 300 and first.json()["attempt"] == 1
    open_submit = await submit(client, who, sitting, first.json()["id"])
    assert open_submit.status_code == 409 and code(open_submit) == "recording_not_completed"
    done = await complete(client, who, first.json()["id"], duration_seconds=120)
    assert done.status_code == 200 and done.json()["state"] == "completed"
    assert done.json()["duration_seconds"] == 120 and done.json()["finished_at"]
    twice = await complete(client, who, first.json()["id"])
    assert twice.status_code == 409 and code(twice) == "recording_not_open"

    second = await record(client, who, sitting)
    assert second.status_code == 201 and second.json()["attempt"] == 2
    exhausted = await record(client, who, sitting)
    assert exhausted.status_code == 409 and code(exhausted) == "attempts_exhausted"
    assert exhausted.json()["allowed"] == 2

    receipt = await submit(client, who, sitting, first.json()["id"])
    assert receipt.status_code == 201, receipt.text
    assert receipt.json()["sha256"] == SHA and receipt.json()["size_bytes"] == 1234
    assert receipt.json()["upload_state"] == "pending" and receipt.json()["submitted_at"]
    resubmit = await submit(client, who, sitting, first.json()["id"])
    assert resubmit.status_code == 409 and code(resubmit) == "already_submitted"

    view = await status(client, who, sitting["id"])
    subject = view["subjects"][0]
    assert subject["state"] == "submitted" and subject["attempts_left"] == 0
    assert subject["submission"]["submission_id"] == receipt.json()["submission_id"]
    assert [r["state"] for r in subject["recordings"]] == ["completed", "recording"]
    assert subject["recordings"][0]["duration_seconds"] == 120
    assert view["subjects"][1]["attempts_left"] == 3 and view["next_step"] == "record"
    async with app_ctx(app) as ctx:
        actions = set(
            (
                await ctx.session.execute(
                    select(AuditEntry.action).where(AuditEntry.action.like("%.%"))
                )
            ).scalars()
        )
    assert {"sitting.started", "recording.started", "recording.completed"} <= actions
    assert {"submission.created", "sitting.device_checked", "exam_device.claimed"} <= actions


async def test_orientation_choice_is_required_and_fixed(app, client, inbox, new_phone, world):
    """§5 orientation: where the candidate chooses, the choice is required and kept."""
    exam = await new_exam(client, world)
    who = await candidate_for(app, client, inbox, new_phone, world, exam)
    sitting = await ready(app, client, who, exam["id"])
    missing = await record(client, who, sitting, position=1)
    assert missing.status_code == 422 and code(missing) == "orientation_required"
    chosen = await record(client, who, sitting, position=1, orientation="portrait")
    assert chosen.status_code == 201 and chosen.json()["orientation"] == "portrait"
    assert (await status(client, who, sitting["id"]))["subjects"][1]["attempts_used"] == 1


async def test_recording_needs_face_and_device_checks_on_this_device(
    app, client, inbox, new_phone, world
) -> None:
    """Before starting: a face verification and a device check, on the recording device."""
    exam = await new_exam(client, world)
    who = await candidate_for(app, client, inbox, new_phone, world, exam)
    sitting = (await start(client, who, exam["id"])).json()
    no_face = await record(client, who, sitting)
    assert no_face.status_code == 409 and code(no_face) == "face_verification_required"
    await force_face(app, sitting["id"], "a")
    no_check = await record(client, who, sitting)
    assert no_check.status_code == 409 and code(no_check) == "device_check_required"
    assert (await status(client, who, sitting["id"]))["next_step"] == "check_device"
    no_device = await client.post(f"/api/v1/exams/{exam['id']}/sittings", json={}, headers=who)
    assert no_device.status_code == 400 and code(no_device) == "device_id_invalid"


async def test_device_policy_and_mock_device_warning(app, client, inbox, new_phone, world):
    """§2/§5 device check: device_not_allowed naming the rule; a formal exam on another device
    than the mock is allowed, warned about and audited."""
    exam = await new_exam(client, world)
    who = await candidate_for(app, client, inbox, new_phone, world, exam)
    mock = (await start(client, who, exam["id"], "mockphone", mode="mock")).json()
    tablet = await client.post(
        f"/api/v1/sittings/{mock['id']}/device-check",
        json={**PHONE, "device_class": "tablet"},
        headers={**who, **device("mockphone")},
    )
    assert tablet.status_code == 200  # mock: warned, not refused
    assert tablet.json()["warnings"] == ["formal_would_refuse:device_class"]
    release = await client.post(
        "/api/v1/me/exam-device/release", headers={**who, **device("mockphone")}
    )
    assert release.status_code == 204

    formal = (await start(client, who, exam["id"], "formalphone")).json()
    url = f"/api/v1/sittings/{formal['id']}/device-check"
    headers = {**who, **device("formalphone")}
    cases = [
        ({"device_class": "tablet"}, "device_class"),
        ({"device_class": "desktop", "os_name": "windows"}, "device_class"),
        ({"os_version": "6.0"}, "os_version"),
        ({"os_name": "ios", "os_version": "9.3"}, "os_version"),
        ({"camera": False}, "camera"),
        ({"microphone": False}, "microphone"),
    ]
    for changes, rule in cases:
        refused = await client.post(url, json={**PHONE, **changes}, headers=headers)
        assert refused.status_code == 403, refused.text
        assert code(refused) == "device_not_allowed" and refused.json()["rule"] == rule
    garbage = await client.post(url, json={**PHONE, "os_version": "x"}, headers=headers)
    assert garbage.status_code == 422 and code(garbage) == "invalid_request"
    slow = await client.post(
        url, json={**PHONE, "os_version": "7.1.2", "upload_kbps": 300}, headers=headers
    )
    assert slow.status_code == 200, slow.text
    assert set(slow.json()["warnings"]) == {"slow_upload", "device_differs_from_mock"}
    view = await status(client, who, formal["id"], "formalphone")
    assert "device_differs_from_mock" in view["warnings"]
    async with app_ctx(app) as ctx:
        refused_checks = (
            await ctx.session.execute(
                select(AuditEntry.detail).where(
                    AuditEntry.action == "sitting.device_checked",
                    AuditEntry.subject_id == str(formal["id"]),
                )
            )
        ).scalars()
        details = list(refused_checks)
    assert len(details) == len(cases) + 1  # every check is kept, refused ones too
    assert "device_differs_from_mock" in details[-1]["warnings"]


async def test_one_active_exam_device_and_handover(app, client, inbox, new_phone, world) -> None:
    """§2 one active exam device per candidate: exam_active_on_other_device; a deliberate
    handover ends the old device (its running recording is voided); release frees it."""
    exam = await new_exam(client, world)
    who = await candidate_for(app, client, inbox, new_phone, world, exam)
    sitting = await ready(app, client, who, exam["id"], "a")
    running = (await record(client, who, sitting, name="a")).json()
    other = await start(client, who, exam["id"], "b")
    assert other.status_code == 409 and code(other) == "exam_active_on_other_device"
    handed = await start(client, who, exam["id"], "b", handover=True)
    assert handed.status_code == 200, handed.text
    assert handed.json()["next_step"] == "verify_face"  # the new device checks again
    old = await complete(client, who, running["id"], "a")
    assert old.status_code == 409 and code(old) == "exam_active_on_other_device"
    old_event = await event(client, who, sitting["id"], "left_page", "a")
    assert old_event.status_code == 409 and code(old_event) == "exam_active_on_other_device"
    view = await status(client, who, sitting["id"], "b")
    voided = view["subjects"][0]["recordings"][0]
    assert voided["state"] == "voided" and voided["void_reason"] == "handover"
    assert view["subjects"][0]["attempts_used"] == 1

    released = await client.post("/api/v1/me/exam-device/release", headers={**who, **device("b")})
    assert released.status_code == 204
    back = await start(client, who, exam["id"], "a")
    assert back.status_code == 200, back.text


async def test_events_follow_the_exam_policy(app, client, inbox, new_phone, world) -> None:
    """§5 events: void the attempt (default), flag do not burn, fail the exam (exam_failed);
    every event is kept, even with nothing recording."""
    exam = await new_exam(
        client, world, anti_cheat={"phone_call": "flag", "screenshot": "fail_exam"}
    )
    who = await candidate_for(app, client, inbox, new_phone, world, exam)
    sitting = await ready(app, client, who, exam["id"])
    idle = await event(client, who, sitting["id"], "screen_locked")
    assert idle.status_code == 201 and idle.json()["voided_recording_ids"] == []

    first = (await record(client, who, sitting)).json()
    left = await event(client, who, sitting["id"], "left_page")
    assert left.json()["action"] == "void_attempt"
    assert left.json()["voided_recording_ids"] == [first["id"]]
    gone = await complete(client, who, first["id"])
    assert gone.status_code == 409 and code(gone) == "recording_not_open"

    second = (await record(client, who, sitting)).json()
    call = await event(client, who, sitting["id"], "phone_call", recording_id=second["id"])
    assert call.json()["action"] == "flag" and call.json()["voided_recording_ids"] == []
    kept = await complete(client, who, second["id"])
    assert kept.status_code == 200 and kept.json()["flags"] == ["phone_call"]
    receipt = await submit(client, who, sitting, second["id"])
    assert receipt.status_code == 201
    before = await status(client, who, sitting["id"])
    assert "event:phone_call" not in before["flags"]
    loose = await event(client, who, sitting["id"], "phone_call")  # nothing recording
    assert loose.json()["action"] == "flag"
    view = await status(client, who, sitting["id"])
    assert view["flags"].count("event:phone_call") == 1  # the sitting's, not a recording's
    shown = {r["id"]: r["flags"] for s in view["subjects"] for r in s["recordings"]}
    assert shown == {first["id"]: [], second["id"]: ["phone_call"]}

    third = (await record(client, who, sitting, position=1, orientation="landscape")).json()
    shot = await event(client, who, sitting["id"], "screenshot")
    assert shot.json()["action"] == "fail_exam" and shot.json()["sitting_failed"] is True
    assert shot.json()["voided_recording_ids"] == [third["id"]]
    failed = await record(client, who, sitting, position=1, orientation="landscape")
    assert failed.status_code == 409 and code(failed) == "exam_failed"
    view = await status(client, who, sitting["id"])
    assert view["state"] == "failed" and view["next_step"] == "failed"
    assert "event:screen_locked" not in view["flags"]  # voiding events do not flag
    async with app_ctx(app) as ctx:
        kept = (
            await ctx.session.execute(
                select(ExamEvent.kind).where(ExamEvent.sitting_id == sitting["id"])
            )
        ).scalars()
        assert sorted(kept) == [
            "left_page",
            "phone_call",
            "phone_call",
            "screen_locked",
            "screenshot",
        ]


async def test_three_failed_face_checks_end_the_recording(
    app, client, inbox, new_phone, world
) -> None:
    """§5 face checks while recording: the 3rd failure in a row voids the recording and
    face_check_required holds until a fresh verification."""
    exam = await new_exam(client, world)
    who = await candidate_for(app, client, inbox, new_phone, world, exam)
    sitting = await ready(app, client, who, exam["id"])
    running = (await record(client, who, sitting)).json()
    url = f"/api/v1/recordings/{running['id']}/face-checks"
    headers = {**who, **device("a")}
    results = []
    for _ in range(3):
        checked = await client.post(
            url, files={"frame": ("f.jpg", jpeg(), "image/jpeg")}, headers=headers
        )
        assert checked.status_code == 200, checked.text
        results.append(checked.json())
    assert [r["result"] for r in results] == ["face_not_found"] * 3
    assert [r["consecutive_failures"] for r in results] == [1, 2, 3]
    assert results[-1]["recording_state"] == "voided" and results[-1]["face_check_required"]
    after = await client.post(
        url, files={"frame": ("f.jpg", jpeg(), "image/jpeg")}, headers=headers
    )
    assert after.status_code == 409 and code(after) == "recording_not_open"
    blocked = await record(client, who, sitting)
    assert blocked.status_code == 409 and code(blocked) == "face_check_required"
    view = await status(client, who, sitting["id"])
    assert view["face_check_required"] and view["next_step"] == "verify_face"
    assert view["subjects"][0]["recordings"][0]["void_reason"] == "face_checks_failed"
    bad = await client.post(
        f"/api/v1/sittings/{sitting['id']}/face-verification",
        files={"frame": ("f.gif", b"GIF89a not really", "image/gif")},
        headers=headers,
    )
    assert bad.status_code == 422 and code(bad) == "image_invalid"


async def test_max_length_voids_a_late_recording(app, client, inbox, new_phone, world, clock):
    """A recording completed past its limit (+30 s grace) is voided: recording_too_long; an
    accommodation's extra seconds extend the limit."""
    exam = await new_exam(client, world)
    who, number = await certified_candidate(client, inbox, new_phone, world["agent"])
    await enrol(app, client, world, who, number, exam["id"])
    sitting = await ready(app, client, who, exam["id"])
    on_time = (await record(client, who, sitting)).json()
    clock.advance(seconds=329)
    stopped = (await complete(client, who, on_time["id"])).json()
    # Without the app's measure, the server's: from the start to the server's clock.
    assert (stopped["state"], stopped["duration_seconds"]) == ("completed", 329)
    late = (await record(client, who, sitting)).json()
    clock.advance(seconds=331)
    refused = await complete(client, who, late["id"])
    assert refused.status_code == 422 and code(refused) == "recording_too_long"
    recordings = (await status(client, who, sitting["id"]))["subjects"][0]["recordings"]
    assert [(r["state"], r["void_reason"]) for r in recordings] == [
        ("completed", None),
        ("voided", "too_long"),
    ]

    row = await roster_row_id(app, exam["id"])
    granted = await client.put(
        f"/api/v1/exams/{exam['id']}/roster/{row}/accommodation",
        json={"extra_seconds": 120, "extra_attempts": 1, "reason": "手部受伤，医院证明"},
        headers=world["admin"],
    )
    assert granted.status_code == 200, granted.text
    longer = (await record(client, who, sitting)).json()  # the extra attempt
    assert longer["max_seconds"] == 420
    clock.advance(seconds=400)
    assert (await complete(client, who, longer["id"])).status_code == 200
    declared = (await record(client, who, sitting, position=1, orientation="portrait")).json()
    too_long = await complete(client, who, declared["id"], duration_seconds=9999)
    assert code(too_long) == "recording_too_long"


async def test_a_status_poll_voids_an_overdue_recording(
    app, client, inbox, new_phone, world, clock
):
    """The poll reads without a transaction (PostgreSQL); finding a recording past its limit,
    it runs again in one, voids it (audited) and shows it voided."""
    exam = await new_exam(client, world)
    who, number = await certified_candidate(client, inbox, new_phone, world["agent"])
    await enrol(app, client, world, who, number, exam["id"])
    sitting = await ready(app, client, who, exam["id"])
    running = (await record(client, who, sitting)).json()
    assert (await status(client, who, sitting["id"]))["subjects"][0]["state"] == "recording"
    clock.advance(seconds=400)
    subject = (await status(client, who, sitting["id"]))["subjects"][0]
    assert [(r["id"], r["state"], r["void_reason"]) for r in subject["recordings"]] == [
        (running["id"], "voided", "too_long")
    ]
    assert subject["state"] != "recording"
    async with app_ctx(app) as ctx:
        found = await ctx.session.execute(
            select(AuditEntry.action).where(
                AuditEntry.subject_type == "recording",
                AuditEntry.subject_id == str(running["id"]),
            )
        )
        assert "recording.voided" in found.scalars().all()


async def roster_row_id(app, exam_id: int) -> int:
    from vexam.schools.models import RosterRow

    async with app_ctx(app) as ctx:
        found = await ctx.session.execute(select(RosterRow.id).where(RosterRow.exam_id == exam_id))
        return int(found.scalars().first())


async def test_window_edges_on_the_server_clock(app, client, inbox, new_phone, world, clock):
    """submission_window_closed one second after the end, accepted one second before; an
    accommodation's later end moves the edge; exam_not_open / exam_closed for starting."""
    early = await new_exam(
        client,
        world,
        formal_starts_at=(WINDOW_START + timedelta(days=1)).isoformat(),
        formal_ends_at=(WINDOW_END + timedelta(days=1)).isoformat(),
    )
    who_early = await candidate_for(app, client, inbox, new_phone, world, early)
    not_open = await start(client, who_early, early["id"])
    assert not_open.status_code == 409 and code(not_open) == "exam_not_open"

    exam = await new_exam(client, world)
    who = await candidate_for(app, client, inbox, new_phone, world, exam)
    sitting = await ready(app, client, who, exam["id"])
    first = (await record(client, who, sitting)).json()
    await complete(client, who, first["id"])
    second = (await record(client, who, sitting, position=1, orientation="portrait")).json()
    await complete(client, who, second["id"])
    clock.set(WINDOW_END - timedelta(seconds=1))
    inside = await submit(client, who, sitting, first["id"])
    assert inside.status_code == 201, inside.text
    clock.set(WINDOW_END + timedelta(seconds=1))
    outside = await submit(client, who, sitting, second["id"], position=1)
    assert outside.status_code == 409 and code(outside) == "submission_window_closed"
    closed = await start(client, who, exam["id"])
    assert closed.status_code == 409 and code(closed) == "exam_closed"
    late_record = await record(client, who, sitting, position=1, orientation="portrait")
    assert code(late_record) == "exam_closed"
    view = await status(client, who, sitting["id"])
    assert [s["state"] for s in view["subjects"]] == ["submitted", "absent"]  # computed
    assert view["window"] == "closed" and view["next_step"] == "closed"

    clock.set(WINDOW_START + timedelta(hours=2))
    later = await new_exam(client, world)
    who_later, number = await certified_candidate(client, inbox, new_phone, world["agent"])
    await enrol(app, client, world, who_later, number, later["id"])
    extended = WINDOW_END + timedelta(hours=2)
    row = await roster_row_id(app, later["id"])
    await client.put(
        f"/api/v1/exams/{later['id']}/roster/{row}/accommodation",
        json={"window_ends_at": extended.isoformat(), "reason": "时差，院校批准"},
        headers=world["admin"],
    )
    sitting_later = await ready(app, client, who_later, later["id"])
    assert sitting_later["window_ends_at"].startswith("2026-06-01T14:00")
    recording = (await record(client, who_later, sitting_later)).json()
    await complete(client, who_later, recording["id"])
    other = (await record(client, who_later, sitting_later, 1, orientation="portrait")).json()
    await complete(client, who_later, other["id"])
    clock.set(extended - timedelta(seconds=1))
    accepted = await submit(client, who_later, sitting_later, recording["id"])
    assert accepted.status_code == 201, accepted.text
    clock.set(extended + timedelta(seconds=1))
    refused = await submit(client, who_later, sitting_later, other["id"], position=1)
    assert refused.status_code == 409 and code(refused) == "submission_window_closed"


async def test_mock_sittings_numbered_limited_never_reviewed(
    app, client, inbox, new_phone, world
) -> None:
    """Mock exams: same engine, a new sitting on demand up to mock_limit
    (mock_limit_reached), walkthrough face checks pass, never reviewable."""
    walkthrough = {"name": "视唱", "attempts": 1, "max_seconds": 60, "orientation": "portrait"}
    exam = await new_exam(client, world, mock_limit=2, subjects=[walkthrough])
    who = await candidate_for(app, client, inbox, new_phone, world, exam)
    first = await start(client, who, exam["id"], mode="mock")
    second = await start(client, who, exam["id"], mode="mock")
    assert (first.json()["number"], second.json()["number"]) == (1, 2)
    assert first.json()["reviewable"] is False and first.json()["window"] == "always"
    third = await start(client, who, exam["id"], mode="mock")
    assert third.status_code == 409 and code(third) == "mock_limit_reached"
    sitting = second.json()
    verified = await client.post(
        f"/api/v1/sittings/{sitting['id']}/face-verification",
        files={"frame": ("f.png", png(), "image/png")},
        headers={**who, **device("a")},
    )
    assert verified.status_code == 200 and verified.json()["result"] == "walkthrough"
    await client.post(
        f"/api/v1/sittings/{sitting['id']}/device-check",
        json=PHONE,
        headers={**who, **device("a")},
    )
    take = (await record(client, who, sitting)).json()
    assert take["orientation"] == "portrait"
    await complete(client, who, take["id"])
    receipt = await submit(client, who, sitting, take["id"])
    assert receipt.status_code == 201
    async with app_ctx(app) as ctx:
        from vexam.exams.models import Submission

        stored = await ctx.session.get(Submission, receipt.json()["submission_id"])
        assert stored is not None and stored.reviewable is False


def png() -> bytes:
    from io import BytesIO

    from PIL import Image

    out = BytesIO()
    Image.new("RGB", (64, 64), (10, 20, 30)).save(out, "PNG")
    return out.getvalue()


async def test_formal_needs_enrolment_and_payment(app, client, inbox, new_phone, world) -> None:
    """A formal sitting is for enrolled candidates who paid where a fee applies."""
    exam = await new_exam(client, world, fee_cents=5000)
    who, number = await certified_candidate(client, inbox, new_phone, world["agent"])
    not_enrolled = await start(client, who, exam["id"])
    assert not_enrolled.status_code == 404 and code(not_enrolled) == "not_in_roster"
    await enrol(app, client, world, who, number, exam["id"])
    unpaid = await start(client, who, exam["id"])
    assert unpaid.status_code == 402 and code(unpaid) == "payment_required"


async def test_only_the_candidate_and_their_school_see_a_sitting(
    app, client, inbox, new_phone, world
) -> None:
    """Authorization: another candidate cannot touch the sitting or its recordings; the
    school's admin reads it per roster row; another school's admin cannot."""
    exam = await new_exam(client, world)
    who = await candidate_for(app, client, inbox, new_phone, world, exam)
    sitting = await ready(app, client, who, exam["id"])
    running = (await record(client, who, sitting)).json()
    intruder, _ = await certified_candidate(client, inbox, new_phone, world["agent"])
    looks = await client.get(f"/api/v1/sittings/{sitting['id']}", headers=intruder)
    assert looks.status_code == 404 and code(looks) == "sitting_not_found"
    stops = await complete(client, intruder, running["id"], name="x")
    assert stops.status_code == 404 and code(stops) == "recording_not_found"
    records = await record(client, intruder, sitting, name="x")
    assert code(records) == "sitting_not_found"
    submits = await submit(client, intruder, sitting, running["id"], name="x")
    assert code(submits) == "sitting_not_found"
    reports = await event(client, intruder, sitting["id"], "left_page", "x")
    assert code(reports) == "sitting_not_found"

    row = await roster_row_id(app, exam["id"])
    url = f"/api/v1/exams/{exam['id']}/roster/{row}/sittings"
    seen = await client.get(url, headers=world["admin"])
    assert seen.status_code == 200, seen.text
    assert [s["id"] for s in seen.json()] == [sitting["id"]]
    assert seen.json()[0]["subjects"][0]["attempts_used"] == 1
    other_school = await new_school(app)
    stranger = bearer(await staff(app, client, new_phone(), "school_admin", other_school))
    denied = await client.get(url, headers=stranger)
    assert denied.status_code == 404 and code(denied) == "exam_not_found"
    staff_route = await start(client, world["admin"], exam["id"])
    assert staff_route.status_code == 403


# ------------------------------------------------------------------ real faces

faces = pytest.mark.skipif(
    not SHARED_FACES.is_dir(), reason=f"shared face photos not found at {SHARED_FACES}"
)


async def certified_with_selfie(client, inbox, new_phone, agent, selfie: bytes | None):
    """A candidate certified by a manual review whose selfie is `selfie` (None: no face)."""
    from tests.helpers import register
    from tests.identity.conftest import new_id_number

    who = bearer((await register(client, inbox, new_phone()))["token"])
    number = new_id_number()
    stated = await client.post(
        "/api/v1/identity/certification", json=manual_entry(number), headers=who
    )
    assert stated.status_code == 200, stated.text
    review = await client.post(
        "/api/v1/identity/manual-review",
        files={
            "id_photo": ("id.jpg", jpeg(), "image/jpeg"),
            "selfie": ("me.jpg", selfie or jpeg(), "image/jpeg"),
        },
        headers=who,
    )
    assert review.status_code == 201, review.text
    decided = await client.post(
        f"/api/v1/support/reviews/{review.json()['id']}/decision",
        json={"decision": "approve", "reason": "matches"},
        headers=agent,
    )
    assert decided.status_code == 200, decided.text
    return who, number


async def verify(client, who, sitting_id: int, frame: bytes, name: str = "a"):
    return await client.post(
        f"/api/v1/sittings/{sitting_id}/face-verification",
        files={"frame": ("f.jpg", frame, "image/jpeg")},
        headers={**who, **device(name)},
    )


@faces
async def test_exam_time_face_verification_with_real_photos(
    app, client, inbox, new_phone, world
) -> None:
    """§5 face verification: the same person passes, another person is exam_face_mismatch
    (distance kept), no face is face_not_found; the reference is the review's selfie."""
    exam = await new_exam(client, world)
    who, number = await certified_with_selfie(
        client, inbox, new_phone, world["agent"], face_photo("obama_1.jpg")
    )
    await enrol(app, client, world, who, number, exam["id"])
    sitting = (await start(client, who, exam["id"])).json()
    other = await verify(client, who, sitting["id"], face_photo("biden_1.jpg"))
    assert other.status_code == 422 and code(other) == "exam_face_mismatch"
    assert other.json()["distance"] > 0.6
    nobody = await verify(client, who, sitting["id"], jpeg())
    assert nobody.status_code == 422 and code(nobody) == "face_not_found"
    same = await verify(client, who, sitting["id"], face_photo("obama_3.jpg"))
    assert same.status_code == 200, same.text
    assert same.json()["result"] == "passed" and same.json()["distance"] < 0.6
    view = await status(client, who, sitting["id"])
    assert view["face_state"] == "passed" and view["face_verified_on_this_device"]
    async with app_ctx(app) as ctx:
        from vexam.exams.models import FaceVerification

        kept = (
            await ctx.session.execute(
                select(FaceVerification.result, FaceVerification.distance)
                .where(FaceVerification.sitting_id == sitting["id"])
                .order_by(FaceVerification.id)
            )
        ).all()
    assert [result for result, _ in kept] == ["face_mismatch", "face_not_found", "passed"]
    assert kept[0][1] is not None and kept[0][1] > 0.6


@faces
async def test_no_reference_passes_flagged_and_checks_use_the_live_face(
    app, client, inbox, new_phone, world
) -> None:
    """No usable reference: the verification passes as no_reference, the sitting is flagged
    and later checks compare with the live face; a fresh verification clears
    face_check_required."""
    exam = await new_exam(client, world)
    who, number = await certified_with_selfie(client, inbox, new_phone, world["agent"], None)
    await enrol(app, client, world, who, number, exam["id"])
    sitting = (await start(client, who, exam["id"])).json()
    first = await verify(client, who, sitting["id"], face_photo("obama_1.jpg"))
    assert first.status_code == 200 and first.json()["result"] == "no_reference"
    await client.post(
        f"/api/v1/sittings/{sitting['id']}/device-check", json=PHONE, headers={**who, **device("a")}
    )
    view = await status(client, who, sitting["id"])
    assert "no_reference" in view["flags"]
    running = (await record(client, who, sitting)).json()
    url = f"/api/v1/recordings/{running['id']}/face-checks"
    headers = {**who, **device("a")}
    same = await client.post(
        url, files={"frame": ("f.jpg", face_photo("obama_3.jpg"), "image/jpeg")}, headers=headers
    )
    assert same.json()["result"] == "passed", same.text
    for _ in range(3):
        swapped = await client.post(
            url,
            files={"frame": ("f.jpg", face_photo("biden_1.jpg"), "image/jpeg")},
            headers=headers,
        )
        assert swapped.json()["result"] == "face_mismatch"
    assert swapped.json()["face_check_required"] is True
    blocked = await record(client, who, sitting)
    assert code(blocked) == "face_check_required"
    again = await verify(client, who, sitting["id"], face_photo("obama_4.jpg"))
    assert again.status_code == 200 and again.json()["result"] == "passed", again.text
    assert (await record(client, who, sitting)).status_code == 201


def test_catalogue_has_every_section_5_code() -> None:
    """The §5 codes exist in the catalogue (their tests above produce each of them)."""
    from vexam.core.errors import CATALOGUE

    for name in (
        "attempts_exhausted",
        "face_check_required",
        "already_submitted",
        "submission_window_closed",
        "device_not_allowed",
        "exam_active_on_other_device",
        "exam_failed",
        "recording_not_open",
        "recording_too_long",
        "mock_limit_reached",
    ):
        assert name in CATALOGUE


async def test_editing_the_exam_keeps_what_candidates_did(app, client, inbox, new_phone, world):
    """§4/§5: an exam edited during the window keeps its subjects (and so the candidates'
    attempts and submissions); a subject cannot be removed once anyone has sat it."""
    exam = await new_exam(client, world)
    who = await candidate_for(app, client, inbox, new_phone, world, exam)
    sitting = await ready(app, client, who, exam["id"])
    first = await record(client, who, sitting)
    await complete(client, who, first.json()["id"], duration_seconds=60)
    assert (await submit(client, who, sitting, first.json()["id"])).status_code == 201

    body = sitting_exam(code=exam["code"])
    body["subjects"][0] |= {"name": "练习曲（改）", "attempts": 4}
    edited = await client.put(f"/api/v1/exams/{exam['id']}", json=body, headers=world["admin"])
    assert edited.status_code == 200, edited.text
    assert [s["id"] for s in edited.json()["subjects"]] == [s["id"] for s in exam["subjects"]]
    view = await status(client, who, sitting["id"])
    assert view["subjects"][0]["state"] == "submitted"
    assert view["subjects"][0]["attempts_left"] == 3  # 4 allowed now, 1 used

    body["subjects"] = body["subjects"][:1]
    removed = await client.put(f"/api/v1/exams/{exam['id']}", json=body, headers=world["admin"])
    assert removed.status_code == 422 and removed.json()["field"] == "subjects"
