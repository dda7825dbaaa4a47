"""SPEC §4 applications and payment: roster match, confirm, one order, one charge, mock exam."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta
from typing import Any

import pytest

from tests.exams.test_exam_setup import exam_body, new_school
from tests.helpers import app_ctx, bearer, register, staff
from tests.identity.conftest import new_id_number, to_review
from vexam.core.crypto import blind_index, encrypt_text
from vexam.exams.payments import SandboxProvider
from vexam.identity.idnumbers import mask_id_number
from vexam.schools import service as schools
from vexam.schools.models import RosterRow

pytestmark = pytest.mark.usefixtures("app")


async def add_roster_row(
    app: Any, school_id: int, exam_id: int, number: str, **fields: Any
) -> None:
    """A roster row as an import leaves it (the import itself is tested in tests/schools)."""
    key = app.state.settings.data_key
    async with app_ctx(app) as ctx:
        now = ctx.now()
        ctx.session.add(
            RosterRow(
                school_id=school_id,
                exam_id=exam_id,
                name=fields.get("name", "张三"),
                id_number_enc=encrypt_text(key, number, context="identity.id_number"),
                id_number_index=blind_index(key, number, kind="id_number"),
                id_number_masked=mask_id_number(number),
                province=fields.get("province", "北京"),
                candidate_number=fields.get("candidate_number", "27110101000001"),
                major=fields.get("major", "钢琴"),
                created_at=now,
                updated_at=now,
            )
        )


@pytest.fixture
async def world(app, client, inbox, new_phone) -> dict[str, Any]:
    """A school with a published paid exam, a support agent and an operator."""
    school_id = await new_school(app)
    admin = bearer(await staff(app, client, new_phone(), "school_admin", school_id))
    body = exam_body(published=True, fee_cents=18000)
    body["formal_starts_at"] = "2026-06-01T00:00:00+08:00"
    body["formal_ends_at"] = "2026-06-30T18:00:00+08:00"
    exam = (
        await client.post(f"/api/v1/schools/{school_id}/exams", json=body, headers=admin)
    ).json()
    agent = bearer(await staff(app, client, new_phone(), "support"))
    operator = bearer(await staff(app, client, new_phone(), "operator"))
    return {
        "school_id": school_id,
        "exam": exam,
        "admin": admin,
        "agent": agent,
        "operator": operator,
    }


async def certified_candidate(
    client, inbox, new_phone, agent, name: str = "张三"
) -> tuple[dict[str, str], str]:
    """A candidate certified by a manual review; returns (auth header, ID number)."""
    who = bearer((await register(client, inbox, new_phone()))["token"])
    number = new_id_number()
    review = await to_review(client, who, number, name=name)
    decided = await client.post(
        f"/api/v1/support/reviews/{review['id']}/decision",
        json={"decision": "approve", "reason": "matches"},
        headers=agent,
    )
    assert decided.status_code == 200, decided.text
    return who, number


async def test_apply_confirm_pay_once_then_mock_opens(app, client, inbox, new_phone, world) -> None:
    """§4: matched by ID number, confirmed, one order, paid once in the sandbox, mock open."""
    exam_id = world["exam"]["id"]
    who, number = await certified_candidate(client, inbox, new_phone, world["agent"])
    await add_roster_row(app, world["school_id"], exam_id, number)
    catalog = await client.get("/api/v1/exam-catalog", params={"q": "音乐"}, headers=who)
    assert exam_id in [entry["exam_id"] for entry in catalog.json()]

    matched = await client.post(
        f"/api/v1/exams/{exam_id}/application", json={"province": "11"}, headers=who
    )
    assert matched.status_code == 200, matched.text
    assert matched.json()["status"] == "matched" and matched.json()["major"] == "钢琴"
    assert matched.json()["mock"] == "not_enrolled"
    enrolled = await client.post(f"/api/v1/exams/{exam_id}/application/confirm", headers=who)
    assert enrolled.json()["status"] == "enrolled"
    assert enrolled.json()["mock"] == "payment_required"
    mock = await client.get(f"/api/v1/exams/{exam_id}/mock", headers=who)
    assert mock.status_code == 402 and mock.json()["code"] == "payment_required"

    first = (await client.post(f"/api/v1/exams/{exam_id}/payment-order", headers=who)).json()
    second = (await client.post(f"/api/v1/exams/{exam_id}/payment-order", headers=who)).json()
    assert first["id"] == second["id"] and first["amount_cents"] == 18000
    paid = await client.post(first["pay_url"], headers=who)
    assert paid.status_code == 200 and paid.json()["status"] == "paid"
    again = await client.post(first["pay_url"], headers=who)
    assert again.status_code == 409 and again.json()["code"] == "already_paid"
    assert (await client.get(f"/api/v1/exams/{exam_id}/mock", headers=who)).status_code == 204
    mine = (await client.get("/api/v1/me/applications", headers=who)).json()
    assert mine[0]["payment"]["status"] == "paid" and mine[0]["mock"] == "open"


async def test_not_in_roster_and_roster_mismatch(app, client, inbox, new_phone, world) -> None:
    """§4 not_in_roster; roster_mismatch names the fields the school must correct."""
    exam_id = world["exam"]["id"]
    who, number = await certified_candidate(client, inbox, new_phone, world["agent"], name="王五")
    missing = await client.post(
        f"/api/v1/exams/{exam_id}/application", json={"province": "北京"}, headers=who
    )
    assert missing.status_code == 404 and missing.json()["code"] == "not_in_roster"
    await add_roster_row(app, world["school_id"], exam_id, number, name="王伍", province="河北")
    mismatch = await client.post(
        f"/api/v1/exams/{exam_id}/application", json={"province": "北京市"}, headers=who
    )
    assert mismatch.status_code == 409
    assert mismatch.json()["code"] == "roster_mismatch"
    assert mismatch.json()["fields"] == ["name", "province"]
    only_name = await client.post(
        f"/api/v1/exams/{exam_id}/application", json={"province": "13"}, headers=who
    )
    assert only_name.json()["fields"] == ["name"]


async def test_uncertified_closed_and_free_exams(
    app, client, inbox, new_phone, world, clock
) -> None:
    """Applying needs a certified identity and an open window; a free exam needs no order."""
    exam_id = world["exam"]["id"]
    stranger = bearer((await register(client, inbox, new_phone()))["token"])
    refused = await client.post(
        f"/api/v1/exams/{exam_id}/application", json={"province": "11"}, headers=stranger
    )
    assert refused.status_code == 403 and refused.json()["code"] == "identity_not_certified"

    free = exam_body(published=True, fee_cents=0, mock_limit=3)
    free["formal_starts_at"], free["formal_ends_at"] = (
        "2026-06-01T00:00:00+08:00",
        "2026-06-30T00:00:00+08:00",
    )
    free_exam = (
        await client.post(
            f"/api/v1/schools/{world['school_id']}/exams", json=free, headers=world["admin"]
        )
    ).json()
    who, number = await certified_candidate(client, inbox, new_phone, world["agent"])
    await add_roster_row(app, world["school_id"], free_exam["id"], number)
    await client.post(
        f"/api/v1/exams/{free_exam['id']}/application", json={"province": "11"}, headers=who
    )
    enrolled = await client.post(
        f"/api/v1/exams/{free_exam['id']}/application/confirm", headers=who
    )
    assert enrolled.json()["mock"] == "open" and enrolled.json()["mock_limit"] == 3
    order = await client.post(f"/api/v1/exams/{free_exam['id']}/payment-order", headers=who)
    assert order.status_code == 409 and order.json()["code"] == "payment_not_required"

    clock.advance(timedelta(days=29, hours=9))  # past the window's end, still signed in
    closed = await client.post(
        f"/api/v1/exams/{exam_id}/application", json={"province": "11"}, headers=who
    )
    assert closed.status_code == 409 and closed.json()["code"] == "exam_closed"


async def enrolled_with_order(
    app, client, inbox, new_phone, world
) -> tuple[dict[str, str], dict[str, Any]]:
    exam_id = world["exam"]["id"]
    who, number = await certified_candidate(client, inbox, new_phone, world["agent"])
    await add_roster_row(app, world["school_id"], exam_id, number)
    await client.post(f"/api/v1/exams/{exam_id}/application", json={"province": "11"}, headers=who)
    await client.post(f"/api/v1/exams/{exam_id}/application/confirm", headers=who)
    orders = await asyncio.gather(
        *[client.post(f"/api/v1/exams/{exam_id}/payment-order", headers=who) for _ in range(20)]
    )
    ids = {response.json()["id"] for response in orders}
    assert len(ids) == 1, [response.text for response in orders]  # 20 at once → one order
    return who, orders[0].json()


def signed(app: Any, order: dict[str, Any], event_id: str) -> tuple[bytes, dict[str, str]]:
    gateway = SandboxProvider(app.state.settings.secret_key)
    body = json.dumps(
        {
            "event_id": event_id,
            "order_id": order["id"],
            "amount_cents": order["amount_cents"],
            "trade_no": f"T{event_id}",
            "status": "paid",
        }
    ).encode()
    return body, {"x-sandbox-signature": gateway.sign(body), "content-type": "application/json"}


async def test_fifty_concurrent_callbacks_charge_once(app, client, inbox, new_phone, world) -> None:
    """§4: one callback delivered 50 times at once, and 10 different ones, charge once."""
    who, order = await enrolled_with_order(app, client, inbox, new_phone, world)
    body, headers = signed(app, order, "evt-same")
    responses = await asyncio.gather(
        *[
            client.post("/api/v1/payments/callback/sandbox", content=body, headers=headers)
            for _ in range(50)
        ]
    )
    results = [response.json()["result"] for response in responses]
    assert results.count("charged") == 1 and results.count("duplicate") == 49
    others = [signed(app, order, f"evt-{i}") for i in range(10)]
    more = await asyncio.gather(
        *[client.post("/api/v1/payments/callback/sandbox", content=b, headers=h) for b, h in others]
    )
    assert {response.json()["result"] for response in more} == {"ignored"}
    forged = await client.post(
        "/api/v1/payments/callback/sandbox",
        content=body,
        headers={"x-sandbox-signature": "0" * 64, "content-type": "application/json"},
    )
    assert forged.status_code == 400 and forged.json()["code"] == "payment_callback_invalid"
    mine = (await client.get("/api/v1/me/applications", headers=who)).json()
    assert mine[0]["payment"]["status"] == "paid"


async def test_refund_is_an_operator_action(app, client, inbox, new_phone, world) -> None:
    """§4: refunds are an operator action, audited with a reason; candidates cannot."""
    who, order = await enrolled_with_order(app, client, inbox, new_phone, world)
    await client.post(order["pay_url"], headers=who)
    denied = await client.post(
        f"/api/v1/payments/{order['id']}/refund", json={"reason": "please"}, headers=who
    )
    assert denied.status_code == 403
    refunded = await client.post(
        f"/api/v1/payments/{order['id']}/refund",
        json={"reason": "exam cancelled"},
        headers=world["operator"],
    )
    assert refunded.status_code == 200 and refunded.json()["status"] == "refunded"
    again = await client.post(
        f"/api/v1/payments/{order['id']}/refund",
        json={"reason": "twice"},
        headers=world["operator"],
    )
    assert again.status_code == 409 and again.json()["code"] == "payment_not_refundable"


async def test_catalog_search_by_school_or_exam_name(app, client, inbox, new_phone, world) -> None:
    """The catalog finds published exams by school or exam name; % and _ are literal."""
    who = bearer((await register(client, inbox, new_phone()))["token"])
    exam_id = world["exam"]["id"]
    async with app_ctx(app) as ctx:
        school = await schools.get_school(ctx, world["school_id"])
        school.name_en = f"Conservatory {world['school_id']}"

    def found(response: Any) -> list[int]:
        assert response.status_code == 200, response.text
        return [entry["exam_id"] for entry in response.json()]

    by_school = await client.get(
        "/api/v1/exam-catalog", params={"q": f"conservatory {world['school_id']}"}, headers=who
    )
    assert found(by_school) == [exam_id]
    by_exam = await client.get("/api/v1/exam-catalog", params={"q": "钢琴"}, headers=who)
    assert exam_id in found(by_exam)
    for literal in ("%", "_", "\\"):
        nothing = await client.get("/api/v1/exam-catalog", params={"q": literal}, headers=who)
        assert exam_id not in found(nothing)
