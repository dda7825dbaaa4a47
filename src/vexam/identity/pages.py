"""zh/en pages: the candidate's certification status and support's review and appeal queues."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Form, Request, Response
from fastapi.responses import RedirectResponse

from vexam.core.auth import CurrentPrincipal, ServiceCtx, SupportAgent
from vexam.core.db import KeepChanges
from vexam.core.errors import CATALOGUE, VexamError
from vexam.core.i18n import N_, gettext, render_message
from vexam.core.web import Templates, make_router
from vexam.identity import decisions, labels, schemas, service
from vexam.identity.idnumbers import mask_id_number
from vexam.support import labels as support_labels
from vexam.support import service as support

router = make_router(include_in_schema=False)
FormStr = Annotated[str, Form()]


REVIEW_APPROVED = N_("Review #{review} approved: the candidate is certified (see “Approved”).")
REVIEW_REJECTED = N_("Review #{review} rejected (see “Rejected”).")


def _render(request: Request, name: str, status_code: int = 200, **context: Any) -> Response:
    templates: Templates = request.app.state.templates
    context = {**labels.CONSOLE_LABELS, "label": support_labels.label, **context}
    return templates.render(request, f"identity/{name}", context, status_code=status_code)


async def _error_text(ctx: Any, exc: VexamError) -> str:
    if not isinstance(exc, KeepChanges):
        await ctx.session.rollback()
    return render_message(
        ctx.locale, CATALOGUE[exc.code].message, exc.params, ctx.settings.default_timezone
    )


def _lateness(ctx: Any) -> Any:
    """`late(due_at)`: (days, hours, minutes) past the due time now, for "overdue by …"."""
    return support.lateness(ctx)


@router.get("/identity")
async def identity_page(request: Request, principal: CurrentPrincipal, ctx: ServiceCtx) -> Response:
    """Certify: photograph or type the card, the live face check, the review, appeals."""
    state = await service.status(ctx, principal)
    return _render(request, "status.html", state=state, timezone=ctx.settings.default_timezone)


@router.get("/support/reviews")
async def reviews_page(
    request: Request,
    agent: SupportAgent,
    ctx: ServiceCtx,
    state: str = "open",
    approved: int | None = None,
    rejected: int | None = None,
) -> Response:
    """The manual-review queue, the earliest due first; overdue ones highlighted.
    `approved` / `rejected` (a review id) say the decision just made and where it went."""
    chosen = state if state in ("open", "approved", "rejected") else "open"
    rows = await decisions.list_reviews(ctx, chosen)
    notice = None
    if approved is not None:
        notice = gettext(ctx.locale, REVIEW_APPROVED).format(review=approved)
    elif rejected is not None:
        notice = gettext(ctx.locale, REVIEW_REJECTED).format(review=rejected)
    return _render(
        request, "reviews.html", rows=rows, state=chosen, late=_lateness(ctx), notice=notice
    )


@router.get("/support/reviews/{review_id}")
async def review_page(
    request: Request, review_id: int, agent: SupportAgent, ctx: ServiceCtx
) -> Response:
    """One review: the card photo, the selfie, the stated details and the machine's facts."""
    review = await decisions.review_detail(ctx, review_id)
    return _render(request, "review.html", review=review, late=_lateness(ctx))


@router.post("/support/reviews/{review_id}/decision")
async def review_decision(
    request: Request,
    review_id: int,
    agent: SupportAgent,
    ctx: ServiceCtx,
    decision: FormStr,
    reason: Annotated[str, Form()] = "",
) -> Response:
    """Approve or reject from the review page."""
    try:
        body = schemas.DecisionIn.model_validate({"decision": decision, "reason": reason})
    except ValueError:
        review = await decisions.review_detail(ctx, review_id)
        return _render(
            request, "review.html", 422, review=review, reason_missing=True, late=_lateness(ctx)
        )
    try:
        await decisions.decide_review(ctx, agent, review_id, body)
    except VexamError as exc:
        message = await _error_text(ctx, exc)
        review = await decisions.review_detail(ctx, review_id)
        return _render(
            request,
            "review.html",
            exc.status,
            review=review,
            error=message,
            error_code=exc.code,
            late=_lateness(ctx),
        )
    done = "approved" if body.decision == "approve" else "rejected"
    return RedirectResponse(f"/support/reviews?{done}={review_id}", status_code=303)


@router.post("/support/reviews/{review_id}/revoke")
async def review_revoke(
    request: Request,
    review_id: int,
    agent: SupportAgent,
    ctx: ServiceCtx,
    reason: Annotated[str, Form()] = "",
) -> Response:
    """Revoke the certification this review made (a wrong approval), with a reason."""
    review = await decisions.review_detail(ctx, review_id)
    if len(reason.strip()) < 2:
        return _render(
            request, "review.html", 422, review=review, reason_missing=True, late=_lateness(ctx)
        )
    try:
        await decisions.revoke(ctx, agent, review.identity.identity_id, reason)
    except VexamError as exc:
        message = await _error_text(ctx, exc)
        review = await decisions.review_detail(ctx, review_id)
        return _render(
            request,
            "review.html",
            exc.status,
            review=review,
            error=message,
            error_code=exc.code,
            late=_lateness(ctx),
        )
    return RedirectResponse(f"/support/reviews/{review_id}", status_code=303)


@router.get("/support/appeals")
async def appeals_page(
    request: Request, agent: SupportAgent, ctx: ServiceCtx, state: str = "open"
) -> Response:
    """Appeals with both sides' facts, the earliest due first."""
    chosen = state if state in ("open", "upheld", "dismissed", "cancelled") else "open"
    rows = await decisions.list_appeals(ctx, chosen)
    return _render(
        request,
        "appeals.html",
        rows=rows,
        state=chosen,
        late=_lateness(ctx),
        mask_id=mask_id_number,
    )


@router.post("/support/appeals/{appeal_id}/decision")
async def appeal_decision(
    request: Request,
    appeal_id: int,
    agent: SupportAgent,
    ctx: ServiceCtx,
    decision: FormStr,
    reason: Annotated[str, Form()] = "",
    revoke_holder: Annotated[str, Form()] = "",
) -> Response:
    """Uphold or dismiss from the appeals page."""
    try:
        body = schemas.AppealDecisionIn.model_validate(
            {"decision": decision, "reason": reason, "revoke_holder": revoke_holder == "on"}
        )
        await decisions.decide_appeal(ctx, agent, appeal_id, body)
    except (ValueError, VexamError) as exc:
        error = await _error_text(ctx, exc) if isinstance(exc, VexamError) else None
        rows = await decisions.list_appeals(ctx, "open")
        return _render(
            request,
            "appeals.html",
            409 if error else 422,
            rows=rows,
            state="open",
            error=error,
            error_code=exc.code if isinstance(exc, VexamError) else None,
            reason_missing=error is None,
            late=_lateness(ctx),
            mask_id=mask_id_number,
        )
    return RedirectResponse("/support/appeals", status_code=303)
