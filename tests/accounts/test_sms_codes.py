"""SPEC §2: SMS codes — 6 digits, 5 minutes, single use, 5 wrong tries, 60 s resend, daily caps."""

from __future__ import annotations

import logging
from datetime import timedelta

import httpx
import pytest

from tests.helpers import PASSWORD, register, send_code
from vexam.core.clock import FrozenClock


async def _register_with(client: httpx.AsyncClient, phone: str, code: str) -> httpx.Response:
    return await client.post(
        "/api/v1/auth/register", json={"phone": phone, "code": code, "password": PASSWORD}
    )


async def test_code_is_six_digits_and_sent_after_commit_through_the_queue(
    client, inbox, sms, new_phone
) -> None:
    """§2: the code goes out through the job queue, only once the request committed."""
    phone = new_phone()
    response = await send_code(client, phone)
    assert response.status_code == 202
    assert sms.outbox == []  # queued, not sent inline
    code = await inbox.code_for(phone)
    assert len(code) == 6 and code.isdigit()
    assert "验证码" in sms.outbox[-1][1]  # Chinese by default


async def test_sms_text_follows_the_callers_language(client, inbox, sms, new_phone) -> None:
    """§1: an English caller gets the English SMS."""
    phone = new_phone()
    await send_code(client, phone, **{"Accept-Language": "en-US,en;q=0.9"})
    await inbox.code_for(phone)
    assert "Your verification code is" in sms.outbox[-1][1]


async def test_sms_code_invalid_for_a_wrong_code(client, inbox, new_phone) -> None:
    """§2 sms_code_invalid."""
    phone = new_phone()
    await send_code(client, phone)
    code = await inbox.code_for(phone)
    wrong = f"{(int(code) + 1) % 1_000_000:06d}"
    response = await _register_with(client, phone, wrong)
    assert response.status_code == 400
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["code"] == "sms_code_invalid"
    assert response.json()["attempts_left"] == 4


async def test_five_wrong_entries_kill_the_code(client, inbox, new_phone) -> None:
    """§2: at most 5 wrong entries per code; after that even the right code fails."""
    phone = new_phone()
    await send_code(client, phone)
    code = await inbox.code_for(phone)
    wrong = f"{(int(code) + 7) % 1_000_000:06d}"
    lefts = []
    for _ in range(5):
        response = await _register_with(client, phone, wrong)
        lefts.append(response.json()["attempts_left"])
    assert lefts == [4, 3, 2, 1, 0]
    response = await _register_with(client, phone, code)
    assert response.json()["code"] == "sms_code_invalid"


async def test_sms_code_expired_after_five_minutes(
    client, inbox, clock: FrozenClock, new_phone
) -> None:
    """§2 sms_code_expired: valid 5 minutes, judged on the server's clock."""
    phone = new_phone()
    await send_code(client, phone)
    code = await inbox.code_for(phone)
    clock.advance(minutes=5)
    response = await _register_with(client, phone, code)
    assert response.status_code == 400
    assert response.json()["code"] == "sms_code_expired"


async def test_code_just_before_expiry_works(client, inbox, clock: FrozenClock, new_phone) -> None:
    """§2: a code is good for the whole 5 minutes."""
    phone = new_phone()
    await send_code(client, phone)
    code = await inbox.code_for(phone)
    clock.advance(seconds=299)
    assert (await _register_with(client, phone, code)).status_code == 201


async def test_code_is_single_use(client, inbox, clock: FrozenClock, new_phone) -> None:
    """§2: a used code is refused the second time."""
    phone = new_phone()
    await register(client, inbox, phone)
    clock.advance(seconds=60)
    assert (await send_code(client, phone, "login")).status_code == 202
    code = await inbox.code_for(phone)
    first = await client.post("/api/v1/auth/login/sms", json={"phone": phone, "code": code})
    assert first.status_code == 200
    again = await client.post("/api/v1/auth/login/sms", json={"phone": phone, "code": code})
    assert again.json()["code"] == "sms_code_invalid"


async def test_code_for_one_purpose_does_not_work_for_another(
    client, inbox, clock: FrozenClock, new_phone
) -> None:
    """§2: a login code cannot reset the password."""
    phone = new_phone()
    await register(client, inbox, phone)
    clock.advance(seconds=60)
    assert (await send_code(client, phone, "login")).status_code == 202
    code = await inbox.code_for(phone)
    response = await client.post(
        "/api/v1/auth/password-reset",
        json={"phone": phone, "code": code, "new_password": "another-pass-1"},
    )
    assert response.json()["code"] == "sms_code_invalid"


async def test_sms_rate_limited_resend_within_60_seconds(
    client, inbox, clock: FrozenClock, new_phone
) -> None:
    """§2 sms_rate_limited: resend no sooner than 60 s, with the time it opens again."""
    phone = new_phone()
    assert (await send_code(client, phone)).status_code == 202
    clock.advance(seconds=59)
    response = await send_code(client, phone)
    assert response.status_code == 429
    body = response.json()
    assert body["code"] == "sms_rate_limited"
    assert body["limit"] == "resend"
    assert body["retry_after_s"] == 1
    assert response.headers["Retry-After"] == "1"
    clock.advance(seconds=1)
    assert (await send_code(client, phone)).status_code == 202
    # The newest code is the one that counts.
    await inbox.code_for(phone)


async def test_sms_rate_limited_daily_cap_per_phone(
    client, inbox, clock: FrozenClock, settings, new_phone
) -> None:
    """§2: a daily cap per phone (rolling 24 hours)."""
    phone = new_phone()
    for _ in range(settings.sms_daily_cap_per_phone):
        assert (await send_code(client, phone)).status_code == 202
        clock.advance(seconds=61)
    response = await send_code(client, phone)
    assert response.status_code == 429
    assert response.json()["limit"] == "daily"
    assert response.json()["scope"] == "phone"
    clock.advance(hours=24)
    assert (await send_code(client, phone)).status_code == 202
    await inbox.code_for(phone)


async def test_sms_rate_limited_daily_cap_per_ip(
    app, clock: FrozenClock, settings, new_phone
) -> None:
    """§2: a daily cap per client IP, whatever phones it asks for."""
    transport = httpx.ASGITransport(app=app, client=("192.0.2.77", 1234))
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        for _ in range(settings.sms_daily_cap_per_ip):
            assert (await send_code(client, new_phone())).status_code == 202
        response = await send_code(client, new_phone())
    assert response.status_code == 429
    assert response.json()["scope"] == "ip"
    await app.state.queue.drain()


async def test_codes_never_reach_logs_or_audit(client, inbox, caplog, new_phone, app) -> None:
    """§2: codes are never written to logs (nor to the audit log)."""
    from sqlalchemy import select

    from vexam.core.audit import AuditEntry

    phone = new_phone()
    with caplog.at_level(logging.DEBUG):
        await send_code(client, phone)
        code = await inbox.code_for(phone)
    assert all(code not in record.getMessage() for record in caplog.records)
    async with app.state.db.unit_of_work() as session:
        details = (await session.execute(select(AuditEntry.detail))).scalars().all()
    assert all(code not in str(detail) for detail in details)
    assert all(phone not in str(detail) for detail in details)


@pytest.mark.parametrize(
    "raw", ["1380013800", "138001380001", "12800138000", "abc", "", "+1 13800138000", "1380013800x"]
)
async def test_phone_invalid(client, raw: str) -> None:
    """§2 phone_invalid: 11 digits, 1[3-9]..."""
    response = await send_code(client, raw)
    assert response.status_code == 422
    assert response.json()["code"] == "phone_invalid"


@pytest.mark.parametrize("decorate", ["+86 {}", "{} ", "0086-{}", "fullwidth"])
async def test_phone_is_normalised(client, inbox, new_phone, decorate: str) -> None:
    """§2: common ways of typing a number are accepted and normalised."""
    phone = new_phone()
    if decorate == "fullwidth":
        raw = "".join(chr(ord(c) + 0xFEE0) for c in phone)
    else:
        raw = decorate.format(phone)
    assert (await send_code(client, raw)).status_code == 202
    assert len(await inbox.code_for(phone)) == 6


async def test_register_code_for_a_registered_phone(client, inbox, new_phone) -> None:
    """§2: a registered phone is told to sign in (phone_registered)."""
    phone = new_phone()
    await register(client, inbox, phone)
    response = await send_code(client, phone, "register")
    assert response.status_code == 409
    assert response.json()["code"] == "phone_registered"


async def test_login_code_for_an_unknown_phone(client, new_phone) -> None:
    """§2: login and reset codes go only to registered phones (phone_not_registered)."""
    for purpose in ("login", "reset"):
        response = await send_code(client, new_phone(), purpose)
        assert response.status_code == 404
        assert response.json()["code"] == "phone_not_registered"


async def test_rolled_back_request_sends_no_sms(app, settings, sms, new_phone) -> None:
    """Side effects after commit: a job queued in a unit of work that rolls back is dropped."""
    from vexam.accounts.codes import Purpose, issue_code
    from vexam.core.context import Ctx

    phone = new_phone()
    with pytest.raises(RuntimeError):
        async with app.state.db.unit_of_work() as session:
            ctx = Ctx(
                session=session, clock=app.state.clock, settings=settings, jobs=app.state.queue
            )
            await issue_code(ctx, phone, Purpose.register)
            raise RuntimeError("boom after the code was issued")
    assert await app.state.queue.drain() == 0
    assert sms.outbox == []


async def test_codes_expire_relative_to_server_time(client, inbox, clock, new_phone) -> None:
    """§1: the response states expiry and resend times from the server clock."""
    phone = new_phone()
    body = (await send_code(client, phone)).json()
    now = clock.now()
    assert body["expires_at"].startswith((now + timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M"))
    assert body["resend_at"].startswith((now + timedelta(seconds=60)).strftime("%Y-%m-%dT%H:%M"))
    await inbox.code_for(phone)
