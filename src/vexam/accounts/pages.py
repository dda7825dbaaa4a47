"""Minimal zh-CN/en pages: register, sign in (password or SMS), reset, account home."""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import urlparse

from fastapi import Form, Request, Response
from fastapi.responses import RedirectResponse

from vexam.accounts import service
from vexam.accounts.codes import Purpose
from vexam.core.auth import CurrentPrincipal, OptionalPrincipal, ServiceCtx
from vexam.core.context import Ctx
from vexam.core.db import KeepChanges
from vexam.core.errors import CATALOGUE, VexamError
from vexam.core.i18n import LOCALES, N_, gettext, render_message
from vexam.core.web import (
    LANG_COOKIE,
    SESSION_COOKIE,
    Templates,
    make_router,
    public,
    request_locale,
)

router = make_router(include_in_schema=False)
FormStr = Annotated[str, Form()]


NOTICES = {"password_changed": N_("Password changed. Sign in with the new password.")}


def _chosen_locale(request: Request) -> str | None:
    """The language this browser picked with the language link, if any."""
    chosen = request.cookies.get(LANG_COOKIE)
    return chosen if chosen in LOCALES else None


def _render(request: Request, name: str, status_code: int = 200, **context: Any) -> Response:
    templates: Templates = request.app.state.templates
    return templates.render(request, f"accounts/{name}", context, status_code=status_code)


async def _refusal(ctx: Ctx, request: Request, exc: VexamError, page: str, **form: Any) -> Response:
    """Show the form again with the refusal's message, keeping what the user typed."""
    if not isinstance(exc, KeepChanges):
        # A refusal undoes the request's writes unless it is meant to count.
        await ctx.session.rollback()
    message = render_message(
        ctx.locale, CATALOGUE[exc.code].message, exc.params, ctx.settings.default_timezone
    )
    return _render(request, page, exc.status, error=message, error_code=exc.code, **form)


def _signed_in(request: Request, signed_in: service.SignedIn) -> Response:
    settings = request.app.state.settings
    response = RedirectResponse("/", status_code=303)
    response.set_cookie(
        SESSION_COOKIE,
        signed_in.token,
        max_age=settings.session_days * 86400,
        httponly=True,
        samesite="lax",
        secure=settings.cookie_secure,
    )
    return response


def _code_sent_notice(ctx: Ctx, sent: service.CodeSent) -> str:
    return render_message(
        ctx.locale,
        N_(
            "A code was sent. It is valid for 5 minutes; you can request another after {resend_at}."
        ),
        {"resend_at": sent.resend_at},
        ctx.settings.default_timezone,
    )


@router.get("/")
@public
async def home(request: Request, principal: OptionalPrincipal, ctx: ServiceCtx) -> Response:
    """The account home for a signed-in user; the sign-in page otherwise.

    For a candidate it is also where the journey is followed: `home.js` shows the
    certification, the exams and what to do next from the public JSON API, and keeps them
    current while the page is open (staff see their consoles' links).
    """
    if principal is None:
        return RedirectResponse("/login", status_code=303)
    user = await service.get_user(ctx.session, principal.user_id)
    sessions = await service.list_sessions(ctx, principal)
    return _render(
        request,
        "home.html",
        user=user,
        principal=principal,
        sessions=sessions,
        timezone=ctx.settings.default_timezone,
    )


@router.get("/login")
@public
async def login_page(request: Request, mode: str = "password", notice: str = "") -> Response:
    """Sign-in form (password, or SMS code with `?mode=sms`)."""
    shown = NOTICES.get(notice)
    return _render(
        request,
        "login.html",
        mode="sms" if mode == "sms" else "password",
        phone="",
        notice=gettext(request_locale(request), shown) if shown else None,
    )


@router.post("/login")
@public
async def login_submit(
    request: Request,
    ctx: ServiceCtx,
    phone: FormStr,
    mode: Annotated[str, Form()] = "password",
    action: Annotated[str, Form()] = "login",
    password: Annotated[str, Form()] = "",
    code: Annotated[str, Form()] = "",
) -> Response:
    """Sign in, or send a login code first."""
    mode = "sms" if mode == "sms" else "password"
    try:
        if mode == "sms" and action == "send_code":
            sent = await service.request_code(ctx, phone, Purpose.login)
            return _render(
                request, "login.html", mode=mode, phone=phone, notice=_code_sent_notice(ctx, sent)
            )
        if mode == "sms":
            signed_in = await service.login_with_code(ctx, phone, code)
        else:
            signed_in = await service.login_with_password(ctx, phone, password)
    except VexamError as exc:
        return await _refusal(ctx, request, exc, "login.html", mode=mode, phone=phone)
    chosen = _chosen_locale(request)
    if chosen and chosen != signed_in.user.locale:
        # The language picked on this device before signing in is the person's choice.
        signed_in.user.locale = chosen
    return _signed_in(request, signed_in)


@router.get("/register")
@public
async def register_page(request: Request) -> Response:
    """Registration form."""
    return _render(request, "register.html", phone="")


@router.post("/register")
@public
async def register_submit(
    request: Request,
    ctx: ServiceCtx,
    phone: FormStr,
    action: Annotated[str, Form()] = "register",
    code: Annotated[str, Form()] = "",
    password: Annotated[str, Form()] = "",
) -> Response:
    """Register, or send the registration code first."""
    try:
        if action == "send_code":
            sent = await service.request_code(ctx, phone, Purpose.register)
            return _render(
                request, "register.html", phone=phone, notice=_code_sent_notice(ctx, sent)
            )
        signed_in = await service.register(ctx, phone, code, password, _chosen_locale(request))
    except VexamError as exc:
        return await _refusal(ctx, request, exc, "register.html", phone=phone)
    return _signed_in(request, signed_in)


@router.get("/reset")
@public
async def reset_page(request: Request) -> Response:
    """Password reset form."""
    return _render(request, "reset.html", phone="")


@router.post("/reset")
@public
async def reset_submit(
    request: Request,
    ctx: ServiceCtx,
    phone: FormStr,
    action: Annotated[str, Form()] = "reset",
    code: Annotated[str, Form()] = "",
    password: Annotated[str, Form()] = "",
) -> Response:
    """Reset the password, or send the reset code first."""
    try:
        if action == "send_code":
            sent = await service.request_code(ctx, phone, Purpose.reset)
            return _render(request, "reset.html", phone=phone, notice=_code_sent_notice(ctx, sent))
        await service.reset_password(ctx, phone, code, password)
    except VexamError as exc:
        return await _refusal(ctx, request, exc, "reset.html", phone=phone)
    # Redirect, so reloading the page never re-posts a spent code.
    return RedirectResponse("/login?notice=password_changed", status_code=303)


@router.post("/logout")
async def logout_submit(principal: CurrentPrincipal, ctx: ServiceCtx) -> Response:
    """Sign this browser out."""
    await service.logout(ctx, principal)
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE)
    return response


@router.post("/sessions/{session_id}/revoke")
async def revoke_submit(session_id: int, principal: CurrentPrincipal, ctx: ServiceCtx) -> Response:
    """Sign another device out."""
    await service.revoke_session(ctx, principal, session_id)
    return RedirectResponse("/", status_code=303)


@router.get("/lang/{locale}")
@public
async def switch_language(
    locale: str, principal: OptionalPrincipal, ctx: ServiceCtx, next: str = "/"
) -> Response:
    """Switch the interface language (kept on the account when signed in)."""
    if locale not in LOCALES:
        raise VexamError("not_found")
    target = (
        next
        if next.startswith("/") and not urlparse(next).netloc and not next.startswith("//")
        else "/"
    )
    if principal is not None:
        await service.update_profile(ctx, principal, locale=locale)
    response = RedirectResponse(target, status_code=303)
    response.set_cookie(LANG_COOKIE, locale, max_age=31536000, samesite="lax")
    return response
