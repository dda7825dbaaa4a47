"""JSON routes of taking an exam (SPEC §5): sittings, recordings, events, submissions.

Every exam call comes from a device (`X-Device-Id` from apps, the device cookie from
browsers); the candidate's one exam device is enforced on each call that changes state.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import File, Response, UploadFile, status

from vexam.core.auth import Candidate, CurrentPrincipal, ServiceCtx
from vexam.core.context import Ctx
from vexam.core.errors import VexamError
from vexam.core.web import make_router, reads_first
from vexam.exams import attempts, schemas, sitting_status, sittings

router = make_router(prefix="/api/v1", tags=["exam sittings"])


async def _frame(ctx: Ctx, upload: UploadFile) -> bytes:
    """The frame's bytes, read no further than the photo limit allows."""
    limit = ctx.settings.id_photo_max_bytes
    data = await upload.read(limit + 1)
    if len(data) > limit:
        raise VexamError("image_too_large", max_mb=round(limit / 1_000_000, 1))
    return data


@router.post("/exams/{exam_id}/sittings")
async def start_sitting(
    exam_id: int, body: schemas.SittingIn, principal: Candidate, ctx: ServiceCtx
) -> schemas.SittingOut:
    """Open (or continue) the formal sitting, or start a new mock sitting, on this device
    (`exam_not_open`, `exam_closed`, `payment_required`, `mock_limit_reached`,
    `exam_active_on_other_device` unless `handover`)."""
    return await sitting_status.start(ctx, principal, exam_id, body)


@router.get("/me/sittings")
@reads_first
async def my_sittings(principal: Candidate, ctx: ServiceCtx) -> list[schemas.SittingOut]:
    """Your sittings, newest first."""
    return await sitting_status.my_sittings(ctx, principal)


@router.get("/sittings/{sitting_id}")
@reads_first
async def get_sitting(sitting_id: int, principal: Candidate, ctx: ServiceCtx) -> schemas.SittingOut:
    """The whole sitting: subjects, attempts left, recordings, submissions, what comes next."""
    return await sitting_status.my_status(ctx, principal, sitting_id)


@router.post("/sittings/{sitting_id}/face-verification")
async def verify_face(
    sitting_id: int,
    frame: Annotated[UploadFile, File(description="a live JPEG or PNG frame")],
    principal: Candidate,
    ctx: ServiceCtx,
) -> schemas.FaceCheckOut:
    """The exam-time face verification on this device (`face_not_found`,
    `exam_face_mismatch`); passing clears `face_check_required`."""
    return await sittings.verify_face(ctx, principal, sitting_id, await _frame(ctx, frame))


@router.post("/sittings/{sitting_id}/device-check")
async def check_device(
    sitting_id: int, body: schemas.DeviceCheckIn, principal: Candidate, ctx: ServiceCtx
) -> schemas.DeviceCheckOut:
    """Judge this device by the exam's device policy (`device_not_allowed` naming the rule);
    warnings (another device than the mock, low storage, slow upload) are answered and kept."""
    return await sittings.check_device(ctx, principal, sitting_id, body)


@router.post(
    "/sittings/{sitting_id}/subjects/{subject_id}/recordings",
    status_code=status.HTTP_201_CREATED,
)
async def start_recording(
    sitting_id: int,
    subject_id: int,
    body: schemas.RecordingIn,
    principal: Candidate,
    ctx: ServiceCtx,
) -> schemas.RecordingOut:
    """Start recording a subject: uses one attempt (`attempts_exhausted`,
    `face_check_required`, `face_verification_required`, `device_check_required`,
    `orientation_required`, `exam_failed`)."""
    return await attempts.start_recording(ctx, principal, sitting_id, subject_id, body)


@router.post("/recordings/{recording_id}/face-checks")
async def face_check(
    recording_id: int,
    frame: Annotated[UploadFile, File(description="a JPEG or PNG frame from the camera")],
    principal: Candidate,
    ctx: ServiceCtx,
) -> schemas.FaceCheckOut:
    """Judge a check frame of a running recording; the 3rd failure in a row voids it and
    sets `face_check_required`."""
    return await attempts.face_check(ctx, principal, recording_id, await _frame(ctx, frame))


@router.post("/recordings/{recording_id}/complete")
async def complete_recording(
    recording_id: int, body: schemas.CompleteIn, principal: Candidate, ctx: ServiceCtx
) -> schemas.RecordingOut:
    """Stop a running recording (`recording_not_open`; `recording_too_long` voids it)."""
    return await attempts.complete(ctx, principal, recording_id, body)


@router.post("/sittings/{sitting_id}/events", status_code=status.HTTP_201_CREATED)
async def report_event(
    sitting_id: int, body: schemas.EventIn, principal: Candidate, ctx: ServiceCtx
) -> schemas.EventOut:
    """Report an interruption or prohibited action; the exam's policy decides what it does."""
    return await attempts.report_event(ctx, principal, sitting_id, body)


@router.post(
    "/sittings/{sitting_id}/subjects/{subject_id}/submission",
    status_code=status.HTTP_201_CREATED,
)
async def submit(
    sitting_id: int,
    subject_id: int,
    body: schemas.SubmissionIn,
    principal: Candidate,
    ctx: ServiceCtx,
) -> schemas.SubmissionReceipt:
    """Submit one completed recording of the subject, once (`already_submitted`,
    `submission_window_closed`, `recording_not_completed`); keep the receipt."""
    return await attempts.submit(ctx, principal, sitting_id, subject_id, body)


@router.post("/me/exam-device/release", status_code=status.HTTP_204_NO_CONTENT)
async def release_device(principal: Candidate, ctx: ServiceCtx) -> Response:
    """Leave the exam on this device: another device may start it without a handover."""
    await sittings.release_device(ctx, principal)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/exams/{exam_id}/roster/{row_id}/sittings")
async def candidate_sittings(
    exam_id: int, row_id: int, principal: CurrentPrincipal, ctx: ServiceCtx
) -> list[schemas.SittingOut]:
    """One roster row's sittings, as the candidate sees them (the school's admins, operators)."""
    return await sitting_status.school_view(ctx, principal, exam_id, row_id)
