"""SPEC §3/§7 pages: the candidate's status page and support's review and appeal queues (zh/en)."""

from __future__ import annotations

import re

import pytest

from tests.identity.conftest import new_id_number, to_review

pytestmark = pytest.mark.usefixtures("app")
HTML = {"Accept": "text/html"}


async def test_status_page_shows_state_and_due_time(client, candidate) -> None:
    """§3: the candidate's page shows the state, the masked number and the review's due time."""
    who = await candidate()
    page = await client.get("/identity", headers={**who, **HTML})
    assert page.status_code == 200
    assert 'data-status="not_started"' in page.text and "尚未实名认证" in page.text
    number = new_id_number()
    await to_review(client, who, number)
    page = await client.get("/identity", headers={**who, **HTML, "Accept-Language": "en"})
    assert 'data-status="in_review"' in page.text
    assert "Support is reviewing your identity." in page.text
    assert number not in page.text and number[-4:] in page.text
    assert 'data-testid="review-due"' in page.text


async def test_support_decides_a_review_from_the_pages(client, candidate, agent) -> None:
    """§7: the queue lists the review with its due time; the agent approves it with a reason."""
    who = await candidate()
    number = new_id_number()
    review = await to_review(client, who, number)
    queue = await client.get("/support/reviews", headers={**agent, **HTML})
    assert queue.status_code == 200 and f"/support/reviews/{review['id']}" in queue.text
    assert number not in queue.text  # masked in the queue
    detail = await client.get(f"/support/reviews/{review['id']}", headers={**agent, **HTML})
    assert number in detail.text  # the decision needs the full number
    assert 'data-testid="no-face-checks"' in detail.text  # typed: no face check to list
    no_reason = await client.post(
        f"/support/reviews/{review['id']}/decision",
        data={"decision": "approve", "reason": ""},
        headers={**agent, **HTML},
    )
    assert no_reason.status_code == 422
    done = await client.post(
        f"/support/reviews/{review['id']}/decision",
        data={"decision": "approve", "reason": "照片与自拍一致"},
        headers={**agent, **HTML},
    )
    assert done.status_code == 303
    # Back on the queue, the agent is told the review was approved and where it went.
    after = await client.get(done.headers["location"], headers={**agent, **HTML})
    assert re.search(rf'class="alert notice"[^>]*>[^<]*#{review["id"]}\D', after.text)
    state = (await client.get("/api/v1/identity", headers=who)).json()
    assert state["status"] == "certified"
    assert (await client.get("/support/reviews", headers={**who, **HTML})).status_code == 403


async def test_support_appeals_page(client, candidate, agent) -> None:
    """§3: appeals show both sides' facts; the agent dismisses one with a reason."""
    appellant = await candidate()
    appeal = (
        await client.post(
            "/api/v1/identity/appeals",
            json={
                "kind": "candidate_number_taken",
                "candidate_number": "26110101000999",
                "message": "我的考生号",
            },
            headers=appellant,
        )
    ).json()
    page = await client.get("/support/appeals", headers={**agent, **HTML, "Accept-Language": "en"})
    assert page.status_code == 200 and f'data-testid="appeal-{appeal["id"]}"' in page.text
    done = await client.post(
        f"/support/appeals/{appeal['id']}/decision",
        data={"decision": "dismiss", "reason": "number belongs to the holder"},
        headers={**agent, **HTML},
    )
    assert done.status_code == 303
    mine = (await client.get("/api/v1/identity", headers=appellant)).json()["appeals"][0]
    assert (
        mine["status"] == "dismissed" and mine["decision_reason"] == "number belongs to the holder"
    )
