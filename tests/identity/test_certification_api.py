"""SPEC §3 through the API: stating an identity, conflicts, manual review, appeals, revocation.

The face check itself is in test_face_api.py (it needs the shared face photos).
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from tests.identity.conftest import jpeg, manual_entry, new_id_number, to_review
from vexam.core.audit import AuditEntry
from vexam.identity.models import Identity

pytestmark = pytest.mark.usefixtures("app")


async def submit(client, who, body):
    return await client.post("/api/v1/identity/certification", json=body, headers=who)


async def certify_by_review(client, who, agent, number, **extra):
    review = await to_review(client, who, number, **extra)
    decided = await client.post(
        f"/api/v1/support/reviews/{review['id']}/decision",
        json={"decision": "approve", "reason": "photo and selfie match"},
        headers=agent,
    )
    assert decided.status_code == 200, decided.text
    return review


async def test_not_started_then_manual_entry_goes_to_review(client, candidate) -> None:
    """§3: manual entry with no portrait to compare opens the manual review, with its reason."""
    who = await candidate()
    state = (await client.get("/api/v1/identity", headers=who)).json()
    assert state["status"] == "not_started" and state["next_step"] == "submit_identity"
    number = new_id_number()
    response = await submit(client, who, manual_entry(number))
    body = response.json()
    assert body["status"] == "review_required"
    assert body["review_reason"] == "no_reference_portrait"
    assert body["next_step"] == "request_review"
    assert body["id_number"] == number[:6] + "********" + number[-4:]
    assert number not in response.text


@pytest.mark.parametrize(
    ("number", "reason"),
    [
        ("11010519491231002", "length"),
        ("1101051949123100Z2", "characters"),
        ("110105194912310021", "check_character"),
        ("990105200001010012", "check_character"),
    ],
)
async def test_id_number_invalid_reasons(client, candidate, number, reason) -> None:
    """§3 id_number_invalid: each failure names its own reason and says it in words."""
    who = await candidate()
    response = await submit(client, who, manual_entry(number))
    assert response.status_code == 422
    problem = response.json()
    assert problem["code"] == "id_number_invalid"
    assert problem["reason"] == reason
    assert "身份证号" in problem["detail"]


async def test_id_number_reasons_province_and_birth_date(client, candidate) -> None:
    """§3 id_number_invalid: province, impossible date, stated date that disagrees."""
    from vexam.identity.idnumbers import check_character

    who = await candidate()
    for first17, reason, extra in [
        ("99010520000101001", "province", {}),
        ("11010520010229001", "birth_date", {}),
        ("11010520080229001", "birth_date_mismatch", {"birth_date": "2008-03-01"}),
    ]:
        number = first17 + check_character(first17)
        response = await submit(client, who, manual_entry(number, **extra))
        assert response.json()["reason"] == reason, response.text
    english = await submit(
        client, {**who, "Accept-Language": "en"}, manual_entry("110105194912310021")
    )
    assert "check character" not in english.json()["detail"]
    assert "does not fit" in english.json()["detail"]


async def test_normalised_number_is_accepted(client, candidate) -> None:
    """§3: lowercase x and full-width digits are accepted and normalised."""
    who = await candidate()
    typed = "１１０１０５１９４９１２３１００２x"
    response = await submit(client, who, manual_entry(typed))
    assert response.status_code == 200, response.text
    assert response.json()["id_number"] == "110105********002X"


async def test_manual_review_due_time_and_approval(client, candidate, agent, clock) -> None:
    """§3/§7: the review shows its due time (2 h of service time); support approves it."""
    clock.set(datetime(2026, 6, 1, 15, 30, tzinfo=UTC))  # 23:30 in Shanghai
    who = await candidate()
    number = new_id_number()
    review = await to_review(client, who, number)
    assert review["due_at"].startswith("2026-06-02T01:30")  # 09:30 Shanghai
    state = (await client.get("/api/v1/identity", headers=who)).json()
    assert state["status"] == "in_review" and state["next_step"] == "wait_for_review"
    assert state["review"]["due_at"] == review["due_at"]

    queue = (await client.get("/api/v1/support/reviews", headers=agent)).json()
    mine = next(row for row in queue if row["id"] == review["id"])
    assert mine["id_number"] != number and mine["overdue"] is False
    detail = (await client.get(f"/api/v1/support/reviews/{review['id']}", headers=agent)).json()
    assert detail["identity"]["id_number"] == number  # the decision needs the full number
    photo = await client.get(f"/api/v1/identity/photos/{detail['id_photo_id']}", headers=agent)
    assert photo.status_code == 200 and photo.headers["content-type"] == "image/jpeg"

    clock.set(datetime(2026, 6, 2, 2, 0, tzinfo=UTC))
    queue = (await client.get("/api/v1/support/reviews", headers=agent)).json()
    assert next(row for row in queue if row["id"] == review["id"])["overdue"] is True
    decided = await client.post(
        f"/api/v1/support/reviews/{review['id']}/decision",
        json={"decision": "approve", "reason": "the selfie matches the card"},
        headers=agent,
    )
    assert decided.status_code == 200
    state = (await client.get("/api/v1/identity", headers=who)).json()
    assert state["status"] == "certified" and state["next_step"] == "none"
    again = await client.post(
        f"/api/v1/support/reviews/{review['id']}/decision",
        json={"decision": "reject", "reason": "changed my mind"},
        headers=agent,
    )
    assert again.status_code == 409 and again.json()["code"] == "review_not_open"


async def test_rejected_review_lets_the_candidate_start_again(client, candidate, agent) -> None:
    """§3: a rejection gives a reason; the candidate can submit the details again."""
    who = await candidate()
    review = await to_review(client, who, new_id_number())
    await client.post(
        f"/api/v1/support/reviews/{review['id']}/decision",
        json={"decision": "reject", "reason": "the card photo is someone else's"},
        headers=agent,
    )
    state = (await client.get("/api/v1/identity", headers=who)).json()
    assert state["status"] == "rejected"
    assert state["review"]["decision_reason"] == "the card photo is someone else's"
    assert (await submit(client, who, manual_entry(new_id_number()))).status_code == 200


async def test_identity_conflict_names_the_holder_masked(client, candidate, agent) -> None:
    """§3 identity_conflict: a second account with the same number is told where it lives."""
    holder, other = await candidate(), await candidate()
    number = new_id_number()
    await certify_by_review(client, holder, agent, number)
    holder_phone = (await client.get("/api/v1/me", headers=holder)).json()["phone"]
    response = await submit(client, other, manual_entry(number))
    assert response.status_code == 409
    problem = response.json()
    assert problem["code"] == "identity_conflict"
    assert problem["holder_phone"] == holder_phone and "****" in holder_phone
    assert holder_phone in problem["detail"]


async def test_conflict_found_at_approval_keeps_the_review_open(client, candidate, agent) -> None:
    """§3: two pending certifications of one number: the second approval is refused."""
    first, second = await candidate(), await candidate()
    number = new_id_number()
    review_one = await to_review(client, first, number)
    review_two = await to_review(client, second, number)
    approve = {"decision": "approve", "reason": "looks right"}
    ok = await client.post(
        f"/api/v1/support/reviews/{review_one['id']}/decision", json=approve, headers=agent
    )
    assert ok.status_code == 200
    refused = await client.post(
        f"/api/v1/support/reviews/{review_two['id']}/decision", json=approve, headers=agent
    )
    assert refused.status_code == 409 and refused.json()["code"] == "identity_conflict"
    queue = (await client.get("/api/v1/support/reviews", headers=agent)).json()
    assert any(row["id"] == review_two["id"] for row in queue)


async def test_candidate_number_taken(client, candidate, agent) -> None:
    """§3 candidate_number_taken: one candidate number per season."""
    first, second = await candidate(), await candidate()
    await certify_by_review(
        client, first, agent, new_id_number(), candidate_number="26110101000123"
    )
    response = await submit(
        client, second, manual_entry(new_id_number(), candidate_number="26110101000123")
    )
    assert response.status_code == 409 and response.json()["code"] == "candidate_number_taken"


async def test_document_manual_only_and_other_documents(client, candidate) -> None:
    """§3 document_manual_only: no photo reading for temporary IDs; other documents → review."""
    who = await candidate()
    response = await client.post(
        "/api/v1/identity/id-photo",
        data={"document_type": "temporary_id"},
        files={"file": ("id.jpg", jpeg(), "image/jpeg")},
        headers=who,
    )
    assert response.status_code == 422 and response.json()["code"] == "document_manual_only"
    passport = await submit(
        client,
        who,
        {
            "identity_type": "other",
            "document_type": "other",
            "document_kind": "hk_macao_permit",
            "name": "陈大文",
            "id_number": "H12345678",
        },
    )
    assert passport.status_code == 200
    assert passport.json()["review_reason"] == "other_document"
    assert passport.json()["id_number"] == "H1*****78"


async def test_photos_are_private(client, candidate) -> None:
    """§8: identity photos reachable only by their owner and support; bad files refused."""
    owner, stranger = await candidate(), await candidate()
    uploaded = await client.post(
        "/api/v1/identity/id-photo",
        data={"read": "false"},
        files={"file": ("id.jpg", jpeg(), "image/jpeg")},
        headers=owner,
    )
    assert uploaded.status_code == 201, uploaded.text
    photo_id = uploaded.json()["photo_id"]
    assert (
        await client.get(f"/api/v1/identity/photos/{photo_id}", headers=owner)
    ).status_code == 200
    assert (
        await client.get(f"/api/v1/identity/photos/{photo_id}", headers=stranger)
    ).status_code == 404
    assert (await client.get(f"/api/v1/identity/photos/{photo_id}")).status_code == 401
    garbage = await client.post(
        "/api/v1/identity/id-photo",
        data={"read": "false"},
        files={"file": ("id.jpg", b"not a picture", "image/jpeg")},
        headers=owner,
    )
    assert garbage.status_code == 422 and garbage.json()["code"] == "image_invalid"


async def test_a_refused_request_keeps_no_photo(client, candidate, app) -> None:
    """Nothing half-kept: a review refused for a bad selfie leaves no card photo behind."""
    who = await candidate()
    user_id = (await client.get("/api/v1/me", headers=who)).json()["id"]
    await submit(client, who, manual_entry(new_id_number()))
    refused = await client.post(
        "/api/v1/identity/manual-review",
        files={
            "id_photo": ("id.jpg", jpeg(), "image/jpeg"),
            "selfie": ("me.jpg", b"not a picture", "image/jpeg"),
        },
        headers=who,
    )
    assert refused.status_code == 422 and refused.json()["code"] == "image_invalid"
    assert await app.state.store.list(f"identity/{user_id}/") == []
    state = (await client.get("/api/v1/identity", headers=who)).json()
    assert state["status"] == "review_required"  # still open: the candidate can send again


async def test_staff_cannot_use_candidate_routes_and_vice_versa(client, candidate, agent) -> None:
    """Authorization: support routes are for support agents; certifying is for candidates."""
    who = await candidate()
    assert (await client.get("/api/v1/support/reviews", headers=who)).status_code == 403
    assert (await submit(client, agent, manual_entry(new_id_number()))).status_code == 403


async def test_appeal_open_cancel_and_not_open(client, candidate, agent) -> None:
    """§3 appeal_not_open: a candidate may cancel their own appeal only while it is open."""
    holder, appellant = await candidate(), await candidate()
    number = new_id_number()
    await certify_by_review(client, holder, agent, number)
    body = {"kind": "identity_conflict", "id_number": number, "message": "这是我的身份证号"}
    opened = await client.post("/api/v1/identity/appeals", json=body, headers=appellant)
    assert opened.status_code == 201, opened.text
    appeal = opened.json()
    assert appeal["status"] == "open" and appeal["id_number"] != number
    same = await client.post("/api/v1/identity/appeals", json=body, headers=appellant)
    assert same.json()["id"] == appeal["id"]  # one open appeal of a kind
    stranger = await candidate()
    assert (
        await client.post(f"/api/v1/identity/appeals/{appeal['id']}/cancel", headers=stranger)
    ).status_code == 404
    cancelled = await client.post(
        f"/api/v1/identity/appeals/{appeal['id']}/cancel", headers=appellant
    )
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    again = await client.post(f"/api/v1/identity/appeals/{appeal['id']}/cancel", headers=appellant)
    assert again.status_code == 409 and again.json()["code"] == "appeal_not_open"


async def test_upheld_appeal_revokes_the_wrong_holder(client, candidate, agent, app) -> None:
    """§3: support upholds an appeal and revokes the wrong certification; the audit keeps it."""
    wrong, owner = await candidate(), await candidate()
    number = new_id_number()
    await certify_by_review(client, wrong, agent, number)
    body = {"kind": "identity_conflict", "id_number": number, "name": "张三", "message": "mine"}
    appeal = (await client.post("/api/v1/identity/appeals", json=body, headers=owner)).json()
    queue = (await client.get("/api/v1/support/appeals", headers=agent)).json()
    row = next(item for item in queue if item["id"] == appeal["id"])
    assert row["id_number"] == number and row["holder"]["id_number"] == number
    decided = await client.post(
        f"/api/v1/support/appeals/{appeal['id']}/decision",
        json={
            "decision": "uphold",
            "reason": "holder mistyped their number",
            "revoke_holder": True,
        },
        headers=agent,
    )
    assert decided.status_code == 200 and decided.json()["status"] == "upheld"
    assert (await client.get("/api/v1/identity", headers=wrong)).json()["status"] == "revoked"
    assert (await submit(client, owner, manual_entry(number))).status_code == 200
    async with app.state.db.unit_of_work() as session:
        entry = (
            (
                await session.execute(
                    select(AuditEntry)
                    .where(AuditEntry.action == "identity.revoked")
                    .order_by(AuditEntry.id.desc())
                )
            )
            .scalars()
            .first()
        )
        assert entry is not None
        assert entry.actor_role == "support"
        assert entry.detail["reason"] == "holder mistyped their number"
        stored = (await session.execute(select(Identity.id_number_enc))).scalars().all()
        assert all(number not in value for value in stored)
    revoke_again = await client.post(
        f"/api/v1/support/identities/{row['holder']['identity_id']}/revoke",
        json={"reason": "again"},
        headers=agent,
    )
    assert revoke_again.status_code == 409 and revoke_again.json()["code"] == "identity_not_ready"


async def test_already_certified(client, candidate, agent) -> None:
    """A certified identity is final for its owner until support revokes it."""
    who = await candidate()
    await certify_by_review(client, who, agent, new_id_number())
    again = await submit(client, who, manual_entry(new_id_number()))
    assert again.status_code == 409 and again.json()["code"] == "identity_already_certified"


async def test_full_number_never_reaches_logs_or_audit(
    client, candidate, agent, app, caplog
) -> None:
    """§8: a whole certification journey writes the ID number to no log line or audit entry."""
    import logging

    caplog.set_level(logging.DEBUG)
    who = await candidate()
    number = new_id_number()
    await certify_by_review(client, who, agent, number, candidate_number="26110101000777")
    await client.post(
        "/api/v1/identity/appeals",
        json={"kind": "identity_conflict", "id_number": number, "message": "test"},
        headers=await candidate(),
    )
    assert number not in caplog.text
    assert number[6:14] not in caplog.text  # not even the birth date part
    async with app.state.db.unit_of_work() as session:
        details = (await session.execute(select(AuditEntry.detail))).scalars().all()
    assert all(number not in str(detail) for detail in details)
