"""Issue 9: an authorization matrix over every page route — each role and each school sees
exactly what it may (SPEC §0 roles, DESIGN: authenticated by default)."""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from tests.exams.test_exam_setup import new_school
from tests.exams.test_sittings import candidate_for, new_exam, roster_row_id
from tests.helpers import app_ctx, bearer, staff
from tests.review.conftest import Review, assign, queue, review_exam_body, verified_candidate
from vexam.core.web import DEVICE_COOKIE, SESSION_COOKIE, csrf_token_for, iter_api_routes
from vexam.identity.models import ManualReview

pytestmark = pytest.mark.usefixtures("app")

HTML = {"Accept": "text/html"}


def page_routes(app: Any) -> list[tuple[str, str]]:
    """Every (method, path) of the app that is not under /api/ (pages, forms, media)."""
    return sorted(
        (method, route.path)
        for route in iter_api_routes(app.routes)
        if not route.path.startswith("/api/")
        for method in route.methods
    )


@dataclass
class World:
    """Two schools (admin + reviewer each), a support agent, an operator, two candidates."""

    app: Any
    transport: httpx.ASGITransport
    tokens: dict[str, str] = field(default_factory=dict)
    ids: dict[str, int] = field(default_factory=dict)
    names: dict[str, str] = field(default_factory=dict)

    def client(self, role: str) -> httpx.AsyncClient:
        """A browser of `role`: its session and device cookies (anonymous: no session)."""
        device = f"browser-{role}-{secrets.token_hex(4)}"
        cookies = {DEVICE_COOKIE: device}
        if role in self.tokens:
            cookies[SESSION_COOKIE] = self.tokens[role]
        return httpx.AsyncClient(
            transport=self.transport, base_url="http://testserver", cookies=cookies, headers=HTML
        )

    def csrf(self, client: httpx.AsyncClient) -> str:
        """The right form token of this browser."""
        return csrf_token_for(self.app.state.settings.secret_key, client.cookies[DEVICE_COOKIE])


def token_of(header: dict[str, str]) -> str:
    """The bare token of an Authorization header (pages take it as their session cookie)."""
    return header["Authorization"].split(" ", 1)[1]


@pytest.fixture
async def world(app, client, inbox, new_phone) -> World:
    """Each school has an exam with one certified, enrolled candidate of its own."""
    w = World(
        app, httpx.ASGITransport(app=app, client=("10.9.9.9", 40000), raise_app_exceptions=False)
    )
    agent = bearer(await staff(app, client, new_phone(), "support"))
    w.tokens["support"] = token_of(agent)
    w.tokens["operator"] = await staff(app, client, new_phone(), "operator")
    for side in "ab":
        school_id = await new_school(app)
        admin = bearer(await staff(app, client, new_phone(), "school_admin", school_id))
        w.tokens[f"admin_{side}"] = token_of(admin)
        reviewer = await staff(app, client, new_phone(), "reviewer", school_id)
        w.tokens[f"reviewer_{side}"] = reviewer
        one = {"school_id": school_id, "admin": admin, "agent": agent}
        exam = await new_exam(client, one, **review_exam_body())
        if side == "a":  # a verified submission, assigned to school A's reviewer
            me = (await client.get("/api/v1/me", headers=bearer(reviewer))).json()
            review = Review(one, exam, [bearer(reviewer)], [int(me["id"])])
            await verified_candidate(app, client, inbox, new_phone, review)
            assigned = await assign(client, review, 0)
            assert assigned.status_code in (200, 201), assigned.text
            codes = [item["code"] for item in await queue(client, bearer(reviewer))]
            assert codes, "the reviewer's queue is empty"
            w.names["code"] = codes[0]
        who = await candidate_for(app, client, inbox, new_phone, one, exam)
        w.tokens[f"candidate_{side}"] = token_of(who)
        w.ids[f"school_{side}"] = school_id
        w.ids[f"exam_{side}"] = exam["id"]
        w.ids[f"row_{side}"] = await roster_row_id(app, exam["id"])
    async with app_ctx(app) as ctx:  # the candidates' identity reviews (approved)
        w.ids["review"] = int(await ctx.session.scalar(select(func.min(ManualReview.id))) or 0)
    return w


CANDIDATES = frozenset({"candidate_a", "candidate_b"})
ADMINS = frozenset({"admin_a", "admin_b"})
REVIEWERS = frozenset({"reviewer_a", "reviewer_b"})
SIGNED = CANDIDATES | ADMINS | REVIEWERS | {"support", "operator"}
EVERYONE = SIGNED | {"anonymous"}
ROLES = sorted(EVERYONE)
OPERATOR = frozenset({"operator"})
SUPPORT = frozenset({"support"})
# School A's objects: its own admin, and the operator who runs the whole platform.
SCHOOL_A = frozenset({"admin_a", "operator"})


@dataclass(frozen=True)
class Rule:
    """Who may use a route. `fake`: its placeholder names no real object, so an allowed role
    may get a 404 (it got past authorization to the lookup)."""

    allowed: frozenset[str]
    fake: bool = False
    signs_out: bool = False  # its success is a redirect to the sign-in page


# Every page route of the app, with who may use it. Object routes are filled with school A's
# exam (and candidate A's objects): school B's admin must be refused. A new page route must be
# added here, or test_every_page_route_is_in_the_table fails.
TABLE: dict[tuple[str, str], Rule] = {
    ("GET", "/"): Rule(SIGNED),  # anonymous callers are sent to sign in
    ("GET", "/login"): Rule(EVERYONE),
    ("POST", "/login"): Rule(EVERYONE),
    ("GET", "/register"): Rule(EVERYONE),
    ("POST", "/register"): Rule(EVERYONE),
    ("GET", "/reset"): Rule(EVERYONE),
    ("POST", "/reset"): Rule(EVERYONE),
    ("GET", "/lang/{locale}"): Rule(EVERYONE),
    ("GET", "/help"): Rule(EVERYONE),
    ("GET", "/help/tickets"): Rule(CANDIDATES),
    ("POST", "/help/tickets"): Rule(CANDIDATES),
    ("GET", "/help/tickets/{ticket_id}"): Rule(CANDIDATES, fake=True),
    ("POST", "/help/tickets/{ticket_id}/messages"): Rule(CANDIDATES, fake=True),
    ("POST", "/help/tickets/{ticket_id}/close"): Rule(CANDIDATES, fake=True),
    ("POST", "/logout"): Rule(SIGNED, signs_out=True),
    ("POST", "/sessions/{session_id}/revoke"): Rule(SIGNED, fake=True),
    ("GET", "/identity"): Rule(SIGNED),
    ("GET", "/device-check"): Rule(SIGNED),
    ("POST", "/device-check/upload"): Rule(SIGNED),
    # Candidate pages.
    ("GET", "/exams"): Rule(CANDIDATES),
    ("GET", "/exams/{exam_id}/apply"): Rule(CANDIDATES),  # any candidate may read a catalogue entry
    ("POST", "/exams/{exam_id}/apply"): Rule(CANDIDATES),
    ("GET", "/exams/{exam_id}/confirm"): Rule(CANDIDATES),
    ("POST", "/exams/{exam_id}/confirm"): Rule(frozenset({"candidate_a"})),
    ("POST", "/exams/{exam_id}/pay"): Rule(frozenset({"candidate_a"})),
    ("GET", "/exams/{exam_id}/take"): Rule(CANDIDATES),
    ("GET", "/uploads"): Rule(CANDIDATES),
    # Playback links: the token is the authorization; a made-up one is refused to everyone.
    ("GET", "/media/{token}"): Rule(frozenset(), fake=True),
    ("HEAD", "/media/{token}"): Rule(frozenset(), fake=True),
    # Support console.
    ("GET", "/support/reviews"): Rule(SUPPORT),
    ("GET", "/support/reviews/{review_id}"): Rule(SUPPORT),
    ("POST", "/support/reviews/{review_id}/decision"): Rule(SUPPORT, fake=True),
    ("POST", "/support/reviews/{review_id}/revoke"): Rule(SUPPORT, fake=True),
    ("GET", "/support/appeals"): Rule(SUPPORT),
    ("POST", "/support/appeals/{appeal_id}/decision"): Rule(SUPPORT, fake=True),
    ("GET", "/support/audit"): Rule(SUPPORT | OPERATOR),
    ("POST", "/support/audit"): Rule(SUPPORT | OPERATOR),
    ("GET", "/support/tickets"): Rule(SUPPORT),
    ("GET", "/support/tickets/{ticket_id}"): Rule(SUPPORT, fake=True),
    ("POST", "/support/tickets/{ticket_id}/answer"): Rule(SUPPORT, fake=True),
    ("POST", "/support/tickets/{ticket_id}/close"): Rule(SUPPORT, fake=True),
    # Operator console.
    ("GET", "/operator"): Rule(OPERATOR),
    ("POST", "/operator/schools"): Rule(OPERATOR),
    ("GET", "/operator/schools/{school_id}"): Rule(OPERATOR),
    ("GET", "/operator/staff"): Rule(OPERATOR),
    ("POST", "/operator/staff"): Rule(OPERATOR),
    ("POST", "/operator/staff/{user_id}/active"): Rule(OPERATOR, fake=True),
    ("GET", "/operator/policy"): Rule(OPERATOR),
    ("POST", "/operator/policy"): Rule(OPERATOR),
    ("POST", "/operator/policy/reset"): Rule(OPERATOR),
    ("GET", "/operator/refunds"): Rule(OPERATOR),
    ("POST", "/operator/refunds"): Rule(OPERATOR),
    # School console: school A's exam.
    ("GET", "/school"): Rule(ADMINS | OPERATOR),
    ("GET", "/school/exams/new"): Rule(ADMINS),  # an operator names the school: ?school_id=
    ("POST", "/school/exams/new"): Rule(ADMINS),
    ("GET", "/school/exams/{exam_id}/edit"): Rule(SCHOOL_A),
    ("POST", "/school/exams/{exam_id}/edit"): Rule(SCHOOL_A),
    ("POST", "/school/exams/{exam_id}/copy"): Rule(SCHOOL_A),
    ("GET", "/school/exams/{exam_id}/roster"): Rule(SCHOOL_A),
    ("POST", "/school/exams/{exam_id}/roster/imports"): Rule(SCHOOL_A),
    ("GET", "/school/exams/{exam_id}/roster/imports/{import_id}"): Rule(SCHOOL_A, fake=True),
    ("POST", "/school/exams/{exam_id}/roster/imports/{import_id}/commit"): Rule(
        SCHOOL_A, fake=True
    ),
    ("POST", "/school/exams/{exam_id}/roster/{row_id}/correct"): Rule(SCHOOL_A, fake=True),
    ("POST", "/school/exams/{exam_id}/roster/{row_id}/accommodation"): Rule(SCHOOL_A, fake=True),
    ("GET", "/school/exams/{exam_id}/dashboard"): Rule(SCHOOL_A),
    ("GET", "/school/exams/{exam_id}/review"): Rule(SCHOOL_A),
    ("POST", "/school/exams/{exam_id}/review/settings"): Rule(SCHOOL_A),
    ("POST", "/school/exams/{exam_id}/review/assignments"): Rule(SCHOOL_A),
    ("POST", "/school/exams/{exam_id}/review/assignments/{assignment_id}/delete"): Rule(
        SCHOOL_A, fake=True
    ),
    ("POST", "/school/exams/{exam_id}/review/publish"): Rule(SCHOOL_A),
    # Reviewers.
    ("GET", "/review"): Rule(REVIEWERS),
    # School A's submission, assigned to school A's reviewer: school B's reviewer is refused.
    ("GET", "/review/items/{code}"): Rule(frozenset({"reviewer_a"})),
    ("POST", "/review/items/{code}"): Rule(frozenset({"reviewer_a"})),
}

# Infrastructure probes, not pages: public on purpose (tests/core/test_http_foundation.py).
INFRASTRUCTURE = {("GET", "/healthz"), ("GET", "/readyz"), ("GET", "/metrics")}


def fill(path: str, w: World) -> str:
    """The route's address with school A's objects (made-up numbers for the rest)."""
    values = {
        "exam_id": w.ids["exam_a"],
        "school_id": w.ids["school_a"],
        "row_id": w.ids["row_a"],
        "review_id": w.ids["review"],
        "code": w.names["code"],
        "locale": "en",
    }
    for name in re.findall(r"\{(\w+)\}", path):
        path = path.replace("{" + name + "}", str(values.get(name, 999999)))
    return path


def refused(response: httpx.Response) -> bool:
    """401 (or a redirect to sign in), 403, or 404."""
    to_login = response.is_redirect and "/login" in response.headers.get("location", "")
    return to_login or response.status_code in (401, 403, 404)


async def call(w: World, client: httpx.AsyncClient, method: str, path: str) -> httpx.Response:
    """One request as a browser makes it, with the right form token and an empty form."""
    url = fill(path, w)
    if path == "/device-check/upload":  # the device check posts raw bytes, token in a header
        return await client.post(url, content=b"x", headers={"x-csrf-token": w.csrf(client)})
    data = {"csrf_token": w.csrf(client)} if method == "POST" else None
    return await client.request(method, url, data=data)


def test_every_page_route_is_in_the_table(app) -> None:
    """Nobody adds a page route without saying who may use it."""
    routes = set(page_routes(app)) - INFRASTRUCTURE
    assert routes - TABLE.keys() == set(), "add these routes to TABLE"
    assert TABLE.keys() - routes == set(), "these routes are gone: remove them from TABLE"


async def test_each_role_sees_exactly_what_it_may(app, world) -> None:
    """Allowed roles get past authorization (never 401/403, never sent to sign in, never a
    500); every other role is refused (sent to sign in, 403, or 404 for another school's or
    candidate's object)."""
    routes = sorted(TABLE, key=lambda route: route == ("POST", "/logout"))  # logout last
    wrong: list[str] = []
    for method, path in routes:
        rule = TABLE[(method, path)]
        for role in ROLES:
            async with world.client(role) as browser:
                response = await call(world, browser, method, path)
            status = response.status_code
            where = f"{role:12} {method} {path} -> {status}"
            if status >= 500:
                wrong.append(where + " (server error)")
            elif role in rule.allowed:
                if rule.signs_out:
                    if not (response.is_redirect and "/login" in response.headers["location"]):
                        wrong.append(where + " (should sign out)")
                elif refused(response) and not (rule.fake and status == 404):
                    wrong.append(where + " (should be allowed)")
            elif not refused(response):
                wrong.append(where + " (should be refused)")
    assert wrong == [], "\n".join(wrong)


CROSS_SCHOOL = [
    "/school/exams/{exam_id}/edit",
    "/school/exams/{exam_id}/roster",
    "/school/exams/{exam_id}/dashboard",
    "/school/exams/{exam_id}/review",
    "/api/v1/exams/{exam_id}/review/export.csv",
    "/api/v1/exams/{exam_id}/review/export.xlsx",
]


@pytest.mark.parametrize("path", CROSS_SCHOOL)
async def test_no_cross_school_read(world, path) -> None:
    """School B's admin and reviewer get 403/404 on school A's exam pages and exports; school
    A's admin reads them."""
    url = path.replace("{exam_id}", str(world.ids["exam_a"]))
    for role in ("admin_b", "reviewer_b"):
        async with world.client(role) as browser:
            response = await browser.get(url)
        assert response.status_code in (403, 404), (role, url, response.status_code)
        assert "钢琴" not in response.text and "Piano" not in response.text
    async with world.client("admin_a") as browser:
        response = await browser.get(url)
    assert response.status_code == 200, (url, response.status_code)
