"""zh/en pages of support tickets (SPEC §7): candidates ask, support answers.

- `/help/tickets` (candidates, phone-first): their tickets with state and due time, a form to
  ask a question; `/help/tickets/{id}` the thread, a reply form and "close".
- `/support/tickets` (support agents): the queue, open ones the earliest due first and late
  ones highlighted, filtered by state; `/support/tickets/{id}` the thread, answer and close.

Every form posts with the browser's CSRF token (checked by `core.auth`). A refused form is
shown again with the message and what was typed; a done one redirects (303) to its thread.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from fastapi import Form, Request, Response
from fastapi.responses import RedirectResponse
from pydantic import ValidationError

from vexam.core.auth import Candidate, ServiceCtx, SupportAgent
from vexam.core.context import Ctx, Principal, Role
from vexam.core.errors import CATALOGUE, VexamError
from vexam.core.i18n import N_, gettext, render_message
from vexam.core.policy import current_policy
from vexam.core.web import Templates, make_router
from vexam.support import labels, schemas, service
from vexam.support.models import BODY_MAX, SUBJECT_MAX

router = make_router(include_in_schema=False)
FormStr = Annotated[str, Form()]
QUEUE_STATES = ("open", "answered", "closed")
ANSWER_SENT = N_("Answer sent to ticket #{ticket}: it is now under “Answered”.")


def _render(request: Request, name: str, status_code: int = 200, **context: Any) -> Response:
    templates: Templates = request.app.state.templates
    # The hours in force: the operator's platform policy, else the settings'.
    policy = current_policy(request.app.state.settings, request.app.state.resources)
    values = {
        "hours_start": policy.support_hours_start,
        "hours_end": policy.support_hours_end,
        "state_labels": labels.TICKET_STATE_LABELS,
        "topic_labels": labels.TOPIC_LABELS,
        "subject_max": SUBJECT_MAX,
        "body_max": BODY_MAX,
        **context,
    }
    return templates.render(request, f"support/{name}", values, status_code=status_code)


async def _refusal(ctx: Ctx, exc: VexamError) -> dict[str, Any]:
    """The page context of a refusal: its message in the reader's language and its code."""
    await ctx.session.rollback()
    message = render_message(
        ctx.locale, CATALOGUE[exc.code].message, exc.params, ctx.settings.default_timezone
    )
    return {"error": message, "error_code": exc.code}


# ------------------------------------------------------------------------------ candidates


async def _my_list(
    request: Request, ctx: Ctx, who: Principal, status_code: int = 200, **extra: Any
) -> Response:
    tickets = await service.my_tickets(ctx, who)
    return _render(request, "tickets.html", status_code, tickets=tickets, **extra)


@router.get("/help/tickets")
async def my_tickets_page(request: Request, who: Candidate, ctx: ServiceCtx) -> Response:
    """The candidate's tickets (state, due time) and the form to ask a new question."""
    return await _my_list(request, ctx, who, typed={})


@router.post("/help/tickets")
async def open_ticket_form(
    request: Request,
    who: Candidate,
    ctx: ServiceCtx,
    subject: FormStr = "",
    body: FormStr = "",
    topic: FormStr = "other",
) -> Response:
    """Ask a question; its thread on success, the form again (with the reason) otherwise."""
    typed = {"subject": subject, "body": body, "topic": topic}
    try:
        ticket_in = schemas.TicketIn.model_validate(typed)
        ticket = await service.open_ticket(ctx, who, ticket_in)
    except ValidationError:
        return await _my_list(request, ctx, who, 422, typed=typed, form_invalid=True)
    except VexamError as exc:
        refusal = await _refusal(ctx, exc)
        return await _my_list(request, ctx, who, exc.status, typed=typed, **refusal)
    return RedirectResponse(f"/help/tickets/{ticket.id}", status_code=303)


async def _thread(
    request: Request, ctx: Ctx, who: Principal, ticket_id: int, status_code: int = 200, **extra: Any
) -> Response:
    """A ticket's page: the candidate's own (phone) or support's console view."""
    ticket = await service.ticket_detail(ctx, who, ticket_id)
    if who.role is Role.support:
        extra = {"late": service.lateness(ctx), **extra}
        return _render(request, "ticket_console.html", status_code, ticket=ticket, **extra)
    return _render(request, "ticket.html", status_code, ticket=ticket, **extra)


async def _write(
    request: Request,
    ctx: Ctx,
    who: Principal,
    ticket_id: int,
    body: str,
    done: str,
    add: Callable[[Ctx, Principal, int, schemas.MessageIn], Awaitable[object]],
) -> Response:
    """Post a message with `add` (reply or answer): 303 to `done`, else the thread again
    with what was typed and why it was refused."""
    try:
        await add(ctx, who, ticket_id, schemas.MessageIn.model_validate({"body": body}))
    except ValidationError:
        return await _thread(request, ctx, who, ticket_id, 422, typed=body, form_invalid=True)
    except VexamError as exc:
        refusal = await _refusal(ctx, exc)
        return await _thread(request, ctx, who, ticket_id, exc.status, typed=body, **refusal)
    return RedirectResponse(done, status_code=303)


async def _close(request: Request, ctx: Ctx, who: Principal, ticket_id: int, done: str) -> Response:
    """Close a ticket: 303 to `done`; an already closed one shows its thread with why."""
    try:
        await service.close_ticket(ctx, who, ticket_id)
    except VexamError as exc:
        if exc.code != "ticket_closed":
            raise
        refusal = await _refusal(ctx, exc)
        return await _thread(request, ctx, who, ticket_id, exc.status, **refusal)
    return RedirectResponse(done, status_code=303)


@router.get("/help/tickets/{ticket_id}")
async def my_ticket_page(
    request: Request, ticket_id: int, who: Candidate, ctx: ServiceCtx
) -> Response:
    """One of the candidate's tickets: the thread, a reply form and "close"."""
    return await _thread(request, ctx, who, ticket_id)


@router.post("/help/tickets/{ticket_id}/messages")
async def my_ticket_reply(
    request: Request, ticket_id: int, who: Candidate, ctx: ServiceCtx, body: FormStr = ""
) -> Response:
    """Write again in one's ticket (it waits for support again)."""
    done = f"/help/tickets/{ticket_id}"
    return await _write(request, ctx, who, ticket_id, body, done, service.add_message)


@router.post("/help/tickets/{ticket_id}/close")
async def my_ticket_close(
    request: Request, ticket_id: int, who: Candidate, ctx: ServiceCtx
) -> Response:
    """Close one's own ticket (the question is settled)."""
    return await _close(request, ctx, who, ticket_id, f"/help/tickets/{ticket_id}")


# ---------------------------------------------------------------------------------- support


@router.get("/support/tickets")
async def ticket_queue_page(
    request: Request,
    agent: SupportAgent,
    ctx: ServiceCtx,
    state: str = "open",
    answered: int | None = None,
) -> Response:
    """The tickets in `state`: open ones the earliest due first, late ones highlighted;
    `answered` (a ticket id) says that answer was sent and where the ticket went."""
    chosen = state if state in QUEUE_STATES else "open"
    rows = await service.ticket_queue(ctx, chosen)
    notice = (
        gettext(ctx.locale, ANSWER_SENT).format(ticket=answered) if answered is not None else None
    )
    return _render(
        request,
        "ticket_queue.html",
        notice=notice,
        rows=rows,
        state=chosen,
        states=QUEUE_STATES,
        late=service.lateness(ctx),
    )


@router.get("/support/tickets/{ticket_id}")
async def ticket_console_page(
    request: Request, ticket_id: int, agent: SupportAgent, ctx: ServiceCtx
) -> Response:
    """One ticket for support: the candidate (masked), the thread, answer and close."""
    return await _thread(request, ctx, agent, ticket_id)


@router.post("/support/tickets/{ticket_id}/answer")
async def ticket_answer(
    request: Request, ticket_id: int, agent: SupportAgent, ctx: ServiceCtx, body: FormStr = ""
) -> Response:
    """Answer from the console; back to the queue of open tickets, saying it was sent."""
    done = f"/support/tickets?answered={ticket_id}"
    return await _write(request, ctx, agent, ticket_id, body, done, service.answer)


@router.post("/support/tickets/{ticket_id}/close")
async def ticket_close(
    request: Request, ticket_id: int, agent: SupportAgent, ctx: ServiceCtx
) -> Response:
    """Close a ticket from the console."""
    return await _close(request, ctx, agent, ticket_id, f"/support/tickets/{ticket_id}")
