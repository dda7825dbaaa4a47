"""The school console's exam dashboard page (SPEC §4–§6), for the exam's school admins and
operators: counts, charts over the formal window drawn as inline SVG by the server, and the
lists of candidates who still need something (GET filters, no script needed).
"""

from __future__ import annotations

from math import ceil
from typing import Annotated

from fastapi import Depends, Request, Response

from vexam.core.auth import ServiceCtx, require_roles
from vexam.core.context import Principal, Role
from vexam.core.i18n import format_datetime
from vexam.core.web import Templates, make_router
from vexam.exams import dashboard as counts
from vexam.exams import service as exams
from vexam.schools import dashboard, service

router = make_router(include_in_schema=False)
SchoolStaff = Annotated[Principal, Depends(require_roles(Role.school_admin, Role.operator))]
PAGE_SIZE = 50


@router.get("/school/exams/{exam_id}/dashboard")
async def dashboard_page(
    request: Request,
    exam_id: int,
    principal: SchoolStaff,
    ctx: ServiceCtx,
    need: str = "not_submitted",
    subject: str = "",
    page: str = "1",
) -> Response:
    """The exam's dashboard; `need` and `subject` filter the list, `page` pages it.

    Other schools' exams are `exam_not_found` (404), as everywhere in the console."""
    exam = await exams.get_exam(ctx, principal, exam_id)
    school = await service.get_school(ctx, exam.school_id)
    zone = str(school.timezone)
    overview = await counts.overview(ctx, exam)
    subject_ids = {item.id for item in overview.subjects}
    chosen = int(subject) if subject.isdigit() and int(subject) in subject_ids else None
    if need not in counts.NEEDS or (need == "unpaid" and not overview.fee_required):
        need = "not_submitted"
    # A hand-edited page number shows the first page rather than a validation error.
    number = int(page) if page.isdigit() and int(page) > 0 else 1
    listed, total = await dashboard.needs_page(ctx, exam, need, chosen, number, PAGE_SIZE)
    series = await counts.series(ctx, exam, zone)
    templates: Templates = request.app.state.templates
    return templates.render(
        request,
        "schools/dashboard.html",
        {
            "exam": exam,
            "school": school,
            "overview": overview,
            "subjects": {item.id: item for item in overview.subjects},
            "need": need,
            "subject_id": chosen,
            "listed": listed,
            "total": total,
            "page": number,
            "pages": max(1, ceil(total / PAGE_SIZE)),
            "need_labels": {
                key: label
                for key, label in dashboard.NEED_LABELS.items()
                if key != "unpaid" or overview.fee_required
            },
            "upload_labels": dashboard.UPLOAD_LABELS,
            "step_hours": series.step.total_seconds() < 86400,
            "submission_chart": dashboard.chart(
                series.starts, series.step, series.submissions, zone, ctx.now()
            ),
            "upload_chart": dashboard.chart(
                series.starts, series.step, series.uploads, zone, ctx.now()
            ),
            "school_time": lambda value: format_datetime(value, zone, ctx.locale),
        },
    )
