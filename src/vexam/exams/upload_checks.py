"""After an upload: is the file a decodable video? (SPEC §5 `recording_invalid`; PyAV.)

The job decodes every video frame: browser WebM has no frame count or duration in its
header, and a file cut short or damaged in the middle only shows itself when decoded. A
verified file then gets its media jobs (`media_jobs`) on the same local copy.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

from vexam.core import audit
from vexam.core.context import Ctx
from vexam.core.jobs import JobHandler
from vexam.exams import media_jobs, uploads
from vexam.exams.models import Submission, Upload

log = logging.getLogger(__name__)


def probe_video(path: Path) -> dict[str, Any]:
    """What the file holds: {"ok": True, container, video_codec, width, height, audio_codec,
    duration_seconds, frames} or {"ok": False, "reason": ...}. Never raises for bad input."""
    import av  # loaded only by the worker that checks media

    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                return {"ok": False, "reason": "no_video_stream"}
            video = container.streams.video[0]
            audio = container.streams.audio[0] if container.streams.audio else None
            frames = 0
            last_time = 0.0
            for frame in container.decode(video):
                frames += 1
                when = getattr(frame, "time", None)
                if when is not None:
                    last_time = max(last_time, float(when))
            if frames == 0:
                return {"ok": False, "reason": "no_frames"}
            header = container.duration / 1_000_000 if container.duration else None
            return {
                "ok": True,
                "container": container.format.name,
                "video_codec": video.codec_context.name,
                "width": video.width,
                "height": video.height,
                "audio_codec": audio.codec_context.name if audio is not None else None,
                "duration_seconds": round(header if header else last_time, 3),
                "frames": frames,
                "header_frames": int(video.frames or 0),
            }
    except (av.FFmpegError, OSError, ValueError, EOFError, IndexError) as exc:
        # The class name only: FFmpeg's messages may carry paths.
        return {"ok": False, "reason": "undecodable", "error": type(exc).__name__}


async def verify(ctx: Ctx, payload: dict[str, Any]) -> None:
    """Check a received upload's media; the submission becomes `verified` or `invalid`; a
    verified upload's media jobs (`media_jobs`: poster, face audit, playback copy) follow on
    the same local copy of the file. Idempotent: an upload still `received` is checked, a
    verified one whose media jobs are unfinished has them (re)run, anything else is left."""
    upload_id = str(payload["upload_id"])
    upload = await ctx.session.get(Upload, upload_id)
    if upload is not None and upload.state == "verified":
        await media_jobs.run(ctx, upload_id)  # a retry after the media jobs failed
        return
    if upload is None or upload.state != "received":
        return
    # No transaction stays open while the file is fetched and decoded: on SQLite it would
    # hold the write lock for as long.
    await ctx.session.commit()
    async with uploads.store_of(ctx).local_copy(upload_id) as path:
        found = await asyncio.to_thread(probe_video, path)
        # Locked: a re-queued check (the sweep, a retry) running at the same time waits here
        # and then sees the upload verified, so it is verified and audited once.
        upload = await ctx.session.get(
            Upload, upload_id, populate_existing=True, with_for_update=True
        )
        if upload is None or upload.state != "received":
            return
        submission = await ctx.session.get(Submission, upload.submission_id)
        assert submission is not None
        now = ctx.now()
        upload.state = "verified" if found["ok"] else "invalid"
        upload.media = {**found, "jobs": media_jobs.pending_state()} if found["ok"] else found
        upload.verified_at = now
        upload.updated_at = now
        submission.upload_state = upload.state
        await audit.record(
            ctx,
            "upload.verified" if found["ok"] else "upload.invalid",
            "upload",
            upload.id,
            submission_id=submission.id,
            **{k: v for k, v in found.items() if k != "ok"},
        )
        if not found["ok"]:
            return
        await ctx.session.commit()  # the candidate sees `verified` while the checks run
        await media_jobs.run(ctx, upload_id, path)


async def sweep(ctx: Ctx, payload: dict[str, Any]) -> None:
    """Expire overdue unfinished uploads and re-queue stranded media checks (see
    `uploads.sweep`) and lost media jobs (`media_jobs.stranded`)."""
    expired, requeued = await uploads.sweep(ctx)
    if expired or requeued:
        log.info("upload sweep: %d expired, %d media checks re-queued", expired, requeued)
    lost = await media_jobs.stranded(ctx, ctx.now())
    for upload_id in lost:
        ctx.enqueue(media_jobs.MEDIA_JOB, {"upload_id": upload_id})
    if lost:
        log.info("upload sweep: %d media jobs re-queued", len(lost))


JOBS: dict[str, JobHandler] = {
    uploads.VERIFY_JOB: verify,
    uploads.SWEEP_JOB: sweep,
    media_jobs.MEDIA_JOB: media_jobs.job,
}
# The sweep closes expired uploads and re-queues lost checks; the workers run it on a timer.
EVERY_MINUTES: dict[str, int] = {uploads.SWEEP_JOB: 5}
