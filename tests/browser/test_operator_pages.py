"""SPEC §4 operator console in a real Chromium: an operator creates a school and its admin from
the browser alone, changes the platform policy and goes back to its defaults, and the new
admin signs in and sees the school's console. Every page in
Chinese and English with no text of the other language, on a laptop (1280×800) and a tablet
(768 wide) without sideways scrolling.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, ViewportSize, expect
from sqlalchemy import delete

from tests.browser.conftest import LiveApp, save_screenshot, sign_in
from tests.browser.test_candidate_home import untranslated
from tests.helpers import PASSWORD, app_ctx
from vexam.accounts import service as accounts
from vexam.accounts.models import PlatformPolicyRow
from vexam.core.context import Role

pytestmark = pytest.mark.browser
LAPTOP: ViewportSize = {"width": 1280, "height": 800}
TABLET: ViewportSize = {"width": 768, "height": 1024}
# Latin a Chinese page of the console shows on purpose: the standard's name beside a zone.
CONSOLE_LATIN = {"IANA"}
PAGES = ["/operator", "/operator/staff", "/operator/policy", "/operator/refunds"]


@pytest.fixture
def operator(live_app: LiveApp, new_phone: Any) -> str:
    """The phone of an operator account (made with the CLI's service, as in production)."""
    phone = new_phone()

    async def _create() -> None:
        async with app_ctx(live_app.app, "browser-tests") as ctx:
            await accounts.create_user(ctx, phone, PASSWORD, role=Role.operator)

    live_app.run(_create)
    return phone


@pytest.fixture
def laptop(browser: Browser) -> Iterator[BrowserContext]:
    """A laptop-sized browser whose system asks for Chinese pages."""
    context = browser.new_context(viewport=LAPTOP, locale="zh-CN")
    context.set_default_timeout(10_000)
    try:
        yield context
    finally:
        context.close()


def fits(page: Page) -> None:
    """The page itself fits the window (wide tables scroll inside their own box)."""
    sizes = page.evaluate(
        "() => ({scroll: document.documentElement.scrollWidth, inner: window.innerWidth})"
    )
    assert sizes["scroll"] <= sizes["inner"], (page.url, sizes)


def all_said_in(page: Page, locale: str) -> None:
    words = [w for w in untranslated(page, locale) if w not in CONSOLE_LATIN]
    assert words == [], (page.url, words)


def _forget_policy(live_app: LiveApp) -> Any:
    """A coroutine factory deleting any saved platform policy (the run shares a database)."""

    async def _forget() -> None:
        async with app_ctx(live_app.app, "browser-tests") as ctx:
            await ctx.session.execute(delete(PlatformPolicyRow))

    return _forget


def test_operator_creates_a_school_and_its_admin(
    browser: Browser,
    laptop: BrowserContext,
    live_app: LiveApp,
    live_server: str,
    operator: str,
    new_phone: Any,
) -> None:
    """Schools → new school → its page → its admin → the admin's school console."""
    page = laptop.new_page()
    sign_in(page, live_server, operator)
    page.get_by_test_id("operator-link").click()
    expect(page.get_by_test_id("new-school-form")).to_be_visible()
    expect(page.locator("html")).to_have_attribute("lang", "zh-CN")

    slug = f"haiyun-{secrets.token_hex(3)}"
    page.locator("#slug").fill(slug)
    page.locator("#name").fill("海韵示范音乐学院")
    page.locator("#name_en").fill("Haiyun Model Conservatory")
    expect(page.locator("#timezone")).to_have_value("Asia/Shanghai")
    page.get_by_test_id("create-school").click()
    expect(page.get_by_test_id("operator-school-name")).to_have_text("海韵示范音乐学院")
    expect(page.get_by_test_id("operator-school-slug")).to_have_text(slug)
    expect(page.get_by_role("status")).to_be_visible()

    admin = new_phone()
    expect(page.get_by_test_id("role-school_admin")).to_be_checked()
    page.locator("#staff-phone").fill(admin)
    page.locator("#staff-display_name").fill("林老师")
    page.locator("#staff-password").fill(PASSWORD)
    page.get_by_test_id("create-staff").click()
    rows = page.get_by_test_id("staff-row")
    expect(rows).to_have_count(1)
    expect(rows.first).to_have_attribute("data-role", "school_admin")
    expect(rows.first).to_have_attribute("data-active", "yes")
    all_said_in(page, "zh_CN")
    fits(page)
    save_screenshot(page, "operator-school-zh")

    for path in PAGES:
        page.goto(f"{live_server}{path}")
        all_said_in(page, "zh_CN")
        fits(page)
    save_screenshot(page, "operator-refunds-zh")
    page.goto(f"{live_server}/operator/staff?school=")
    expect(page.get_by_test_id("staff-row").filter(has_text="林老师")).to_have_count(1)
    save_screenshot(page, "operator-staff-zh")
    page.goto(f"{live_server}/operator/policy")
    save_screenshot(page, "operator-policy-zh")
    # The operator changes the review deadline, then goes back to the server's defaults.
    try:
        page.locator("#support_sla_minutes").fill("90")
        page.locator("#device-tablet").check()
        page.get_by_test_id("save-policy").click()
        expect(page.get_by_test_id("policy-source")).to_have_attribute("data-stored", "yes")
        expect(page.locator("#support_sla_minutes")).to_have_value("90")
        expect(page.locator("#device-tablet")).to_be_checked()
        page.get_by_test_id("reset-policy").click()
        expect(page.get_by_test_id("policy-source")).to_have_attribute("data-stored", "no")
        expect(page.locator("#device-tablet")).not_to_be_checked()
    finally:
        live_app.run(_forget_policy(live_app))

    page.locator("a[lang=en]").click()  # the language link: English from here on
    expect(page.locator("html")).to_have_attribute("lang", "en")
    for path in PAGES:
        page.goto(f"{live_server}{path}")
        all_said_in(page, "en")
        fits(page)
        if path == "/operator":
            expect(page.get_by_test_id("operator-school").filter(has_text=slug)).to_contain_text(
                "Haiyun Model Conservatory"
            )
            save_screenshot(page, "operator-schools-en")
    page.get_by_test_id("operator-nav-schools").click()
    page.get_by_role("link", name="Haiyun Model Conservatory").click()
    expect(page.get_by_test_id("operator-school-name")).to_have_text("Haiyun Model Conservatory")
    all_said_in(page, "en")
    save_screenshot(page, "operator-school-en")

    page.set_viewport_size(TABLET)
    for path in [*PAGES, page.url.removeprefix(live_server)]:
        page.goto(f"{live_server}{path}")
        fits(page)
    save_screenshot(page, "operator-school-tablet")

    # The new admin, on a computer of their own, signs in and finds their school's console.
    other = browser.new_context(viewport=LAPTOP, locale="zh-CN")
    try:
        theirs = other.new_page()
        sign_in(theirs, live_server, admin)
        expect(theirs.get_by_test_id("operator-link")).to_have_count(0)
        theirs.get_by_test_id("school-link").click()
        expect(theirs.get_by_test_id("school-name")).to_have_text("海韵示范音乐学院")
        save_screenshot(theirs, "operator-new-admin-console")
        refused = theirs.goto(f"{live_server}/operator")
        assert refused is not None and refused.status == 403
    finally:
        other.close()
