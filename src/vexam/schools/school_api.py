"""JSON routes for schools: operators create and list them; staff read their own."""

from __future__ import annotations

from fastapi import status

from vexam.core.auth import CurrentPrincipal, Operator, ServiceCtx
from vexam.core.context import Role
from vexam.core.errors import VexamError
from vexam.core.web import make_router
from vexam.schools import schemas, service

router = make_router(prefix="/api/v1/schools", tags=["schools"])


@router.post("", status_code=status.HTTP_201_CREATED)
async def create_school(
    body: schemas.SchoolIn, principal: Operator, ctx: ServiceCtx
) -> schemas.SchoolOut:
    """Create a school (operators); its slug is unique and its time zone an IANA name."""
    school = await service.create_school(
        ctx, body.slug, body.name, name_en=body.name_en, timezone=body.timezone
    )
    return service.school_out(school)


@router.get("")
async def list_schools(principal: Operator, ctx: ServiceCtx) -> list[schemas.SchoolOut]:
    """Every school (operators)."""
    return [service.school_out(school) for school in await service.list_schools(ctx)]


@router.get("/{school_id}")
async def get_school(
    school_id: int, principal: CurrentPrincipal, ctx: ServiceCtx
) -> schemas.SchoolOut:
    """A school: operators see any, a school's staff their own."""
    if principal.role is not Role.operator and principal.school_id != school_id:
        raise VexamError("school_not_found")
    return service.school_out(await service.get_school(ctx, school_id))
