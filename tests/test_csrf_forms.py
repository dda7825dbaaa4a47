"""Issue 9: CSRF protection on every form. Every POST page route refuses a form without the
browser's token (or with a wrong one) with 403 `csrf_failed` and changes nothing; the right
token is accepted; every form a role's pages render carries the token."""

from __future__ import annotations

import re
import secrets
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from tests.helpers import PASSWORD, app_ctx, staff
from tests.schools.test_school_pages import exam_form
from tests.test_authorization_matrix import (
    ROLES,
    TABLE,
    World,
    call,
    fill,
)
from tests.test_authorization_matrix import world as world
from vexam.core.audit import AuditEntry
from vexam.exams.models import Exam
from vexam.schools.models import School

pytestmark = pytest.mark.usefixtures("app")

POSTS = sorted(route for route in TABLE if route[0] == "POST")
FORM_RE = re.compile(r"<form\b([^>]*)>(.*?)</form>", re.S | re.I)


def poster(path: str) -> str:
    """A role allowed to post to `path` (anonymous for the public sign-in forms)."""
    allowed = TABLE[("POST", path)].allowed
    if "anonymous" in allowed:
        return "anonymous"
    return sorted(allowed)[0]


async def counts(app: Any) -> tuple[int, int, int]:
    """Audit entries, schools and exams: what a refused form must not change."""
    async with app_ctx(app) as ctx:
        return (
            await ctx.session.scalar(select(func.count()).select_from(AuditEntry)) or 0,
            await ctx.session.scalar(select(func.count()).select_from(School)) or 0,
            await ctx.session.scalar(select(func.count()).select_from(Exam)) or 0,
        )


async def post_form(w: World, browser: httpx.AsyncClient, path: str, token: str | None):
    """The route's form with `token` as its csrf_token (none at all when None)."""
    url = fill(path, w)
    if path == "/device-check/upload":
        headers = {} if token is None else {"x-csrf-token": token}
        return await browser.post(url, content=b"x", headers=headers)
    data = {"field": "value"} if token is None else {"field": "value", "csrf_token": token}
    return await browser.post(url, data=data)


@pytest.mark.parametrize("token", [None, "wrong", "another-browser"])
async def test_every_form_refuses_a_missing_or_wrong_token(app, world, token) -> None:
    """403 csrf_failed for every POST page route, and nothing changes (no audit entry, no
    school, no exam)."""
    before = await counts(app)
    wrong: list[str] = []
    for _, path in POSTS:
        async with world.client(poster(path)) as browser:
            sent = token
            if token == "another-browser":  # a real token, but of another device cookie
                async with world.client("anonymous") as other:
                    sent = world.csrf(other)
            response = await post_form(world, browser, path, sent)
        refused = response.status_code == 403
        if refused and "json" in response.headers.get("content-type", ""):
            refused = response.json().get("code") == "csrf_failed"
        elif refused:
            refused = 'data-code="csrf_failed"' in response.text
        if not refused:
            wrong.append(f"POST {path} -> {response.status_code}")
    assert wrong == [], "\n".join(wrong)
    assert await counts(app) == before


async def test_every_form_in_every_reachable_page_carries_the_token(app, world) -> None:
    """Each <form method="post"> of each GET page a role can open holds a hidden csrf_token
    input with that browser's token."""
    checked = 0
    wrong: list[str] = []
    for method, path in sorted(TABLE):
        if method != "GET":
            continue
        for role in ROLES:
            if role not in TABLE[(method, path)].allowed:
                continue
            async with world.client(role) as browser:
                response = await call(world, browser, method, path)
                if response.status_code != 200 or "text/html" not in response.headers.get(
                    "content-type", ""
                ):
                    continue
                expected = world.csrf(browser)
            for attributes, inner in FORM_RE.findall(response.text):
                if not re.search(r'method="post"', attributes, re.I):
                    continue
                checked += 1
                hidden = re.search(r'<input[^>]*name="csrf_token"[^>]*>', inner)
                if not hidden or f'value="{expected}"' not in hidden.group(0):
                    wrong.append(f"{role} GET {path}: form {attributes.strip()}")
                elif 'type="hidden"' not in hidden.group(0):
                    wrong.append(f"{role} GET {path}: csrf_token is not hidden")
    assert wrong == [], "\n".join(wrong)
    assert checked >= 10


async def test_the_right_token_is_accepted(app, client, world, new_phone) -> None:
    """A representative subset: the same forms with the browser's token do their work."""
    before = await counts(app)
    async with world.client("admin_a") as browser:
        created = await browser.post(
            "/school/exams/new",
            data={
                **exam_form(fields={"code": f"csrf-{secrets.token_hex(3)}"}),
                "csrf_token": world.csrf(browser),
            },
        )
    assert created.status_code == 303, created.text
    async with world.client("operator") as browser:
        slug = f"csrf-{secrets.token_hex(3)}"
        school = await browser.post(
            "/operator/schools",
            data={
                "csrf_token": world.csrf(browser),
                "slug": slug,
                "name": "某学院",
                "timezone": "Asia/Shanghai",
            },
        )
    assert school.status_code == 303, school.text
    after = await counts(app)
    assert (after[1], after[2]) == (before[1] + 1, before[2] + 1)
    assert after[0] > before[0]  # both actions are audited
    async with world.client("anonymous") as browser:
        phone = new_phone()
        await staff(app, client, phone, "support")
        refused_login = await browser.post("/login", data={"phone": phone, "password": PASSWORD})
        assert refused_login.status_code == 403
        login = await browser.post(
            "/login",
            data={"phone": phone, "password": PASSWORD, "csrf_token": world.csrf(browser)},
        )
        assert login.status_code == 303, login.text
    async with world.client("candidate_b") as browser:
        out = await browser.post("/logout", data={"csrf_token": world.csrf(browser)})
    assert out.status_code == 303 and "/login" in out.headers["location"]


async def test_device_check_upload_posted_as_a_form_is_not_a_server_error(world) -> None:
    """SPEC §1: bad input gets a clear answer, never a 500 (the page itself posts raw bytes
    with the token in a header, which works)."""
    async with world.client("candidate_a") as browser:
        response = await browser.post(
            "/device-check/upload", data={"csrf_token": world.csrf(browser), "blob": "x"}
        )
    assert response.status_code == 422, (response.status_code, response.text[:300])
    assert "<code>invalid_request</code>" in response.text  # the refusal page of a browser
