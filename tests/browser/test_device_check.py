"""SPEC §7 device self-check in a real Chromium on a 360 px phone with a fake camera: camera,
microphone, upload speed to the server, free storage and browser support, each with a
verdict and advice; the upload probe refuses an oversize body and anyone signed out."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from PIL import Image
from playwright.sync_api import Browser, Page, Playwright, expect

from tests.browser.conftest import launch_with_camera, phone_context, save_screenshot
from tests.browser.test_candidate_home import (
    NARROW,
    no_horizontal_scroll,
    sign_in,
    untranslated,
)
from tests.browser.test_identity_pages import write_y4m
from vexam.support.pages import PROBE_MAX_BYTES

pytestmark = pytest.mark.browser
CHECKS = ("camera", "microphone", "upload", "storage", "support")
# What each check may conclude on this machine: the fake camera is 640×480, the fake
# microphone beeps, the server is on loopback; storage and the (desktop) user agent vary.
EXPECTED = {
    "camera": {"ok"},
    "microphone": {"ok", "warn"},
    "upload": {"ok"},
    "storage": {"ok", "warn", "fail"},
    "support": {"ok", "warn"},
}
RUN_MS = 30_000


@pytest.fixture(scope="module")
def camera_browser(
    playwright: Playwright, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Browser]:
    """Chromium whose camera films a plain 640×480 picture (no face needed for this page)."""
    frames = [Image.new("RGB", (640, 480), (40 + 15 * i, 120, 200)) for i in range(10)]
    video: Path = tmp_path_factory.mktemp("camera") / "plain.y4m"
    write_y4m(video, frames)
    browser = launch_with_camera(playwright, video)
    try:
        yield browser
    finally:
        browser.close()


@pytest.fixture
def phone(camera_browser: Browser) -> Iterator[Page]:
    context = phone_context(camera_browser)
    try:
        page = context.new_page()
        page.set_viewport_size(NARROW)
        yield page
    finally:
        context.close()


def run_check(page: Page) -> dict[str, str]:
    """Press Start and wait for every verdict; {check: verdict}."""
    page.get_by_test_id("run-check").click()
    expect(page.get_by_test_id("check-summary")).to_be_visible(timeout=RUN_MS)
    verdicts = {}
    for key in CHECKS:
        row = page.get_by_test_id(f"check-{key}")
        verdicts[key] = row.get_attribute("data-verdict") or ""
        assert row.locator('[data-role="advice"]').inner_text().strip(), key
    return verdicts


def test_every_check_gives_a_verdict_with_advice(
    phone: Page, live_server: str, existing_account: tuple[str, str]
) -> None:
    """§7: camera, microphone, upload, storage and support each get a verdict and advice."""
    errors: list[str] = []
    phone.on("pageerror", lambda error: errors.append(str(error)))
    sign_in(phone, live_server, existing_account[0])
    phone.get_by_test_id("device-check-link").click()
    expect(phone).to_have_url(f"{live_server}/device-check")
    expect(phone.get_by_test_id("check-camera")).to_have_attribute("data-verdict", "pending")
    assert untranslated(phone, "zh_CN") == []

    verdicts = run_check(phone)
    for key in CHECKS:
        assert verdicts[key] in EXPECTED[key], (key, verdicts)
    expect(phone.get_by_test_id("check-camera")).to_contain_text("640×480")
    expect(phone.get_by_test_id("check-upload")).to_contain_text("Mbit/s")
    summary = phone.get_by_test_id("check-summary")
    assert summary.get_attribute("data-verdict") in {"ok", "warn", "fail"}
    stored = phone.evaluate("() => JSON.parse(localStorage.getItem('vexam.deviceCheck'))")
    assert stored["verdicts"] == verdicts
    assert untranslated(phone, "zh_CN") == []
    no_horizontal_scroll(phone)
    save_screenshot(phone, "device-check-zh")

    phone.locator("nav.lang a").click()
    expect(phone.locator("html")).to_have_attribute("lang", "en")
    verdicts = run_check(phone)
    assert verdicts["camera"] == "ok", verdicts
    expect(phone.get_by_test_id("check-camera")).to_contain_text("The camera works")
    assert untranslated(phone, "en") == []
    no_horizontal_scroll(phone)
    save_screenshot(phone, "device-check-en")
    assert errors == []


def test_upload_probe_needs_sign_in_and_refuses_oversize(
    page: Page, live_server: str, existing_account: tuple[str, str]
) -> None:
    """The probe reads and discards a few MB; more is `upload_too_large`; signed out, 401."""
    signed_out = httpx.post(
        f"{live_server}/device-check/upload",
        content=b"\0" * 1024,
        headers={"Accept": "application/json", "Content-Type": "application/octet-stream"},
    )
    assert signed_out.status_code == 401
    assert signed_out.json()["code"] == "not_authenticated"

    sign_in(page, live_server, existing_account[0])
    token = page.locator('meta[name="csrf-token"]').get_attribute("content")
    assert token
    headers = {
        "X-CSRF-Token": token,
        "Content-Type": "application/octet-stream",
        "Accept": "application/json",
    }
    url = f"{live_server}/device-check/upload"
    fine = page.request.post(url, data=b"\0" * (1024 * 1024), headers=headers)
    assert fine.status == 200, fine.text()
    assert fine.json() == {"received": 1024 * 1024}

    too_big = page.request.post(url, data=b"\0" * (PROBE_MAX_BYTES + 1), headers=headers)
    assert too_big.status == 413
    problem = too_big.json()
    assert problem["code"] == "upload_too_large"
    assert str(PROBE_MAX_BYTES) in problem["detail"] or problem.get("max_bytes") == PROBE_MAX_BYTES
