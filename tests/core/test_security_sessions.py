"""Issue 10 security: session fixation and session ends. A sign-in always issues a fresh
token (one the browser brought is never promoted, and a session it came with ends); sign-out
revokes the token on the server; a password reset ends every session."""

from __future__ import annotations

import httpx

from tests.helpers import PASSWORD, bearer, register, send_code
from vexam.core.web import DEVICE_COOKIE, SESSION_COOKIE, csrf_token_for


def browser(app, device: str, session: str | None = None) -> httpx.AsyncClient:
    """A browser with a device cookie (and a session cookie, if given)."""
    cookies = {DEVICE_COOKIE: device}
    if session:
        cookies[SESSION_COOKIE] = session
    transport = httpx.ASGITransport(app=app, client=("10.77.0.1", 1))
    return httpx.AsyncClient(transport=transport, base_url="http://testserver", cookies=cookies)


async def page_login(app, client: httpx.AsyncClient, phone: str) -> httpx.Response:
    """Sign in through the sign-in form, as a browser does."""
    csrf = csrf_token_for(app.state.settings.secret_key, client.cookies[DEVICE_COOKIE])
    return await client.post(
        "/login", data={"phone": phone, "password": PASSWORD, "csrf_token": csrf}
    )


async def me(client: httpx.AsyncClient, token: str) -> int:
    """Status of GET /api/v1/me with `token` as a bearer."""
    return (await client.get("/api/v1/me", headers=bearer(token))).status_code


async def test_a_planted_token_is_never_promoted(app, client, inbox, new_phone) -> None:
    """An attacker who sets a session cookie of their choosing (made up, or their own live
    session) in the victim's browser gains nothing: the sign-in sets a new token, the made-up
    one signs nobody in, and the attacker's own session ends."""
    victim = new_phone()
    await register(client, inbox, victim)
    attacker_token = (await register(client, inbox, new_phone()))["token"]
    for planted in ("made-up-token-chosen-by-an-attacker", attacker_token):
        async with browser(app, "web-victim-browser-1", planted) as victim_browser:
            signed_in = await page_login(app, victim_browser, victim)
        assert signed_in.status_code == 303, signed_in.text
        issued = signed_in.cookies[SESSION_COOKIE]
        assert issued != planted
        cookie = signed_in.headers["set-cookie"].lower()
        assert "httponly" in cookie and "samesite=lax" in cookie  # no script, no cross-site
        assert await me(client, issued) == 200
        assert await me(client, planted) == 401
        # The victim's new session is the victim's, not the planted one's owner.
        body = (await client.get("/api/v1/me", headers=bearer(issued))).json()
        assert body["phone"].endswith(victim[-4:])


async def test_api_sign_in_with_a_token_in_hand_ends_that_session(client, inbox, new_phone) -> None:
    """An app that signs in again while holding a token gets a new one; the old one ends."""
    phone = new_phone()
    old = (await register(client, inbox, phone))["token"]
    response = await client.post(
        "/api/v1/auth/login", json={"phone": phone, "password": PASSWORD}, headers=bearer(old)
    )
    assert response.status_code == 200
    assert response.json()["token"] != old
    assert await me(client, old) == 401
    assert await me(client, response.json()["token"]) == 200


async def test_sign_out_revokes_the_token_on_the_server(app, client, inbox, new_phone) -> None:
    """After signing out, a copy of the cookie (kept by an attacker) no longer works."""
    phone = new_phone()
    await register(client, inbox, phone)
    async with browser(app, "web-signout-browser-1") as page:
        token = (await page_login(app, page, phone)).cookies[SESSION_COOKIE]
        csrf = csrf_token_for(app.state.settings.secret_key, "web-signout-browser-1")
        out = await page.post("/logout", data={"csrf_token": csrf})
    assert out.status_code == 303 and out.headers["location"] == "/login"
    assert await me(client, token) == 401
    async with browser(app, "web-signout-browser-1", token) as replay:
        home = await replay.get("/")
    assert home.status_code == 303 and home.headers["location"] == "/login"


async def test_password_reset_ends_every_other_session(
    app, client, inbox, clock, new_phone
) -> None:
    """A reset (someone who owns the phone) signs every device out, on the server."""
    phone = new_phone()
    first = (await register(client, inbox, phone))["token"]
    async with browser(app, "web-reset-browser-1") as page:
        second = (await page_login(app, page, phone)).cookies[SESSION_COOKIE]
    assert await me(client, first) == 200 and await me(client, second) == 200
    clock.advance(seconds=61)
    await send_code(client, phone, "reset")
    code = await inbox.code_for(phone)
    reset = await client.post(
        "/api/v1/auth/password-reset",
        json={"phone": phone, "code": code, "new_password": "another-pass-77"},
    )
    assert reset.status_code == 204
    assert await me(client, first) == 401
    assert await me(client, second) == 401
