"""JSON routes of support tickets (SPEC §7), under /api/v1/support.

Candidates (native apps) ask questions and follow their threads; support agents read the
queue, answer and close. Another candidate's ticket is `ticket_not_found`.
"""

from __future__ import annotations

from typing import Literal

from fastapi import status

from vexam.core.auth import Candidate, CurrentPrincipal, ServiceCtx, SupportAgent
from vexam.core.web import make_router
from vexam.support import schemas, service

router = make_router(prefix="/api/v1/support", tags=["support"])
QueueState = Literal["open", "answered", "closed"]


@router.get("/tickets")
async def list_my_tickets(principal: Candidate, ctx: ServiceCtx) -> list[schemas.TicketOut]:
    """Your tickets, the most recently changed first, each with its state and due time."""
    return await service.my_tickets(ctx, principal)


@router.post("/tickets", status_code=status.HTTP_201_CREATED)
async def open_ticket(
    body: schemas.TicketIn, principal: Candidate, ctx: ServiceCtx
) -> schemas.TicketDetail:
    """Ask support a question; `due_at` says by when support answers (in service hours).

    `ticket_limit_reached` (429) while too many of your questions wait for an answer.
    """
    return await service.open_ticket(ctx, principal, body)


@router.get("/tickets/{ticket_id}")
async def get_ticket(
    ticket_id: int, principal: CurrentPrincipal, ctx: ServiceCtx
) -> schemas.TicketDetail:
    """One ticket with its thread (yours, or any for support agents)."""
    return await service.ticket_detail(ctx, principal, ticket_id)


@router.post("/tickets/{ticket_id}/messages", status_code=status.HTTP_201_CREATED)
async def add_message(
    ticket_id: int, body: schemas.MessageIn, principal: Candidate, ctx: ServiceCtx
) -> schemas.TicketDetail:
    """Write again in your ticket: it waits for support again, with a new due time if support
    had answered; `ticket_closed` once it is closed."""
    return await service.add_message(ctx, principal, ticket_id, body)


@router.post("/tickets/{ticket_id}/close")
async def close_ticket(
    ticket_id: int, principal: CurrentPrincipal, ctx: ServiceCtx
) -> schemas.TicketDetail:
    """Close a ticket for good (your own, or any for support agents)."""
    return await service.close_ticket(ctx, principal, ticket_id)


@router.get("/ticket-queue")
async def ticket_queue(
    agent: SupportAgent, ctx: ServiceCtx, state: QueueState = "open"
) -> list[schemas.TicketOut]:
    """Support's tickets in `state`; open ones the earliest due first (`overdue` marks late
    ones)."""
    return await service.ticket_queue(ctx, state)


@router.post("/tickets/{ticket_id}/answer", status_code=status.HTTP_201_CREATED)
async def answer_ticket(
    ticket_id: int, body: schemas.MessageIn, agent: SupportAgent, ctx: ServiceCtx
) -> schemas.TicketDetail:
    """Answer a ticket (support agents): it is `answered` and owes nothing until the
    candidate writes again."""
    return await service.answer(ctx, agent, ticket_id, body)
