"""The fast lane of tus PATCHes on the local store (SPEC §5, throughput).

Most requests of an upload are PATCHes in its middle. With the local store such a PATCH
needs nothing from the database: the file is the offset, its lock orders PATCHes, and who
may write was settled by the full route that served the upload's creation, HEAD or an
earlier PATCH in this process (`upload_memory`). This ASGI middleware answers those PATCHes
itself, before routing and dependencies, with no database work until the last PATCH, whose
completion runs in a unit of work as on the full route; it uses the same protocol helpers,
refusals, file writer and completion as the full route (`upload_api`, `upload_files`,
`uploads.complete_or_refuse`).

A PATCH goes down the full route when anything is not plainly so: another store, a session
or upload this process has not confirmed recently, a cookie without its CSRF token, no
Content-Length, an upload past its period, or a body that would run past the upload's end.
"""

from __future__ import annotations

from dataclasses import dataclass

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from vexam.config import Settings
from vexam.core.auth import csrf_matches, get_ctx, hash_token
from vexam.core.clock import Clock
from vexam.core.context import Principal
from vexam.core.errors import VexamError
from vexam.core.web import DEVICE_COOKIE, SESSION_COOKIE
from vexam.exams import upload_files as files
from vexam.exams import uploads
from vexam.exams.upload_api import (
    OFFSET_STREAM,
    TUS_VERSION,
    http_date,
    tus_answer,
    upload_checksum,
)
from vexam.exams.upload_memory import KnownUpload, UploadMemory

UPLOADS_PREFIX = "/api/v1/uploads/"
_TUS_VERSION = TUS_VERSION.encode()
_OFFSET_STREAM = OFFSET_STREAM.encode()


@dataclass(frozen=True)
class Plan:
    """A PATCH the lane may take: whose, which upload, where, how long."""

    principal: Principal
    upload_id: str
    upload: KnownUpload
    offset: int
    content_length: int


def _digits(value: bytes | None) -> int | None:
    if value is None or not value.isdigit() or len(value) > 19:
        return None
    return int(value)


def _cookies(header: bytes | None) -> dict[str, str]:
    out: dict[str, str] = {}
    for pair in (header or b"").decode("latin-1").split(";"):
        name, _, value = pair.strip().partition("=")
        out[name] = value
    return out


class UploadPatchLane:
    """ASGI middleware: serve mid-upload PATCHes of known uploads without the database."""

    def __init__(
        self, app: ASGIApp, *, settings: Settings, clock: Clock, memory: UploadMemory
    ) -> None:
        self.app = app
        self.settings = settings
        self.clock = clock
        self.memory = memory
        self.enabled = settings.effective_upload_store == "local"
        self.root = settings.effective_upload_dir

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            self.enabled
            and scope["type"] == "http"
            and scope["method"] == "PATCH"
            and scope["path"].startswith(UPLOADS_PREFIX)
        ):
            plan = self._plan(scope)
            if plan is not None:
                await self._serve(scope, receive, send, plan)
                return
        await self.app(scope, receive, send)

    def _principal(self, headers: dict[bytes, bytes]) -> Principal | None:
        scheme, _, token = headers.get(b"authorization", b"").decode("latin-1").partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            cookies = _cookies(headers.get(b"cookie"))
            token = cookies.get(SESSION_COOKIE, "")
            sent = headers.get(b"x-csrf-token")
            if not token or not csrf_matches(
                self.settings.secret_key,
                cookies.get(DEVICE_COOKIE),
                sent.decode("latin-1") if sent is not None else None,
            ):
                return None
        return self.memory.principal(hash_token(token))

    def _plan(self, scope: Scope) -> Plan | None:
        """The PATCH as the lane would take it, or None for the full route."""
        upload_id = scope["path"][len(UPLOADS_PREFIX) :]
        upload = self.memory.upload(upload_id)
        if upload is None:
            return None
        headers = dict(scope["headers"])
        if headers.get(b"tus-resumable") != _TUS_VERSION:
            return None
        if headers.get(b"content-type", b"").split(b";")[0].strip().lower() != _OFFSET_STREAM:
            return None
        offset = _digits(headers.get(b"upload-offset"))
        length = _digits(headers.get(b"content-length"))
        if offset is None or not length or offset + length > upload.length:
            return None
        principal = self._principal(headers)
        if principal is None or principal.user_id != upload.user_id:
            return None
        if self.clock.now() >= upload.expires_at:
            return None
        return Plan(principal, upload_id, upload, offset, length)

    async def _serve(self, scope: Scope, receive: Receive, send: Send, plan: Plan) -> None:
        self.memory.served += 1
        request = Request(scope, receive)
        request.state.principal = plan.principal  # the refusals' language

        async def _append() -> Response:
            try:
                stored = await files.append(
                    files.upload_path(self.root, plan.upload_id),
                    plan.upload_id,
                    plan.upload.length,
                    plan.offset,
                    uploads.body_chunks(
                        uploads.request_body(request), self.settings.upload_idle_seconds
                    ),
                    content_length=plan.content_length,
                    checksum=upload_checksum(request),
                )
            except VexamError as exc:
                if exc.code == "upload_not_found":  # terminated by another process
                    self.memory.forget(plan.upload_id)
                raise
            if stored.size == plan.upload.length:
                await self._complete(request, plan, stored)
                return Response(status_code=204, headers={"Upload-Offset": str(stored.size)})
            headers = {
                "Upload-Offset": str(stored.size),
                "Upload-Expires": http_date(plan.upload.expires_at),
            }
            return Response(status_code=204, headers=headers)

        response = await tus_answer(request, _append, preflight=False)
        await response(scope, receive, send)

    async def _complete(self, request: Request, plan: Plan, stored: files.Stored) -> None:
        """Settle the upload its last PATCH filled, in a unit of work as the full route does."""
        async with request.app.state.db.unit_of_work() as session:
            request.state.db = session
            ctx = await get_ctx(request)
            try:
                await uploads.complete_or_refuse(ctx, plan.upload_id, stored)
            finally:
                self.memory.forget(plan.upload_id)
