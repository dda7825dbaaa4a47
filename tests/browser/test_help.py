"""SPEC §7 help centre in a real Chromium on a phone screen: public, searchable on the server
(no JavaScript needed) in Chinese and English, and covering the catalogue's candidate codes."""

from __future__ import annotations

import re

import httpx
import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import no_horizontal_scroll, save_screenshot
from vexam.core.errors import CATALOGUE
from vexam.support import help_topics

pytestmark = pytest.mark.browser
NARROW = {"width": 360, "height": 740}
# Words of another language allowed on a page: the language link, codes, names of zones.
LATIN_WORD = re.compile(r"[A-Za-z]{3,}")
CJK = re.compile(r"[\u3400-\u9fff]")
ALLOWED_LATIN = {
    "English",
    "vexam",
    "SHA",
    "JPEG",
    "PNG",
    "Wi",
    "Fi",
    "Android",
    "HarmonyOS",
    "iOS",
    "Mbit",
    "Asia",
    "Shanghai",
}
# The codes a candidate can meet in SPEC §2–§5 (staff-only and protocol codes excepted).
NOT_FOR_CANDIDATES = {
    "invalid_request",
    "not_found",
    "method_not_allowed",
    "not_authenticated",
    "forbidden",
    "csrf_failed",
    "internal_error",
    "service_unavailable",
    "client_version_invalid",
    "device_id_invalid",
    "session_not_found",
    "school_not_found",
    "exam_not_found",
    "exam_window_invalid",
    "exam_setting_invalid",
    "exam_code_taken",
    "roster_invalid",
    "roster_import_not_found",
    "roster_row_not_found",
    "payment_callback_invalid",
    "payment_not_refundable",
    "sitting_not_found",
    "recording_not_found",
    "liveness_challenge_invalid",
    "submission_not_found",
    "tus_version_unsupported",
    "upload_length_required",
    "upload_metadata_invalid",
    "upload_too_large",
    "upload_exceeds_length",
    "upload_offset_invalid",
    "upload_content_type",
    "upload_checksum_invalid",
    "upload_checksum_algorithm",
    "upload_chunk_checksum_mismatch",
    "upload_finished",
    "upload_already_complete",
    # §6 review and §8 playback: met by school staff and viewers of videos, not in §2–§5
    "review_item_not_found",
    "scores_locked",
    "score_invalid",
    "rubric_invalid",
    "reviewer_not_found",
    "assignment_not_found",
    "review_setting_invalid",
    "playback_unavailable",
    "media_link_invalid",
    "media_link_expired",
    "media_not_ready",
    "media_range_invalid",
    "policy_setting_invalid",
}


def untranslated(page: Page, locale: str) -> list[str]:
    """Words of the other language in the visible text of `page` (outside <code>)."""
    shown = page.evaluate(
        """() => { const copy = document.body.cloneNode(true);
        copy.querySelectorAll('code, script, [lang]').forEach((node) => node.remove());
        return copy.innerText; }"""
    )
    if locale == "zh_CN":
        return [word for word in LATIN_WORD.findall(shown) if word not in ALLOWED_LATIN]
    return CJK.findall(shown.replace("北京时间", "").replace("考生号", "").replace("确认考试", ""))


def test_every_candidate_code_has_an_answer() -> None:
    """§7: the help covers every catalogue code a candidate may meet in §2–§5."""
    covered = {code for topic in help_topics.TOPICS for code in topic.codes}
    assert covered <= set(CATALOGUE), covered - set(CATALOGUE)
    wanted = set(CATALOGUE) - NOT_FOR_CANDIDATES
    assert wanted <= covered, sorted(wanted - covered)


def test_search_in_chinese_and_english_signed_out(page: Page, live_server: str) -> None:
    """Signed out, without JavaScript's help: a Chinese and an English query find their answer."""
    page.set_viewport_size(NARROW)
    page.goto(f"{live_server}/help")
    expect(page.locator("html")).to_have_attribute("lang", "zh-CN")
    expect(page.locator("h1")).to_have_text("帮助中心")
    expect(page.locator("details")).to_have_count(len(help_topics.TOPICS))
    assert untranslated(page, "zh_CN") == []
    no_horizontal_scroll(page)

    page.get_by_test_id("help-query").fill("收不到验证码")
    page.get_by_test_id("help-submit").click()
    expect(page).to_have_url(re.compile(r"/help\?q="))
    first = page.get_by_test_id("help-result").first
    expect(first).to_have_attribute("data-slug", "sms-not-arriving")
    expect(first).to_contain_text("60")
    no_horizontal_scroll(page)
    save_screenshot(page, "help-search-zh")

    # A catalogue code seen on a page finds its answer too.
    page.goto(f"{live_server}/help?q=upload_checksum_mismatch")
    expect(page.get_by_test_id("help-result").first).to_have_attribute(
        "data-slug", "upload-refused"
    )

    page.goto(f"{live_server}/lang/en?next=/help")
    expect(page.locator("html")).to_have_attribute("lang", "en")
    assert untranslated(page, "en") == []
    page.get_by_test_id("help-query").fill("face mismatch")
    page.get_by_test_id("help-query").press("Enter")
    first = page.get_by_test_id("help-result").first
    expect(first).to_have_attribute("data-slug", "face-check-fails")
    expect(first).to_contain_text("manual review")
    page.get_by_test_id("help-query").fill("grace period upload")
    page.get_by_test_id("help-query").press("Enter")
    expect(page.get_by_test_id("help-result").first).to_have_attribute("data-slug", "upload-resume")
    page.get_by_test_id("help-query").fill("zzqx")
    page.get_by_test_id("help-query").press("Enter")
    expect(page.get_by_test_id("help-none")).to_be_visible()
    no_horizontal_scroll(page)
    save_screenshot(page, "help-en")


def test_help_is_public(live_server: str) -> None:
    """§7: the help centre answers before signing in (it is where a locked-out person goes)."""
    response = httpx.get(f"{live_server}/help?q=password", headers={"Accept": "text/html"})
    assert response.status_code == 200
    assert 'data-slug="password-reset"' in response.text
