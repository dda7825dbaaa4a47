"""Who is calling: bearer tokens for apps, an HttpOnly cookie for pages; CSRF for forms.

A web process remembers the sessions it confirmed (`PrincipalMemory`, at most
`SESSION_TRUST_S` = 10 s each, and never across a jump of the service clock larger than
that), so most requests skip the session lookup. It forgets them all as soon as it commits
a change to a session or an account (sign-out, revocation, password change, blocked
account: `Database.watch`); a change committed by another process reaches this one within
10 s. The lookup itself refuses revoked, expired and blocked sessions.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Annotated, Protocol

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession

from vexam.core.context import Ctx, Principal, Role
from vexam.core.errors import VexamError
from vexam.core.web import (
    DEVICE_COOKIE,
    SESSION_COOKIE,
    client_ip,
    csrf_token_for,
    device_id,
    is_public,
    request_locale,
)

# Resolves a token hash to a principal; provided by the accounts domain at app start.
Authenticator = Callable[[AsyncSession, str, datetime], Awaitable[Principal | None]]
SESSION_TRUST_S = 10.0  # how long a web process trusts a session it confirmed


class PrincipalMemory(Protocol):
    """A web process's memory of confirmed sessions (see the module)."""

    def principal(self, token_hash: str, now: datetime | None = None) -> Principal | None:
        """The principal of a session confirmed recently enough, else None."""

    def remember_principal(
        self, token_hash: str, principal: Principal, now: datetime | None = None
    ) -> None:
        """Note that `token_hash` was confirmed as `principal` at service time `now`."""

    def forget_principals(self) -> None:
        """Trust no remembered session any more."""


_UNSAFE = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_SAFE = frozenset({"GET", "HEAD"})
_FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")


def new_token() -> str:
    """A fresh opaque session token (256 bits)."""
    return secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    """What is stored for a token: its SHA-256 (a leaked table signs nobody in)."""
    return hashlib.sha256(token.encode()).hexdigest()


def _bearer(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    return value.strip() or None if scheme.lower() == "bearer" else None


async def _check_csrf(request: Request) -> None:
    device = request.cookies.get(DEVICE_COOKIE)
    sent = request.headers.get("x-csrf-token")
    if sent is None and request.headers.get("content-type", "").startswith(_FORM_TYPES):
        form = await request.form()
        value = form.get("csrf_token")
        sent = value if isinstance(value, str) else None
    if not csrf_matches(request.app.state.settings.secret_key, device, sent):
        raise VexamError("csrf_failed")


def csrf_matches(secret_key: str, device: str | None, sent: str | None) -> bool:
    """Whether `sent` is the form token of the browser whose device cookie is `device`."""
    expected = csrf_token_for(secret_key, device) if device else None
    return bool(expected and sent and hmac.compare_digest(sent, expected))


async def authenticate(request: Request) -> None:
    """App-wide dependency: resolve the caller, refuse anonymous calls to non-public routes.

    A browser request that could ride on ambient cookies (a session cookie or a form post)
    must carry the CSRF token of its device when it changes state.
    """
    bearer = _bearer(request)
    cookie = request.cookies.get(SESSION_COOKIE)
    if request.method in _UNSAFE and bearer is None:
        content_type = request.headers.get("content-type", "")
        if cookie is not None or content_type.startswith(_FORM_TYPES):
            await _check_csrf(request)
    token = bearer or cookie
    principal: Principal | None = None
    if token:
        state = request.app.state
        token_hash = hash_token(token)
        now = state.clock.now()
        memory: PrincipalMemory | None = getattr(state, "principal_memory", None)
        principal = memory.principal(token_hash, now) if memory is not None else None
        if principal is None:
            principal = await state.authenticator(request.state.db, token_hash, now)
            if principal is not None and memory is not None:
                memory.remember_principal(token_hash, principal, now)
        if principal is not None:
            request.state.token_hash = token_hash
    request.state.principal = principal
    if principal is None and not is_public(request.scope.get("endpoint")):
        raise VexamError("not_authenticated")


def remembered_reader(request: Request, memory: PrincipalMemory) -> Principal | None:
    """The caller of a safe request (GET, HEAD) as `authenticate` would find it, when this
    process confirmed the session recently (`memory`); None when it did not, or when the
    request is not safe (CSRF is checked by `authenticate` only). Sets the request state
    `authenticate` sets."""
    if request.method not in _SAFE:
        return None
    token = _bearer(request) or request.cookies.get(SESSION_COOKIE)
    if not token:
        return None
    token_hash = hash_token(token)
    principal = memory.principal(token_hash, request.app.state.clock.now())
    if principal is not None:
        request.state.token_hash = token_hash
        request.state.principal = principal
    return principal


async def optional_principal(request: Request) -> Principal | None:
    """The signed-in principal, or None on a public route."""
    principal: Principal | None = getattr(request.state, "principal", None)
    return principal


async def current_principal(request: Request) -> Principal:
    """The signed-in principal; 401 `not_authenticated` otherwise."""
    principal: Principal | None = getattr(request.state, "principal", None)
    if principal is None:
        raise VexamError("not_authenticated")
    return principal


def require_roles(*roles: Role) -> Callable[[Request], Awaitable[Principal]]:
    """A dependency that admits only principals holding one of `roles` (403 `forbidden`)."""

    async def _dependency(request: Request) -> Principal:
        principal = await current_principal(request)
        if principal.role not in roles:
            raise VexamError("forbidden")
        return principal

    return _dependency


async def get_ctx(request: Request) -> Ctx:
    """The service context of this request (its unit of work, actor, client and language)."""
    state = request.app.state
    return Ctx(
        session=request.state.db,
        clock=state.clock,
        settings=state.settings,
        jobs=state.queue,
        actor=getattr(request.state, "principal", None),
        client_ip=client_ip(request),
        device_id=device_id(request),
        locale=request_locale(request),
        extra={**state.resources, "user_agent": request.headers.get("user-agent", "")[:300]},
        store=state.store,
    )


CurrentPrincipal = Annotated[Principal, Depends(current_principal)]
OptionalPrincipal = Annotated[Principal | None, Depends(optional_principal)]
ServiceCtx = Annotated[Ctx, Depends(get_ctx)]
Operator = Annotated[Principal, Depends(require_roles(Role.operator))]
SupportAgent = Annotated[Principal, Depends(require_roles(Role.support))]
Candidate = Annotated[Principal, Depends(require_roles(Role.candidate))]
