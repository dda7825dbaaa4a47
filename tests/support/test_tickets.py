"""SPEC §7 support tickets: candidates ask general questions, support answers; every ticket
shows its state and due time (service hours 08:00-24:00, a 2-hour SLA: a message sent at
night is answered from 08:00). Candidates see only their own tickets; only support answers;
forms carry the CSRF token; every state change is audited; open questions are capped."""

from __future__ import annotations

import re
import secrets
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from sqlalchemy import select

from tests.helpers import app_ctx, bearer, staff
from tests.support.test_support_console import new_candidate
from vexam.core.audit import AuditEntry
from vexam.core.web import DEVICE_COOKIE, SESSION_COOKIE, csrf_token_for
from vexam.support.service import OPEN_TICKETS_MAX

pytestmark = pytest.mark.usefixtures("app")
SHANGHAI = ZoneInfo("Asia/Shanghai")
HTML = {"Accept": "text/html"}
EN = {**HTML, "Accept-Language": "en"}
TICKETS = "/api/v1/support/tickets"


def local(day: int, hour: int, minute: int = 0) -> datetime:
    """An instant in Shanghai on 2026-06-<day>."""
    return datetime(2026, 6, day, hour, minute, tzinfo=SHANGHAI)


def at(value: str | None) -> datetime | None:
    """A datetime of a JSON answer, in UTC."""
    return datetime.fromisoformat(value).astimezone(UTC) if value else None


async def ask(client: Any, who: dict[str, str], subject: str = "怎么改密码") -> dict[str, Any]:
    """Open a ticket through the API (201) and return it."""
    body = {"topic": "account", "subject": subject, "body": "我忘了密码，短信也收不到。"}
    response = await client.post(TICKETS, json=body, headers=who)
    assert response.status_code == 201, response.text
    ticket: dict[str, Any] = response.json()
    return ticket


async def actions(app: Any, ticket_id: int) -> list[tuple[str, str | None]]:
    """(action, actor role) of the audit entries about one ticket, oldest first."""
    async with app_ctx(app) as ctx:
        rows = await ctx.session.execute(
            select(AuditEntry.action, AuditEntry.actor_role)
            .where(
                AuditEntry.subject_type == "support_ticket",
                AuditEntry.subject_id == str(ticket_id),
            )
            .order_by(AuditEntry.id)
        )
        return [(action, role) for action, role in rows.all()]


def browser(app: Any, token: str) -> httpx.AsyncClient:
    """A browser signed in with `token`: session and device cookies, no bearer header."""
    transport = httpx.ASGITransport(app=app, client=("10.8.8.8", 40000))
    cookies = {DEVICE_COOKIE: f"browser-{secrets.token_hex(4)}", SESSION_COOKIE: token}
    return httpx.AsyncClient(
        transport=transport, base_url="http://testserver", cookies=cookies, headers=EN
    )


def csrf(app: Any, client: httpx.AsyncClient) -> str:
    """This browser's form token."""
    return csrf_token_for(app.state.settings.secret_key, client.cookies[DEVICE_COOKIE])


async def test_open_answer_reopen_close_with_due_times(client, inbox, new_phone, clock, app):
    """Asked at 10:00 it is due at 12:00; answered it owes nothing; a reply at 23:30 reopens it,
    due 09:30 the next morning; closed, it takes no more messages. All audited."""
    clock.set(local(1, 10))
    agent = bearer(await staff(app, client, new_phone(), "support"))
    who, _ = await new_candidate(client, inbox, new_phone())
    ticket = await ask(client, who)
    assert ticket["state"] == "open" and ticket["overdue"] is False
    assert at(ticket["due_at"]) == local(1, 12)
    assert [m["side"] for m in ticket["messages"]] == ["candidate"]

    clock.set(local(1, 11))
    answered = await client.post(
        f"/support/tickets/{ticket['id']}/answer",
        data={"body": "请在登录页点“忘记密码”。"},
        headers={**agent, **HTML},
    )
    assert answered.status_code == 303
    # The agent lands back on the queue, told the answer went out and where the ticket went.
    queue = await client.get(answered.headers["location"], headers={**agent, **HTML})
    assert re.search(rf'class="alert notice"[^>]*>[^<]*#{ticket["id"]}\D', queue.text)
    mine = (await client.get(f"{TICKETS}/{ticket['id']}", headers=who)).json()
    assert mine["state"] == "answered" and mine["due_at"] is None
    assert [m["side"] for m in mine["messages"]] == ["candidate", "support"]

    clock.set(local(1, 23, 30))  # 30 min of service left tonight, 90 min from 08:00
    again = await client.post(
        f"{TICKETS}/{ticket['id']}/messages", json={"body": "还是不行。"}, headers=who
    )
    assert again.status_code == 201, again.text
    assert again.json()["state"] == "open"
    assert at(again.json()["due_at"]) == local(2, 9, 30)
    listed = (await client.get(TICKETS, headers=who)).json()
    assert [(t["id"], t["state"]) for t in listed] == [(ticket["id"], "open")]

    closed = await client.post(f"{TICKETS}/{ticket['id']}/close", headers=agent)
    assert closed.status_code == 200 and closed.json()["state"] == "closed"
    assert closed.json()["due_at"] is None
    late = await client.post(
        f"{TICKETS}/{ticket['id']}/messages", json={"body": "再问"}, headers=who
    )
    assert late.status_code == 409 and late.json()["code"] == "ticket_closed"
    assert await actions(app, ticket["id"]) == [
        ("ticket.opened", "candidate"),
        ("ticket.answered", "support"),
        ("ticket.message_added", "candidate"),
        ("ticket.closed", "support"),
    ]


async def test_a_question_at_night_is_due_after_opening(client, inbox, new_phone, clock):
    """Sent at 03:00 (closed hours) it is due two hours after 08:00."""
    clock.set(local(3, 3))
    who, _ = await new_candidate(client, inbox, new_phone())
    ticket = await ask(client, who, "半夜的问题")
    assert at(ticket["due_at"]) == local(3, 10)


async def test_queue_by_due_time_with_overdue_flagged(client, inbox, new_phone, clock, app):
    """The earliest due first; a late one is highlighted and says by how long."""
    clock.set(local(4, 10))
    agent = bearer(await staff(app, client, new_phone(), "support"))
    first_who, _ = await new_candidate(client, inbox, new_phone())
    first = await ask(client, first_who, "第一个问题")
    clock.set(local(4, 10, 30))
    second_who, _ = await new_candidate(client, inbox, new_phone())
    second = await ask(client, second_who, "第二个问题")
    clock.set(local(4, 12, 10))  # the first is 10 min late, the second due at 12:30

    queue = (await client.get("/api/v1/support/ticket-queue", headers=agent)).json()
    flags = {t["id"]: t["overdue"] for t in queue}
    assert flags[first["id"]] is True and flags[second["id"]] is False
    ids = [t["id"] for t in queue]
    assert ids.index(first["id"]) < ids.index(second["id"])
    assert next(t for t in queue if t["id"] == first["id"])["phone"].count("*") == 4

    page = await client.get("/support/tickets", headers={**agent, **EN})
    assert page.status_code == 200
    marks = [page.text.index(f'data-ticket="{t["id"]}"') for t in (first, second)]
    assert marks[0] < marks[1]
    row = page.text[page.text.rindex("<li", 0, marks[0]) : page.text.index("</li>", marks[0])]
    assert 'data-overdue="1"' in row and "Overdue by 0 h 10 min" in row and "Account" in row
    other = page.text[marks[1] : page.text.index("</li>", marks[1])]
    assert "Overdue" not in other
    answered = await client.get("/support/tickets?state=answered", headers={**agent, **EN})
    assert f'data-ticket="{first["id"]}"' not in answered.text
    assert 'aria-current="page">Answered<' in answered.text  # a label, not the raw state


async def test_others_tickets_are_not_found_and_only_support_answers(client, inbox, new_phone, app):
    """Another candidate gets 404 on every route of a ticket; a candidate answering as support
    gets 403; staff other than support cannot read tickets."""
    owner, _ = await new_candidate(client, inbox, new_phone())
    ticket = await ask(client, owner)
    other, _ = await new_candidate(client, inbox, new_phone())
    url = f"{TICKETS}/{ticket['id']}"
    for response in (
        await client.get(url, headers=other),
        await client.post(f"{url}/messages", json={"body": "偷看"}, headers=other),
        await client.post(f"{url}/close", headers=other),
        await client.get(f"/help/tickets/{ticket['id']}", headers={**other, **HTML}),
    ):
        assert response.status_code == 404, response.text
        assert "怎么改密码" not in response.text
    assert (await client.get(url, headers=other)).json()["code"] == "ticket_not_found"
    assert (await client.get(TICKETS, headers=other)).json() == []
    nul = await client.post(TICKETS, json={"subject": "a\x00b", "body": "c\x00d"}, headers=other)
    assert nul.status_code == 422 and nul.json()["code"] == "invalid_request"  # never a 500

    as_support = await client.post(f"{url}/answer", json={"body": "我来答"}, headers=owner)
    assert as_support.status_code == 403 and as_support.json()["code"] == "forbidden"
    page = await client.post(
        f"/support/tickets/{ticket['id']}/answer", data={"body": "我来答"}, headers=owner
    )
    assert page.status_code == 403
    operator = bearer(await staff(app, client, new_phone(), "operator"))
    assert (await client.get(url, headers=operator)).status_code == 403
    assert (await client.get(TICKETS, headers=operator)).status_code == 403
    mine = (await client.get(url, headers=owner)).json()
    assert [m["side"] for m in mine["messages"]] == ["candidate"]


async def test_open_questions_are_capped(client, inbox, new_phone, app):
    """At most OPEN_TICKETS_MAX questions wait at once (429 ticket_limit_reached, API and
    page); once support answers one, another may be asked."""
    agent = bearer(await staff(app, client, new_phone(), "support"))
    who, _ = await new_candidate(client, inbox, new_phone())
    tickets = [await ask(client, who, f"问题 {n}") for n in range(OPEN_TICKETS_MAX)]
    body = {"topic": "other", "subject": "再一个", "body": "再一个问题"}
    refused = await client.post(TICKETS, json=body, headers=who)
    assert refused.status_code == 429 and refused.json()["code"] == "ticket_limit_reached"
    assert refused.json()["limit"] == OPEN_TICKETS_MAX
    form = await client.post("/help/tickets", data=body, headers={**who, **EN})
    assert form.status_code == 429 and 'data-code="ticket_limit_reached"' in form.text
    assert "再一个问题" in form.text  # what was typed is kept
    done = await client.post(
        f"{TICKETS}/{tickets[0]['id']}/answer", json={"body": "已处理"}, headers=agent
    )
    assert done.status_code == 201
    assert (await client.post(TICKETS, json=body, headers=who)).status_code == 201


async def test_pages_ask_answer_and_close_with_csrf(client, inbox, new_phone, clock, app):
    """Phone pages: the help centre links the tickets; a form without its token is refused
    (403 csrf_failed) and changes nothing; with it, the question is asked, answered on the
    console and closed; every form carries the token."""
    clock.set(local(5, 9))
    agent_token = await staff(app, client, new_phone(), "support")
    who, user_id = await new_candidate(client, inbox, new_phone())
    token = who["Authorization"].split(" ", 1)[1]
    async with browser(app, token) as phone, browser(app, agent_token) as desk:
        help_page = await phone.get("/help")
        assert 'href="/help/tickets"' in help_page.text
        empty = await phone.get("/help/tickets")
        assert empty.status_code == 200 and 'data-testid="tickets-none"' in empty.text
        assert f'name="csrf_token" value="{csrf(app, phone)}"' in empty.text
        form = {"topic": "upload", "subject": "上传一直失败", "body": "上传到 80% 就断了。"}
        refused = await phone.post("/help/tickets", data=form)
        assert refused.status_code == 403 and 'data-code="csrf_failed"' in refused.text
        assert (await phone.get(TICKETS)).json() == []
        blank = await phone.post(
            "/help/tickets", data={**form, "subject": " ", "csrf_token": csrf(app, phone)}
        )
        assert blank.status_code == 422 and 'data-code="invalid_request"' in blank.text
        sent = await phone.post("/help/tickets", data={**form, "csrf_token": csrf(app, phone)})
        assert sent.status_code == 303
        thread_url = sent.headers["location"]
        thread = await phone.get(thread_url)
        assert "上传到 80% 就断了。" in thread.text and "Waiting for support" in thread.text
        assert "Answer due by" in thread.text and 'data-state="open"' in thread.text
        assert thread.text.count(f'name="csrf_token" value="{csrf(app, phone)}"') == 2
        ticket_id = int(thread_url.rsplit("/", 1)[1])

        queue = await desk.get("/support/tickets")
        assert (
            'href="/support/tickets"' in queue.text and f'data-ticket="{ticket_id}"' in queue.text
        )
        console = await desk.get(f"/support/tickets/{ticket_id}")
        assert console.text.count(f'name="csrf_token" value="{csrf(app, desk)}"') == 2
        assert "Submitting and uploading" in console.text  # the topic's name, not its code
        no_token = await desk.post(f"/support/tickets/{ticket_id}/answer", data={"body": "换网络"})
        assert no_token.status_code == 403
        answer = {"body": "请换到 Wi-Fi 再试。", "csrf_token": csrf(app, desk)}
        answered = await desk.post(f"/support/tickets/{ticket_id}/answer", data=answer)
        assert answered.status_code == 303
        thread = await phone.get(thread_url)
        assert "请换到 Wi-Fi 再试。" in thread.text and 'data-state="answered"' in thread.text
        close = await phone.post(f"{thread_url}/close", data={"csrf_token": csrf(app, phone)})
        assert close.status_code == 303
        thread = await phone.get(thread_url)
        assert (
            'data-state="closed"' in thread.text and "<form" not in thread.text.split("<main>")[1]
        )
        trail = await desk.get(f"/support/audit?user_id={user_id}")
        assert 'data-action="ticket.answered"' in trail.text and "Ticket answered" in trail.text
        assert "<code>ticket.answered</code>" not in trail.text  # named, not a bare code
        again = await desk.post(
            f"/support/tickets/{ticket_id}/close", data={"csrf_token": csrf(app, desk)}
        )
        assert again.status_code == 409 and 'data-code="ticket_closed"' in again.text
    assert [a for a, _ in await actions(app, ticket_id)] == [
        "ticket.opened",
        "ticket.answered",
        "ticket.closed",
    ]
