"""The fast lane of tus PATCHes (SPEC §5, throughput).

Most requests of an upload are PATCHes in its middle. Who may write such a PATCH was settled
by the full route that served the upload's creation, HEAD or an earlier PATCH in this
process (`upload_memory`); this ASGI middleware answers the PATCHes that follow itself,
before routing and dependencies, with the same protocol helpers, refusals, writers and
completion as the full route (`upload_api`, `upload_files`, `upload_s3`,
`uploads.complete_or_refuse`):

- on the local store with no database work until the last PATCH: the file is the offset,
  its lock orders PATCHes;
- on the S3 store with the store's own statements only: the lease, taken first, reads what
  the row counts and holds only while the upload is receiving. When it cannot be taken
  (another PATCH holds it, or the upload was finished, terminated or expired by another
  process), nothing of the body has been read: the PATCH goes down the full route, which
  answers it as it answers any such PATCH.

The last PATCH's completion runs in a unit of work, as on the full route. A PATCH goes down
the full route when anything is not plainly so: a session or upload this process has not
confirmed recently, a cookie without its CSRF token, no Content-Length, an upload past its
period, or a body that would run past the upload's end.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from vexam.config import Settings
from vexam.core.auth import csrf_matches, get_ctx, hash_token
from vexam.core.clock import Clock
from vexam.core.context import Principal
from vexam.core.errors import VexamError
from vexam.core.problems import answer_as_handled
from vexam.core.web import DEVICE_COOKIE, SESSION_COOKIE, in_unit_of_work, route_of
from vexam.exams import upload_api, uploads
from vexam.exams import upload_files as files
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


class _NotLeased(Exception):
    """The S3 lease could not be taken: the full route answers the PATCH."""


async def _answered(request: Request, call: Callable[[], Awaitable[Response]]) -> Response:
    """`call()` answered as the full route answers: refusals with the tus headers
    (`tus_answer`), failures by the app's exception handlers (a database out of connections:
    503 with Retry-After); re-raised when only the catch-all would take them."""
    try:
        return await tus_answer(request, call, preflight=False)
    except Exception as exc:
        return await answer_as_handled(request, exc)


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
    """ASGI middleware: serve mid-upload PATCHes of known uploads before routing."""

    def __init__(
        self, app: ASGIApp, *, settings: Settings, clock: Clock, memory: UploadMemory
    ) -> None:
        self.app = app
        self.settings = settings
        self.clock = clock
        self.memory = memory
        self.store = settings.effective_upload_store
        self.root = settings.effective_upload_dir
        self.route = route_of(upload_api.router, upload_api.tus_patch)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] == "http"
            and scope["method"] == "PATCH"
            and scope["path"].startswith(UPLOADS_PREFIX)
        ):
            plan = self._plan(scope)
            if plan is not None:
                scope["route"] = self.route
                if self.store == "s3":
                    await self._serve_s3(scope, receive, send, plan)
                else:
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
            return self._answer(plan, stored)

        response = await _answered(request, _append)
        await response(scope, receive, send)

    async def _serve_s3(self, scope: Scope, receive: Receive, send: Send, plan: Plan) -> None:
        request = Request(scope, receive)
        request.state.principal = plan.principal  # the refusals' language

        async def _append(request: Request) -> Response:
            from vexam.exams.upload_s3 import S3UploadStore  # boto3 only when S3 is used

            ctx = await get_ctx(request)
            store = S3UploadStore.over(ctx.blobs, ctx.settings)
            lease = await store.take_lease(ctx, plan.upload_id)
            if lease is None:
                raise _NotLeased
            stored = await store.receive_leased(
                ctx,
                plan.upload_id,
                plan.upload.length,
                lease,
                plan.offset,
                uploads.body_chunks(
                    uploads.request_body(request), self.settings.upload_idle_seconds
                ),
                content_length=plan.content_length,
                checksum=upload_checksum(request),
            )
            if stored.size == plan.upload.length:
                self.memory.forget(plan.upload_id)
                await uploads.complete_or_refuse(ctx, plan.upload_id, stored)
            return self._answer(plan, stored)

        try:
            response = await _answered(
                request, lambda: in_unit_of_work(request, _append, reads_first=False)
            )
        except _NotLeased:
            # Held by another PATCH, or no longer receiving: nothing of the body was read.
            self.memory.forget(plan.upload_id)
            del scope["route"]
            await self.app(scope, receive, send)
            return
        self.memory.served += 1
        await response(scope, receive, send)

    @staticmethod
    def _answer(plan: Plan, stored: files.Stored) -> Response:
        """204 with the new offset (and, while the upload is unfinished, its expiry)."""
        headers = {"Upload-Offset": str(stored.size)}
        if stored.size < plan.upload.length:
            headers["Upload-Expires"] = http_date(plan.upload.expires_at)
        return Response(status_code=204, headers=headers)

    async def _complete(self, request: Request, plan: Plan, stored: files.Stored) -> None:
        """Settle the upload its last PATCH filled, in a unit of work as the full route does."""

        async def settle(request: Request) -> None:
            await uploads.complete_or_refuse(await get_ctx(request), plan.upload_id, stored)

        try:
            await in_unit_of_work(request, settle, reads_first=False)
        finally:
            self.memory.forget(plan.upload_id)
