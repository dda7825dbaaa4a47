"""Recording attempts, face checks, events and submissions of a sitting (SPEC §5).

Every rule the candidate could race is decided by the database:
- an attempt is consumed by `INSERT INTO exam_subject_progress … ON CONFLICT DO UPDATE
  SET used = used + 1 WHERE used < allowed` (allowed = the subject's attempts + the
  accommodation's extra attempts, read at that moment), so 50 concurrent starts with 2
  attempts left make 2;
- a recording moves recording → completed | voided by conditional updates on its state;
- a subject is submitted once: `exam_submissions` is unique per sitting and subject.

Maximum length: a recording may run `max_seconds` (subject + accommodation) plus
`COMPLETE_GRACE` for the stop call to arrive. Completing later than that, or declaring a
longer file, voids the recording (`recording_too_long`, the attempt stays used); a running
recording past that point is voided by the next call that looks at the sitting.
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import bindparam, select, update
from sqlalchemy.exc import IntegrityError

from vexam.core import audit
from vexam.core.context import Ctx, Principal
from vexam.core.db import execute_flushed, set_committed
from vexam.core.errors import CountedRefusal, VexamError
from vexam.exams import accommodations, schemas, service
from vexam.exams import recording_statements as statements
from vexam.exams.models import (
    Exam,
    ExamEvent,
    FaceVerification,
    Recording,
    Sitting,
    Subject,
    Submission,
)
from vexam.exams.sitting_status import flags_by_recording, receipt, recording_out
from vexam.exams.sittings import (
    PASSING,
    Loaded,
    claim_device,
    device_of,
    ensure_open,
    judge_face,
    own_sitting,
    void_open,
)

COMPLETE_GRACE = timedelta(seconds=30)
FACE_FAILURES_TO_END = 3


async def _subject(ctx: Ctx, loaded: Loaded, subject_id: int) -> Subject:
    subject = await ctx.session.get(Subject, subject_id)
    if subject is None or subject.exam_id != loaded.exam.id:
        raise VexamError("not_found")
    return subject


# Built once with a parameter, as `sittings.own_sitting`'s: the recording, its sitting, the
# exam and what the candidate is granted.
_OWN_RECORDING = accommodations.with_granted(
    select(Recording, Sitting, Exam, *accommodations.GRANTED_COLUMNS)
    .join(Sitting, Sitting.id == Recording.sitting_id)
    .join(Exam, Exam.id == Sitting.exam_id),
    Sitting.user_id,
    Sitting.exam_id,
).where(Recording.id == bindparam("recording_id"))


async def own_recording(
    ctx: Ctx, principal: Principal, recording_id: int
) -> tuple[Recording, Loaded]:
    """The caller's recording and its sitting (one statement); `recording_not_found` for
    absent and other people's recordings."""
    found = (
        await ctx.session.execute(_OWN_RECORDING, {"recording_id": recording_id})
    ).one_or_none()
    if found is None or found[1].user_id != principal.user_id:
        raise VexamError("recording_not_found")
    recording, sitting, exam, attempts, seconds, ends_at = found
    granted = accommodations.granted_from(attempts, seconds, ends_at)
    return recording, Loaded(sitting, exam, granted)


# ------------------------------------------------------------------ starting a recording


async def _consume_attempt(ctx: Ctx, sitting_id: int, subject_id: int, allowed: int) -> int:
    """Use one attempt (the database decides); the attempt's number, or `attempts_exhausted`.

    One statement: the subject's first attempt inserts its progress row, a later one raises
    the count only while it is below `allowed`; no row comes back when it is not.
    """
    if allowed < 1:
        raise VexamError("attempts_exhausted", allowed=allowed)
    use = statements.USE_ATTEMPT[ctx.session.get_bind().dialect.name]
    found = await execute_flushed(
        ctx.session, use, {"sitting": sitting_id, "subject": subject_id, "allowed": allowed}
    )
    used = found.scalar_one_or_none()
    if used is None:
        raise VexamError("attempts_exhausted", allowed=allowed)
    return int(used)


async def start_recording(
    ctx: Ctx, principal: Principal, sitting_id: int, subject_id: int, body: schemas.RecordingIn
) -> schemas.RecordingOut:
    """Start recording a subject on this device, consuming one attempt.

    Needs the window open, this device holding the exam (or a handover), a passed face
    verification and device check on this device, and no `face_check_required`. Where the
    subject lets the candidate choose the orientation, the choice is required and fixed for
    this recording; where the subject fixes it, that value is used.
    """
    loaded = await own_sitting(ctx, principal, sitting_id)
    subject = await _subject(ctx, loaded, subject_id)
    ensure_open(ctx, loaded)
    sitting = loaded.sitting
    await claim_device(ctx, principal.user_id, sitting.id, handover=body.handover)
    device = device_of(ctx)
    await void_open(ctx, sitting_id=sitting.id, reason="too_long", overdue_only=True)
    await ctx.session.refresh(sitting)
    if sitting.state == "failed":
        raise VexamError("exam_failed", reason=sitting.failed_reason)
    if sitting.face_check_required:
        raise VexamError("face_check_required")
    if sitting.face_device_id != device or sitting.face_state not in PASSING:
        raise VexamError("face_verification_required")
    if sitting.device_ok_id != device:
        raise VexamError("device_check_required")
    if subject.orientation == "choice":
        if body.orientation is None:
            raise VexamError("orientation_required")
        orientation = body.orientation
    else:
        orientation = subject.orientation  # type: ignore[assignment]
    allowed = subject.attempts + loaded.granted.extra_attempts
    attempt = await _consume_attempt(ctx, sitting.id, subject.id, allowed)
    max_seconds = subject.max_seconds + loaded.granted.extra_seconds
    now = ctx.now()
    recording = Recording(
        sitting_id=sitting.id,
        subject_id=subject.id,
        attempt=attempt,
        state="recording",
        device_id=device,
        orientation=orientation,
        max_seconds=max_seconds,
        started_at=now,
        ends_by=now + timedelta(seconds=max_seconds) + COMPLETE_GRACE,
        face_failures_in_row=0,
        created_at=now,
        updated_at=now,
    )
    ctx.session.add(recording)
    await ctx.session.flush()
    await audit.record(
        ctx,
        "recording.started",
        "recording",
        recording.id,
        sitting_id=sitting.id,
        subject=subject.id,
        attempt=attempt,
        allowed=allowed,
        orientation=orientation,
    )
    return recording_out(recording, [])


# ------------------------------------------------------------------ stopping


async def complete(
    ctx: Ctx, principal: Principal, recording_id: int, body: schemas.CompleteIn
) -> schemas.RecordingOut:
    """Stop a running recording: completed, or voided when it ran past its limit."""
    recording, loaded = await own_recording(ctx, principal, recording_id)
    await claim_device(ctx, principal.user_id, loaded.sitting.id)
    now = ctx.now()
    limit = recording.max_seconds + COMPLETE_GRACE.total_seconds()
    too_long = now > recording.ends_by or (
        body.duration_seconds is not None and body.duration_seconds > limit
    )
    if too_long:
        if await void_open(ctx, recording_id=recording.id, reason="too_long"):
            raise CountedRefusal("recording_too_long", max_seconds=recording.max_seconds)
        raise VexamError("recording_not_open")
    duration = body.duration_seconds
    if duration is None:
        duration = round((now - recording.started_at).total_seconds(), 3)
    done = await execute_flushed(
        ctx.session,
        statements.COMPLETE,
        {"recording_id": recording.id, "now": now, "duration": duration},
    )
    if done.rowcount != 1:  # type: ignore[attr-defined]
        raise VexamError("recording_not_open")
    set_committed(  # as written: no read back
        recording,
        {"state": "completed", "finished_at": now, "duration_seconds": duration, "updated_at": now},
    )
    await audit.record(
        ctx,
        "recording.completed",
        "recording",
        recording.id,
        duration_seconds=recording.duration_seconds,
    )
    flags = await flags_by_recording(ctx, loaded.sitting.id)
    return recording_out(recording, flags.get(recording.id, []))


# ------------------------------------------------------------------ face checks while recording


async def face_check(
    ctx: Ctx, principal: Principal, recording_id: int, frame: bytes
) -> schemas.FaceCheckOut:
    """Judge one check frame of a running recording.

    A pass resets the count; the 3rd failure in a row voids the recording and sets
    `face_check_required` on the sitting until a fresh face verification passes.
    """
    recording, loaded = await own_recording(ctx, principal, recording_id)
    sitting = loaded.sitting
    await claim_device(ctx, principal.user_id, sitting.id)
    if recording.state != "recording":
        raise VexamError("recording_not_open")
    subject = await _subject(ctx, loaded, recording.subject_id)
    real = sitting.mode == "formal" or subject.mock_face_checks == "real"
    result, distance, embedding = await judge_face(ctx, sitting, frame, real=real)
    now = ctx.now()
    ctx.session.add(
        FaceVerification(
            sitting_id=sitting.id,
            recording_id=recording.id,
            kind="check",
            result=result,
            distance=distance,
            device_id=device_of(ctx),
            created_at=now,
        )
    )
    if result == "no_reference" and sitting.live_embedding is None:
        sitting.live_embedding = embedding
    passed = result in PASSING
    counted = await execute_flushed(
        ctx.session,
        statements.FACE_CHECK_PASSED if passed else statements.FACE_CHECK_FAILED,
        {"recording_id": recording.id, "now": now},
    )
    failures = counted.scalar_one_or_none()
    if failures is None:
        raise VexamError("recording_not_open")
    state = "recording"
    if not passed:
        await audit.record(
            ctx,
            "recording.face_check_failed",
            "recording",
            recording.id,
            result=result,
            distance=distance,
            in_a_row=failures,
        )
    if failures >= FACE_FAILURES_TO_END:
        await void_open(ctx, recording_id=recording.id, reason="face_checks_failed")
        await ctx.session.execute(
            update(Sitting)
            .where(Sitting.id == sitting.id)
            .values(face_check_required=True, updated_at=now)
            .execution_options(synchronize_session=False)
        )
        await audit.record(ctx, "sitting.face_check_required", "sitting", sitting.id)
        state = "voided"
    await ctx.session.flush()
    return schemas.FaceCheckOut(
        result=result,
        passed=passed,
        distance=distance,
        consecutive_failures=int(failures),
        recording_state=state,
        face_check_required=state == "voided",
    )


# ------------------------------------------------------------------ events


async def report_event(
    ctx: Ctx, principal: Principal, sitting_id: int, body: schemas.EventIn
) -> schemas.EventOut:
    """Keep an event and apply the exam's policy: void the attempt, fail the exam, or flag.

    Every event is kept, even with nothing recording and even from a device that no longer
    holds the exam (that one is kept as "ignored" and answered `exam_active_on_other_device`).
    """
    loaded = await own_sitting(ctx, principal, sitting_id)
    sitting = loaded.sitting
    if body.recording_id is not None:
        target = await ctx.session.get(Recording, body.recording_id)
        if target is None or target.sitting_id != sitting.id:
            raise VexamError("recording_not_found")
    now = ctx.now()
    event = ExamEvent(
        sitting_id=sitting.id,
        recording_id=body.recording_id,
        kind=body.kind,
        action="ignored",
        client_at=body.client_at,
        server_at=now,
        device_id=ctx.device_id,
        detail={key[:32]: value[:200] for key, value in body.detail.items()},
    )
    try:
        await claim_device(ctx, principal.user_id, sitting.id)
    except VexamError as refused:
        ctx.session.add(event)
        await ctx.session.flush()
        await audit.record(ctx, "exam.event_ignored", "sitting", sitting.id, kind=body.kind)
        raise CountedRefusal(refused.code, **refused.params) from None
    action = service.effective_anti_cheat(loaded.exam.anti_cheat or {})[body.kind]
    event.action = action
    running = statements.RUNNING if body.recording_id is None else statements.RUNNING_ONE
    found = await execute_flushed(
        ctx.session, running, {"sitting_id": sitting.id, "recording_id": body.recording_id}
    )
    open_ids = sorted(found.scalars())
    if event.recording_id is None and open_ids:
        event.recording_id = open_ids[0]
    voided: list[int] = []
    failed = False
    if action == "void_attempt":
        voided = await void_open(
            ctx, sitting_id=sitting.id, recording_id=body.recording_id, reason=f"event:{body.kind}"
        )
    elif action == "fail_exam":
        voided = await void_open(ctx, sitting_id=sitting.id, reason="exam_failed")
        moved = await ctx.session.execute(
            update(Sitting)
            .where(Sitting.id == sitting.id, Sitting.state == "open")
            .values(state="failed", failed_reason=body.kind, failed_at=now, updated_at=now)
            .execution_options(synchronize_session=False)
        )
        failed = moved.rowcount == 1  # type: ignore[attr-defined]
        if failed:
            await audit.record(ctx, "sitting.failed", "sitting", sitting.id, reason=body.kind)
    ctx.session.add(event)
    await ctx.session.flush()
    await audit.record(
        ctx,
        "exam.event",
        "sitting",
        sitting.id,
        event_id=event.id,
        kind=body.kind,
        policy=action,
        recording_id=event.recording_id,
        voided_recordings=voided,
    )
    return schemas.EventOut(
        id=event.id,
        kind=event.kind,
        action=action,
        server_at=now,
        voided_recording_ids=voided,
        sitting_failed=failed,
    )


# ------------------------------------------------------------------ submission


async def submit(
    ctx: Ctx, principal: Principal, sitting_id: int, subject_id: int, body: schemas.SubmissionIn
) -> schemas.SubmissionReceipt:
    """Hand in one completed recording of a subject, once, inside the window (server clock).

    `submission_window_closed` from the candidate's window end on (a later one where
    granted); `already_submitted` decided by the unique key; the receipt names the declared
    SHA-256 and size, which the upload will be held to.
    """
    loaded = await own_sitting(ctx, principal, sitting_id)
    subject = await _subject(ctx, loaded, subject_id)
    sitting = loaded.sitting
    if sitting.state == "failed":
        raise VexamError("exam_failed", reason=sitting.failed_reason)
    if sitting.mode == "formal" and ctx.now() >= loaded.window_end:
        raise VexamError("submission_window_closed", ended_at=loaded.window_end)
    await claim_device(ctx, principal.user_id, sitting.id)
    recording = await ctx.session.get(Recording, body.recording_id)
    if recording is None or recording.sitting_id != sitting.id:
        raise VexamError("recording_not_found")
    if recording.subject_id != subject.id:
        raise VexamError("recording_not_found")
    if recording.state != "completed":
        raise VexamError("recording_not_completed")
    flags = await flags_by_recording(ctx, sitting.id)
    now = ctx.now()
    submission = Submission(
        sitting_id=sitting.id,
        subject_id=subject.id,
        recording_id=recording.id,
        sha256=body.sha256.lower(),
        size_bytes=body.size_bytes,
        upload_state="pending",
        reviewable=sitting.reviewable,
        flags=flags.get(recording.id, []),
        device_id=device_of(ctx),
        submitted_at=now,
        created_at=now,
    )
    ctx.session.add(submission)
    try:
        # No savepoint: the refusal rolls the whole unit of work back.
        await ctx.session.flush()
    except IntegrityError:
        raise VexamError("already_submitted") from None
    await audit.record(
        ctx,
        "submission.created",
        "submission",
        submission.id,
        sitting_id=sitting.id,
        subject=subject.id,
        recording_id=recording.id,
        sha256=submission.sha256,
        size_bytes=submission.size_bytes,
        reviewable=submission.reviewable,
    )
    return receipt(submission)
