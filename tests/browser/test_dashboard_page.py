"""SPEC §4–§6 in a real Chromium: a school admin opens an exam's dashboard from the console,
sees a candidate's submission counted and drawn in the server's SVG chart, watches a new
submission appear, filters the "not yet submitted" list by subject, in Chinese and English,
on a laptop and at tablet (and phone) width without sideways scrolling.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, ViewportSize, expect

from tests.browser.conftest import LiveApp, save_screenshot
from tests.browser.test_school_pages import no_sideways_scroll
from tests.helpers import PASSWORD, app_ctx
from tests.schools.test_dashboard import Candidate, at, dashboard_exam, seed
from vexam.accounts import service as accounts
from vexam.core.context import Principal, Role
from vexam.exams import service as exams
from vexam.schools import service as schools

pytestmark = pytest.mark.browser
LAPTOP: ViewportSize = {"width": 1280, "height": 800}
TABLET: ViewportSize = {"width": 768, "height": 1024}


@pytest.fixture
def laptop(browser: Browser) -> Iterator[Page]:
    """A laptop-sized tab whose browser asks for Chinese pages."""
    context = browser.new_context(viewport=LAPTOP, locale="zh-CN")
    context.set_default_timeout(10_000)
    try:
        yield context.new_page()
    finally:
        context.close()


def test_school_admin_follows_the_exam_on_its_dashboard(
    laptop: Page, live_app: LiveApp, new_phone: Any
) -> None:
    page, phone = laptop, new_phone()
    made: dict[str, Any] = {}

    async def _world() -> None:
        async with app_ctx(live_app.app, "browser-tests") as ctx:
            school = await schools.create_school(
                ctx, f"s-{secrets.token_hex(4)}", "示范音乐学院", name_en="Model Conservatory"
            )
            await accounts.create_user(
                ctx, phone, PASSWORD, role=Role.school_admin, school_id=school.id
            )
            exam = await dashboard_exam(ctx, school.id)
            people = [
                Candidate("王小明", paid=True, mock=True, formal={0: ("verified", {}, at(1))}),
                Candidate("李华", paid=True, mock=True),
                Candidate("赵敏"),
            ]
            made.update(exam_id=exam.id, rows=await seed(ctx, exam, people))

    live_app.run(_world)
    page.goto(f"{live_app.url}/login")
    page.locator("input[name=phone]").fill(phone)
    page.locator("input[name=password]").fill(PASSWORD)
    page.locator("button[name=action][value=login]").click()
    page.get_by_test_id("school-link").click()
    page.get_by_test_id("dashboard-link").click()

    board = page.get_by_test_id("dashboard")
    expect(board).to_have_attribute("data-exam-id", str(made["exam_id"]))
    expect(page.get_by_test_id("count-enrolled")).to_have_text("3")
    expect(page.get_by_test_id("count-paid")).to_have_text("2")
    expect(page.get_by_test_id("count-mock")).to_have_text("2")
    counts = page.get_by_test_id("subject-counts")
    expect(counts.get_by_test_id("submitted").first).to_have_text("1")
    expect(counts.get_by_test_id("verified").first).to_have_text("1")
    chart = page.get_by_test_id("chart-submissions")
    expect(chart).to_have_attribute("data-total", "1")
    expect(chart.locator("svg rect.bar")).to_have_count(1)
    expect(page.get_by_test_id("chart-uploads").locator("svg")).to_be_visible()

    # The list starts on "not yet submitted": 李华 and 赵敏 both subjects, 王小明 the second.
    total = page.get_by_test_id("needs-total")
    expect(total).to_have_attribute("data-total", "5")
    save_screenshot(page, "dashboard-laptop-zh")
    no_sideways_scroll(page)

    # A fourth candidate submits the first subject; the dashboard counts it on the next look.
    async def _submit() -> None:
        async with app_ctx(live_app.app, "browser-tests") as ctx:
            exam = await exams.get_exam(ctx, _operator(), made["exam_id"])
            await seed(
                ctx, exam, [Candidate("孙丽", paid=True, formal={0: ("pending", {}, at(2))})]
            )

    live_app.run(_submit)
    page.reload()
    expect(counts.get_by_test_id("submitted").first).to_have_text("2")
    expect(chart).to_have_attribute("data-total", "2")

    # Filter down to the first subject: only those who have not submitted it.
    page.get_by_test_id("need").select_option("not_submitted")
    page.get_by_test_id("subject").select_option(index=1)
    page.get_by_test_id("apply-filter").click()
    expect(total).to_have_attribute("data-total", "2")
    expect(page.get_by_test_id("needs-name")).to_have_text(["李华", "赵敏"])
    expect(page.get_by_test_id("needs-list")).to_contain_text("********")

    page.get_by_test_id("need").select_option("not_verified")
    page.get_by_test_id("apply-filter").click()
    expect(page.get_by_test_id("needs-name")).to_have_text(["孙丽"])

    # English, and a tablet's width.
    page.get_by_role("link", name="English").click()
    expect(page.locator("html")).to_have_attribute("lang", "en")
    expect(page.get_by_text("Formal submissions").first).to_be_visible()
    page.set_viewport_size(TABLET)
    save_screenshot(page, "dashboard-tablet-en")
    no_sideways_scroll(page)
    page.set_viewport_size({"width": 360, "height": 740})
    no_sideways_scroll(page)


def _operator() -> Principal:
    return Principal(0, Role.operator, None, None, 0, "")
