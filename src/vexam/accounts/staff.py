"""Staff accounts (SPEC §4): operators create school admins, reviewers, support agents and
other operators.

Operators manage every staff account (never deactivating their own). A school admin may add
and deactivate reviewers of their own school, nothing else. The first operator is made with
the CLI (`vexam user create --role operator`). A new account
gets the password its creator sets, or a random one nobody knows: the staff member then
chooses their own with "forgot password" and an SMS code to their phone, which also proves
the number is theirs.
"""

from __future__ import annotations

import secrets

from sqlalchemy import select

from vexam.accounts import schemas
from vexam.accounts.models import User
from vexam.accounts.phones import mask_phone, normalise_phone
from vexam.accounts.service import create_user
from vexam.core import audit
from vexam.core.context import Ctx, Principal, Role
from vexam.core.errors import VexamError, field_invalid
from vexam.schools import service as schools

SCHOOL_ROLES = (Role.school_admin, Role.reviewer)
STAFF_ROLES = (Role.school_admin, Role.reviewer, Role.support, Role.operator)


def _may_manage(principal: Principal, role: Role, school_id: int | None) -> bool:
    if principal.role is Role.operator:
        return role in STAFF_ROLES
    return (
        principal.role is Role.school_admin
        and role is Role.reviewer
        and school_id is not None
        and school_id == principal.school_id
    )


def staff_out(user: User) -> schemas.StaffOut:
    """A staff account as its managers see it (phone masked)."""
    return schemas.StaffOut(
        id=user.id,
        phone=mask_phone(user.phone),
        role=Role(user.role),
        school_id=user.school_id,
        display_name=user.display_name,
        is_active=user.is_active,
        created_at=user.created_at,
    )


async def create_staff(ctx: Ctx, principal: Principal, body: schemas.StaffIn) -> schemas.StaffOut:
    """Create a staff account; `forbidden` beyond the caller's reach.

    School admins and reviewers need a school; support agents and operators belong to none.
    """
    school_id = body.school_id if body.role in SCHOOL_ROLES else None
    if body.role in SCHOOL_ROLES and school_id is None:
        raise field_invalid("school_id", "missing")
    if not _may_manage(principal, body.role, school_id):
        raise VexamError("forbidden")
    if school_id is not None:
        await schools.get_school(ctx, school_id)
    phone = normalise_phone(body.phone)
    password = body.password or secrets.token_urlsafe(24)
    user = await create_user(
        ctx,
        phone,
        password,
        role=body.role,
        school_id=school_id,
        display_name=(body.display_name or "").strip() or None,
    )
    await audit.record(
        ctx, "staff.created", "user", user.id, role=body.role.value, school_id=school_id
    )
    return staff_out(user)


async def list_staff(
    ctx: Ctx, principal: Principal, school_id: int | None
) -> list[schemas.StaffOut]:
    """Staff of a school (operators: any school, or the platform's support agents and
    operators when `school_id` is None;
    school admins: their own school)."""
    if principal.role is Role.school_admin:
        if school_id != principal.school_id:
            raise VexamError("forbidden")
    elif principal.role is not Role.operator:
        raise VexamError("forbidden")
    query = select(User).where(User.role.in_([role.value for role in STAFF_ROLES]))
    if school_id is None:
        query = query.where(User.school_id.is_(None))
    else:
        await schools.get_school(ctx, school_id)
        query = query.where(User.school_id == school_id)
    rows = await ctx.session.execute(query.order_by(User.id))
    return [staff_out(user) for user in rows.scalars()]


async def set_active(
    ctx: Ctx, principal: Principal, user_id: int, active: bool, reason: str
) -> schemas.StaffOut:
    """Deactivate (every session stops working at once) or reactivate a staff account."""
    user = await ctx.session.get(User, user_id)
    if user is None or user.role not in [role.value for role in STAFF_ROLES]:
        raise VexamError("not_found")
    if not _may_manage(principal, Role(user.role), user.school_id) or user.id == principal.user_id:
        raise VexamError("forbidden")
    if user.is_active != active:
        user.is_active = active
        await ctx.session.flush()
        await audit.record(
            ctx,
            "staff.activated" if active else "staff.deactivated",
            "user",
            user.id,
            reason=reason.strip(),
        )
    return staff_out(user)
