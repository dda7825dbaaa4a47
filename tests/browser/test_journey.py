"""The whole candidate journey (SPEC §2–§5) on an emulated Pixel phone in Chromium, through
the pages only: register → certify (typed details with the card photo, the live selfie with
its head turn) → apply → confirm → pay in the sandbox → mock exam → formal exam with two
subjects → submit → upload → verified.

The camera films a real face (the identity tests' camera: facing, then turned to the left).
The school, its exam and its roster are set up as the school console leaves them.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Callable
from datetime import timedelta
from io import BytesIO
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, Playwright, expect
from sqlalchemy import select

from tests.browser.conftest import LiveApp, open_from_home, save_screenshot
from tests.browser.test_exam_pages import principal
from tests.browser.test_identity_pages import camera_browser as camera_browser  # the fixture
from tests.browser.test_identity_pages import engines as engines  # the fixture
from tests.browser.test_identity_pages import only_left_turns
from tests.browser.test_take_page import no_horizontal_scroll, recordings_of, seconds_left_at_most
from tests.exams.test_enrollment import add_roster_row
from tests.exams.test_exam_setup import exam_body
from tests.helpers import PASSWORD, app_ctx
from tests.identity.cardgen import cjk_font_path, make_card
from tests.identity.conftest import new_id_number
from tests.identity.test_faces import SHARED_FACES, camera_image
from vexam.core.context import Role
from vexam.exams import schemas as exam_schemas
from vexam.exams import service as exams
from vexam.exams import uploads
from vexam.exams.models import Sitting, Submission, Upload
from vexam.identity.engines import IdentityEngines
from vexam.schools import service as schools

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        not SHARED_FACES.is_dir(), reason=f"shared face photos not found at {SHARED_FACES}"
    ),
    pytest.mark.skipif(cjk_font_path() is None, reason="fonts-noto-cjk is not installed"),
]
PHONE_MODEL = "Pixel 7"
RECORD_S = 2


def school_with_exam(live_app: LiveApp, id_number: str) -> dict[str, int]:
    """A school with a published paid exam open now (two subjects, mock exams on) and a
    roster row for 张三 of 北京 with `id_number`."""

    async def _setup() -> dict[str, int]:
        async with app_ctx(live_app.app, "browser-tests") as ctx:
            school = await schools.create_school(
                ctx, f"s-{secrets.token_hex(4)}", "星海音乐学院", name_en="Xinghai Conservatory"
            )
            now = ctx.now()
            settings = exam_body(
                published=True,
                fee_cents=18000,
                subjects=[
                    {
                        "name": "练习曲",
                        "attempts": 3,
                        "max_seconds": 60,
                        "orientation": "landscape",
                        "camera": "front",
                        "prompt": "请演奏一首练习曲",
                    },
                    {
                        "name": "乐曲",
                        "attempts": 2,
                        "max_seconds": 60,
                        "orientation": "choice",
                        "prompt": "请演奏一首自选乐曲",
                    },
                ],
            )
            settings["formal_starts_at"] = (now - timedelta(days=1)).isoformat()
            settings["formal_ends_at"] = (now + timedelta(days=30)).isoformat()
            created = await exams.create_exam(
                ctx,
                principal(0, Role.operator),
                school.id,
                exam_schemas.ExamIn.model_validate(settings),
            )
            return {"school_id": school.id, "exam_id": created.id}

    world = live_app.run(_setup)
    live_app.run(
        lambda: add_roster_row(live_app.app, world["school_id"], world["exam_id"], id_number)
    )
    return world


def register(page: Page, base: str, phone: str, sms_code: Callable[..., str]) -> None:
    page.goto(f"{base}/register")
    page.locator("input[name=phone]").fill(phone)
    page.locator("button[name=action][value=send_code]").click()
    expect(page.locator("p.alert.notice")).to_be_visible()
    page.locator("input[name=code]").fill(sms_code(phone))
    page.locator("input[name=password]").fill(PASSWORD)
    page.locator("button[name=action][value=register]").click()
    expect(page.get_by_test_id("identity-link")).to_be_visible()


def certify(page: Page, engines: IdentityEngines, id_number: str) -> None:
    """Type the details, keep the card photo for the face comparison, pass the live check."""
    open_from_home(page, "identity-link")
    expect(page.get_by_test_id("identity-status")).to_have_attribute("data-status", "not_started")
    portrait = camera_image(
        engines.faces(), "obama_2", face_width=150, centre=(160, 190), size=(320, 410)
    )
    card, _ = make_card(203, portrait=portrait)
    photo = BytesIO()
    card.convert("RGB").save(photo, "JPEG", quality=88)
    page.get_by_test_id("card-photo").set_input_files(
        {"name": "card.jpg", "mimeType": "image/jpeg", "buffer": photo.getvalue()}
    )
    page.locator("#keep-photo").click()
    expect(page.locator("#id-photo-id")).not_to_have_value("", timeout=20_000)
    page.locator("input[name=name]").fill("张三")
    page.locator("input[name=id_number]").fill(id_number)
    page.get_by_test_id("submit-identity").click()
    expect(page.get_by_test_id("identity-status")).to_have_attribute(
        "data-status", "face_pending", timeout=20_000
    )
    page.route("**/api/v1/identity/face/challenge", only_left_turns)
    page.get_by_test_id("start-face").click()
    expect(page.get_by_test_id("identity-status")).to_have_attribute(
        "data-status", "certified", timeout=30_000
    )
    page.unroute("**/api/v1/identity/face/challenge")


def apply_and_pay(page: Page, base: str, exam_id: int) -> None:
    page.goto(f"{base}/")
    open_from_home(page, "exams-link")
    page.get_by_test_id("search-input").fill("星海")
    page.get_by_test_id("search").click()
    page.get_by_test_id(f"result-{exam_id}").get_by_test_id("apply-link").click()
    page.get_by_test_id("province").select_option("11")
    page.get_by_test_id("apply").click()
    expect(page.get_by_test_id("roster-name")).to_have_text("张三")
    page.get_by_test_id("confirm").click()
    card = page.get_by_test_id(f"application-{exam_id}")
    card.get_by_test_id("pay").click()
    card = page.get_by_test_id(f"application-{exam_id}")
    expect(card.get_by_test_id("payment-state")).to_have_attribute("data-state", "paid")
    expect(card.get_by_test_id("mock-state")).to_have_attribute("data-state", "open")


def checks(page: Page) -> None:
    """Start the sitting and pass the face verification and device check.

    The camera turns its head for the selfie's liveness test now and then; a frame caught
    mid-turn may not be recognised, and the candidate simply tries again, as on a phone.
    """
    expect(page.get_by_test_id("take-app")).to_have_attribute("data-ready", "true")
    page.get_by_test_id("start-sitting").click()
    expect(page.get_by_test_id("step-checks")).to_be_visible()
    for _ in range(4):
        page.get_by_test_id("verify-face").click()
        expect(page.get_by_test_id("verify-face")).to_be_enabled(timeout=30_000)
        if page.get_by_test_id("step-checks").is_hidden():
            break
    expect(page.get_by_test_id("step-checks")).to_be_hidden()


def record_and_submit(page: Page, position: int, orientation: str | None = None) -> int:
    """Record one take of subject `position`, submit it; the submission's number."""
    page.get_by_test_id(f"open-subject-{position}").click()
    if orientation:
        page.get_by_test_id(f"orientation-{orientation}").check()
        page.get_by_test_id("orientation-next").click()
    page.get_by_test_id("record-start").click()
    expect(page.get_by_test_id("rec-badge")).to_be_visible()
    seconds_left_at_most(page, 60 - RECORD_S)
    page.get_by_test_id("record-stop").click()
    expect(page.get_by_test_id("take-1")).to_be_visible(timeout=15_000)
    page.get_by_test_id("pick-1").check()
    page.get_by_test_id("submit-take").click()
    page.get_by_test_id("confirm-yes").click()
    expect(page.get_by_test_id("step-receipt")).to_be_visible(timeout=15_000)
    expect(page.get_by_test_id("kept-status")).to_have_attribute(
        "data-state", "kept", timeout=15_000
    )
    number = page.get_by_test_id("receipt-number").inner_text()
    return int(number.lstrip("#"))


def test_candidate_journey_from_registration_to_verified_upload(
    camera_browser: Browser,
    playwright: Playwright,
    engines: IdentityEngines,
    live_server: str,
    live_app: LiveApp,
    new_phone: Callable[[], str],
    sms_code: Callable[..., str],
) -> None:
    """§2–§5 in one go, as a new candidate on a phone does it, without help."""
    phone, id_number = new_phone(), new_id_number()
    world = school_with_exam(live_app, id_number)
    exam_id = world["exam_id"]
    device: dict[str, Any] = {
        key: value
        for key, value in playwright.devices[PHONE_MODEL].items()
        if key != "default_browser_type"
    }
    context = camera_browser.new_context(**device, locale="zh-CN")
    context.set_default_timeout(15_000)
    try:
        page = context.new_page()
        register(page, live_server, phone, sms_code)
        certify(page, engines, id_number)
        apply_and_pay(page, live_server, exam_id)

        # The mock exam, from the exam list.
        page.get_by_test_id(f"application-{exam_id}").get_by_test_id("take-mock").click()
        expect(page).to_have_url(re.compile(rf"/exams/{exam_id}/take\?mode=mock"))
        checks(page)
        mock = record_and_submit(page, 1)
        page.get_by_test_id("receipt-back").click()

        # The formal exam, two subjects.
        page.goto(f"{live_server}/exams")
        page.get_by_test_id(f"application-{exam_id}").get_by_test_id("take-formal").click()
        checks(page)
        first = record_and_submit(page, 1)
        page.get_by_test_id("receipt-back").click()
        second = record_and_submit(page, 2, orientation="portrait")
        no_horizontal_scroll(page)
        save_screenshot(page, "journey-receipt")

        # Upload everything kept on the phone, then the server verifies each file.
        page.get_by_test_id("upload-link").click()
        expect(page).to_have_url(re.compile(r"/uploads"))
        for submission_id in (mock, first, second):
            expect(page.get_by_test_id(f"upload-{submission_id}")).to_have_attribute(
                "data-state", "verified", timeout=60_000
            )
        save_screenshot(page, "journey-uploads")
    finally:
        context.close()

    async def _submissions() -> list[tuple[Sitting, Submission]]:
        async with app_ctx(live_app.app) as ctx:
            found = await ctx.session.execute(
                select(Sitting, Submission)
                .join(Submission, Submission.sitting_id == Sitting.id)
                .where(Sitting.exam_id == exam_id)
                .order_by(Submission.id)
            )
            return [(sitting, submission) for sitting, submission in found.all()]

    held = live_app.run(_submissions)
    assert [(s.mode, sub.id) for s, sub in held] == [
        ("mock", mock),
        ("formal", first),
        ("formal", second),
    ]
    newest = live_app.run(lambda: upload_ids(live_app, [sub.id for _, sub in held]))
    for _, submission in held:
        assert submission.upload_state == "verified"
        data = uploads.path_of_id(live_app.app.state.settings, newest[submission.id]).read_bytes()
        assert len(data) == submission.size_bytes
        assert hashlib.sha256(data).hexdigest() == submission.sha256
    recorded = live_app.run(lambda: recordings(live_app, exam_id))
    assert [r.state for r in recorded] == ["completed"] * 3


async def upload_ids(live_app: LiveApp, submission_ids: list[int]) -> dict[int, str]:
    """The id of each submission's newest upload."""
    async with app_ctx(live_app.app) as ctx:
        found = await ctx.session.execute(
            select(Upload.submission_id, Upload.id)
            .where(Upload.submission_id.in_(submission_ids))
            .order_by(Upload.created_at, Upload.id)
        )
        return {submission: upload for submission, upload in found}  # newest last, so kept


async def recordings(live_app: LiveApp, exam_id: int) -> list[Any]:
    async with app_ctx(live_app.app) as ctx:
        return list((await ctx.session.execute(recordings_of(exam_id))).scalars())
