"""SPEC §4 pages: a candidate finds an exam, applies with the exam province, confirms the
matched roster data, pays once in the sandbox and sees the mock exam open (zh/en forms)."""

from __future__ import annotations

import re
import secrets
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from html import unescape
from typing import Any

import httpx
import pytest

from tests.exams.test_enrollment import add_roster_row, certified_candidate
from tests.exams.test_exam_setup import exam_body
from tests.helpers import app_ctx, bearer, register, staff
from vexam.core.errors import CATALOGUE
from vexam.core.i18n import Msg, render_message
from vexam.core.web import SESSION_COOKIE
from vexam.exams.models import Exam
from vexam.identity.idnumbers import PROVINCES
from vexam.schools import service as schools

pytestmark = pytest.mark.usefixtures("app")
# Every page carries the token (a form field, and the meta tag when it has no form).
CSRF_RE = re.compile(r'name="csrf[_-]token" (?:value|content)="([0-9a-f]{40})"')


class Phone:
    """A browser's side of the pages: its session and device cookies and the form token."""

    def __init__(self, app: Any, token: str, language: str = "zh-CN") -> None:
        ip = f"10.{secrets.randbelow(250)}.{secrets.randbelow(250)}.{secrets.randbelow(250) + 1}"
        self.http = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app, client=(ip, 40000)),
            base_url="http://testserver",
            headers={"Accept": "text/html", "Accept-Language": language},
            cookies={SESSION_COOKIE: token},
        )
        self.csrf = ""

    async def get(self, path: str, **params: str) -> httpx.Response:
        """Open a page and keep its form token, as the browser's next post carries it."""
        response = await self.http.get(path, params=params)
        found = CSRF_RE.search(response.text)
        if found:
            self.csrf = found.group(1)
        return response

    async def post(self, path: str, **form: str) -> httpx.Response:
        """Submit a form of the last page (with its CSRF token)."""
        return await self.http.post(path, data={"csrf_token": self.csrf, **form})


@pytest.fixture
async def phones(app: Any) -> AsyncIterator[Callable[..., Phone]]:
    """`phones(auth_header_or_token)`: a browser signed in as that account."""
    opened: list[Phone] = []

    def _open(who: dict[str, str] | str, language: str = "zh-CN") -> Phone:
        token = who if isinstance(who, str) else who["Authorization"].split()[1]
        phone = Phone(app, token, language)
        opened.append(phone)
        return phone

    yield _open
    for phone in opened:
        await phone.http.aclose()


async def make_school(app: Any, timezone: str = "Asia/Shanghai") -> int:
    async with app_ctx(app) as ctx:
        school = await schools.create_school(
            ctx, f"s-{secrets.token_hex(4)}", "音乐学院", name_en="Conservatory", timezone=timezone
        )
        return school.id


@pytest.fixture
async def world(app, client, new_phone) -> dict[str, Any]:
    """A school with a published paid exam (window in June 2026) and a support agent."""
    school_id = await make_school(app)
    admin = bearer(await staff(app, client, new_phone(), "school_admin", school_id))

    async def new_exam(**changes: Any) -> dict[str, Any]:
        body = exam_body(published=True, **changes)
        body["formal_starts_at"] = "2026-06-01T00:00:00+08:00"
        body["formal_ends_at"] = "2026-06-30T18:00:00+08:00"
        created = await client.post(f"/api/v1/schools/{school_id}/exams", json=body, headers=admin)
        assert created.status_code == 201, created.text
        exam: dict[str, Any] = created.json()
        return exam

    return {
        "school_id": school_id,
        "exam": await new_exam(fee_cents=18000),
        "new_exam": new_exam,
        "admin": admin,
        "agent": bearer(await staff(app, client, new_phone(), "support")),
    }


def text_of(page: httpx.Response, name: str) -> str:
    """The text of the element with data-testid=`name` (tags stripped, spaces collapsed)."""
    found = re.search(
        rf'data-testid="{re.escape(name)}"[^>]*>(.*?)</(dd|p|ul|section)>', page.text, re.S
    )
    assert found, f"no data-testid={name!r} in the page"
    return " ".join(unescape(re.sub(r"<[^>]+>", " ", found.group(1))).split())


def attribute(page: httpx.Response, name: str, attr: str) -> str:
    """The value of `attr` on the element with data-testid=`name`."""
    found = re.search(rf'<[^>]*data-testid="{re.escape(name)}"[^>]*>', page.text)
    assert found, f"no data-testid={name!r} in the page"
    value = re.search(rf'{attr}="([^"]*)"', found.group(0))
    assert value, f"no {attr} on {name!r}"
    return unescape(value.group(1))


def message(code: str, locale: str = "zh_CN", **params: Any) -> str:
    """The catalogue message of `code` as a page shows it."""
    return render_message(locale, CATALOGUE[code].message, params, "Asia/Shanghai")


def shown_error(page: httpx.Response) -> tuple[str, str]:
    """(code, message) of the refusal shown at the top of the page."""
    found = re.search(
        r'<p class="alert error" role="alert" data-code="([a-z_]+)">(.*?)</p>', page.text, re.S
    )
    assert found, "no refusal shown"
    return found.group(1), unescape(found.group(2))


async def test_apply_confirm_pay_through_the_pages(
    app, client, inbox, new_phone, world, phones
) -> None:
    """§4 by forms: search, apply with the exam province, confirm, pay once, mock exam open."""
    exam_id = world["exam"]["id"]
    who, number = await certified_candidate(client, inbox, new_phone, world["agent"])
    await add_roster_row(
        app, world["school_id"], exam_id, number, candidate_number="26110101000777"
    )
    phone = phones(who)

    home = await phone.get("/exams")
    assert home.status_code == 200 and 'lang="zh-CN"' in home.text
    assert 'data-testid="no-applications"' in home.text
    found = await phone.get("/exams", q="音乐")
    assert f'data-testid="result-{exam_id}"' in found.text
    assert f'href="/exams/{exam_id}/apply"' in found.text
    nothing = await phone.get("/exams", q="没有这个学校")
    assert 'data-testid="no-results"' in nothing.text

    form = await phone.get(f"/exams/{exam_id}/apply")
    assert form.status_code == 200
    assert (
        text_of(form, "exam-window") == "2026-06-01 00:00 (北京时间) – 2026-06-30 18:00 (北京时间)"
    )
    assert text_of(form, "fee") == "¥180.00"
    options = re.findall(r'<option value="(\d\d)"', form.text)
    assert len(options) == 34 and set(options) == set(PROVINCES) - {"83"}  # 83: Taiwan again

    applied = await phone.post(f"/exams/{exam_id}/apply", province="11")
    assert applied.status_code == 303 and applied.headers["location"] == f"/exams/{exam_id}/confirm"
    confirm = await phone.get(f"/exams/{exam_id}/confirm")
    assert attribute(confirm, "confirm-view", "data-status") == "matched"
    assert text_of(confirm, "roster-name") == "张三"
    assert text_of(confirm, "roster-province") == "北京"
    assert text_of(confirm, "candidate-number") == "26110101000777"
    assert text_of(confirm, "major") == "钢琴"
    listed = await phone.get("/exams")
    assert attribute(listed, f"application-{exam_id}", "data-status") == "matched"
    assert attribute(listed, "mock-state", "data-state") == "not_enrolled"

    enrolled = await phone.post(f"/exams/{exam_id}/confirm")
    assert enrolled.status_code == 303
    assert enrolled.headers["location"] == f"/exams?notice=enrolled#exam-{exam_id}"
    listed = await phone.get("/exams", notice="enrolled")
    assert 'class="alert notice"' in listed.text
    assert attribute(listed, f"application-{exam_id}", "data-status") == "enrolled"
    assert attribute(listed, "payment-state", "data-state") == "unpaid"
    assert attribute(listed, "mock-state", "data-state") == "payment_required"
    assert 'data-testid="pay"' in listed.text
    # Confirmed: the confirmation page now leads back to the list.
    again = await phone.get(f"/exams/{exam_id}/confirm")
    assert again.status_code == 303 and again.headers["location"] == f"/exams#exam-{exam_id}"

    paid = await phone.post(f"/exams/{exam_id}/pay")
    assert (
        paid.status_code == 303 and paid.headers["location"] == f"/exams?notice=paid#exam-{exam_id}"
    )
    listed = await phone.get("/exams")
    assert attribute(listed, "payment-state", "data-state") == "paid"
    assert "(北京时间)" in text_of(listed, "payment-state")
    assert attribute(listed, "mock-state", "data-state") == "open"
    assert 'data-testid="pay"' not in listed.text

    twice = await phone.post(f"/exams/{exam_id}/pay")
    assert twice.status_code == 409
    assert shown_error(twice) == ("already_paid", message("already_paid"))
    mine = (await client.get("/api/v1/me/applications", headers=who)).json()
    assert mine[0]["payment"]["status"] == "paid" and mine[0]["mock"] == "open"

    # The account's language wins over the browser's; switch it as the language link does.
    await phone.get("/lang/en", next="/exams")
    english = await phone.get("/exams")
    assert 'lang="en"' in english.text and "Piano performance" in english.text
    assert text_of(english, "school-name") == "Conservatory"


async def test_each_refusal_is_shown_with_what_to_do(
    app, client, inbox, new_phone, world, phones, clock
) -> None:
    """§4 refusals on the form: identity_not_certified, not_in_roster, roster_mismatch naming
    the fields, an unchosen province, exam_closed."""
    exam_id = world["exam"]["id"]
    stranger = phones(bearer((await register(client, inbox, new_phone()))["token"]))
    await stranger.get(f"/exams/{exam_id}/apply")
    refused = await stranger.post(f"/exams/{exam_id}/apply", province="11")
    assert refused.status_code == 403
    assert shown_error(refused) == ("identity_not_certified", message("identity_not_certified"))
    assert 'href="/identity" data-testid="identity-link"' in refused.text

    who, number = await certified_candidate(client, inbox, new_phone, world["agent"])
    phone = phones(who)
    await phone.get(f"/exams/{exam_id}/apply")
    missing = await phone.post(f"/exams/{exam_id}/apply", province="11")
    assert missing.status_code == 404
    assert shown_error(missing) == ("not_in_roster", message("not_in_roster"))

    await add_roster_row(app, world["school_id"], exam_id, number, province="河北")
    mismatch = await phone.post(f"/exams/{exam_id}/apply", province="11")
    assert mismatch.status_code == 409
    code, text = shown_error(mismatch)
    assert code == "roster_mismatch"
    assert text == message("roster_mismatch", fields_text=Msg("exam province"))
    assert attribute(mismatch, "mismatch-fields", "data-fields") == "province"
    # What the candidate chose stays chosen, to correct it.
    assert '<option value="11" selected>' in mismatch.text
    unchosen = await phone.post(f"/exams/{exam_id}/apply", province="")
    assert unchosen.status_code == 422 and shown_error(unchosen)[0] == "invalid_request"
    assert 'class="doubtful"' in unchosen.text
    right = await phone.post(f"/exams/{exam_id}/apply", province="13")
    assert right.status_code == 303
    # Nothing was written by the refusals: one application, matched with the roster's data.
    mine = (await client.get("/api/v1/me/applications", headers=who)).json()
    assert [(a["status"], a["province"]) for a in mine] == [("matched", "河北")]

    late, late_number = await certified_candidate(client, inbox, new_phone, world["agent"])
    await add_roster_row(app, world["school_id"], exam_id, late_number)
    clock.advance(timedelta(days=29, hours=9))  # past the end, still signed in
    latecomer = phones(late)
    closed_form = await latecomer.get(f"/exams/{exam_id}/apply")
    ended = "2026-06-30 18:00 (北京时间)"
    assert shown_error(closed_form)[0] == "exam_closed" and ended in shown_error(closed_form)[1]
    assert 'data-testid="apply-form"' not in closed_form.text
    closed = await latecomer.post(f"/exams/{exam_id}/apply", province="11")
    assert closed.status_code == 409
    assert shown_error(closed)[0] == "exam_closed" and ended in shown_error(closed)[1]
    # Searched by a name of its own: the list shows open exams first, and other tests' exams
    # may fill it.
    async with app_ctx(app) as ctx:
        exam = await ctx.session.get(Exam, exam_id)
        assert exam is not None
        exam.name_en = f"Piano performance {exam.code}"
    listed = await latecomer.get("/exams", q=f"Piano performance {exam.code}")
    assert listed.url.params["q"] == f"Piano performance {exam.code}"
    assert listed.text.count('data-testid="result-') == 1  # only this exam matches
    result = listed.text.split(f'data-testid="result-{exam_id}"')[1].split("</li>")[0]
    assert 'data-testid="closed"' in result and 'data-testid="apply-link"' not in result


async def test_window_in_the_school_time_zone_and_a_free_exam(
    app, client, inbox, new_phone, phones
) -> None:
    """§4: the exam window is shown in the school's zone; a free exam opens the mock exam at
    once, and one without a mock exam says so."""
    school_id = await make_school(app, timezone="Europe/London")
    admin = bearer(await staff(app, client, new_phone(), "school_admin", school_id))
    agent = bearer(await staff(app, client, new_phone(), "support"))
    ids = []
    for mock_enabled in (True, False):
        body = exam_body(published=True, fee_cents=0, mock_enabled=mock_enabled, mock_limit=3)
        body["formal_starts_at"] = "2026-06-01T00:00:00+08:00"
        body["formal_ends_at"] = "2026-06-30T18:00:00+08:00"
        created = await client.post(f"/api/v1/schools/{school_id}/exams", json=body, headers=admin)
        ids.append(created.json()["id"])
    who, number = await certified_candidate(client, inbox, new_phone, agent)
    phone = phones(who)
    for exam_id in ids:
        await add_roster_row(app, school_id, exam_id, number)
        form = await phone.get(f"/exams/{exam_id}/apply")
        assert text_of(form, "exam-window") == (
            "2026-05-31 17:00 (Europe/London) – 2026-06-30 11:00 (Europe/London)"
        )
        assert (await phone.post(f"/exams/{exam_id}/apply", province="北京市")).status_code == 303
        await phone.get(f"/exams/{exam_id}/confirm")
        assert (await phone.post(f"/exams/{exam_id}/confirm")).status_code == 303
    listed = await phone.get("/exams")
    cards = {
        exam_id: listed.text.split(f'data-testid="application-{exam_id}"')[1].split("</section>")[0]
        for exam_id in ids
    }
    assert 'data-testid="payment-state" data-state="free"' in cards[ids[0]]
    assert 'data-testid="mock-state" data-state="open"' in cards[ids[0]]
    limit = cards[ids[0]].split('data-testid="mock-state"')[1].split("</dd>")[0]
    assert re.search(r"(?<!\d)3(?!\d)", limit), limit  # at most 3 mock runs
    assert 'data-testid="mock-state" data-state="not_offered"' in cards[ids[1]]
    assert 'data-testid="pay"' not in listed.text
    free = await phone.post(f"/exams/{ids[0]}/pay")
    assert shown_error(free) == ("payment_not_required", message("payment_not_required"))


async def test_staff_get_no_candidate_page(app, client, new_phone, world, phones) -> None:
    """§4: a school admin or a support agent has no candidate exam pages (`forbidden`)."""
    exam_id = world["exam"]["id"]
    for who in (world["admin"], world["agent"]):
        phone = phones(who)
        page = await phone.get("/exams")
        assert page.status_code == 403 and 'data-code="forbidden"' in page.text
        await phone.get("/")  # the account home carries the form token
        for path in ("apply", "confirm", "pay"):
            refused = await phone.post(f"/exams/{exam_id}/{path}", province="11")
            assert refused.status_code == 403 and 'data-code="forbidden"' in refused.text
    anonymous = await client.get("/exams", headers={"Accept": "text/html"})
    assert anonymous.status_code == 401


async def test_a_candidate_cannot_see_or_pay_another_s_order(
    app, client, inbox, new_phone, world, phones
) -> None:
    """§4: the pages show and pay only the caller's own application and order."""
    exam_id = world["exam"]["id"]
    first, first_number = await certified_candidate(client, inbox, new_phone, world["agent"])
    await add_roster_row(
        app, world["school_id"], exam_id, first_number, candidate_number="26110101000001"
    )
    await client.post(
        f"/api/v1/exams/{exam_id}/application", json={"province": "11"}, headers=first
    )
    await client.post(f"/api/v1/exams/{exam_id}/application/confirm", headers=first)
    order = (await client.post(f"/api/v1/exams/{exam_id}/payment-order", headers=first)).json()

    other, _ = await certified_candidate(client, inbox, new_phone, world["agent"], name="李四")
    phone = phones(other)
    page = await phone.get("/exams")
    assert "26110101000001" not in page.text and "张三" not in page.text
    assert f'data-testid="application-{exam_id}"' not in page.text
    refused = await phone.post(f"/exams/{exam_id}/pay")
    assert refused.status_code == 404 and shown_error(refused)[0] == "not_in_roster"
    # The sandbox refuses another's order by its id, too.
    foreign = await phone.http.post(
        f"/api/v1/payments/sandbox/orders/{order['id']}/pay",
        headers={"X-CSRF-Token": phone.csrf, "Accept": "application/json"},
    )
    assert foreign.status_code == 404
    mine = (await client.get("/api/v1/me/applications", headers=first)).json()
    assert mine[0]["payment"]["status"] == "pending"
    assert (await client.get("/api/v1/me/applications", headers=other)).json() == []
