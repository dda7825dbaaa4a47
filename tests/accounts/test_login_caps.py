"""Issue 10 security: password guessing is capped per account and per client address, in the
database (so the caps hold across web processes), with a catalogue code and Retry-After."""

from __future__ import annotations

from datetime import timedelta

import httpx

from tests.helpers import PASSWORD, register
from vexam.core.clock import FrozenClock


async def _login(client: httpx.AsyncClient, phone: str, password: str) -> httpx.Response:
    return await client.post("/api/v1/auth/login", json={"phone": phone, "password": password})


def _from(app, ip: str) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, client=(ip, 5555))
    return httpx.AsyncClient(transport=transport, base_url="http://t")


async def test_account_lockout_says_retry_after(
    client, inbox, clock: FrozenClock, settings, new_phone
) -> None:
    """The N-th wrong password locks the account: 423 account_locked with Retry-After equal
    to the lock's length, counting down as the clock moves; the lock ends on time."""
    phone = new_phone()
    await register(client, inbox, phone)
    for _ in range(settings.login_max_failures - 1):
        assert (await _login(client, phone, "wrong-password")).status_code == 401
    locked = await _login(client, phone, "wrong-password")
    assert locked.status_code == 423
    assert locked.json()["code"] == "account_locked"
    lock_s = settings.lockout_minutes * 60
    assert locked.headers["Retry-After"] == str(lock_s)
    clock.advance(seconds=lock_s - 10)
    again = await _login(client, phone, PASSWORD)  # the right password, still locked
    assert again.status_code == 423
    assert again.headers["Retry-After"] == "10"
    clock.advance(seconds=10)
    assert (await _login(client, phone, PASSWORD)).status_code == 200


async def test_one_address_guessing_many_accounts_is_capped(
    app, inbox, clock: FrozenClock, settings, new_phone
) -> None:
    """Failures from one client address count across accounts (known phones or not): at the
    cap the address gets 429 login_rate_limited with Retry-After, even with a right password;
    other addresses are unaffected; the window rolls on."""
    settings.login_max_failures_per_ip = 6
    window = timedelta(minutes=settings.login_ip_window_minutes)
    async with _from(app, "192.0.2.10") as attacker, _from(app, "192.0.2.11") as other:
        victim = new_phone()
        await register(other, inbox, victim)
        started = clock.now()
        for n in range(6):
            target = victim if n % 3 == 0 else new_phone()  # 2 tries on the victim, 4 unknown
            response = await _login(attacker, target, "guess-123456")
            assert response.status_code == 401, response.text
            assert response.json()["code"] == "login_failed"
            clock.advance(seconds=30)
        capped = await _login(attacker, victim, PASSWORD)
        assert capped.status_code == 429
        assert capped.json()["code"] == "login_rate_limited"
        retry = int(capped.headers["Retry-After"])
        assert retry == int((started + window - clock.now()).total_seconds())
        # The victim signs in from elsewhere: the address is capped, not the account.
        assert (await _login(other, victim, PASSWORD)).status_code == 200
        clock.advance(seconds=retry)  # the first failure leaves the window: one more try
        assert (await _login(attacker, victim, PASSWORD)).status_code == 200


async def test_failed_sign_ins_are_audited_without_the_phone(app, new_phone) -> None:
    """Each failure is an audit entry (that is what the address cap counts), phone masked."""
    from sqlalchemy import select

    from vexam.core.audit import AuditEntry

    phone = new_phone()
    async with _from(app, "192.0.2.50") as client:
        await _login(client, phone, "guess-123456")
    async with app.state.db.unit_of_work() as session:
        entry = (
            await session.execute(
                select(AuditEntry).where(
                    AuditEntry.action == "login.failed", AuditEntry.client_ip == "192.0.2.50"
                )
            )
        ).scalar_one()
    assert entry.subject_type == "phone"
    assert phone not in entry.subject_id and phone[-4:] in entry.subject_id
