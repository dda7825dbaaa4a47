"""Payment orders as the operator console lists them for refunds (SPEC §4: refunds are an
operator action): newest payment first, a page at a time, narrowed by order number, by the
candidates an account search found, or by exam or school name."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, or_, select

from vexam.core.context import Ctx, Principal, Role
from vexam.core.db import LIKE_ESCAPE, contains_pattern
from vexam.core.errors import VexamError
from vexam.exams.models import Exam, PaymentOrder
from vexam.schools import service as schools

STATES = ("paid", "refunded", "pending")
MAX_PAGE_SIZE = 100


@dataclass(frozen=True)
class OrderRow:
    """One order of the list, with its exam and school for the operator to recognise it
    (their English names too, None when the school gave none)."""

    id: int
    user_id: int
    exam_id: int
    exam_code: str
    exam_name: str
    school_name: str
    amount_cents: int
    exam_name_en: str | None
    school_name_en: str | None
    status: str
    paid_at: datetime | None
    refunded_at: datetime | None


@dataclass(frozen=True)
class OrderPage:
    """A page of orders and how many match in all."""

    rows: list[OrderRow]
    total: int
    page: int
    size: int


async def list_orders(
    ctx: Ctx,
    principal: Principal,
    *,
    status: str = "paid",
    order_id: int | None = None,
    user_ids: Collection[int] | None = None,
    exam_text: str = "",
    page: int = 1,
    size: int = 50,
) -> OrderPage:
    """Orders in `status` (operators only), newest payment first: `order_id` alone, those of
    `user_ids` (an empty collection finds none), and/or those whose exam code or name or
    school name contains `exam_text`."""
    if principal.role is not Role.operator:
        raise VexamError("forbidden")
    page, size = max(page, 1), min(max(size, 1), MAX_PAGE_SIZE)
    where = select(PaymentOrder, Exam).join(Exam, Exam.id == PaymentOrder.exam_id)
    if status in STATES:
        where = where.where(PaymentOrder.status == status)
    if order_id is not None:
        where = where.where(PaymentOrder.id == order_id)
    if user_ids is not None:
        where = where.where(PaymentOrder.user_id.in_(list(user_ids)))
    needle = exam_text.strip()
    if needle:
        pattern = contains_pattern(needle)
        where = where.where(
            or_(
                Exam.code.ilike(pattern, escape=LIKE_ESCAPE),
                Exam.name.ilike(pattern, escape=LIKE_ESCAPE),
                Exam.name_en.ilike(pattern, escape=LIKE_ESCAPE),
                Exam.school_id.in_(await schools.school_ids_matching(ctx, pattern)),
            )
        )
    total = await ctx.session.scalar(select(func.count()).select_from(where.subquery())) or 0
    found = await ctx.session.execute(
        where.order_by(PaymentOrder.paid_at.desc(), PaymentOrder.id.desc())
        .limit(size)
        .offset((page - 1) * size)
    )
    pairs = [(row[0], row[1]) for row in found]
    named = await schools.schools_by_id(ctx, {exam.school_id for _, exam in pairs})
    rows = [
        OrderRow(
            id=order.id,
            user_id=order.user_id,
            exam_id=exam.id,
            exam_code=exam.code,
            exam_name=exam.name,
            school_name=named[exam.school_id].name if exam.school_id in named else "",
            amount_cents=order.amount_cents,
            exam_name_en=exam.name_en,
            school_name_en=named[exam.school_id].name_en if exam.school_id in named else None,
            status=order.status,
            paid_at=order.paid_at,
            refunded_at=order.refunded_at,
        )
        for order, exam in pairs
    ]
    return OrderPage(rows=rows, total=int(total), page=page, size=size)
