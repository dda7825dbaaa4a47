"""Issue 10 'bad input' found by the OpenAPI fuzz (tests/test_openapi_fuzz.py), one focused
test per fix: ids past 64 bits, text PostgreSQL cannot store, a readiness probe sent with a
sign-in, and every operation documenting its problem answer."""

from __future__ import annotations

import pytest

from tests.exams.test_exam_setup import exam_body, new_school
from tests.helpers import bearer, register, staff

pytestmark = pytest.mark.usefixtures("app")

HUGE = "9" * 25  # past the 64-bit row ids of SQLite and PostgreSQL


async def test_ids_past_64_bits_name_nothing(app, client, new_phone) -> None:
    """An integer id too large for the database (once a 500 from the driver) is `not_found`
    in a path, on an API route as on a page, and `invalid_request` in a query."""
    school_id = await new_school(app)
    admin = bearer(await staff(app, client, new_phone(), "school_admin", school_id))
    for path in (f"/api/v1/exams/{HUGE}", f"/api/v1/exams/-{HUGE}", f"/exams/{HUGE}/apply"):
        response = await client.get(path, headers={**admin, "Accept": "application/json"})
        assert (response.status_code, response.json()["code"]) == (404, "not_found"), path
    listed = await client.get(f"/api/v1/staff?school_id={HUGE}", headers=admin)
    assert (listed.status_code, listed.json()["code"]) == (422, "invalid_request")
    assert listed.json()["errors"] == [{"loc": ["query", "school_id"], "type": "less_than_equal"}]
    # The largest 64-bit id is still an id: looked up, not found.
    largest = await client.get(f"/api/v1/exams/{2**63 - 1}", headers=admin)
    assert largest.json()["code"] == "exam_not_found"


async def test_body_ids_past_64_bits_are_invalid(client, new_phone, app) -> None:
    """Regression: a staff account for a school id past 64 bits was a 500 (the driver
    raised); the body field is refused as `invalid_request`."""
    operator = bearer(await staff(app, client, new_phone(), "operator"))
    body = {"phone": new_phone(), "role": "school_admin", "school_id": int(HUGE)}
    response = await client.post("/api/v1/staff", json=body, headers=operator)
    assert (response.status_code, response.json()["code"]) == (422, "invalid_request")
    assert ["body", "school_id"] in [error["loc"] for error in response.json()["errors"]]


async def test_text_with_nul_is_a_bad_request_not_a_crash(app, client, inbox, new_phone) -> None:
    """A NUL character in a name or a search (PostgreSQL cannot store or compare it: once
    a 500) is refused as `invalid_request` there, and simply kept or matched on SQLite."""
    who = bearer((await register(client, inbox, new_phone()))["token"])
    renamed = await client.patch("/api/v1/me", json={"display_name": "张\x00三"}, headers=who)
    searched = await client.get("/api/v1/exam-catalog", params={"q": "钢\x00琴"}, headers=who)
    school_id = await new_school(app)
    admin = bearer(await staff(app, client, new_phone(), "school_admin", school_id))
    created = await client.post(
        f"/api/v1/schools/{school_id}/exams", json=exam_body(name="钢\x00琴"), headers=admin
    )
    for response in (renamed, searched, created):
        assert response.status_code < 500, response.text
        if app.state.db.engine.dialect.name == "postgresql":
            assert (response.status_code, response.json()["code"]) == (422, "invalid_request")


async def test_readyz_with_a_sign_in_answers_at_once(client, inbox, new_phone) -> None:
    """Regression: with a bearer token the request's own transaction held SQLite's write
    lock and the database probe waited behind it until its 5 s timeout: 503."""
    who = bearer((await register(client, inbox, new_phone()))["token"])
    ready = await client.get("/readyz", headers=who)
    assert ready.status_code == 200, ready.text
    assert ready.json()["checks"]["database"] == "ok"


async def test_every_operation_documents_its_problem_answer(client) -> None:
    """OpenAPI: each operation's `default` answer is a problem document whose `code` is a
    catalogue code; FastAPI's HTTPValidationError (never sent) is gone."""
    schema = (await client.get("/api/openapi.json")).json()
    assert "HTTPValidationError" not in schema["components"]["schemas"]
    problem = schema["components"]["schemas"]["Problem"]
    assert "invalid_request" in problem["properties"]["code"]["enum"]
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            default = operation["responses"]["default"]["content"]["application/problem+json"]
            assert default["schema"] == {"$ref": "#/components/schemas/Problem"}, (method, path)
    metrics = schema["paths"]["/metrics"]["get"]["responses"]["200"]["content"]
    assert list(metrics) == ["text/plain"]
