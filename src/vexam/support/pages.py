"""zh/en pages of self-help for candidates (SPEC §7): help centre and device self-check.

- `GET /help` (public): every answer of `help_topics`, grouped; `?q=` searches on the
  server, so it works without JavaScript and before signing in.
- `GET /device-check`: camera, microphone, upload speed, storage and browser support, each
  measured in the browser (`device-check.js`) with a verdict and advice.
- `POST /device-check/upload`: the upload-speed probe: reads the body and discards it,
  refusing more than `PROBE_MAX_BYTES` (`upload_too_large`).
"""

from __future__ import annotations

from typing import Any

from fastapi import Request, Response
from fastapi.responses import JSONResponse

from vexam.config import Settings
from vexam.core.auth import CurrentPrincipal, ServiceCtx
from vexam.core.errors import VexamError
from vexam.core.web import Templates, make_router, public, request_locale
from vexam.support import help_topics

router = make_router(include_in_schema=False)

# The upload-speed probe sends a few MB; anything larger is refused unread.
PROBE_MAX_BYTES = 8 * 1024 * 1024
# Longest search query kept: a sentence, not a document.
QUERY_MAX_CHARS = 100


def _render(request: Request, name: str, **context: Any) -> Response:
    templates: Templates = request.app.state.templates
    return templates.render(request, f"support/{name}", context)


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
    }


@router.get("/help")
@public
async def help_page(request: Request, q: str = "") -> Response:
    """The help centre: all answers by section, or the answers matching `q`."""
    settings: Settings = request.app.state.settings
    locale = request_locale(request)
    params = help_params(settings)
    query = q.strip()[:QUERY_MAX_CHARS]
    found = help_topics.search(query, params) if query else []

    def answer(topic: help_topics.Topic) -> list[str]:
        return [help_topics.fill(locale, part, params) for part in topic.answer]

    return _render(
        request,
        "help.html",
        query=query,
        results=found,
        sections=help_topics.SECTIONS,
        grouped=help_topics.by_section(),
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
