"""Issue 10 security (DESIGN §7): ID numbers never appear unmasked in logs. Every log record
(root at DEBUG, SQL statements with their parameters, the queue, uvicorn) and everything
printed is captured across a full journey — register, certify with an ID number (and a
conflicting second claim, and a mistyped one), support review, a school's roster import
holding ID numbers, apply, sit and submit, audit search by ID number, exports — and
searched for the full numbers."""

from __future__ import annotations

import logging

import httpx
import pytest

from tests.exams.test_sittings import SHA, complete, new_exam, ready, record
from tests.exams.test_sittings import world as world
from tests.helpers import bearer, register
from tests.identity.conftest import manual_entry, new_id_number, to_review
from tests.review.conftest import review_exam_body
from tests.schools.test_roster import csv_bytes
from vexam.core.web import DEVICE_COOKIE, SESSION_COOKIE, csrf_token_for
from vexam.identity.idnumbers import mask_id_number

LOGGERS = ["", "sqlalchemy.engine", "sqlalchemy.pool", "huey", "uvicorn", "uvicorn.access"]
LOGGERS += ["uvicorn.error", "vexam", "httpx", "asyncio"]


@pytest.fixture
def everything_logged(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    """Every logger at DEBUG (SQLAlchemy then logs each statement with its parameters)."""
    for name in LOGGERS:
        caplog.set_level(logging.DEBUG, logger=name)
    return caplog


async def test_no_full_id_number_in_any_log_of_a_journey(
    app, client, inbox, new_phone, world, everything_logged, capsys
) -> None:
    """The numbers pass through every layer; only masked forms may reach a log."""
    number = new_id_number(sex="male")
    classmate = new_id_number(born="20071031")
    mistyped = number[:17] + ("0" if number[17] != "0" else "1")
    exam = await new_exam(client, world, **review_exam_body())
    admin, agent = world["admin"], world["agent"]

    # The school imports a roster holding both numbers.
    rows = [
        ["张三", number, "北京", "27110101000001", "钢琴"],
        ["李四", classmate, "北京", "27110101000002", "钢琴"],
    ]
    preview = await client.post(
        f"/api/v1/exams/{exam['id']}/roster/imports",
        files={"file": ("roster.csv", csv_bytes(rows))},
        headers=admin,
    )
    assert preview.status_code == 201, preview.text
    committed = await client.post(
        f"/api/v1/exams/{exam['id']}/roster/imports/{preview.json()['id']}/commit",
        json={},
        headers=admin,
    )
    assert committed.status_code == 200, committed.text

    # A candidate registers, mistypes the number, then certifies; support approves.
    who = bearer((await register(client, inbox, new_phone()))["token"])
    wrong = await client.post(
        "/api/v1/identity/certification", json=manual_entry(mistyped), headers=who
    )
    assert wrong.status_code == 422, wrong.text
    review = await to_review(client, who, number)
    listed = await client.get(f"/api/v1/support/reviews/{review['id']}", headers=agent)
    assert listed.status_code == 200, listed.text
    decided = await client.post(
        f"/api/v1/support/reviews/{review['id']}/decision",
        json={"decision": "approve", "reason": "matches the card"},
        headers=agent,
    )
    assert decided.status_code == 200, decided.text
    # Someone else claims the same number: a conflict, handled by blind index.
    other = bearer((await register(client, inbox, new_phone()))["token"])
    conflict = await client.post(
        "/api/v1/identity/certification", json=manual_entry(number), headers=other
    )
    assert conflict.status_code == 409, conflict.text

    # Apply, sit and submit.
    applied = await client.post(
        f"/api/v1/exams/{exam['id']}/application", json={"province": "11"}, headers=who
    )
    assert applied.status_code == 200, applied.text
    await client.post(f"/api/v1/exams/{exam['id']}/application/confirm", headers=who)
    sitting = await ready(app, client, who, exam["id"])
    take = await record(client, who, sitting, 0)
    assert take.status_code == 201, take.text
    assert (await complete(client, who, take.json()["id"], duration_seconds=20)).is_success
    submitted = await client.post(
        f"/api/v1/sittings/{sitting['id']}/subjects/{sitting['subjects'][0]['subject_id']}"
        "/submission",
        json={"recording_id": take.json()["id"], "sha256": SHA, "size_bytes": 1234},
        headers={**who, "X-Device-Id": "device-a-0001"},
    )
    assert submitted.status_code == 201, submitted.text

    # Support searches the audit log by the number (the form posts it).
    agent_token = agent["Authorization"].split(" ", 1)[1]
    device = "web-log-test-device-1"
    cookies = {DEVICE_COOKIE: device, SESSION_COOKIE: agent_token}
    transport = httpx.ASGITransport(app=app, client=("10.66.0.1", 1))
    async with httpx.AsyncClient(
        transport=transport, base_url="http://testserver", cookies=cookies
    ) as browser:
        searched = await browser.post(
            "/support/audit",
            data={
                "id_number": number,
                "csrf_token": csrf_token_for(app.state.settings.secret_key, device),
            },
            follow_redirects=True,
        )
    assert searched.status_code == 200, searched.text

    # The school reads its roster and exports.
    for path in ("roster", "review/export.csv", "review/export.xlsx"):
        got = await client.get(f"/api/v1/exams/{exam['id']}/{path}", headers=admin)
        assert got.status_code == 200, (path, got.text)
    await app.state.queue.drain()

    printed = capsys.readouterr()
    logged = "\n".join(
        f"{record.name} {record.getMessage()} {record.exc_text or ''}"
        for record in everything_logged.records
    )
    text = "\n".join([logged, everything_logged.text, printed.out, printed.err])
    # The capture saw the SQL with its parameters (the test could fail): the masked number
    # is a parameter of the roster rows' INSERT.
    assert "INSERT INTO" in text and mask_id_number(number) in text
    for secret in (number, classmate, mistyped):
        for form in {secret, secret.lower()}:
            assert form not in text, f"an ID number reached the logs: {mask_id_number(form)}"
    # Nor did a bare 17-digit body (the number without its check character) leak.
    assert number[:17] not in text and classmate[:17] not in text
