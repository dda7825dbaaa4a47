"""Resumable uploads of submissions (SPEC §5, tus 1.0): rules, bound to the submission.

Only the submission's candidate creates or continues its upload; Upload-Length must be the
declared size; the upload closes at the candidate's window end plus the exam's grace
(`upload_expired`). Once every byte is in, the file's SHA-256 must be the declared one
(`upload_checksum_mismatch`: kept for support, never accepted) and a job checks it is a
decodable video (`recording_invalid`), after which the submission is `verified`.

A PATCH body is streamed to the store with no database transaction open: the caller ends the
request's transaction after `patch_target` and before `receive` (see `upload_api`).

The bytes live in an `UploadStore` chosen by `settings.upload_store`: local files
(`upload_files`) or an S3 multipart upload (`upload_s3`).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, NamedTuple, Protocol

from sqlalchemy import delete, func, select
from sqlalchemy.orm.util import identity_key
from starlette.requests import ClientDisconnect, Request

from vexam.config import Settings
from vexam.core import audit
from vexam.core.context import Ctx, Principal
from vexam.core.db import after_commit, after_rollback, set_committed
from vexam.core.errors import CountedRefusal, VexamError
from vexam.exams import upload_files as files
from vexam.exams import upload_statements as sql
from vexam.exams.models import Submission, Upload

VERIFY_JOB = "uploads.verify"
SWEEP_JOB = "uploads.sweep"
STRANDED_AFTER = timedelta(minutes=10)  # a received upload unchecked this long is re-queued
FINISHED = sql.FINISHED
MAX_PARTS = 10_000  # S3's limit of parts in one multipart upload
# A PATCH on the local store records its progress on the row at most this often (see
# `_record_progress`).
PROGRESS_EVERY = timedelta(seconds=5)
PROGRESS_BYTES = 16 * 1024 * 1024


class UploadStore(Protocol):
    """Where an upload's bytes live; every method may be called from any web process."""

    name: str

    async def create(self, upload_id: str, length: int) -> str | None:
        """Prepare the store for a new upload of `length` bytes; returns a reference to keep
        on the row."""
        ...

    async def remove(self, upload_id: str, ref: str | None) -> None:
        """Delete every byte of an upload (and abort unfinished store work); idempotent."""
        ...

    async def held(self, upload_id: str, recorded: int) -> tuple[int, bool]:
        """(bytes durably held, whether a PATCH runs now); `recorded` is the row's count."""
        ...

    async def receive(
        self,
        ctx: Ctx,
        upload: Upload,
        offset: int,
        chunks: AsyncIterator[bytes],
        *,
        content_length: int | None,
        checksum: bytes | None,
    ) -> files.Stored:
        """Append a PATCH body at `offset` durably, one PATCH at a time per upload."""
        ...

    async def finish(
        self, upload_id: str, ref: str | None, parts: int, stored: files.Stored | None = None
    ) -> None:
        """Assemble the whole file once every byte is in; idempotent. `stored`: what the PATCH
        that wrote the last byte left, when this runs in that PATCH."""
        ...

    async def sha256(self, upload_id: str) -> str:
        """The SHA-256 (hex) of the whole assembled file."""
        ...

    def local_copy(self, upload_id: str) -> contextlib.AbstractAsyncContextManager[Path]:
        """A local path holding the assembled file while the context is open."""
        ...


def store_of(ctx: Ctx) -> UploadStore:
    """The upload store the settings name (S3 shares the blob store's bucket and client)."""
    if ctx.settings.effective_upload_store == "s3":
        from vexam.exams.upload_s3 import S3UploadStore  # boto3 only when S3 is used

        return S3UploadStore.over(ctx.blobs, ctx.settings)
    return files.LocalUploadStore(root(ctx))


def root(ctx: Ctx) -> Path:
    """The folder of upload files."""
    return ctx.settings.effective_upload_dir


def path_of(ctx: Ctx, upload_id: str) -> Path:
    """The file of one upload."""
    return files.upload_path(root(ctx), upload_id)


def path_of_id(settings: Settings, upload_id: str) -> Path:
    """The file of one upload, from the settings alone (support tools, tests)."""
    return files.upload_path(settings.effective_upload_dir, upload_id)


def parse_metadata(header: str | None) -> dict[str, str]:
    """Upload-Metadata ("key base64,key base64,key") as a dict; `upload_metadata_invalid`."""
    out: dict[str, str] = {}
    for pair in (header or "").split(","):
        pair = pair.strip()
        if not pair:
            continue
        key, _, value = pair.partition(" ")
        try:
            out[key] = base64.b64decode(value.strip(), validate=True).decode() if value else ""
        except (binascii.Error, UnicodeDecodeError):
            raise VexamError("upload_metadata_invalid") from None
    return out


def max_size(settings: Settings) -> int:
    """The largest upload accepted (Tus-Max-Size): the configured maximum, and on S3 no more
    than its 10,000 parts of `upload_part_bytes` hold."""
    limit = settings.upload_max_bytes
    if settings.effective_upload_store == "s3":
        limit = min(limit, MAX_PARTS * settings.upload_part_bytes)
    return limit


async def _creation_facts(ctx: Ctx, submission_id: int) -> Any:
    """`sql.CREATION_FACTS` of a submission; None for an unknown one."""
    found = await ctx.session.execute(sql.CREATION_FACTS, {"submission_id": submission_id})
    return found.one_or_none()


async def _replace_receiving(ctx: Ctx, submission_id: int, expected: int) -> None:
    """Delete the submission's unfinished uploads (their bytes after commit);
    `upload_already_complete` when one of them finished meanwhile."""
    gone = (
        await ctx.session.execute(
            delete(Upload)
            .where(Upload.submission_id == submission_id, Upload.state == "receiving")
            .returning(Upload.id, Upload.multipart_id)
            .execution_options(synchronize_session=False)
        )
    ).all()
    for upload_id, ref in gone:
        _remove_after_commit(ctx, upload_id, ref)
    if len(gone) < expected:  # one settled between our read and this delete
        finished = await ctx.session.scalar(
            select(func.count()).where(
                Upload.submission_id == submission_id, Upload.state.in_(FINISHED)
            )
        )
        if finished:
            raise VexamError("upload_already_complete")


async def create(
    ctx: Ctx, principal: Principal, *, length: int, metadata: dict[str, str]
) -> Upload:
    """Create the upload of a submission of the caller (tus creation).

    `upload_too_large`, `upload_metadata_invalid`, `submission_not_found`,
    `upload_expired`, `upload_length_mismatch`, `upload_already_complete`. An unfinished
    earlier upload of the same submission is replaced (its client lost its address).
    Lean: one statement for every check, a Core INSERT of the row, then its audit entry.

    The store's part (the empty file, or the S3 multipart upload) is made before the first
    statement, and removed again when the unit of work rolls back (a refusal included): a
    caller with no transaction open keeps that I/O out of the transaction, which on SQLite
    holds the write lock from its first statement.
    """
    limit = max_size(ctx.settings)
    if length > limit:
        raise VexamError("upload_too_large", max_bytes=limit)
    raw_id = metadata.get("submission_id", "")
    if not (raw_id.isascii() and raw_id.isdigit()) or len(raw_id) > 18:  # ids are 64-bit
        raise VexamError("upload_metadata_invalid")
    submission_id = int(raw_id)
    store = store_of(ctx)
    upload_id = secrets.token_hex(16)
    ref = await store.create(upload_id, length)

    async def _undo() -> None:
        await store.remove(upload_id, ref)

    after_rollback(ctx.session, _undo)  # a refusal below, or a failed insert
    facts = await _creation_facts(ctx, submission_id)
    if facts is None or facts.user_id != principal.user_id:
        raise VexamError("submission_not_found")
    window_end = facts.formal_ends_at
    if facts.window_ends_at is not None and facts.window_ends_at > window_end:
        window_end = facts.window_ends_at
    ends_at = window_end + timedelta(minutes=facts.upload_grace_minutes)
    now = ctx.now()
    if now >= ends_at:
        raise VexamError("upload_expired", ended_at=ends_at)
    if length != facts.size_bytes:
        raise VexamError("upload_length_mismatch", length=length, declared=facts.size_bytes)
    if facts.finished:
        raise VexamError("upload_already_complete")
    if facts.receiving:
        await _replace_receiving(ctx, submission_id, facts.receiving)
    row = {
        "id": upload_id,
        "submission_id": submission_id,
        "user_id": principal.user_id,
        "length": length,
        "received": 0,
        "state": "receiving",
        "expires_at": ends_at,
        "metadata": {k: v[:200] for k, v in list(metadata.items())[:10]},
        "media": {},
        "multipart_id": ref,
        "part_size": ctx.settings.upload_part_bytes if store.name == "s3" else None,
        "parts_done": 0,
        "created_at": now,
        "updated_at": now,
    }
    # A Core INSERT (the ORM's unit of work costs more); the caller gets a detached copy.
    await ctx.session.execute(sql.CREATE_UPLOAD, row)
    row["metadata_"] = row.pop("metadata")
    upload = Upload(**row)
    await audit.record(
        ctx, "upload.created", "upload", upload_id, submission_id=submission_id, length=length
    )
    return upload


def _remove_after_commit(ctx: Ctx, upload_id: str, ref: str | None) -> None:
    store = store_of(ctx)

    async def _remove() -> None:
        await store.remove(upload_id, ref)

    after_commit(ctx.session, _remove)


async def own_upload(ctx: Ctx, principal: Principal, upload_id: str) -> Upload:
    """The caller's upload; `upload_not_found` for unknown ones and other people's,
    `upload_expired` for one the sweep closed."""
    upload = await ctx.session.get(Upload, upload_id) if len(upload_id) <= 32 else None
    if upload is None or upload.user_id != principal.user_id:
        raise VexamError("upload_not_found")
    if upload.state == "expired":
        raise VexamError("upload_expired", ended_at=upload.expires_at)
    return upload


def _ensure_open(ctx: Ctx, upload: Upload) -> None:
    if upload.state != "receiving":
        raise VexamError("upload_finished")
    if ctx.now() >= upload.expires_at:
        raise VexamError("upload_expired", ended_at=upload.expires_at)


async def _size(ctx: Ctx, upload: Upload) -> tuple[int, bool]:
    return await store_of(ctx).held(upload.id, upload.received)


async def head(ctx: Ctx, principal: Principal, upload_id: str) -> tuple[Upload, int]:
    """The upload and the bytes the server holds (tus HEAD).

    The file is the truth: the stored offset is repaired from it, and an upload whose file is
    whole but whose completion was lost (a crash between the last write and the commit) is
    completed now. `upload_expired` for an unfinished upload past its period.
    """
    upload = await own_upload(ctx, principal, upload_id)
    if upload.state != "receiving":
        return upload, upload.length
    if ctx.now() >= upload.expires_at:
        raise VexamError("upload_expired", ended_at=upload.expires_at)
    size, busy = await _size(ctx, upload)
    if not busy and size != upload.received:
        upload.received = size
        upload.updated_at = ctx.now()
    if not busy and size == upload.length:
        await complete(ctx, upload.id)
    return upload, size


async def patch_target(ctx: Ctx, principal: Principal, upload_id: str, offset: int) -> Upload:
    """The upload a PATCH may write to (`upload_not_found`, `upload_finished`,
    `upload_expired`, `upload_offset_mismatch` when it is already complete)."""
    upload = await own_upload(ctx, principal, upload_id)
    if upload.state != "receiving" and offset != upload.length:
        raise VexamError("upload_offset_mismatch", offset=upload.length)
    _ensure_open(ctx, upload)
    return upload


async def request_body(request: Request) -> AsyncIterator[bytes]:
    """The request body's chunks as the server receives them (as `Request.stream()`, which
    keeps its last chunk referenced while it waits for the next one: with hundreds of PATCHes
    waiting for their clients, up to a read buffer each). `ClientDisconnect` when the client
    goes away."""
    receive = request.receive
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnect()
        body: bytes = message.get("body", b"")
        more = bool(message.get("more_body", False))
        del message
        if body:
            yield body
            body = b""
        if not more:
            return


async def body_chunks(stream: AsyncIterator[bytes], idle_seconds: float) -> AsyncIterator[bytes]:
    """The body's chunks; ends quietly when the client goes away or stays silent too long."""
    iterator = stream.__aiter__()
    while True:
        try:
            # A timer per chunk, not a task per chunk (wait_for): this loop is the hot path.
            async with asyncio.timeout(idle_seconds):
                chunk = await anext(iterator)
        except (StopAsyncIteration, ClientDisconnect, TimeoutError):
            return
        yield chunk
        chunk = b""  # not held while the next one is awaited


@dataclass
class Received:
    """What one PATCH left: the bytes the upload now holds, and whether all arrived."""

    offset: int
    complete: bool


async def receive(
    ctx: Ctx,
    upload: Upload,
    offset: int,
    body: AsyncIterator[bytes],
    *,
    content_length: int | None,
    checksum: bytes | None,
) -> Received:
    """Append a PATCH body at `offset`, durably, then record the progress (tus PATCH).

    Must run with no transaction open. `upload_exceeds_length`, `upload_locked`,
    `upload_offset_mismatch`, `upload_chunk_checksum_mismatch` (nothing kept); bytes of a
    body cut short are kept (unless checksummed). Completing the upload checks the SHA-256
    (`upload_checksum_mismatch`, the file is kept) and queues the media check.
    """
    if content_length is not None and offset + content_length > upload.length:
        raise VexamError("upload_exceeds_length", length=upload.length)
    stored = await store_of(ctx).receive(
        ctx,
        upload,
        offset,
        body_chunks(body, ctx.settings.upload_idle_seconds),
        content_length=content_length,
        checksum=checksum,
    )
    size = stored.size
    if size < upload.length:
        if _record_progress(ctx, upload, size):
            now = ctx.now()
            await ctx.session.execute(
                sql.COUNT_RECEIVED, {"upload_id": upload.id, "counted": size, "now": now}
            )
            _settle_loaded(ctx, Upload, upload.id, {"received": size, "updated_at": now})
        return Received(size, False)
    await complete_or_refuse(ctx, upload.id, stored)
    return Received(size, True)


async def complete_or_refuse(ctx: Ctx, upload_id: str, stored: files.Stored) -> None:
    """Settle an upload whose last byte just arrived (see `complete`);
    `upload_checksum_mismatch` (kept: the settlement is committed) when its hash is wrong."""
    if not await complete(ctx, upload_id, stored):
        raise CountedRefusal("upload_checksum_mismatch", offset=stored.size)


def _record_progress(ctx: Ctx, upload: Upload, size: int) -> bool:
    """Whether an intermediate PATCH writes the row's `received`.

    The local store's file is the truth (HEAD and the status call read it), so its row is
    only a mirror: written at most every `PROGRESS_EVERY` or `PROGRESS_BYTES`, which spares
    most small PATCHes a write transaction (on SQLite, a turn at the global write lock).
    Completion always writes it. The S3 store's PATCH has written it already, exactly, as
    the lease holder (its last statement), so never again here.
    """
    if store_of(ctx).name == "s3":
        return False
    if size < upload.received:
        return True
    return (
        size - upload.received >= PROGRESS_BYTES or ctx.now() - upload.updated_at >= PROGRESS_EVERY
    )


async def complete(ctx: Ctx, upload_id: str, stored: files.Stored | None = None) -> bool:
    """Settle an upload whose bytes are all in: False when its SHA-256 is not the declared one
    (state `hash_mismatch`, kept for support); else `received` and the media check queued.
    Idempotent: an upload already settled answers as it was settled. `stored`: what the
    PATCH that wrote the last byte knows (the whole file's hash, the S3 parts it sent), if
    this runs in that PATCH.

    A hash kept in memory (`stored.digest`) that disagrees with the declared one is checked
    against the stored bytes before the upload is refused.

    Lean: on the local store with a running hash that matches, one UPDATE … RETURNING settles
    the row; otherwise one read (the upload with its submission's declared hash), the store's
    finish, one update. Then the submission's update and the audit entry (an Upload or
    Submission object of this session is brought up to date)."""
    store = store_of(ctx)
    now = ctx.now()
    digest = stored.digest if stored is not None else None
    if digest is not None and store.name == "local":
        quick = (
            await ctx.session.execute(
                sql.SETTLE_LOCAL, {"upload_id": upload_id, "digest": digest, "now": now}
            )
        ).one_or_none()
        if quick is not None:
            await store.finish(upload_id, None, 0)
            return await _settled(ctx, upload_id, quick, digest, now)
    found = (
        await ctx.session.execute(sql.COMPLETION_FACTS, {"upload_id": upload_id})
    ).one_or_none()
    if found is None:
        return True
    if found.state != "receiving":
        return bool(found.state != "hash_mismatch")
    await store.finish(upload_id, found.multipart_id, found.parts_done, stored)
    if digest is None or digest != found.sha256:
        # Read the bytes: a refusal costs a candidate their recording, so a hash kept in
        # memory does not decide it alone.
        digest = await store.sha256(upload_id)
    state = "received" if digest == found.sha256 else "hash_mismatch"
    # Core statements (the ORM's bulk UPDATE costs more); a loaded object is set below.
    done = await ctx.session.execute(
        sql.SETTLE,
        {"upload_id": upload_id, "settled_state": state, "digest": digest, "now": now},
    )
    settled = done.one_or_none()
    if settled is None:  # another request settled it meanwhile
        again = await ctx.session.scalar(select(Upload.state).where(Upload.id == upload_id))
        return bool(again != "hash_mismatch")
    if store.name == "s3":  # the bytes it staged in the database are in the object now
        await ctx.session.execute(
            sql.DROP_PIECES, {"upload_id": upload_id, "parts": sql.EVERY_PART}
        )
    return await _settled(ctx, upload_id, settled, digest, now)


async def _settled(ctx: Ctx, upload_id: str, row: Any, digest: str, now: datetime) -> bool:
    """After the upload's row is settled (`row`: its state, submission, length): the
    submission's state, this session's objects, the audit entry, the media check queued."""
    good = bool(row.state == "received")
    await ctx.session.execute(
        sql.SETTLE_SUBMISSION, {"submission_key": row.submission_id, "settled_state": row.state}
    )
    values = {
        "state": row.state,
        "sha256": digest,
        "received": row.length,
        "completed_at": now,
        "updated_at": now,
    }
    _settle_loaded(ctx, Upload, upload_id, values)
    _settle_loaded(ctx, Submission, row.submission_id, {"upload_state": row.state})
    await audit.record(
        ctx,
        "upload.received" if good else "upload.checksum_mismatch",
        "upload",
        upload_id,
        submission_id=row.submission_id,
        sha256=digest,
    )
    if good:
        ctx.enqueue(VERIFY_JOB, {"upload_id": upload_id})
    return good


def _settle_loaded(ctx: Ctx, model: Any, key: Any, values: dict[str, Any]) -> None:
    """Give an object of this session the values a Core UPDATE just wrote (as committed
    values: nothing to flush again)."""
    held = ctx.session.identity_map.get(identity_key(model, key))
    if held is not None:
        set_committed(held, values)


async def terminate(ctx: Ctx, principal: Principal, upload_id: str) -> None:
    """Delete an unfinished upload and its bytes (tus termination); `upload_finished`."""
    upload = await own_upload(ctx, principal, upload_id)
    if upload.state != "receiving":
        raise VexamError("upload_finished")
    await ctx.session.delete(upload)
    _remove_after_commit(ctx, upload.id, upload.multipart_id)
    await audit.record(ctx, "upload.terminated", "upload", upload.id)


@dataclass
class Progress:
    """How far the newest upload of a submission is."""

    upload_id: str
    offset: int
    length: int
    state: str
    media: dict[str, Any]


class UploadFacts(NamedTuple):
    """What the status call reads of an upload (its statement selects these columns)."""

    id: str
    length: int
    received: int
    state: str
    media: dict[str, Any]


async def progress(ctx: Ctx, upload: Upload | UploadFacts) -> Progress:
    """How far an upload is, for the status call (the sitting's statement loads the newest
    upload of each submission)."""
    offset = upload.received
    if upload.state == "receiving" and store_of(ctx).name == "local":
        # The row lags the file between PATCHes (`_record_progress`): read the file.
        offset = await asyncio.to_thread(files.peek_size, path_of(ctx, upload.id), offset)
    return Progress(upload.id, offset, upload.length, upload.state, dict(upload.media))


async def sweep(ctx: Ctx, limit: int = 500) -> tuple[int, int]:
    """Close unfinished uploads past their period (state `expired`, bytes deleted) and re-queue
    the media check of uploads left `received` by a crash between commit and enqueue.
    Returns (expired, re-queued). Idempotent; meant to run periodically."""
    now = ctx.now()
    expired = list(
        (
            await ctx.session.execute(
                select(Upload)
                .where(Upload.state == "receiving", Upload.expires_at <= now)
                .order_by(Upload.expires_at)
                .limit(limit)
            )
        ).scalars()
    )
    for upload in expired:
        upload.state = "expired"
        upload.updated_at = now
        _remove_after_commit(ctx, upload.id, upload.multipart_id)
        await audit.record(ctx, "upload.expired", "upload", upload.id, received=upload.received)
    if expired:  # the S3 store's bytes staged in the database go with the rest
        await ctx.session.execute(sql.DROP_EXPIRED_PIECES, {"upload_ids": [u.id for u in expired]})
    stranded = list(
        (
            await ctx.session.execute(
                select(Upload.id)
                .where(Upload.state == "received", Upload.completed_at <= now - STRANDED_AFTER)
                .limit(limit)
            )
        ).scalars()
    )
    for upload_id in stranded:
        ctx.enqueue(VERIFY_JOB, {"upload_id": upload_id})
    return len(expired), len(stranded)
