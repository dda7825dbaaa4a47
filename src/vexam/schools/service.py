"""School rules (creation by operators; the rest of SPEC §4 builds on this)."""

from __future__ import annotations

import re
from collections.abc import Collection
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import or_, select
from sqlalchemy.exc import IntegrityError

from vexam.core import audit
from vexam.core.context import Ctx
from vexam.core.db import LIKE_ESCAPE
from vexam.core.errors import VexamError, field_invalid
from vexam.schools import schemas
from vexam.schools.models import School

SLUG_RE = re.compile(r"^[a-z0-9][a-z0-9-]{1,62}$")


async def create_school(
    ctx: Ctx, slug: str, name: str, *, name_en: str | None = None, timezone: str = "Asia/Shanghai"
) -> School:
    """Create a school with a unique slug and a valid IANA time zone."""
    if not SLUG_RE.match(slug):
        raise field_invalid("slug")
    if not name.strip():
        raise field_invalid("name")
    try:
        ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise field_invalid("timezone") from None
    school = School(
        slug=slug, name=name.strip(), name_en=name_en, timezone=timezone, created_at=ctx.now()
    )
    try:
        async with ctx.session.begin_nested():
            ctx.session.add(school)
    except IntegrityError:
        raise field_invalid("slug") from None
    await audit.record(ctx, "school.created", "school", school.id, slug=slug)
    return school


async def get_school(ctx: Ctx, school_id: int) -> School:
    """The school with `school_id`; `school_not_found` otherwise."""
    school = await ctx.session.get(School, school_id)
    if school is None:
        raise VexamError("school_not_found")
    return school


async def school_by_slug(ctx: Ctx, slug: str) -> School | None:
    """The school with `slug`, if any."""
    return (
        await ctx.session.execute(select(School).where(School.slug == slug))
    ).scalar_one_or_none()


async def list_schools(ctx: Ctx) -> list[School]:
    """Every school, by name."""
    return list((await ctx.session.execute(select(School).order_by(School.name))).scalars())


def school_out(school: School) -> schemas.SchoolOut:
    """A school as the API shows it."""
    return schemas.SchoolOut(
        id=school.id,
        slug=school.slug,
        name=school.name,
        name_en=school.name_en,
        timezone=school.timezone,
        created_at=school.created_at,
    )


async def school_ids_matching(ctx: Ctx, pattern: str) -> list[int]:
    """Ids of schools whose name (zh or en) matches a `contains_pattern`."""
    found = await ctx.session.execute(
        select(School.id).where(
            or_(
                School.name.ilike(pattern, escape=LIKE_ESCAPE),
                School.name_en.ilike(pattern, escape=LIKE_ESCAPE),
            )
        )
    )
    return list(found.scalars())


async def schools_by_id(ctx: Ctx, school_ids: Collection[int]) -> dict[int, School]:
    """The schools with these ids, by id."""
    if not school_ids:
        return {}
    found = await ctx.session.execute(select(School).where(School.id.in_(list(school_ids))))
    return {school.id: school for school in found.scalars()}
