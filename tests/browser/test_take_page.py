"""SPEC §5 on the recording page, in a real Chromium on a phone screen with a camera that
films a face: mock then formal exam, takes reviewed, picked and submitted with their SHA-256,
the countdown stopping a recording at the subject's limit, face-check frames while
recording, an interruption that the exam's policy voids, and both languages.

The upload queue module is stood in for by a recorder of what the page hands it (the
contract of `keepRecording`), so these tests hold the page to its side of the handover; the
journey test (test_journey.py) runs the real queue and upload.
"""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
from collections.abc import Iterator
from datetime import timedelta
from io import BytesIO
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from playwright.sync_api import Browser, BrowserContext, Page, Playwright, Route, expect
from sqlalchemy import select, update

from tests.browser.conftest import (
    LiveApp,
    launch_with_camera,
    no_horizontal_scroll,
    save_screenshot,
    sign_in,
)
from tests.browser.test_exam_pages import principal
from tests.browser.test_identity_pages import FPS, write_y4m
from tests.exams.test_enrollment import add_roster_row
from tests.exams.test_exam_setup import exam_body
from tests.helpers import PASSWORD, app_ctx
from tests.identity.conftest import manual_entry, new_id_number
from tests.identity.test_faces import SHARED_FACES, camera_image
from vexam.accounts import service as accounts
from vexam.core.context import Role
from vexam.exams import enrollment
from vexam.exams import schemas as exam_schemas
from vexam.exams import service as exams
from vexam.exams.models import ExamEvent, FaceVerification, Recording, Subject, Submission
from vexam.exams.upload_checks import probe_video
from vexam.identity import schemas as identity_schemas
from vexam.identity import service as identity
from vexam.identity.engines import IdentityEngines
from vexam.schools import service as schools

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        not SHARED_FACES.is_dir(), reason=f"shared face photos not found at {SHARED_FACES}"
    ),
]
# A phone-class Android browser at the narrowest common width (SPEC §2: phones only).
PIXEL_UA = (
    "Mozilla/5.0 (Linux; Android 14; Pixel 7) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/120.0.0.0 Mobile Safari/537.36"
)
NARROW = {"width": 360, "height": 740}
CAMERA_S = 4.0
# Stands in for /static/js/upload-queue.js: keeps what the page hands over, bytes included;
# everything else (what other pages import) is the real module's.
QUEUE_STUB = """
export * from "/static/js/upload-queue.js?real=1";
export async function keepRecording(account, record) {
  const bytes = new Uint8Array(await record.blob.arrayBuffer());
  let binary = "";
  for (let i = 0; i < bytes.length; i += 0x8000) {
    binary += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  }
  const { blob, ...rest } = record;
  (window.__kept ||= []).push({ account, ...rest, blobType: blob.type, base64: btoa(binary) });
}
"""
QUEUE_MODULE = "**/static/js/upload-queue.js*"
MARKER = (0, 255, 0)
CJK = re.compile(r"[\u3400-\u9fff]")
LATIN_WORD = re.compile(r"[A-Za-z]{3,}")
# Latin words that are meant to stay in Chinese pages.
KEPT_LATIN = {"REC", "SHA"}


@pytest.fixture(scope="module")
def camera_browser(
    playwright: Playwright, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Browser]:
    """Chromium whose camera films a candidate facing it and moving a little, with a green
    marker on the camera's left (to tell a mirrored picture from the camera's own)."""
    faces = IdentityEngines().faces()
    frames = []
    for i in range(int(CAMERA_S * FPS)):
        frame = camera_image(
            faces, "obama_1", face_width=200, centre=(320 + 6 * (i % 8), 250), size=(640, 480)
        )
        frame.paste(MARKER, (20, 200, 100, 280))
        frames.append(frame)
    video = tmp_path_factory.mktemp("camera") / "facing.y4m"
    write_y4m(video, frames)
    browser = launch_with_camera(playwright, video)
    try:
        yield browser
    finally:
        browser.close()


def android_context(browser: Browser, locale: str = "zh-CN") -> BrowserContext:
    """A 360 px wide Android phone (its own cookies) asking for pages in `locale`."""
    context = browser.new_context(
        viewport=NARROW,  # type: ignore[arg-type]
        user_agent=PIXEL_UA,
        is_mobile=True,
        has_touch=True,
        device_scale_factor=2,
        locale=locale,
    )
    context.set_default_timeout(15_000)
    return context


@pytest.fixture
def phone(camera_browser: Browser) -> Iterator[Page]:
    """The candidate's phone; the page's script must raise nothing it does not catch (an
    orientation lock the browser refuses included)."""
    context = android_context(camera_browser)
    errors: list[str] = []
    try:
        page = context.new_page()
        page.on("pageerror", lambda error: errors.append(str(error)))
        # Nor may the Content-Security-Policy block anything (blob: takes, camera, workers).
        page.on("console", lambda m: "Content Security Policy" in m.text and errors.append(m.text))
        page.route(QUEUE_MODULE, stub_queue)
        yield page
    finally:
        context.close()
    assert not errors, errors


def stub_queue(route: Route) -> None:
    if "real=1" in route.request.url:
        route.continue_()
    else:
        route.fulfill(status=200, content_type="text/javascript", body=QUEUE_STUB)


# ------------------------------------------------------------------ the world


def enrolled_candidate(
    live_app: LiveApp, phone: str, subjects: list[dict[str, Any]], **exam: Any
) -> dict[str, Any]:
    """A certified candidate (no reference face: certified by a person) enrolled in a free
    exam of a new school whose formal window is open now; ids of everything."""
    number = new_id_number()

    async def _setup() -> dict[str, Any]:
        async with app_ctx(live_app.app, "browser-tests") as ctx:
            ctx.extra.update(live_app.app.state.resources)
            user = await accounts.create_user(ctx, phone, PASSWORD)
            me = principal(user.id, Role.candidate)
            body = identity_schemas.CertificationIn.model_validate(manual_entry(number))
            await identity.submit(ctx, me, body)
            held = await identity.identity_of(ctx, user.id)
            assert held is not None
            await identity.certify(
                ctx, held, via="manual_review", from_status=identity.Status.review_required
            )
            school = await schools.create_school(
                ctx, f"s-{secrets.token_hex(4)}", "音乐学院", name_en="Conservatory"
            )
            now = ctx.now()
            settings = exam_body(published=True, fee_cents=0, subjects=subjects, **exam)
            settings["formal_starts_at"] = (now - timedelta(days=1)).isoformat()
            settings["formal_ends_at"] = (now + timedelta(days=30)).isoformat()
            created = await exams.create_exam(
                ctx,
                principal(0, Role.operator),
                school.id,
                exam_schemas.ExamIn.model_validate(settings),
            )
            return {"user_id": user.id, "school_id": school.id, "exam_id": created.id}

    world = live_app.run(_setup)
    live_app.run(lambda: add_roster_row(live_app.app, world["school_id"], world["exam_id"], number))

    async def _enrol() -> None:
        async with app_ctx(live_app.app, "browser-tests") as ctx:
            me = principal(world["user_id"], Role.candidate)
            await enrollment.apply(ctx, me, world["exam_id"], exam_schemas.ApplyIn(province="11"))
            await enrollment.confirm(ctx, me, world["exam_id"])

    live_app.run(_enrol)
    return world


def shorten(live_app: LiveApp, exam_id: int, **values: Any) -> None:
    """Change every subject of the exam below what the exam form allows (quick tests)."""

    async def _change() -> None:
        async with app_ctx(live_app.app) as ctx:
            await ctx.session.execute(
                update(Subject).where(Subject.exam_id == exam_id).values(**values)
            )

    live_app.run(_change)


def rows(live_app: LiveApp, statement: Any) -> list[Any]:
    async def _read() -> list[Any]:
        async with app_ctx(live_app.app) as ctx:
            return list((await ctx.session.execute(statement)).scalars())

    return live_app.run(_read)


def recordings_of(exam_id: int) -> Any:
    return (
        select(Recording)
        .join(Subject, Subject.id == Recording.subject_id)
        .where(Subject.exam_id == exam_id)
        .order_by(Recording.id)
    )


# ------------------------------------------------------------------ page steps


def open_exam(page: Page, base: str, exam_id: int, mode: str) -> None:
    """Open the recording page, start the sitting and pass the face and device checks."""
    page.goto(f"{base}/exams/{exam_id}/take?mode={mode}")
    expect(page.get_by_test_id("take-app")).to_have_attribute("data-ready", "true")
    page.get_by_test_id("start-sitting").click()
    expect(page.get_by_test_id("step-checks")).to_be_visible()
    page.get_by_test_id("verify-face").click()
    expect(page.get_by_test_id("step-checks")).to_be_hidden(timeout=30_000)
    expect(page.get_by_test_id("open-subject-1")).to_be_enabled()


def seconds_left_at_most(page: Page, seconds: int) -> None:
    """Wait until the page's own countdown shows at most `seconds` left (a busy machine may
    skip a tick, so no exact value is awaited)."""
    page.wait_for_function(
        """n => {
          const shown = document.querySelector('[data-testid="countdown"]').dataset.seconds;
          return shown !== undefined && Number(shown) <= n;
        }""",
        arg=seconds,
        timeout=15_000,
    )


def record(page: Page, seconds: int, attempt: int) -> None:
    """Record about `seconds` s (counted by the page's own countdown), then stop."""
    countdown = page.get_by_test_id("countdown")
    page.get_by_test_id("record-start").click()
    expect(page.get_by_test_id("rec-badge")).to_be_visible()
    limit = int(countdown.get_attribute("data-seconds") or 0)
    seconds_left_at_most(page, limit - seconds)
    page.get_by_test_id("record-stop").click()
    expect(page.get_by_test_id(f"take-{attempt}")).to_be_visible(timeout=15_000)
    expect(page.get_by_test_id("rec-badge")).to_be_hidden()


def submit(page: Page, attempt: int) -> dict[str, Any]:
    """Pick take `attempt`, submit it, wait for the receipt and the handover; the receipt."""
    page.get_by_test_id(f"pick-{attempt}").check()
    page.get_by_test_id("submit-take").click()
    expect(page.get_by_test_id("confirm-submit")).to_be_visible()
    page.get_by_test_id("confirm-yes").click()
    expect(page.get_by_test_id("step-receipt")).to_be_visible(timeout=15_000)
    expect(page.get_by_test_id("kept-status")).to_have_attribute("data-state", "kept")
    expect(page.get_by_test_id("upload-link")).to_be_visible()
    expect(page.get_by_test_id("upload-link")).to_have_attribute("href", "/uploads")
    kept: list[dict[str, Any]] = page.evaluate("window.__kept")
    return kept[-1]


def kept_takes(page: Page) -> int:
    """How many takes the recording page keeps in this browser's IndexedDB."""
    count: int = page.evaluate(
        """() => new Promise((resolve, reject) => {
          const open = indexedDB.open("vexam-takes");
          open.onerror = () => reject(open.error);
          open.onsuccess = () => {
            const all = open.result.transaction("takes").objectStore("takes").count();
            all.onsuccess = () => { open.result.close(); resolve(all.result); };
          };
        })"""
    )
    return count


def check_kept(record: dict[str, Any], account: int, seconds: tuple[float, float]) -> bytes:
    """The handed-over file is the submitted one and a decodable video of about that length."""
    data = base64.b64decode(record["base64"])
    receipt = record["receipt"]
    assert record["account"] == str(account)
    assert record["size"] == len(data) == receipt["size_bytes"]
    assert record["sha256"] == hashlib.sha256(data).hexdigest() == receipt["sha256"]
    assert record["submissionId"] == receipt["submission_id"]
    assert record["type"].startswith(("video/mp4", "video/webm")), record["type"]
    return data


def marker_side(image: Image.Image) -> str:
    """Which half of a picture holds the green marker: "left" or "right"."""
    import numpy as np

    pixels = np.asarray(image.convert("RGB")).astype(int)
    red, green, blue = pixels[..., 0], pixels[..., 1], pixels[..., 2]
    marker = (green > 170) & (red < 110) & (blue < 110)
    half = pixels.shape[1] // 2
    left, right = int(marker[:, :half].sum()), int(marker[:, half:].sum())
    assert max(left, right) > 50, (left, right)
    return "left" if left > right else "right"


def first_frame(data: bytes) -> Image.Image:
    """The first decoded picture of a recording."""
    import av

    with av.open(BytesIO(data)) as container:
        for frame in container.decode(video=0):
            image: Image.Image = frame.to_image()
            return image
    raise AssertionError("no video frame")


def probe(tmp_path: Path, data: bytes, name: str) -> dict[str, Any]:
    path = tmp_path / name
    path.write_bytes(data)
    media = probe_video(path)
    assert media["ok"], media
    return media


# ------------------------------------------------------------------ tests


def test_mock_then_formal_exam_record_review_submit(
    phone: Page, live_server: str, live_app: LiveApp, new_phone: Any, tmp_path: Path
) -> None:
    """§5: a mock exam, then the formal exam with two subjects: record takes, review them,
    pick one, submit it with its SHA-256 and size; the receipt is shown and the very file
    is handed to the upload queue (a decodable video of about the recorded length)."""
    number = new_phone()
    world = enrolled_candidate(
        live_app,
        number,
        [
            {
                "name": "练习曲",
                "name_en": "Etude",
                "attempts": 3,
                "max_seconds": 60,
                "orientation": "landscape",
                "prompt": "请演奏一首练习曲",
            },
            {
                "name": "乐曲",
                "name_en": "Piece",
                "attempts": 2,
                "max_seconds": 60,
                "orientation": "choice",
                "camera": "front",
                "prompt": "请演奏一首自选乐曲",
            },
        ],
    )
    exam_id = world["exam_id"]
    sign_in(phone, live_server, number)

    # The mock exam: same steps, never reviewed.
    open_exam(phone, live_server, exam_id, "mock")
    expect(phone.get_by_test_id("take-mode")).to_have_attribute("data-mode", "mock")
    expect(phone.get_by_test_id("subject-1")).to_contain_text("剩余录制机会：3 / 3")
    no_horizontal_scroll(phone)
    save_screenshot(phone, "take-subjects")
    phone.get_by_test_id("open-subject-1").click()
    expect(phone.get_by_test_id("orientation-fixed")).to_be_visible()
    expect(phone.get_by_test_id("prompt-text")).to_have_text("请演奏一首练习曲")
    record(phone, 2, attempt=1)
    mock = check_kept(submit(phone, 1), world["user_id"], (1.0, 4.0))
    save_screenshot(phone, "take-receipt")
    assert probe(tmp_path, mock, "mock")["frames"] > 0

    # The formal exam: the same phone continues.
    open_exam(phone, live_server, exam_id, "formal")
    expect(phone.get_by_test_id("take-mode")).to_have_attribute("data-mode", "formal")
    phone.get_by_test_id("open-subject-1").click()
    # The preview is fixed sideways for this subject; the front camera's preview is mirrored.
    expect(phone.get_by_test_id("stage")).to_have_attribute("data-orientation", "landscape")
    preview = phone.get_by_test_id("preview")
    expect(preview).to_have_class(re.compile(r"\bmirrored\b"))
    expect(preview).to_have_js_property("readyState", 4)
    assert marker_side(Image.open(BytesIO(preview.screenshot()))) == "right"
    # Turned sideways, the page still fits the screen and the stage fills its height.
    phone.set_viewport_size({"width": NARROW["height"], "height": NARROW["width"]})
    no_horizontal_scroll(phone)
    box = preview.bounding_box()
    assert box is not None and box["height"] <= NARROW["width"], box
    save_screenshot(phone, "take-landscape")
    phone.set_viewport_size(NARROW)  # type: ignore[arg-type]
    # The question can be hidden and shown again at any time, also while recording.
    phone.get_by_test_id("prompt-toggle").click()
    expect(phone.get_by_test_id("prompt-panel")).to_be_hidden()
    expect(phone.get_by_test_id("prompt-toggle")).to_have_attribute("aria-expanded", "false")
    record(phone, 2, attempt=1)
    phone.get_by_test_id("record-start").click()
    phone.get_by_test_id("prompt-toggle").click()
    expect(phone.get_by_test_id("prompt-panel")).to_be_visible()
    save_screenshot(phone, "take-recording")
    seconds_left_at_most(phone, 57)
    phone.get_by_test_id("record-stop").click()
    expect(phone.get_by_test_id("take-2")).to_be_visible(timeout=15_000)
    expect(phone.get_by_test_id("record-attempts")).to_contain_text("1 / 3")
    # Both takes play back in the page.
    for attempt in (1, 2):
        video = phone.get_by_test_id(f"take-{attempt}").locator("video")
        expect(video).to_have_attribute("src", re.compile(r"^blob:"))
        duration = video.evaluate(
            "v => new Promise(r => v.readyState >= 1 ? r(v.duration) : "
            "v.addEventListener('loadedmetadata', () => r(v.duration), {once: true}))"
        )
        assert duration is not None
    save_screenshot(phone, "take-review")
    first_record = submit(phone, 1)
    # MP4/H.264 where this browser records it, else WebM.
    mp4 = phone.evaluate("MediaRecorder.isTypeSupported('video/mp4;codecs=avc1.42E01E,opus')")
    assert first_record["type"].startswith("video/mp4" if mp4 else "video/webm"), first_record
    first = check_kept(first_record, world["user_id"], (1.0, 4.0))
    # The preview was mirrored; the recorded file is the camera's own picture.
    assert marker_side(first_frame(first)) == "left"
    expect(phone.get_by_test_id("receipt-sha")).to_have_text(hashlib.sha256(first).hexdigest())
    # Handed over, the subject's takes leave the phone's own store (the queue keeps the file).
    assert kept_takes(phone) == 0
    phone.get_by_test_id("receipt-back").click()
    expect(phone.get_by_test_id("subject-1")).to_have_attribute("data-state", "submitted")

    # The second subject lets the candidate choose the orientation, then fixes it.
    phone.get_by_test_id("open-subject-2").click()
    expect(phone.get_by_test_id("orientation-form")).to_be_visible()
    expect(phone.get_by_test_id("record-start")).to_be_hidden()
    phone.get_by_test_id("orientation-portrait").check()
    phone.get_by_test_id("orientation-next").click()
    expect(phone.get_by_test_id("orientation-form")).to_be_hidden()
    expect(phone.get_by_test_id("stage")).to_have_attribute("data-orientation", "portrait")
    no_horizontal_scroll(phone)
    record(phone, 2, attempt=1)
    second = check_kept(submit(phone, 1), world["user_id"], (1.0, 4.0))
    phone.get_by_test_id("receipt-back").click()
    expect(phone.get_by_test_id("subject-2")).to_have_attribute("data-state", "submitted")
    expect(phone.get_by_test_id("take-status")).to_have_text("所有科目都已提交，或已用完录制机会。")

    submitted = rows(live_app, select(Submission).order_by(Submission.id))
    mine = [
        s
        for s in submitted
        if s.sha256 in {hashlib.sha256(b).hexdigest() for b in (mock, first, second)}
    ]
    assert len(mine) == 3
    assert sorted(s.size_bytes for s in mine) == sorted(len(b) for b in (mock, first, second))
    for name, data in (("first", first), ("second", second)):
        media = probe(tmp_path, data, name)
        assert 1.0 <= media["duration_seconds"] <= 4.5, media
        assert media["audio_codec"] is not None, media


def test_countdown_stops_the_recording_at_the_limit_with_face_checks(
    phone: Page, live_server: str, live_app: LiveApp, new_phone: Any, tmp_path: Path
) -> None:
    """§5: the countdown stops a recording at the subject's limit; face-check frames go to
    the server at the subject's interval while it runs."""
    number = new_phone()
    world = enrolled_candidate(
        live_app,
        number,
        [{"name": "视唱", "attempts": 2, "max_seconds": 10, "orientation": "portrait"}],
    )
    shorten(live_app, world["exam_id"], max_seconds=3, face_check_seconds=1)
    sign_in(phone, live_server, number)
    open_exam(phone, live_server, world["exam_id"], "formal")
    phone.get_by_test_id("open-subject-1").click()
    expect(phone.get_by_test_id("record-attempts")).to_contain_text("0:03")
    phone.get_by_test_id("record-start").click()
    expect(phone.get_by_test_id("rec-badge")).to_be_visible()
    # Nobody presses stop: the limit does.
    expect(phone.get_by_test_id("take-1")).to_be_visible(timeout=15_000)
    expect(phone.get_by_test_id("record-status")).to_contain_text("已到录制时限")
    expect(phone.get_by_test_id("rec-badge")).to_be_hidden()

    [recording] = rows(
        live_app,
        recordings_of(world["exam_id"]),
    )
    assert recording.state == "completed"
    assert recording.duration_seconds is not None and 2.5 <= recording.duration_seconds <= 3.0
    checks = rows(
        live_app,
        select(FaceVerification).where(
            FaceVerification.recording_id == recording.id, FaceVerification.kind == "check"
        ),
    )
    assert 1 <= len(checks) <= 4, checks
    assert all(check.result in ("passed", "no_reference") for check in checks)

    # A reload before submitting loses nothing: the take is kept on the phone.
    phone.reload()
    expect(phone.get_by_test_id("subject-1")).to_have_attribute("data-state", "ready_to_submit")
    phone.get_by_test_id("open-subject-1").click()
    expect(phone.get_by_test_id("take-1").locator("video")).to_have_attribute(
        "src", re.compile(r"^blob:")
    )
    # The upload queue cannot be loaded for a moment: the page says so and tries again.
    phone.unroute(QUEUE_MODULE)
    phone.route(QUEUE_MODULE, lambda route: route.fulfill(status=503, body="busy"))
    phone.get_by_test_id("pick-1").check()
    phone.get_by_test_id("submit-take").click()
    phone.get_by_test_id("confirm-yes").click()
    expect(phone.get_by_test_id("kept-status")).to_have_attribute("data-state", "failed")
    expect(phone.get_by_test_id("receipt-number")).to_have_text(re.compile(r"^#\d+$"))
    phone.unroute(QUEUE_MODULE)
    phone.route(QUEUE_MODULE, stub_queue)
    phone.get_by_test_id("keep-again").click()
    expect(phone.get_by_test_id("kept-status")).to_have_attribute("data-state", "kept")
    kept: list[dict[str, Any]] = phone.evaluate("window.__kept")
    data = check_kept(kept[-1], world["user_id"], (2.0, 4.0))
    assert 2.0 <= probe(tmp_path, data, "limit")["duration_seconds"] <= 4.0


def blank_frame(route: Route) -> None:
    """Send the server a frame with nobody in it instead of the camera's."""
    image = BytesIO()
    Image.new("RGB", (320, 240), (128, 128, 128)).save(image, "JPEG")
    boundary = "vexam-test-frame"
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="frame"; '
            f'filename="frame.jpg"\r\nContent-Type: image/jpeg\r\n\r\n'
        ).encode()
        + image.getvalue()
        + f"\r\n--{boundary}--\r\n".encode()
    )
    headers = {**route.request.headers, "content-type": f"multipart/form-data; boundary={boundary}"}
    route.continue_(post_data=body, headers=headers)


def test_three_failed_face_checks_end_the_recording(
    phone: Page, live_server: str, live_app: LiveApp, new_phone: Any
) -> None:
    """§5: nobody in the check frames three times in a row voids the recording; the
    candidate is sent back to a fresh face verification before going on."""
    number = new_phone()
    world = enrolled_candidate(
        live_app,
        number,
        [{"name": "视唱", "attempts": 2, "max_seconds": 60, "orientation": "landscape"}],
    )
    shorten(live_app, world["exam_id"], face_check_seconds=1)
    sign_in(phone, live_server, number)
    open_exam(phone, live_server, world["exam_id"], "formal")
    phone.route("**/api/v1/recordings/*/face-checks", blank_frame)
    phone.get_by_test_id("open-subject-1").click()
    phone.get_by_test_id("record-start").click()
    expect(phone.get_by_test_id("take-error")).to_contain_text("连续 3 次", timeout=15_000)
    expect(phone.get_by_test_id("step-checks")).to_be_visible()
    expect(phone.get_by_test_id("face-state")).to_have_attribute("data-done", "false")
    expect(phone.get_by_test_id("subject-1")).to_contain_text("1 / 2")
    [recording] = rows(live_app, recordings_of(world["exam_id"]))
    assert recording.state == "voided" and recording.void_reason == "face_checks_failed"
    # A fresh verification with the real camera opens recording again.
    phone.unroute("**/api/v1/recordings/*/face-checks")
    phone.get_by_test_id("verify-face").click()
    expect(phone.get_by_test_id("step-checks")).to_be_hidden(timeout=30_000)
    expect(phone.get_by_test_id("open-subject-1")).to_be_enabled()


HIDE_PAGE = """() => {
  Object.defineProperty(document, "visibilityState", { configurable: true, get: () => "hidden" });
  document.dispatchEvent(new Event("visibilitychange"));
}"""


@pytest.mark.parametrize("policy", ["void_attempt", "fail_exam", "flag"])
def test_leaving_the_page_while_recording_applies_the_exams_policy(
    phone: Page, live_server: str, live_app: LiveApp, new_phone: Any, policy: str
) -> None:
    """§5: leaving the page during a recording is reported; by default the recording is
    void and its attempt used; a school may fail the exam instead, or "flag, do not burn":
    the recording goes on, flagged. The page says which, in words."""
    number = new_phone()
    world = enrolled_candidate(
        live_app,
        number,
        [{"name": "练习曲", "attempts": 2, "max_seconds": 60, "orientation": "landscape"}],
        anti_cheat={"left_page": policy} if policy != "void_attempt" else {},
    )
    sign_in(phone, live_server, number)
    open_exam(phone, live_server, world["exam_id"], "formal")
    phone.get_by_test_id("open-subject-1").click()
    phone.get_by_test_id("record-start").click()
    seconds_left_at_most(phone, 59)
    phone.evaluate(HIDE_PAGE)
    error = phone.get_by_test_id("take-error")
    if policy == "void_attempt":
        expect(error).to_contain_text("本次录制作废")
        expect(phone.get_by_test_id("rec-badge")).to_be_hidden()
        expect(phone.get_by_test_id("take-app")).to_have_attribute("data-last-event", policy)
        expect(phone.get_by_test_id("record-attempts")).to_contain_text("1 / 2")
        expect(phone.get_by_test_id("takes")).to_be_hidden()
        save_screenshot(phone, "take-interrupted")
        [recording] = rows(live_app, recordings_of(world["exam_id"]))
        assert recording.state == "voided" and recording.void_reason == "event:left_page"
    elif policy == "fail_exam":
        expect(error).to_contain_text("你的考试已结束")
        expect(phone.get_by_test_id("take-app")).to_have_attribute("data-failed", "true")
        expect(phone.get_by_test_id("rec-badge")).to_be_hidden()
        expect(phone.get_by_test_id("record-start")).to_be_hidden()
        phone.get_by_test_id("back-to-list").click()
        expect(phone.get_by_test_id("take-status")).to_contain_text("你的考试已结束")
        expect(phone.get_by_test_id("open-subject-1")).to_be_hidden()
        [recording] = rows(live_app, recordings_of(world["exam_id"]))
        assert recording.state == "voided"
    else:
        expect(error).to_contain_text("录制继续")
        expect(phone.get_by_test_id("rec-badge")).to_be_visible()
        # Closing the page (pagehide) is reported too; here the recording goes on as well.
        seconds_left_at_most(phone, 57)
        phone.evaluate("() => window.dispatchEvent(new PageTransitionEvent('pagehide'))")
        app = phone.get_by_test_id("take-app")
        expect(app).to_have_attribute("data-events-reported", "2")
        expect(phone.get_by_test_id("rec-badge")).to_be_visible()
        events = rows(live_app, select(ExamEvent).order_by(ExamEvent.id))
        mine = [
            e
            for e in events
            if e.recording_id in {r.id for r in rows(live_app, recordings_of(world["exam_id"]))}
        ]
        assert [(e.kind, e.action, e.detail["via"]) for e in mine] == [
            ("left_page", "flag", "visibilitychange"),
            ("left_page", "flag", "pagehide"),
        ]
        phone.get_by_test_id("record-stop").click()
        expect(phone.get_by_test_id("take-1")).to_be_visible(timeout=15_000)
        [recording] = rows(live_app, recordings_of(world["exam_id"]))
        assert recording.state == "completed"


def texts_of(page: Page) -> list[str]:
    """Every text of the recording page: text nodes (templates included) and data-text-*."""
    found: list[str] = page.evaluate(
        """() => {
          const out = [];
          const walk = (root) => {
            const it = document.createTreeWalker(root, NodeFilter.SHOW_TEXT);
            while (it.nextNode()) {
              const t = it.currentNode.textContent.trim();
              if (t) out.push(t);
            }
            root.querySelectorAll("template").forEach((t) => walk(t.content));
          };
          const app = document.getElementById("take-app");
          walk(app);
          for (const [key, value] of Object.entries(app.dataset)) {
            if (key.startsWith("text")) out.push(value);
          }
          for (const e of app.querySelectorAll("[aria-label]")) {
            out.push(e.getAttribute("aria-label"));
          }
          out.push(document.title);
          return out;
        }"""
    )
    return found


@pytest.mark.parametrize("locale", ["zh-CN", "en"])
def test_page_speaks_one_language(
    camera_browser: Browser, live_server: str, live_app: LiveApp, new_phone: Any, locale: str
) -> None:
    """§1: every text of the recording page exists in Chinese and English."""
    number = new_phone()
    world = enrolled_candidate(
        live_app,
        number,
        [{"name": "练习曲", "name_en": "Etude", "attempts": 2, "orientation": "choice"}],
        name_en="Piano performance",
    )
    context = android_context(camera_browser, locale)
    try:
        page = context.new_page()
        sign_in(page, live_server, number)
        page.goto(f"{live_server}/exams/{world['exam_id']}/take?mode=mock")
        expect(page.get_by_test_id("take-app")).to_have_attribute("data-ready", "true")
        page.get_by_test_id("start-sitting").click()
        expect(page.get_by_test_id("step-checks")).to_be_visible()
        expect(page.get_by_test_id("subject-1")).to_be_visible()
        expect(page.locator("#face-preview")).to_have_js_property("readyState", 4)
        texts = texts_of(page)
        assert len(texts) > 80
        if locale == "en":
            untranslated = [t for t in texts if CJK.search(t)]
        else:
            untranslated = [
                t for t in texts if not CJK.search(t) and set(LATIN_WORD.findall(t)) - KEPT_LATIN
            ]
        assert not untranslated, untranslated
        no_horizontal_scroll(page)
        save_screenshot(page, f"take-checks-{locale}")
    finally:
        context.close()


def test_exam_on_another_device_is_explained_and_handed_over(
    camera_browser: Browser, live_server: str, live_app: LiveApp, new_phone: Any
) -> None:
    """§2/§5: one exam device at a time; the second phone is told why and may take the exam
    over, after which the first phone is refused."""
    number = new_phone()
    world = enrolled_candidate(
        live_app, number, [{"name": "练习曲", "attempts": 2, "orientation": "landscape"}]
    )
    first, second = android_context(camera_browser), android_context(camera_browser)
    try:
        old, new = first.new_page(), second.new_page()
        for page in (old, new):
            sign_in(page, live_server, number)
            page.goto(f"{live_server}/exams/{world['exam_id']}/take?mode=formal")
            expect(page.get_by_test_id("take-app")).to_have_attribute("data-ready", "true")
        old.get_by_test_id("start-sitting").click()
        expect(old.get_by_test_id("step-checks")).to_be_visible()
        expect(old).to_have_url(re.compile(r"sitting=\d+"))

        new.get_by_test_id("start-sitting").click()
        expect(new.get_by_test_id("take-error")).to_have_attribute(
            "data-code", "exam_active_on_other_device"
        )
        expect(new.get_by_test_id("handover")).to_be_visible()
        save_screenshot(new, "take-handover")
        new.get_by_test_id("handover-button").click()
        expect(new.get_by_test_id("step-checks")).to_be_visible()
        expect(new.get_by_test_id("handover")).to_be_hidden()

        old.get_by_test_id("verify-face").click()
        expect(old.get_by_test_id("take-error")).to_have_attribute(
            "data-code", "exam_active_on_other_device"
        )
    finally:
        first.close()
        second.close()


def test_formal_exam_on_a_desktop_browser_is_refused_with_the_rule(
    camera_browser: Browser, live_server: str, live_app: LiveApp, new_phone: Any
) -> None:
    """§2: the device check refuses a desktop browser for the formal exam and says why."""
    number = new_phone()
    world = enrolled_candidate(
        live_app, number, [{"name": "练习曲", "attempts": 2, "orientation": "landscape"}]
    )
    context = camera_browser.new_context(viewport=NARROW, locale="zh-CN")  # type: ignore[arg-type]
    try:
        page = context.new_page()
        sign_in(page, live_server, number)
        page.goto(f"{live_server}/exams/{world['exam_id']}/take?mode=formal")
        expect(page.get_by_test_id("take-app")).to_have_attribute("data-ready", "true")
        page.get_by_test_id("start-sitting").click()
        page.get_by_test_id("verify-face").click()
        error = page.get_by_test_id("take-error")
        expect(error).to_have_attribute("data-code", "device_not_allowed", timeout=30_000)
        expect(error).to_contain_text("手机")
        expect(page.get_by_test_id("face-state")).not_to_have_text("尚未完成")
        expect(page.get_by_test_id("open-subject-1")).to_be_disabled()
    finally:
        context.close()


def test_lost_answer_to_stop_keeps_the_take(
    phone: Page, live_server: str, live_app: LiveApp, new_phone: Any
) -> None:
    """§5: the stop reaches the server but its answer is lost on the way back; the page asks
    again, learns the recording is complete, and keeps the take."""
    number = new_phone()
    world = enrolled_candidate(
        live_app,
        number,
        [{"name": "练习曲", "attempts": 2, "max_seconds": 60, "orientation": "landscape"}],
    )
    lost: list[str] = []

    def lose_first_answer(route: Route) -> None:
        if lost:
            route.continue_()
            return
        route.fetch()  # the server completes the recording …
        lost.append(route.request.url)
        route.abort("connectionreset")  # … and the phone never hears of it

    sign_in(phone, live_server, number)
    open_exam(phone, live_server, world["exam_id"], "formal")
    phone.route("**/api/v1/recordings/*/complete", lose_first_answer)
    phone.get_by_test_id("open-subject-1").click()
    record(phone, 1, attempt=1)
    assert len(lost) == 1
    expect(phone.get_by_test_id("take-1").locator("video")).to_have_attribute(
        "src", re.compile(r"^blob:")
    )
    expect(phone.get_by_test_id("take-error")).to_be_hidden()
    [recording] = rows(live_app, recordings_of(world["exam_id"]))
    assert recording.state == "completed"
