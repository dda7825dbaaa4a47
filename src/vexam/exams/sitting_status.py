"""What a sitting looks like (SPEC §5): one status for the candidate and for the school.

"absent" is computed, not stored: a subject with no submission once the candidate's window
has ended shows as absent.

The candidate's app polls the status call all through the exam, so it reads what it shows in
few statements, built once: the sitting with its exam and accommodation in one, the subjects
with their attempts used, submissions and newest uploads in one, the recordings with their
flagged events in one (flags while nothing was recording in another, only when there are
any); it voids overdue recordings only when one of those it read is overdue.
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import and_, bindparam, exists, select
from sqlalchemy.orm import aliased

from vexam.core.context import Ctx, Principal
from vexam.exams import media_jobs, schemas, service, sittings, uploads
from vexam.exams.models import (
    ExamEvent,
    Recording,
    Sitting,
    Subject,
    SubjectProgress,
    Submission,
    Upload,
)
from vexam.exams.sittings import PASSING, Loaded, load, own_sitting, void_open

# The status call's statements, built once (with parameters): on a poll their construction
# and cache keys cost more CPU than running them.
_FLAGS = (
    select(ExamEvent.recording_id, ExamEvent.kind)
    .where(ExamEvent.sitting_id == bindparam("sitting_id"), ExamEvent.action == "flag")
    .order_by(ExamEvent.id)
)
# The newest upload of a submission (by creation).
_OLDER = aliased(Upload)
_NEWEST_UPLOAD = (
    select(_OLDER.id)
    .where(_OLDER.submission_id == Submission.id)
    .order_by(_OLDER.created_at.desc(), _OLDER.id.desc())
    .limit(1)
    .correlate(Submission)
    .scalar_subquery()
)
_IS_FLAG = ExamEvent.action == "flag"
# Flagged events while nothing was recording (rare): read only when the subjects' statement
# says there are some.
_LOOSE = and_(
    ExamEvent.sitting_id == bindparam("sitting_id"), _IS_FLAG, ExamEvent.recording_id.is_(None)
)
_LOOSE_FLAGS = select(ExamEvent.kind).where(_LOOSE).order_by(ExamEvent.id)
# The exam's subjects with the sitting's attempts used and submission of each (both unique
# per sitting and subject), the submission's newest upload, and whether loose flags exist.
_SUBJECTS = (
    select(Subject, SubjectProgress.used, Submission, Upload, exists().where(_LOOSE))
    .outerjoin(
        SubjectProgress,
        and_(
            SubjectProgress.subject_id == Subject.id,
            SubjectProgress.sitting_id == bindparam("sitting_id"),
        ),
    )
    .outerjoin(
        Submission,
        and_(
            Submission.subject_id == Subject.id,
            Submission.sitting_id == bindparam("sitting_id"),
        ),
    )
    .outerjoin(Upload, Upload.id == _NEWEST_UPLOAD)
    .where(Subject.exam_id == bindparam("exam_id"))
    .order_by(Subject.position)
)
# The sitting's recordings, each with its flagged events' kinds (a row per flag).
_RECORDINGS = (
    select(Recording, ExamEvent.kind)
    .outerjoin(
        ExamEvent,
        and_(
            ExamEvent.sitting_id == Recording.sitting_id,
            ExamEvent.recording_id == Recording.id,
            _IS_FLAG,
        ),
    )
    .where(Recording.sitting_id == bindparam("sitting_id"))
    .order_by(Recording.id, ExamEvent.id)
)
# Rows changed by an UPDATE statement since they were loaded.
_RECORDINGS_FRESH = _RECORDINGS.execution_options(populate_existing=True)


async def flags_by_recording(ctx: Ctx, sitting_id: int) -> dict[int | None, list[str]]:
    """Flagged event kinds per recording (None: events while nothing was recording)."""
    found = await ctx.session.execute(_FLAGS, {"sitting_id": sitting_id})
    out: dict[int | None, list[str]] = {}
    for recording_id, kind in found.all():
        out.setdefault(recording_id, []).append(kind)
    return out


def recording_out(recording: Recording, flags: list[str]) -> schemas.RecordingOut:
    """A recording as its candidate and school see it."""
    return schemas.RecordingOut(
        id=recording.id,
        subject_id=recording.subject_id,
        attempt=recording.attempt,
        state=recording.state,
        void_reason=recording.void_reason,
        orientation=recording.orientation,
        max_seconds=recording.max_seconds,
        started_at=recording.started_at,
        ends_by=recording.ends_by,
        finished_at=recording.finished_at,
        duration_seconds=recording.duration_seconds,
        flags=flags,
        device_id=recording.device_id,
    )


_UPLOAD_ERRORS = {"hash_mismatch": "upload_checksum_mismatch", "invalid": "recording_invalid"}


def receipt(
    submission: Submission, progress: uploads.Progress | None = None
) -> schemas.SubmissionReceipt:
    """The receipt of a submission, with its upload's progress and checks when known."""
    media = progress.media if progress else {}
    media_state, media_flags, poster = media_jobs.summary(media)
    return schemas.SubmissionReceipt(
        upload_id=progress.upload_id if progress else None,
        upload_offset=progress.offset if progress else 0,
        upload_error=_UPLOAD_ERRORS.get(submission.upload_state),
        upload_media=media_jobs.probe_part(media) or None,
        media_state=media_state,
        media_flags=media_flags,
        poster_available=poster,
        submission_id=submission.id,
        sitting_id=submission.sitting_id,
        subject_id=submission.subject_id,
        recording_id=submission.recording_id,
        sha256=submission.sha256,
        size_bytes=submission.size_bytes,
        submitted_at=submission.submitted_at,
        upload_state=submission.upload_state,
    )


def _window(ctx: Ctx, loaded: Loaded) -> str:
    if loaded.sitting.mode != "formal":
        return "always"
    now = ctx.now()
    if now < loaded.exam.formal_starts_at:
        return "not_open"
    return "open" if now < loaded.window_end else "closed"


def _subject_state(
    window: str, used: int, allowed: int, recordings: list[Recording], submitted: bool
) -> str:
    if submitted:
        return "submitted"
    if window == "closed":
        # Computed, not stored: a subject with no submission at the window's end is absent.
        return "absent"
    if any(recording.state == "recording" for recording in recordings):
        return "recording"
    if any(recording.state == "completed" for recording in recordings):
        return "ready_to_submit"
    return "exhausted" if used >= allowed else "not_started"


def _next_step(loaded: Loaded, window: str, device_id: str | None, states: list[str]) -> str:
    sitting = loaded.sitting
    if sitting.state == "failed":
        return "failed"
    if window in ("not_open", "closed"):
        return window
    if all(state in ("submitted", "exhausted") for state in states):
        return "done"
    if "ready_to_submit" in states:
        return "submit"
    if sitting.face_check_required or sitting.face_device_id != device_id:
        return "verify_face"
    if sitting.device_ok_id != device_id:
        return "check_device"
    return "record"


async def _recordings(
    ctx: Ctx, sitting_id: int, *, fresh: bool = False
) -> tuple[list[Recording], dict[int, list[str]]]:
    """The sitting's recordings in order, and the flagged event kinds of each."""
    statement = _RECORDINGS_FRESH if fresh else _RECORDINGS
    found = await ctx.session.execute(statement, {"sitting_id": sitting_id})
    recordings: dict[int, Recording] = {}
    flags: dict[int, list[str]] = {}
    for recording, kind in found.all():
        recordings[recording.id] = recording
        if kind is not None:
            flags.setdefault(recording.id, []).append(kind)
    return list(recordings.values()), flags


def _overdue(ctx: Ctx, recordings: list[Recording]) -> bool:
    now = ctx.now()
    return any(r.state == "recording" and r.ends_by < now for r in recordings)


async def status(
    ctx: Ctx, loaded: Loaded, *, device_id: str | None, void_overdue: bool = False
) -> schemas.SittingOut:
    """The whole sitting: subjects with attempts, recordings, submissions; what comes next.

    With `void_overdue`, running recordings past their limit are voided first (as
    `void_open(overdue_only=True)` does), the statement run only when one of them is.
    """
    sitting, exam = loaded.sitting, loaded.exam
    found = await ctx.session.execute(_SUBJECTS, {"sitting_id": sitting.id, "exam_id": exam.id})
    rows = found.all()
    subjects = [subject for subject, *_ in rows]
    used = {subject.id: spent or 0 for subject, spent, *_ in rows}
    submissions = {subject.id: done for subject, _, done, *_ in rows if done is not None}
    progress = {
        done.id: await uploads.progress(ctx, upload)
        for _, _, done, upload, _ in rows
        if done is not None and upload is not None
    }
    recordings, flags = await _recordings(ctx, sitting.id)
    if void_overdue and _overdue(ctx, recordings):
        await void_open(ctx, sitting_id=sitting.id, reason="too_long", overdue_only=True)
        recordings, flags = await _recordings(ctx, sitting.id, fresh=True)
    loose: list[str] = []
    if any(row[4] for row in rows):
        kinds = await ctx.session.execute(_LOOSE_FLAGS, {"sitting_id": sitting.id})
        loose = list(kinds.scalars())
    window = _window(ctx, loaded)
    out: list[schemas.SubjectStatus] = []
    for subject in subjects:
        allowed = subject.attempts + loaded.granted.extra_attempts
        spent = int(used.get(subject.id, 0))
        mine = [recording for recording in recordings if recording.subject_id == subject.id]
        submission = submissions.get(subject.id)
        out.append(
            schemas.SubjectStatus(
                subject_id=subject.id,
                position=subject.position,
                name=subject.name,
                name_en=subject.name_en,
                camera=subject.camera,
                orientation=subject.orientation,
                prompt=subject.prompt,
                max_seconds=subject.max_seconds + loaded.granted.extra_seconds,
                face_check_seconds=subject.face_check_seconds,
                attempts_allowed=allowed,
                attempts_used=spent,
                attempts_left=max(0, allowed - spent),
                state=_subject_state(window, spent, allowed, mine, submission is not None),
                recordings=[recording_out(r, flags.get(r.id, [])) for r in mine],
                submission=receipt(submission, progress.get(submission.id)) if submission else None,
            )
        )
    sitting_flags = [*sitting.flags, *(f"event:{kind}" for kind in loose)]
    return schemas.SittingOut(
        id=sitting.id,
        exam_id=exam.id,
        exam_name=exam.name,
        mode=sitting.mode,
        number=sitting.number,
        reviewable=sitting.reviewable,
        state=sitting.state,
        failed_reason=sitting.failed_reason,
        window_starts_at=exam.formal_starts_at,
        window_ends_at=loaded.window_end,
        upload_ends_at=loaded.window_end + timedelta(minutes=exam.upload_grace_minutes),
        window=window,
        device_id=sitting.device_id,
        face_state=sitting.face_state,
        face_verified_on_this_device=device_id is not None
        and sitting.face_device_id == device_id
        and sitting.face_state in PASSING,
        face_check_required=sitting.face_check_required,
        device_checked_on_this_device=device_id is not None and sitting.device_ok_id == device_id,
        flags=sitting_flags,
        warnings=list(sitting.warnings),
        subjects=out,
        next_step=_next_step(loaded, window, device_id, [s.state for s in out]),
    )


async def start(
    ctx: Ctx, principal: Principal, exam_id: int, body: schemas.SittingIn
) -> schemas.SittingOut:
    """Open the formal sitting or a new mock sitting on this device (see `sittings.start`)."""
    loaded = await sittings.start(ctx, principal, exam_id, body)
    return await status(ctx, loaded, device_id=ctx.device_id)


async def my_status(ctx: Ctx, principal: Principal, sitting_id: int) -> schemas.SittingOut:
    """The caller's sitting; running recordings past their limit are voided first."""
    loaded = await own_sitting(ctx, principal, sitting_id)
    return await status(ctx, loaded, device_id=ctx.device_id, void_overdue=True)


async def my_sittings(ctx: Ctx, principal: Principal) -> list[schemas.SittingOut]:
    """The caller's sittings, newest first."""
    found = await ctx.session.execute(
        select(Sitting).where(Sitting.user_id == principal.user_id).order_by(Sitting.id.desc())
    )
    return [
        await status(ctx, await load(ctx, sitting), device_id=ctx.device_id)
        for sitting in found.scalars()
    ]


async def school_view(
    ctx: Ctx, principal: Principal, exam_id: int, row_id: int
) -> list[schemas.SittingOut]:
    """The sittings of one roster row's candidate, for the school's admins and operators.

    `exam_not_found` for other schools' exams; `roster_row_not_found` for another exam's row;
    an empty list while the candidate has not applied or started.
    """
    from vexam.schools import roster as rosters

    exam = await service.get_exam(ctx, principal, exam_id)
    row = await rosters.get_row(ctx, principal, exam.id, row_id)
    found = await ctx.session.execute(
        select(Sitting)
        .where(Sitting.exam_id == exam.id, Sitting.roster_row_id == row.id)
        .order_by(Sitting.mode, Sitting.number)
    )
    return [
        await status(ctx, await load(ctx, sitting), device_id=None) for sitting in found.scalars()
    ]
