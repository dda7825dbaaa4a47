"""zh/en pages of self-help for candidates (SPEC §7): help centre and device self-check.

- `GET /help` (public): every answer of `help_topics`, grouped; `?q=` searches on the
  server, so it works without JavaScript and before signing in.
- `GET /device-check`: camera, microphone, upload speed, storage and browser support, each
  measured in the browser (`device-check.js`) with a verdict and advice.
- `POST /device-check/upload`: the upload-speed probe: reads the body and discards it,
  refusing more than `PROBE_MAX_BYTES` (`upload_too_large`).
- `GET /support/audit` (support and operators): the audit log of one candidate, found by
  phone, ID number (its blind index) or account id; masked values only.
"""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import Depends, Form, Request, Response
from fastapi.responses import JSONResponse, RedirectResponse

from vexam.config import Settings
from vexam.core.auth import CurrentPrincipal, ServiceCtx, require_roles
from vexam.core.context import Ctx, Principal, Role
from vexam.core.errors import CATALOGUE, VexamError, field_invalid
from vexam.core.i18n import render_message
from vexam.core.policy import current_policy
from vexam.core.web import Templates, make_router, public, request_locale
from vexam.support import audit_search, help_search, help_topics, labels, service

router = make_router(include_in_schema=False)

# The upload-speed probe sends a few MB; anything larger is refused unread.
PROBE_MAX_BYTES = 8 * 1024 * 1024
# Longest search query kept: a sentence, not a document.
QUERY_MAX_CHARS = 100


AuditReader = Annotated[Principal, Depends(require_roles(Role.support, Role.operator))]


def _render(request: Request, name: str, status_code: int = 200, **context: Any) -> Response:
    templates: Templates = request.app.state.templates
    return templates.render(request, f"support/{name}", context, status_code=status_code)


def help_params(settings: Settings) -> dict[str, Any]:
    """The numbers the answers quote, from this deployment's settings."""
    return {
        "resend_seconds": settings.sms_resend_seconds,
        "daily_cap": settings.sms_daily_cap_per_phone,
        "ttl_minutes": settings.sms_code_ttl_seconds // 60,
        "wrong_attempts": settings.sms_max_wrong_attempts,
        "password_min_length": settings.password_min_length,
        "login_failures": settings.login_max_failures,
        "lockout_minutes": settings.lockout_minutes,
        "face_attempts": settings.face_max_attempts,
        "hours_start": settings.support_hours_start,
        "hours_end": settings.support_hours_end,
        "sla_minutes": settings.support_sla_minutes,
        "open_tickets_max": service.OPEN_TICKETS_MAX,
    }


@router.get("/help")
@public
async def help_page(request: Request, q: str = "") -> Response:
    """The help centre: all answers by section, or the answers matching `q`."""
    settings: Settings = request.app.state.settings
    locale = request_locale(request)
    params = help_params(settings)
    policy = current_policy(settings, request.app.state.resources)  # the operator's hours
    params.update(
        hours_start=policy.support_hours_start,
        hours_end=policy.support_hours_end,
        sla_minutes=policy.support_sla_minutes,
    )
    query = q.strip()[:QUERY_MAX_CHARS]
    found = help_search.search(query, params) if query else []

    def answer(topic: help_topics.Topic) -> list[str]:
        return [help_search.fill(locale, part, params) for part in topic.answer]

    return _render(
        request,
        "help.html",
        query=query,
        results=found,
        sections=help_topics.SECTIONS,
        grouped=help_search.by_section(),
        answer=answer,
    )


@router.get("/device-check")
async def device_check_page(request: Request, principal: CurrentPrincipal) -> Response:
    """The device self-check page (the checks run in the browser)."""
    return _render(request, "device_check.html", probe_max_bytes=PROBE_MAX_BYTES)


@router.post("/device-check/upload")
async def device_check_upload(
    request: Request, principal: CurrentPrincipal, ctx: ServiceCtx
) -> Response:
    """Read and discard the body (the client times it); `upload_too_large` past the cap."""
    content_type = request.headers.get("content-type", "")
    if content_type.startswith(("application/x-www-form-urlencoded", "multipart/form-data")):
        # The probe times raw bytes; a form is refused (its body was read by the CSRF check).
        raise field_invalid("body", "raw_bytes_expected")
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > PROBE_MAX_BYTES:
        raise VexamError("upload_too_large", max_bytes=PROBE_MAX_BYTES)
    # The body is never streamed inside a transaction (SQLite would hold it for the transfer).
    await ctx.session.commit()
    received = 0
    async for chunk in request.stream():
        received += len(chunk)
        if received > PROBE_MAX_BYTES:
            raise VexamError("upload_too_large", max_bytes=PROBE_MAX_BYTES)
    return JSONResponse({"received": received})


def _to_results(ctx: Ctx, phone: str, id_number: str, user_id: str) -> Response:
    """303 to the result page, the ID number replaced by its blind index."""
    query = {
        "phone": phone.strip(),
        "id_index": audit_search.id_index(ctx, id_number) if id_number.strip() else "",
        "user_id": user_id.strip(),
    }
    kept = {key: value for key, value in query.items() if value}
    return RedirectResponse(f"/support/audit?{urlencode(kept)}", status_code=303)


@router.post("/support/audit")
async def audit_search_post(
    reader: AuditReader,
    ctx: ServiceCtx,
    phone: Annotated[str, Form()] = "",
    id_number: Annotated[str, Form()] = "",
    user_id: Annotated[str, Form()] = "",
) -> Response:
    """The search form: keeps a typed ID number out of addresses, history and access logs."""
    return _to_results(ctx, phone, id_number, user_id)


@router.get("/support/audit")
async def audit_page(
    request: Request,
    reader: AuditReader,
    ctx: ServiceCtx,
    phone: str = "",
    id_number: str = "",
    id_index: str = "",
    user_id: str = "",
    page: int = 1,
) -> Response:
    """Search the audit log for one candidate, newest first, 50 a page.

    An ID number given here is at once replaced by its blind index (a redirect), so the
    number stays in no link or page; the search form posts it (`audit_search_post`), so it
    is not in any address either.
    """
    if id_number.strip():
        return _to_results(ctx, phone, id_number, user_id)
    account = int(user_id) if user_id.strip().isdigit() else None
    asked = bool(phone.strip() or id_index or account is not None)
    error = error_code = None
    result = audit_search.AuditPage()
    if asked:
        try:
            result = await audit_search.search(
                ctx, phone=phone, id_number_index=id_index, user_id=account, page=page
            )
        except VexamError as exc:
            error = render_message(
                ctx.locale, CATALOGUE[exc.code].message, exc.params, ctx.settings.default_timezone
            )
            error_code = exc.code
    paging = {"phone": phone.strip(), "id_index": id_index, "user_id": account or ""}
    return _render(
        request,
        "audit.html",
        422 if error else 200,
        asked=asked,
        error=error,
        error_code=error_code,
        result=result,
        by_id_number=bool(id_index),
        user_id=account,
        paging=urlencode({key: value for key, value in paging.items() if value}),
        role_label=_role_label,
        action_labels=labels.AUDIT_ACTION_LABELS,
        subject_labels=labels.AUDIT_SUBJECT_LABELS,
        actor_labels=labels.AUDIT_ACTOR_LABELS,
        detail_lines=labels.detail_lines,
        label=labels.label,
    )


def _role_label(role: str) -> str:
    """The name of an actor's role as a msgid to translate (the raw value if unknown)."""
    try:
        return Role(role).label
    except ValueError:
        return labels.label(labels.AUDIT_ACTOR_LABELS, role)
