"""A web process remembers the sessions it confirmed (core.auth): the lookup is skipped for
10 s at most, and anything that ends a session in this process is honoured at once."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import update

from tests.helpers import app_ctx, bearer, register
from vexam.accounts.models import AuthSession, User
from vexam.core.auth import hash_token


async def _signed_in(app, client, inbox, new_phone) -> tuple[dict[str, str], str]:
    token = (await register(client, inbox, new_phone()))["token"]
    me = await client.get("/api/v1/me", headers=bearer(token))
    assert me.status_code == 200, me.text
    return bearer(token), hash_token(token)


async def test_a_confirmed_session_is_remembered_and_forgotten_when_revoked(
    app, client, inbox, new_phone
) -> None:
    """Remembered after a request (a last-seen bump keeps it); a revocation committed by
    this process, even by a bare UPDATE, ends it at the next request."""
    who, token_hash = await _signed_in(app, client, inbox, new_phone)
    memory = app.state.principal_memory
    assert memory.principal(token_hash) is not None
    async with app_ctx(app) as ctx:  # what a request bumping "last seen" writes
        await ctx.session.execute(
            update(AuthSession)
            .where(AuthSession.token_hash == token_hash)
            .values(last_seen_at=ctx.now())
        )
    assert (await client.get("/api/v1/me", headers=who)).status_code == 200
    async with app_ctx(app) as ctx:
        await ctx.session.execute(
            update(AuthSession)
            .where(AuthSession.token_hash == token_hash)
            .values(revoked_at=ctx.now())
        )
    assert memory.principal(token_hash) is None
    assert (await client.get("/api/v1/me", headers=who)).status_code == 401


async def test_a_blocked_account_and_an_expired_session_end_at_once(
    app, client, clock, inbox, new_phone
) -> None:
    """An account changed through the ORM ends its remembered sessions; a service clock moved
    past the expiry is not bridged by the memory either."""
    who, _ = await _signed_in(app, client, inbox, new_phone)
    me = (await client.get("/api/v1/me", headers=who)).json()
    async with app_ctx(app) as ctx:
        user = await ctx.session.get(User, me["id"])
        assert user is not None
        user.is_active = False
    assert (await client.get("/api/v1/me", headers=who)).status_code == 401

    other, _ = await _signed_in(app, client, inbox, new_phone)
    clock.advance(timedelta(days=app.state.settings.session_days, seconds=1))
    assert (await client.get("/api/v1/me", headers=other)).status_code == 401
