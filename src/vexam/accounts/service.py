"""Account rules: register, sign in (password or SMS), reset, sessions, lockout (SPEC §2)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from vexam.accounts import passwords
from vexam.accounts.codes import CodeSent, Purpose, consume_code, issue_code, seconds_until
from vexam.accounts.models import AuthSession, User
from vexam.accounts.phones import mask_phone, normalise_phone
from vexam.core import audit
from vexam.core.audit import AuditEntry
from vexam.core.auth import hash_token, new_token
from vexam.core.context import Ctx, Principal, Role
from vexam.core.errors import CountedRefusal, VexamError
from vexam.core.i18n import LOCALES

__all__ = ["CodeSent", "Purpose", "mask_phone", "normalise_phone"]

# Refresh a session's last-seen time at most this often: one write per request is waste.
LAST_SEEN_GRANULARITY = timedelta(minutes=5)
LOGIN_FAILED_ACTION = "login.failed"


@dataclass(frozen=True)
class SignedIn:
    """A new session: the token is shown to the client once and stored only hashed."""

    user: User
    token: str
    session_id: int
    expires_at: datetime
    device_id: str | None


async def user_by_phone(session: AsyncSession, phone: str) -> User | None:
    """The account of a (normalised) phone number, if any."""
    return (await session.execute(select(User).where(User.phone == phone))).scalar_one_or_none()


async def get_user(session: AsyncSession, user_id: int) -> User:
    """The account with `user_id` (which must exist)."""
    user = await session.get(User, user_id)
    if user is None:
        raise VexamError("not_found")
    return user


async def request_code(ctx: Ctx, raw_phone: str, purpose: Purpose) -> CodeSent:
    """Send an SMS code: to new phones for registering, to existing accounts otherwise."""
    phone = normalise_phone(raw_phone)
    user = await user_by_phone(ctx.session, phone)
    if purpose is Purpose.register and user is not None:
        raise VexamError("phone_registered")
    if purpose is not Purpose.register and user is None:
        raise VexamError("phone_not_registered")
    return await issue_code(ctx, phone, purpose)


async def create_user(
    ctx: Ctx,
    phone: str,
    password: str,
    *,
    role: Role = Role.candidate,
    school_id: int | None = None,
    display_name: str | None = None,
    locale: str | None = None,
) -> User:
    """Create an account (phone already normalised); `phone_registered` if it exists."""
    passwords.check_password_policy(password, phone, ctx.settings)
    now = ctx.now()
    user = User(
        phone=phone,
        password_hash=await passwords.hash_password(password, ctx.settings),
        role=role.value,
        school_id=school_id,
        display_name=display_name,
        locale=locale if locale in LOCALES else None,
        created_at=now,
        password_changed_at=now,
    )
    try:
        async with ctx.session.begin_nested():
            ctx.session.add(user)
    except IntegrityError:
        # The unique phone index decides between two concurrent registrations.
        raise VexamError("phone_registered") from None
    await audit.record(
        ctx, "account.created", "user", user.id, role=role.value, phone=mask_phone(phone)
    )
    return user


async def register(
    ctx: Ctx, raw_phone: str, code: str, password: str, locale: str | None = None
) -> SignedIn:
    """Create a candidate account with a register code and sign it in on this device."""
    phone = normalise_phone(raw_phone)
    # Check everything the candidate can fix before the code is spent.
    passwords.check_password_policy(password, phone, ctx.settings)
    if await user_by_phone(ctx.session, phone) is not None:
        raise VexamError("phone_registered")
    await consume_code(ctx, phone, Purpose.register, code)
    # Only a language the person chose is kept; otherwise each device's own preference rules.
    user = await create_user(ctx, phone, password, locale=locale)
    return await _start_session(ctx, user)


async def login_with_password(ctx: Ctx, raw_phone: str, password: str) -> SignedIn:
    """Sign in by password. Wrong passwords count towards a timed lockout of the account
    (`account_locked`) and, whatever the account, of the client address
    (`login_rate_limited`); both say when to retry (Retry-After)."""
    phone = normalise_phone(raw_phone)
    now = ctx.now()
    await _check_ip_failures(ctx, now)
    user = await user_by_phone(ctx.session, phone)
    if user is not None and user.locked_until is not None and user.locked_until > now:
        raise _locked(now, user.locked_until)
    matches = await passwords.verify_password(
        user.password_hash if user else None, password, ctx.settings
    )
    if user is None:
        # Counted against the client address too: guessing which phones exist costs tries.
        await audit.record(ctx, LOGIN_FAILED_ACTION, "phone", mask_phone(phone))
        raise CountedRefusal("login_failed")
    if not matches:
        await audit.record(ctx, LOGIN_FAILED_ACTION, "user", user.id)
        await _count_failure(ctx, user, now)
    _ensure_active(user)
    if passwords.needs_rehash(user.password_hash, ctx.settings):
        user.password_hash = await passwords.hash_password(password, ctx.settings)
    return await _start_session(ctx, user, method="password")


def _locked(now: datetime, locked_until: datetime) -> CountedRefusal:
    wait = seconds_until(now, locked_until)
    return CountedRefusal("account_locked", locked_until=locked_until, retry_after_s=wait)


async def _check_ip_failures(ctx: Ctx, now: datetime) -> None:
    """`login_rate_limited` once the client address has failed too often in the window.

    Counted in the database (the audit log), so the cap holds across web processes.
    """
    if not ctx.client_ip:
        return
    settings = ctx.settings
    window = timedelta(minutes=settings.login_ip_window_minutes)
    count, oldest = (
        await ctx.session.execute(
            select(func.count(), func.min(AuditEntry.at)).where(
                AuditEntry.action == LOGIN_FAILED_ACTION,
                AuditEntry.client_ip == ctx.client_ip,
                AuditEntry.at > now - window,
            )
        )
    ).one()
    if count >= settings.login_max_failures_per_ip:
        retry_at = (oldest or now) + window
        wait = seconds_until(now, retry_at)
        raise VexamError("login_rate_limited", retry_at=retry_at, retry_after_s=wait)


async def _count_failure(ctx: Ctx, user: User, now: datetime) -> None:
    settings = ctx.settings
    failures = (
        await ctx.session.execute(
            update(User)
            .where(User.id == user.id)
            .values(failed_logins=User.failed_logins + 1)
            .returning(User.failed_logins)
        )
    ).scalar_one()
    if failures >= settings.login_max_failures:
        locked_until = now + timedelta(minutes=settings.lockout_minutes)
        await ctx.session.execute(
            update(User)
            .where(User.id == user.id)
            .values(failed_logins=0, locked_until=locked_until)
        )
        await audit.record(
            ctx, "account.locked", "user", user.id, locked_until=locked_until.isoformat()
        )
        raise _locked(now, locked_until)
    raise CountedRefusal("login_failed")


def _ensure_active(user: User) -> None:
    if not user.is_active:
        raise VexamError("account_disabled")


async def login_with_code(ctx: Ctx, raw_phone: str, code: str) -> SignedIn:
    """Sign in with a login code; owning the phone also lifts a password lockout."""
    phone = normalise_phone(raw_phone)
    user = await user_by_phone(ctx.session, phone)
    if user is None:
        raise VexamError("phone_not_registered")
    await consume_code(ctx, phone, Purpose.login, code)
    _ensure_active(user)
    return await _start_session(ctx, user, method="sms")


async def reset_password(ctx: Ctx, raw_phone: str, code: str, new_password: str) -> None:
    """Set a new password with a reset code; ends every session and lifts any lockout."""
    phone = normalise_phone(raw_phone)
    passwords.check_password_policy(new_password, phone, ctx.settings)
    user = await user_by_phone(ctx.session, phone)
    if user is None:
        raise VexamError("phone_not_registered")
    await consume_code(ctx, phone, Purpose.reset, code)
    now = ctx.now()
    user.password_hash = await passwords.hash_password(new_password, ctx.settings)
    user.password_changed_at = now
    user.failed_logins = 0
    user.locked_until = None
    await ctx.session.execute(
        update(AuthSession)
        .where(AuthSession.user_id == user.id, AuthSession.revoked_at.is_(None))
        .values(revoked_at=now)
    )
    await audit.record(ctx, "account.password_reset", "user", user.id, actor_user_id=user.id)


async def _start_session(ctx: Ctx, user: User, method: str = "register") -> SignedIn:
    """A fresh token, never one the client brought. A session the request came with (an old
    cookie or bearer token) ends here: one device, one live sign-in."""
    now = ctx.now()
    if ctx.actor is not None:
        await ctx.session.execute(
            update(AuthSession)
            .where(AuthSession.id == ctx.actor.session_id, AuthSession.revoked_at.is_(None))
            .values(revoked_at=now)
        )
    user.failed_logins = 0
    user.locked_until = None
    token = new_token()
    expires_at = now + timedelta(days=ctx.settings.session_days)
    row = AuthSession(
        user_id=user.id,
        token_hash=hash_token(token),
        device_id=ctx.device_id,
        user_agent=(ctx.extra.get("user_agent") or None),
        client_ip=ctx.client_ip,
        created_at=now,
        last_seen_at=now,
        expires_at=expires_at,
    )
    ctx.session.add(row)
    await ctx.session.flush()
    await audit.record(
        ctx,
        "session.started",
        "user",
        user.id,
        actor_user_id=user.id,
        actor_role=user.role,
        method=method,
        session_id=row.id,
    )
    return SignedIn(user, token, row.id, expires_at, ctx.device_id)


# Rows whose change ends a remembered sign-in (`core.auth`); the column a request bumps
# (last seen) does not count.
SESSION_TABLES = {
    AuthSession.__tablename__: frozenset({"last_seen_at"}),
    User.__tablename__: frozenset[str](),
}


# Built once with parameters: building the statement and its cache key cost more CPU than
# running it, and every request whose session this process has not confirmed lately runs it.
_LIVE_SESSION = (
    select(AuthSession, User)
    .join(User, User.id == AuthSession.user_id)
    .where(
        AuthSession.token_hash == bindparam("token_hash"),
        AuthSession.revoked_at.is_(None),
        AuthSession.expires_at > bindparam("now"),
        User.is_active.is_(True),
    )
)


async def resolve_token(session: AsyncSession, token_hash: str, now: datetime) -> Principal | None:
    """The principal of a live session token (not revoked, not expired, account active)."""
    found = (
        await session.execute(_LIVE_SESSION, {"token_hash": token_hash, "now": now})
    ).one_or_none()
    if found is None:
        return None
    auth_session, user = found
    if now - auth_session.last_seen_at > LAST_SEEN_GRANULARITY:
        auth_session.last_seen_at = now
    return Principal(
        user_id=user.id,
        role=Role(user.role),
        school_id=user.school_id,
        locale=user.locale,
        session_id=auth_session.id,
        masked_phone=mask_phone(user.phone),
    )


async def logout(ctx: Ctx, principal: Principal) -> None:
    """End the caller's current session."""
    await revoke_session(ctx, principal, principal.session_id)


async def list_sessions(ctx: Ctx, principal: Principal) -> list[AuthSession]:
    """The caller's live sessions, newest first."""
    rows = await ctx.session.execute(
        select(AuthSession)
        .where(
            AuthSession.user_id == principal.user_id,
            AuthSession.revoked_at.is_(None),
            AuthSession.expires_at > ctx.now(),
        )
        .order_by(AuthSession.created_at.desc(), AuthSession.id.desc())
    )
    return list(rows.scalars())


async def revoke_session(ctx: Ctx, principal: Principal, session_id: int) -> None:
    """End one of the caller's own sessions; `session_not_found` for anyone else's."""
    result = await ctx.session.execute(
        update(AuthSession)
        .where(
            AuthSession.id == session_id,
            AuthSession.user_id == principal.user_id,
            AuthSession.revoked_at.is_(None),
        )
        .values(revoked_at=ctx.now())
    )
    if result.rowcount != 1:  # type: ignore[attr-defined]
        raise VexamError("session_not_found")
    await audit.record(ctx, "session.revoked", "user", principal.user_id, session_id=session_id)


async def update_profile(
    ctx: Ctx, principal: Principal, *, locale: str | None = None, display_name: str | None = None
) -> User:
    """Change the caller's language or display name."""
    user = await get_user(ctx.session, principal.user_id)
    changes: dict[str, Any] = {}
    if locale is not None:
        if locale not in LOCALES:
            raise VexamError(
                "invalid_request", errors=[{"loc": ["body", "locale"], "type": "enum"}]
            )
        user.locale = locale
        changes["locale"] = locale
    if display_name is not None:
        user.display_name = display_name.strip()[:100] or None
        changes["display_name"] = "changed"
    await ctx.session.flush()
    if changes:
        await audit.record(ctx, "account.profile_changed", "user", user.id, **changes)
    return user
