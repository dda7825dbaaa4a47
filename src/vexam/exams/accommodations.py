"""Accommodations (SPEC §4): what a school grants one candidate beyond the exam's settings.

A school admin grants extra attempts (added to every subject), extra recording seconds
(added to every subject's limit) and a later end of the formal window, always with a written
reason; every change is audited with the values before and after. Granting nothing removes
the accommodation. The exam engine asks `granted_to` what applies to a candidate, or reads
it in the statement it already runs (`with_granted`, `granted_from`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVarTuple

from sqlalchemy import Select, and_, column, delete, select, table

from vexam.core import audit
from vexam.core.context import Ctx, Principal
from vexam.core.errors import VexamError
from vexam.exams import schemas
from vexam.exams.models import Accommodation, Exam
from vexam.exams.service import MAX_ATTEMPTS, MAX_RECORDING_SECONDS, get_exam, setting_invalid
from vexam.schools import roster as rosters

MAX_WINDOW_EXTENSION = timedelta(days=30)
# Other domains' tables by name (their models are theirs): the account's certification and
# the roster rows, joined on the ID number's blind index as `granted_to` looks them up.
_IDENTITIES = table("identities", column("user_id"), column("id_number_index"))
_ROSTER_ROWS = table("roster_rows", column("id"), column("exam_id"), column("id_number_index"))
# What `with_granted` adds to a statement's columns, for `granted_from`.
GRANTED_COLUMNS = (
    Accommodation.extra_attempts,
    Accommodation.extra_seconds,
    Accommodation.window_ends_at,
)
_Ts = TypeVarTuple("_Ts")


@dataclass(frozen=True)
class Granted:
    """What applies to one candidate on top of the exam's settings (zero when nothing)."""

    extra_attempts: int = 0
    extra_seconds: int = 0
    window_ends_at: datetime | None = None

    def window_end(self, exam: Exam) -> datetime:
        """The end of this candidate's formal window."""
        if self.window_ends_at is not None and self.window_ends_at > exam.formal_ends_at:
            return self.window_ends_at
        return exam.formal_ends_at


def _invalid(field: str, reason: str) -> VexamError:
    return setting_invalid(f"accommodation.{field}", reason)


def _check(exam: Exam, body: schemas.AccommodationIn) -> str:
    reason = " ".join(body.reason.split())
    if len(reason) < 2:
        raise _invalid("reason", "a written reason")
    if not 0 <= body.extra_attempts <= MAX_ATTEMPTS:
        raise _invalid("extra_attempts", f"between 0 and {MAX_ATTEMPTS}")
    if not 0 <= body.extra_seconds <= MAX_RECORDING_SECONDS:
        raise _invalid("extra_seconds", f"between 0 and {MAX_RECORDING_SECONDS}")
    if body.window_ends_at is not None:
        if body.window_ends_at.tzinfo is None:
            raise _invalid("window_ends_at", "with a time zone, e.g. +08:00")
        if body.window_ends_at <= exam.formal_ends_at:
            raise _invalid("window_ends_at", "after the end of the formal window")
        if body.window_ends_at > exam.formal_ends_at + MAX_WINDOW_EXTENSION:
            raise _invalid("window_ends_at", "at most 30 days after the formal window")
    return reason


def _values(item: Accommodation | None) -> dict[str, Any]:
    if item is None:
        return {"extra_attempts": 0, "extra_seconds": 0, "window_ends_at": None}
    return {
        "extra_attempts": item.extra_attempts,
        "extra_seconds": item.extra_seconds,
        "window_ends_at": item.window_ends_at.isoformat() if item.window_ends_at else None,
    }


def accommodation_out(item: Accommodation, row: Any) -> schemas.AccommodationOut:
    """An accommodation with the roster row it belongs to (ID number masked)."""
    return schemas.AccommodationOut(
        roster_row_id=item.roster_row_id,
        name=row.name,
        id_number_masked=row.id_number_masked,
        candidate_number=row.candidate_number,
        extra_attempts=item.extra_attempts,
        extra_seconds=item.extra_seconds,
        window_ends_at=item.window_ends_at,
        reason=item.reason,
        updated_at=item.updated_at,
    )


async def _of_row(ctx: Ctx, row_id: int) -> Accommodation | None:
    found = await ctx.session.execute(
        select(Accommodation).where(Accommodation.roster_row_id == row_id)
    )
    return found.scalar_one_or_none()


async def grant(
    ctx: Ctx, principal: Principal, exam_id: int, row_id: int, body: schemas.AccommodationIn
) -> schemas.AccommodationOut | None:
    """Set what one roster row's candidate is granted (None when it is now nothing)."""
    exam = await get_exam(ctx, principal, exam_id)
    row = await rosters.get_row(ctx, principal, exam.id, row_id)
    reason = _check(exam, body)
    item = await _of_row(ctx, row.id)
    before = _values(item)
    now = ctx.now()
    nothing = not body.extra_attempts and not body.extra_seconds and body.window_ends_at is None
    if nothing:
        if item is not None:
            await ctx.session.execute(delete(Accommodation).where(Accommodation.id == item.id))
    else:
        if item is None:
            item = Accommodation(exam_id=exam.id, roster_row_id=row.id, created_at=now)
            ctx.session.add(item)
        item.extra_attempts = body.extra_attempts
        item.extra_seconds = body.extra_seconds
        item.window_ends_at = body.window_ends_at
        item.reason = reason
        item.granted_by = principal.user_id or None
        item.updated_at = now
        await ctx.session.flush()
    await audit.record(
        ctx,
        "accommodation.removed" if nothing else "accommodation.granted",
        "roster_row",
        row.id,
        exam_id=exam.id,
        before=before,
        after=_values(None if nothing else item),
        reason=reason,
    )
    return None if nothing or item is None else accommodation_out(item, row)


async def list_granted(
    ctx: Ctx, principal: Principal, exam_id: int
) -> list[schemas.AccommodationOut]:
    """Every accommodation of an exam the caller manages, newest change first."""
    exam = await get_exam(ctx, principal, exam_id)
    found = await ctx.session.execute(
        select(Accommodation)
        .where(Accommodation.exam_id == exam.id)
        .order_by(Accommodation.updated_at.desc(), Accommodation.id.desc())
    )
    out = []
    for item in found.scalars():
        row = await rosters.get_row(ctx, principal, exam.id, item.roster_row_id)
        out.append(accommodation_out(item, row))
    return out


def with_granted(statement: Select[*_Ts], user_id: Any, exam_id: Any) -> Select[*_Ts]:
    """`statement` outer-joined to the accommodation of the account `user_id` (a column) for
    the exam `exam_id` (a column): select `GRANTED_COLUMNS`, read them with `granted_from`.

    The same rows as `granted_to` after the account's certification: its ID number's blind
    index, the exam's roster row of it, that row's accommodation; at most one row each.
    """
    return (
        statement.outerjoin(_IDENTITIES, _IDENTITIES.c.user_id == user_id)
        .outerjoin(
            _ROSTER_ROWS,
            and_(
                _ROSTER_ROWS.c.exam_id == exam_id,
                _ROSTER_ROWS.c.id_number_index == _IDENTITIES.c.id_number_index,
            ),
        )
        .outerjoin(Accommodation, Accommodation.roster_row_id == _ROSTER_ROWS.c.id)
    )


def granted_from(
    extra_attempts: int | None, extra_seconds: int | None, window_ends_at: datetime | None
) -> Granted:
    """What `GRANTED_COLUMNS` read through `with_granted` grant (all None: nothing)."""
    return Granted(extra_attempts or 0, extra_seconds or 0, window_ends_at)


async def granted_to(ctx: Ctx, exam_id: int, id_number_index: str) -> Granted:
    """What the candidate with this ID number's blind index is granted for the exam."""
    row = await rosters.find_row(ctx, exam_id, id_number_index)
    item = await _of_row(ctx, row.id) if row is not None else None
    if item is None:
        return Granted()
    return Granted(item.extra_attempts, item.extra_seconds, item.window_ends_at)
