"""SPEC §6 review through the API: assignments, the blind queue, scoring by rubric with
aggregation and escalation, the publish lock, audit, and who may do what."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from tests.exams.test_exam_setup import new_school
from tests.helpers import app_ctx, bearer, staff
from tests.review.conftest import (
    assign,
    queue,
    reviewer_account,
    score,
    settings,
    verified_candidate,
)
from vexam.core.audit import AuditEntry

pytestmark = pytest.mark.usefixtures("app")


def code(response) -> str:
    return str(response.json().get("code"))


async def test_assign_score_escalate_aggregate_publish(
    app, client, inbox, new_phone, review
) -> None:
    """§6: two reviewers score; their totals differ by more than the threshold, so a third is
    queued automatically; the trimmed mean combines three; publishing locks every score."""
    await verified_candidate(app, client, inbox, new_phone, review)
    assert (await settings(client, review, aggregate="trimmed_mean")).status_code == 200
    for reviewer in range(3):
        assigned = await assign(client, review, reviewer)
        assert assigned.status_code == 201, assigned.text
    again = await assign(client, review, 0, share=100)
    assert again.status_code == 201 and again.json()["id"] == assigned.json()["id"] - 2

    first, second, third = review.reviewers
    listed = await queue(client, first)
    assert len(listed) == 1 and listed[0]["state"] == "open" and not listed[0]["scored_by_me"]
    item_code = listed[0]["code"]
    assert re.fullmatch(r"R-[A-HJ-NP-Z2-9]{8}", item_code), item_code

    item = await client.get(f"/api/v1/review/items/{item_code}", headers=first)
    assert item.status_code == 200, item.text
    body = item.json()
    assert [c["name"] for c in body["rubric"]["criteria"]] == ["技巧", "表现"]
    assert body["rubric"]["max_total"] == 100 and body["duration_s"] == 30
    assert body["my_score"] is None and body["locked"] is False

    bad = await score(client, first, item_code, [61, 10])
    assert bad.status_code == 422 and code(bad) == "score_invalid"
    assert bad.json()["criterion"] == "技巧"
    scored = await score(client, first, item_code, [50, 30], "稳定")
    assert scored.status_code == 200, scored.text
    assert scored.json()["my_score"]["total"] == 80 and scored.json()["state"] == "open"
    # Revised before publishing: still one score of this reviewer.
    revised = await score(client, first, item_code, [50, 35], "稳定，有表现力")
    assert revised.json()["my_score"]["total"] == 85
    assert (await queue(client, first))[0]["scored_by_me"] is True

    # The second reviewer is 25 points apart: escalated to the third.
    assert (await score(client, second, item_code, [40, 20])).json()["state"] == "escalated"
    waiting = await queue(client, third)
    assert [entry["state"] for entry in waiting] == ["escalated"]
    done = await score(client, third, item_code, [45, 32.5])
    assert done.json()["state"] == "complete"  # 77.5 lies within 10 of 85

    progress = await client.get(
        f"/api/v1/exams/{review.exam['id']}/review/progress", headers=review.admin
    )
    assert progress.status_code == 200, progress.text
    entry = progress.json()["items"][0]
    assert entry["state"] == "complete" and entry["needed"] == 3
    assert [line["total"] for line in entry["scores"]] == [85, 60, 77.5]
    assert entry["aggregate"] == 77.5 and entry["spread"] == 25
    subject = progress.json()["subjects"][0]
    assert subject["submissions"] == 1 and subject["complete"] == 1

    # The school changes the method: aggregates follow.
    assert (await settings(client, review, aggregate="mean")).status_code == 200
    progress = await client.get(
        f"/api/v1/exams/{review.exam['id']}/review/progress", headers=review.admin
    )
    assert progress.json()["items"][0]["aggregate"] == 74.17

    published = await client.post(
        f"/api/v1/exams/{review.exam['id']}/review/publish", headers=review.admin
    )
    assert published.status_code == 200 and published.json()["published_at"]
    twice = await client.post(
        f"/api/v1/exams/{review.exam['id']}/review/publish", headers=review.admin
    )
    assert twice.json()["published_at"] == published.json()["published_at"]
    locked = await score(client, first, item_code, [10, 10])
    assert locked.status_code == 409 and code(locked) == "scores_locked"
    assert (await settings(client, review)).json()["code"] == "scores_locked"
    after = await client.get(f"/api/v1/review/items/{item_code}", headers=first)
    assert after.json()["locked"] is True and after.json()["my_score"]["total"] == 85

    async with app_ctx(app) as ctx:
        actions = set(
            (
                await ctx.session.execute(
                    select(AuditEntry.action).where(AuditEntry.action.like("review.%"))
                )
            ).scalars()
        )
    assert {
        "review.settings_changed",
        "review.assigned",
        "review.scored",
        "review.score_revised",
        "review.escalated",
        "review.published",
    } <= actions


async def test_default_rubric_and_one_reviewer(app, client, inbox, new_phone, review) -> None:
    """A subject without a rubric is scored 0–100 on one criterion; one reviewer suffices
    where the school says so."""
    await verified_candidate(app, client, inbox, new_phone, review, position=1)
    await settings(client, review, reviewers_per_submission=1, max_reviewers=1)
    assert (await assign(client, review, 0, position=1)).status_code == 201
    (entry,) = await queue(client, review.reviewers[0])
    item = await client.get(f"/api/v1/review/items/{entry['code']}", headers=review.reviewers[0])
    assert item.json()["rubric"]["criteria"] == [{"name": "Overall", "max_points": 100}]
    assert (await score(client, review.reviewers[0], entry["code"], [100.5])).status_code == 422
    done = await score(client, review.reviewers[0], entry["code"], [91])
    assert done.json()["state"] == "complete"
    # Complete items leave the queue of those who did not score them.
    assert (await assign(client, review, 1, position=1)).status_code == 201
    assert await queue(client, review.reviewers[1]) == []


async def test_settings_and_assignments_are_checked(app, client, new_phone, review) -> None:
    bad = await settings(client, review, reviewers_per_submission=3, max_reviewers=2)
    assert bad.status_code == 422 and bad.json()["field"] == "max_reviewers"
    bad = await settings(client, review, escalation_threshold=-1)
    assert bad.json()["field"] == "escalation_threshold"
    wrong_share = await assign(client, review, 0, share=0)
    assert wrong_share.status_code == 422 and wrong_share.json()["field"] == "share_percent"
    stranger_school = await new_school(app)
    _, stranger = await reviewer_account(app, client, new_phone, stranger_school)
    foreign = await client.post(
        f"/api/v1/exams/{review.exam['id']}/review/assignments",
        json={"reviewer_id": stranger, "subject_id": review.subject_id(), "share_percent": 100},
        headers=review.admin,
    )
    assert foreign.status_code == 404 and code(foreign) == "reviewer_not_found"
    made = await assign(client, review, 0)
    listed = await client.get(
        f"/api/v1/exams/{review.exam['id']}/review/assignments", headers=review.admin
    )
    assert [row["reviewer_id"] for row in listed.json()] == [review.reviewer_ids[0]]
    removed = await client.delete(
        f"/api/v1/exams/{review.exam['id']}/review/assignments/{made.json()['id']}",
        headers=review.admin,
    )
    assert removed.status_code == 204
    gone = await client.delete(
        f"/api/v1/exams/{review.exam['id']}/review/assignments/{made.json()['id']}",
        headers=review.admin,
    )
    assert gone.status_code == 404 and code(gone) == "assignment_not_found"


async def test_who_may_see_and_score(app, client, inbox, new_phone, review) -> None:
    """§6/§8: a reviewer of another school, or of a subject they are not assigned to, gets
    404 for an item; a candidate gets 403; another school's admin cannot see the exam."""
    candidate = await verified_candidate(app, client, inbox, new_phone, review)
    await assign(client, review, 0)
    await assign(client, review, 1, position=1)  # the other subject only
    (entry,) = await queue(client, review.reviewers[0])
    url = f"/api/v1/review/items/{entry['code']}"

    unassigned = await client.get(url, headers=review.reviewers[1])
    assert unassigned.status_code == 404 and code(unassigned) == "review_item_not_found"
    assert (await score(client, review.reviewers[1], entry["code"], [1, 1])).status_code == 404
    assert await queue(client, review.reviewers[1]) == []

    other_school = await new_school(app)
    outsider, _ = await reviewer_account(app, client, new_phone, other_school)
    assert (await client.get(url, headers=outsider)).status_code == 404
    assert (await score(client, outsider, entry["code"], [1, 1])).status_code == 404
    assert await queue(client, outsider) == []
    unknown = await client.get("/api/v1/review/items/R-NOSUCH22", headers=review.reviewers[0])
    assert unknown.status_code == 404

    for path in (url, "/api/v1/review/queue"):
        refused = await client.get(path, headers=candidate.who)
        assert refused.status_code == 403 and code(refused) == "forbidden"
    assert (await score(client, candidate.who, entry["code"], [1, 1])).status_code == 403
    admin_as_reviewer = await client.get(url, headers=review.admin)
    assert admin_as_reviewer.status_code == 403
    exam_id = review.exam["id"]
    assert (
        await client.get(f"/api/v1/exams/{exam_id}/review/progress", headers=review.reviewers[0])
    ).status_code == 403
    other_admin = bearer(await staff(app, client, new_phone(), "school_admin", other_school))
    for path in ("progress", "settings", "assignments", "export.csv"):
        response = await client.get(f"/api/v1/exams/{exam_id}/review/{path}", headers=other_admin)
        assert response.status_code == 404 and code(response) == "exam_not_found", path
    published = await client.post(f"/api/v1/exams/{exam_id}/review/publish", headers=other_admin)
    assert published.status_code == 404
    assert (await client.get("/api/v1/review/queue")).status_code == 401


async def test_playback_link_for_assigned_reviewers_only(
    app, client, inbox, new_phone, review
) -> None:
    """The player gets a short-lived relative link (`/media/<token>`, no identity in it);
    a reviewer not assigned to the subject gets 404 and no link."""
    candidate = await verified_candidate(app, client, inbox, new_phone, review)
    await assign(client, review, 0)
    (entry,) = await queue(client, review.reviewers[0])
    url = f"/api/v1/review/items/{entry['code']}/playback"
    link = await client.get(url, headers=review.reviewers[0])
    assert link.status_code == 200, link.text
    assert link.json()["url"].startswith("/media/")
    for secret in candidate.secrets():
        assert secret not in link.text
    other = await client.get(url, headers=review.reviewers[1])
    assert other.status_code == 404 and code(other) == "review_item_not_found"


async def test_timeline_places_events_and_flags(app, client, inbox, new_phone, review, clock):
    """§6: an event reported 12 s into the recording sits at 12 s on the reviewer's timeline
    (server time), next to the face audit's flags."""
    await verified_candidate(
        app,
        client,
        inbox,
        new_phone,
        review,
        flags=[{"kind": "no_face", "from_s": 3, "to_s": 6, "samples": 4}],
        events=("phone_call",),
        clock=clock,
        event_after_s=12,
    )
    await assign(client, review, 0)
    (entry,) = await queue(client, review.reviewers[0])
    assert entry["flagged"] == 1
    item = await client.get(f"/api/v1/review/items/{entry['code']}", headers=review.reviewers[0])
    assert item.json()["events"] == [{"kind": "phone_call", "action": "flag", "at_s": 12.0}]
    assert item.json()["face_flags"] == [{"kind": "no_face", "from_s": 3.0, "to_s": 6.0}]
    page = await client.get(f"/review/items/{entry['code']}", headers=review.reviewers[0])
    assert 'data-seek="12.0"' in page.text and 'data-seek="3.0"' in page.text
    assert 'data-left="40.00"' in page.text  # 12 s of 30 s (positions.js places it)
