"""SPEC §4 in a real Chromium on a phone screen: a certified candidate on a school's roster
finds the exam, applies (a wrong exam province first), confirms, pays in the sandbox and
sees the fee paid and the mock exam open."""

from __future__ import annotations

import secrets
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import LiveApp, no_horizontal_scroll, open_from_home
from tests.exams.test_enrollment import add_roster_row
from tests.exams.test_exam_setup import exam_body
from tests.helpers import PASSWORD, app_ctx
from tests.identity.conftest import manual_entry, new_id_number
from vexam.accounts import service as accounts
from vexam.core.context import Principal, Role
from vexam.core.errors import CATALOGUE
from vexam.core.i18n import Msg, render_message
from vexam.exams import schemas as exam_schemas
from vexam.exams import service as exams
from vexam.identity import schemas as identity_schemas
from vexam.identity import service as identity
from vexam.schools import service as schools

pytestmark = pytest.mark.browser


def principal(user_id: int, role: Role) -> Principal:
    return Principal(
        user_id=user_id, role=role, school_id=None, locale=None, session_id=0, masked_phone=""
    )


def certified_candidate_on_roster(live_app: LiveApp, phone: str) -> dict[str, Any]:
    """A certified candidate (张三, typed and approved), a school, a paid open exam, the row."""
    number = new_id_number()

    async def _setup() -> dict[str, Any]:
        async with app_ctx(live_app.app, "browser-tests") as ctx:
            ctx.extra.update(live_app.app.state.resources)  # the format-only ID register
            user = await accounts.create_user(ctx, phone, PASSWORD)
            me = principal(user.id, Role.candidate)
            body = identity_schemas.CertificationIn.model_validate(manual_entry(number))
            stated = await identity.submit(ctx, me, body)
            assert stated.status == identity.Status.review_required, stated
            held = await identity.identity_of(ctx, user.id)
            assert held is not None
            # As support's approval does (the review itself is tested in tests/identity).
            await identity.certify(
                ctx, held, via="manual_review", from_status=identity.Status.review_required
            )
            school = await schools.create_school(
                ctx, f"s-{secrets.token_hex(4)}", "音乐学院", name_en="Conservatory"
            )
            now = ctx.now()
            exam = exam_body(published=True, fee_cents=18000)
            exam["formal_starts_at"] = (now - timedelta(days=1)).isoformat()
            exam["formal_ends_at"] = (now + timedelta(days=30)).isoformat()
            created = await exams.create_exam(
                ctx,
                principal(0, Role.operator),
                school.id,
                exam_schemas.ExamIn.model_validate(exam),
            )
            return {"school_id": school.id, "exam_id": created.id}

    world = live_app.run(_setup)
    live_app.run(
        lambda: add_roster_row(
            live_app.app,
            world["school_id"],
            world["exam_id"],
            number,
            candidate_number="26110101000888",
        )
    )
    return world


def test_apply_wrong_province_then_confirm_and_pay(
    page: Page, live_server: str, live_app: LiveApp, new_phone: Any, tmp_path: Path
) -> None:
    """§4: search, a wrong exam province names the mismatch, the right one matches; confirm
    (确认考试), pay in the sandbox → paid and the mock exam open."""
    phone = new_phone()
    world = certified_candidate_on_roster(live_app, phone)
    exam_id = world["exam_id"]

    page.goto(f"{live_server}/login")
    page.locator("input[name=phone]").fill(phone)
    page.locator("input[name=password]").fill(PASSWORD)
    page.locator("button[name=action][value=login]").click()
    open_from_home(page, "exams-link")
    expect(page).to_have_url(f"{live_server}/exams")
    expect(page.locator("html")).to_have_attribute("lang", "zh-CN")
    expect(page.get_by_test_id("no-applications")).to_be_visible()
    no_horizontal_scroll(page)

    page.get_by_test_id("search-input").fill("音乐学院")
    page.get_by_test_id("search").click()
    result = page.get_by_test_id(f"result-{exam_id}")
    expect(result).to_contain_text("钢琴演奏")
    result.get_by_test_id("apply-link").click()
    expect(page).to_have_url(f"{live_server}/exams/{exam_id}/apply")
    expect(page.get_by_test_id("exam-window")).to_contain_text("北京时间")
    expect(page.get_by_test_id("fee")).to_have_text("¥180.00")
    expect(page.locator("#province option")).to_have_count(35)  # a prompt and 34 names

    page.get_by_test_id("province").select_option("13")  # 河北: the roster says 北京
    page.get_by_test_id("apply").click()
    alert = page.locator("p.alert.error")
    expect(alert).to_have_attribute("data-code", "roster_mismatch")
    mismatch = render_message(
        "zh_CN",
        CATALOGUE["roster_mismatch"].message,
        {"fields_text": Msg("exam province")},
        "Asia/Shanghai",
    )
    expect(alert).to_have_text(mismatch)
    expect(alert).to_contain_text("高考省份")
    expect(page.get_by_test_id("mismatch-fields")).to_have_attribute("data-fields", "province")
    expect(page.get_by_test_id("province")).to_have_value("13")
    no_horizontal_scroll(page)
    page.screenshot(path=str(tmp_path / "exam-pages-mismatch.png"), full_page=True)

    page.get_by_test_id("province").select_option("11")
    page.get_by_test_id("apply").click()
    expect(page).to_have_url(f"{live_server}/exams/{exam_id}/confirm")
    expect(page.get_by_test_id("confirm-view")).to_have_attribute("data-status", "matched")
    expect(page.get_by_test_id("roster-name")).to_have_text("张三")
    expect(page.get_by_test_id("roster-province")).to_have_text("北京")
    expect(page.get_by_test_id("candidate-number")).to_have_text("26110101000888")
    expect(page.get_by_test_id("major")).to_have_text("钢琴")
    page.get_by_test_id("confirm").click()

    expect(page).to_have_url(f"{live_server}/exams?notice=enrolled#exam-{exam_id}")
    card = page.get_by_test_id(f"application-{exam_id}")
    expect(card).to_have_attribute("data-status", "enrolled")
    expect(card.get_by_test_id("payment-state")).to_have_attribute("data-state", "unpaid")
    expect(card.get_by_test_id("mock-state")).to_have_attribute("data-state", "payment_required")
    card.get_by_test_id("pay").click()

    expect(page).to_have_url(f"{live_server}/exams?notice=paid#exam-{exam_id}")
    card = page.get_by_test_id(f"application-{exam_id}")
    expect(card.get_by_test_id("payment-state")).to_have_attribute("data-state", "paid")
    expect(card.get_by_test_id("payment-state")).to_contain_text("北京时间")
    expect(card.get_by_test_id("mock-state")).to_have_attribute("data-state", "open")
    expect(card.get_by_test_id("pay")).to_have_count(0)
    expect(page.locator("p.alert.notice")).to_be_visible()
    no_horizontal_scroll(page)
    shot = tmp_path / "exam-pages-paid.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 0

    # The same page in English, from the language link.
    page.locator("nav.lang a").click()
    expect(page.locator("html")).to_have_attribute("lang", "en")
    expect(page.get_by_test_id(f"application-{exam_id}")).to_contain_text("Piano performance")
    no_horizontal_scroll(page)
