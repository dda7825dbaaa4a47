"""Issue 9's school-console main path in a real Chromium (SPEC §4–§5): a school admin imports
a roster with one bad row, sees that row's error, imports the valid rows, fixes the bad row by
importing the corrected file, and then watches a candidate of that roster — who applies, sits
the exam and submits through the API — appear on the exam's dashboard.
"""

from __future__ import annotations

import secrets
from datetime import timedelta
from typing import Any

import httpx
import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import LiveApp, LiveInbox, save_screenshot
from tests.browser.test_school_pages import (
    laptop,  # noqa: F401 - a fixture
    no_sideways_scroll,
    roster_names,
)
from tests.exams.test_enrollment import certified_candidate
from tests.exams.test_sittings import complete, ready, record, submit
from tests.helpers import PASSWORD, app_ctx, staff
from tests.schools.test_roster import csv_bytes, id_number
from vexam.accounts import service as accounts
from vexam.core.context import Principal, Role
from vexam.exams import schemas
from vexam.exams import service as exams
from vexam.schools import service as schools

pytestmark = pytest.mark.browser
OPERATOR = Principal(0, Role.operator, None, None, 0, "")


def roster_file(page: Page, data: bytes, name: str) -> None:
    """Upload a CSV roster from the roster page and wait for its preview."""
    page.get_by_test_id("roster-file").set_input_files(
        {"name": f"{name}.csv", "mimeType": "text/csv", "buffer": data}
    )
    page.get_by_test_id("upload-roster").click()
    expect(page.get_by_test_id("preview")).to_have_attribute("data-status", "previewed")


def test_admin_imports_fixes_the_roster_and_sees_a_submission_arrive(
    laptop: Page,  # noqa: F811
    live_app: LiveApp,
    new_phone: Any,
    sms: Any,
) -> None:
    page, phone = laptop, new_phone()
    made: dict[str, Any] = {}
    api = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=live_app.app, client=("10.7.7.7", 40000)),
        base_url="http://testserver",
    )

    async def _world() -> None:
        # A certified candidate (张三) whose ID number the school's roster file will carry.
        agent = {
            "Authorization": f"Bearer {await staff(live_app.app, api, new_phone(), 'support')}"
        }
        who, number = await certified_candidate(api, LiveInbox(sms), new_phone, agent)
        async with app_ctx(live_app.app, "browser-tests") as ctx:
            school = await schools.create_school(
                ctx, f"s-{secrets.token_hex(4)}", "示范音乐学院", name_en="Model Conservatory"
            )
            await accounts.create_user(
                ctx, phone, PASSWORD, role=Role.school_admin, school_id=school.id
            )
            now = ctx.now()  # the live app's real clock: the window is open now
            body = schemas.ExamIn.model_validate(
                {
                    "code": "piano-live",
                    "name": "钢琴演奏",
                    "season": str(now.year),
                    "formal_starts_at": (now - timedelta(hours=1)).isoformat(),
                    "formal_ends_at": (now + timedelta(days=1)).isoformat(),
                    "published": True,
                    "subjects": [
                        {"name": "练习曲", "max_seconds": 300, "orientation": "landscape"},
                        {"name": "乐曲", "max_seconds": 300, "orientation": "landscape"},
                    ],
                }
            )
            exam = await exams.create_exam(ctx, OPERATOR, school.id, body)
        made.update(who=who, number=number, exam_id=exam.id)

    live_app.run(_world, timeout=30)
    exam_id = made["exam_id"]
    zhang, li = made["number"], id_number("440106")
    li_typo = li[:17] + ("0" if li[17] != "0" else "1")

    page.goto(f"{live_app.url}/login")
    page.locator("input[name=phone]").fill(phone)
    page.locator("input[name=password]").fill(PASSWORD)
    page.locator("button[name=action][value=login]").click()
    page.get_by_test_id("school-link").click()
    expect(page.get_by_test_id("exam-piano-live").get_by_test_id("copy-exam")).to_be_visible()
    save_screenshot(page, "school-main-exams")
    page.get_by_test_id("exam-piano-live").get_by_test_id("roster-link").click()
    expect(page.get_by_test_id("roster-empty")).to_be_visible()

    # One bad row (李四's ID number has a wrong check character): its error is shown.
    roster_file(
        page,
        csv_bytes(
            [
                ["张三", zhang, "北京", "27110105000001", "钢琴"],
                ["李四", li_typo, "广东", "27440106000002", "钢琴"],
            ]
        ),
        "roster",
    )
    expect(page.get_by_test_id("error-rows")).to_have_text("1")
    bad = page.get_by_test_id("bad-row")
    expect(bad).to_have_count(1)
    expect(bad).to_have_attribute("data-row", "3")
    expect(bad).to_have_attribute("data-reason", "check_character")
    save_screenshot(page, "school-main-roster-preview")
    page.get_by_test_id("commit-import").click()
    expect(page.get_by_test_id("roster-row")).to_have_count(1)

    # Fixed in the spreadsheet and imported again: the known row is kept, the fixed one added.
    roster_file(
        page,
        csv_bytes(
            [
                ["张三", zhang, "北京", "27110105000001", "钢琴"],
                ["李四", li, "广东", "27440106000002", "钢琴"],
            ]
        ),
        "roster-fixed",
    )
    expect(page.get_by_test_id("error-rows")).to_have_text("0")
    page.get_by_test_id("commit-import").click()
    expect(page.get_by_test_id("roster-row")).to_have_count(2)
    assert roster_names(page) == ["张三", "李四"]

    # The dashboard: nobody has submitted yet.
    page.goto(f"{live_app.url}/school/exams/{exam_id}/dashboard")
    first = page.get_by_test_id("subject-counts").get_by_test_id("submitted").first
    expect(first).to_have_text("0")
    expect(page.get_by_test_id("count-enrolled")).to_have_text("0")

    # 张三 applies (matched by ID number on the imported roster), sits and submits subject 1.
    async def _sit_and_submit() -> None:
        who = made["who"]
        applied = await api.post(
            f"/api/v1/exams/{exam_id}/application", json={"province": "11"}, headers=who
        )
        assert applied.status_code == 200, applied.text
        confirmed = await api.post(f"/api/v1/exams/{exam_id}/application/confirm", headers=who)
        assert confirmed.status_code == 200, confirmed.text
        sitting = await ready(live_app.app, api, who, exam_id)
        recording = await record(api, who, sitting)
        assert recording.status_code == 201, recording.text
        done = await complete(api, who, recording.json()["id"], duration_seconds=30)
        assert done.status_code == 200, done.text
        sent = await submit(api, who, sitting, recording.json()["id"])
        assert sent.status_code == 201, sent.text

    live_app.run(_sit_and_submit, timeout=30)
    page.reload()
    expect(page.get_by_test_id("count-enrolled")).to_have_text("1")
    expect(first).to_have_text("1")
    expect(page.get_by_test_id("chart-submissions")).to_have_attribute("data-total", "1")
    # "Not yet submitted": 张三 still owes the second subject, nothing else.
    expect(page.get_by_test_id("needs-name")).to_have_text(["张三"])
    save_screenshot(page, "school-main-dashboard")
    no_sideways_scroll(page)
    live_app.run(api.aclose)
