"""JSON routes for candidates (find, apply, confirm, pay) and payment callbacks."""

from __future__ import annotations

from fastapi import Request, status

from vexam.core.auth import Candidate, CurrentPrincipal, Operator, ServiceCtx
from vexam.core.errors import VexamError
from vexam.core.web import make_router, public
from vexam.exams import enrollment, schemas
from vexam.exams.payments import InvalidCallback

router = make_router(prefix="/api/v1", tags=["applications"])


@router.get("/exam-catalog")
async def exam_catalog(
    principal: CurrentPrincipal, ctx: ServiceCtx, q: str = ""
) -> list[schemas.CatalogEntry]:
    """Published exams, searched by school or exam name."""
    return await enrollment.catalog(ctx, q[:100])


@router.post("/exams/{exam_id}/application")
async def apply(
    exam_id: int, body: schemas.ApplyIn, principal: Candidate, ctx: ServiceCtx
) -> schemas.ApplicationOut:
    """Match your certified identity against the school's roster (`not_in_roster`,
    `roster_mismatch`); confirm the matched data next."""
    return await enrollment.apply(ctx, principal, exam_id, body)


@router.post("/exams/{exam_id}/application/confirm")
async def confirm(exam_id: int, principal: Candidate, ctx: ServiceCtx) -> schemas.ApplicationOut:
    """Confirm the matched data (确认考试): you are enrolled."""
    return await enrollment.confirm(ctx, principal, exam_id)


@router.get("/me/applications")
async def my_applications(principal: Candidate, ctx: ServiceCtx) -> list[schemas.ApplicationOut]:
    """Your applications with payment and mock-exam state."""
    return await enrollment.my_applications(ctx, principal)


@router.get("/exams/{exam_id}/mock", status_code=status.HTTP_204_NO_CONTENT)
async def mock_open(exam_id: int, principal: Candidate, ctx: ServiceCtx) -> None:
    """204 when your mock exam is open; `payment_required` or another reason otherwise."""
    await enrollment.ensure_mock_open(ctx, principal.user_id, exam_id)


@router.post("/exams/{exam_id}/payment-order")
async def payment_order(exam_id: int, principal: Candidate, ctx: ServiceCtx) -> schemas.OrderOut:
    """Your one order for this exam's fee (asking again returns the same order)."""
    return await enrollment.create_order(ctx, principal, exam_id)


@router.post("/payments/sandbox/orders/{order_id}/pay")
async def sandbox_pay(order_id: int, principal: Candidate, ctx: ServiceCtx) -> schemas.OrderOut:
    """Pay in the sandbox (local use and tests): the sandbox calls back as a gateway does."""
    return await enrollment.sandbox_pay(ctx, principal, order_id)


@router.post("/payments/callback/{provider_name}")
@public
async def payment_callback(provider_name: str, request: Request, ctx: ServiceCtx) -> dict[str, str]:
    """The gateway's server-to-server callback; its signature is checked before anything."""
    gateway = enrollment.provider(ctx)
    if provider_name != gateway.name:
        raise VexamError("not_found")
    body = await request.body()
    try:
        event = gateway.parse_callback(dict(request.headers), body[:65536])
    except InvalidCallback:
        raise VexamError("payment_callback_invalid") from None
    return {"result": await enrollment.handle_paid(ctx, gateway.name, event)}


@router.post("/payments/{order_id}/refund")
async def refund(
    order_id: int, body: schemas.RefundIn, principal: Operator, ctx: ServiceCtx
) -> schemas.OrderOut:
    """Refund a paid order (operators)."""
    return await enrollment.refund(ctx, principal, order_id, body.reason)
