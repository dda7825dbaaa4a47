"""GET /media/<token>: a recording or its poster through a signed link, with HTTP ranges.

The link (see `playback.playback_link`) is bound to one viewer: the signed-in account must be
that viewer. Answers 200 with the whole file, 206 with one byte range, 416 for a range
outside it; `Cache-Control: private` for as long as the link lives, never shared caches.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from fastapi import Request, Response
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field

from vexam.core.auth import CurrentPrincipal, ServiceCtx
from vexam.core.errors import VexamError
from vexam.core.problems import problem_response
from vexam.core.web import make_router
from vexam.exams import playback

router = make_router(tags=["media playback"])


class PlaybackOut(BaseModel):
    """Signed links to watch one recording, valid for the caller alone until `expires_at`."""

    url: str = Field(description="relative URL of the video (HTTP ranges supported)")
    poster_url: str | None = Field(description="relative URL of the poster frame, when made")
    expires_at: datetime


@router.get("/api/v1/uploads/{upload_id}/playback", response_model=PlaybackOut)
async def playback_links(
    upload_id: str, principal: CurrentPrincipal, ctx: ServiceCtx
) -> PlaybackOut:
    """Links to a verified recording for its candidate, the school's reviewers and admins,
    and support (`upload_not_found` for anyone else)."""
    ttl = ctx.settings.media_link_seconds
    url = await playback.playback_link(ctx, principal, upload_id, ttl_s=ttl)
    try:
        poster: str | None = await playback.playback_link(
            ctx, principal, upload_id, ttl_s=ttl, kind="poster"
        )
    except VexamError:
        poster = None
    return PlaybackOut(url=url, poster_url=poster, expires_at=ctx.now() + timedelta(seconds=ttl))


@router.api_route("/media/{token}", methods=["GET"], response_model=None, operation_id="media_get")
@router.api_route(
    "/media/{token}", methods=["HEAD"], response_model=None, operation_id="media_head"
)
async def media(
    token: str, request: Request, principal: CurrentPrincipal, ctx: ServiceCtx
) -> Response:
    """Serve the video or poster a signed link names, to its viewer only.

    `media_link_invalid` (403) for a forged link or another account's, `media_link_expired`
    (410), `upload_not_found`, `media_not_ready`, `media_range_invalid` (416).
    """
    grant = playback.read_token(ctx.settings.secret_key, token, ctx.now())
    if grant.viewer_id != principal.user_id:
        raise VexamError("media_link_invalid")
    item = await playback.served(ctx, grant)
    left = max(0, int((grant.expires_at - ctx.now()).total_seconds()))
    headers = {
        "Accept-Ranges": "bytes",
        "Cache-Control": f"private, max-age={left}",
        "Content-Disposition": "inline",
        "ETag": f'"{grant.upload_id}-{grant.kind}-{item.size}"',
        "Referrer-Policy": "no-referrer",
        "X-Content-Type-Options": "nosniff",
    }
    try:
        wanted = playback.parse_range(request.headers.get("range"), item.size)
    except playback.RangeNotSatisfiable:
        return problem_response(
            request,
            "media_range_invalid",
            {"size": item.size},
            {**headers, "Content-Range": f"bytes */{item.size}"},
        )
    status = 200
    start, end = 0, item.size
    if wanted is not None:
        start, end = wanted
        status = 206
        headers["Content-Range"] = f"bytes {start}-{end - 1}/{item.size}"
    headers["Content-Length"] = str(end - start)
    if request.method == "HEAD":
        return Response(status_code=status, headers=headers, media_type=item.content_type)
    return StreamingResponse(
        playback.read_range(ctx, item, start, end),
        status_code=status,
        headers=headers,
        media_type=item.content_type,
    )
