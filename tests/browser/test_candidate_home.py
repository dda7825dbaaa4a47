"""SPEC §3–§5 in a real Chromium on a 360 px phone: the candidate's home says what to do next
and follows the server without a reload; the exam list shows the windows in the school's
time zone (named), the attempts and the ways into the mock and formal exams."""

from __future__ import annotations

import re
import secrets
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest
from playwright.sync_api import Page, expect
from sqlalchemy import update

from tests.browser.conftest import (
    LiveApp,
    no_horizontal_scroll,
    open_from_home,
    save_screenshot,
    sign_in,
)
from tests.exams.test_enrollment import add_roster_row
from tests.exams.test_exam_setup import exam_body
from tests.exams.test_sittings import PHONE, SHA, device, force_face
from tests.helpers import PASSWORD, app_ctx
from tests.identity.conftest import manual_entry, new_id_number
from vexam.accounts import service as accounts
from vexam.core.context import Principal, Role
from vexam.core.i18n import format_datetime
from vexam.exams import enrollment
from vexam.exams import schemas as exam_schemas
from vexam.exams import service as exams
from vexam.exams.models import Submission
from vexam.identity import schemas as identity_schemas
from vexam.identity import service as identity
from vexam.schools import service as schools

pytestmark = pytest.mark.browser
NARROW = {"width": 360, "height": 740}
# The home page polls every 5 s: a change shows within two polls.
FOLLOW_MS = 15_000
LATIN_WORD = re.compile(r"[A-Za-z]{3,}")
CJK = re.compile(r"[\u3400-\u9fff]")
# Latin words a Chinese page may show: the language link, the brand, names of zones, units.
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
    "Urumqi",
    "min",
}
# Chinese an English page shows on purpose: the official words, next to their English.
KEPT_CHINESE = ("北京时间", "考生号", "确认考试", "高考省份", "中文")


def principal(user_id: int, role: Role = Role.candidate) -> Principal:
    return Principal(
        user_id=user_id, role=role, school_id=None, locale=None, session_id=0, masked_phone=""
    )


def untranslated(page: Page, locale: str) -> list[str]:
    """Words of the other language in the visible text of `page`.

    Data is left out: `translate="no"` (names, devices), `<code>` (codes), `[lang]` (the
    language link).
    """
    shown = page.evaluate(
        """() => { const copy = document.body.cloneNode(true);
        copy.querySelectorAll('code, script, noscript, [lang], [translate="no"], [hidden]')
            .forEach((node) => node.remove());
        return copy.innerText; }"""
    )
    if locale == "zh_CN":
        return [word for word in LATIN_WORD.findall(shown) if word not in ALLOWED_LATIN]
    for kept in KEPT_CHINESE:
        shown = shown.replace(kept, "")
    return CJK.findall(shown)


def enrolled_candidate(
    live_app: LiveApp,
    phone: str,
    *,
    starts_in: timedelta,
    lasts: timedelta = timedelta(days=2),
    timezone: str = "Asia/Shanghai",
    fee_cents: int = 18000,
    **exam_changes: Any,
) -> dict[str, Any]:
    """A certified candidate (张三) enrolled in a published exam of a school in `timezone`."""
    number = new_id_number()

    async def _setup() -> dict[str, Any]:
        async with app_ctx(live_app.app, "browser-tests") as ctx:
            ctx.extra.update(live_app.app.state.resources)
            user = await accounts.create_user(ctx, phone, PASSWORD)
            me = principal(user.id)
            body = identity_schemas.CertificationIn.model_validate(manual_entry(number))
            await identity.submit(ctx, me, body)
            held = await identity.identity_of(ctx, user.id)
            assert held is not None
            # As support's approval does (the review itself is tested in tests/identity).
            await identity.certify(
                ctx, held, via="manual_review", from_status=identity.Status.review_required
            )
            school = await schools.create_school(
                ctx,
                f"s-{secrets.token_hex(4)}",
                "边疆艺术学院",
                name_en="Frontier Arts",
                timezone=timezone,
            )
            starts = (ctx.now() + starts_in).replace(second=0, microsecond=0)
            exam = exam_body(published=True, fee_cents=fee_cents, **exam_changes)
            exam["formal_starts_at"] = starts.isoformat()
            exam["formal_ends_at"] = (starts + lasts).isoformat()
            created = await exams.create_exam(
                ctx,
                principal(0, Role.operator),
                school.id,
                exam_schemas.ExamIn.model_validate(exam),
            )
            return {
                "user_id": user.id,
                "school_id": school.id,
                "exam_id": created.id,
                "starts": starts,
                "ends": starts + lasts,
            }

    world = live_app.run(_setup)
    live_app.run(lambda: add_roster_row(live_app.app, world["school_id"], world["exam_id"], number))

    async def _enrol() -> None:
        async with app_ctx(live_app.app, "browser-tests") as ctx:
            ctx.extra.update(live_app.app.state.resources)
            me = principal(world["user_id"])
            await enrollment.apply(ctx, me, world["exam_id"], exam_schemas.ApplyIn(province="北京"))
            await enrollment.confirm(ctx, me, world["exam_id"])

    live_app.run(_enrol)
    return world


def pay(live_app: LiveApp, world: dict[str, Any]) -> None:
    """Pay the candidate's fee in the sandbox, as the gateway's callback would."""

    async def _pay() -> None:
        async with app_ctx(live_app.app, "browser-tests") as ctx:
            ctx.extra.update(live_app.app.state.resources)
            me = principal(world["user_id"])
            order = await enrollment.create_order(ctx, me, world["exam_id"])
            await enrollment.sandbox_pay(ctx, me, order.id)

    live_app.run(_pay)


def test_home_says_what_next_and_follows_the_server(
    page: Page, live_server: str, live_app: LiveApp, new_phone: Any
) -> None:
    """§3–§5: certified and enrolled → pay; paid on the server → the page moves on to the
    device check, then the mock exam, without a reload."""
    phone = new_phone()
    world = enrolled_candidate(live_app, phone, starts_in=timedelta(days=1))
    exam_id = world["exam_id"]
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.set_viewport_size(NARROW)
    sign_in(page, live_server, phone)

    panel = page.get_by_test_id("next-step")
    expect(panel).to_have_attribute("data-step", "pay")
    expect(panel).to_have_attribute("aria-live", "polite")
    expect(panel).to_contain_text("¥180.00")
    expect(page.get_by_test_id("next-step-action")).to_have_attribute(
        "href", f"/exams#exam-{exam_id}"
    )
    expect(page.get_by_test_id("cert-state")).to_have_attribute("data-status", "certified")
    item = page.get_by_test_id(f"home-exam-{exam_id}")
    expect(item).to_contain_text("钢琴演奏")
    expect(item.get_by_test_id("home-exam-window")).to_contain_text(
        shown_window(world["starts"], world["ends"], "Asia/Shanghai", "zh_CN")
    )
    expect(page.get_by_test_id("help-link")).to_be_visible()
    no_horizontal_scroll(page)
    assert untranslated(page, "zh_CN") == []
    save_screenshot(page, "home-pay-zh")

    page.evaluate("() => { window.stillThisPage = true; }")
    pay(live_app, world)
    expect(panel).to_have_attribute("data-step", "device_check", timeout=FOLLOW_MS)
    expect(page.get_by_test_id("next-step-action")).to_have_attribute("href", "/device-check")

    # The device check on this phone passed (device-check.js keeps its result so).
    page.evaluate(
        """() => localStorage.setItem('vexam.deviceCheck',
        JSON.stringify({at: Date.now(), verdict: 'ok', verdicts: {}}))"""
    )
    expect(panel).to_have_attribute("data-step", "mock", timeout=FOLLOW_MS)
    expect(page.get_by_test_id("next-step-action")).to_have_attribute(
        "href", f"/exams/{exam_id}/take?mode=mock"
    )
    assert page.evaluate("() => window.stillThisPage") is True
    no_horizontal_scroll(page)
    save_screenshot(page, "home-mock-zh")

    page.locator("nav.lang a").click()
    expect(page.locator("html")).to_have_attribute("lang", "en")
    expect(panel).to_have_attribute("data-step", "mock")
    expect(panel).to_contain_text("Piano performance")
    assert untranslated(page, "en") == []
    no_horizontal_scroll(page)
    save_screenshot(page, "home-mock-en")
    assert errors == []


def test_home_before_certification_points_to_identity(
    page: Page, live_server: str, existing_account: tuple[str, str]
) -> None:
    """§3: an account without a certification is sent to certify first."""
    page.set_viewport_size(NARROW)
    sign_in(page, live_server, existing_account[0])
    expect(page.get_by_test_id("next-step")).to_have_attribute("data-step", "certify")
    expect(page.get_by_test_id("next-step-action")).to_have_attribute("href", "/identity")
    expect(page.get_by_test_id("cert-state")).to_have_attribute("data-status", "not_started")
    no_horizontal_scroll(page)


def shown_window(starts: datetime, ends: datetime, zone: str, locale: str) -> str:
    return f"{format_datetime(starts, zone, locale)} – {format_datetime(ends, zone, locale)}"


def test_exam_list_shows_windows_in_the_school_zone_and_the_ways_in(
    page: Page, live_server: str, live_app: LiveApp, new_phone: Any
) -> None:
    """§4–§5: windows in the school's zone with the zone named, attempts per subject, and
    the mock and formal exams' take pages."""
    phone = new_phone()
    zone = "Asia/Urumqi"
    world = enrolled_candidate(live_app, phone, starts_in=-timedelta(hours=1), timezone=zone)
    pay(live_app, world)
    exam_id = world["exam_id"]
    page.set_viewport_size(NARROW)
    sign_in(page, live_server, phone)
    open_from_home(page, "exams-link")

    card = page.get_by_test_id(f"application-{exam_id}")
    taking = card.get_by_test_id("taking")
    expect(taking).to_have_attribute("data-window", "open")
    expect(taking.get_by_test_id("time-zone")).to_contain_text(zone)
    expect(taking.get_by_test_id("formal-window")).to_have_text(
        shown_window(world["starts"], world["ends"], zone, "zh_CN")
    )
    expect(taking.get_by_test_id("upload-ends")).to_have_text(
        format_datetime(world["ends"] + timedelta(hours=24), zone, "zh_CN")
    )
    subjects = taking.get_by_test_id("subject")
    expect(subjects).to_have_count(2)
    expect(subjects.nth(0).get_by_test_id("attempts")).to_contain_text("2")
    expect(subjects.nth(1).get_by_test_id("attempts")).to_contain_text("10")
    expect(taking.get_by_test_id("take-formal")).to_have_attribute(
        "href", f"/exams/{exam_id}/take?mode=formal"
    )
    expect(taking.get_by_test_id("take-mock")).to_have_attribute(
        "href", f"/exams/{exam_id}/take?mode=mock"
    )
    expect(taking.get_by_test_id("uploads-link")).to_have_count(0)
    no_horizontal_scroll(page)
    assert untranslated(page, "zh_CN") == []
    save_screenshot(page, "exam-list-zh")

    page.locator("nav.lang a").click()
    expect(page.locator("html")).to_have_attribute("lang", "en")
    taking = page.get_by_test_id(f"application-{exam_id}").get_by_test_id("taking")
    expect(taking.get_by_test_id("formal-window")).to_have_text(
        shown_window(world["starts"], world["ends"], zone, "en")
    )
    expect(taking.get_by_test_id("take-formal")).to_have_text("Take the formal exam")
    assert untranslated(page, "en") == []
    no_horizontal_scroll(page)
    save_screenshot(page, "exam-list-en")


def submit_one_recording(live_server: str, live_app: LiveApp, phone: str, exam_id: int) -> int:
    """Start the formal exam from an app, record and submit subject 1; the submission id."""
    with httpx.Client(base_url=live_server, timeout=10) as api:
        token = api.post("/api/v1/auth/login", json={"phone": phone, "password": PASSWORD})
        assert token.status_code == 200, token.text
        who = {"Authorization": f"Bearer {token.json()['token']}", **device("a")}
        started = api.post(f"/api/v1/exams/{exam_id}/sittings", json={}, headers=who)
        assert started.status_code == 200, started.text
        sitting = started.json()
        live_app.run(lambda: force_face(live_app.app, sitting["id"], "a"))
        checked = api.post(
            f"/api/v1/sittings/{sitting['id']}/device-check", json=PHONE, headers=who
        )
        assert checked.status_code == 200, checked.text
        subject_id = sitting["subjects"][0]["subject_id"]
        recording = api.post(
            f"/api/v1/sittings/{sitting['id']}/subjects/{subject_id}/recordings",
            json={},
            headers=who,
        )
        assert recording.status_code == 201, recording.text
        recording_id = recording.json()["id"]
        done = api.post(
            f"/api/v1/recordings/{recording_id}/complete",
            json={"duration_seconds": 2},
            headers=who,
        )
        assert done.status_code == 200, done.text
        receipt = api.post(
            f"/api/v1/sittings/{sitting['id']}/subjects/{subject_id}/submission",
            json={"recording_id": recording_id, "sha256": SHA, "size_bytes": 1234},
            headers=who,
        )
        assert receipt.status_code == 201, receipt.text
        return int(receipt.json()["submission_id"])


def test_a_submission_waiting_then_verified(
    page: Page, live_server: str, live_app: LiveApp, new_phone: Any
) -> None:
    """§5: a submitted recording waits for its upload → home and exam list send to /uploads
    with the attempts left; once the server verifies it, the home says nothing more to do."""
    phone = new_phone()
    subject = {"name": "练习曲", "attempts": 2, "max_seconds": 300, "orientation": "landscape"}
    world = enrolled_candidate(
        live_app, phone, starts_in=-timedelta(hours=1), fee_cents=0, subjects=[subject]
    )
    exam_id = world["exam_id"]
    submission_id = submit_one_recording(live_server, live_app, phone, exam_id)
    page.set_viewport_size(NARROW)
    sign_in(page, live_server, phone)

    panel = page.get_by_test_id("next-step")
    expect(panel).to_have_attribute("data-step", "upload")
    expect(page.get_by_test_id("next-step-action")).to_have_attribute("href", "/uploads")
    no_horizontal_scroll(page)
    save_screenshot(page, "home-upload-zh")

    open_from_home(page, "exams-link")
    taking = page.get_by_test_id(f"application-{exam_id}").get_by_test_id("taking")
    expect(taking.get_by_test_id("uploads-link")).to_have_attribute("href", "/uploads")
    expect(taking.get_by_test_id("subject")).to_have_attribute("data-attempts-left", "1")
    expect(taking.get_by_test_id("formal-done")).to_be_visible()
    assert untranslated(page, "zh_CN") == []
    no_horizontal_scroll(page)

    page.go_back()
    expect(panel).to_have_attribute("data-step", "upload")

    async def _verified() -> None:
        # As the media check does once the upload's bytes hash to the receipt.
        async with app_ctx(live_app.app, "browser-tests") as ctx:
            await ctx.session.execute(
                update(Submission)
                .where(Submission.id == submission_id)
                .values(upload_state="verified")
            )

    live_app.run(_verified)
    expect(panel).to_have_attribute("data-step", "verified", timeout=FOLLOW_MS)
    save_screenshot(page, "home-verified-zh")
