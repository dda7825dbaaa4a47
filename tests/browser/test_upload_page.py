"""SPEC §5 uploads in a real Chromium on a phone screen: a submitted recording kept in
IndexedDB is uploaded with the project's tus client, resumes from the server's offset after
the network drops or the page reloads, and ends verified with the declared SHA-256; another
account's unfinished recording on the same browser is named and never deleted."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import io
import re
import secrets
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from fractions import Fraction
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, BrowserContext, Page, Route, expect
from playwright.sync_api import Error as PlaywrightError

from tests.browser.conftest import (
    LiveApp,
    no_horizontal_scroll,
    phone_context,
    save_screenshot,
    sign_in,
)
from tests.exams.test_exam_setup import new_school
from tests.helpers import bearer, staff
from tests.uploads.conftest import Submitted, submitted_with
from vexam.accounts.sms import MemorySmsSender
from vexam.exams import uploads

pytestmark = pytest.mark.browser

NARROW = {"width": 360, "height": 760}
# Small PATCHes, each held back a little by the test's route: an upload of ~1.4 MB takes
# a few seconds, long enough to cut the network or reload in the middle.
CHUNK_KIB = 128
PATCH_DELAY_S = 0.15
CJK = re.compile(r"[\u4e00-\u9fff]")
LATIN = re.compile(r"[A-Za-z]")
# {placeholders} and names that stay as they are in Chinese.
PLACEHOLDER = re.compile(r"\{\w+\}|SHA-256")


@pytest.fixture(scope="module")
def video() -> bytes:
    """A real H.264/MP4 recording of ~1.4 MB (noise frames do not compress)."""
    import av
    import numpy as np

    buffer = io.BytesIO()
    noise = np.random.default_rng(7)
    with av.open(buffer, "w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=24)
        stream.width, stream.height, stream.pix_fmt = 320, 240, "yuv420p"
        stream.codec_context.time_base = Fraction(1, 24)
        stream.options = {"preset": "ultrafast"}
        for _ in range(32):
            image = noise.integers(0, 256, (240, 320, 3), dtype=np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    data = buffer.getvalue()
    assert 500_000 < len(data) < 4_000_000, len(data)
    return data


class LiveInbox:
    """SMS codes sent by the live app's in-process worker (the tests' `Sms` drains the
    queue itself, which would race that worker)."""

    def __init__(self, sender: MemorySmsSender) -> None:
        self.sender = sender

    async def code_for(self, phone: str) -> str:
        """The code of the newest SMS to `phone`, waiting up to 10 s for the worker."""
        for _ in range(200):
            for to, message in reversed(list(self.sender.outbox)):
                match = re.search(r"(?<!\d)(\d{6})(?!\d)", message)
                if to == phone and match:
                    return match.group(1)
            await asyncio.sleep(0.05)
        raise AssertionError(f"no SMS was sent to {phone}")


@dataclass
class Candidate:
    """A candidate with one submission waiting for its upload."""

    phone: str
    submitted: Submitted
    receipt: dict[str, Any]


def candidate_with_submission(
    live_app: LiveApp, sms: MemorySmsSender, new_phone: Callable[[], str], data: bytes
) -> Candidate:
    """Register, certify, enrol, record and submit `data` through the API (formal window open
    now on the real clock), as tests/uploads do."""
    phones: list[str] = []

    def phone() -> str:
        phones.append(new_phone())
        return phones[-1]

    async def _setup() -> tuple[Submitted, dict[str, Any]]:
        app = live_app.app
        ip = f"10.{secrets.randbelow(250)}.{secrets.randbelow(250)}.{secrets.randbelow(250) + 1}"
        transport = httpx.ASGITransport(app=app, client=(ip, 40000))
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            school_id = await new_school(app)
            world = {
                "school_id": school_id,
                "admin": bearer(await staff(app, client, new_phone(), "school_admin", school_id)),
                "agent": bearer(await staff(app, client, new_phone(), "support")),
            }
            now = datetime.now(UTC)
            submitted = await submitted_with(
                app,
                client,
                LiveInbox(sms),
                phone,
                world,
                data,
                formal_starts_at=(now - timedelta(days=1)).isoformat(),
                formal_ends_at=(now + timedelta(days=30)).isoformat(),
            )
            sitting = await client.get(
                f"/api/v1/sittings/{submitted.sitting_id}", headers=submitted.who
            )
            assert sitting.status_code == 200, sitting.text
            receipt: dict[str, Any] = sitting.json()["subjects"][0]["submission"]
            return submitted, receipt

    submitted, receipt = live_app.run(_setup, timeout=60)
    assert len(phones) == 1, phones  # the candidate's own number
    return Candidate(phones[0], submitted, receipt)


def sign_out(page: Page, base: str, *, waiting: int = 0) -> None:
    """Sign out from the home page; with `waiting` recordings not uploaded, the first press
    only warns (naming how many stay on the phone) and the second signs out."""
    page.goto(f"{base}/")
    button = page.locator('form[action="/logout"] button[type=submit]')
    button.click()
    if waiting:
        warning = page.get_by_test_id("sign-out-warning")
        expect(warning).to_be_visible()
        expect(warning).to_contain_text(str(waiting))
        expect(page.get_by_test_id("sign-out-uploads")).to_be_visible()
        button.click()
    page.wait_for_url(re.compile(r"/login"))


def open_uploads(page: Page, base: str, chunk_kib: int | None = CHUNK_KIB) -> None:
    query = f"?chunk_kib={chunk_kib}" if chunk_kib else ""
    page.goto(f"{base}/uploads{query}")
    expect(page.locator("#uploads-app")).to_have_attribute("data-ready", "true")


def keep(page: Page, candidate: Candidate, data: bytes) -> None:
    """What the recording page does after submitting: keep the recording in IndexedDB."""
    page.evaluate(
        """async ({ data, receipt }) => {
          const queue = await import("/static/js/upload-queue.js");
          const bytes = Uint8Array.from(atob(data), (c) => c.charCodeAt(0));
          const blob = new Blob([bytes], { type: "video/mp4" });
          const account = document.getElementById("uploads-app").dataset.account;
          await queue.keepRecording(account, {
            submissionId: receipt.submission_id, examId: 1, examName: "钢琴演奏",
            subjectName: "练习曲", blob, type: blob.type, size: blob.size,
            sha256: receipt.sha256, receipt,
          });
        }""",
        {"data": base64.b64encode(data).decode(), "receipt": candidate.receipt},
    )


@dataclass
class Traffic:
    """tus requests the page sent: (method, Upload-Offset) in order."""

    requests: list[tuple[str, int | None]] = field(default_factory=list)
    blocked: bool = False
    lose_answers: int = 0  # PATCHes that reach the server but whose answer is lost
    lost: list[int] = field(default_factory=list)  # their index in `requests`
    refuse: list[int] = field(default_factory=list)  # statuses to answer the next PATCHes with

    def patches_after(self, index: int) -> list[int]:
        return [o for m, o in self.requests[index:] if m == "PATCH" and o is not None]

    def count(self, method: str) -> int:
        return sum(1 for m, _ in self.requests if m == method)


def watch_uploads(context: BrowserContext, *, delay: float = PATCH_DELAY_S) -> Traffic:
    """Record the tus requests of `context`; hold each PATCH back `delay` s (a slow link)."""
    traffic = Traffic()

    def handle(route: Route) -> None:
        request = route.request
        offset = request.headers.get("upload-offset")
        traffic.requests.append((request.method, int(offset) if offset else None))
        if traffic.blocked:
            route.abort("internetdisconnected")
            return
        if request.method == "PATCH":
            time.sleep(delay)
            if traffic.refuse:
                route.fulfill(status=traffic.refuse.pop(0), headers={"Tus-Resumable": "1.0.0"})
                return
            if traffic.lose_answers:
                traffic.lose_answers -= 1
                traffic.lost.append(len(traffic.requests) - 1)
                route.fetch()  # the server keeps these bytes...
                route.abort("connectionreset")  # ...but the page never hears so
                return
        # The page may have gone offline or away meanwhile: then the request is lost.
        with contextlib.suppress(PlaywrightError):
            route.continue_()

    context.route(re.compile(r".*/api/v1/uploads(/.*)?$"), handle)
    return traffic


def sent(page: Page, submission_id: int) -> int:
    value = page.get_by_test_id(f"upload-{submission_id}").get_attribute("data-sent")
    return int(value or 0)


def wait_sent_above(page: Page, submission_id: int, bytes_: int) -> None:
    page.wait_for_function(
        "([id, n]) => Number(document.querySelector(`[data-submission='${id}']`)"
        "?.dataset.sent || 0) > n",
        arg=[submission_id, bytes_],
    )


def server_file_sha256(live_app: LiveApp, candidate: Candidate) -> str:
    async def _receipt() -> dict[str, Any]:
        transport = httpx.ASGITransport(app=live_app.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            answer = await client.get(
                f"/api/v1/sittings/{candidate.submitted.sitting_id}",
                headers=candidate.submitted.who,
            )
            receipt: dict[str, Any] = answer.json()["subjects"][0]["submission"]
            return receipt

    receipt = live_app.run(_receipt)
    assert receipt["upload_state"] == "verified", receipt
    path = uploads.path_of_id(live_app.app.state.settings, receipt["upload_id"])
    return hashlib.sha256(path.read_bytes()).hexdigest()


def expect_verified(page: Page, submission_id: int) -> None:
    item = page.get_by_test_id(f"upload-{submission_id}")
    expect(item).to_have_attribute("data-state", "verified", timeout=30_000)


def blob_kept(page: Page, account: str, submission_id: int) -> bool:
    """Whether IndexedDB still holds `account`'s recording (with its bytes)."""
    return bool(
        page.evaluate(
            """([account, id]) => new Promise((resolve, reject) => {
              const open = indexedDB.open("vexam-uploads");
              open.onerror = () => reject(open.error);
              open.onsuccess = () => {
                const get = open.result.transaction("recordings").objectStore("recordings")
                  .get([account, id]);
                get.onsuccess = () => resolve(Boolean(get.result && get.result.blob
                  && get.result.blob.size > 0));
              };
            })""",
            [account, submission_id],
        )
    )


def page_texts(page: Page) -> list[str]:
    """The texts the page hands its script (data-text-*), in the page's language."""
    texts: list[str] = page.locator("#uploads-app").evaluate(
        "el => Object.entries(el.dataset).filter(([k]) => k.startsWith('text')).map(([, v]) => v)"
    )
    return texts


@pytest.fixture
def phone_page(browser: Browser) -> Iterator[tuple[BrowserContext, Page]]:
    """A 360 px wide phone tab asking for Chinese pages."""
    context = phone_context(browser)
    page = context.new_page()
    page.set_viewport_size(NARROW)  # type: ignore[arg-type]
    try:
        yield context, page
    finally:
        context.close()


def test_offline_mid_upload_waits_then_resumes_and_verifies(
    phone_page: tuple[BrowserContext, Page],
    live_server: str,
    live_app: LiveApp,
    sms: MemorySmsSender,
    new_phone: Any,
    video: bytes,
) -> None:
    """§5: the network drops mid-upload → the page says it waits; back online → the upload
    continues from the server's offset (no new upload), through a 503 and a 423, and the
    submission is verified with the declared SHA-256."""
    context, page = phone_page
    candidate = candidate_with_submission(live_app, sms, new_phone, video)
    submission_id = candidate.receipt["submission_id"]
    traffic = watch_uploads(context)
    sign_in(page, live_server, candidate.phone)
    open_uploads(page, live_server)
    expect(page.locator("html")).to_have_attribute("lang", "zh-CN")
    expect(page.get_by_test_id("keep-open")).to_contain_text("保持")
    keep(page, candidate, video)

    item = page.get_by_test_id(f"upload-{submission_id}")
    wait_sent_above(page, submission_id, len(video) // 4)
    expect(item.locator("progress")).to_have_attribute("value", re.compile(r"^[1-9]\d?$"))
    save_screenshot(page, "uploads-progress-zh")
    context.set_offline(True)
    expect(page.get_by_test_id("offline")).to_be_visible()
    expect(item).to_have_attribute("data-state", "waiting")
    cut_at = len(traffic.requests)
    save_screenshot(page, "uploads-offline-zh")
    assert sent(page, submission_id) < len(video)

    traffic.refuse = [503, 423]  # a busy server, then an upload still locked: both retried
    context.set_offline(False)
    expect(page.get_by_test_id("offline")).to_be_hidden()
    expect_verified(page, submission_id)
    expect(page.get_by_test_id("upload-summary")).to_have_text(re.compile("已通过校验"))
    resumed = traffic.patches_after(cut_at)
    assert resumed and resumed[0] > 0, traffic.requests  # from the server's offset, not 0
    assert ("HEAD", None) in traffic.requests[cut_at:], traffic.requests
    assert traffic.refuse == [], traffic.requests
    assert traffic.count("POST") == 1, traffic.requests  # the same upload all along
    assert server_file_sha256(live_app, candidate) == candidate.receipt["sha256"]
    no_horizontal_scroll(page)
    save_screenshot(page, "uploads-verified-zh")


def test_reload_mid_upload_resumes_and_verifies(
    phone_page: tuple[BrowserContext, Page],
    live_server: str,
    live_app: LiveApp,
    sms: MemorySmsSender,
    new_phone: Any,
    video: bytes,
) -> None:
    """§5: a page reload mid-upload → the kept address is resumed at the server's offset;
    a PATCH whose answer is lost is not sent twice (the server's offset tells)."""
    context, page = phone_page
    candidate = candidate_with_submission(live_app, sms, new_phone, video)
    submission_id = candidate.receipt["submission_id"]
    traffic = watch_uploads(context)
    sign_in(page, live_server, candidate.phone)
    open_uploads(page, live_server)
    keep(page, candidate, video)
    wait_sent_above(page, submission_id, len(video) // 3)
    cut_at = len(traffic.requests)
    open_uploads(page, live_server)  # the reload
    traffic.lose_answers = 1
    expect_verified(page, submission_id)
    resumed = traffic.patches_after(cut_at)
    assert resumed and resumed[0] > 0, traffic.requests
    # After the lost answer the page asks (HEAD) and goes on after the bytes the server
    # kept: that range is not sent twice.
    assert len(traffic.lost) == 1, traffic.requests
    lost_method, lost_offset = traffic.requests[traffic.lost[0]]
    after = traffic.requests[traffic.lost[0] + 1 :]
    assert lost_method == "PATCH" and lost_offset is not None
    assert after[0] == ("HEAD", None), after
    assert after[1][0] == "PATCH" and (after[1][1] or 0) > lost_offset, after
    assert traffic.count("POST") == 1, traffic.requests
    assert server_file_sha256(live_app, candidate) == candidate.receipt["sha256"]


def test_other_accounts_recording_is_named_and_kept_then_english(
    phone_page: tuple[BrowserContext, Page],
    live_server: str,
    live_app: LiveApp,
    sms: MemorySmsSender,
    new_phone: Any,
    existing_account: tuple[str, str],
    video: bytes,
) -> None:
    """§5 one phone, several accounts: A's unfinished recording is named (masked) to B and
    kept; when A signs in again it uploads. English and Chinese pages have no stray text."""
    context, page = phone_page
    first = candidate_with_submission(live_app, sms, new_phone, video)
    submission_id = first.receipt["submission_id"]
    traffic = watch_uploads(context, delay=0)
    traffic.blocked = True  # A's network fails: the upload cannot finish
    sign_in(page, live_server, first.phone)
    open_uploads(page, live_server, chunk_kib=None)
    account_a = page.locator("#uploads-app").get_attribute("data-account") or ""
    keep(page, first, video)
    expect(page.get_by_test_id(f"upload-{submission_id}")).to_have_attribute(
        "data-state", "uploading"
    )
    sign_out(page, live_server, waiting=1)

    other_phone, _ = existing_account
    sign_in(page, live_server, other_phone)
    open_uploads(page, live_server, chunk_kib=None)
    warning = page.get_by_test_id("other-accounts")
    expect(warning).to_be_visible()
    masked = f"{first.phone[:3]}****{first.phone[-4:]}"
    expect(warning).to_contain_text(masked)
    expect(warning).to_have_attribute("data-count", "1")
    expect(page.get_by_test_id(f"upload-{submission_id}")).to_have_count(0)
    expect(page.get_by_test_id("no-uploads")).to_be_visible()
    assert blob_kept(page, account_a, submission_id)
    no_horizontal_scroll(page)
    save_screenshot(page, "uploads-other-account-zh")
    texts = page_texts(page)
    untranslated = [value for value in texts if LATIN.search(PLACEHOLDER.sub("", value))]
    assert texts and not untranslated, untranslated

    page.locator(".lang a").click()
    expect(page.locator("html")).to_have_attribute("lang", "en")
    expect(page.get_by_test_id("other-accounts")).to_contain_text("another account")
    body = page.locator("main").inner_text()
    assert not CJK.search(body), body
    english = page_texts(page)
    assert not any(CJK.search(value) for value in english), english
    save_screenshot(page, "uploads-other-account-en")
    assert blob_kept(page, account_a, submission_id)

    # A signs in again: the kept recording uploads and is verified.
    sign_out(page, live_server)
    traffic.blocked = False
    sign_in(page, live_server, first.phone)
    open_uploads(page, live_server, chunk_kib=None)
    expect_verified(page, submission_id)
    assert server_file_sha256(live_app, first) == first.receipt["sha256"]
