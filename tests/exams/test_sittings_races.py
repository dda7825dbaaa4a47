"""SPEC §5 races the database decides: attempts, submissions and the one exam device."""

from __future__ import annotations

import asyncio
from collections import Counter

import pytest

from tests.exams.test_sittings import (
    PHONE,
    SHA,
    candidate_for,
    code,
    complete,
    device,
    force_face,
    new_exam,
    ready,
    record,
    start,
    status,
    world,
)

pytestmark = pytest.mark.usefixtures("app")
__all__ = ["world"]  # the fixture, used by name


async def test_fifty_concurrent_starts_with_two_attempts_left_make_two(
    app, client, inbox, new_phone, world
) -> None:
    """50 concurrent "start attempt" calls with 2 attempts left → exactly 2 recordings;
    the other 48 are attempts_exhausted."""
    exam = await new_exam(client, world)
    who = await candidate_for(app, client, inbox, new_phone, world, exam)
    sitting = await ready(app, client, who, exam["id"])
    answers = await asyncio.gather(*[record(client, who, sitting) for _ in range(50)])
    counted = Counter((response.status_code, code(response)) for response in answers)
    assert counted[(201, "None")] == 2, counted
    assert counted[(409, "attempts_exhausted")] == 48, counted
    view = await status(client, who, sitting["id"])
    subject = view["subjects"][0]
    assert subject["attempts_used"] == 2 and len(subject["recordings"]) == 2
    assert sorted(r["attempt"] for r in subject["recordings"]) == [1, 2]


async def test_fifty_concurrent_submits_make_one_submission(
    app, client, inbox, new_phone, world
) -> None:
    """50 concurrent submits of a subject (from both completed recordings) → one
    submission; the rest already_submitted."""
    exam = await new_exam(client, world)
    who = await candidate_for(app, client, inbox, new_phone, world, exam)
    sitting = await ready(app, client, who, exam["id"])
    takes = []
    for _ in range(2):
        take = (await record(client, who, sitting)).json()
        await complete(client, who, take["id"])
        takes.append(take["id"])
    subject_id = sitting["subjects"][0]["subject_id"]
    url = f"/api/v1/sittings/{sitting['id']}/subjects/{subject_id}/submission"
    headers = {**who, **device("a")}
    answers = await asyncio.gather(
        *[
            client.post(
                url,
                json={"recording_id": takes[i % 2], "sha256": SHA, "size_bytes": 10 + i},
                headers=headers,
            )
            for i in range(50)
        ]
    )
    counted = Counter((response.status_code, code(response)) for response in answers)
    assert counted[(201, "None")] == 1, counted
    assert counted[(409, "already_submitted")] == 49, counted
    view = await status(client, who, sitting["id"])
    winner = next(r for r in answers if r.status_code == 201).json()
    assert view["subjects"][0]["submission"] == winner


async def test_two_devices_starting_at_once_one_wins(app, client, inbox, new_phone, world) -> None:
    """Two (and then ten) devices starting the same candidate's exam at once → one wins; the
    others are exam_active_on_other_device."""
    exam = await new_exam(client, world)
    who = await candidate_for(app, client, inbox, new_phone, world, exam)
    pair = await asyncio.gather(
        start(client, who, exam["id"], "p1"), start(client, who, exam["id"], "p2")
    )
    assert sorted(response.status_code for response in pair) == [200, 409]
    loser = next(response for response in pair if response.status_code == 409)
    assert code(loser) == "exam_active_on_other_device"
    winner = next(response for response in pair if response.status_code == 200).json()

    await force_face(app, winner["id"], "p1")
    await force_face(app, winner["id"], "p2")
    many = await asyncio.gather(
        *[
            client.post(
                f"/api/v1/sittings/{winner['id']}/device-check",
                json=PHONE,
                headers={**who, **device(f"m{i}")},
            )
            for i in range(10)
        ]
    )
    assert {code(response) for response in many} == {"exam_active_on_other_device"}
    takeovers = await asyncio.gather(
        *[start(client, who, exam["id"], f"h{i}", handover=True) for i in range(10)]
    )
    # Handovers racing each other: each takes the exam from the device it saw holding it
    # (a conditional update); one that lost that race is refused, never silently shared.
    outcomes = {(response.status_code, code(response)) for response in takeovers}
    assert (200, "None") in outcomes
    assert outcomes <= {(200, "None"), (409, "exam_active_on_other_device")}
    holders = []
    for i in range(10):
        probe = await client.post(
            f"/api/v1/sittings/{winner['id']}/device-check",
            json=PHONE,
            headers={**who, **device(f"h{i}")},
        )
        holders.append(probe.status_code == 200)
    assert holders.count(True) == 1
