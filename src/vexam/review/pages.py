"""zh/en pages of review (SPEC §6): the reviewer's queue and scoring page (/review), and the
review section of the school console (/school/exams/{id}/review).

Reviewer pages show an opaque code only, never who made the recording. Forms post back and
redirect (POST-redirect-GET); a refusal shows the page again with the catalogue message and
what the user typed kept.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Request, Response
from fastapi.responses import RedirectResponse
from starlette.datastructures import FormData

from vexam.core.auth import ServiceCtx, require_roles
from vexam.core.context import Ctx, Principal, Role
from vexam.core.db import KeepChanges
from vexam.core.errors import CATALOGUE, VexamError
from vexam.core.i18n import N_, Msg, gettext, render_message
from vexam.core.web import Templates, make_router, request_locale
from vexam.review import reviewing, rules, schemas, service, text

router = make_router(include_in_schema=False)
Reviewer = Annotated[Principal, Depends(require_roles(Role.reviewer))]
SchoolStaff = Annotated[Principal, Depends(require_roles(Role.school_admin, Role.operator))]
NOTICES = {
    "scored": N_("Your score is saved."),
    "saved": N_("Saved."),
    "published": N_("The results are published: scores are locked."),
    "removed": N_("The assignment is removed."),
}


def _render(request: Request, name: str, status_code: int = 200, **context: Any) -> Response:
    templates: Templates = request.app.state.templates
    context.setdefault("error", None)
    context.setdefault("error_code", None)
    context.update(
        state_labels=text.STATE_LABELS,
        event_labels=text.EVENT_LABELS,
        action_labels=text.ACTION_LABELS,
        flag_labels=text.FLAG_LABELS,
        setting_labels=text.SETTING_LABELS,
        aggregate_labels=rules.AGGREGATE_LABELS,
        seconds=_clock,
        label=_labeller(_locale(request)),
    )
    done = request.query_params.get("done", "")
    if done in NOTICES and "notice" not in context:
        context["notice"] = gettext(_locale(request), NOTICES[done])
    return templates.render(request, f"review/{name}", context, status_code=status_code)


def _locale(request: Request) -> str:
    return request_locale(request)


def _labeller(locale: str) -> Any:
    """`label(mapping, key)`: the translated label of a known key, else the key as it is
    (never passed through gettext, whose formatting a stray % would break)."""

    def label(mapping: dict[str, str], key: str) -> str:
        return gettext(locale, mapping[key]) if key in mapping else key

    return label


def _clock(value: float | None) -> str:
    """Seconds as m:ss (the player's notation)."""
    if value is None:
        return ""
    whole = int(value)
    return f"{whole // 60}:{whole % 60:02d}"


async def _refusal(ctx: Ctx, exc: VexamError) -> dict[str, Any]:
    """The refusal's message (its writes undone unless meant to count) for the page."""
    if not isinstance(exc, KeepChanges):
        await ctx.session.rollback()
    params = dict(exc.params)
    if exc.code == "review_setting_invalid":
        params["field"] = Msg(text.SETTING_LABELS.get(str(params.get("field")), "?"))
        params["reason"] = Msg(str(params.get("reason", "")))
    message = render_message(
        ctx.locale, CATALOGUE[exc.code].message, params, ctx.settings.default_timezone
    )
    return {"error": message, "error_code": exc.code}


# ------------------------------------------------------------------ reviewers


@router.get("/review")
async def queue_page(request: Request, principal: Reviewer, ctx: ServiceCtx) -> Response:
    """The reviewer's queue: submissions to score, then those they scored, by code."""
    entries = await reviewing.queue(ctx, principal)
    return _render(
        request,
        "queue.html",
        todo=[entry for entry in entries if not entry.scored_by_me],
        done=[entry for entry in entries if entry.scored_by_me],
    )


async def _item_page(
    request: Request,
    ctx: Ctx,
    principal: Principal,
    code: str,
    status_code: int = 200,
    **extra: Any,
) -> Response:
    item = await reviewing.item_detail(ctx, principal, code)
    playback_url: str | None = None
    playback_error: str | None = None
    try:
        playback_url = await reviewing.playback(ctx, principal, code)
    except VexamError as exc:
        playback_error = render_message(
            ctx.locale, CATALOGUE[exc.code].message, exc.params, ctx.settings.default_timezone
        )
    typed = extra.pop("typed", None)
    if typed is None and item.my_score:
        typed = {
            "points": [f"{value:g}" for value in item.my_score.points],
            "comment": item.my_score.comment,
        }
    return _render(
        request,
        "item.html",
        status_code,
        item=item,
        playback_url=playback_url,
        playback_error=playback_error,
        typed=typed or {"points": [], "comment": ""},
        **extra,
    )


@router.get("/review/items/{code}")
async def item_page(code: str, request: Request, principal: Reviewer, ctx: ServiceCtx) -> Response:
    """One submission: the video with its timeline of events and face flags, and the score
    form by the subject's rubric."""
    return await _item_page(request, ctx, principal, code)


def _typed_points(form: FormData, count: int) -> tuple[list[str], list[float] | None]:
    typed = [str(form.get(f"points-{index}") or "").strip() for index in range(count)]
    try:
        return typed, [float(value.replace(",", ".")) for value in typed]
    except ValueError:
        return typed, None


@router.post("/review/items/{code}")
async def item_submit(
    code: str, request: Request, principal: Reviewer, ctx: ServiceCtx
) -> Response:
    """Save the reviewer's score, or show the page again with the refusal."""
    item = await reviewing.item_detail(ctx, principal, code)
    form = await request.form()
    typed, points = _typed_points(form, len(item.rubric.criteria))
    comment = str(form.get("comment") or "")[:2000]
    try:
        if points is None:
            first_bad = next(i for i, value in enumerate(typed) if not _is_number(value))
            criterion = item.rubric.criteria[first_bad]
            raise VexamError(
                "score_invalid",
                criterion=criterion.name,
                max_points=f"{criterion.max_points:g}",
                step=f"{item.rubric.step:g}",
            )
        await reviewing.score(ctx, principal, code, schemas.ScoreIn(points=points, comment=comment))
    except VexamError as exc:
        refusal = await _refusal(ctx, exc)
        return await _item_page(
            request,
            ctx,
            principal,
            code,
            exc.status,
            typed={"points": typed, "comment": comment},
            **refusal,
        )
    return RedirectResponse(f"/review/items/{item.code}?done=scored", status_code=303)


def _is_number(value: str) -> bool:
    try:
        float(value.replace(",", "."))
    except ValueError:
        return False
    return True


# ------------------------------------------------------------------ the school console


async def _console(
    request: Request,
    ctx: Ctx,
    principal: Principal,
    exam_id: int,
    status_code: int = 200,
    **extra: Any,
) -> Response:
    exam = await service.managed_exam(ctx, principal, exam_id)
    progress = await service.progress(ctx, principal, exam_id)
    assignments = await service.list_assignments(ctx, principal, exam_id)
    reviewers = await service.reviewers_of(ctx, principal, exam_id)
    english = ctx.locale == "en"
    subject_names = {
        subject.subject_id: (subject.subject_name_en if english else None) or subject.subject_name
        for subject in progress.subjects
    }
    shares = {subject_id: 0 for subject_id in subject_names}
    for row in assignments:
        shares[row.subject_id] = shares.get(row.subject_id, 0) + row.share_percent
    wanted = progress.settings.reviewers_per_submission * 100
    # Shares are drawn per reviewer: below the reviewers needed, some submissions would wait.
    short = [(subject_names[key], total) for key, total in shares.items() if total < wanted]
    waiting = sum(1 for item in progress.items if item.state in ("open", "escalated"))
    return _render(
        request,
        "console.html",
        status_code,
        exam=exam,
        progress=progress,
        assignments=assignments,
        reviewers=reviewers,
        subject_names=subject_names,
        short=short,
        waiting=waiting,
        typed=extra.pop("typed", {}),
        **extra,
    )


@router.get("/school/exams/{exam_id}/review")
async def console_page(
    exam_id: int, request: Request, principal: SchoolStaff, ctx: ServiceCtx
) -> Response:
    """The exam's review: settings, assignments, progress, publish and export links."""
    return await _console(request, ctx, principal, exam_id)


def _int(form: FormData, name: str) -> int:
    value = str(form.get(name) or "").strip()
    if not value.lstrip("-").isdigit():
        raise service.setting_invalid(name, "a whole number")
    return int(value)


def _float(form: FormData, name: str) -> float:
    try:
        return float(str(form.get(name) or "").strip().replace(",", "."))
    except ValueError:
        raise service.setting_invalid(name, "a number") from None


def _back(exam_id: int, done: str, anchor: str) -> Response:
    return RedirectResponse(f"/school/exams/{exam_id}/review?done={done}#{anchor}", 303)


@router.post("/school/exams/{exam_id}/review/settings")
async def settings_submit(
    exam_id: int, request: Request, principal: SchoolStaff, ctx: ServiceCtx
) -> Response:
    """Save how scores combine and escalate."""
    form = await request.form()
    typed = {key: str(value) for key, value in form.items() if isinstance(value, str)}
    try:
        aggregate = str(form.get("aggregate") or "")
        if aggregate not in rules.AGGREGATES:
            raise service.setting_invalid("aggregate", "not one of the choices")
        body = schemas.SettingsIn(
            aggregate=aggregate,
            reviewers_per_submission=_int(form, "reviewers_per_submission"),
            escalation_threshold=_float(form, "escalation_threshold"),
            max_reviewers=_int(form, "max_reviewers"),
        )
        await service.update_settings(ctx, principal, exam_id, body)
    except VexamError as exc:
        refusal = await _refusal(ctx, exc)
        return await _console(
            request, ctx, principal, exam_id, exc.status, typed={"settings": typed}, **refusal
        )
    return _back(exam_id, "saved", "settings")


@router.post("/school/exams/{exam_id}/review/assignments")
async def assign_submit(
    exam_id: int, request: Request, principal: SchoolStaff, ctx: ServiceCtx
) -> Response:
    """Assign a reviewer to a subject (or change their share)."""
    form = await request.form()
    typed = {key: str(value) for key, value in form.items() if isinstance(value, str)}
    try:
        body = schemas.AssignmentIn(
            reviewer_id=_int(form, "reviewer_id"),
            subject_id=_int(form, "subject_id"),
            share_percent=_int(form, "share_percent"),
        )
        await service.assign(ctx, principal, exam_id, body)
    except VexamError as exc:
        refusal = await _refusal(ctx, exc)
        return await _console(
            request, ctx, principal, exam_id, exc.status, typed={"assign": typed}, **refusal
        )
    return _back(exam_id, "saved", "assignments")


@router.post("/school/exams/{exam_id}/review/assignments/{assignment_id}/delete")
async def unassign_submit(
    exam_id: int, assignment_id: int, principal: SchoolStaff, ctx: ServiceCtx
) -> Response:
    """Remove an assignment."""
    await service.unassign(ctx, principal, exam_id, assignment_id)
    return _back(exam_id, "removed", "assignments")


@router.post("/school/exams/{exam_id}/review/publish")
async def publish_submit(
    exam_id: int, request: Request, principal: SchoolStaff, ctx: ServiceCtx
) -> Response:
    """Publish the results (the form's confirmation box must be ticked)."""
    form = await request.form()
    if form.get("confirm") != "yes":
        return await _console(
            request,
            ctx,
            principal,
            exam_id,
            422,
            error=gettext(ctx.locale, N_("Tick the box to confirm publishing.")),
            error_code="confirm_required",
        )
    await service.publish(ctx, principal, exam_id)
    return _back(exam_id, "published", "publish")
