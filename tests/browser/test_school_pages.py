"""SPEC §4 in a real Chromium on a laptop screen: a school admin creates an exam with two
subjects, imports an XLSX roster with a bad row, imports the valid rows, then fixes the bad
person by importing a corrected file and corrects a name with the row's form.

Pages are asked for in Chinese; elements are found by ids and test ids, so the test holds
whether or not the Chinese catalogue has these texts yet.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, ViewportSize, expect

from tests.browser.conftest import LiveApp
from tests.helpers import PASSWORD, app_ctx
from tests.schools.test_roster import id_number, xlsx_bytes
from vexam.accounts import service as accounts
from vexam.core.context import Role
from vexam.schools import service as schools

pytestmark = pytest.mark.browser
LAPTOP: ViewportSize = {"width": 1366, "height": 768}
TABLET: ViewportSize = {"width": 768, "height": 1024}
HEADER = ["姓名", "身份证号", "高考省份", "考生号", "专业"]


def xlsx(rows: list[list[Any]]) -> bytes:
    """A roster workbook as a school saves it from Excel."""
    return xlsx_bytes(rows, HEADER)


@pytest.fixture
def admin(live_app: LiveApp, new_phone: Any) -> tuple[str, str]:
    """(phone, password) of a new school's admin."""
    phone = new_phone()

    async def _create() -> None:
        async with app_ctx(live_app.app, "browser-tests") as ctx:
            school = await schools.create_school(
                ctx, f"s-{secrets.token_hex(4)}", "示范音乐学院", name_en="Model Conservatory"
            )
            await accounts.create_user(
                ctx, phone, PASSWORD, role=Role.school_admin, school_id=school.id
            )

    live_app.run(_create)
    return phone, PASSWORD


@pytest.fixture
def laptop(browser: Browser) -> Iterator[Page]:
    """A laptop-sized tab whose browser asks for Chinese pages."""
    context = browser.new_context(viewport=LAPTOP, locale="zh-CN")
    context.set_default_timeout(10_000)
    try:
        yield context.new_page()
    finally:
        context.close()


def no_sideways_scroll(page: Page) -> None:
    """The page itself fits the window (wide tables scroll inside their own box)."""
    sizes = page.evaluate(
        "() => ({scroll: document.documentElement.scrollWidth, inner: window.innerWidth})"
    )
    assert sizes["scroll"] <= sizes["inner"], sizes


def roster_names(page: Page) -> list[str]:
    return page.get_by_test_id("row-name").all_inner_texts()


def upload(page: Page, data: bytes, shots: Path, name: str) -> None:
    page.get_by_test_id("roster-file").set_input_files(
        {
            "name": f"{name}.xlsx",
            "mimeType": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
            "buffer": data,
        }
    )
    page.get_by_test_id("upload-roster").click()
    expect(page.get_by_test_id("preview")).to_have_attribute("data-status", "previewed")
    page.screenshot(path=str(shots / f"{name}-preview.png"), full_page=True)


def test_school_admin_sets_up_an_exam_and_its_roster(
    laptop: Page, live_server: str, admin: tuple[str, str], tmp_path: Path
) -> None:
    """§4: exam with two subjects → XLSX roster with one bad row → import the valid rows →
    re-import the corrected file (updates by ID number) → correct a name with the form."""
    page, shots = laptop, tmp_path
    page.goto(f"{live_server}/login")
    page.locator("input[name=phone]").fill(admin[0])
    page.locator("input[name=password]").fill(admin[1])
    page.locator("button[name=action][value=login]").click()
    page.get_by_test_id("school-link").click()
    expect(page.get_by_test_id("school-name")).to_have_text("示范音乐学院")
    expect(page.locator("html")).to_have_attribute("lang", "zh-CN")
    page.get_by_test_id("new-exam").click()

    page.locator("#code").fill("piano-2027")
    page.locator("#name").fill("钢琴演奏")
    page.locator("#name_en").fill("Piano performance")
    page.locator("#season").fill("2027")
    page.locator("#starts").fill("2027-01-10T09:00")
    page.locator("#ends").fill("2027-01-12T18:00")
    page.locator("#fee_yuan").fill("180")
    page.locator("#anti-cheat-phone_call").select_option("flag")
    subjects = page.locator("#subjects fieldset.subject")
    subjects.nth(0).locator("input[name=subject_name]").fill("练习曲")
    subjects.nth(0).locator("textarea[name=subject_rubric]").fill("技巧: 50\n音乐性: 50")
    page.get_by_test_id("add-subject").click()  # added in the page, no round trip
    expect(subjects).to_have_count(2)
    second = subjects.nth(1)
    expect(second.locator("[data-subject-number]")).to_have_text("2")
    second.locator("input[name=subject_name]").fill("自选乐曲")
    second.locator("input[name=subject_attempts]").fill("10")
    second.locator("select[name=subject_camera]").select_option("back")
    second.locator("textarea[name=subject_prompt]").fill("请演奏一首自选乐曲")
    page.screenshot(path=str(shots / "exam-form.png"), full_page=True)
    page.get_by_test_id("save-exam").click()

    # The new exam's roster page: nothing imported yet.
    expect(page.get_by_test_id("roster-empty")).to_be_visible()
    expect(page.locator(".alert.notice")).to_be_visible()
    zhang, li, wang = id_number(), id_number("440106"), id_number("320102")
    li_typo = li[:17] + ("0" if li[17] != "0" else "1")
    upload(
        page,
        xlsx(
            [
                ["张三", zhang, "北京", "27110105000001", "钢琴"],
                ["李四", li_typo, "广东", "27440106000002", "钢琴"],
                ["王五", wang, "江苏", int("27320102000003"), "声乐"],
            ]
        ),
        shots,
        "first",
    )
    expect(page.get_by_test_id("total-rows")).to_have_text("3")
    expect(page.get_by_test_id("error-rows")).to_have_text("1")
    bad = page.get_by_test_id("bad-row")
    expect(bad).to_have_count(1)
    expect(bad).to_have_attribute("data-row", "3")
    expect(bad).to_have_attribute("data-reason", "check_character")
    expect(bad.locator("td").nth(2)).not_to_be_empty()
    page.get_by_test_id("commit-import").click()

    expect(page.get_by_test_id("roster-row")).to_have_count(2)
    assert roster_names(page) == ["张三", "王五"]
    expect(page.get_by_test_id("row-id-number").first).to_have_text(
        zhang[:6] + "********" + zhang[-4:]
    )
    page.screenshot(path=str(shots / "roster-first.png"), full_page=True)

    # The school fixes the typo in its spreadsheet and imports the whole file again; it also
    # renames 王五 there: the known ID numbers are updated, the fixed one is added.
    upload(
        page,
        xlsx(
            [
                ["张三", zhang, "北京", "27110105000001", "钢琴"],
                ["李四", li, "广东", "27440106000002", "钢琴"],
                ["王小五", wang, "江苏", "27320102000003", "声乐"],
            ]
        ),
        shots,
        "corrected",
    )
    expect(page.get_by_test_id("error-rows")).to_have_text("0")
    expect(page.get_by_test_id("bad-row")).to_have_count(0)
    page.get_by_test_id("commit-import").click()
    expect(page.get_by_test_id("roster-row")).to_have_count(3)
    assert roster_names(page) == ["张三", "王小五", "李四"]

    # 李四's real name is 李思: corrected with the row's form.
    row = page.get_by_test_id("roster-row").filter(has_text="李四")
    row.locator("details[data-testid^=correct] summary").click()
    row.locator("input[name=name]").fill("李思")
    page.screenshot(path=str(shots / "correction-form.png"), full_page=True)
    row.get_by_test_id("save-correction").click()
    expect(page.locator(".alert.notice")).to_be_visible()
    assert roster_names(page) == ["张三", "王小五", "李思"]
    fixed = page.get_by_test_id("roster-row").filter(has_text="李思")
    expect(fixed.get_by_test_id("row-province")).to_have_text("广东")
    expect(fixed.get_by_test_id("row-id-number")).to_have_text(li[:6] + "********" + li[-4:])
    page.screenshot(path=str(shots / "roster-final.png"), full_page=True)
    no_sideways_scroll(page)

    # The exam is listed with its window in the school's time zone; the form reads it back.
    page.goto(f"{live_server}/school")
    exam_row = page.get_by_test_id("exam-piano-2027")
    expect(exam_row).to_contain_text("2027-01-10 09:00")
    exam_row.get_by_test_id("edit-exam").click()
    expect(page.locator("#starts")).to_have_value("2027-01-10T09:00")
    expect(page.locator("#subjects fieldset.subject")).to_have_count(2)
    expect(page.locator("#anti-cheat-phone_call")).to_have_value("flag")

    # Usable on a tablet: the form and the roster fit a 768 px wide screen.
    page.set_viewport_size(TABLET)
    no_sideways_scroll(page)
    page.screenshot(path=str(shots / "tablet-exam-form.png"), full_page=True)
