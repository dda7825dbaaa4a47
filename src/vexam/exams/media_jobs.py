"""Media checks of a verified recording (SPEC §6): poster, face audit, playback copy.

They run in the worker right after the verification (`upload_checks.verify`, on the same local
copy of the file) and again from the `uploads.media` job for retries and the sweep. Their
state lives in the upload's `media` JSON next to the probe:

    media["jobs"]     {"state": pending|running|done|failed, "attempts", "error", "at"}
    media["poster"]   {"key", "at_s", "width", "height"}          (a JPEG in the blob store)
    media["audit"]    {"flags": [{"kind", "from_s", "to_s", ...}], "samples", "reference", ...}
    media["playback"] {"key", "content_type", "video", "audio", "size"}  (when transcoded)

Idempotent and bounded: a run first claims the upload (committed), so a crash leaves
`running` with the attempt counted; a failure is recorded and re-raised for the queue's
retry until `media_max_attempts` runs failed, then the state is `failed` for good. The slow
part runs with no transaction open (on SQLite an open transaction holds the write lock).
Flags never change the submission's state: reviewers judge them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import tempfile
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import select

from vexam.core import audit
from vexam.core.context import Ctx
from vexam.exams import media_transcode, uploads
from vexam.exams.models import Sitting, Submission, Upload
from vexam.identity import service as identity

log = logging.getLogger(__name__)

MEDIA_JOB = "uploads.media"
# A run still `running` after this long died with its worker: the sweep starts it again.
STALE_RUNNING = timedelta(minutes=30)
MEDIA_KEYS = ("jobs", "poster", "audit", "playback")


def poster_key(upload_id: str) -> str:
    """The blob key of an upload's poster frame."""
    return f"media/{upload_id}/poster.jpg"


def playback_key(upload_id: str) -> str:
    """The blob key of an upload's H.264/AAC MP4 playback copy."""
    return f"media/{upload_id}/playback.mp4"


def jobs_of(media: dict[str, Any]) -> dict[str, Any]:
    """The media jobs' state of an upload's `media` (empty before verification)."""
    found = media.get("jobs")
    return dict(found) if isinstance(found, dict) else {}


def pending_state() -> dict[str, Any]:
    """The jobs' state a freshly verified upload starts with."""
    return {"state": "pending", "attempts": 0}


def summary(media: dict[str, Any]) -> tuple[str | None, int | None, bool]:
    """(media_state, number of face audit flags, poster available) for the status call."""
    jobs = jobs_of(media)
    audited = media.get("audit")
    flags = len(audited.get("flags", [])) if isinstance(audited, dict) else None
    return jobs.get("state"), flags, isinstance(media.get("poster"), dict)


def audit_flags(media: dict[str, Any]) -> list[dict[str, Any]]:
    """The face audit's flags of an upload's `media` (empty until the audit ran), for the
    reviewers' timeline: `{"kind", "from_s", "to_s", "samples"}` in time order."""
    audited = media.get("audit")
    flags = audited.get("flags") if isinstance(audited, dict) else None
    return [dict(flag) for flag in flags] if isinstance(flags, list) else []


def probe_part(media: dict[str, Any]) -> dict[str, Any]:
    """The probe's findings alone (container, codecs, duration), without the jobs' results."""
    return {k: v for k, v in media.items() if k not in MEDIA_KEYS}


async def _load(ctx: Ctx, upload_id: str) -> Upload | None:
    found = await ctx.session.execute(
        select(Upload)
        .where(Upload.id == upload_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    return found.scalar_one_or_none()


def _set_jobs(ctx: Ctx, upload: Upload, **values: Any) -> dict[str, Any]:
    jobs = {**jobs_of(upload.media), **values, "at": ctx.now().isoformat()}
    upload.media = {**upload.media, "jobs": jobs}
    upload.updated_at = ctx.now()
    return jobs


async def _claim(ctx: Ctx, upload_id: str) -> tuple[Upload, int] | None:
    """Mark the upload's media jobs running (committed); None when there is nothing to do."""
    upload = await _load(ctx, upload_id)
    if upload is None or upload.state != "verified":
        return None
    jobs = jobs_of(upload.media)
    state = jobs.get("state")
    attempts = int(jobs.get("attempts", 0))
    if state in ("done", "failed"):
        return None
    if state == "running" and ctx.now() - upload.updated_at < STALE_RUNNING:
        return None  # another worker has it
    if attempts >= ctx.settings.media_max_attempts:
        _set_jobs(ctx, upload, state="failed", error=jobs.get("error") or "attempts_exhausted")
        return None
    _set_jobs(ctx, upload, state="running", attempts=attempts + 1, error=None)
    await ctx.session.commit()
    return upload, attempts + 1


async def _reference(ctx: Ctx, upload: Upload) -> tuple[str, list[float] | None]:
    """The face to compare with: the certified identity's, else the live face the exam-time
    verification kept (as the exam-time checks do), else none."""
    submission = await ctx.session.get(Submission, upload.submission_id)
    sitting = await ctx.session.get(Sitting, submission.sitting_id) if submission else None
    certified = await identity.reference_embedding(ctx, upload.user_id)
    if certified is not None:
        return "certified", certified
    if sitting is not None and sitting.live_embedding:
        return "live", [float(x) for x in sitting.live_embedding]
    return "none", None


@contextlib.asynccontextmanager
async def _scratch() -> AsyncIterator[Path]:
    folder = await asyncio.to_thread(tempfile.mkdtemp, prefix="vexam-media-")
    try:
        yield Path(folder)
    finally:
        import shutil

        await asyncio.to_thread(shutil.rmtree, folder, True)


async def _file_chunks(path: Path, size: int = 1 << 20) -> AsyncIterator[bytes]:
    with path.open("rb") as f:
        while chunk := await asyncio.to_thread(f.read, size):
            yield chunk


async def _work(
    ctx: Ctx, upload: Upload, path: Path, reference: tuple[str, list[float] | None]
) -> dict[str, Any]:
    """Poster, audit and playback copy of the file at `path`; returns the media additions."""
    # Imported here: only workers audit videos, and numpy would add about 12 MiB to every web
    # process, which imports this module for the status call's media summary.
    from vexam.exams import media_audit
    from vexam.identity.faces import MATCH_THRESHOLD

    settings = ctx.settings
    engine = await asyncio.to_thread(identity.engines(ctx).faces)
    probe = probe_part(upload.media)
    every = settings.media_sample_seconds
    result = await asyncio.to_thread(
        media_audit.audit_video,
        path,
        engine,
        reference[1],
        threshold=MATCH_THRESHOLD,
        every_s=every,
        embed_every_s=settings.media_embed_seconds,
        duration_s=float(probe.get("duration_seconds") or 0) or None,
    )
    added: dict[str, Any] = {
        "audit": result.summary(every_s=every, reference=reference[0], threshold=MATCH_THRESHOLD)
    }
    if result.poster_jpeg is not None and result.poster_size is not None:
        await ctx.blobs.put(poster_key(upload.id), result.poster_jpeg, content_type="image/jpeg")
        added["poster"] = {
            "key": poster_key(upload.id),
            "at_s": result.poster_at_s,
            "width": result.poster_size[0],
            "height": result.poster_size[1],
        }
    if settings.media_transcode and media_transcode.needs_transcode(probe):
        async with _scratch() as folder:
            dest = folder / "playback.mp4"
            done = await asyncio.to_thread(media_transcode.transcode, path, dest)
            size = await ctx.blobs.put_stream(
                playback_key(upload.id), _file_chunks(dest), content_type="video/mp4"
            )
        added["playback"] = {
            "key": playback_key(upload.id),
            "content_type": "video/mp4",
            "size": size,
            **done,
        }
    return added


async def run(ctx: Ctx, upload_id: str, path: Path | None = None) -> None:
    """Run the media jobs of a verified upload once (see the module docstring).

    `path`: a local copy of the file the caller already holds; else one is made. Raises the
    job's error while attempts remain (the queue retries), returns quietly after the last.
    """
    claimed = await _claim(ctx, upload_id)
    if claimed is None:
        return
    upload, attempt = claimed
    try:
        reference = await _reference(ctx, upload)
        # Nothing stays open while the file is decoded (the reads above began a transaction).
        await ctx.session.commit()
        if path is not None:
            added = await _work(ctx, upload, path, reference)
        else:
            async with uploads.store_of(ctx).local_copy(upload_id) as copy:
                added = await _work(ctx, upload, copy, reference)
    except Exception as exc:
        await ctx.session.rollback()
        final = attempt >= ctx.settings.media_max_attempts
        log.warning("media jobs of upload %s failed (attempt %d): %r", upload_id, attempt, exc)
        again = await _load(ctx, upload_id)
        if again is not None:
            _set_jobs(ctx, again, state="failed" if final else "pending", error=type(exc).__name__)
            await audit.record(
                ctx, "upload.media_failed", "upload", upload_id, attempt=attempt, final=final
            )
        await ctx.session.commit()
        if final:
            return
        raise
    done = await _load(ctx, upload_id)
    if done is None or done.state != "verified":
        return
    done.media = {**done.media, **added}
    _set_jobs(ctx, done, state="done", error=None)
    flags = added["audit"]["flags"]
    await audit.record(
        ctx,
        "upload.media_checked",
        "upload",
        upload_id,
        flags=len(flags),
        kinds=sorted({flag["kind"] for flag in flags}),
        poster="poster" in added,
        transcoded="playback" in added,
    )


async def job(ctx: Ctx, payload: dict[str, Any]) -> None:
    """The `uploads.media` job: (re)run the media jobs of one upload."""
    await run(ctx, str(payload["upload_id"]))


async def stranded(ctx: Ctx, now: datetime, limit: int = 500) -> list[str]:
    """Verified uploads whose media jobs were lost (pending past the stranded delay, or
    running past `STALE_RUNNING`) and may still be tried."""
    state = Upload.media["jobs"]["state"].as_string()
    found = await ctx.session.execute(
        select(Upload.id, Upload.media, Upload.updated_at)
        .where(Upload.state == "verified", state.in_(("pending", "running")))
        .order_by(Upload.updated_at)
        .limit(limit)
    )
    out: list[str] = []
    for upload_id, media, updated_at in found.all():
        jobs = jobs_of(media or {})
        waited = now - updated_at
        if jobs.get("state") == "running" and waited < STALE_RUNNING:
            continue
        if jobs.get("state") == "pending" and waited < uploads.STRANDED_AFTER:
            continue
        out.append(upload_id)
    return out
