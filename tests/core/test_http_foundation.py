"""SPEC §1 and the foundation: problem documents, languages, default authentication."""

from __future__ import annotations

import httpx
import pytest
from fastapi.routing import APIRoute

from vexam.core.auth import Operator
from vexam.core.errors import CATALOGUE, VexamError
from vexam.core.i18n import catalog, negotiate
from vexam.core.web import UnitOfWorkRoute, is_public, iter_api_routes
from vexam.main import create_app

# Every route reachable without signing in, on purpose. A new public route must be added here.
EXPECTED_PUBLIC = {
    ("GET", "/healthz"),
    ("GET", "/readyz"),
    ("GET", "/metrics"),
    ("POST", "/api/v1/auth/sms-codes"),
    ("POST", "/api/v1/auth/register"),
    ("POST", "/api/v1/auth/login"),
    ("POST", "/api/v1/auth/login/sms"),
    ("POST", "/api/v1/auth/password-reset"),
    ("GET", "/"),
    ("GET", "/login"),
    ("POST", "/login"),
    ("GET", "/register"),
    ("POST", "/register"),
    ("GET", "/reset"),
    ("POST", "/reset"),
    ("GET", "/lang/{locale}"),
    # The help centre: where someone who cannot sign in looks for what to do (SPEC §7).
    ("GET", "/help"),
    # The payment gateway calls back server to server; its signature is the authentication.
    ("POST", "/api/v1/payments/callback/{provider_name}"),
}


def _api_routes(app) -> list[APIRoute]:
    return iter_api_routes(app.routes)


def test_public_routes_are_exactly_the_intended_ones(settings) -> None:
    """Authenticated by default: only routes opted in with @public are open."""
    app = create_app(settings)
    public = {
        (method, route.path)
        for route in _api_routes(app)
        if is_public(route.endpoint)
        for method in route.methods
    }
    assert public == EXPECTED_PUBLIC


def test_every_route_runs_in_a_unit_of_work(settings) -> None:
    """Transactions belong to infrastructure: every route is a UnitOfWorkRoute."""
    app = create_app(settings)
    assert all(isinstance(route, UnitOfWorkRoute) for route in _api_routes(app))


async def test_every_private_route_refuses_anonymous_callers(app, client) -> None:
    """Every non-public route answers 401 not_authenticated without a token."""
    checked = 0
    for route in _api_routes(app):
        if is_public(route.endpoint):
            continue
        path = route.path.replace("{session_id}", "1")
        for method in route.methods:
            response = await client.request(method, path, json={})
            assert response.status_code == 401, (method, path, response.text)
            if method != "HEAD":  # an answer to HEAD has no body to name the code
                assert response.json()["code"] == "not_authenticated"
            checked += 1
    assert checked >= 5


async def test_a_made_up_token_is_not_a_session(client) -> None:
    """An unknown bearer token is refused like no token."""
    response = await client.get("/api/v1/me", headers={"Authorization": "Bearer nonsense"})
    assert response.status_code == 401


@pytest.mark.parametrize(
    "body",
    [
        b"{not json",
        b'{"phone": 13800138000, "purpose": "register"}',
        b'{"phone": "13800138000", "purpose": "launch"}',
        b'{"phone": "' + b"9" * 5000 + b'", "purpose": "register"}',
        b"[]",
        b"\xff\xfe",
    ],
)
async def test_bad_input_answers_a_problem_never_a_500(client, body: bytes) -> None:
    """§1: bad input gets a clear problem document, never a 500, and is not echoed back."""
    response = await client.post(
        "/api/v1/auth/sms-codes", content=body, headers={"content-type": "application/json"}
    )
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["code"] == "invalid_request"
    assert problem["type"] == "urn:vexam:problem:invalid_request"
    assert problem["status"] == 422
    assert "9999999999" not in response.text


async def test_unknown_address_is_a_problem(client) -> None:
    """§1: 404 and 405 are catalogue codes too."""
    missing = await client.get("/api/v1/nowhere")
    assert missing.status_code == 404
    assert missing.json()["code"] == "not_found"
    wrong_method = await client.put("/healthz")
    assert wrong_method.status_code == 405
    assert wrong_method.json()["code"] == "method_not_allowed"


async def test_browsers_get_an_error_page(client) -> None:
    """§1: browser routes render an error page in the user's language."""
    response = await client.get("/lang/fr", headers={"Accept": "text/html"})
    assert response.status_code == 404
    assert response.headers["content-type"].startswith("text/html")
    assert "此地址没有内容" in response.text
    assert 'data-code="not_found"' in response.text


async def test_crash_answers_internal_error_without_driver_text(settings, clock) -> None:
    """§1: no exception text ever reaches a client; the code is internal_error."""
    from vexam.core.web import make_router, public

    app = create_app(settings, clock=clock)
    router = make_router()

    @router.get("/api/v1/test-crash")
    @public
    async def crash() -> None:
        raise RuntimeError('relation "users" password=hunter2 does not exist')

    app.include_router(router)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            response = await client.get("/api/v1/test-crash")
    assert response.status_code == 500
    assert response.json()["code"] == "internal_error"
    assert "hunter2" not in response.text and "relation" not in response.text


def test_every_catalogue_code_has_both_languages() -> None:
    """§1: every message exists in Chinese and English."""
    zh, en = catalog("zh_CN"), catalog("en")
    for code, spec in CATALOGUE.items():
        assert spec.message in zh, code
        assert spec.message in en, code
        assert zh[spec.message] != spec.message, code
        assert 400 <= spec.status <= 599, code


def test_codes_are_snake_case_and_unknown_codes_are_refused() -> None:
    """§1: stable snake_case codes, all from one catalogue."""
    assert all(code.replace("_", "").isalpha() and code.islower() for code in CATALOGUE)
    with pytest.raises(KeyError):
        VexamError("made_up_code")


def test_every_translatable_text_is_in_both_catalogs() -> None:
    """§1: every page text and message found in the code is translated (Babel extraction)."""
    from pathlib import Path

    from babel.messages.extract import extract_from_dir

    root = Path(__file__).resolve().parents[2]
    found = {
        message
        for _, _, message, _, _ in extract_from_dir(
            str(root / "src" / "vexam"),
            method_map=[("**.py", "python"), ("**.html", "jinja2")],
            options_map={"**.html": {"extensions": "jinja2.ext.i18n"}},
            keywords={"N_": None, "_": None, "gettext": None},
        )
        if isinstance(message, str)
    }
    assert len(found) > 40
    for locale in ("zh_CN", "en"):
        missing = sorted(found - set(catalog(locale)))
        assert missing == [], (locale, missing)


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, "zh_CN"),
        ("en-US,en;q=0.9", "en"),
        ("zh-CN,zh;q=0.9,en;q=0.8", "zh_CN"),
        ("ja-JP,en;q=0.5", "zh_CN"),
        ("fr", "zh_CN"),
        ("en;q=0.4, zh;q=0.8", "zh_CN"),
        ("zh;q=0.4, en;q=0.8", "en"),
        ("en;q=bogus", "zh_CN"),
    ],
)
def test_language_negotiation(header: str | None, expected: str) -> None:
    """§1: Chinese unless English is the most preferred language."""
    assert negotiate(header) == expected


async def test_problem_detail_follows_accept_language(client) -> None:
    """§1: the human message is in the caller's language."""
    zh = await client.post("/api/v1/auth/sms-codes", json={"phone": "1", "purpose": "login"})
    en = await client.post(
        "/api/v1/auth/sms-codes",
        json={"phone": "1", "purpose": "login"},
        headers={"Accept-Language": "en"},
    )
    assert zh.json()["code"] == en.json()["code"] == "phone_invalid"
    assert "手机号" in zh.json()["detail"]
    assert "mobile number" in en.json()["detail"]


async def test_health_ready_and_metrics(client) -> None:
    """/healthz, /readyz (database, queue, storage) and /metrics."""
    assert (await client.get("/healthz")).json() == {"status": "ok"}
    ready = await client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["checks"] == {"database": "ok", "queue": "ok", "storage": "ok"}
    metrics = await client.get("/metrics")
    assert 'vexam_http_requests_total{method="GET",route="/readyz",status="200"}' in metrics.text


async def test_readyz_names_what_is_down(settings, clock, tmp_path) -> None:
    """/readyz answers 503 and names the part that does not answer (without driver text)."""
    broken = settings.model_copy(update={"queue_url": "redis://127.0.0.1:1/0"})
    app = create_app(broken, clock=clock)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            response = await client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["checks"]["queue"] == "unavailable"
    assert response.json()["checks"]["database"] == "ok"


async def test_openapi_is_published(client) -> None:
    """OpenAPI for native clients at /api/docs."""
    spec = (await client.get("/api/openapi.json")).json()
    assert "/api/v1/auth/register" in spec["paths"]
    assert (await client.get("/api/docs")).status_code == 200


async def test_roles_are_enforced_by_dependency(settings, clock, inbox, sms) -> None:
    """Roles: a route for operators refuses a candidate with 403 `forbidden`."""
    from tests.helpers import bearer, register
    from vexam.core.web import make_router

    app = create_app(settings, clock=clock, resources={"sms_sender": sms})
    router = make_router()

    @router.get("/api/v1/test-operators-only")
    async def operators_only(principal: Operator) -> dict[str, int]:
        return {"user": principal.user_id}

    app.include_router(router)
    async with app.router.lifespan_context(app):
        inbox.app = app
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            candidate = await register(client, inbox, "13612340001")
            refused = await client.get(
                "/api/v1/test-operators-only", headers=bearer(candidate["token"])
            )
            anonymous = await client.get("/api/v1/test-operators-only")
    assert refused.status_code == 403
    assert refused.json()["code"] == "forbidden"
    assert anonymous.status_code == 401
