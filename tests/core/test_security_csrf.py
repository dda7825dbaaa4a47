"""Issue 10 security: CSRF on the JSON API. A browser's session cookie travels with any
request another site makes it send, so an API write authenticated by the cookie alone needs
the browser's CSRF token (the pages' scripts send it as X-CSRF-Token); an app's bearer token
is never sent by a browser on its own and needs none. (Forms: tests/test_csrf_forms.py.)"""

from __future__ import annotations

import httpx

from tests.helpers import bearer, register
from vexam.core.web import DEVICE_COOKIE, SESSION_COOKIE, csrf_token_for


async def test_cookie_authenticated_api_writes_need_the_csrf_token(
    app, client, inbox, new_phone
) -> None:
    """PATCH /api/v1/me with the session cookie: 403 csrf_failed without the token or with
    another browser's, and nothing changes; accepted with this browser's token."""
    token = (await register(client, inbox, new_phone()))["token"]
    device = "web-csrf-api-device-1"
    cookies = {DEVICE_COOKIE: device, SESSION_COOKIE: token}
    transport = httpx.ASGITransport(app=app, client=("10.88.0.1", 1))
    secret = app.state.settings.secret_key
    async with httpx.AsyncClient(
        transport=transport, base_url="http://testserver", cookies=cookies
    ) as browser:
        for sent in ({}, {"X-CSRF-Token": csrf_token_for(secret, "web-other-device-9")}):
            forged = await browser.patch("/api/v1/me", json={"display_name": "被改"}, headers=sent)
            assert forged.status_code == 403, forged.text
            assert forged.json()["code"] == "csrf_failed"
        assert (await client.get("/api/v1/me", headers=bearer(token))).json()[
            "display_name"
        ] is None
        right = {"X-CSRF-Token": csrf_token_for(secret, device)}
        allowed = await browser.patch("/api/v1/me", json={"display_name": "本人"}, headers=right)
        assert allowed.status_code == 200, allowed.text
    by_app = await client.patch("/api/v1/me", json={"display_name": "应用"}, headers=bearer(token))
    assert by_app.status_code == 200
    assert by_app.json()["display_name"] == "应用"
