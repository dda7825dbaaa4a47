"""SPEC §3 certification in a real Chromium on a phone screen, with a camera that films a face.

Chromium's fake camera plays a .y4m made from the shared public-domain photos: Obama facing
the camera for 2 s, then turned to his own left (obama_3, obama_4) — the head turn the live
check asks for. The card photo carries another photo of him (obama_2) as its portrait.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from io import BytesIO
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from playwright.sync_api import Browser, Page, Playwright, Route, expect

from tests.browser.conftest import LiveApp, launch_with_camera, open_from_home, phone_context
from tests.helpers import app_ctx
from tests.identity.cardgen import cjk_font_path, make_card
from tests.identity.conftest import new_id_number
from tests.identity.test_faces import SHARED_FACES, camera_image
from vexam.core.context import Principal, Role
from vexam.identity.engines import IdentityEngines

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        not SHARED_FACES.is_dir(), reason=f"shared face photos not found at {SHARED_FACES}"
    ),
    pytest.mark.skipif(cjk_font_path() is None, reason="fonts-noto-cjk is not installed"),
]
FPS = 10
FACING_S = 2.0
TURNED_S = 3.0


def write_y4m(path: Path, frames: list[Image.Image]) -> None:
    """A 4:2:0 YUV4MPEG2 file (full-range, as JPEG) that Chromium's fake camera plays."""
    width, height = frames[0].size
    with path.open("wb") as out:
        out.write(f"YUV4MPEG2 W{width} H{height} F{FPS}:1 Ip A1:1 C420jpeg\n".encode())
        for frame in frames:
            y, cb, cr = frame.convert("YCbCr").split()
            out.write(b"FRAME\n")
            out.write(y.tobytes())
            for plane in (cb, cr):
                out.write(plane.resize((width // 2, height // 2), Image.Resampling.BOX).tobytes())


@pytest.fixture(scope="module")
def engines() -> IdentityEngines:
    return IdentityEngines()


@pytest.fixture(scope="module")
def camera_browser(
    playwright: Playwright, engines: IdentityEngines, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Browser]:
    """Chromium whose camera films a candidate facing it, then turning to their own left."""
    faces = engines.faces()

    def shot(name: str) -> Image.Image:
        return camera_image(faces, name, face_width=200, centre=(320, 250), size=(640, 480))

    frames = [shot("obama_1")] * int(FACING_S * FPS)
    frames += [shot("obama_3")] * 5 + [shot("obama_4")] * int(TURNED_S * FPS - 5)
    video = tmp_path_factory.mktemp("camera") / "turn-left.y4m"
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
        yield context.new_page()
    finally:
        context.close()


def sign_in(page: Page, base: str, account: tuple[str, str]) -> None:
    page.goto(f"{base}/login")
    page.locator("input[name=phone]").fill(account[0])
    page.locator("input[name=password]").fill(account[1])
    page.locator("button[name=action][value=login]").click()
    open_from_home(page, "identity-link")
    expect(page.get_by_test_id("identity-status")).to_have_attribute("data-status", "not_started")


def only_left_turns(route: Route) -> None:
    """Hand the page a real challenge that asks for the turn the fake camera films.

    The server picks the side at random; fetching again simply draws another real challenge
    (an unused one expires on its own).
    """
    for _ in range(30):
        response = route.fetch()
        if json.loads(response.text())["direction"] == "left":
            route.fulfill(response=response)
            return
    raise AssertionError("30 challenges in a row asked for the right side")


def test_certify_by_photo_and_live_face(
    phone: Page, live_server: str, existing_account: tuple[str, str], engines: IdentityEngines
) -> None:
    """§3: photograph the card, confirm the OCR prefill, pass the live check → certified."""
    portrait = camera_image(
        engines.faces(), "obama_2", face_width=150, centre=(160, 190), size=(320, 410)
    )
    card, truth = make_card(201, portrait=portrait)
    photo = BytesIO()
    card.convert("RGB").save(photo, "JPEG", quality=88)
    sign_in(phone, live_server, existing_account)

    phone.get_by_test_id("card-photo").set_input_files(
        {"name": "card.jpg", "mimeType": "image/jpeg", "buffer": photo.getvalue()}
    )
    phone.locator("#read-card").click()
    expect(phone.locator("input[name=id_number]")).to_have_value(truth.id_number, timeout=20_000)
    expect(phone.locator("input[name=name]")).to_have_value(truth.name)
    expect(phone.locator("input[name=birth_date]")).to_have_value(truth.birth_date.isoformat())
    phone.get_by_test_id("submit-identity").click()
    expect(phone.get_by_test_id("identity-status")).to_have_attribute(
        "data-status", "face_pending", timeout=20_000
    )

    # The preview is mirrored for comfort, the frames sent are not: mirrored frames would
    # show a turn to the right, and the check below would fail with wrong_direction.
    expect(phone.locator("#preview")).to_have_class("mirrored")
    phone.route("**/api/v1/identity/face/challenge", only_left_turns)
    phone.get_by_test_id("start-face").click()
    expect(phone.get_by_test_id("prompt")).to_contain_text("左侧")
    expect(phone.get_by_test_id("identity-status")).to_have_attribute(
        "data-status", "certified", timeout=30_000
    )
    expect(phone.get_by_test_id("identity-status")).to_contain_text("您已完成实名认证")


def test_typed_identity_goes_to_a_person_and_the_page_follows(
    phone: Page,
    live_server: str,
    live_app: LiveApp,
    existing_account: tuple[str, str],
    engines: IdentityEngines,
) -> None:
    """§3: typed with no card photo → manual review with its due time; approval shows up.
    The form fits the phone in English too (its two photo buttons overflowed by 31 px)."""
    sign_in(phone, live_server, existing_account)
    for lang in ("en", "zh-CN"):
        phone.locator("nav.lang a").click()
        expect(phone.locator("html")).to_have_attribute("lang", lang)
        expect(phone.locator("#keep-photo")).to_be_visible()
        # Measured on the button: a mobile page zooms out to fit, so the page's scroll width
        # against window.innerWidth does not show the overflow.
        right = phone.evaluate(
            "document.querySelector('#keep-photo').getBoundingClientRect().right"
        )
        assert right <= phone.evaluate("document.documentElement.clientWidth"), lang
    number = new_id_number()
    phone.locator("select[name=document_type]").select_option("temporary_id")
    expect(phone.locator("#photo-field")).to_be_hidden()
    phone.locator("input[name=name]").fill("李四")
    phone.locator("input[name=id_number]").fill(number.lower())
    phone.get_by_test_id("submit-identity").click()
    expect(phone.get_by_test_id("identity-status")).to_have_attribute(
        "data-status", "review_required"
    )
    selfie = camera_image(engines.faces(), "obama_1", size=(480, 640), centre=(240, 300))
    pictures: list[Any] = []
    for image in (make_card(202)[0], selfie):
        out = BytesIO()
        image.convert("RGB").save(out, "JPEG")
        pictures.append({"name": "p.jpg", "mimeType": "image/jpeg", "buffer": out.getvalue()})
    phone.locator("input[name=id_photo]").set_input_files(pictures[0])
    phone.locator("input[name=selfie]").set_input_files(pictures[1])
    phone.get_by_test_id("request-review").click()
    expect(phone.get_by_test_id("identity-status")).to_have_attribute("data-status", "in_review")
    expect(phone.get_by_test_id("review-due")).to_contain_text("北京时间")
    assert number not in phone.content()

    approve_latest_review(live_app)
    # No reload by the test: the page polls and follows the state.
    expect(phone.get_by_test_id("identity-status")).to_have_attribute(
        "data-status", "certified", timeout=15_000
    )


def approve_latest_review(live_app: LiveApp) -> None:
    """A support agent approves the newest open review (as the support console does)."""
    from vexam.identity import decisions, schemas

    async def _approve() -> None:
        async with app_ctx(live_app.app, "browser-tests") as ctx:
            reviews = await decisions.list_reviews(ctx)
            agent = Principal(
                user_id=0,
                role=Role.support,
                school_id=None,
                locale=None,
                session_id=0,
                masked_phone="",
            )
            body = schemas.DecisionIn(decision="approve", reason="the selfie matches")
            await decisions.decide_review(ctx, agent, reviews[-1].id, body)

    live_app.run(_approve)
