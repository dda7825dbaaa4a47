"""Issue 10 security: SMS sending is capped per phone, per client address and per device
(rolling 24 hours, in the database), besides the 60-second resend rule. The phone and address
caps are shown in tests/accounts/test_sms_codes.py; this file shows the device cap and that the
three caps are independent."""

from __future__ import annotations

import httpx

from tests.helpers import send_code
from vexam.core.clock import FrozenClock


async def test_one_device_asking_for_many_phones_is_capped(
    app, clock: FrozenClock, settings, new_phone
) -> None:
    """A device (X-Device-Id, or the browser's device cookie) gets at most N codes a day,
    whatever the phones and addresses; another device is unaffected; the window rolls."""
    settings.sms_daily_cap_per_device = 3
    sent_at = []
    for n in range(3):
        transport = httpx.ASGITransport(app=app, client=(f"192.0.2.{20 + n}", 1))
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            sent_at.append(clock.now())
            response = await send_code(client, new_phone(), **{"X-Device-Id": "device-capped-1"})
            assert response.status_code == 202, response.text
        clock.advance(minutes=10)
    transport = httpx.ASGITransport(app=app, client=("192.0.2.30", 1))
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        capped = await send_code(client, new_phone(), **{"X-Device-Id": "device-capped-1"})
        assert capped.status_code == 429
        assert capped.json()["code"] == "sms_rate_limited"
        assert capped.json()["scope"] == "device"
        wait = int(capped.headers["Retry-After"])
        assert wait == int((sent_at[0] - clock.now()).total_seconds()) + 24 * 3600
        other = await send_code(client, new_phone(), **{"X-Device-Id": "device-other-2"})
        assert other.status_code == 202
        clock.advance(seconds=wait)
        again = await send_code(client, new_phone(), **{"X-Device-Id": "device-capped-1"})
        assert again.status_code == 202
    await app.state.queue.drain()


async def test_a_browser_device_cookie_counts_too(app, settings, new_phone) -> None:
    """Browsers are counted by their device cookie (the register page posts through it)."""
    settings.sms_daily_cap_per_device = 1
    transport = httpx.ASGITransport(app=app, client=("192.0.2.40", 1))
    cookies = {"vexam_device": "web-cookie-device-1"}
    async with httpx.AsyncClient(transport=transport, base_url="http://t", cookies=cookies) as c:
        assert (await send_code(c, new_phone())).status_code == 202
        capped = await send_code(c, new_phone())
    assert capped.status_code == 429
    assert capped.json()["scope"] == "device"
    await app.state.queue.drain()
