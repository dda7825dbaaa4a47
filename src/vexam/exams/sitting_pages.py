"""zh/en pages of taking an exam in the phone browser (SPEC §5): the recording page.

The page is a shell: its script takes the exam through the public sitting API only (start or
continue the sitting, face verification, device check, record, review, submit), so a native
app could do the same. The server renders the exam's name, the mode and every text the
script shows, in the reader's language.
"""

from __future__ import annotations

from typing import Any, Literal

from fastapi import Request, Response

from vexam.core.auth import Candidate, ServiceCtx
from vexam.core.web import Templates, make_router
from vexam.exams import enrollment

router = make_router(include_in_schema=False)


def _render(request: Request, name: str, status_code: int = 200, **context: Any) -> Response:
    templates: Templates = request.app.state.templates
    return templates.render(request, f"exams/{name}", context, status_code=status_code)


@router.get("/exams/{exam_id}/take")
async def take_page(
    request: Request,
    exam_id: int,
    principal: Candidate,
    ctx: ServiceCtx,
    mode: Literal["mock", "formal"] = "mock",
    sitting: int | None = None,
) -> Response:
    """The recording page of a published exam (`exam_not_found` otherwise) in `mode`.

    `sitting` continues a sitting the page started before (a reload never starts another
    mock sitting); the script checks that it is the caller's through the API.
    """
    entry = await enrollment.catalog_entry(ctx, exam_id)
    english = ctx.locale == "en"
    return _render(
        request,
        "take.html",
        exam_id=exam_id,
        exam_name=entry.exam_name_en if english and entry.exam_name_en else entry.exam_name,
        school_name=entry.school_name_en if english and entry.school_name_en else entry.school_name,
        timezone=entry.timezone,
        mode=mode,
        sitting_id=sitting,
        account=str(principal.user_id),
        masked_phone=principal.masked_phone,
    )
