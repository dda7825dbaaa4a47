"""SPEC §3/§7/§8 support console: the review queue by due time, decisions, revocation and the
audit-log search (by phone, ID number or account; masked values only), and who is refused."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from tests.helpers import bearer, register, staff
from tests.identity.conftest import new_id_number, to_review

pytestmark = pytest.mark.usefixtures("app")
HTML = {"Accept": "text/html"}
EN = {**HTML, "Accept-Language": "en"}


async def new_candidate(client: Any, inbox: Any, phone: str) -> tuple[dict[str, str], int]:
    """A registered candidate: its auth header and account id."""
    body = await register(client, inbox, phone)
    who = bearer(body["token"])
    me = (await client.get("/api/v1/me", headers=who)).json()
    return who, int(me["id"])


async def test_queue_by_due_time_with_overdue_marked(client, inbox, new_phone, clock, app) -> None:
    """§3: the earliest due first; a late one says so and by how long."""
    agent = bearer(await staff(app, client, new_phone(), "support"))
    first, _ = await new_candidate(client, inbox, new_phone())
    early = await to_review(client, first, new_id_number())
    clock.advance(minutes=30)
    second, _ = await new_candidate(client, inbox, new_phone())
    late = await to_review(client, second, new_id_number())
    clock.advance(hours=2, minutes=10)  # the first is due 2 h of service time after it came
    page = await client.get("/support/reviews", headers={**agent, **EN})
    assert page.status_code == 200
    mine = [f'data-review="{early["id"]}"', f'data-review="{late["id"]}"']
    at = [page.text.index(marker) for marker in mine]
    assert at[0] < at[1]  # earliest due first
    row = page.text[page.text.rindex("<li", 0, at[0]) : page.text.index("</li>", at[0])]
    assert 'data-overdue="1"' in row and "Overdue by" in row
    detail = await client.get(f"/support/reviews/{early['id']}", headers={**agent, **EN})
    assert 'data-overdue="1"' in detail.text and "Face distance" in detail.text
    assert detail.text.count("/api/v1/identity/photos/") == 2  # the owner/support-only route
    assert 'name="csrf_token"' in detail.text
    clock.advance(days=2)  # days, once a whole day late
    later = await client.get(f"/support/reviews/{early['id']}", headers={**agent, **EN})
    assert "Overdue by 2 d 0 h" in later.text


async def test_decide_revoke_and_find_in_audit_log(client, inbox, new_phone, app) -> None:
    """§7/§8: approve, revoke, then find both by phone, ID number and account, masked."""
    agent = bearer(await staff(app, client, new_phone(), "support"))
    phone = new_phone()
    who, user_id = await new_candidate(client, inbox, phone)
    number = new_id_number()
    review = await to_review(client, who, number)
    done = await client.post(
        f"/support/reviews/{review['id']}/decision",
        data={"decision": "approve", "reason": "照片与自拍一致"},
        headers={**agent, **HTML},
    )
    assert done.status_code == 303
    page = await client.get(f"/support/reviews/{review['id']}", headers={**agent, **EN})
    assert 'data-testid="revoke-form"' in page.text
    no_reason = await client.post(
        f"/support/reviews/{review['id']}/revoke", data={"reason": ""}, headers={**agent, **HTML}
    )
    assert no_reason.status_code == 422
    revoked = await client.post(
        f"/support/reviews/{review['id']}/revoke",
        data={"reason": "号码输错"},
        headers={**agent, **HTML},
    )
    assert revoked.status_code == 303
    assert (await client.get("/api/v1/identity", headers=who)).json()["status"] == "revoked"

    masked = f"{phone[:3]}****{phone[-4:]}"
    by_phone = await client.get(
        "/support/audit", params={"phone": f"+86 {phone}"}, headers={**agent, **EN}
    )
    assert by_phone.status_code == 200
    actions = by_phone.text
    for action in ("identity.review_approved", "identity.revoked", "account.created"):
        assert f'data-action="{action}"' in actions
    assert masked in actions and number not in actions
    assert actions.count(phone) <= 2  # only in the address of the page links, never shown
    # newest first: the revocation comes before the approval
    assert actions.index('data-action="identity.revoked"') < actions.index(
        'data-action="identity.review_approved"'
    )

    by_id = await client.get(
        "/support/audit", params={"id_number": number.lower()}, headers={**agent, **EN}
    )
    assert by_id.status_code == 303
    where = by_id.headers["location"]
    assert number not in where and number.lower() not in where
    assert len(parse_qs(urlsplit(where).query)["id_index"][0]) == 64
    found = await client.get(where, headers={**agent, **EN})
    assert 'data-action="identity.review_approved"' in found.text and number not in found.text

    posted = await client.post(
        "/support/audit", data={"id_number": number, "phone": ""}, headers={**agent, **HTML}
    )
    assert posted.status_code == 303 and posted.headers["location"] == where

    by_user = await client.get(
        "/support/audit", params={"user_id": str(user_id)}, headers={**agent, **EN}
    )
    assert 'data-action="identity.revoked"' in by_user.text and phone not in by_user.text

    nobody = await client.get(
        "/support/audit", params={"phone": new_phone()}, headers={**agent, **EN}
    )
    assert 'data-testid="audit-nobody"' in nobody.text
    bad = await client.get("/support/audit", params={"phone": "12"}, headers={**agent, **EN})
    assert bad.status_code == 422 and 'data-code="phone_invalid"' in bad.text


async def test_audit_log_pages_fifty_newest_first(client, inbox, new_phone, clock, app) -> None:
    """§8: 50 entries a page, the newest first, the older ones one link away."""
    agent = bearer(await staff(app, client, new_phone(), "support"))
    _, user_id = await new_candidate(client, inbox, new_phone())
    from tests.helpers import app_ctx
    from vexam.core import audit

    async with app_ctx(app) as ctx:
        for n in range(55):
            clock.advance(seconds=1)
            await audit.record(
                ctx, "test.step", "user", user_id, actor_user_id=user_id, n=n, phone="13812345678"
            )
    first = await client.get("/support/audit", params={"user_id": user_id}, headers={**agent, **EN})
    assert 'data-count="50"' in first.text and 'data-testid="audit-older"' in first.text
    assert "13812345678" not in first.text and "138****5678" in first.text
    assert first.text.index("<code>n</code>: 54<") < first.text.index("<code>n</code>: 53<")
    second = await client.get(
        "/support/audit", params={"user_id": user_id, "page": 2}, headers={**agent, **EN}
    )
    assert 'data-testid="audit-older"' not in second.text and "<code>n</code>: 0<" in second.text


@pytest.mark.parametrize("role", ["candidate", "school_admin", "reviewer"])
async def test_others_are_refused(client, inbox, new_phone, app, role) -> None:
    """§0: only support (and operators for the audit log) use the support console."""
    if role == "candidate":
        who, _ = await new_candidate(client, inbox, new_phone())
    else:
        school = None
        if role == "school_admin":
            from tests.helpers import app_ctx
            from vexam.schools import service as schools

            async with app_ctx(app) as ctx:
                school = (await schools.create_school(ctx, f"s{new_phone()}", "测试中学")).id
        who = bearer(await staff(app, client, new_phone(), role, school_id=school))
    for path in ("/support/reviews", "/support/appeals", "/support/audit"):
        assert (await client.get(path, headers={**who, **HTML})).status_code == 403, path


async def test_operator_reads_the_audit_log(client, new_phone, app) -> None:
    """§8: operators search the audit log too (not the review queue)."""
    operator = bearer(await staff(app, client, new_phone(), "operator"))
    page = await client.get("/support/audit", headers={**operator, **EN})
    assert page.status_code == 200 and "Search by phone" in page.text
    assert (await client.get("/support/reviews", headers={**operator, **HTML})).status_code == 403
    home = await client.get("/", headers={**operator, **HTML})
    assert 'href="/support/audit"' in home.text


async def test_appeal_shows_both_sides_and_is_decided(client, inbox, new_phone, app) -> None:
    """§3: the appellant's statement beside the holder's masked facts; upheld with revocation."""
    agent = bearer(await staff(app, client, new_phone(), "support"))
    holder, _ = await new_candidate(client, inbox, new_phone())
    number = new_id_number()
    review = await to_review(client, holder, number)
    await client.post(
        f"/support/reviews/{review['id']}/decision",
        data={"decision": "approve", "reason": "一致"},
        headers={**agent, **HTML},
    )
    appellant, _ = await new_candidate(client, inbox, new_phone())
    appeal = await client.post(
        "/api/v1/identity/appeals",
        json={
            "kind": "identity_conflict",
            "id_number": number,
            "name": "张三",
            "message": "这是我的身份证",
        },
        headers=appellant,
    )
    assert appeal.status_code == 201, appeal.text
    appeal_id = appeal.json()["id"]
    page = await client.get("/support/appeals", headers={**agent, **EN})
    card = page.text[page.text.index(f'data-testid="appeal-{appeal_id}"') :]
    card = card[: card.index("</section>")]
    holder_side = card[card.index('data-testid="holder"') :]
    assert "这是我的身份证" in card and "Someone else is certified" in card
    assert number not in holder_side and number[-4:] in holder_side
    assert 'name="revoke_holder"' in card and 'name="csrf_token"' in card
    done = await client.post(
        f"/support/appeals/{appeal_id}/decision",
        data={"decision": "uphold", "reason": "持证人号码输错", "revoke_holder": "on"},
        headers={**agent, **HTML},
    )
    assert done.status_code == 303
    assert (await client.get("/api/v1/identity", headers=holder)).json()["status"] == "revoked"
    again = await client.post(
        f"/support/appeals/{appeal_id}/decision",
        data={"decision": "dismiss", "reason": "重复"},
        headers={**agent, **EN},
    )
    assert again.status_code == 409 and 'data-code="appeal_not_open"' in again.text


async def test_a_search_is_itself_audited(client, inbox, new_phone, app) -> None:
    """§8: who searched whose trail is kept, with the criteria masked."""
    agent_phone = new_phone()
    agent = bearer(await staff(app, client, agent_phone, "support"))
    phone = new_phone()
    _, user_id = await new_candidate(client, inbox, phone)
    await client.get("/support/audit", params={"phone": phone}, headers={**agent, **EN})
    me = (await client.get("/api/v1/me", headers=agent)).json()["id"]
    trail = await client.get("/support/audit", params={"user_id": me}, headers={**agent, **EN})
    row = trail.text[trail.text.rindex('data-action="audit.searched"') :]  # the older search
    row = row[: row.index("</tr>")]
    assert f"{phone[:3]}****{phone[-4:]}" in row and phone not in row and str(user_id) in row


async def test_audit_details_are_named_with_their_codes_kept(client, inbox, new_phone, app) -> None:
    """Issue 9: detail keys and known codes read as words (the code in a title); free text,
    numbers and masked values stay as they are; a gateway's callback names no account of its
    own."""
    agent = bearer(await staff(app, client, new_phone(), "support"))
    _, user_id = await new_candidate(client, inbox, new_phone())
    from tests.helpers import app_ctx
    from vexam.core import audit

    async with app_ctx(app) as ctx:
        await audit.record(
            ctx,
            "identity.submitted",
            "identity",
            user_id,
            actor_user_id=user_id,
            status="review_required",
            review_reason="no_reference_portrait",
            document_type="resident_id",
            locale="en",
            revoked_holder=False,
            reason="照片模糊 13812345678",
            distance=0.42,
            rule="camera",
            locked_until="2026-03-01T04:05:00+00:00",
        )
        await audit.record(
            ctx,
            "payment.callback_charged",
            "payment_order",
            "7",
            actor_user_id=user_id,
            actor_role="payment_provider",
            event_id="evt-1",
        )
    for lang, words in (
        ("en", ("Manual review required", "Resident ID card", "English", "No", "the camera")),
        ("zh-CN", ("需要人工审核", "居民身份证", "否", "未授予摄像头权限")),
    ):
        page = await client.get(
            "/support/audit",
            params={"user_id": user_id},
            headers={**agent, **HTML, "Accept-Language": lang},
        )
        row = page.text[page.text.index('data-action="identity.submitted"') :]
        row = row[: row.index("</tr>")]
        for word in words:
            assert word in row, (lang, word)
        codes = ("review_required", "no_reference_portrait", "resident_id", "en", "false", "camera")
        for code in codes:
            assert f'data-code="{code}" title="{code}"' in row
            assert f">{code}<" not in row  # never the bare code
        assert 'data-key="review_reason" title="review_reason"' in row
        assert '<time datetime="2026-03-01T04:05:00+00:00">2026' in row  # in the reader's zone
        assert "照片模糊 138****5678" in row and "13812345678" not in row and ": 0.42" in row
        paid = page.text[page.text.index('data-action="payment.callback_charged"') :]
        actor = paid[paid.index('data-testid="audit-actor"') :]
        actor = actor[: actor.index("</td>")]
        provider = "Payment provider" if lang == "en" else "支付渠道"
        assert provider in actor and f"{provider} #" not in actor  # no account of its own
        assert lang != "en" or f"paying candidate #{user_id}" in actor
