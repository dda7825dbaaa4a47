"""JSON routes of an exam's roster for its school's admins and operators (SPEC §4)."""

from __future__ import annotations

from typing import Annotated

from fastapi import File, Query, UploadFile, status

from vexam.core.auth import CurrentPrincipal, ServiceCtx
from vexam.core.web import make_router
from vexam.schools import roster, schemas

router = make_router(prefix="/api/v1/exams/{exam_id}/roster", tags=["roster"])

Page = Annotated[int, Query(ge=1)]
PageSize = Annotated[int, Query(ge=1, le=roster.MAX_PAGE_SIZE)]


@router.post("/imports", status_code=status.HTTP_201_CREATED)
async def preview_import(
    exam_id: int,
    principal: CurrentPrincipal,
    ctx: ServiceCtx,
    file: Annotated[UploadFile, File(description="the roster as CSV (UTF-8 or GBK) or XLSX")],
) -> schemas.RosterImportOut:
    """Check a roster file and list its bad rows; nothing is imported until commit
    (`roster_invalid` for a file that cannot be read or lacks required columns)."""
    return await roster.preview(ctx, principal, exam_id, file.file, file.filename or "roster")


@router.get("/imports/{import_id}")
async def get_import(
    exam_id: int,
    import_id: int,
    principal: CurrentPrincipal,
    ctx: ServiceCtx,
    page: Page = 1,
    page_size: PageSize = 50,
) -> schemas.RosterImportOut:
    """A preview's counts and one page of its bad rows."""
    return await roster.get_import(ctx, principal, exam_id, import_id, page, page_size)


@router.post("/imports/{import_id}/commit")
async def commit_import(
    exam_id: int,
    import_id: int,
    principal: CurrentPrincipal,
    ctx: ServiceCtx,
    body: schemas.CommitIn | None = None,
) -> schemas.RosterImportOut:
    """Import the previewed rows; known ID numbers are updated (`roster_invalid` when the
    preview has bad rows and `skip_invalid` is not set, or it was committed or expired)."""
    skip = body.skip_invalid if body else False
    return await roster.commit(ctx, principal, exam_id, import_id, skip_invalid=skip)


@router.get("")
async def list_rows(
    exam_id: int,
    principal: CurrentPrincipal,
    ctx: ServiceCtx,
    page: Page = 1,
    page_size: PageSize = 50,
) -> schemas.RosterPageOut:
    """The exam's roster, one page at a time, ID numbers masked."""
    return await roster.list_rows(ctx, principal, exam_id, page, page_size)


@router.patch("/{row_id}")
async def correct_row(
    exam_id: int,
    row_id: int,
    body: schemas.RowCorrectionIn,
    principal: CurrentPrincipal,
    ctx: ServiceCtx,
) -> schemas.RosterRowOut:
    """Correct a row's name, province, candidate number or major (audited)."""
    return await roster.correct_row(ctx, principal, exam_id, row_id, body)
