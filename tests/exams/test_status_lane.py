"""The status-poll lane (`exams/status_lane.py`): a poll from a session this process confirmed
recently is answered before routing, with exactly the full route's answers; anything else
goes down the full route."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from sqlalchemy import delete, select
from sqlalchemy.exc import TimeoutError as PoolTimeout

from tests.exams.test_enrollment import certified_candidate
from tests.exams.test_sittings import (
    candidate_for,
    code,
    complete,
    device,
    enrol,
    event,
    new_exam,
    ready,
    record,
    status,
    submit,
)
from tests.exams.test_sittings import world as world  # the fixture
from tests.helpers import app_ctx, statements_sent
from vexam.core import direct_reads
from vexam.core.audit import AuditEntry
from vexam.core.web import SESSION_COOKIE
from vexam.exams import sitting_status
from vexam.exams.models import (
    ExamEvent,
    FaceVerification,
    Recording,
    Sitting,
    Subject,
    SubjectProgress,
)

pytestmark = pytest.mark.usefixtures("app")

ROUTE = "/api/v1/sittings/{sitting_id}"


def served(app: Any) -> int:
    return int(app.state.status_lane.served)


def forget(app: Any) -> None:
    """This process trusts no session it confirmed: the next request confirms it again."""
    app.state.principal_memory.forget_principals()


async def both(app: Any, client: httpx.AsyncClient, url: str, headers: dict[str, str]):
    """The full route's answer to GET `url`, then the lane's (asserting which answered)."""
    forget(app)
    before = served(app)
    full = await client.get(url, headers=headers)
    assert served(app) == before, "the full route answers a session not confirmed here"
    lane = await client.get(url, headers=headers)
    assert served(app) == before + 1, "the lane answers the session the full route confirmed"
    return full, lane


def requests_counted(app: Any, status: int) -> float:
    value = app.state.metrics.get_sample_value(
        "vexam_http_requests_total", {"method": "GET", "route": ROUTE, "status": str(status)}
    )
    return float(value or 0)


@pytest.fixture
async def sitting(app, client, inbox, new_phone, world) -> dict[str, Any]:
    """A candidate (`who`) whose formal sitting is ready, with a recording running."""
    exam = await new_exam(client, world)
    who, number = await certified_candidate(client, inbox, new_phone, world["agent"])
    await enrol(app, client, world, who, number, exam["id"])
    ready_sitting = await ready(app, client, who, exam["id"])
    running = (await record(client, who, ready_sitting)).json()
    return {"who": who, "id": ready_sitting["id"], "recording": running["id"]}


async def test_the_lane_answers_byte_for_byte_as_the_full_route(app, client, sitting) -> None:
    """Body, status and headers are the full route's; metrics count both under the route."""
    url = f"/api/v1/sittings/{sitting['id']}"
    counted = requests_counted(app, 200)
    full, lane = await both(app, client, url, {**sitting["who"], **device("a")})
    assert full.status_code == lane.status_code == 200
    assert lane.content == full.content
    assert lane.headers == full.headers
    assert lane.json()["subjects"][0]["state"] == "recording"
    assert requests_counted(app, 200) == counted + 2


async def test_the_lane_refuses_as_the_full_route(
    app, client, inbox, new_phone, world, sitting
) -> None:
    """Another candidate's sitting and a sitting that does not exist: the same problem
    documents (status, body, headers) from both."""
    intruder, _ = await certified_candidate(client, inbox, new_phone, world["agent"])
    for sitting_id in (sitting["id"], sitting["id"] + 1000):
        url = f"/api/v1/sittings/{sitting_id}"
        full, lane = await both(app, client, url, {**intruder, **device("x")})
        assert full.status_code == lane.status_code == 404
        assert code(lane) == "sitting_not_found"
        assert lane.content == full.content
        assert lane.headers == full.headers
    assert requests_counted(app, 404) >= 4


async def test_a_lane_poll_that_must_write_runs_again_in_a_transaction(
    app, client, sitting, clock
) -> None:
    """The recording passes its limit; the session is confirmed at the new time by another
    call, so the poll takes the lane: it reads first, finds the overdue recording, runs again
    in a transaction, voids it (audited) and shows it voided."""
    clock.advance(seconds=400)
    assert (await client.get("/api/v1/me", headers=sitting["who"])).status_code == 200
    before = served(app)
    subject = (await status(client, sitting["who"], sitting["id"]))["subjects"][0]
    assert served(app) == before + 1
    assert [(r["id"], r["state"], r["void_reason"]) for r in subject["recordings"]] == [
        (sitting["recording"], "voided", "too_long")
    ]
    async with app_ctx(app) as ctx:
        found = await ctx.session.execute(
            select(AuditEntry.action).where(
                AuditEntry.subject_type == "recording",
                AuditEntry.subject_id == str(sitting["recording"]),
            )
        )
        assert found.scalars().all().count("recording.voided") == 1


async def test_what_the_lane_leaves_to_the_full_route(app, client, world, sitting) -> None:
    """Staff, ids the lane does not read, other methods and signed-out sessions go down the
    full route, which answers them; a browser's session cookie takes the lane (a GET needs
    no CSRF token)."""
    who = {**sitting["who"], **device("a")}
    url = f"/api/v1/sittings/{sitting['id']}"
    await client.get(url, headers=who)  # confirmed here
    await client.get("/api/v1/me", headers=world["admin"])
    before = served(app)
    admin = await client.get(url, headers=world["admin"])
    assert admin.status_code == 403 and code(admin) == "forbidden"
    leading_zero = await client.get(f"/api/v1/sittings/0{sitting['id']}", headers=who)
    assert leading_zero.status_code == 200
    too_big = await client.get(f"/api/v1/sittings/{2**63}", headers=who)
    assert too_big.status_code == 404 and code(too_big) == "not_found"
    head = await client.head(url, headers=who)
    assert head.status_code == 405
    assert served(app) == before

    token = sitting["who"]["Authorization"].split()[1]
    browser = await client.get(
        url, headers={"Cookie": f"{SESSION_COOKIE}={token}; vexam_device=web-0123456789abcdef"}
    )
    assert browser.status_code == 200
    assert served(app) == before + 1

    assert (await client.post("/api/v1/auth/logout", headers=who)).status_code == 204
    signed_out = await client.get(url, headers=who)
    assert signed_out.status_code == 401 and code(signed_out) == "not_authenticated"
    assert served(app) == before + 1


async def test_a_database_failure_in_the_lane_is_answered_as_on_the_full_route(
    app, client, sitting, monkeypatch
) -> None:
    """No free database connection: 503 `service_unavailable` with Retry-After from both,
    through the app's own handler."""

    async def no_connection(*_: Any, **__: Any) -> None:
        raise PoolTimeout("QueuePool limit reached")

    monkeypatch.setattr(sitting_status, "my_status", no_connection)
    url = f"/api/v1/sittings/{sitting['id']}"
    full, lane = await both(app, client, url, {**sitting["who"], **device("a")})
    assert full.status_code == lane.status_code == 503
    assert code(lane) == "service_unavailable" and lane.headers["retry-after"] == "2"
    assert lane.content == full.content


async def test_a_lane_poll_is_one_statement(app, client, sitting) -> None:
    """A remembered candidate's poll of a sitting with nothing to write reads it in one
    statement (the sitting, exam, accommodation, subjects, attempts, submissions, uploads,
    recordings and flags)."""
    url = f"/api/v1/sittings/{sitting['id']}"
    who = {**sitting["who"], **device("a")}
    await client.get(url, headers=who)  # confirmed here
    before = served(app)
    with statements_sent(app, 2) as sent:
        polled = await client.get(url, headers=who)
    assert served(app) == before + 1
    assert polled.status_code == 200
    assert [s["state"] for s in polled.json()["subjects"]] == ["recording", "not_started"]
    assert sent == ["SELECT exam_sittings.user_id,"]


async def test_a_sitting_whose_exam_has_no_subjects_left(app, client, sitting) -> None:
    """The poll reads the sitting from its own row, not from its subjects': with none left
    (removed behind the service's back) it shows the sitting without subjects, on the lane
    and on the full route alike, and still refuses it to others."""
    async with app_ctx(app) as ctx:
        exam_id = await ctx.session.scalar(
            select(Sitting.exam_id).where(Sitting.id == sitting["id"])
        )
        for table in (FaceVerification, ExamEvent, Recording, SubjectProgress):
            await ctx.session.execute(delete(table).where(table.sitting_id == sitting["id"]))
        await ctx.session.execute(delete(Subject).where(Subject.exam_id == exam_id))
        await ctx.session.commit()
    url = f"/api/v1/sittings/{sitting['id']}"
    full, lane = await both(app, client, url, {**sitting["who"], **device("a")})
    assert full.status_code == lane.status_code == 200
    assert lane.content == full.content
    body = lane.json()
    assert body["id"] == sitting["id"] and body["subjects"] == []
    assert body["exam_id"] == exam_id


async def test_a_poll_read_directly_answers_as_through_sqlalchemy(
    app, client, inbox, new_phone, world, monkeypatch
) -> None:
    """On PostgreSQL the poll's statement is sent straight through asyncpg
    (`core.direct_reads`); the answer is byte for byte the one SQLAlchemy's rows give, for a
    sitting with a voided attempt, a flagged and submitted recording, a flag of its own and a
    running recording. SQLite's polls run through SQLAlchemy."""
    exam = await new_exam(client, world, anti_cheat={"phone_call": "flag"})
    who = await candidate_for(app, client, inbox, new_phone, world, exam)
    sitting = await ready(app, client, who, exam["id"])
    voided = (await record(client, who, sitting)).json()
    assert (await event(client, who, sitting["id"], "left_page")).status_code == 201
    kept = (await record(client, who, sitting)).json()
    flagged = await event(client, who, sitting["id"], "phone_call", recording_id=kept["id"])
    assert flagged.status_code == 201
    assert (await complete(client, who, kept["id"])).status_code == 200
    assert (await submit(client, who, sitting, kept["id"])).status_code == 201
    assert (await event(client, who, sitting["id"], "phone_call")).status_code == 201
    running = await record(client, who, sitting, position=1, orientation="landscape")
    assert running.status_code == 201

    url = f"/api/v1/sittings/{sitting['id']}"
    headers = {**who, **device("a")}
    direct = sitting_status._OWN_STATUS
    sent = direct.sent
    read_directly = await client.get(url, headers=headers)
    assert direct.sent == sent + (0 if app.state.db.is_sqlite else 1)
    monkeypatch.setattr(direct_reads, "in_reads_unit", lambda _session: False)
    through_sqlalchemy = await client.get(url, headers=headers)
    assert direct.sent == sent + (0 if app.state.db.is_sqlite else 1)
    assert read_directly.status_code == through_sqlalchemy.status_code == 200
    assert read_directly.content == through_sqlalchemy.content
    body = read_directly.json()
    assert [s["state"] for s in body["subjects"]] == ["submitted", "recording"]
    shown = {r["id"]: (r["state"], r["flags"]) for r in body["subjects"][0]["recordings"]}
    assert shown == {voided["id"]: ("voided", []), kept["id"]: ("completed", ["phone_call"])}
    assert body["subjects"][0]["submission"]["recording_id"] == kept["id"]
    assert body["flags"] == ["event:phone_call"]
