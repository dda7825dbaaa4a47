"""SPEC §4 operator console pages (zh/en): schools, staff accounts, platform policy and
refunds, every form with its CSRF token, every action audited, operators only."""

from __future__ import annotations

import re
import secrets
from collections.abc import AsyncIterator, Callable
from typing import Any
from urllib.parse import parse_qsl

import pytest
from sqlalchemy import select

from tests.exams.test_enrollment import enrolled_with_order, world  # noqa: F401 - a fixture
from tests.exams.test_exam_pages import Phone
from tests.exams.test_exam_setup import new_school
from tests.helpers import PASSWORD, staff
from vexam.accounts.models import User
from vexam.core.audit import AuditEntry

pytestmark = pytest.mark.usefixtures("app")
GET_ROUTES = ["/operator", "/operator/staff", "/operator/policy", "/operator/refunds"]


@pytest.fixture
async def browsers(app: Any) -> AsyncIterator[Callable[..., Phone]]:
    """`browsers(token, language)`: a browser signed in with that session token."""
    opened: list[Phone] = []

    def _open(token: str, language: str = "zh-CN") -> Phone:
        browser = Phone(app, token, language)
        opened.append(browser)
        return browser

    yield _open
    for browser in opened:
        await browser.http.aclose()


@pytest.fixture
async def operator(app, client, new_phone, browsers) -> Phone:
    """An operator's browser (pages in Chinese)."""
    return browsers(await staff(app, client, new_phone(), "operator"))


async def audited(app: Any, action: str, target_id: int) -> list[AuditEntry]:
    async with app.state.db.unit_of_work() as session:
        found = await session.execute(
            select(AuditEntry).where(
                AuditEntry.action == action, AuditEntry.subject_id == str(target_id)
            )
        )
        return list(found.scalars())


async def audited_action(app: Any, action: str) -> list[AuditEntry]:
    """Every audit entry of `action`."""
    async with app.state.db.unit_of_work() as session:
        rows = await session.execute(select(AuditEntry).where(AuditEntry.action == action))
        return list(rows.scalars())


async def follow(browser: Phone, response: Any) -> Any:
    """Open the page a POST redirected to (its query kept)."""
    assert response.status_code == 303, response.text
    path, _, query = response.headers["location"].partition("?")
    return await browser.get(path, **dict(parse_qsl(query)))


def marked(html: str, element_id: str) -> bool:
    """Whether the form control with this id is marked invalid."""
    match = re.search(rf'<[^>]*id="{re.escape(element_id)}"[^>]*>', html)
    assert match, element_id
    return 'aria-invalid="true"' in match.group(0)


async def test_operator_creates_a_school_and_its_admin(app, client, operator, new_phone) -> None:
    """The main path: a school from the form, then its admin, who signs in to its console."""
    first = await operator.get("/operator")
    assert first.status_code == 200 and 'data-testid="new-school-form"' in first.text
    assert 'value="Asia/Shanghai"' in first.text  # the platform's time zone is offered
    slug = f"op-{secrets.token_hex(4)}"
    created = await operator.post(
        "/operator/schools",
        slug=slug,
        name="星海示范音乐学院",
        name_en="Xinghai Model Conservatory",
        timezone="Asia/Urumqi",
    )
    assert created.status_code == 303, created.text
    location = created.headers["location"]
    assert location.endswith("?done=school_created")
    school_id = int(location.split("/")[3].split("?")[0])
    shown = await follow(operator, created)
    assert shown.status_code == 200 and "星海示范音乐学院" in shown.text
    assert "Asia/Urumqi" in shown.text and 'role="status"' in shown.text
    assert 'data-testid="no-staff"' in shown.text
    listed = await operator.get("/operator")
    assert f'data-slug="{slug}"' in listed.text
    (entry,) = await audited(app, "school.created", school_id)

    phone = new_phone()
    added = await operator.post(
        "/operator/staff",
        back=f"/operator/schools/{school_id}",
        school_id=str(school_id),
        role="school_admin",
        phone=phone,
        display_name="王老师",
        password=PASSWORD,
    )
    assert added.status_code == 303, added.text
    assert added.headers["location"] == f"/operator/schools/{school_id}?done=staff_created"
    page = await follow(operator, added)
    rows = re.findall(r'data-testid="staff-row" data-id="(\d+)" data-role="(\w+)"', page.text)
    assert len(rows) == 1 and rows[0][1] == "school_admin" and "王老师" in page.text
    assert phone not in page.text  # the phone is masked
    (entry,) = await audited(app, "staff.created", int(rows[0][0]))
    assert entry.detail["school_id"] == school_id

    signed_in = await client.post("/api/v1/auth/login", json={"phone": phone, "password": PASSWORD})
    assert signed_in.status_code == 200
    console = await client.get(
        "/school",
        headers={"Authorization": f"Bearer {signed_in.json()['token']}", "Accept": "text/html"},
    )
    assert console.status_code == 200 and "星海示范音乐学院" in console.text


async def test_school_form_refusals_keep_what_was_typed(app, operator) -> None:
    """A bad slug or time zone, or a slug taken, shows the form again with the field marked."""
    await operator.get("/operator")
    bad = await operator.post(
        "/operator/schools", slug="Bad Slug", name="某学院", name_en="", timezone="Asia/Shanghai"
    )
    assert bad.status_code == 422 and 'data-code="invalid_request"' in bad.text
    assert marked(bad.text, "slug") and not marked(bad.text, "name")
    assert 'value="Bad Slug"' in bad.text and 'value="某学院"' in bad.text
    zone = await operator.post(
        "/operator/schools", slug="good-slug-x", name="某学院", timezone="Mars/Olympus"
    )
    assert zone.status_code == 422 and marked(zone.text, "timezone")
    slug = f"taken-{secrets.token_hex(3)}"
    ok = await operator.post("/operator/schools", slug=slug, name="甲", timezone="Asia/Shanghai")
    assert ok.status_code == 303
    again = await operator.post("/operator/schools", slug=slug, name="乙", timezone="Asia/Shanghai")
    assert again.status_code == 422 and marked(again.text, "slug")
    async with app.state.db.unit_of_work() as session:
        found = await session.execute(
            select(AuditEntry).where(AuditEntry.action == "school.created")
        )
        assert [e.detail["slug"] for e in found.scalars()].count(slug) == 1


async def test_staff_list_filters_create_and_deactivate(app, client, operator, new_phone) -> None:
    """Staff by role and school; a support agent from the staff page; deactivate with a reason
    (audited), refused without one; a reviewer needs a school."""
    school_id = await new_school(app)
    await staff(app, client, new_phone(), "reviewer", school_id)
    page = await operator.get("/operator/staff")
    assert page.status_code == 200 and 'data-testid="operator-accounts-note"' in page.text
    phone = new_phone()
    made = await operator.post(
        "/operator/staff", back="/operator/staff?role=support", role="support", phone=phone
    )
    assert made.status_code == 303
    assert made.headers["location"] == "/operator/staff?role=support&done=staff_created"
    support = await operator.get("/operator/staff", role="support")
    roles = set(
        re.findall(r'data-testid="staff-row" data-id="\d+" data-role="(\w+)"', support.text)
    )
    assert roles == {"support"}
    only_school = await operator.get("/operator/staff", school=str(school_id))
    found = re.findall(
        r'data-testid="staff-row" data-id="(\d+)" data-role="(\w+)"', only_school.text
    )
    assert [role for _, role in found] == ["reviewer"]
    reviewer_id = int(found[0][0])
    # The new-account form starts with the school being looked at.
    new_form = only_school.text.split('data-testid="new-staff-form"')[1]
    assert re.search(rf'<option translate="no" value="{school_id}" selected>', new_form)

    no_school = await operator.post("/operator/staff", role="reviewer", phone=new_phone())
    assert no_school.status_code == 422 and marked(no_school.text, "staff-school")
    taken = await operator.post("/operator/staff", role="support", phone=phone)
    assert taken.status_code == 409 and 'data-code="phone_registered"' in taken.text
    assert f'value="{phone}"' in taken.text
    colleague = new_phone()
    made = await operator.post("/operator/staff", role="operator", phone=colleague)
    platform = await follow(operator, made)
    assert 'data-role="operator"' in platform.text and colleague[-4:] in platform.text
    assert platform.text.count('data-testid="own-account"') == 1  # no form to lock oneself out
    async with app.state.db.unit_of_work() as session:
        made_id = await session.scalar(select(User.id).where(User.phone == colleague))
    (entry,) = [
        e for e in await audited_action(app, "staff.created") if e.subject_id == str(made_id)
    ]
    assert entry.actor_role == "operator" and entry.detail["school_id"] is None

    back = f"/operator/staff?school={school_id}"
    no_reason = await operator.post(
        f"/operator/staff/{reviewer_id}/active", back=back, active="0", reason=""
    )
    assert no_reason.status_code == 422 and 'data-code="invalid_request"' in no_reason.text
    off = await operator.post(
        f"/operator/staff/{reviewer_id}/active", back=back, active="0", reason="left the school"
    )
    assert off.status_code == 303 and off.headers["location"] == f"{back}&done=deactivated"
    shown = await follow(operator, off)
    assert 'data-active="no"' in shown.text
    on = await operator.post(
        f"/operator/staff/{reviewer_id}/active",
        back="https://evil.example/",
        active="1",
        reason="back",
    )
    assert on.headers["location"] == "/operator/staff?done=activated"  # never leaves the console
    (entry,) = await audited(app, "staff.deactivated", reviewer_id)
    assert entry.detail["reason"] == "left the school"
    assert len(await audited(app, "staff.activated", reviewer_id)) == 1


async def test_policy_page_shows_settings_and_where_they_come_from(
    app, browsers, client, new_phone
) -> None:
    """In English too: the editable policy's form starts from the settings' defaults; the
    read-only settings are listed beside their environment variables."""
    settings = app.state.settings
    english = browsers(await staff(app, client, new_phone(), "operator"), "en")
    page = await english.get("/operator/policy")
    assert page.status_code == 200 and 'data-testid="policy-read-only"' in page.text
    assert 'lang="en"' in page.text and "Platform policy" in page.text
    for name in (
        "VEXAM_MIN_CLIENT_VERSION",
        "VEXAM_CLIENT_DOWNLOAD_URL",
        "VEXAM_SUPPORT_HOURS_START",
        "VEXAM_UPLOAD_MAX_BYTES",
        "VEXAM_ID_PHOTO_MAX_BYTES",
    ):
        assert name in page.text
    assert settings.min_client_version in page.text
    assert settings.client_download_url in page.text
    assert f"{settings.support_hours_start}–{settings.support_hours_end}" in page.text
    assert 'id="min_os_android" name="min_os_android" value="7"' in page.text
    assert "Phones" in page.text and 'data-testid="policy-form"' in page.text
    # The minimum version's help quotes what an older app's user reads, not an error code.
    told = f"Install version {settings.min_client_version} or newer from"
    assert told in page.text and "client_outdated" not in page.text
    chinese = await browsers(await staff(app, client, new_phone(), "operator")).get(
        "/operator/policy"
    )
    assert "当前应用版本过低" in chinese.text and "client_outdated" not in chinese.text


async def test_refund_from_the_console(app, client, inbox, new_phone, world, browsers) -> None:  # noqa: F811
    """A paid order refunded with a reason (audited); a second time is refused."""
    who, order = await enrolled_with_order(app, client, inbox, new_phone, world)
    await client.post(order["pay_url"], headers=who)
    operator = browsers(world["operator"]["Authorization"].split()[1])
    await operator.get("/operator/refunds")
    short = await operator.post("/operator/refunds", order_id=str(order["id"]), reason="x")
    assert short.status_code == 422 and marked(short.text, "reason")
    done = await operator.post("/operator/refunds", order_id=str(order["id"]), reason="cancelled")
    assert done.status_code == 303
    notice = await follow(operator, done)
    assert str(order["id"]) in notice.text and "180.00" in notice.text
    (entry,) = await audited(app, "payment.refunded", order["id"])
    assert entry.detail["reason"] == "cancelled"
    again = await operator.post("/operator/refunds", order_id=str(order["id"]), reason="twice")
    assert again.status_code == 409 and 'data-code="payment_not_refundable"' in again.text


async def test_forms_need_the_csrf_token(app, operator) -> None:
    """A post without the browser's form token is refused and changes nothing."""
    await operator.get("/operator")
    slug = f"csrf-{secrets.token_hex(3)}"
    for token in ("", "0" * 40):
        refused = await operator.http.post(
            "/operator/schools",
            data={"csrf_token": token, "slug": slug, "name": "某", "timezone": "Asia/Shanghai"},
        )
        assert refused.status_code == 403 and 'data-code="csrf_failed"' in refused.text
    listed = await operator.get("/operator")
    assert slug not in listed.text
    for path in ("/operator/staff", "/operator/staff/1/active", "/operator/refunds"):
        refused = await operator.http.post(path, data={"role": "support", "phone": "13800000000"})
        assert refused.status_code == 403, path


@pytest.mark.parametrize("role", ["school_admin", "reviewer", "support", "candidate"])
async def test_only_operators_get_the_console(app, client, new_phone, browsers, role) -> None:
    """Every other role gets the refusal page for every page and form of the console."""
    school_id = await new_school(app) if role in ("school_admin", "reviewer") else None
    other = browsers(await staff(app, client, new_phone(), role, school_id))
    home = await other.get("/")
    assert 'data-testid="operator-link"' not in home.text
    for path in [*GET_ROUTES, f"/operator/schools/{school_id or 1}"]:
        page = await other.get(path)
        assert page.status_code == 403 and 'data-code="forbidden"' in page.text, path
    for path in (
        "/operator/schools",
        "/operator/staff",
        "/operator/staff/1/active",
        "/operator/refunds",
    ):
        refused = await other.post(path, slug="x-y", name="x", role="support", phone=new_phone())
        assert refused.status_code == 403 and 'data-code="forbidden"' in refused.text, path


async def test_anonymous_is_sent_to_sign_in(client) -> None:
    """Signed out, the console asks to sign in first."""
    for path in GET_ROUTES:
        page = await client.get(path, headers={"Accept": "text/html"})
        assert page.status_code in (303, 401), path


async def test_operator_home_links_the_console(operator) -> None:
    home = await operator.get("/")
    assert 'href="/operator"' in home.text
    missing = await operator.get("/operator/schools/999999")
    assert missing.status_code == 404 and 'data-code="school_not_found"' in missing.text
