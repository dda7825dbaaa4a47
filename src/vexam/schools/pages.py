"""zh/en pages of the school console (SPEC §4): exams and their settings, rosters, corrections
and accommodations, for a school's admins (their own school) and operators (any school).

Forms post back and redirect (POST-redirect-GET); a refusal shows the form again with the
catalogue message, the offending field marked and what the user typed kept.
"""

from __future__ import annotations

from math import ceil
from typing import Annotated, Any

from fastapi import Depends, Request, Response
from fastapi.responses import RedirectResponse
from pydantic import ValidationError
from starlette.datastructures import FormData, UploadFile

from vexam.core.auth import ServiceCtx, require_roles
from vexam.core.context import Ctx, Principal, Role
from vexam.core.errors import VexamError
from vexam.core.i18n import format_datetime, gettext, render_message
from vexam.core.policy import policy_now
from vexam.core.web import Templates, make_router
from vexam.exams import accommodations, schemas
from vexam.exams import service as exams
from vexam.schools import console_text as text
from vexam.schools import exam_form as forms
from vexam.schools import roster, service
from vexam.schools.schemas import RowCorrectionIn

router = make_router(include_in_schema=False)
SchoolStaff = Annotated[Principal, Depends(require_roles(Role.school_admin, Role.operator))]
PAGE_SIZE = 50


def _render(request: Request, name: str, status_code: int = 200, **context: Any) -> Response:
    templates: Templates = request.app.state.templates
    context.setdefault("error_fields", set())
    context.update(
        event_labels=text.EVENT_LABELS,
        action_labels=text.ACTION_LABELS,
        event_kinds=schemas.EVENT_KINDS,
        device_classes=schemas.DEVICE_CLASSES,
        os_names=schemas.OS_NAMES,
    )
    return templates.render(request, f"schools/{name}", context, status_code=status_code)


# ------------------------------------------------------------------ schools


async def _school_of(ctx: Ctx, principal: Principal, school_id: int | None) -> Any:
    """The school the page is about: a school admin's own; the operator's pick (or None)."""
    if principal.role is Role.school_admin:
        if principal.school_id is None or school_id not in (None, principal.school_id):
            raise VexamError("school_not_found")
        return await service.get_school(ctx, principal.school_id)
    return await service.get_school(ctx, school_id) if school_id is not None else None


def _times(school: Any, locale: str) -> Any:
    zone = str(school.timezone)
    return lambda value: format_datetime(value, zone, locale) if value else ""


@router.get("/school")
async def school_home(
    request: Request, principal: SchoolStaff, ctx: ServiceCtx, school_id: int | None = None
) -> Response:
    """The school's exams with their windows in its time zone; operators pick a school first."""
    school = await _school_of(ctx, principal, school_id)
    if school is None:
        return _render(request, "schools.html", schools=await service.list_schools(ctx))
    listed = await exams.list_exams(ctx, principal, school.id)
    return _render(
        request,
        "home.html",
        school=school,
        exams=listed,
        school_time=_times(school, ctx.locale),
        yuan=forms.yuan,
        notice=gettext(ctx.locale, text.NOTICES["saved"])
        if request.query_params.get("done")
        else None,
    )


# ------------------------------------------------------------------ exam form


def _form_page(
    request: Request, school: Any, state: dict[str, Any], exam_id: int | None, **extra: Any
) -> Response:
    status = extra.pop("status_code", 200)
    return _render(
        request,
        "exam_form.html",
        status,
        school=school,
        form=state,
        exam_id=exam_id,
        blank_subject=forms.blank_subject(),
        **extra,
    )


async def _posted(request: Request) -> tuple[dict[str, Any], str]:
    """The posted exam form and its action (save, add a subject, remove subject N)."""
    form = await request.form()
    state = forms.posted_form(form)
    action = forms.field_text(form, "action") or "save"
    if action == "add_subject":
        state["subjects"].append(forms.blank_subject())
    elif action.startswith("remove_subject-") and len(state["subjects"]) > 1:
        index = action.removeprefix("remove_subject-")
        if index.isdigit() and int(index) < len(state["subjects"]):
            del state["subjects"][int(index)]
    return state, action


@router.get("/school/exams/new")
async def new_exam_page(
    request: Request, principal: SchoolStaff, ctx: ServiceCtx, school_id: int | None = None
) -> Response:
    """The form of a new exam with one subject."""
    school = await _school_of(ctx, principal, school_id)
    if school is None:
        raise VexamError("school_not_found")
    return _form_page(request, school, forms.blank_form(await policy_now(ctx)), None)


@router.post("/school/exams/new")
async def new_exam_submit(
    request: Request, principal: SchoolStaff, ctx: ServiceCtx, school_id: int | None = None
) -> Response:
    """Create the exam, or show the form again with the refusal next to its field."""
    school = await _school_of(ctx, principal, school_id)
    if school is None:
        raise VexamError("school_not_found")
    state, action = await _posted(request)
    chosen = school.id
    if action != "save":
        return _form_page(request, school, state, None)
    try:
        created = await exams.create_exam(
            ctx, principal, school.id, forms.exam_in(state, school.timezone)
        )
    except VexamError as exc:
        refusal = await text.refusal(ctx, exc)
        # The rollback expired every loaded object: load the school again.
        school = await service.get_school(ctx, chosen)
        return _form_page(request, school, state, None, status_code=exc.status, **refusal)
    return RedirectResponse(f"/school/exams/{created.id}/roster?done=saved", status_code=303)


async def _exam_and_school(ctx: Ctx, principal: Principal, exam_id: int) -> tuple[Any, Any]:
    exam = await exams.get_exam(ctx, principal, exam_id)
    return exam, await service.get_school(ctx, exam.school_id)


@router.get("/school/exams/{exam_id}/edit")
async def edit_exam_page(
    request: Request, exam_id: int, principal: SchoolStaff, ctx: ServiceCtx
) -> Response:
    """The exam's settings and subjects in the form."""
    exam, school = await _exam_and_school(ctx, principal, exam_id)
    out = await exams.exam_out(ctx, exam)
    notice = (
        gettext(ctx.locale, text.NOTICES["copied"])
        if request.query_params.get("done") == "copied"
        else None
    )
    return _form_page(request, school, forms.form_of(out, school.timezone), exam.id, notice=notice)


@router.post("/school/exams/{exam_id}/copy")
async def copy_exam_submit(
    request: Request, exam_id: int, principal: SchoolStaff, ctx: ServiceCtx
) -> Response:
    """Copy an exam's settings and subjects into a new draft for the next season (audited),
    then open the copy's form to check its code, names and window."""
    copied = await exams.copy_exam(ctx, principal, exam_id)
    return RedirectResponse(f"/school/exams/{copied.id}/edit?done=copied", status_code=303)


@router.post("/school/exams/{exam_id}/edit")
async def edit_exam_submit(
    request: Request, exam_id: int, principal: SchoolStaff, ctx: ServiceCtx
) -> Response:
    """Save the whole form over the exam's settings and subjects."""
    exam, school = await _exam_and_school(ctx, principal, exam_id)
    state, action = await _posted(request)
    if action != "save":
        return _form_page(request, school, state, exam.id)
    try:
        await exams.update_exam(ctx, principal, exam.id, forms.exam_in(state, school.timezone))
    except VexamError as exc:
        refusal = await text.refusal(ctx, exc)
        exam, school = await _exam_and_school(ctx, principal, exam_id)
        return _form_page(request, school, state, exam.id, status_code=exc.status, **refusal)
    query = (
        f"?school_id={school.id}&done=saved" if principal.role is Role.operator else "?done=saved"
    )
    return RedirectResponse(f"/school{query}", status_code=303)


# ------------------------------------------------------------------ roster


def _pages(total: int, size: int) -> int:
    return max(1, ceil(total / size))


async def _roster_page(
    request: Request,
    ctx: Ctx,
    principal: Principal,
    exam_id: int,
    page: int = 1,
    status_code: int = 200,
    **extra: Any,
) -> Response:
    exam, school = await _exam_and_school(ctx, principal, exam_id)
    listed = await roster.list_rows(ctx, principal, exam.id, page, PAGE_SIZE)
    granted = await accommodations.list_granted(ctx, principal, exam.id)
    return _render(
        request,
        "roster.html",
        status_code,
        exam=exam,
        school=school,
        listing=listed,
        pages=_pages(listed.total, PAGE_SIZE),
        granted=granted,
        granted_by_row={item.roster_row_id: item for item in granted},
        school_time=_times(school, ctx.locale),
        local=lambda value: forms.local_input(value, school.timezone),
        typed=extra.pop("typed", {}),
        typed_row=extra.pop("typed_row", None),
        **extra,
    )


@router.get("/school/exams/{exam_id}/roster")
async def roster_page(
    request: Request,
    exam_id: int,
    principal: SchoolStaff,
    ctx: ServiceCtx,
    page: int = 1,
    done: str = "",
    import_id: int | None = None,
) -> Response:
    """Upload a roster file; the roster (ID numbers masked), corrections and accommodations."""
    notice = gettext(ctx.locale, text.NOTICES[done]) if done in text.NOTICES else None
    if done == "committed" and import_id is not None:
        job = await roster.get_import(ctx, principal, exam_id, import_id, 1, 1)
        notice = render_message(
            ctx.locale,
            text.COMMITTED,
            {
                "inserted": job.inserted_rows or 0,
                "updated": job.updated_rows or 0,
                "skipped": job.error_rows,
            },
            ctx.settings.default_timezone,
        )
    return await _roster_page(request, ctx, principal, exam_id, max(page, 1), notice=notice)


@router.post("/school/exams/{exam_id}/roster/imports")
async def roster_upload(
    request: Request, exam_id: int, principal: SchoolStaff, ctx: ServiceCtx
) -> Response:
    """Check an uploaded CSV/XLSX file and show its preview (nothing is imported yet)."""
    form = await request.form()
    upload = form.get("file")
    try:
        if not isinstance(upload, UploadFile) or not upload.filename:
            raise VexamError("roster_invalid", reason="no_file", columns=[])
        previewed = await roster.preview(ctx, principal, exam_id, upload.file, upload.filename)
    except VexamError as exc:
        refusal = await text.refusal(ctx, exc)
        return await _roster_page(
            request, ctx, principal, exam_id, status_code=exc.status, **refusal
        )
    return RedirectResponse(
        f"/school/exams/{exam_id}/roster/imports/{previewed.id}", status_code=303
    )


def _row_reason(locale: str, reason: str, other_row: int | None) -> str:
    message = text.ROW_REASONS.get(reason)
    if message is None:
        return reason
    return gettext(locale, message).format(other_row=other_row or "")


async def _preview_page(
    request: Request,
    ctx: Ctx,
    principal: Principal,
    exam_id: int,
    import_id: int,
    page: int = 1,
    status_code: int = 200,
    **extra: Any,
) -> Response:
    exam, school = await _exam_and_school(ctx, principal, exam_id)
    job = await roster.get_import(ctx, principal, exam.id, import_id, page, PAGE_SIZE)
    bad = [
        {
            "row": error.row,
            "column": text.label(ctx.locale, error.column),
            "reason": _row_reason(ctx.locale, error.reason, error.other_row),
            "code": error.reason,
        }
        for error in job.errors
    ]
    return _render(
        request,
        "preview.html",
        status_code,
        exam=exam,
        school=school,
        job=job,
        bad=bad,
        pages=_pages(job.error_rows, PAGE_SIZE),
        school_time=_times(school, ctx.locale),
        **extra,
    )


@router.get("/school/exams/{exam_id}/roster/imports/{import_id}")
async def preview_page(
    request: Request,
    exam_id: int,
    import_id: int,
    principal: SchoolStaff,
    ctx: ServiceCtx,
    page: int = 1,
) -> Response:
    """A preview: counts and the bad rows (row, column, reason), a page at a time."""
    return await _preview_page(request, ctx, principal, exam_id, import_id, max(page, 1))


@router.post("/school/exams/{exam_id}/roster/imports/{import_id}/commit")
async def commit_submit(
    request: Request, exam_id: int, import_id: int, principal: SchoolStaff, ctx: ServiceCtx
) -> Response:
    """Import the preview's valid rows (leaving the bad ones out when the form says so)."""
    form = await request.form()
    try:
        await roster.commit(
            ctx, principal, exam_id, import_id, skip_invalid=form.get("skip_invalid") == "1"
        )
    except VexamError as exc:
        refusal = await text.refusal(ctx, exc)
        return await _preview_page(
            request, ctx, principal, exam_id, import_id, status_code=exc.status, **refusal
        )
    return RedirectResponse(
        f"/school/exams/{exam_id}/roster?done=committed&import_id={import_id}", status_code=303
    )


def _query_page(request: Request) -> int:
    value = request.query_params.get("page", "1")
    return int(value) if value.isdigit() and int(value) > 0 else 1


def _row_form(form: FormData, names: tuple[str, ...]) -> dict[str, str]:
    return {name: forms.field_text(form, name) for name in names}


@router.post("/school/exams/{exam_id}/roster/{row_id}/correct")
async def correct_submit(
    request: Request, exam_id: int, row_id: int, principal: SchoolStaff, ctx: ServiceCtx
) -> Response:
    """Correct a roster row's name, exam province, candidate number or major (audited)."""
    typed = _row_form(await request.form(), ("name", "province", "candidate_number", "major"))
    page = _query_page(request)
    try:
        try:
            body = RowCorrectionIn.model_validate(typed)
        except ValidationError as exc:
            loc = ["body", *exc.errors()[0]["loc"]]
            raise VexamError(
                "invalid_request", errors=[{"loc": loc, "type": "value_error"}]
            ) from None
        await roster.correct_row(ctx, principal, exam_id, row_id, body)
    except VexamError as exc:
        refusal = await text.refusal(ctx, exc)
        return await _roster_page(
            request,
            ctx,
            principal,
            exam_id,
            page,
            exc.status,
            typed={"correct": typed},
            typed_row=row_id,
            **refusal,
        )
    return RedirectResponse(
        f"/school/exams/{exam_id}/roster?page={page}&done=corrected#row-{row_id}", status_code=303
    )


@router.post("/school/exams/{exam_id}/roster/{row_id}/accommodation")
async def accommodation_submit(
    request: Request, exam_id: int, row_id: int, principal: SchoolStaff, ctx: ServiceCtx
) -> Response:
    """Grant (or, with nothing, remove) a candidate's accommodation, with a written reason."""
    typed = _row_form(
        await request.form(), ("extra_attempts", "extra_seconds", "window_ends_at", "reason")
    )
    page = _query_page(request)
    try:
        exam, school = await _exam_and_school(ctx, principal, exam_id)
        field = "accommodation.{}"
        body_values = {
            "extra_attempts": forms.whole_number(
                typed["extra_attempts"] or "0", field.format("extra_attempts")
            ),
            "extra_seconds": forms.whole_number(
                typed["extra_seconds"] or "0", field.format("extra_seconds")
            ),
            "window_ends_at": forms.moment_in_zone(
                typed["window_ends_at"], school.timezone, "accommodation.window_ends_at"
            )
            if typed["window_ends_at"]
            else None,
            "reason": typed["reason"],
        }
        try:
            body = schemas.AccommodationIn.model_validate(body_values)
        except ValidationError as exc:
            raise forms.from_validation(exc, "accommodation.") from None
        granted = await accommodations.grant(ctx, principal, exam.id, row_id, body)
    except VexamError as exc:
        refusal = await text.refusal(ctx, exc)
        return await _roster_page(
            request,
            ctx,
            principal,
            exam_id,
            page,
            exc.status,
            typed={"accommodation": typed},
            typed_row=row_id,
            **refusal,
        )
    done = "accommodation" if granted is not None else "accommodation_removed"
    return RedirectResponse(
        f"/school/exams/{exam_id}/roster?page={page}&done={done}#row-{row_id}", status_code=303
    )
