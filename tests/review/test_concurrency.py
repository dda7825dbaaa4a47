"""SPEC §6 / DESIGN 3: two reviewers scoring one submission at once both count, and the
escalation their disagreement calls for is not lost (row lock on the item; run on SQLite
and PostgreSQL)."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import func, select

from tests.helpers import app_ctx
from tests.review.conftest import assign, queue, score, settings, verified_candidate
from vexam.core.context import Principal, Role
from vexam.review import reviewing, schemas
from vexam.review.models import ReviewItem, ReviewScore

pytestmark = pytest.mark.usefixtures("app")


async def _item(app, code: str) -> ReviewItem:
    async with app_ctx(app) as ctx:
        found = await ctx.session.execute(select(ReviewItem).where(ReviewItem.code == code))
        return found.scalar_one()


async def test_scores_given_at_once_all_count(app, client, inbox, new_phone, review) -> None:
    """Pairs of reviewers score three submissions concurrently: every score is kept and
    every disagreement escalates."""
    for _ in range(3):
        await verified_candidate(app, client, inbox, new_phone, review)
    await settings(client, review, escalation_threshold=5)
    for reviewer in range(2):
        await assign(client, review, reviewer)
    codes = [entry["code"] for entry in await queue(client, review.reviewers[0])]
    assert len(codes) == 3
    first, second = review.reviewers[:2]
    answers = await asyncio.gather(
        *(score(client, first, code, [50, 30]) for code in codes),
        *(score(client, second, code, [20, 10]) for code in codes),
    )
    assert [answer.status_code for answer in answers] == [200] * 6
    for code in codes:
        item = await _item(app, code)
        assert item.scores_count == 2 and item.escalations == 1
        assert item.aggregate == 55 and item.spread == 50


async def test_a_score_waiting_for_the_lock_sees_the_first(
    app, client, inbox, new_phone, review
) -> None:
    """The second reviewer's transaction starts while the first one's is still open: it waits
    for the item's lock and then counts both scores (without the lock it would count one and
    miss the escalation)."""
    await verified_candidate(app, client, inbox, new_phone, review)
    await settings(client, review, escalation_threshold=5)
    for reviewer in range(2):
        await assign(client, review, reviewer)
    (entry,) = await queue(client, review.reviewers[0])
    code = entry["code"]

    def reviewer(number: int) -> Principal:
        return Principal(
            user_id=review.reviewer_ids[number],
            role=Role.reviewer,
            school_id=review.world["school_id"],
            locale=None,
            session_id=0,
            masked_phone="",
        )

    async def second() -> None:
        async with app_ctx(app) as ctx:
            await reviewing.score(ctx, reviewer(1), code, schemas.ScoreIn(points=[20, 10]))

    waiting: asyncio.Task[None] | None = None
    async with app_ctx(app) as ctx:
        await reviewing.score(ctx, reviewer(0), code, schemas.ScoreIn(points=[50, 30]))
        waiting = asyncio.create_task(second())
        # Let the second transaction run up to the lock it must wait for.
        for _ in range(20):
            await asyncio.sleep(0.01)
        assert not waiting.done()
    await waiting
    item = await _item(app, code)
    assert item.scores_count == 2 and item.escalations == 1 and item.aggregate == 55
    async with app_ctx(app) as ctx:
        count = await ctx.session.scalar(
            select(func.count()).select_from(ReviewScore).where(ReviewScore.item_id == item.id)
        )
    assert count == 2


async def test_publish_waits_for_a_score_in_flight(app, client, inbox, new_phone, review) -> None:
    """A score being written when the school publishes lands before the lock, or not at all:
    publishing waits for it, and scores after it are refused."""
    await verified_candidate(app, client, inbox, new_phone, review)
    await assign(client, review, 0)
    (entry,) = await queue(client, review.reviewers[0])
    principal = Principal(
        user_id=review.reviewer_ids[0],
        role=Role.reviewer,
        school_id=review.world["school_id"],
        locale=None,
        session_id=0,
        masked_phone="",
    )
    exam_id = review.exam["id"]

    async def publish() -> int:
        response = await client.post(
            f"/api/v1/exams/{exam_id}/review/publish", headers=review.admin
        )
        return response.status_code

    async with app_ctx(app) as ctx:
        await reviewing.score(ctx, principal, entry["code"], schemas.ScoreIn(points=[50, 30]))
        publishing = asyncio.create_task(publish())
        for _ in range(20):
            await asyncio.sleep(0.01)
        assert not publishing.done()
    assert await publishing == 200
    locked = await score(client, review.reviewers[0], entry["code"], [10, 10])
    assert locked.status_code == 409
    item = await _item(app, entry["code"])
    assert item.scores_count == 1 and item.aggregate == 80
