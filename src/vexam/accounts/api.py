"""JSON routes of the accounts domain under /api/v1."""

from __future__ import annotations

from fastapi import Response, status

from vexam.accounts import schemas, service
from vexam.accounts.models import User
from vexam.core.auth import CurrentPrincipal, ServiceCtx
from vexam.core.web import make_router, public

router = make_router(prefix="/api/v1", tags=["accounts"])


def user_out(user: User) -> schemas.UserOut:
    """The owner's view of an account, phone masked."""
    return schemas.UserOut(
        id=user.id,
        phone=service.mask_phone(user.phone),
        role=user.role,
        school_id=user.school_id,
        display_name=user.display_name,
        locale=user.locale,
    )


def token_out(signed_in: service.SignedIn) -> schemas.TokenOut:
    """The response to a successful sign-in."""
    return schemas.TokenOut(
        token=signed_in.token,
        expires_at=signed_in.expires_at,
        session_id=signed_in.session_id,
        device_id=signed_in.device_id,
        user=user_out(signed_in.user),
    )


@router.post("/auth/sms-codes", status_code=status.HTTP_202_ACCEPTED)
@public
async def request_sms_code(body: schemas.SmsCodeRequest, ctx: ServiceCtx) -> schemas.SmsCodeSent:
    """Send a 6-digit code (valid 5 minutes; another no sooner than 60 s; daily caps)."""
    sent = await service.request_code(ctx, body.phone, body.purpose)
    return schemas.SmsCodeSent(expires_at=sent.expires_at, resend_at=sent.resend_at)


@router.post("/auth/register", status_code=status.HTTP_201_CREATED)
@public
async def register(body: schemas.RegisterRequest, ctx: ServiceCtx) -> schemas.TokenOut:
    """Create a candidate account and sign in on this device."""
    return token_out(await service.register(ctx, body.phone, body.code, body.password, body.locale))


@router.post("/auth/login")
@public
async def login(body: schemas.PasswordLogin, ctx: ServiceCtx) -> schemas.TokenOut:
    """Sign in with phone and password."""
    return token_out(await service.login_with_password(ctx, body.phone, body.password))


@router.post("/auth/login/sms")
@public
async def login_sms(body: schemas.CodeLogin, ctx: ServiceCtx) -> schemas.TokenOut:
    """Sign in with phone and a login SMS code."""
    return token_out(await service.login_with_code(ctx, body.phone, body.code))


@router.post("/auth/password-reset", status_code=status.HTTP_204_NO_CONTENT)
@public
async def reset_password(body: schemas.PasswordReset, ctx: ServiceCtx) -> Response:
    """Set a new password with a reset code; every session of the account ends."""
    await service.reset_password(ctx, body.phone, body.code, body.new_password)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("/auth/logout", status_code=status.HTTP_204_NO_CONTENT)
async def logout(principal: CurrentPrincipal, ctx: ServiceCtx) -> Response:
    """End this session."""
    await service.logout(ctx, principal)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/me")
async def me(principal: CurrentPrincipal, ctx: ServiceCtx) -> schemas.UserOut:
    """The signed-in account."""
    return user_out(await service.get_user(ctx.session, principal.user_id))


@router.patch("/me")
async def update_me(
    body: schemas.ProfileUpdate, principal: CurrentPrincipal, ctx: ServiceCtx
) -> schemas.UserOut:
    """Change language or display name."""
    user = await service.update_profile(
        ctx, principal, locale=body.locale, display_name=body.display_name
    )
    return user_out(user)


@router.get("/me/sessions")
async def my_sessions(principal: CurrentPrincipal, ctx: ServiceCtx) -> list[schemas.SessionOut]:
    """The devices this account is signed in on."""
    rows = await service.list_sessions(ctx, principal)
    return [
        schemas.SessionOut(
            id=row.id,
            device_id=row.device_id,
            user_agent=row.user_agent,
            client_ip=row.client_ip,
            created_at=row.created_at,
            last_seen_at=row.last_seen_at,
            expires_at=row.expires_at,
            current=row.id == principal.session_id,
        )
        for row in rows
    ]


@router.delete("/me/sessions/{session_id}", status_code=status.HTTP_204_NO_CONTENT)
async def revoke_my_session(
    session_id: int, principal: CurrentPrincipal, ctx: ServiceCtx
) -> Response:
    """Sign one of your devices out."""
    await service.revoke_session(ctx, principal, session_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
