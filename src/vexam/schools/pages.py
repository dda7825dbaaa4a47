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
from vexam.core.db import KeepChanges
from vexam.core.errors import CATALOGUE, VexamError
from vexam.core.i18n import N_, Msg, format_datetime, gettext, render_message
from vexam.core.web import Templates, make_router
from vexam.exams import accommodations, schemas
from vexam.exams import service as exams
from vexam.identity.idnumbers import IdNumberReason
from vexam.schools import exam_form as forms
from vexam.schools import roster, service
from vexam.schools.schemas import RowCorrectionIn

router = make_router(include_in_schema=False)
SchoolStaff = Annotated[Principal, Depends(require_roles(Role.school_admin, Role.operator))]
PAGE_SIZE = 50

# Labels of the settings a refusal can name (`field` of exam_setting_invalid).
FIELD_LABELS = {
    "code": N_("Exam code"),
    "name": N_("Name (Chinese)"),
    "name_en": N_("Name (English)"),
    "season": N_("Season"),
    "formal_starts_at": N_("Formal window opens"),
    "formal_ends_at": N_("Formal window closes"),
    "upload_grace_minutes": N_("Upload grace period (in minutes)"),
    "mock_limit": N_("Mock exam limit"),
    "fee_cents": N_("Fee (yuan)"),
    "subjects": N_("Subjects"),
    "device_policy.allowed_classes": N_("Devices allowed"),
    "device_policy.min_os": N_("Oldest system version"),
    "anti_cheat": N_("Anti-cheat policy"),
    "attempts": N_("Attempts"),
    "max_seconds": N_("Longest recording (seconds)"),
    "prompt": N_("Prompt"),
    "camera": N_("Camera"),
    "orientation": N_("Orientation"),
    "face_check_seconds": N_("Face check every (seconds)"),
    "mock_face_checks": N_("Face checks in the mock exam"),
    "rubric": N_("Rubric"),
    "extra_attempts": N_("Extra attempts"),
    "extra_seconds": N_("Extra recording seconds"),
    "window_ends_at": N_("Later window end"),
    "reason": N_("Reason"),
    "province": N_("Exam province"),
    "candidate_number": N_("Candidate number"),
    "major": N_("Major"),
    "id_number": N_("ID number"),
}
SUBJECT_LABEL = N_("Subject {number}")
# The reasons the exam services give, as msgids (their English text is the key).
_REASONS = (
    N_("required"),
    N_("lowercase letters, digits and dashes"),
    N_("a year such as 2027"),
    N_("with a time zone, e.g. +08:00"),
    N_("between 0 and 10080"),
    N_("empty for unlimited, or 1 and more"),
    N_("0 or more"),
    N_("at least one subject"),
    N_("between 1 and 50"),
    N_("between 10 and 7200"),
    N_("0, or between 10 and 600"),
    N_("a name and points above 0"),
    N_("above 0"),
    N_("phone, tablet or desktop"),
    N_("android, harmonyos or ios"),
    N_("a version such as 7 or 10.3"),
    N_("unknown event kind"),
    N_("void_attempt, fail_exam or flag"),
    N_("a written reason"),
    N_("between 0 and 50"),
    N_("between 0 and 7200"),
    N_("after the end of the formal window"),
    N_("at most 30 days after the formal window"),
    # Given by this module for what a form cannot even send as a setting.
    N_("a whole number"),
    N_("a number"),
    N_("a date and time"),
    N_("an amount in yuan such as 180 or 180.50"),
    N_("one 'name: points' per line"),
    N_("too long"),
    N_("not one of the choices"),
    N_("not valid"),
)
# roster_invalid reasons for the file as a whole.
FILE_REASONS = {
    "unreadable": N_("the file is not a readable CSV or XLSX file"),
    "encoding": N_("the text encoding is neither UTF-8 nor GBK"),
    "empty": N_("the file has no data rows"),
    "missing_columns": N_("required columns are missing"),
    "preview_has_errors": N_("the preview has bad rows"),
    "already_committed": N_("this preview was imported already"),
    "preview_expired": N_("this preview expired: upload the file again"),
    "no_file": N_("no file was chosen"),
}
# Why a roster row is bad (roster.check_row, the duplicate check, ID-number rules).
ROW_REASONS = {
    "missing": N_("empty"),
    "too_long": N_("too long"),
    "unknown": N_("not a province of China"),
    "format": N_("4 to 20 letters and digits"),
    "duplicate": N_("repeats row {other_row}"),
    IdNumberReason.length.value: N_("not 18 characters long"),
    IdNumberReason.characters.value: N_("17 digits and a final digit or X"),
    IdNumberReason.check_character.value: N_("the last character does not match (a typo?)"),
    IdNumberReason.province.value: N_("the first two digits are no province"),
    IdNumberReason.birth_date.value: N_("the birth date in it is not a real date"),
    IdNumberReason.birth_date_mismatch.value: N_("the birth date does not match"),
}
EVENT_LABELS = {
    "phone_call": N_("Phone call"),
    "left_page": N_("Left the exam page"),
    "screen_locked": N_("Screen locked"),
    "screen_recording": N_("Screen recording"),
    "screenshot": N_("Screenshot"),
    "app_crash": N_("App crashed"),
}
ACTION_LABELS = {
    "void_attempt": N_("Void the attempt"),
    "fail_exam": N_("Fail the exam"),
    "flag": N_("Flag for reviewers"),
}
NOTICES = {
    "corrected": N_("The row was corrected."),
    "accommodation": N_("The accommodation was saved."),
    "accommodation_removed": N_("The accommodation was removed."),
    "saved": N_("The exam was saved."),
}
COMMITTED = N_(
    "Roster imported. Added: {inserted} · updated: {updated} · bad rows left out: {skipped}."
)


def _render(request: Request, name: str, status_code: int = 200, **context: Any) -> Response:
    templates: Templates = request.app.state.templates
    context.setdefault("error_fields", set())
    context.update(
        event_labels=EVENT_LABELS,
        action_labels=ACTION_LABELS,
        event_kinds=schemas.EVENT_KINDS,
        device_classes=schemas.DEVICE_CLASSES,
        os_names=schemas.OS_NAMES,
    )
    return templates.render(request, f"schools/{name}", context, status_code=status_code)


def _label(locale: str, field: str) -> str:
    parts = field.split(".")
    if parts[0] == "accommodation":
        parts = parts[1:]
    if parts[0] == "subjects" and len(parts) > 2 and parts[1].isdigit():
        subject = gettext(locale, SUBJECT_LABEL).format(number=int(parts[1]) + 1)
        return f"{subject} · {gettext(locale, FIELD_LABELS.get(parts[2], parts[2]))}"
    for size in (2, 1):
        key = ".".join(parts[:size])
        if key in FIELD_LABELS:
            return gettext(locale, FIELD_LABELS[key])
    return field


def _form_key(field: str) -> str:
    """The form control a refusal's field names: subjects.0.rubric.criteria.2 → its rubric."""
    parts = field.split(".")
    if parts[0] == "accommodation":
        parts = parts[1:]
    if parts[0] == "subjects" and len(parts) > 2:
        return ".".join(parts[:3])
    return ".".join(parts)


async def _refusal(ctx: Ctx, exc: VexamError) -> dict[str, Any]:
    """Undo the request's writes (unless they are meant to count); the message and fields."""
    if not isinstance(exc, KeepChanges):
        await ctx.session.rollback()
    params = dict(exc.params)
    fields: set[str] = set()
    if exc.code == "exam_setting_invalid":
        field = str(params.get("field", ""))
        params["field"] = _label(ctx.locale, field)
        params["reason"] = Msg(str(params.get("reason", "")))
        fields.add(_form_key(field))
    elif exc.code == "exam_window_invalid":
        fields.update(("formal_starts_at", "formal_ends_at"))
    elif exc.code == "exam_code_taken":
        fields.add("code")
    elif exc.code == "roster_invalid":
        reason = str(params.get("reason", ""))
        text = gettext(ctx.locale, FILE_REASONS.get(reason, reason))
        columns = params.get("columns") or []
        if columns:
            text += ": " + ", ".join(_label(ctx.locale, str(c)) for c in columns)
        params["reason"] = text
    elif exc.code == "invalid_request":
        for error in params.get("errors", []):
            fields.add(".".join(str(part) for part in error.get("loc", [])[1:]))
    message = render_message(
        ctx.locale, CATALOGUE[exc.code].message, params, ctx.settings.default_timezone
    )
    return {"error": message, "error_code": exc.code, "error_fields": fields}


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
        notice=gettext(ctx.locale, NOTICES["saved"]) if request.query_params.get("done") else None,
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
    return _form_page(request, school, forms.blank_form(), None)


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
        refusal = await _refusal(ctx, exc)
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
    return _form_page(request, school, forms.form_of(out, school.timezone), exam.id)


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
        refusal = await _refusal(ctx, exc)
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
    notice = gettext(ctx.locale, NOTICES[done]) if done in NOTICES else None
    if done == "committed" and import_id is not None:
        job = await roster.get_import(ctx, principal, exam_id, import_id, 1, 1)
        notice = render_message(
            ctx.locale,
            COMMITTED,
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
        refusal = await _refusal(ctx, exc)
        return await _roster_page(
            request, ctx, principal, exam_id, status_code=exc.status, **refusal
        )
    return RedirectResponse(
        f"/school/exams/{exam_id}/roster/imports/{previewed.id}", status_code=303
    )


def _row_reason(locale: str, reason: str, other_row: int | None) -> str:
    message = ROW_REASONS.get(reason)
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
            "column": _label(ctx.locale, error.column),
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
        refusal = await _refusal(ctx, exc)
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
        refusal = await _refusal(ctx, exc)
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
        refusal = await _refusal(ctx, exc)
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
