"""JSON routes for support agents: manual reviews, appeals, revocations (/api/v1/support)."""

from __future__ import annotations

from typing import Literal

from fastapi import Response, status

from vexam.core.auth import ServiceCtx, SupportAgent
from vexam.core.web import make_router
from vexam.identity import decisions, schemas

router = make_router(prefix="/api/v1/support", tags=["support"])
ReviewState = Literal["open", "approved", "rejected"]
AppealState = Literal["open", "upheld", "dismissed", "cancelled"]


@router.get("/reviews")
async def list_reviews(
    agent: SupportAgent, ctx: ServiceCtx, state: ReviewState = "open"
) -> list[schemas.SupportReviewOut]:
    """The manual-review queue, the earliest due first (`overdue` marks late ones)."""
    return await decisions.list_reviews(ctx, state)


@router.get("/reviews/{review_id}")
async def get_review(
    review_id: int, agent: SupportAgent, ctx: ServiceCtx
) -> schemas.SupportReviewDetail:
    """One review with the photos, OCR flags, face distances and the full ID number."""
    return await decisions.review_detail(ctx, review_id)


@router.post("/reviews/{review_id}/decision")
async def decide_review(
    review_id: int, body: schemas.DecisionIn, agent: SupportAgent, ctx: ServiceCtx
) -> schemas.SupportReviewOut:
    """Approve (certify) or reject, with a reason kept in the audit log."""
    return await decisions.decide_review(ctx, agent, review_id, body)


@router.get("/appeals")
async def list_appeals(
    agent: SupportAgent, ctx: ServiceCtx, state: AppealState = "open"
) -> list[schemas.SupportAppealOut]:
    """Appeals, the earliest due first, with the facts both sides gave."""
    return await decisions.list_appeals(ctx, state)


@router.post("/appeals/{appeal_id}/decision")
async def decide_appeal(
    appeal_id: int, body: schemas.AppealDecisionIn, agent: SupportAgent, ctx: ServiceCtx
) -> schemas.SupportAppealOut:
    """Uphold or dismiss; upholding with `revoke_holder` frees the number for the appellant."""
    return await decisions.decide_appeal(ctx, agent, appeal_id, body)


@router.post("/identities/{identity_id}/revoke", status_code=status.HTTP_204_NO_CONTENT)
async def revoke_identity(
    identity_id: int, body: schemas.RevokeIn, agent: SupportAgent, ctx: ServiceCtx
) -> Response:
    """Revoke a wrong certification (for example one made with a mistyped number)."""
    await decisions.revoke(ctx, agent, identity_id, body.reason)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
