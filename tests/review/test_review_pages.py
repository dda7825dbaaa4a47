"""SPEC §6 pages over HTTP: the school console's review section (settings, assignments,
publish, export links) and the reviewer's scoring form, in zh and en."""

from __future__ import annotations

import pytest

from tests.review.conftest import queue, verified_candidate

pytestmark = pytest.mark.usefixtures("app")


async def test_console_settings_assignments_publish(app, client, inbox, new_phone, review):
    await verified_candidate(app, client, inbox, new_phone, review)
    exam_id = review.exam["id"]
    base = f"/school/exams/{exam_id}/review"
    admin = review.admin
    home = await client.get("/school", headers=admin)
    assert f'href="{base}"' in home.text

    page = await client.get(base, headers={**admin, "Accept-Language": "en"})
    assert page.status_code == 200
    for testid in ("progress", "settings-form", "assign-form", "publish-form", "export-xlsx"):
        assert f'data-testid="{testid}"' in page.text
    assert "Scoring rules" in page.text
    # Subjects go by their English names on English pages (a subject with none keeps its own).
    assert "Étude" in page.text and ">练习曲<" not in page.text and ">乐曲<" in page.text
    # Nobody assigned while two reviewers are needed: both subjects are short; one waits.
    assert page.text.count('data-testid="coverage-warning"') == 2
    assert 'data-testid="waiting-warning"' in page.text

    bad = await client.post(
        f"{base}/settings",
        data={
            "aggregate": "median",
            "reviewers_per_submission": "3",
            "escalation_threshold": "5",
            "max_reviewers": "2",
        },
        headers={**admin, "Accept-Language": "en"},
    )
    assert bad.status_code == 422 and 'data-code="review_setting_invalid"' in bad.text
    assert "Most reviewers per submission" in bad.text
    assert 'value="3"' in bad.text  # what was typed is kept
    saved = await client.post(
        f"{base}/settings",
        data={
            "aggregate": "median",
            "reviewers_per_submission": "1",
            "escalation_threshold": "5",
            "max_reviewers": "2",
        },
        headers=admin,
    )
    assert saved.status_code == 303
    settings = await client.get(f"/api/v1/exams/{exam_id}/review/settings", headers=admin)
    assert settings.json()["aggregate"] == "median"
    assert settings.json()["reviewers_per_submission"] == 1

    assigned = await client.post(
        f"{base}/assignments",
        data={
            "reviewer_id": str(review.reviewer_ids[0]),
            "subject_id": str(review.subject_id()),
            "share_percent": "100",
        },
        headers=admin,
    )
    assert assigned.status_code == 303
    (entry,) = await queue(client, review.reviewers[0])
    scored = await client.post(
        f"/review/items/{entry['code']}",
        data={"points-0": "50", "points-1": "30", "comment": "好"},
        headers=review.reviewers[0],
    )
    assert scored.status_code == 303
    shown = await client.get(scored.headers["location"], headers=review.reviewers[0])
    assert 'data-testid="my-total"' in shown.text and "80" in shown.text

    ready = await client.get(base, headers=admin)
    assert 'data-testid="waiting-warning"' not in ready.text
    assert ready.text.count('data-testid="coverage-warning"') == 1  # the other subject
    unconfirmed = await client.post(f"{base}/publish", data={}, headers=admin)
    assert unconfirmed.status_code == 422
    published = await client.post(f"{base}/publish", data={"confirm": "yes"}, headers=admin)
    assert published.status_code == 303
    page = await client.get(base, headers=admin)
    assert 'data-testid="published"' in page.text and 'data-testid="publish-form"' not in page.text
    locked = await client.get(f"/review/items/{entry['code']}", headers=review.reviewers[0])
    assert 'data-testid="locked"' in locked.text
    refused = await client.post(
        f"/review/items/{entry['code']}",
        data={"points-0": "10", "points-1": "10"},
        headers={**review.reviewers[0], "Accept-Language": "en"},
    )
    assert refused.status_code == 409 and 'data-code="scores_locked"' in refused.text

    listed = await client.get(f"/api/v1/exams/{exam_id}/review/assignments", headers=admin)
    removed = await client.post(
        f"{base}/assignments/{listed.json()[0]['id']}/delete", data={}, headers=admin
    )
    assert removed.status_code == 303
    assert (await client.get(base, headers=review.reviewers[0])).status_code == 403
