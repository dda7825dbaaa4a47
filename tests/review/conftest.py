"""Review fixtures (SPEC §6): a school with an exam, reviewers, and candidates whose formal
submissions were uploaded and verified; helpers to assign, score and publish."""

from __future__ import annotations

import itertools
import secrets
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import update

from tests.exams.test_enrollment import add_roster_row, certified_candidate
from tests.exams.test_sittings import complete, event, new_exam, ready, record, submit
from tests.exams.test_sittings import world as world
from tests.helpers import app_ctx, bearer, staff
from vexam.accounts.phones import mask_phone
from vexam.exams.models import Submission, Upload
from vexam.identity.idnumbers import mask_id_number

RUBRIC = {
    "criteria": [{"name": "技巧", "max_points": 60}, {"name": "表现", "max_points": 40}],
    "step": 0.5,
}
NAMES = itertools.cycle(
    ["欧阳明月", "司马青云", "诸葛晓岚", "上官星河", "慕容清风", "东方雨霏", "皇甫长歌"]
)


@dataclass
class Candidate:
    """A candidate with a verified formal submission of subject `position`, and every piece
    of identity a reviewer must never see."""

    who: dict[str, str]
    name: str
    phone: str
    id_number: str
    candidate_number: str
    submission_id: int
    upload_id: str

    def secrets(self) -> list[str]:
        """Every identifying string, raw and masked."""
        return [
            self.name,
            self.phone,
            mask_phone(self.phone),
            self.id_number,
            mask_id_number(self.id_number),
            self.candidate_number,
        ]


@dataclass
class Review:
    """A school's exam under review: admin, two reviewers of the school, a third spare."""

    world: dict[str, Any]
    exam: dict[str, Any]
    reviewers: list[dict[str, str]]  # auth headers
    reviewer_ids: list[int]

    @property
    def admin(self) -> dict[str, str]:
        return dict(self.world["admin"])

    def subject_id(self, position: int = 0) -> int:
        return int(self.exam["subjects"][position]["id"])


def review_exam_body() -> dict[str, Any]:
    """Two subjects: one with a two-criterion rubric, one with none (the default applies)."""
    return {
        "anti_cheat": {"phone_call": "flag"},
        "subjects": [
            {
                "name": "练习曲",
                "name_en": "Étude",
                "attempts": 2,
                "max_seconds": 300,
                "orientation": "landscape",
                "rubric": RUBRIC,
            },
            {"name": "乐曲", "attempts": 2, "max_seconds": 300, "orientation": "landscape"},
        ],
    }


async def reviewer_account(app, client, new_phone, school_id: int) -> tuple[dict[str, str], int]:
    """A reviewer of the school: auth header and user id."""
    token = await staff(app, client, new_phone(), "reviewer", school_id)
    me = await client.get("/api/v1/me", headers=bearer(token))
    assert me.status_code == 200, me.text
    return bearer(token), int(me.json()["id"])


@pytest.fixture
async def review(app, client, new_phone, world) -> Review:
    """An exam with a rubric and three reviewers of its school (none assigned yet)."""
    exam = await new_exam(client, world, **review_exam_body())
    reviewers, ids = [], []
    for _ in range(3):
        header, user_id = await reviewer_account(app, client, new_phone, world["school_id"])
        reviewers.append(header)
        ids.append(user_id)
    return Review(world, exam, reviewers, ids)


async def verified_candidate(
    app,
    client,
    inbox,
    new_phone,
    review: Review,
    position: int = 0,
    flags: Any = None,
    events: tuple[str, ...] = (),
    clock: Any = None,
    event_after_s: float = 0,
) -> Candidate:
    """A candidate who submitted subject `position` and whose upload was verified (the upload
    itself is tested in tests/uploads: here its verified row is written directly)."""
    phones: list[str] = []

    def _phone() -> str:
        phones.append(new_phone())
        return phones[-1]

    name = next(NAMES)
    who, number = await certified_candidate(client, inbox, _phone, review.world["agent"], name)
    candidate_number = f"27{secrets.randbelow(10**12):012d}"
    await add_roster_row(
        app,
        review.world["school_id"],
        review.exam["id"],
        number,
        name=name,
        candidate_number=candidate_number,
    )
    applied = await client.post(
        f"/api/v1/exams/{review.exam['id']}/application", json={"province": "11"}, headers=who
    )
    assert applied.status_code == 200, applied.text
    confirmed = await client.post(
        f"/api/v1/exams/{review.exam['id']}/application/confirm", headers=who
    )
    assert confirmed.status_code == 200, confirmed.text
    sitting = await ready(app, client, who, review.exam["id"])
    recording = await record(client, who, sitting, position)
    assert recording.status_code == 201, recording.text
    if clock is not None and event_after_s:
        clock.advance(seconds=event_after_s)
    for kind in events:
        reported = await event(
            client, who, sitting["id"], kind, recording_id=recording.json()["id"]
        )
        assert reported.status_code == 201, reported.text
    done = await complete(client, who, recording.json()["id"], duration_seconds=30)
    assert done.status_code == 200, done.text
    submitted = await submit(client, who, sitting, recording.json()["id"], position)
    assert submitted.status_code == 201, submitted.text
    submission_id = int(submitted.json()["submission_id"])
    upload_id = secrets.token_hex(16)
    async with app_ctx(app) as ctx:
        now = ctx.now()
        ctx.session.add(
            Upload(
                id=upload_id,
                submission_id=submission_id,
                user_id=0,
                length=1234,
                received=1234,
                state="verified",
                expires_at=now + timedelta(days=1),
                metadata_={"filename": f"{name}.mp4"},
                media={"duration_seconds": 30.0, "audit": {"flags": flags or []}},
                created_at=now,
                completed_at=now,
                verified_at=now,
                updated_at=now,
            )
        )
        await ctx.session.flush()
        await ctx.session.execute(
            update(Submission).where(Submission.id == submission_id).values(upload_state="verified")
        )
    return Candidate(who, name, phones[0], number, candidate_number, submission_id, upload_id)


async def assign(
    client: httpx.AsyncClient, review: Review, reviewer: int, position: int = 0, share: int = 100
) -> httpx.Response:
    """Assign reviewer number `reviewer` to subject `position`."""
    return await client.post(
        f"/api/v1/exams/{review.exam['id']}/review/assignments",
        json={
            "reviewer_id": review.reviewer_ids[reviewer],
            "subject_id": review.subject_id(position),
            "share_percent": share,
        },
        headers=review.admin,
    )


async def queue(client: httpx.AsyncClient, who: dict[str, str]) -> list[dict[str, Any]]:
    response = await client.get("/api/v1/review/queue", headers=who)
    assert response.status_code == 200, response.text
    body: list[dict[str, Any]] = response.json()
    return body


async def score(
    client: httpx.AsyncClient, who: dict[str, str], code: str, points: list[float], comment=""
) -> httpx.Response:
    return await client.put(
        f"/api/v1/review/items/{code}/score",
        json={"points": points, "comment": comment},
        headers=who,
    )


async def settings(client: httpx.AsyncClient, review: Review, **values: Any) -> httpx.Response:
    body = {
        "aggregate": "mean",
        "reviewers_per_submission": 2,
        "escalation_threshold": 10,
        "max_reviewers": 3,
        **values,
    }
    return await client.put(
        f"/api/v1/exams/{review.exam['id']}/review/settings", json=body, headers=review.admin
    )
