"""The tus 1.0 endpoint at /api/v1/uploads (SPEC §5): creation, creation-with-upload,
termination, checksum (sha256), expiration. Downloads are never served here.

Every route is authenticated like the rest of the API (bearer, or cookie + X-CSRF-Token for
unsafe methods); only a CORS preflight (OPTIONS with Access-Control-Request-Method, which
browsers send without credentials) is answered without signing in. Every answer, refusals
included, carries Tus-Resumable and the CORS headers a browser tus client reads.
"""

from __future__ import annotations

import base64
import binascii
import email.utils
from collections.abc import Awaitable, Callable, Coroutine
from datetime import datetime
from typing import Any

from fastapi import APIRouter, Request, Response

from vexam.core.auth import (
    Candidate,
    CurrentPrincipal,
    ServiceCtx,
    authenticate,
    get_ctx,
    require_roles,
)
from vexam.core.context import Ctx, Principal, Role
from vexam.core.db import autocommit_next
from vexam.core.errors import VexamError
from vexam.core.problems import problem_response
from vexam.core.web import UnitOfWorkRoute
from vexam.exams import uploads
from vexam.exams.models import Upload
from vexam.exams.upload_memory import KnownUpload, UploadMemory

TUS_VERSION = "1.0.0"
TUS_EXTENSIONS = "creation,creation-with-upload,termination,checksum,expiration"
OFFSET_STREAM = "application/offset+octet-stream"
EXPOSE_HEADERS = (
    "Location, Upload-Offset, Upload-Length, Upload-Metadata, Upload-Expires, Tus-Resumable, "
    "Tus-Version, Tus-Extension, Tus-Max-Size, Tus-Checksum-Algorithm"
)
ALLOW_HEADERS = (
    "Authorization, Content-Type, Upload-Length, Upload-Offset, Upload-Metadata, "
    "Upload-Checksum, Upload-Defer-Length, Upload-Concat, Tus-Resumable, X-Requested-With, "
    "X-HTTP-Method-Override, X-Device-Id, X-Client-Version, X-CSRF-Token"
)
ALLOW_METHODS = "POST, HEAD, PATCH, DELETE, OPTIONS"
# The session's rollback hooks (core.db): once the request's first part is committed, a
# later refusal must not undo it.
_ROLLBACK_HOOKS = "vexam.after_rollback"


def _discovery(request: Request) -> dict[str, str]:
    return {
        "Tus-Version": TUS_VERSION,
        "Tus-Extension": TUS_EXTENSIONS,
        "Tus-Max-Size": str(uploads.max_size(request.app.state.settings)),
        "Tus-Checksum-Algorithm": "sha256",
    }


def _cors(request: Request, response: Response, *, preflight: bool) -> None:
    origin = request.headers.get("origin")
    if not origin:
        return
    settings = request.app.state.settings
    allowed = {settings.base_url.rstrip("/"), *settings.upload_cors_origins}
    if origin.rstrip("/") not in allowed and "*" not in allowed:
        return
    response.headers["Access-Control-Allow-Origin"] = origin
    response.headers["Vary"] = "Origin"
    response.headers["Access-Control-Expose-Headers"] = EXPOSE_HEADERS
    if preflight:
        response.headers["Access-Control-Allow-Methods"] = ALLOW_METHODS
        response.headers["Access-Control-Allow-Headers"] = ALLOW_HEADERS
        response.headers["Access-Control-Max-Age"] = "86400"


async def tus_answer(
    request: Request, call: Callable[[], Awaitable[Response]], *, preflight: bool
) -> Response:
    """Run `call` (or answer a preflight), render refusals with the tus headers, add them."""
    if preflight:
        response = Response(status_code=204, headers=_discovery(request))
    else:
        try:
            response = await call()
        except VexamError as exc:
            headers = {}
            if "offset" in exc.params:
                headers["Upload-Offset"] = str(exc.params["offset"])
            if exc.code == "tus_version_unsupported":
                headers["Tus-Version"] = TUS_VERSION
            response = problem_response(request, exc.code, exc.params, headers)
    response.headers["Tus-Resumable"] = TUS_VERSION
    _cors(request, response, preflight=preflight)
    return response


class TusRoute(UnitOfWorkRoute):
    """A unit-of-work route speaking tus: protocol headers on every answer, refusals as
    problem documents with those headers, and CORS preflights answered before sign-in."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        """Wrap the unit-of-work handler with the tus and CORS headers."""
        original = super().get_route_handler()

        async def handler(request: Request) -> Response:
            preflight = (
                request.method == "OPTIONS" and "access-control-request-method" in request.headers
            )
            return await tus_answer(request, lambda: original(request), preflight=preflight)

        return handler


router = APIRouter(prefix="/api/v1", tags=["uploads (tus 1.0)"], route_class=TusRoute)


def require_tus(request: Request) -> None:
    if request.headers.get("tus-resumable") != TUS_VERSION:
        raise VexamError("tus_version_unsupported")


def _whole_number(value: str | None, code: str) -> int:
    if value is None or not (value.isascii() and value.isdigit()) or len(value) > 19:
        raise VexamError(code)
    return int(value)


def _content_length(request: Request) -> int | None:
    value = request.headers.get("content-length")
    return int(value) if value is not None and value.isascii() and value.isdigit() else None


def upload_checksum(request: Request) -> bytes | None:
    header = request.headers.get("upload-checksum")
    if header is None:
        return None
    algorithm, _, encoded = header.strip().partition(" ")
    if algorithm.lower() != "sha256":
        raise VexamError("upload_checksum_algorithm")
    try:
        digest = base64.b64decode(encoded.strip(), validate=True)
    except binascii.Error:
        raise VexamError("upload_checksum_invalid") from None
    if len(digest) != 32:
        raise VexamError("upload_checksum_invalid")
    return digest


def is_offset_stream(request: Request) -> bool:
    content_type = request.headers.get("content-type", "")
    return content_type.split(";")[0].strip().lower() == OFFSET_STREAM


def http_date(when: datetime) -> str:
    return email.utils.format_datetime(when, usegmt=True)


def _metadata_header(metadata: dict[str, str]) -> str:
    return ",".join(
        f"{key} {base64.b64encode(value.encode()).decode()}" if value else key
        for key, value in metadata.items()
    )


async def _end_transaction(ctx: Ctx) -> None:
    """Commit what this request decided so far: nothing that waits on I/O (a body streamed,
    the store's part of a new upload made) runs inside a transaction (on SQLite it would hold
    the write lock all along)."""
    await ctx.session.commit()
    ctx.session.info.pop(_ROLLBACK_HOOKS, None)


def _remember(request: Request, principal: Principal, upload: Upload) -> None:
    """Let this process's PATCH fast lane take the next PATCHes of `upload`."""
    if upload.state != "receiving":
        return
    memory: UploadMemory = request.app.state.upload_memory
    known = KnownUpload(user_id=upload.user_id, length=upload.length, expires_at=upload.expires_at)
    memory.remember(getattr(request.state, "token_hash", None), principal, upload.id, known)


def _forget(request: Request, upload_id: str) -> None:
    memory: UploadMemory = request.app.state.upload_memory
    memory.forget(upload_id)


@router.options("/uploads", status_code=204)
async def tus_options(request: Request, principal: CurrentPrincipal) -> Response:
    """What this tus server supports: version, extensions, maximum size, checksum algorithm."""
    return Response(status_code=204, headers=_discovery(request))


@router.options("/uploads/{upload_id}", status_code=204)
async def tus_options_upload(
    upload_id: str, request: Request, principal: CurrentPrincipal
) -> Response:
    """As OPTIONS /uploads (tus clients may ask at an upload's address)."""
    return Response(status_code=204, headers=_discovery(request))


@router.post("/uploads", status_code=201)
async def tus_create(request: Request, principal: Candidate, ctx: ServiceCtx) -> Response:
    """Create the upload of one of your submissions (Upload-Length = its declared size;
    Upload-Metadata `submission_id`); a body of type application/offset+octet-stream is
    its first bytes (creation-with-upload). `upload_length_required`,
    `upload_metadata_invalid`, `upload_length_mismatch`, `upload_too_large` (413),
    `upload_expired` (410), `upload_already_complete`."""
    require_tus(request)
    if request.headers.get("upload-defer-length") is not None:
        raise VexamError("upload_length_required")
    length = _whole_number(request.headers.get("upload-length"), "upload_length_required")
    metadata = uploads.parse_metadata(request.headers.get("upload-metadata"))
    checksum = upload_checksum(request)
    await _end_transaction(ctx)  # the sign-in lookup's, if it ran one (see uploads.create)
    upload = await uploads.create(ctx, principal, length=length, metadata=metadata)
    _remember(request, principal, upload)
    headers = {
        "Location": f"{router.prefix}/uploads/{upload.id}",
        "Upload-Expires": http_date(upload.expires_at),
    }
    offset = 0
    content_length = _content_length(request)
    has_body = content_length != 0 and (
        content_length is not None or "chunked" in request.headers.get("transfer-encoding", "")
    )
    if has_body and is_offset_stream(request):
        await _end_transaction(ctx)
        try:
            got = await uploads.receive(
                ctx,
                upload,
                0,
                uploads.request_body(request),
                content_length=content_length,
                checksum=checksum,
            )
            offset = got.offset
        except VexamError as exc:
            # The upload exists either way; the client learns its offset by HEAD.
            if exc.code == "upload_checksum_mismatch":
                raise
    headers["Upload-Offset"] = str(offset)
    return Response(status_code=201, headers=headers)


async def tus_head(request: Request) -> Response:
    """Upload-Offset (the bytes durably held) and Upload-Length of your upload; never cached.
    `upload_not_found` (404), `upload_expired` (410).

    A plain route, authenticated here exactly as the app-wide dependency does for API routes
    (one unit of work, candidates only): a HEAD answer has no body to carry a problem
    document, which the API route inventory expects of every route.
    """

    async def _call() -> Response:
        async with request.app.state.db.unit_of_work() as session:
            request.state.db = session
            await authenticate(request)
            principal = await require_roles(Role.candidate)(request)
            ctx = await get_ctx(request)
            require_tus(request)
            upload, offset = await uploads.head(ctx, principal, request.path_params["upload_id"])
            _remember(request, principal, upload)
        headers = {
            "Upload-Offset": str(offset),
            "Upload-Length": str(upload.length),
            "Cache-Control": "no-store",
        }
        if upload.state == "receiving":
            headers["Upload-Expires"] = http_date(upload.expires_at)
        if upload.metadata_:
            headers["Upload-Metadata"] = _metadata_header(upload.metadata_)
        return Response(status_code=200, headers=headers)

    return await tus_answer(request, _call, preflight=False)


router.add_route(f"{router.prefix}/uploads/{{upload_id}}", tus_head, methods=["HEAD"])


@router.patch("/uploads/{upload_id}", status_code=204)
async def tus_patch(
    upload_id: str, request: Request, principal: Candidate, ctx: ServiceCtx
) -> Response:
    """Append bytes at Upload-Offset (application/offset+octet-stream), durably before the
    answer. `upload_offset_mismatch` (409), `upload_locked` (423), `upload_chunk_checksum_mismatch`
    (460, nothing kept), `upload_exceeds_length` (413), `upload_finished` (403),
    `upload_expired` (410); the last bytes may answer `upload_checksum_mismatch` (422)."""
    require_tus(request)
    if not is_offset_stream(request):
        raise VexamError("upload_content_type")
    offset = _whole_number(request.headers.get("upload-offset"), "upload_offset_invalid")
    checksum = upload_checksum(request)
    # The upload is only read here, and the transaction would end before the body anyway.
    await autocommit_next(ctx.session)
    upload = await uploads.patch_target(ctx, principal, upload_id, offset)
    _remember(request, principal, upload)
    await _end_transaction(ctx)
    got = await uploads.receive(
        ctx,
        upload,
        offset,
        uploads.request_body(request),
        content_length=_content_length(request),
        checksum=checksum,
    )
    headers = {"Upload-Offset": str(got.offset)}
    if got.complete:
        _forget(request, upload_id)
    else:
        headers["Upload-Expires"] = http_date(upload.expires_at)
    return Response(status_code=204, headers=headers)


@router.delete("/uploads/{upload_id}", status_code=204)
async def tus_delete(
    upload_id: str, request: Request, principal: Candidate, ctx: ServiceCtx
) -> Response:
    """Terminate your unfinished upload and delete its bytes (`upload_finished` once complete)."""
    require_tus(request)
    await uploads.terminate(ctx, principal, upload_id)
    _forget(request, upload_id)
    return Response(status_code=204)
