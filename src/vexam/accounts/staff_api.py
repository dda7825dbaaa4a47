"""JSON routes for managing staff accounts (operators; school admins for their reviewers)."""

from __future__ import annotations

from fastapi import status

from vexam.accounts import schemas, staff
from vexam.core.auth import CurrentPrincipal, ServiceCtx
from vexam.core.web import make_router

router = make_router(prefix="/api/v1", tags=["staff"])


@router.post("/staff", status_code=status.HTTP_201_CREATED)
async def create_staff(
    body: schemas.StaffIn, principal: CurrentPrincipal, ctx: ServiceCtx
) -> schemas.StaffOut:
    """Create a school admin, reviewer or support agent (`phone_registered` if taken)."""
    return await staff.create_staff(ctx, principal, body)


@router.get("/staff")
async def list_staff(
    principal: CurrentPrincipal, ctx: ServiceCtx, school_id: int | None = None
) -> list[schemas.StaffOut]:
    """Staff of one school, or the platform's support agents without `school_id`."""
    return await staff.list_staff(ctx, principal, school_id)


@router.put("/staff/{user_id}/active")
async def set_active(
    user_id: int, body: schemas.StaffActiveIn, principal: CurrentPrincipal, ctx: ServiceCtx
) -> schemas.StaffOut:
    """Deactivate (sessions stop at once) or reactivate a staff account."""
    return await staff.set_active(ctx, principal, user_id, body.active, body.reason)
