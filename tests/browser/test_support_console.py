"""SPEC §3/§7/§8 support console in a real Chromium (laptop, 1280×800): a support agent
approves a manual review before its due time, then finds the decision in the audit log by
the candidate's phone, shown masked; zh and en."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, expect

from tests.browser.conftest import LiveApp, no_horizontal_scroll, save_screenshot, sign_in
from tests.browser.test_operator_pages import LAPTOP
from tests.helpers import PASSWORD, app_ctx, bearer
from tests.identity.conftest import jpeg, manual_entry, new_id_number
from vexam.accounts import service as accounts
from vexam.core.context import Role

pytestmark = pytest.mark.browser


def make_accounts(live_app: LiveApp, *phones: tuple[str, Role]) -> None:
    """Create accounts directly (as `vexam user create` does)."""

    async def _create() -> None:
        async with app_ctx(live_app.app, "browser-tests") as ctx:
            for phone, role in phones:
                await accounts.create_user(ctx, phone, PASSWORD, role=role)

    live_app.run(_create)


def put_in_review(base: str, phone: str, number: str) -> int:
    """The candidate types the card and sends photos: a person must review it."""
    with httpx.Client(base_url=base, timeout=20) as http:
        login = http.post("/api/v1/auth/login", json={"phone": phone, "password": PASSWORD})
        who = bearer(login.json()["token"])
        typed = http.post("/api/v1/identity/certification", json=manual_entry(number), headers=who)
        assert typed.json()["status"] == "review_required", typed.text
        sent = http.post(
            "/api/v1/identity/manual-review",
            files={
                "id_photo": ("id.jpg", jpeg(), "image/jpeg"),
                "selfie": ("me.jpg", jpeg(), "image/jpeg"),
            },
            headers=who,
        )
        assert sent.status_code == 201, sent.text
        review_id: int = sent.json()["id"]
        return review_id


@pytest.mark.parametrize("locale", ["zh-CN", "en"])
def test_agent_approves_then_finds_it_in_the_audit_log(
    browser: Browser, live_app: LiveApp, new_phone: Any, locale: str
) -> None:
    """Queue → review (not overdue) → approve with a reason → audit log by phone."""
    base = live_app.url
    candidate, agent = new_phone(), new_phone()
    make_accounts(live_app, (candidate, Role.candidate), (agent, Role.support))
    number = new_id_number()
    review_id = put_in_review(base, candidate, number)
    tag = "zh" if locale == "zh-CN" else "en"

    context = browser.new_context(viewport=LAPTOP, locale=locale)
    context.set_default_timeout(10_000)
    try:
        page = context.new_page()
        sign_in(page, base, agent)
        page.goto(f"{base}/support/reviews")
        row = page.locator(f'[data-review="{review_id}"]')
        expect(row).to_be_visible()
        assert row.get_attribute("data-overdue") is None  # before its due time
        no_horizontal_scroll(page)
        save_screenshot(page, f"support-queue-{tag}")
        row.locator("a").click()
        expect(page.get_by_test_id("full-id-number")).to_have_text(number)
        expect(page.get_by_test_id("face-distance")).to_be_visible()
        no_horizontal_scroll(page)
        save_screenshot(page, f"support-review-{tag}")
        page.get_by_test_id("review-reason").fill(
            "照片与自拍一致" if tag == "zh" else "photos match"
        )
        page.get_by_test_id("review-approve").click()
        expect(page).to_have_url(re.compile(re.escape(f"{base}/support/reviews?approved=")))
        expect(page.get_by_role("status")).to_contain_text(f"#{review_id}")
        expect(page.locator(f'[data-review="{review_id}"]')).to_have_count(0)

        page.goto(f"{base}/")
        page.get_by_test_id("audit-link").click()
        page.get_by_test_id("audit-phone").fill(candidate)
        page.get_by_test_id("audit-submit").click()
        approved = page.locator('[data-testid=audit-row][data-action="identity.review_approved"]')
        expect(approved).to_have_count(1)
        results = page.get_by_test_id("audit-results")
        expect(results).to_contain_text(f"{candidate[:3]}****{candidate[-4:]}")
        text = results.inner_text()
        assert candidate not in text and number not in text
        no_horizontal_scroll(page)
        save_screenshot(page, f"support-audit-{tag}")
        # By ID number: the address carries its blind index, never the number.
        page.get_by_test_id("audit-id-number").fill(number)
        page.get_by_test_id("audit-submit").click()
        expect(page).to_have_url(re.compile(r"id_index=[0-9a-f]{64}"))
        expect(approved).to_have_count(1)
        assert number not in page.url and number not in page.content()
    finally:
        context.close()
