"""Issue 10 security: an authorization matrix over every JSON API route — each role, own vs
other candidate, own vs other school — with real objects (SPEC §0 roles, DESIGN: authenticated
by default). Every role a route does not admit is refused (401/403/404, never 2xx) and sees
none of the objects' data; every role it admits gets past authorization. A new API route must
be added to TABLE, or test_every_api_route_is_in_the_table fails."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from fastapi.routing import APIRoute
from sqlalchemy import select
from starlette.routing import Route

from tests.exams.test_exam_setup import exam_body
from tests.exams.test_sittings import PHONE, SHA, complete, ready, record
from tests.helpers import PASSWORD, app_ctx, bearer
from tests.identity.conftest import jpeg
from tests.schools.test_roster import csv_bytes, id_number
from tests.test_authorization_matrix import (
    CANDIDATES,
    EVERYONE,
    OPERATOR,
    REVIEWERS,
    ROLES,
    SCHOOL_A,
    SIGNED,
    SUPPORT,
    World,
)
from tests.test_authorization_matrix import world as world
from tests.uploads.conftest import TUS, b64
from vexam.accounts.models import User
from vexam.exams.models import PaymentOrder, Sitting, Submission, Upload
from vexam.identity.models import Identity, IdentityPhoto

pytestmark = pytest.mark.usefixtures("app")

DEVICE = {"X-Device-Id": "device-a-0001"}  # candidate A's exam device, sent by every caller
CANDIDATE_A = frozenset({"candidate_a"})
SCHOOL_A_STAFF = frozenset({"admin_a", "reviewer_a"})


def _all_routes(routes: Any) -> list[Route]:
    """Every route, API or plain (the tus HEAD, the OpenAPI page), of included routers too."""
    found: list[Route] = []
    for route in routes:
        if isinstance(route, Route):
            found.append(route)
        elif hasattr(route, "original_router"):
            found.extend(_all_routes(route.original_router.routes))
    return found


def api_routes(app: Any) -> list[tuple[str, str]]:
    """Every (method, path) under /api/, and every plain route elsewhere (the page matrix
    walks the pages' APIRoutes only)."""
    return sorted(
        (method, route.path)
        for route in _all_routes(app.routes)
        if route.path.startswith("/api/") or not isinstance(route, APIRoute)
        for method in route.methods or ()
    )


@dataclass(frozen=True)
class Rule:
    """Who may call a route. `fake`: its placeholder names no real object, so an allowed role
    may get a 404. `public`: open to anyone; made-up credentials are refused by the service."""

    allowed: frozenset[str]
    fake: bool = False
    public: bool = False


# Object routes are filled with school A's exam and candidate A's objects: the other school and
# the other candidate must be refused.
TABLE: dict[tuple[str, str], Rule] = {
    # Accounts: signing in is public; /me is always the caller's own.
    ("POST", "/api/v1/auth/sms-codes"): Rule(EVERYONE, public=True),
    ("POST", "/api/v1/auth/register"): Rule(EVERYONE, public=True),
    ("POST", "/api/v1/auth/login"): Rule(EVERYONE, public=True),
    ("POST", "/api/v1/auth/login/sms"): Rule(EVERYONE, public=True),
    ("POST", "/api/v1/auth/password-reset"): Rule(EVERYONE, public=True),
    ("POST", "/api/v1/payments/callback/{provider_name}"): Rule(EVERYONE, public=True),
    ("POST", "/api/v1/auth/logout"): Rule(SIGNED),
    ("GET", "/api/v1/me"): Rule(SIGNED),
    ("PATCH", "/api/v1/me"): Rule(SIGNED),
    ("GET", "/api/v1/me/sessions"): Rule(SIGNED),
    ("DELETE", "/api/v1/me/sessions/{session_id}"): Rule(CANDIDATE_A),  # A's other device
    # Identity: a candidate's own; photos also for support.
    ("GET", "/api/v1/identity"): Rule(SIGNED),
    ("POST", "/api/v1/identity/certification"): Rule(CANDIDATES),
    ("POST", "/api/v1/identity/id-photo"): Rule(CANDIDATES),
    ("POST", "/api/v1/identity/face"): Rule(CANDIDATES),
    ("POST", "/api/v1/identity/face/challenge"): Rule(CANDIDATES),
    ("POST", "/api/v1/identity/manual-review"): Rule(CANDIDATES),
    ("POST", "/api/v1/identity/appeals"): Rule(CANDIDATES),
    ("POST", "/api/v1/identity/appeals/{appeal_id}/cancel"): Rule(CANDIDATE_A),
    ("GET", "/api/v1/identity/photos/{photo_id}"): Rule(CANDIDATE_A | SUPPORT),
    ("GET", "/api/v1/support/reviews"): Rule(SUPPORT),
    ("GET", "/api/v1/support/reviews/{review_id}"): Rule(SUPPORT),
    ("POST", "/api/v1/support/reviews/{review_id}/decision"): Rule(SUPPORT),
    ("GET", "/api/v1/support/appeals"): Rule(SUPPORT),
    ("POST", "/api/v1/support/appeals/{appeal_id}/decision"): Rule(SUPPORT),
    ("POST", "/api/v1/support/identities/{identity_id}/revoke"): Rule(SUPPORT),
    # Schools and staff.
    ("GET", "/api/v1/schools"): Rule(OPERATOR),
    ("POST", "/api/v1/schools"): Rule(OPERATOR),
    ("GET", "/api/v1/schools/{school_id}"): Rule(SCHOOL_A | {"reviewer_a"}),
    ("GET", "/api/v1/schools/{school_id}/exams"): Rule(SCHOOL_A),
    ("POST", "/api/v1/schools/{school_id}/exams"): Rule(SCHOOL_A),
    ("GET", "/api/v1/staff"): Rule(SCHOOL_A),  # ?school_id= school A
    ("POST", "/api/v1/staff"): Rule(SCHOOL_A),  # a reviewer of school A
    ("PUT", "/api/v1/staff/{user_id}/active"): Rule(SCHOOL_A),  # school A's reviewer
    # Exams of school A.
    ("GET", "/api/v1/exams/{exam_id}"): Rule(SCHOOL_A),  # candidates read the catalogue
    ("PUT", "/api/v1/exams/{exam_id}"): Rule(SCHOOL_A),
    ("GET", "/api/v1/exams/{exam_id}/accommodations"): Rule(SCHOOL_A),
    ("GET", "/api/v1/exams/{exam_id}/roster"): Rule(SCHOOL_A),
    ("POST", "/api/v1/exams/{exam_id}/roster/imports"): Rule(SCHOOL_A),
    ("GET", "/api/v1/exams/{exam_id}/roster/imports/{import_id}"): Rule(SCHOOL_A),
    ("POST", "/api/v1/exams/{exam_id}/roster/imports/{import_id}/commit"): Rule(SCHOOL_A),
    ("PATCH", "/api/v1/exams/{exam_id}/roster/{row_id}"): Rule(SCHOOL_A),
    ("PUT", "/api/v1/exams/{exam_id}/roster/{row_id}/accommodation"): Rule(SCHOOL_A),
    ("GET", "/api/v1/exams/{exam_id}/roster/{row_id}/sittings"): Rule(SCHOOL_A),
    # Review of school A's exam; the item is assigned to school A's reviewer.
    ("GET", "/api/v1/exams/{exam_id}/review/settings"): Rule(SCHOOL_A),
    ("PUT", "/api/v1/exams/{exam_id}/review/settings"): Rule(SCHOOL_A),
    ("GET", "/api/v1/exams/{exam_id}/review/assignments"): Rule(SCHOOL_A),
    ("POST", "/api/v1/exams/{exam_id}/review/assignments"): Rule(SCHOOL_A),
    # The first allowed caller deletes the assignment: the next one finds it gone.
    ("DELETE", "/api/v1/exams/{exam_id}/review/assignments/{assignment_id}"): Rule(
        SCHOOL_A, fake=True
    ),
    ("GET", "/api/v1/exams/{exam_id}/review/progress"): Rule(SCHOOL_A),
    ("POST", "/api/v1/exams/{exam_id}/review/publish"): Rule(SCHOOL_A),
    ("GET", "/api/v1/exams/{exam_id}/review/export.csv"): Rule(SCHOOL_A),
    ("GET", "/api/v1/exams/{exam_id}/review/export.xlsx"): Rule(SCHOOL_A),
    ("GET", "/api/v1/review/queue"): Rule(REVIEWERS),
    ("GET", "/api/v1/review/items/{code}"): Rule(frozenset({"reviewer_a"})),
    ("GET", "/api/v1/review/items/{code}/playback"): Rule(frozenset({"reviewer_a"})),
    ("PUT", "/api/v1/review/items/{code}/score"): Rule(frozenset({"reviewer_a"})),
    ("GET", "/api/v1/uploads/{upload_id}/playback"): Rule(SCHOOL_A_STAFF | SUPPORT),
    # Candidates: the catalogue, their applications, sittings and uploads.
    # Published exams open to applications: any signed-in account may list them.
    ("GET", "/api/v1/exam-catalog"): Rule(SIGNED),
    ("GET", "/api/v1/me/applications"): Rule(CANDIDATES),
    ("GET", "/api/v1/me/sittings"): Rule(CANDIDATES),
    ("POST", "/api/v1/me/exam-device/release"): Rule(CANDIDATES),
    # Candidate B is not on school A's roster: not_in_roster (404).
    ("POST", "/api/v1/exams/{exam_id}/application"): Rule(CANDIDATE_A),
    ("POST", "/api/v1/exams/{exam_id}/application/confirm"): Rule(CANDIDATE_A),
    ("POST", "/api/v1/exams/{exam_id}/payment-order"): Rule(CANDIDATE_A),
    ("GET", "/api/v1/exams/{exam_id}/mock"): Rule(CANDIDATE_A),
    ("POST", "/api/v1/exams/{exam_id}/sittings"): Rule(CANDIDATE_A),
    ("POST", "/api/v1/payments/sandbox/orders/{order_id}/pay"): Rule(CANDIDATE_A),
    ("POST", "/api/v1/payments/{order_id}/refund"): Rule(OPERATOR),
    ("GET", "/api/v1/sittings/{sitting_id}"): Rule(CANDIDATE_A),
    ("POST", "/api/v1/sittings/{sitting_id}/device-check"): Rule(CANDIDATE_A),
    ("POST", "/api/v1/sittings/{sitting_id}/events"): Rule(CANDIDATE_A),
    ("POST", "/api/v1/sittings/{sitting_id}/face-verification"): Rule(CANDIDATE_A),
    ("POST", "/api/v1/sittings/{sitting_id}/subjects/{subject_id}/recordings"): Rule(CANDIDATE_A),
    ("POST", "/api/v1/sittings/{sitting_id}/subjects/{subject_id}/submission"): Rule(CANDIDATE_A),
    ("POST", "/api/v1/recordings/{recording_id}/complete"): Rule(CANDIDATE_A),
    ("POST", "/api/v1/recordings/{recording_id}/face-checks"): Rule(CANDIDATE_A),
    ("GET", "/api/openapi.json"): Rule(EVERYONE, public=True),  # the API's description
    ("HEAD", "/api/openapi.json"): Rule(EVERYONE, public=True),
    ("GET", "/api/docs"): Rule(EVERYONE, public=True),
    ("HEAD", "/api/docs"): Rule(EVERYONE, public=True),
    ("GET", "/docs/oauth2-redirect"): Rule(EVERYONE, public=True),  # Swagger UI's helper page
    ("HEAD", "/docs/oauth2-redirect"): Rule(EVERYONE, public=True),
    ("OPTIONS", "/api/v1/uploads"): Rule(EVERYONE, public=True),  # tus discovery / CORS
    ("HEAD", "/api/v1/uploads/{upload_id}"): Rule(CANDIDATE_A),  # the offset of an upload
    ("POST", "/api/v1/uploads"): Rule(CANDIDATE_A),
    ("OPTIONS", "/api/v1/uploads/{upload_id}"): Rule(EVERYONE, public=True),
    ("PATCH", "/api/v1/uploads/{upload_id}"): Rule(CANDIDATE_A),
    ("DELETE", "/api/v1/uploads/{upload_id}"): Rule(CANDIDATE_A),
    # Support tickets: a candidate's own thread; the queue and answers are support's.
    ("GET", "/api/v1/support/tickets"): Rule(CANDIDATES),
    ("POST", "/api/v1/support/tickets"): Rule(CANDIDATES),
    ("GET", "/api/v1/support/tickets/{ticket_id}"): Rule(CANDIDATE_A | SUPPORT),
    ("POST", "/api/v1/support/tickets/{ticket_id}/messages"): Rule(CANDIDATE_A),
    ("POST", "/api/v1/support/tickets/{ticket_id}/close"): Rule(CANDIDATE_A | SUPPORT),
    ("GET", "/api/v1/support/ticket-queue"): Rule(SUPPORT),
    ("POST", "/api/v1/support/tickets/{ticket_id}/answer"): Rule(SUPPORT),
}

# Calls that change what later calls see run last, in this order (logout ends the sessions).
LAST = [
    ("PUT", "/api/v1/exams/{exam_id}"),  # another exam's settings from here on
    ("DELETE", "/api/v1/uploads/{upload_id}"),
    ("POST", "/api/v1/uploads"),  # a new upload of the submission ends the one before
    ("POST", "/api/v1/support/tickets/{ticket_id}/close"),
    ("DELETE", "/api/v1/exams/{exam_id}/review/assignments/{assignment_id}"),
    ("POST", "/api/v1/exams/{exam_id}/review/publish"),
    ("POST", "/api/v1/me/exam-device/release"),
    ("POST", "/api/v1/support/identities/{identity_id}/revoke"),
    ("POST", "/api/v1/auth/logout"),
]


@dataclass
class ApiWorld:
    """The page matrix's world plus candidate A's sitting, recording, submission upload,
    identity and photo, school A's roster import and assignment, and the verified upload."""

    w: World
    ids: dict[str, Any]
    secrets: list[str]  # strings of school A / candidate A that others must never see

    def headers(self, role: str) -> dict[str, str]:
        """An app of `role`: its bearer token (none when anonymous) and the exam device."""
        token = self.w.tokens.get(role)
        return {**DEVICE, **(bearer(token) if token else {})}


async def _scalar(app: Any, query: Any) -> Any:
    async with app_ctx(app) as ctx:
        return await ctx.session.scalar(query)


@pytest.fixture
async def api_world(app, client, world: World) -> ApiWorld:
    """Candidate A mid-exam: one subject submitted and its tus upload begun, one recording
    open; school A has a previewed roster import; support has candidate A's ticket."""
    ids: dict[str, Any] = dict(world.ids)
    ids["code"] = world.names["code"]
    me_a = bearer(world.tokens["candidate_a"])
    who = {**me_a, **DEVICE}
    admin_a = bearer(world.tokens["admin_a"])
    sitting = await ready(app, client, me_a, ids["exam_a"], name="a")
    ids["sitting"] = sitting["id"]
    ids["subject"] = sitting["subjects"][0]["subject_id"]
    first = await record(client, me_a, sitting, 0)
    assert first.status_code == 201, first.text
    assert (await complete(client, me_a, first.json()["id"], duration_seconds=20)).is_success
    submitted = await client.post(
        f"/api/v1/sittings/{ids['sitting']}/subjects/{ids['subject']}/submission",
        json={"recording_id": first.json()["id"], "sha256": SHA, "size_bytes": 1234},
        headers=who,
    )
    assert submitted.status_code == 201, submitted.text
    created = await client.post(
        "/api/v1/uploads",
        headers={
            **who,
            **TUS,
            "Upload-Length": "1234",
            "Upload-Metadata": "submission_id " + b64(str(submitted.json()["submission_id"])),
        },
    )
    assert created.status_code == 201, created.text
    ids["own_upload"] = created.headers["location"].rstrip("/").rsplit("/", 1)[1]
    ids["submission"] = submitted.json()["submission_id"]
    second = await record(client, me_a, sitting, 1, orientation="landscape")
    assert second.status_code == 201, second.text
    ids["recording"] = second.json()["id"]
    ids["subject"] = sitting["subjects"][1]["subject_id"]  # the one being recorded
    number = id_number()
    imported = await client.post(
        f"/api/v1/exams/{ids['exam_a']}/roster/imports",
        files={
            "file": ("roster.csv", csv_bytes([["李四", number, "北京", "27990000000001", "钢琴"]]))
        },
        headers=admin_a,
    )
    assert imported.status_code == 201, imported.text
    ids["import"] = imported.json()["id"]
    assignments = await client.get(
        f"/api/v1/exams/{ids['exam_a']}/review/assignments", headers=admin_a
    )
    assert assignments.status_code == 200 and assignments.json(), assignments.text
    ids["assignment"] = assignments.json()[0]["id"]
    user_a = (await client.get("/api/v1/me", headers=me_a)).json()["id"]
    ids["identity"] = await _scalar(app, select(Identity.id).where(Identity.user_id == user_a))
    ids["photo"] = await _scalar(
        app, select(IdentityPhoto.id).where(IdentityPhoto.user_id == user_a)
    )
    reviewer_a = bearer(world.tokens["reviewer_a"])
    ids["reviewer_a_user"] = (await client.get("/api/v1/me", headers=reviewer_a)).json()["id"]
    ids["verified_upload"] = await _scalar(
        app,
        select(Upload.id)
        .join(Submission, Submission.id == Upload.submission_id)
        .join(Sitting, Sitting.id == Submission.sitting_id)
        .where(Upload.state == "verified", Sitting.exam_id == ids["exam_a"]),
    )
    ticket = await client.post(
        "/api/v1/support/tickets",
        json={"subject": "上传失败", "body": "我的视频传不上去 秘密工单文字"},
        headers=me_a,
    )
    assert ticket.status_code == 201, ticket.text
    ids["ticket"] = ticket.json()["id"]
    appeal = await client.post(
        "/api/v1/identity/appeals",
        json={"kind": "wrong_certification", "message": "秘密申诉文字"},
        headers=me_a,
    )
    assert appeal.status_code == 201, appeal.text
    ids["appeal"] = appeal.json()["id"]
    phone_a = await _scalar(app, select(User.phone).where(User.id == user_a))
    other_device = await client.post(
        "/api/v1/auth/login", json={"phone": phone_a, "password": PASSWORD}
    )
    assert other_device.status_code == 200, other_device.text
    ids["session"] = other_device.json()["session_id"]
    async with app_ctx(app) as ctx:  # candidate A's order (school A's exam is free)
        order = PaymentOrder(
            user_id=user_a,
            exam_id=ids["exam_a"],
            amount_cents=100,
            status="pending",
            provider="sandbox",
            created_at=ctx.now(),
            updated_at=ctx.now(),
        )
        ctx.session.add(order)
        await ctx.session.flush()
        ids["order"] = order.id
    secrets = [number, phone_a, "秘密工单文字", "秘密申诉文字", "李四"]
    return ApiWorld(world, ids, secrets)


def fill(path: str, aw: ApiWorld) -> str:
    """The route's address with school A's and candidate A's objects."""
    ids = aw.ids
    values = {
        "exam_id": ids["exam_a"],
        "school_id": ids["school_a"],
        "row_id": ids["row_a"],
        "review_id": ids["review"],
        "code": ids["code"],
        "sitting_id": ids["sitting"],
        "subject_id": ids["subject"],
        "recording_id": ids["recording"],
        "import_id": ids["import"],
        "assignment_id": ids["assignment"],
        "identity_id": ids["identity"],
        "photo_id": ids["photo"],
        "user_id": ids["reviewer_a_user"],
        "ticket_id": ids["ticket"],
        "appeal_id": ids["appeal"],
        "session_id": ids["session"],
        "order_id": ids["order"],
        "provider_name": "sandbox",
    }
    for name in re.findall(r"\{(\w+)\}", path):
        if name == "upload_id":
            own = not path.endswith("/playback")
            value = ids["own_upload"] if own else ids["verified_upload"]
        else:
            value = values.get(name, 999999)
        path = path.replace("{" + name + "}", str(value))
    return path


def body_of(method: str, path: str, aw: ApiWorld) -> dict[str, Any]:
    """A request body that is valid for the route, so a refusal cannot hide behind a 422."""
    exam = exam_body()
    frame = ("frame.jpg", jpeg(), "image/jpeg")
    bodies: dict[tuple[str, str], dict[str, Any]] = {
        ("PUT", "/api/v1/exams/{exam_id}"): {"json": exam},
        ("POST", "/api/v1/schools/{school_id}/exams"): {"json": exam},
        ("POST", "/api/v1/exams/{exam_id}/roster/imports"): {
            "files": {"file": ("r.csv", csv_bytes([["王五", id_number(), "北京", "", "钢琴"]]))}
        },
        ("POST", "/api/v1/exams/{exam_id}/roster/imports/{import_id}/commit"): {"json": {}},
        ("PATCH", "/api/v1/exams/{exam_id}/roster/{row_id}"): {"json": {"major": "钢琴"}},
        ("PUT", "/api/v1/exams/{exam_id}/roster/{row_id}/accommodation"): {
            "json": {"extra_seconds": 30, "reason": "手臂受伤"}
        },
        ("POST", "/api/v1/staff"): {
            "json": {"phone": "13900001111", "role": "reviewer", "school_id": aw.ids["school_a"]}
        },
        ("PUT", "/api/v1/staff/{user_id}/active"): {"json": {"active": True, "reason": "ok"}},
        ("PATCH", "/api/v1/me"): {"json": {"display_name": "x"}},
        ("POST", "/api/v1/payments/{order_id}/refund"): {"json": {"reason": "ok"}},
        ("PUT", "/api/v1/exams/{exam_id}/review/settings"): {"json": {}},
        ("POST", "/api/v1/exams/{exam_id}/review/assignments"): {
            "json": {"reviewer_id": aw.ids["reviewer_a_user"], "subject_id": aw.ids["subject"]}
        },
        ("PUT", "/api/v1/review/items/{code}/score"): {"json": {"points": [30, 20]}},
        ("POST", "/api/v1/support/tickets/{ticket_id}/messages"): {"json": {"body": "还在吗"}},
        ("POST", "/api/v1/support/tickets/{ticket_id}/answer"): {"json": {"body": "请重试"}},
        ("POST", "/api/v1/support/identities/{identity_id}/revoke"): {"json": {"reason": "ok"}},
        ("POST", "/api/v1/support/appeals/{appeal_id}/decision"): {
            "json": {"decision": "dismiss", "reason": "ok"}
        },
        ("POST", "/api/v1/support/reviews/{review_id}/decision"): {
            "json": {"decision": "approve", "reason": "ok"}
        },
        ("POST", "/api/v1/sittings/{sitting_id}/events"): {"json": {"kind": "left_page"}},
        ("POST", "/api/v1/sittings/{sitting_id}/face-verification"): {"files": {"frame": frame}},
        ("POST", "/api/v1/recordings/{recording_id}/face-checks"): {"files": {"frame": frame}},
        ("POST", "/api/v1/uploads"): {
            "headers": {
                **TUS,
                "Upload-Length": "1234",
                "Upload-Metadata": "submission_id " + b64(str(aw.ids["submission"])),
            }
        },
        ("GET", "/api/v1/staff"): {"params": {"school_id": aw.ids["school_a"]}},
        ("POST", "/api/v1/sittings/{sitting_id}/device-check"): {"json": PHONE},
        ("POST", "/api/v1/sittings/{sitting_id}/subjects/{subject_id}/recordings"): {
            "json": {"orientation": "landscape"}
        },
        ("POST", "/api/v1/sittings/{sitting_id}/subjects/{subject_id}/submission"): {
            "json": {"recording_id": aw.ids["recording"], "sha256": SHA, "size_bytes": 1234}
        },
        ("POST", "/api/v1/recordings/{recording_id}/complete"): {"json": {}},
        ("POST", "/api/v1/exams/{exam_id}/application"): {"json": {"province": "11"}},
        ("POST", "/api/v1/exams/{exam_id}/sittings"): {"json": {"mode": "mock"}},
        ("PATCH", "/api/v1/uploads/{upload_id}"): {
            "content": b"x",
            "headers": {
                **TUS,
                "Upload-Offset": "0",
                "Content-Type": "application/offset+octet-stream",
            },
        },
        ("DELETE", "/api/v1/uploads/{upload_id}"): {"headers": TUS},
        ("HEAD", "/api/v1/uploads/{upload_id}"): {"headers": TUS},
    }
    return bodies.get((method, path), {"json": {}} if method != "GET" else {})


def refused(response: httpx.Response) -> bool:
    """401, 403 or 404."""
    return response.status_code in (401, 403, 404)


async def call(aw: ApiWorld, role: str, method: str, path: str) -> httpx.Response:
    """One request of `role` with a valid body."""
    spec = body_of(method, path, aw)
    headers = {**aw.headers(role), **spec.pop("headers", {})}
    async with httpx.AsyncClient(transport=aw.w.transport, base_url="http://testserver") as c:
        return await c.request(method, fill(path, aw), headers=headers, **spec)


def test_every_api_route_is_in_the_table(app) -> None:
    """Nobody adds an API route without saying who may call it."""
    routes = set(api_routes(app))
    assert routes - TABLE.keys() == set(), "add these routes to TABLE"
    assert TABLE.keys() - routes == set(), "these routes are gone: remove them from TABLE"


async def test_each_role_calls_exactly_what_it_may(api_world: ApiWorld) -> None:
    """First every role a route does not admit (refused, no data of others in the answer),
    then every role it admits (past authorization: never 401/403, no 404 on a real object,
    never a 500). Refusals go first, so they run against untouched objects."""
    wrong: list[str] = []
    ordered = sorted(TABLE, key=lambda route: LAST.index(route) if route in LAST else -1)
    for method, path in ordered:
        rule = TABLE[(method, path)]
        for role in ROLES:
            if role in rule.allowed:
                continue
            response = await call(api_world, role, method, path)
            where = f"{role:12} {method} {path} -> {response.status_code}"
            if response.status_code >= 500:
                wrong.append(where + " (server error)")
            elif not refused(response):
                wrong.append(where + " (should be refused)")
            leaked = [s for s in api_world.secrets if s in response.text]
            if leaked:
                wrong.append(where + f" (leaks {leaked})")
    for method, path in ordered:
        rule = TABLE[(method, path)]
        for role in sorted(rule.allowed):
            response = await call(api_world, role, method, path)
            status = response.status_code
            where = f"{role:12} {method} {path} -> {status}"
            if status >= 500:
                wrong.append(where + " (server error)")
            elif rule.public:
                continue
            elif status in (401, 403) or (status == 404 and not rule.fake):
                wrong.append(where + " (should be allowed)")
    if wrong:
        pytest.fail("\n".join(wrong), pytrace=False)
