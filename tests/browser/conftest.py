"""Browser fixtures: the real app under uvicorn in a thread, Debian's Chromium via Playwright.

The tests are plain sync functions (Playwright's sync API refuses to run inside a running
asyncio loop). Between its calls, Playwright's sync API marks its own loop as the running
loop of the main thread, so no other asyncio loop can run there while the browser is open:
the browser therefore lives for this package only (one Chromium for every browser test),
and is closed before the async tests of other packages run on pytest-asyncio's loop.

Environment:
  VEXAM_REQUIRE_BROWSER=1  fail (instead of skip) when /usr/bin/chromium is missing.
  VEXAM_ARTIFACTS_DIR      where screenshots of the main pages go (default var/artifacts).
"""

from __future__ import annotations

import asyncio
import os
import re
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest
import uvicorn
from fastapi import FastAPI
from playwright.sync_api import (
    Browser,
    BrowserContext,
    Page,
    Playwright,
    ViewportSize,
    expect,
    sync_playwright,
)

from tests.helpers import PASSWORD, app_ctx
from vexam.accounts import service as accounts
from vexam.accounts.sms import MemorySmsSender
from vexam.config import Settings
from vexam.main import create_app

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# A mid-range Android phone: the devices candidates take exams on (SPEC §2).
PHONE_VIEWPORT: ViewportSize = {"width": 390, "height": 844}
START_TIMEOUT_S = 15.0
STOP_TIMEOUT_S = 15.0
SMS_TIMEOUT_S = 10.0
SMS_CODE_RE = re.compile(r"(?<!\d)(\d{6})(?!\d)")

T = TypeVar("T")


@dataclass
class LiveApp:
    """The app served by uvicorn on a loop of its own, in a background thread."""

    url: str
    app: FastAPI
    loop: asyncio.AbstractEventLoop

    def run(self, make: Callable[[], Awaitable[T]], timeout: float = 10.0) -> T:
        """Run `make()` on the server's loop (where its database engine lives); return it."""

        async def _call() -> T:
            return await make()

        return asyncio.run_coroutine_threadsafe(_call(), self.loop).result(timeout)


@pytest.fixture
def live_app(settings: Settings, resources: dict[str, object]) -> Iterator[LiveApp]:
    """The real application (lifespan, in-process job worker, real clock) on a free port."""
    app = create_app(settings, in_process_worker=True, resources=resources)
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=0,
        log_level="warning",
        lifespan="on",
        timeout_graceful_shutdown=5,
    )
    server = uvicorn.Server(config)
    loop = asyncio.new_event_loop()
    failure: list[BaseException] = []

    def _serve() -> None:
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(server.serve())
        except BaseException as exc:  # reported by the fixture, not lost in the thread
            failure.append(exc)
        finally:
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    thread = threading.Thread(target=_serve, name="vexam-live-server", daemon=True)
    thread.start()
    deadline = time.monotonic() + START_TIMEOUT_S
    while not server.started:
        if not thread.is_alive():
            raise RuntimeError(f"the live server stopped while starting: {failure!r}")
        if time.monotonic() > deadline:
            server.should_exit = True
            raise TimeoutError(f"the live server did not start within {START_TIMEOUT_S} s")
        time.sleep(0.02)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield LiveApp(url=f"http://127.0.0.1:{port}", app=app, loop=loop)
    finally:
        server.should_exit = True
        thread.join(STOP_TIMEOUT_S)
        assert not thread.is_alive(), "the live server did not stop"
        assert not failure, failure


@pytest.fixture
def live_server(live_app: LiveApp) -> str:
    """Base URL of the running application, e.g. http://127.0.0.1:41234."""
    return live_app.url


@pytest.fixture
def existing_account(live_app: LiveApp, new_phone: Callable[[], str]) -> tuple[str, str]:
    """(phone, password) of an account created directly (as `vexam user create` does).

    Used by tests whose subject is not registering: registering sends an SMS, and a phone
    may be sent another code only 60 s later (SPEC §2).
    """
    phone = new_phone()

    async def _create() -> None:
        async with app_ctx(live_app.app, "browser-tests") as ctx:
            await accounts.create_user(ctx, phone, PASSWORD)

    live_app.run(_create)
    return phone, PASSWORD


def _chromium_or_skip() -> None:
    if CHROMIUM.exists():
        return
    if os.environ.get("VEXAM_REQUIRE_BROWSER") == "1":
        pytest.fail(f"VEXAM_REQUIRE_BROWSER=1 but {CHROMIUM} is missing: apt-get install chromium")
    pytest.skip("Debian's chromium is not installed: apt-get install chromium")


@pytest.fixture(scope="package")
def playwright() -> Iterator[Playwright]:
    """Playwright's sync API for this package.

    Package scope, not session scope: while Playwright's sync API is open, no other asyncio
    loop may run in this thread, so it must close before the async tests of other packages
    (tests/core, ...) run.
    """
    _chromium_or_skip()
    with sync_playwright() as instance:
        yield instance


@pytest.fixture(scope="package")
def browser(playwright: Playwright) -> Iterator[Browser]:
    """One headless Chromium for every browser test (a new context per test)."""
    chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
    try:
        yield chromium
    finally:
        chromium.close()


def launch_with_camera(playwright: Playwright, video: Path) -> Browser:
    """A Chromium whose camera plays `video` (a 4:2:0 .y4m file, looped), access granted."""
    return playwright.chromium.launch(
        executable_path=str(CHROMIUM),
        args=[
            *CHROMIUM_ARGS,
            "--use-fake-ui-for-media-stream",
            "--use-fake-device-for-media-stream",
            f"--use-file-for-fake-video-capture={video}",
        ],
    )


def phone_context(browser: Browser, locale: str = "zh-CN") -> BrowserContext:
    """A fresh phone-sized context (its own cookies) asking for pages in `locale`."""
    context = browser.new_context(
        viewport=PHONE_VIEWPORT,
        is_mobile=True,
        has_touch=True,
        device_scale_factor=2,
        locale=locale,
    )
    context.set_default_timeout(10_000)
    return context


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    """A fresh phone-sized tab (its own cookies) whose Chinese system asks for zh-CN pages."""
    context = phone_context(browser)
    try:
        yield context.new_page()
    finally:
        context.close()


def wait_for_sms_code(
    sms: MemorySmsSender, phone: str, *, count: int = 1, timeout: float = SMS_TIMEOUT_S
) -> str:
    """The 6-digit code of the newest SMS to `phone`, once at least `count` have arrived.

    The in-process worker sends the message shortly after the request committed.
    """
    deadline = time.monotonic() + timeout
    while True:
        texts = [text for to, text in list(sms.outbox) if to == phone]
        if len(texts) >= count:
            match = SMS_CODE_RE.search(texts[-1])
            assert match, f"no 6-digit code in {texts[-1]!r}"
            return match.group(1)
        if time.monotonic() > deadline:
            raise AssertionError(
                f"{len(texts)} SMS to {phone} within {timeout} s, expected {count}: {sms.outbox}"
            )
        time.sleep(0.05)


class LiveInbox:
    """The live app's SMS inbox for API helpers run on its loop (`tests.helpers.register`):
    its in-process worker sends a code on its own time, so `code_for` waits for it."""

    def __init__(self, sms: MemorySmsSender) -> None:
        self.sms = sms

    async def code_for(self, phone: str) -> str:
        """The code of the newest SMS to `phone`, waited for off the loop."""
        return await asyncio.to_thread(wait_for_sms_code, self.sms, phone)


@pytest.fixture
def sms_code(sms: MemorySmsSender) -> Callable[..., str]:
    """`sms_code(phone, count=1)`: wait for the SMS code sent to `phone` (see wait_for_sms_code)."""

    def _code(phone: str, *, count: int = 1) -> str:
        return wait_for_sms_code(sms, phone, count=count)

    return _code


def sign_in(page: Page, base: str, phone: str, password: str = PASSWORD) -> None:
    """Sign in on the password form; returns once the browser has left /login."""
    page.goto(f"{base}/login")
    page.locator("input[name=phone]").fill(phone)
    page.locator("input[name=password]").fill(password)
    page.locator("button[name=action][value=login]").click()
    page.wait_for_url(re.compile(r"^(?!.*/login).*$"))


def open_from_home(page: Page, link: str) -> None:
    """Follow one of the candidate home's links (`link` is its test id) once the home has
    rendered what it fetched: until then its sections grow and move the links, and a click
    can land where a link was a moment before."""
    expect(page.get_by_test_id("next-step")).not_to_have_attribute("data-step", "loading")
    page.get_by_test_id(link).click()


def no_horizontal_scroll(page: Page) -> None:
    """The page fits its viewport's width: nothing scrolls sideways."""
    # In phone emulation the layout viewport (innerWidth) widens to fit what overflows, so the
    # page is measured against the emulated screen's width instead.
    sizes = page.evaluate(
        "() => ({scroll: document.documentElement.scrollWidth, inner: window.innerWidth})"
    )
    viewport = page.viewport_size
    screen = min(sizes["inner"], viewport["width"]) if viewport else sizes["inner"]
    assert sizes["scroll"] <= screen, {**sizes, "screen": screen}


def save_screenshot(page: Page, name: str) -> Path:
    """Keep a full-page screenshot of `page` as a test artifact `<name>.png`; return its path."""
    folder = Path(os.environ.get("VEXAM_ARTIFACTS_DIR", "var/artifacts")) / "screenshots"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def pytest_collection_modifyitems(items: list[Any]) -> None:
    """Mark every test of this folder `browser` (select with -m browser / -m 'not browser')."""
    here = Path(__file__).parent
    for item in items:
        if Path(str(item.path)).is_relative_to(here):
            item.add_marker(pytest.mark.browser)
