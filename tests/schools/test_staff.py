"""SPEC §4 schools and staff: operators create them; a school's staff see only their school."""

from __future__ import annotations

import secrets

import pytest

from tests.helpers import PASSWORD, bearer, send_code, staff

pytestmark = pytest.mark.usefixtures("app")


async def login(client, phone: str, password: str = PASSWORD) -> dict[str, str]:
    signed_in = await client.post("/api/v1/auth/login", json={"phone": phone, "password": password})
    assert signed_in.status_code == 200, signed_in.text
    return bearer(signed_in.json()["token"])


async def test_operator_creates_school_admin_and_support(app, client, inbox, new_phone) -> None:
    """An operator creates a school and its staff; a staff member without a password sets
    one by SMS reset; the school admin then reads their school."""
    operator = bearer(await staff(app, client, new_phone(), "operator"))
    slug = f"conservatory-{secrets.token_hex(3)}"
    created = await client.post(
        "/api/v1/schools",
        json={"slug": slug, "name": "示范音乐学院", "name_en": "Demo Conservatory"},
        headers=operator,
    )
    assert created.status_code == 201, created.text
    school = created.json()
    assert school["timezone"] == "Asia/Shanghai"
    assert slug in [
        item["slug"] for item in (await client.get("/api/v1/schools", headers=operator)).json()
    ]
    taken = await client.post(
        "/api/v1/schools", json={"slug": slug, "name": "重复"}, headers=operator
    )
    assert taken.status_code == 422

    admin_phone = new_phone()
    made = await client.post(
        "/api/v1/staff",
        json={"phone": admin_phone, "role": "school_admin", "school_id": school["id"]},
        headers=operator,
    )
    assert made.status_code == 201, made.text
    assert made.json()["phone"].count("*") == 4 and made.json()["school_id"] == school["id"]
    await send_code(client, admin_phone, "reset")
    code = await inbox.code_for(admin_phone)
    reset = await client.post(
        "/api/v1/auth/password-reset",
        json={"phone": admin_phone, "code": code, "new_password": PASSWORD},
    )
    assert reset.status_code == 204
    admin = await login(client, admin_phone)
    assert (await client.get(f"/api/v1/schools/{school['id']}", headers=admin)).status_code == 200

    agent = await client.post(
        "/api/v1/staff",
        json={"phone": new_phone(), "role": "support", "school_id": school["id"]},
        headers=operator,
    )
    assert agent.status_code == 201 and agent.json()["school_id"] is None
    no_school = await client.post(
        "/api/v1/staff", json={"phone": new_phone(), "role": "reviewer"}, headers=operator
    )
    assert no_school.status_code == 422
    again = await client.post(
        "/api/v1/staff",
        json={"phone": admin_phone, "role": "reviewer", "school_id": school["id"]},
        headers=operator,
    )
    assert again.status_code == 409 and again.json()["code"] == "phone_registered"
    operators = await client.post(
        "/api/v1/staff",
        json={"phone": new_phone(), "role": "operator", "school_id": school["id"]},
        headers=operator,
    )
    assert operators.status_code == 201, operators.text  # an operator adds another
    assert (operators.json()["role"], operators.json()["school_id"]) == ("operator", None)


async def test_school_admin_reaches_only_own_school(app, client, new_phone) -> None:
    """A school admin adds reviewers to their own school only, and sees no other school."""
    operator = bearer(await staff(app, client, new_phone(), "operator"))
    schools = [
        (
            await client.post(
                "/api/v1/schools",
                json={"slug": f"s-{secrets.token_hex(4)}", "name": name},
                headers=operator,
            )
        ).json()
        for name in ("甲校", "乙校")
    ]
    mine, theirs = schools[0]["id"], schools[1]["id"]
    admin = bearer(await staff(app, client, new_phone(), "school_admin", mine))
    reviewer_phone = new_phone()
    reviewer = await client.post(
        "/api/v1/staff",
        json={"phone": reviewer_phone, "role": "reviewer", "school_id": mine, "password": PASSWORD},
        headers=admin,
    )
    assert reviewer.status_code == 201, reviewer.text
    for body in (
        {"phone": new_phone(), "role": "reviewer", "school_id": theirs},
        {"phone": new_phone(), "role": "school_admin", "school_id": mine},
        {"phone": new_phone(), "role": "support"},
    ):
        refused = await client.post("/api/v1/staff", json=body, headers=admin)
        assert refused.status_code == 403, body
    assert (await client.get(f"/api/v1/schools/{theirs}", headers=admin)).status_code == 404
    assert (await client.get("/api/v1/schools", headers=admin)).status_code == 403
    assert (await client.get(f"/api/v1/staff?school_id={theirs}", headers=admin)).status_code == 403
    listed = await client.get(f"/api/v1/staff?school_id={mine}", headers=admin)
    assert {item["role"] for item in listed.json()} == {"school_admin", "reviewer"}

    # Deactivated: the reviewer's sessions stop at once; the admin cannot touch other schools.
    session = await login(client, reviewer_phone)
    off = await client.put(
        f"/api/v1/staff/{reviewer.json()['id']}/active",
        json={"active": False, "reason": "left the school"},
        headers=admin,
    )
    assert off.status_code == 200 and off.json()["is_active"] is False
    assert (await client.get("/api/v1/me", headers=session)).status_code == 401
    other_admin = bearer(await staff(app, client, new_phone(), "school_admin", theirs))
    foreign = await client.put(
        f"/api/v1/staff/{reviewer.json()['id']}/active",
        json={"active": True, "reason": "x1"},
        headers=other_admin,
    )
    assert foreign.status_code == 403
