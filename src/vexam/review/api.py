"""JSON routes of review (SPEC §6): the school's settings, assignments, progress, publish and
exports; the reviewer's blind queue, item, video link and score."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Response, status

from vexam.core.auth import ServiceCtx, require_roles
from vexam.core.context import Principal, Role
from vexam.core.web import make_router
from vexam.review import exports, reviewing, schemas, service

router = make_router(prefix="/api/v1", tags=["review"])
SchoolStaff = Annotated[Principal, Depends(require_roles(Role.school_admin, Role.operator))]
Reviewer = Annotated[Principal, Depends(require_roles(Role.reviewer))]
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


# ------------------------------------------------------------------ the school


@router.get("/exams/{exam_id}/review/settings")
async def get_settings(
    exam_id: int, principal: SchoolStaff, ctx: ServiceCtx
) -> schemas.SettingsOut:
    """How the exam's scores combine and escalate, and whether they are published."""
    return await service.get_settings(ctx, principal, exam_id)


@router.put("/exams/{exam_id}/review/settings")
async def put_settings(
    exam_id: int, body: schemas.SettingsIn, principal: SchoolStaff, ctx: ServiceCtx
) -> schemas.SettingsOut:
    """Change the aggregate, reviewers per submission, escalation threshold and maximum of
    reviewers (`review_setting_invalid`; `scores_locked` once published)."""
    return await service.update_settings(ctx, principal, exam_id, body)


@router.get("/exams/{exam_id}/review/assignments")
async def list_assignments(
    exam_id: int, principal: SchoolStaff, ctx: ServiceCtx
) -> list[schemas.AssignmentOut]:
    """Which reviewers score which subjects, and how many each has scored."""
    return await service.list_assignments(ctx, principal, exam_id)


@router.post("/exams/{exam_id}/review/assignments", status_code=status.HTTP_201_CREATED)
async def assign(
    exam_id: int, body: schemas.AssignmentIn, principal: SchoolStaff, ctx: ServiceCtx
) -> schemas.AssignmentOut:
    """Assign a reviewer of the school to a subject for a share of its submissions
    (`reviewer_not_found`, `review_setting_invalid`); again: change the share."""
    return await service.assign(ctx, principal, exam_id, body)


@router.delete(
    "/exams/{exam_id}/review/assignments/{assignment_id}",
    status_code=status.HTTP_204_NO_CONTENT,
)
async def unassign(
    exam_id: int, assignment_id: int, principal: SchoolStaff, ctx: ServiceCtx
) -> Response:
    """Remove an assignment; the reviewer's scores stay (`assignment_not_found`)."""
    await service.unassign(ctx, principal, exam_id, assignment_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/exams/{exam_id}/review/progress")
async def progress(exam_id: int, principal: SchoolStaff, ctx: ServiceCtx) -> schemas.ProgressOut:
    """Every submission under review by code, with its scores, state and aggregate."""
    return await service.progress(ctx, principal, exam_id)


@router.post("/exams/{exam_id}/review/publish")
async def publish(exam_id: int, principal: SchoolStaff, ctx: ServiceCtx) -> schemas.SettingsOut:
    """Publish the exam's results; every score is locked from now on (idempotent)."""
    return await service.publish(ctx, principal, exam_id)


@router.get("/exams/{exam_id}/review/export.csv", response_class=Response)
async def export_csv(exam_id: int, principal: SchoolStaff, ctx: ServiceCtx) -> Response:
    """Scores and submission/upload status as CSV (UTF-8 with BOM); identity for the school
    admin only."""
    data = await exports.table(ctx, principal, exam_id)
    return _download(exports.as_csv(data), "text/csv; charset=utf-8", f"{data.filename}.csv")


@router.get("/exams/{exam_id}/review/export.xlsx", response_class=Response)
async def export_xlsx(exam_id: int, principal: SchoolStaff, ctx: ServiceCtx) -> Response:
    """Scores and submission/upload status as XLSX; identity for the school admin only."""
    data = await exports.table(ctx, principal, exam_id)
    return _download(exports.as_xlsx(data), XLSX, f"{data.filename}.xlsx")


def _download(body: bytes, media_type: str, filename: str) -> Response:
    return Response(
        body,
        media_type=media_type,
        headers={
            "Content-Disposition": f'attachment; filename="{filename}"',
            "Cache-Control": "no-store",
        },
    )


# ------------------------------------------------------------------ reviewers


@router.get("/review/queue")
async def review_queue(principal: Reviewer, ctx: ServiceCtx) -> list[schemas.QueueEntry]:
    """The caller's submissions to score, then those they scored; by opaque code only."""
    return await reviewing.queue(ctx, principal)


@router.get("/review/items/{code}")
async def review_item(code: str, principal: Reviewer, ctx: ServiceCtx) -> schemas.ItemOut:
    """One submission to score: task, rubric, anti-cheat events and face flags on the
    timeline, and the caller's own score (`review_item_not_found`)."""
    return await reviewing.item_detail(ctx, principal, code)


@router.get("/review/items/{code}/playback")
async def review_playback(code: str, principal: Reviewer, ctx: ServiceCtx) -> schemas.PlaybackOut:
    """A short-lived link to the video (`playback_unavailable` while there is none)."""
    return schemas.PlaybackOut(url=await reviewing.playback(ctx, principal, code))


@router.put("/review/items/{code}/score")
async def review_score(
    code: str, body: schemas.ScoreIn, principal: Reviewer, ctx: ServiceCtx
) -> schemas.ItemOut:
    """Give or revise the caller's score (`score_invalid`, `scores_locked`)."""
    return await reviewing.score(ctx, principal, code, body)
