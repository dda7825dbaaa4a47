"""SPEC §2 accounts in a real Chromium on a phone-sized screen: the server-rendered pages."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from playwright.sync_api import Locator, Page, expect

from tests.helpers import PASSWORD
from vexam.accounts.sms import MemorySmsSender

pytestmark = pytest.mark.browser
PHONE_WIDTH = 390

# Texts from src/vexam/locale/*/LC_MESSAGES/messages.po.
ZH = {
    "Create an account": "注册账号",
    "Sign in": "登录",
    "My account": "我的账号",
    "Signed in as": "当前登录",
    "Sign out": "退出登录",
    "Reset password": "重置密码",
    "login_failed": "手机号或密码错误。",
    "csrf_failed": "页面已过期，请刷新后重试。",
    "code_sent": "验证码已发送，5 分钟内有效",
    "password_changed": "密码已修改，请用新密码登录。",
}
EN = {
    "code_sent": "A code was sent. It is valid for 5 minutes",
}


def masked(phone: str) -> str:
    """How the pages show a phone number: 138****1234."""
    return f"{phone[:3]}****{phone[-4:]}"


def alert_error(page: Page) -> Locator:
    """The refusal shown on a page."""
    return page.locator("p.alert.error")


def sign_in_with_password(page: Page, base: str, phone: str, password: str) -> None:
    """Fill and submit the password sign-in form."""
    page.goto(f"{base}/login")
    page.locator("input[name=phone]").fill(phone)
    page.locator("input[name=password]").fill(password)
    page.locator("button[name=action][value=login]").click()


def expect_home(page: Page, base: str, phone: str, signed_in_as: str) -> None:
    """The account home shows who is signed in, with the phone masked."""
    expect(page).to_have_url(f"{base}/")
    expect(page.get_by_test_id("signed-in-as")).to_contain_text(signed_in_as)
    expect(page.get_by_test_id("signed-in-as")).to_contain_text(masked(phone))
    expect(page.get_by_test_id("signed-in-as")).not_to_contain_text(phone)


def test_register_in_chinese_then_sign_out(
    page: Page,
    live_server: str,
    sms: MemorySmsSender,
    sms_code: Callable[..., str],
    new_phone: Callable[[], str],
) -> None:
    """SPEC §2: register with phone + SMS code + password (Chinese pages), then sign out."""
    phone = new_phone()
    page.goto(f"{live_server}/register")
    expect(page.locator("html")).to_have_attribute("lang", "zh-CN")
    expect(page.locator("h1")).to_have_text(ZH["Create an account"])
    expect(page).to_have_title(ZH["Create an account"])

    page.locator("input[name=phone]").fill(phone)
    page.locator("button[name=action][value=send_code]").click()
    expect(page.locator("p.alert.notice")).to_contain_text(ZH["code_sent"])
    # The page keeps what was typed.
    expect(page.locator("input[name=phone]")).to_have_value(phone)
    code = sms_code(phone)
    assert [text for to, text in sms.outbox if to == phone] == [
        f"【vexam】您的验证码是 {code}，5 分钟内有效，请勿告诉他人。"
    ]

    page.locator("input[name=code]").fill(code)
    page.locator("input[name=password]").fill(PASSWORD)
    page.locator("button[name=action][value=register]").click()
    expect_home(page, live_server, phone, ZH["Signed in as"])
    # A candidate's home leads with what to do next; the account is a section of it.
    expect(page.get_by_role("heading", name=ZH["My account"])).to_be_visible()
    expect(page.locator("html")).to_have_attribute("lang", "zh-CN")

    page.get_by_role("button", name=ZH["Sign out"]).click()
    expect(page).to_have_url(f"{live_server}/login")
    expect(page.locator("h1")).to_have_text(ZH["Sign in"])
    # Signed out for real: the home page sends this browser back to the sign-in page.
    page.goto(f"{live_server}/")
    expect(page).to_have_url(f"{live_server}/login")


def test_sign_in_by_password_and_wrong_password(
    page: Page, live_server: str, sms_code: Callable[..., str], new_phone: Callable[[], str]
) -> None:
    """SPEC §2: log in with phone + password; a wrong password is refused (`login_failed`)."""
    phone = new_phone()
    page.goto(f"{live_server}/register")
    page.locator("input[name=phone]").fill(phone)
    page.locator("button[name=action][value=send_code]").click()
    code = sms_code(phone)
    page.locator("input[name=code]").fill(code)
    page.locator("input[name=password]").fill(PASSWORD)
    page.locator("button[name=action][value=register]").click()
    expect_home(page, live_server, phone, ZH["Signed in as"])
    page.get_by_role("button", name=ZH["Sign out"]).click()
    expect(page).to_have_url(f"{live_server}/login")

    sign_in_with_password(page, live_server, phone, "not-the-password-1")
    expect(alert_error(page)).to_have_attribute("data-code", "login_failed")
    expect(alert_error(page)).to_have_text(ZH["login_failed"])
    expect(page).to_have_url(f"{live_server}/login")
    expect(page.locator("input[name=phone]")).to_have_value(phone)
    expect(page.locator("input[name=password]")).to_have_value("")

    sign_in_with_password(page, live_server, phone, PASSWORD)
    expect_home(page, live_server, phone, ZH["Signed in as"])


def test_switch_to_english_then_sign_in_with_sms_code(
    page: Page,
    live_server: str,
    sms: MemorySmsSender,
    sms_code: Callable[..., str],
    existing_account: tuple[str, str],
) -> None:
    """SPEC §2 (and §1 languages): log in with phone + SMS code, on English pages."""
    phone, _ = existing_account
    page.goto(f"{live_server}/login")
    expect(page.locator("html")).to_have_attribute("lang", "zh-CN")
    page.locator("nav.lang a").click()
    expect(page).to_have_url(f"{live_server}/login")
    expect(page.locator("html")).to_have_attribute("lang", "en")
    expect(page.locator("h1")).to_have_text("Sign in")
    expect(page.locator("nav.lang a")).to_have_text("中文")

    page.get_by_role("link", name="With SMS code").click()
    expect(page).to_have_url(f"{live_server}/login?mode=sms")
    expect(page.locator("input[name=password]")).to_have_count(0)
    page.locator("input[name=phone]").fill(phone)
    page.locator("button[name=action][value=send_code]").click()
    expect(page.locator("p.alert.notice")).to_contain_text(EN["code_sent"])
    code = sms_code(phone)
    # The SMS speaks the language of the page that asked for it.
    assert sms.outbox[-1] == (
        phone,
        f"[vexam] Your verification code is {code}. It is valid for 5 minutes. Never share it.",
    )

    page.locator("input[name=code]").fill(code)
    page.get_by_role("button", name="Sign in").click()
    expect_home(page, live_server, phone, "Signed in as")
    expect(page.get_by_role("heading", name="My account")).to_be_visible()
    expect(page.locator("html")).to_have_attribute("lang", "en")
    expect(page.get_by_role("button", name="Sign out")).to_be_visible()


def test_sms_code_is_single_use(
    page: Page,
    live_server: str,
    sms_code: Callable[..., str],
    existing_account: tuple[str, str],
) -> None:
    """SPEC §2: an SMS code works once; using it again is `sms_code_invalid`."""
    phone, _ = existing_account
    page.goto(f"{live_server}/login?mode=sms")
    page.locator("input[name=phone]").fill(phone)
    page.locator("button[name=action][value=send_code]").click()
    code = sms_code(phone)
    page.locator("input[name=code]").fill(code)
    page.locator("button[name=action][value=login]").click()
    expect_home(page, live_server, phone, ZH["Signed in as"])
    page.get_by_role("button", name=ZH["Sign out"]).click()
    expect(page).to_have_url(f"{live_server}/login")

    page.goto(f"{live_server}/login?mode=sms")
    page.locator("input[name=phone]").fill(phone)
    page.locator("input[name=code]").fill(code)
    page.locator("button[name=action][value=login]").click()
    expect(alert_error(page)).to_have_attribute("data-code", "sms_code_invalid")
    page.goto(f"{live_server}/")
    expect(page).to_have_url(f"{live_server}/login")


def test_reset_password_with_sms_code(
    page: Page,
    live_server: str,
    sms_code: Callable[..., str],
    existing_account: tuple[str, str],
) -> None:
    """SPEC §2: reset a password by SMS code; the new one signs in, the old one no longer."""
    phone, old_password = existing_account
    new_password = "new-horse-battery-7"
    page.goto(f"{live_server}/login")
    page.get_by_role("link", name="忘记密码？").click()
    expect(page).to_have_url(f"{live_server}/reset")
    expect(page.locator("h1")).to_have_text(ZH["Reset password"])

    page.locator("input[name=phone]").fill(phone)
    page.locator("button[name=action][value=send_code]").click()
    expect(page.locator("p.alert.notice")).to_contain_text(ZH["code_sent"])
    code = sms_code(phone)
    page.locator("input[name=code]").fill(code)
    page.locator("input[name=password]").fill(new_password)
    page.locator("button[name=action][value=reset]").click()
    # Redirected to the sign-in page with a notice: a reload cannot re-post the spent code.
    expect(page).to_have_url(f"{live_server}/login?notice=password_changed")
    expect(page.locator("p.alert.notice")).to_have_text(ZH["password_changed"])
    expect(page.locator("h1")).to_have_text(ZH["Sign in"])
    page.reload()
    expect(page.locator("p.alert.notice")).to_have_text(ZH["password_changed"])
    expect(page.locator("p.alert.error")).to_have_count(0)

    sign_in_with_password(page, live_server, phone, old_password)
    expect(alert_error(page)).to_have_attribute("data-code", "login_failed")
    expect(alert_error(page)).to_have_text(ZH["login_failed"])

    sign_in_with_password(page, live_server, phone, new_password)
    expect_home(page, live_server, phone, ZH["Signed in as"])


@pytest.mark.parametrize("path", ["/login", "/login?mode=sms", "/register", "/reset"])
def test_phone_screen_has_no_horizontal_scroll(page: Page, live_server: str, path: str) -> None:
    """SPEC §2 (phones only): the account pages fit a 390 px wide phone, in both languages."""
    width = PHONE_WIDTH
    assert page.viewport_size == {"width": width, "height": 844}
    for lang, html_lang in (("zh_CN", "zh-CN"), ("en", "en")):
        page.goto(f"{live_server}/lang/{lang}?next=/login")
        page.goto(f"{live_server}{path}")
        expect(page.locator("html")).to_have_attribute("lang", html_lang)
        sizes = page.evaluate(
            "() => ({scroll: document.documentElement.scrollWidth, inner: window.innerWidth})"
        )
        # A mobile Chromium widens the layout viewport to fit content that overflows, so
        # scrollWidth <= innerWidth alone would pass on a too-wide page: compare with 390.
        assert sizes == {"scroll": width, "inner": width}, (lang, sizes)


def test_form_post_without_valid_csrf_token_is_refused(
    page: Page,
    live_server: str,
    sms: MemorySmsSender,
    sms_code: Callable[..., str],
    new_phone: Callable[[], str],
    existing_account: tuple[str, str],
) -> None:
    """SPEC §2 forms: a post without this browser's CSRF token changes nothing (`csrf_failed`)."""
    phone, password = existing_account
    page.goto(f"{live_server}/login")
    token = page.locator("input[name=csrf_token]").first.input_value()
    assert len(token) == 40

    # A form another site could make the browser post: right credentials, no token.
    page.evaluate(
        """([phone, password]) => {
            const form = document.createElement('form');
            form.method = 'post';
            form.action = '/login';
            for (const [name, value] of Object.entries({phone, password, action: 'login'})) {
                const input = document.createElement('input');
                input.type = 'hidden';
                input.name = name;
                input.value = value;
                form.appendChild(input);
            }
            document.body.appendChild(form);
            form.submit();
        }""",
        [phone, password],
    )
    expect(page).to_have_url(f"{live_server}/login")
    expect(alert_error(page)).to_have_attribute("data-code", "csrf_failed")
    expect(alert_error(page)).to_have_text(ZH["csrf_failed"])
    page.goto(f"{live_server}/")
    expect(page).to_have_url(f"{live_server}/login")

    # A forged token: refused before any code is sent.
    forged = "0" * 40
    other = new_phone()
    response = page.request.post(
        f"{live_server}/register",
        form={"csrf_token": forged, "phone": other, "action": "send_code"},
    )
    assert response.status == 403
    assert response.json()["code"] == "csrf_failed"

    # Signed in, the session cookie alone cannot sign this browser out.
    sign_in_with_password(page, live_server, phone, password)
    expect_home(page, live_server, phone, ZH["Signed in as"])
    refused = page.request.post(f"{live_server}/logout", form={"csrf_token": forged})
    assert refused.status == 403
    assert refused.json()["code"] == "csrf_failed"
    page.reload()
    expect_home(page, live_server, phone, ZH["Signed in as"])

    # The queue sends in order: once a later, valid request's SMS arrived, the refused one
    # would have too.
    page.get_by_role("button", name=ZH["Sign out"]).click()
    expect(page).to_have_url(f"{live_server}/login")
    page.goto(f"{live_server}/register")
    witness = new_phone()
    page.locator("input[name=phone]").fill(witness)
    page.locator("button[name=action][value=send_code]").click()
    sms_code(witness)
    assert [text for to, text in sms.outbox if to == other] == []


def test_language_switch_keeps_the_page_and_the_choice_survives_sign_in(
    page: Page, live_server: str, existing_account: tuple[str, str]
) -> None:
    """SPEC §1: switching language stays on the same form, and the choice made before
    signing in is kept on the account."""
    phone, password = existing_account
    page.goto(f"{live_server}/login?mode=sms")
    page.get_by_role("link", name="English").click()
    expect(page).to_have_url(f"{live_server}/login?mode=sms")
    expect(page.locator("input[name=code]")).to_have_count(1)
    sign_in_with_password(page, live_server, phone, password)
    expect(page.locator("html")).to_have_attribute("lang", "en")
    expect(page.get_by_role("heading", name="My account")).to_be_visible()
