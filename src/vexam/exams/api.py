"""JSON routes of exam setup for school admins (their own school) and operators."""

from __future__ import annotations

from fastapi import status

from vexam.core.auth import CurrentPrincipal, ServiceCtx
from vexam.core.web import make_router
from vexam.exams import accommodations, schemas, service

router = make_router(prefix="/api/v1", tags=["exams"])


@router.post("/schools/{school_id}/exams", status_code=status.HTTP_201_CREATED)
async def create_exam(
    school_id: int, body: schemas.ExamIn, principal: CurrentPrincipal, ctx: ServiceCtx
) -> schemas.ExamOut:
    """Create an exam and its subjects (`exam_window_invalid`, `exam_setting_invalid`)."""
    return await service.create_exam(ctx, principal, school_id, body)


@router.get("/schools/{school_id}/exams")
async def list_exams(
    school_id: int, principal: CurrentPrincipal, ctx: ServiceCtx
) -> list[schemas.ExamOut]:
    """The school's exams, newest first."""
    return await service.list_exams(ctx, principal, school_id)


@router.get("/exams/{exam_id}")
async def get_exam(exam_id: int, principal: CurrentPrincipal, ctx: ServiceCtx) -> schemas.ExamOut:
    """One exam with its subjects and effective anti-cheat policy."""
    return await service.exam_out(ctx, await service.get_exam(ctx, principal, exam_id))


@router.put("/exams/{exam_id}")
async def update_exam(
    exam_id: int, body: schemas.ExamIn, principal: CurrentPrincipal, ctx: ServiceCtx
) -> schemas.ExamOut:
    """Replace the exam's settings and subjects."""
    return await service.update_exam(ctx, principal, exam_id, body)


@router.put("/exams/{exam_id}/roster/{row_id}/accommodation")
async def grant_accommodation(
    exam_id: int,
    row_id: int,
    body: schemas.AccommodationIn,
    principal: CurrentPrincipal,
    ctx: ServiceCtx,
) -> schemas.AccommodationOut | None:
    """Grant one roster row's candidate extra attempts, a longer recording limit or a later
    window end, with a reason (audited); all zero removes it and answers null."""
    return await accommodations.grant(ctx, principal, exam_id, row_id, body)


@router.get("/exams/{exam_id}/accommodations")
async def list_accommodations(
    exam_id: int, principal: CurrentPrincipal, ctx: ServiceCtx
) -> list[schemas.AccommodationOut]:
    """Every accommodation of the exam."""
    return await accommodations.list_granted(ctx, principal, exam_id)
