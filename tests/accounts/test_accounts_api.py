"""SPEC §2: register, sign in (password or SMS), reset, lockout, sessions, devices, versions."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import httpx
import pytest
from sqlalchemy import func, select

from tests.helpers import PASSWORD, bearer, register, send_code
from vexam.accounts.models import AuthSession, User
from vexam.core.audit import AuditEntry
from vexam.core.clock import FrozenClock


async def _login(client: httpx.AsyncClient, phone: str, password: str, **headers: str):
    return await client.post(
        "/api/v1/auth/login", json={"phone": phone, "password": password}, headers=headers
    )


async def test_register_then_sign_in_with_password(client, inbox, new_phone) -> None:
    """§2: register with phone + SMS code + password, then sign in with the password."""
    phone = new_phone()
    body = await register(client, inbox, phone)
    assert body["user"]["phone"] == f"{phone[:3]}****{phone[-4:]}"
    assert body["user"]["role"] == "candidate"
    me = await client.get("/api/v1/me", headers=bearer(body["token"]))
    assert me.status_code == 200 and me.json()["id"] == body["user"]["id"]
    login = await _login(client, phone, PASSWORD)
    assert login.status_code == 200
    assert login.json()["token"] != body["token"]


async def test_password_is_stored_as_argon2id(client, inbox, app, new_phone) -> None:
    """§2: passwords hashed with Argon2id, never stored in clear."""
    phone = new_phone()
    await register(client, inbox, phone)
    async with app.state.db.unit_of_work() as session:
        stored = (
            await session.execute(select(User.password_hash).where(User.phone == phone))
        ).scalar_one()
    assert stored.startswith("$argon2id$")
    assert PASSWORD not in stored


@pytest.mark.parametrize("password", ["short1!", "aaaaaaaaaaaa", "PHONE", "x" * 200])
async def test_password_too_weak(client, inbox, new_phone, password: str) -> None:
    """§2 password_too_weak: at least 8 characters (and not the phone number); the code is kept."""
    phone = new_phone()
    password = password.replace("PHONE", phone)
    await send_code(client, phone)
    code = await inbox.code_for(phone)
    response = await client.post(
        "/api/v1/auth/register", json={"phone": phone, "code": code, "password": password}
    )
    if len(password) > 128:
        assert response.status_code == 422  # the schema's length bound
        return
    assert response.status_code == 422
    assert response.json()["code"] == "password_too_weak"
    assert response.json()["min_length"] == 8
    # Fixing the password with the same code works: the weak attempt did not spend it.
    again = await client.post(
        "/api/v1/auth/register", json={"phone": phone, "code": code, "password": PASSWORD}
    )
    assert again.status_code == 201


async def test_login_failed_for_wrong_password_and_unknown_phone(client, inbox, new_phone) -> None:
    """§2 login_failed: the same answer whether the phone exists or not."""
    phone = new_phone()
    await register(client, inbox, phone)
    wrong = await _login(client, phone, "not-the-password")
    unknown = await _login(client, new_phone(), "not-the-password")
    for response in (wrong, unknown):
        assert response.status_code == 401
        assert response.json()["code"] == "login_failed"
    assert wrong.json()["detail"] == unknown.json()["detail"]


async def test_account_locked_after_repeated_failures_says_until_when(
    client, inbox, clock: FrozenClock, settings, new_phone
) -> None:
    """§2 account_locked: repeated failures lock the account for a while, and say until when."""
    phone = new_phone()
    await register(client, inbox, phone)
    for _ in range(settings.login_max_failures - 1):
        assert (await _login(client, phone, "wrong-password")).json()["code"] == "login_failed"
    locked = await _login(client, phone, "wrong-password", **{"Accept-Language": "en"})
    assert locked.status_code == 423
    body = locked.json()
    assert body["code"] == "account_locked"
    expected = clock.now() + timedelta(minutes=settings.lockout_minutes)
    assert body["locked_until"] == expected.isoformat()
    assert "locked until" in body["detail"]
    # Even the right password is refused while locked...
    right = await _login(client, phone, PASSWORD)
    assert right.json()["code"] == "account_locked"
    # ...and works once the lock has run out.
    clock.advance(minutes=settings.lockout_minutes)
    assert (await _login(client, phone, PASSWORD)).status_code == 200


async def test_sms_login_works_while_locked_and_clears_the_lock(
    client, inbox, clock: FrozenClock, settings, new_phone
) -> None:
    """§2: signing in with an SMS code proves the phone and lifts a password lockout."""
    phone = new_phone()
    await register(client, inbox, phone)
    for _ in range(settings.login_max_failures):
        await _login(client, phone, "wrong-password")
    clock.advance(seconds=61)
    await send_code(client, phone, "login")
    code = await inbox.code_for(phone)
    response = await client.post("/api/v1/auth/login/sms", json={"phone": phone, "code": code})
    assert response.status_code == 200
    assert (await _login(client, phone, PASSWORD)).status_code == 200


async def test_lockout_is_audited(client, inbox, app, settings, new_phone) -> None:
    """§8: the lock is a state change in the audit log, with the client IP."""
    phone = new_phone()
    user_id = (await register(client, inbox, phone))["user"]["id"]
    for _ in range(settings.login_max_failures):
        await _login(client, phone, "wrong-password")
    async with app.state.db.unit_of_work() as session:
        entries = (
            (
                await session.execute(
                    select(AuditEntry).where(
                        AuditEntry.action == "account.locked", AuditEntry.subject_id == str(user_id)
                    )
                )
            )
            .scalars()
            .all()
        )
    assert len(entries) == 1
    assert entries[0].client_ip and entries[0].client_ip.startswith("10.")


async def test_reset_password_with_code_ends_every_session(
    client, inbox, clock: FrozenClock, new_phone
) -> None:
    """§2: reset a password by SMS code; old sessions and the old password stop working."""
    phone = new_phone()
    token = (await register(client, inbox, phone))["token"]
    clock.advance(seconds=60)
    await send_code(client, phone, "reset")
    code = await inbox.code_for(phone)
    response = await client.post(
        "/api/v1/auth/password-reset",
        json={"phone": phone, "code": code, "new_password": "brand-new-pass-2"},
    )
    assert response.status_code == 204
    assert (await client.get("/api/v1/me", headers=bearer(token))).status_code == 401
    assert (await _login(client, phone, PASSWORD)).json()["code"] == "login_failed"
    assert (await _login(client, phone, "brand-new-pass-2")).status_code == 200


async def test_two_concurrent_registrations_of_one_phone_make_one_account(
    app, inbox, new_phone
) -> None:
    """§2: two registrations of one phone at the same moment end with one account."""
    phone = new_phone()
    transport = httpx.ASGITransport(app=app, client=("10.9.9.9", 1))
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        await send_code(client, phone)
        code = await inbox.code_for(phone)
        payload = {"phone": phone, "code": code, "password": PASSWORD}
        responses = await asyncio.gather(
            *(client.post("/api/v1/auth/register", json=payload) for _ in range(2))
        )
    statuses = sorted(r.status_code for r in responses)
    assert statuses[0] == 201 and statuses[1] in (400, 409), [r.text for r in responses]
    loser = next(r for r in responses if r.status_code != 201)
    assert loser.json()["code"] in ("sms_code_invalid", "phone_registered")
    async with app.state.db.unit_of_work() as session:
        count = (
            await session.execute(select(func.count()).where(User.phone == phone))
        ).scalar_one()
    assert count == 1


async def test_sessions_listed_per_device_and_revocable(client, inbox, new_phone) -> None:
    """§2: several devices may be signed in; each session records its device id."""
    phone = new_phone()
    first = await register(client, inbox, phone, **{"X-Device-Id": "phone-A-12345"})
    second = (await _login(client, phone, PASSWORD, **{"X-Device-Id": "phone-B-67890"})).json()
    assert second["device_id"] == "phone-B-67890"
    listed = await client.get("/api/v1/me/sessions", headers=bearer(second["token"]))
    rows = listed.json()
    assert {r["device_id"] for r in rows} == {"phone-A-12345", "phone-B-67890"}
    assert [r["current"] for r in rows if r["device_id"] == "phone-B-67890"] == [True]
    revoked = await client.delete(
        f"/api/v1/me/sessions/{first['session_id']}", headers=bearer(second["token"])
    )
    assert revoked.status_code == 204
    assert (await client.get("/api/v1/me", headers=bearer(first["token"]))).status_code == 401
    assert (await client.get("/api/v1/me", headers=bearer(second["token"]))).status_code == 200


async def test_cannot_revoke_another_accounts_session(client, inbox, clock, new_phone) -> None:
    """§2/§8: no cross-account access: someone else's session id is simply not found."""
    mine = await register(client, inbox, new_phone())
    theirs = await register(client, inbox, new_phone())
    response = await client.delete(
        f"/api/v1/me/sessions/{theirs['session_id']}", headers=bearer(mine["token"])
    )
    assert response.status_code == 404
    assert response.json()["code"] == "session_not_found"
    assert (await client.get("/api/v1/me", headers=bearer(theirs["token"]))).status_code == 200


async def test_logout_ends_the_session(client, inbox, new_phone) -> None:
    """§2: log out."""
    token = (await register(client, inbox, new_phone()))["token"]
    assert (await client.post("/api/v1/auth/logout", headers=bearer(token))).status_code == 204
    assert (await client.get("/api/v1/me", headers=bearer(token))).json()[
        "code"
    ] == "not_authenticated"


async def test_sessions_expire(client, inbox, clock: FrozenClock, settings, new_phone) -> None:
    """§2: a session token stops working after its lifetime."""
    token = (await register(client, inbox, new_phone()))["token"]
    clock.advance(days=settings.session_days)
    assert (await client.get("/api/v1/me", headers=bearer(token))).status_code == 401


async def test_device_id_invalid(client, new_phone) -> None:
    """§2: a malformed device id is refused with its own code."""
    response = await send_code(client, new_phone(), **{"X-Device-Id": "bad id!"})
    assert response.status_code == 400
    assert response.json()["code"] == "device_id_invalid"


async def test_token_is_stored_hashed(client, inbox, app, new_phone) -> None:
    """Tokens are opaque and stored only as hashes."""
    body = await register(client, inbox, new_phone())
    async with app.state.db.unit_of_work() as session:
        hashes = (await session.execute(select(AuthSession.token_hash))).scalars().all()
    assert body["token"] not in hashes
    assert len(body["token"]) >= 40


@pytest.mark.parametrize(
    ("sent", "status", "code"),
    [
        ("1.9.9", 426, "client_outdated"),
        ("1.10", 426, "client_outdated"),
        ("two", 400, "client_version_invalid"),
    ],
)
async def test_client_outdated(app, settings, sent: str, status: int, code: str) -> None:
    """§2 client_outdated: below the configured minimum the API answers 426 and where to update."""
    from vexam.main import create_app

    strict = settings.model_copy(update={"min_client_version": "2.0.0"})
    application = create_app(strict, clock=app.state.clock)
    async with application.router.lifespan_context(application):
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            response = await client.get("/api/v1/me", headers={"X-Client-Version": sent})
            current = await client.get("/api/v1/me", headers={"X-Client-Version": "2.0.1"})
    assert response.status_code == status
    assert response.json()["code"] == code
    if code == "client_outdated":
        assert response.json()["min_version"] == "2.0.0"
        assert response.json()["download_url"] == strict.client_download_url
        assert strict.client_download_url in response.json()["detail"]
    assert current.json()["code"] == "not_authenticated"  # passed the gate


async def test_user_language_setting_beats_accept_language(client, inbox, new_phone) -> None:
    """§1: the user's setting first, then Accept-Language; Chinese by default."""
    token = (await register(client, inbox, new_phone()))["token"]
    headers = {**bearer(token), "Accept-Language": "en"}
    changed = await client.patch("/api/v1/me", json={"locale": "en"}, headers=bearer(token))
    assert changed.json()["locale"] == "en"
    missing = await client.delete(
        "/api/v1/me/sessions/999999", headers={**headers, "Accept-Language": "zh-CN"}
    )
    assert missing.json()["detail"] == "That sign-in session does not exist."
    await client.patch("/api/v1/me", json={"locale": "zh_CN"}, headers=bearer(token))
    missing = await client.delete("/api/v1/me/sessions/999999", headers=headers)
    assert missing.json()["detail"] == "该登录会话不存在。"
