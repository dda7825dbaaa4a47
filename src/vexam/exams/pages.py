"""zh/en pages of a candidate's exams (SPEC §4, §5): find an exam, apply with the exam province,
confirm the matched roster data (确认考试), pay the fee; then, per exam, the formal window and
the upload deadline in the school's time zone (named), the attempts left per subject, and the
ways into the mock exam, the formal exam and the uploads.

Server-rendered forms with POST-redirect-GET: a refusal shows the form again with its
catalogue message (and what to do next); a success redirects, so a reload never re-posts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Annotated, Any

from fastapi import Form, Request, Response
from fastapi.responses import RedirectResponse

from vexam.core.auth import Candidate, ServiceCtx
from vexam.core.context import Ctx, Principal
from vexam.core.db import KeepChanges
from vexam.core.errors import CATALOGUE, VexamError
from vexam.core.i18n import N_, format_datetime, gettext, render_message
from vexam.core.web import Templates, make_router
from vexam.exams import enrollment, schemas, service, sitting_status
from vexam.exams.models import Exam
from vexam.exams.payments import SandboxProvider
from vexam.identity.idnumbers import PROVINCES

router = make_router(include_in_schema=False)

# Shown after a redirect (?notice=...): only these texts, never text from the address.
NOTICES = {
    "enrolled": N_("You are enrolled. Where the exam has a fee, pay it to open the mock exam."),
    "paid": N_("The fee is paid. You will not be charged again."),
}
# How many exams the search shows at once: a phone screen, not a directory.
SHOWN_RESULTS = 30
# Province-level names in English, for the English pages (the Chinese name is always shown).
PROVINCES_EN = {
    "11": "Beijing",
    "12": "Tianjin",
    "13": "Hebei",
    "14": "Shanxi",
    "15": "Inner Mongolia",
    "21": "Liaoning",
    "22": "Jilin",
    "23": "Heilongjiang",
    "31": "Shanghai",
    "32": "Jiangsu",
    "33": "Zhejiang",
    "34": "Anhui",
    "35": "Fujian",
    "36": "Jiangxi",
    "37": "Shandong",
    "41": "Henan",
    "42": "Hubei",
    "43": "Hunan",
    "44": "Guangdong",
    "45": "Guangxi",
    "46": "Hainan",
    "50": "Chongqing",
    "51": "Sichuan",
    "52": "Guizhou",
    "53": "Yunnan",
    "54": "Tibet",
    "61": "Shaanxi",
    "62": "Gansu",
    "63": "Qinghai",
    "64": "Ningxia",
    "65": "Xinjiang",
    "71": "Taiwan",
    "81": "Hong Kong",
    "82": "Macao",
}


@dataclass(frozen=True)
class ExamView:
    """One exam as the pages show it: names in the reader's language, times in the school's zone."""

    exam_id: int
    exam_name: str
    school_name: str
    starts: str
    ends: str
    fee: str | None  # None: no fee
    closed: bool
    timezone: str
    ended_at: datetime


@dataclass(frozen=True)
class SubjectView:
    """One subject of an enrolled exam: its attempts (left, where a formal sitting says so)."""

    name: str
    attempts_allowed: int
    attempts_left: int | None  # None: the formal exam has not been started
    max_minutes: int
    state: str | None  # the formal sitting's subject state, once started


@dataclass(frozen=True)
class ApplicationView:
    """An application with its exam and the payment time in the school's zone."""

    application: schemas.ApplicationOut
    exam: ExamView | None
    paid_at: str | None
    payment_state: str  # free | unpaid | pending | paid | refunded
    # What the exam-taking part of the page needs (enrolled and paid applications).
    window: str = "closed"  # not_open | open | closed, on the server's clock
    window_ends: str | None = None  # the candidate's own end (accommodations), once known
    upload_ends: str | None = None
    zone_name: str = ""
    subjects: list[SubjectView] = field(default_factory=list)
    uploads_waiting: int = 0
    upload_errors: int = 0
    formal_state: str | None = None  # the formal sitting's next step, once started
    can_take: bool = False  # enrolled, and paid where a fee applies


def money(cents: int) -> str:
    """An amount in yuan as shown on the pages, e.g. ¥180.00."""
    return f"¥{cents // 100}.{cents % 100:02d}"


def province_options(locale: str) -> list[tuple[str, str]]:
    """The 34 province-level divisions as (code, label) for the exam-province select."""
    options = []
    seen = set()
    for code, (_, official) in PROVINCES.items():
        # Taiwan has two ID-number codes (71, and 83 for residence permits): one entry.
        if official in seen:
            continue
        seen.add(official)
        english = PROVINCES_EN.get(code)
        label = f"{english} · {official}" if locale == "en" and english else official
        options.append((code, label))
    return options


def _exam_view(ctx: Ctx, entry: schemas.CatalogEntry) -> ExamView:
    english = ctx.locale == "en"
    return ExamView(
        exam_id=entry.exam_id,
        exam_name=(entry.exam_name_en if english and entry.exam_name_en else entry.exam_name),
        school_name=(
            entry.school_name_en if english and entry.school_name_en else entry.school_name
        ),
        starts=format_datetime(entry.formal_starts_at, entry.timezone, ctx.locale),
        ends=format_datetime(entry.formal_ends_at, entry.timezone, ctx.locale),
        fee=money(entry.fee_cents) if entry.fee_cents > 0 else None,
        closed=ctx.now() >= entry.formal_ends_at,
        timezone=entry.timezone,
        ended_at=entry.formal_ends_at,
    )


async def _exams(ctx: Ctx, query: str = "") -> list[ExamView]:
    return [_exam_view(ctx, entry) for entry in await enrollment.catalog(ctx, query[:100])]


async def _exam(ctx: Ctx, exam_id: int) -> ExamView:
    return _exam_view(ctx, await enrollment.catalog_entry(ctx, exam_id))


def _payment_state(application: schemas.ApplicationOut) -> str:
    if application.fee_cents <= 0:
        return "free"
    if application.payment is None:
        return "unpaid"
    return application.payment.status


def zone_name(ctx: Ctx, timezone: str) -> str:
    """The school's time zone as the pages name it (北京时间 for Asia/Shanghai in Chinese)."""
    if timezone == "Asia/Shanghai" and ctx.locale == "zh_CN":
        return "北京时间 (Asia/Shanghai)"
    return timezone


async def _taking(
    ctx: Ctx, view: ApplicationView, formal: schemas.SittingOut | None
) -> ApplicationView:
    """`view` with its windows, subjects and uploads, for an enrolled (and paid) exam."""
    exam_row = await ctx.session.get(Exam, view.application.exam_id)
    if view.exam is None or exam_row is None:
        return view
    zone = view.exam.timezone
    english = ctx.locale == "en"
    now = ctx.now()
    if formal is not None:
        window = "open" if formal.window == "always" else formal.window
        ends_at = formal.window_ends_at
        upload_ends_at = formal.upload_ends_at
        by_subject = {subject.subject_id: subject for subject in formal.subjects}
    else:
        starts_at, ends_at = exam_row.formal_starts_at, exam_row.formal_ends_at
        window = "not_open" if now < starts_at else "open" if now < ends_at else "closed"
        upload_ends_at = ends_at + timedelta(minutes=exam_row.upload_grace_minutes)
        by_subject = {}
    subjects = []
    for subject in await service.subjects_of(ctx, exam_row.id):
        status = by_subject.get(subject.id)
        name = subject.name_en if english and subject.name_en else subject.name
        subjects.append(
            SubjectView(
                name=name,
                attempts_allowed=status.attempts_allowed if status else subject.attempts,
                attempts_left=status.attempts_left if status else None,
                max_minutes=max(
                    1, -(-(status.max_seconds if status else subject.max_seconds) // 60)
                ),
                state=status.state if status else None,
            )
        )
    receipts = [s.submission for s in (formal.subjects if formal else []) if s.submission]
    waiting = [r for r in receipts if r.upload_state in ("pending", "receiving")]
    return ApplicationView(
        application=view.application,
        exam=view.exam,
        paid_at=view.paid_at,
        payment_state=view.payment_state,
        window=window,
        window_ends=format_datetime(ends_at, zone, ctx.locale),
        upload_ends=format_datetime(upload_ends_at, zone, ctx.locale),
        zone_name=zone_name(ctx, zone),
        subjects=subjects,
        uploads_waiting=len(waiting) if now < upload_ends_at else 0,
        upload_errors=sum(1 for r in receipts if r.upload_error),
        formal_state=formal.next_step if formal else None,
        can_take=True,
    )


async def _applications(
    ctx: Ctx, principal: Principal, *, taking: bool = False
) -> list[ApplicationView]:
    """The caller's applications; with `taking`, enrolled ones carry windows and attempts."""
    mine = await enrollment.my_applications(ctx, principal)
    entries = await enrollment.catalog(ctx, exam_ids=[item.exam_id for item in mine])
    by_id = {entry.exam_id: _exam_view(ctx, entry) for entry in entries}
    formal: dict[int, schemas.SittingOut] = {}
    if taking and any(item.status == "enrolled" for item in mine):
        for sitting in await sitting_status.my_sittings(ctx, principal):
            if sitting.mode == "formal":
                formal[sitting.exam_id] = sitting
    views = []
    for application in mine:
        exam = by_id.get(application.exam_id)
        paid = application.payment.paid_at if application.payment else None
        zone = exam.timezone if exam else ctx.settings.default_timezone
        view = ApplicationView(
            application=application,
            exam=exam,
            paid_at=format_datetime(paid, zone, ctx.locale) if paid else None,
            payment_state=_payment_state(application),
        )
        if taking and application.status == "enrolled" and view.payment_state in ("free", "paid"):
            view = await _taking(ctx, view, formal.get(application.exam_id))
        views.append(view)
    return views


def _render(request: Request, name: str, status_code: int = 200, **context: Any) -> Response:
    templates: Templates = request.app.state.templates
    return templates.render(request, f"exams/{name}", context, status_code=status_code)


def _message(ctx: Ctx, exc: VexamError, timezone: str | None = None) -> str:
    """The refusal's catalogue message, its times in `timezone` (the school's, where known)."""
    return render_message(
        ctx.locale,
        CATALOGUE[exc.code].message,
        exc.params,
        timezone or ctx.settings.default_timezone,
    )


async def _error_text(ctx: Ctx, exc: VexamError, timezone: str | None = None) -> str:
    """The refusal's message; the request's writes are undone unless meant to count."""
    if not isinstance(exc, KeepChanges):
        await ctx.session.rollback()
    return _message(ctx, exc, timezone)


async def _index(
    request: Request,
    ctx: Ctx,
    principal: Principal,
    query: str,
    status_code: int = 200,
    **context: Any,
) -> Response:
    applications = await _applications(ctx, principal, taking=True)
    found = await _exams(ctx, query)
    found.sort(key=lambda view: view.closed)  # exams still taking applications first
    return _render(
        request,
        "index.html",
        status_code,
        applications=applications,
        applied={view.application.exam_id: view.application.status for view in applications},
        results=found[:SHOWN_RESULTS],
        more_results=len(found) > SHOWN_RESULTS,
        query=query,
        sandbox=isinstance(enrollment.provider(ctx), SandboxProvider),
        **context,
    )


@router.get("/exams")
async def exams_page(
    request: Request, principal: Candidate, ctx: ServiceCtx, q: str = "", notice: str = ""
) -> Response:
    """My applications (roster data, fee, payment, mock exam) and the exam search."""
    shown = NOTICES.get(notice)
    return await _index(
        request, ctx, principal, q, notice=gettext(ctx.locale, shown) if shown else None
    )


def _apply_form(
    request: Request,
    ctx: Ctx,
    exam: ExamView,
    status_code: int = 200,
    **context: Any,
) -> Response:
    return _render(
        request,
        "apply.html",
        status_code,
        exam=exam,
        provinces=province_options(ctx.locale),
        **context,
    )


@router.get("/exams/{exam_id}/apply")
async def apply_page(
    request: Request, exam_id: int, principal: Candidate, ctx: ServiceCtx
) -> Response:
    """The application form: the exam province (高考省份); the platform matches the roster."""
    exam = await _exam(ctx, exam_id)
    if exam.closed:
        # Said before the candidate fills anything in; posting anyway answers the same.
        closed = VexamError("exam_closed", ended_at=exam.ended_at)
        return _apply_form(
            request,
            ctx,
            exam,
            error=_message(ctx, closed, exam.timezone),
            error_code=closed.code,
            province="",
        )
    return _apply_form(request, ctx, exam, province="")


@router.post("/exams/{exam_id}/apply")
async def apply_submit(
    request: Request,
    exam_id: int,
    principal: Candidate,
    ctx: ServiceCtx,
    province: Annotated[str, Form()] = "",
) -> Response:
    """Apply; matched → the confirmation page, refused → the form with what to do."""
    exam = await _exam(ctx, exam_id)
    try:
        await enrollment.apply(ctx, principal, exam_id, schemas.ApplyIn(province=province[:16]))
    except VexamError as exc:
        return _apply_form(
            request,
            ctx,
            exam,
            exc.status,
            error=await _error_text(ctx, exc, exam.timezone),
            error_code=exc.code,
            fields=exc.params.get("fields", []),
            province=province,
        )
    return RedirectResponse(f"/exams/{exam_id}/confirm", status_code=303)


async def _mine(ctx: Ctx, principal: Principal, exam_id: int) -> ApplicationView | None:
    await _exam(ctx, exam_id)  # exam_not_found for an unpublished or absent exam
    for view in await _applications(ctx, principal):
        if view.application.exam_id == exam_id:
            return view
    return None


@router.get("/exams/{exam_id}/confirm")
async def confirm_page(
    request: Request, exam_id: int, principal: Candidate, ctx: ServiceCtx
) -> Response:
    """The matched roster data with the 确认考试 button."""
    mine = await _mine(ctx, principal, exam_id)
    if mine is None:
        return RedirectResponse(f"/exams/{exam_id}/apply", status_code=303)
    if mine.application.status == "enrolled":
        return RedirectResponse(f"/exams#exam-{exam_id}", status_code=303)
    return _render(request, "confirm.html", view=mine)


@router.post("/exams/{exam_id}/confirm")
async def confirm_submit(
    request: Request, exam_id: int, principal: Candidate, ctx: ServiceCtx
) -> Response:
    """Confirm the matched data: enrolled (confirming twice changes nothing)."""
    try:
        await enrollment.confirm(ctx, principal, exam_id)
    except VexamError as exc:
        error = await _error_text(ctx, exc)
        return await _index(
            request, ctx, principal, "", exc.status, error=error, error_code=exc.code
        )
    return RedirectResponse(f"/exams?notice=enrolled#exam-{exam_id}", status_code=303)


@router.post("/exams/{exam_id}/pay")
async def pay_submit(
    request: Request, exam_id: int, principal: Candidate, ctx: ServiceCtx
) -> Response:
    """Pay the fee: the caller's one order for this exam, paid once (`already_paid` after).

    With the built-in sandbox gateway the payment happens here; a real gateway's checkout
    page takes over otherwise.
    """
    try:
        order = await enrollment.create_order(ctx, principal, exam_id)
        if not isinstance(enrollment.provider(ctx), SandboxProvider):
            if order.status == "paid":
                raise VexamError("already_paid")
            if order.pay_url:
                return RedirectResponse(order.pay_url, status_code=303)
        await enrollment.sandbox_pay(ctx, principal, order.id)
    except VexamError as exc:
        error = await _error_text(ctx, exc)
        return await _index(
            request, ctx, principal, "", exc.status, error=error, error_code=exc.code
        )
    return RedirectResponse(f"/exams?notice=paid#exam-{exam_id}", status_code=303)
