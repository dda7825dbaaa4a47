"""Support rules: the service-hours clock for what support must decide (other domains call
`due_at`), and candidates' tickets with general questions (SPEC §7)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

from sqlalchemy import func, select, update

from vexam.accounts import service as accounts
from vexam.config import Settings
from vexam.core import audit
from vexam.core.context import Ctx, Principal, Role
from vexam.core.errors import VexamError
from vexam.core.policy import current_policy
from vexam.support import schemas
from vexam.support.calendar import ServiceHours
from vexam.support.models import SupportTicket, SupportTicketMessage


def service_hours(settings: Settings, timezone: str | None = None) -> ServiceHours:
    """Support's configured working hours, in `timezone` (default: the platform's zone)."""
    return ServiceHours.parse(
        timezone or settings.default_timezone,
        settings.support_hours_start,
        settings.support_hours_end,
    )


def due_at(ctx: Ctx, submitted: datetime, timezone: str | None = None) -> datetime:
    """When support must have decided a request made at `submitted` (SLA in service time),
    by the platform policy in force (the operator's, else the settings')."""
    policy = current_policy(ctx.settings, ctx.extra)
    hours = ServiceHours.parse(
        timezone or ctx.settings.default_timezone,
        policy.support_hours_start,
        policy.support_hours_end,
    )
    return hours.due_at(submitted, timedelta(minutes=policy.support_sla_minutes))


def lateness(ctx: Ctx) -> Callable[[datetime], tuple[int, int, int]]:
    """`late(due_at)`: (days, hours, minutes) past `due_at` now, for "overdue by …" texts."""
    now = ctx.now()

    def late(due: datetime) -> tuple[int, int, int]:
        minutes = max(int((now - due).total_seconds() // 60), 0)
        hours, minute = divmod(minutes, 60)
        return (*divmod(hours, 24), minute)

    return late


# ------------------------------------------------------------------ tickets (general questions)
#
# A ticket is `open` while support owes an answer (due in service time from the message that
# opened or reopened it), `answered` while it is the candidate's turn (no due time), and
# `closed` for good. Candidates see only their own tickets (others' are `ticket_not_found`,
# never `forbidden`: an id reveals nothing); only support agents answer.

OPEN_TICKETS_MAX = 5  # questions one candidate may have waiting for an answer at once
QUEUE_MAX = 500  # rows one queue page shows, the earliest due first


def _overdue(ctx: Ctx, ticket: SupportTicket) -> bool:
    return ticket.state == "open" and ticket.due_at is not None and ticket.due_at < ctx.now()


def _ticket_out(ctx: Ctx, ticket: SupportTicket, phone: str | None = None) -> schemas.TicketOut:
    return schemas.TicketOut(
        id=ticket.id,
        topic=ticket.topic,
        subject=ticket.subject,
        state=ticket.state,
        created_at=ticket.created_at,
        updated_at=ticket.updated_at,
        due_at=ticket.due_at,
        overdue=_overdue(ctx, ticket),
        user_id=ticket.user_id,
        phone=phone,
    )


async def _detail(ctx: Ctx, ticket: SupportTicket, phone: str | None) -> schemas.TicketDetail:
    messages = (
        await ctx.session.execute(
            select(SupportTicketMessage)
            .where(SupportTicketMessage.ticket_id == ticket.id)
            .order_by(SupportTicketMessage.created_at, SupportTicketMessage.id)
        )
    ).scalars()
    return schemas.TicketDetail(
        **_ticket_out(ctx, ticket, phone).model_dump(),
        messages=[
            schemas.MessageOut(id=m.id, side=m.side, body=m.body, created_at=m.created_at)
            for m in messages
        ],
    )


async def _masked_phone(ctx: Ctx, user_id: int) -> str:
    return accounts.mask_phone((await accounts.get_user(ctx.session, user_id)).phone)


async def _visible_ticket(ctx: Ctx, principal: Principal, ticket_id: int) -> SupportTicket:
    """The ticket if `principal` may see it: its candidate, or any support agent."""
    if principal.role not in (Role.candidate, Role.support):
        raise VexamError("forbidden")
    ticket = await ctx.session.get(SupportTicket, ticket_id)
    if ticket is None or (principal.role is Role.candidate and ticket.user_id != principal.user_id):
        raise VexamError("ticket_not_found")
    return ticket


def _message(
    ticket: SupportTicket, principal: Principal, side: str, body: str, at: datetime
) -> SupportTicketMessage:
    return SupportTicketMessage(
        ticket_id=ticket.id, author_user_id=principal.user_id, side=side, body=body, created_at=at
    )


async def open_ticket(
    ctx: Ctx, principal: Principal, body: schemas.TicketIn
) -> schemas.TicketDetail:
    """A candidate asks a question: a ticket `open`, due in service time from now.

    `ticket_limit_reached` when `OPEN_TICKETS_MAX` of theirs already wait for an answer. The
    cap guards the queue against floods; two requests racing may both pass it, which is
    harmless, so it is a count and not a constraint.
    """
    if principal.role is not Role.candidate:
        raise VexamError("forbidden")
    waiting = await ctx.session.scalar(
        select(func.count())
        .select_from(SupportTicket)
        .where(SupportTicket.user_id == principal.user_id, SupportTicket.state == "open")
    )
    if (waiting or 0) >= OPEN_TICKETS_MAX:
        raise VexamError("ticket_limit_reached", limit=OPEN_TICKETS_MAX)
    now = ctx.now()
    ticket = SupportTicket(
        user_id=principal.user_id,
        topic=body.topic,
        subject=body.subject,
        state="open",
        due_at=due_at(ctx, now),
        created_at=now,
        updated_at=now,
    )
    ctx.session.add(ticket)
    await ctx.session.flush()
    ctx.session.add(_message(ticket, principal, "candidate", body.body, now))
    await ctx.session.flush()
    await audit.record(ctx, "ticket.opened", "support_ticket", ticket.id, topic=body.topic)
    return await _detail(ctx, ticket, None)


async def _transition(
    ctx: Ctx, ticket: SupportTicket, to: str, due: datetime | None, **closed: datetime
) -> None:
    """Move a not-closed ticket to `to` (a conditional update: `ticket_closed` once closed)."""
    done = await ctx.session.execute(
        update(SupportTicket)
        .where(SupportTicket.id == ticket.id, SupportTicket.state != "closed")
        .values(state=to, due_at=due, updated_at=ctx.now(), **closed)
        .execution_options(synchronize_session=False)
    )
    if done.rowcount != 1:  # type: ignore[attr-defined]
        raise VexamError("ticket_closed")
    await ctx.session.refresh(ticket)


async def add_message(
    ctx: Ctx, principal: Principal, ticket_id: int, body: schemas.MessageIn
) -> schemas.TicketDetail:
    """The candidate writes again: the ticket is `open`; if support had answered, it is due
    anew in service time from now (if it was still open, the earlier due time stands)."""
    if principal.role is not Role.candidate:
        raise VexamError("forbidden")
    ticket = await _visible_ticket(ctx, principal, ticket_id)
    now = ctx.now()
    due = ticket.due_at if ticket.state == "open" and ticket.due_at else due_at(ctx, now)
    reopened = ticket.state == "answered"
    await _transition(ctx, ticket, "open", due)
    ctx.session.add(_message(ticket, principal, "candidate", body.body, now))
    await ctx.session.flush()
    await audit.record(ctx, "ticket.message_added", "support_ticket", ticket.id, reopened=reopened)
    return await _detail(ctx, ticket, None)


async def answer(
    ctx: Ctx, agent: Principal, ticket_id: int, body: schemas.MessageIn
) -> schemas.TicketDetail:
    """A support agent answers: the ticket is `answered` and owes nothing until the
    candidate writes again; `ticket_closed` once closed."""
    if agent.role is not Role.support:
        raise VexamError("forbidden")
    ticket = await _visible_ticket(ctx, agent, ticket_id)
    late = _overdue(ctx, ticket)
    await _transition(ctx, ticket, "answered", None)
    ctx.session.add(_message(ticket, agent, "support", body.body, ctx.now()))
    await ctx.session.flush()
    await audit.record(ctx, "ticket.answered", "support_ticket", ticket.id, overdue=late)
    return await _detail(ctx, ticket, await _masked_phone(ctx, ticket.user_id))


async def close_ticket(ctx: Ctx, principal: Principal, ticket_id: int) -> schemas.TicketDetail:
    """Support (or the candidate, once helped) closes a ticket for good; `ticket_closed` if it
    already is."""
    ticket = await _visible_ticket(ctx, principal, ticket_id)
    now = ctx.now()
    await _transition(ctx, ticket, "closed", None, closed_at=now)
    await audit.record(ctx, "ticket.closed", "support_ticket", ticket.id)
    phone = await _masked_phone(ctx, ticket.user_id) if principal.role is Role.support else None
    return await _detail(ctx, ticket, phone)


async def ticket_detail(ctx: Ctx, principal: Principal, ticket_id: int) -> schemas.TicketDetail:
    """One ticket with its thread: the candidate's own, or any for support (who also see the
    candidate's masked phone)."""
    ticket = await _visible_ticket(ctx, principal, ticket_id)
    phone = await _masked_phone(ctx, ticket.user_id) if principal.role is Role.support else None
    return await _detail(ctx, ticket, phone)


async def my_tickets(ctx: Ctx, principal: Principal) -> list[schemas.TicketOut]:
    """The candidate's own tickets, the most recently changed first."""
    rows = await ctx.session.execute(
        select(SupportTicket)
        .where(SupportTicket.user_id == principal.user_id)
        .order_by(SupportTicket.updated_at.desc(), SupportTicket.id.desc())
        .limit(QUEUE_MAX)
    )
    return [_ticket_out(ctx, ticket) for ticket in rows.scalars()]


async def ticket_queue(ctx: Ctx, state: str = "open") -> list[schemas.TicketOut]:
    """Support's tickets in `state`: open ones the earliest due first (late ones flagged),
    the others the most recently changed first."""
    query = select(SupportTicket).where(SupportTicket.state == state)
    if state == "open":
        query = query.order_by(SupportTicket.due_at, SupportTicket.id)
    else:
        query = query.order_by(SupportTicket.updated_at.desc(), SupportTicket.id.desc())
    tickets = list((await ctx.session.execute(query.limit(QUEUE_MAX))).scalars())
    phones = {uid: await _masked_phone(ctx, uid) for uid in {t.user_id for t in tickets}}
    return [_ticket_out(ctx, ticket, phones[ticket.user_id]) for ticket in tickets]
