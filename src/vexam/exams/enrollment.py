"""Applying for an exam, paying its fee once, and when the mock exam opens (SPEC §4).

A certified candidate applies; the platform finds their roster row by the certified ID
number's blind index and checks name and exam province. The candidate confirms the matched
data and is enrolled. Where the exam has a fee there is one order per candidate and exam;
the provider's callback, however often and however concurrently delivered, charges once.
"""

from __future__ import annotations

import secrets
from collections.abc import Collection
from datetime import datetime

from sqlalchemy import or_, select, update
from sqlalchemy.exc import IntegrityError

from vexam.core import audit
from vexam.core.context import Ctx, Principal, Role
from vexam.core.db import LIKE_ESCAPE, contains_pattern
from vexam.core.errors import VexamError, field_invalid
from vexam.core.i18n import N_, Msg
from vexam.exams import schemas
from vexam.exams.models import Application, Exam, PaymentCallback, PaymentOrder
from vexam.exams.payments import PaidEvent, PaymentProvider, SandboxProvider
from vexam.identity import service as identity
from vexam.identity.idnumbers import normalise_province
from vexam.schools import roster as rosters
from vexam.schools import service as schools

CATALOG_LIMIT = 200
# How a mismatch is named to the candidate, by the fields that differ.
MISMATCH_TEXTS = {
    ("name",): Msg(N_("name")),
    ("province",): Msg(N_("exam province")),
    ("name", "province"): Msg(N_("name and exam province")),
}


def provider(ctx: Ctx) -> PaymentProvider:
    """The configured payment gateway."""
    found: PaymentProvider = ctx.extra["payment_provider"]
    return found


async def _published_exam(ctx: Ctx, exam_id: int) -> Exam:
    exam = await ctx.session.get(Exam, exam_id)
    if exam is None or not exam.published:
        raise VexamError("exam_not_found")
    return exam


async def catalog(
    ctx: Ctx, query: str = "", *, exam_ids: Collection[int] | None = None
) -> list[schemas.CatalogEntry]:
    """Published exams matching `query` in a school or exam name (zh or en), or the published
    exams among `exam_ids`; at most `CATALOG_LIMIT`, earliest window first."""
    statement = (
        select(Exam)
        .where(Exam.published.is_(True))
        .order_by(Exam.formal_starts_at, Exam.id)
        .limit(CATALOG_LIMIT)
    )
    needle = query.strip()
    if needle:
        pattern = contains_pattern(needle)
        statement = statement.where(
            or_(
                Exam.name.ilike(pattern, escape=LIKE_ESCAPE),
                Exam.name_en.ilike(pattern, escape=LIKE_ESCAPE),
                Exam.school_id.in_(await schools.school_ids_matching(ctx, pattern)),
            )
        )
    if exam_ids is not None:
        statement = statement.where(Exam.id.in_(list(exam_ids)))
    exams = list((await ctx.session.execute(statement)).scalars())
    by_id = await schools.schools_by_id(ctx, {exam.school_id for exam in exams})
    return [
        schemas.CatalogEntry(
            exam_id=exam.id,
            school_id=exam.school_id,
            school_name=by_id[exam.school_id].name,
            school_name_en=by_id[exam.school_id].name_en,
            exam_name=exam.name,
            exam_name_en=exam.name_en,
            formal_starts_at=exam.formal_starts_at,
            formal_ends_at=exam.formal_ends_at,
            fee_cents=exam.fee_cents,
            timezone=by_id[exam.school_id].timezone,
        )
        for exam in exams
    ]


async def catalog_entry(ctx: Ctx, exam_id: int) -> schemas.CatalogEntry:
    """One published exam as the catalog shows it; `exam_not_found` otherwise."""
    found = await catalog(ctx, exam_ids=[exam_id])
    if not found:
        raise VexamError("exam_not_found")
    return found[0]


async def _application(ctx: Ctx, user_id: int, exam_id: int) -> Application | None:
    found = await ctx.session.execute(
        select(Application).where(Application.user_id == user_id, Application.exam_id == exam_id)
    )
    return found.scalar_one_or_none()


async def apply(
    ctx: Ctx, principal: Principal, exam_id: int, body: schemas.ApplyIn
) -> schemas.ApplicationOut:
    """Match the certified identity against the exam's roster; the candidate then confirms.

    `not_in_roster` when no row has the certified ID number; `roster_mismatch` naming the
    fields (name, province) that differ, so the school can correct its row.
    """
    if principal.role is not Role.candidate:
        raise VexamError("forbidden")
    exam = await _published_exam(ctx, exam_id)
    if ctx.now() >= exam.formal_ends_at:
        raise VexamError("exam_closed", ended_at=exam.formal_ends_at)
    certified = await identity.identity_of(ctx, principal.user_id)
    if certified is None or certified.status != identity.Status.certified:
        raise VexamError("identity_not_certified")
    province = normalise_province(body.province)
    if province is None:
        raise field_invalid("province")
    row = await rosters.find_row(ctx, exam.id, certified.id_number_index)
    if row is None:
        raise VexamError("not_in_roster")
    fields = [
        name
        for name, mine, theirs in (
            ("name", certified.name, row.name),
            ("province", province, row.province),
        )
        if "".join(mine.split()) != "".join(theirs.split())
    ]
    if fields:
        raise VexamError(
            "roster_mismatch", fields=fields, fields_text=MISMATCH_TEXTS[tuple(fields)]
        )
    application = await _application(ctx, principal.user_id, exam.id)
    now = ctx.now()
    if application is None:
        application = Application(
            user_id=principal.user_id, exam_id=exam.id, status="matched", created_at=now
        )
        ctx.session.add(application)
    if application.status != "enrolled":
        application.roster_row_id = row.id
        application.name = row.name
        application.province = row.province
        application.candidate_number = row.candidate_number
        application.major = row.major
        application.updated_at = now
    try:
        async with ctx.session.begin_nested():
            await ctx.session.flush()
    except IntegrityError:
        # Applied twice at once from two devices: the other request's row stands.
        application = await _application(ctx, principal.user_id, exam.id)
        assert application is not None
    await audit.record(ctx, "application.matched", "application", application.id, exam_id=exam.id)
    return await application_out(ctx, application, exam)


async def confirm(ctx: Ctx, principal: Principal, exam_id: int) -> schemas.ApplicationOut:
    """Confirm the matched data (确认考试): the candidate is enrolled (idempotent)."""
    exam = await _published_exam(ctx, exam_id)
    application = await _application(ctx, principal.user_id, exam_id)
    if application is None:
        raise VexamError("not_in_roster")
    now = ctx.now()
    done = await ctx.session.execute(
        update(Application)
        .where(Application.id == application.id, Application.status == "matched")
        .values(status="enrolled", enrolled_at=now, updated_at=now)
        .execution_options(synchronize_session=False)
    )
    await ctx.session.refresh(application)
    if done.rowcount == 1:  # type: ignore[attr-defined]
        await audit.record(ctx, "application.enrolled", "application", application.id)
    return await application_out(ctx, application, exam)


async def _order(ctx: Ctx, user_id: int, exam_id: int) -> PaymentOrder | None:
    found = await ctx.session.execute(
        select(PaymentOrder).where(PaymentOrder.user_id == user_id, PaymentOrder.exam_id == exam_id)
    )
    return found.scalar_one_or_none()


def mock_state(exam: Exam, application: Application | None, order: PaymentOrder | None) -> str:
    """Why the mock exam is closed, or "open": not enrolled, payment_required, not offered."""
    if application is None or application.status != "enrolled":
        return "not_enrolled"
    if exam.fee_cents > 0 and (order is None or order.status != "paid"):
        return "payment_required"
    return "open" if exam.mock_enabled else "not_offered"


async def application_out(ctx: Ctx, application: Application, exam: Exam) -> schemas.ApplicationOut:
    """An application with its payment and whether the mock exam is open."""
    order = await _order(ctx, application.user_id, exam.id)
    return schemas.ApplicationOut(
        exam_id=exam.id,
        exam_name=exam.name,
        status=application.status,
        name=application.name,
        province=application.province,
        candidate_number=application.candidate_number,
        major=application.major,
        enrolled_at=application.enrolled_at,
        fee_cents=exam.fee_cents,
        payment=order_out(ctx, order) if order else None,
        mock=mock_state(exam, application, order),
        mock_limit=exam.mock_limit,
    )


async def my_applications(ctx: Ctx, principal: Principal) -> list[schemas.ApplicationOut]:
    """The caller's applications, newest first."""
    rows = await ctx.session.execute(
        select(Application, Exam)
        .join(Exam, Exam.id == Application.exam_id)
        .where(Application.user_id == principal.user_id)
        .order_by(Application.id.desc())
    )
    return [await application_out(ctx, app, exam) for app, exam in rows.all()]


async def ensure_mock_open(ctx: Ctx, user_id: int, exam_id: int) -> None:
    """Refuse the mock exam unless enrolled and paid (where a fee applies) and offered."""
    exam = await _published_exam(ctx, exam_id)
    state = mock_state(
        exam, await _application(ctx, user_id, exam_id), await _order(ctx, user_id, exam_id)
    )
    if state == "not_enrolled":
        raise VexamError("not_in_roster")
    if state == "payment_required":
        raise VexamError("payment_required", amount_cents=exam.fee_cents)
    if state == "not_offered":
        raise VexamError("exam_not_open")


# ------------------------------------------------------------------ payment


def order_out(ctx: Ctx, order: PaymentOrder) -> schemas.OrderOut:
    """An order and, while unpaid, where to pay it."""
    checkout = provider(ctx).checkout(order.id, order.amount_cents)
    return schemas.OrderOut(
        id=order.id,
        exam_id=order.exam_id,
        amount_cents=order.amount_cents,
        currency=order.currency,
        status=order.status,
        provider=order.provider,
        pay_url=checkout.pay_url if order.status == "pending" else None,
        paid_at=order.paid_at,
        refunded_at=order.refunded_at,
    )


async def create_order(ctx: Ctx, principal: Principal, exam_id: int) -> schemas.OrderOut:
    """The one order of the caller for this exam: created once, the same one afterwards."""
    exam = await _published_exam(ctx, exam_id)
    application = await _application(ctx, principal.user_id, exam_id)
    if application is None or application.status != "enrolled":
        raise VexamError("not_in_roster")
    if exam.fee_cents <= 0:
        raise VexamError("payment_not_required")
    existing = await _order(ctx, principal.user_id, exam_id)
    if existing is not None:
        return order_out(ctx, existing)
    now = ctx.now()
    order = PaymentOrder(
        user_id=principal.user_id,
        exam_id=exam_id,
        amount_cents=exam.fee_cents,
        currency="CNY",
        status="pending",
        provider=provider(ctx).name,
        created_at=now,
        updated_at=now,
    )
    try:
        async with ctx.session.begin_nested():
            ctx.session.add(order)
    except IntegrityError:
        # Created at the same moment by another request: the unique pair decides; use it.
        existing = await _order(ctx, principal.user_id, exam_id)
        assert existing is not None
        return order_out(ctx, existing)
    await audit.record(
        ctx, "payment.order_created", "payment_order", order.id, amount=order.amount_cents
    )
    return order_out(ctx, order)


async def handle_paid(ctx: Ctx, provider_name: str, event: PaidEvent) -> str:
    """Apply a verified callback once: "charged", "duplicate" (seen before) or "ignored"."""
    order = await ctx.session.get(PaymentOrder, event.order_id)
    if order is None:
        return "ignored"
    record = PaymentCallback(
        provider=provider_name,
        event_id=event.event_id,
        order_id=order.id,
        payload={"amount_cents": event.amount_cents, "trade_no": event.trade_no},
        outcome="received",
        created_at=ctx.now(),
    )
    try:
        async with ctx.session.begin_nested():
            ctx.session.add(record)
    except IntegrityError:
        return "duplicate"
    now = ctx.now()
    charged = await ctx.session.execute(
        update(PaymentOrder)
        .where(
            PaymentOrder.id == order.id,
            PaymentOrder.status == "pending",
            PaymentOrder.amount_cents == event.amount_cents,
        )
        .values(status="paid", paid_at=now, provider_trade_no=event.trade_no, updated_at=now)
        .execution_options(synchronize_session=False)
    )
    outcome = "charged" if charged.rowcount == 1 else "ignored"  # type: ignore[attr-defined]
    record.outcome = outcome
    await ctx.session.flush()
    await audit.record(
        ctx,
        f"payment.callback_{outcome}",
        "payment_order",
        order.id,
        actor_user_id=order.user_id,
        actor_role="payment_provider",
        event_id=event.event_id,
    )
    return outcome


async def sandbox_pay(ctx: Ctx, principal: Principal, order_id: int) -> schemas.OrderOut:
    """The sandbox gateway takes the candidate's 'payment' and calls back, as a real one would."""
    gateway = provider(ctx)
    order = await ctx.session.get(PaymentOrder, order_id)
    if order is None or order.user_id != principal.user_id:
        raise VexamError("not_found")
    if not isinstance(gateway, SandboxProvider) or order.provider != gateway.name:
        raise VexamError("not_found")
    if order.status == "paid":
        raise VexamError("already_paid")
    event = PaidEvent(
        event_id=f"sbx-{secrets.token_hex(8)}",
        order_id=order.id,
        amount_cents=order.amount_cents,
        trade_no=f"SBX{secrets.token_hex(6).upper()}",
    )
    body = gateway.callback_body(event)
    parsed = gateway.parse_callback({"x-sandbox-signature": gateway.sign(body)}, body)
    await handle_paid(ctx, gateway.name, parsed)
    await ctx.session.refresh(order)
    return order_out(ctx, order)


async def refund(ctx: Ctx, principal: Principal, order_id: int, reason: str) -> schemas.OrderOut:
    """Refund a paid order (operators only), with the reason in the audit log."""
    if principal.role is not Role.operator:
        raise VexamError("forbidden")
    order = await ctx.session.get(PaymentOrder, order_id)
    if order is None:
        raise VexamError("not_found")
    if order.status != "paid":
        raise VexamError("payment_not_refundable")
    now: datetime = ctx.now()
    # Claim the refund first: of two agents refunding at once, only one reaches the gateway,
    # and a gateway that refuses rolls the claim back.
    done = await ctx.session.execute(
        update(PaymentOrder)
        .where(PaymentOrder.id == order.id, PaymentOrder.status == "paid")
        .values(status="refunded", refunded_at=now, refund_reason=reason.strip(), updated_at=now)
        .execution_options(synchronize_session=False)
    )
    if done.rowcount != 1:  # type: ignore[attr-defined]
        raise VexamError("payment_not_refundable")
    await provider(ctx).refund(order.id, order.provider_trade_no or "", order.amount_cents)
    await ctx.session.refresh(order)
    await audit.record(ctx, "payment.refunded", "payment_order", order.id, reason=reason.strip())
    return order_out(ctx, order)
