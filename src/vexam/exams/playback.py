"""Short-lived signed links to recordings and their posters (SPEC §8).

A link names one upload, one viewer and an expiry, signed with HMAC-SHA256 under
`settings.secret_key`; `/media/<token>` serves it only to that viewer, signed in, before the
expiry (`playback_api`). Who may get a link: the candidate who made the recording, the
reviewers and admins of the exam's school, and support agents; anyone else is told
`upload_not_found`, as for an upload that does not exist.

What is served: for the video, the playback copy (H.264/AAC MP4) when the media jobs made
one, else the original; for the poster, the JPEG the media jobs extracted.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from vexam.core.context import Ctx, Principal, Role
from vexam.core.errors import VexamError
from vexam.exams import uploads
from vexam.exams.models import Sitting, Submission, Upload

Kind = Literal["video", "poster"]
KINDS: tuple[Kind, ...] = ("video", "poster")
PREFIX = "/media/"
_SCHOOL_ROLES = (Role.school_admin, Role.reviewer)
# Content types of originals by the probe's container: MediaRecorder writes WebM or MP4.
_CONTAINER_TYPES = {"matroska,webm": "video/webm", "mov,mp4,m4a,3gp,3g2,mj2": "video/mp4"}


def _sign(secret: str, message: str) -> str:
    digest = hmac.new(secret.encode(), f"vexam-media:{message}".encode(), hashlib.sha256)
    return base64.urlsafe_b64encode(digest.digest()[:24]).decode().rstrip("=")


def make_token(secret: str, upload_id: str, viewer_id: int, expires: int, kind: Kind) -> str:
    """The signed token `<upload>.<viewer>.<expiry unix s>.<v|p>.<signature>`."""
    message = f"{upload_id}.{viewer_id}.{expires}.{kind[0]}"
    return f"{message}.{_sign(secret, message)}"


@dataclass(frozen=True)
class Grant:
    """What a valid token allows: one viewer to fetch one upload's video or poster."""

    upload_id: str
    viewer_id: int
    expires_at: datetime
    kind: Kind


def read_token(secret: str, token: str, now: datetime) -> Grant:
    """The grant a token carries: `media_link_invalid` when forged or malformed,
    `media_link_expired` when its time is over (checked after the signature)."""
    parts = token.split(".")
    if len(parts) != 5 or len(token) > 200:
        raise VexamError("media_link_invalid")
    upload_id, viewer, expires, kind_letter, signature = parts
    message = ".".join(parts[:4])
    if not hmac.compare_digest(signature, _sign(secret, message)):
        raise VexamError("media_link_invalid")
    kinds = {k[0]: k for k in KINDS}
    if not viewer.isdigit() or not expires.isdigit() or kind_letter not in kinds:
        raise VexamError("media_link_invalid")
    expires_at = datetime.fromtimestamp(int(expires), UTC)
    if now >= expires_at:
        raise VexamError("media_link_expired", expired_at=expires_at)
    return Grant(upload_id, int(viewer), expires_at, kinds[kind_letter])


async def viewable_upload(ctx: Ctx, principal: Principal, upload_id: str) -> Upload:
    """The verified upload `principal` may watch (SPEC §8); `upload_not_found` otherwise."""
    upload = await ctx.session.get(Upload, upload_id) if len(upload_id) <= 32 else None
    if upload is None or upload.state != "verified":
        raise VexamError("upload_not_found")
    if principal.role == Role.support or (
        principal.role == Role.candidate and upload.user_id == principal.user_id
    ):
        return upload
    if principal.role in _SCHOOL_ROLES and principal.school_id is not None:
        submission = await ctx.session.get(Submission, upload.submission_id)
        sitting = await ctx.session.get(Sitting, submission.sitting_id) if submission else None
        if sitting is not None and sitting.school_id == principal.school_id:
            return upload
    raise VexamError("upload_not_found")


async def playback_link(
    ctx: Ctx, principal: Principal, upload_id: str, *, ttl_s: int = 600, kind: Kind = "video"
) -> str:
    """A relative URL `/media/<token>` that serves the upload's video (or its poster) to
    `principal` alone for `ttl_s` seconds.

    `upload_not_found` for uploads the principal may not watch (or not verified);
    `media_not_ready` for a poster not extracted yet.
    """
    upload = await viewable_upload(ctx, principal, upload_id)
    if kind == "poster" and not isinstance(upload.media.get("poster"), dict):
        raise VexamError("media_not_ready")
    expires = int(ctx.now().timestamp()) + max(1, int(ttl_s))
    token = make_token(ctx.settings.secret_key, upload.id, principal.user_id, expires, kind)
    return PREFIX + token


@dataclass
class Served:
    """The bytes a grant serves: a local file or a blob, its size and content type."""

    size: int
    content_type: str
    path: Path | None = None
    blob_key: str | None = None


async def served(ctx: Ctx, grant: Grant) -> Served:
    """What a grant's link serves now; `upload_not_found` when the upload is gone,
    `media_not_ready` for a missing poster."""
    upload = await ctx.session.get(Upload, grant.upload_id)
    if upload is None or upload.state != "verified":
        raise VexamError("upload_not_found")
    media = upload.media
    if grant.kind == "poster":
        poster = media.get("poster")
        if not isinstance(poster, dict):
            raise VexamError("media_not_ready")
        key = str(poster["key"])
        return Served(await ctx.blobs.size(key), "image/jpeg", blob_key=key)
    playback = media.get("playback")
    if isinstance(playback, dict):
        key = str(playback["key"])
        return Served(await ctx.blobs.size(key), "video/mp4", blob_key=key)
    content_type = _CONTAINER_TYPES.get(str(media.get("container")), "application/octet-stream")
    if uploads.store_of(ctx).name == "local":
        return Served(upload.length, content_type, path=uploads.path_of(ctx, upload.id))
    # The S3 upload store assembles the file as the blob `uploads/<id>` of the same bucket.
    return Served(upload.length, content_type, blob_key=f"uploads/{upload.id}")


async def read_range(
    ctx: Ctx, item: Served, start: int, end: int, chunk_size: int = 256 * 1024
) -> AsyncIterator[bytes]:
    """Bytes [start, end) of what is served, in chunks."""
    if item.blob_key is not None:
        async for chunk in ctx.blobs.iter_range(item.blob_key, start, end, chunk_size):
            yield chunk
        return
    assert item.path is not None
    f = await asyncio.to_thread(item.path.open, "rb")
    try:
        await asyncio.to_thread(f.seek, start)
        left = end - start
        while left > 0:
            chunk = await asyncio.to_thread(f.read, min(chunk_size, left))
            if not chunk:
                return
            left -= len(chunk)
            yield chunk
    finally:
        await asyncio.to_thread(f.close)


class RangeNotSatisfiable(ValueError):
    """The Range header asks for bytes outside the resource (answer 416)."""


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """The [start, end) a single-range `Range: bytes=...` header asks for, or None to send the
    whole resource (no header, another unit, several ranges or a malformed one: RFC 9110
    lets a server ignore those). RangeNotSatisfiable when no byte of it exists."""
    if not header:
        return None
    unit, _, spec = header.strip().partition("=")
    if unit.strip().lower() != "bytes" or "," in spec:
        return None
    first, dash, last = spec.strip().partition("-")
    first, last = first.strip(), last.strip()
    if not dash or (first and not first.isdigit()) or (last and not last.isdigit()):
        return None
    if not first:
        if not last:
            return None
        suffix = int(last)
        if suffix == 0 or size == 0:
            raise RangeNotSatisfiable(header)
        return max(0, size - suffix), size
    start = int(first)
    if last and int(last) < start:
        return None
    if start >= size:
        raise RangeNotSatisfiable(header)
    end = min(size, int(last) + 1) if last else size
    return start, end
