"""Render refusals: RFC 9457 problem+json for the API, an error page for browsers."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.exceptions import HTTPException as StarletteHTTPException

from vexam.core.errors import CATALOGUE, VexamError, json_params
from vexam.core.i18n import render_message
from vexam.core.web import request_locale, wants_html

log = logging.getLogger(__name__)
PROBLEM_JSON = "application/problem+json"


def problem_body(
    code: str, locale: str, params: dict[str, Any], timezone: str, instance: str | None = None
) -> dict[str, Any]:
    """The problem document of `code`: type, title, status, detail (localised), code, params."""
    spec = CATALOGUE[code]
    body: dict[str, Any] = {
        "type": f"urn:vexam:problem:{code}",
        "title": code,
        "status": spec.status,
        "detail": render_message(locale, spec.message, params, timezone),
        "code": code,
    }
    if instance:
        body["instance"] = instance
    for key, value in json_params(params).items():
        body.setdefault(key, value)
    return body


def problem_response(
    request: Request,
    code: str,
    params: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    """Answer `code` as a page for browsers or a problem document for everyone else."""
    params = params or {}
    settings = request.app.state.settings
    locale = request_locale(request)
    body = problem_body(code, locale, params, settings.default_timezone, request.url.path)
    if wants_html(request):
        templates = request.app.state.templates
        response: Response = templates.render(
            request, "error.html", {"problem": body}, status_code=body["status"]
        )
        response.headers.update(headers or {})
        return response
    return JSONResponse(body, status_code=body["status"], media_type=PROBLEM_JSON, headers=headers)


async def _vexam_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, VexamError)
    headers = {}
    if "retry_after_s" in exc.params:
        headers["Retry-After"] = str(exc.params["retry_after_s"])
    return problem_response(request, exc.code, exc.params, headers)


async def answer_as_handled(request: Request, exc: Exception) -> Response:
    """Answer `exc` as the app's exception handlers answer it for a route (for code that
    serves a request before routing); re-raised when only the catch-all `Exception` handler
    would take it, which runs outermost, for every request alike."""
    handlers = request.app.exception_handlers
    for kind in type(exc).__mro__:
        if kind is Exception:
            break
        handler = handlers.get(kind)
        if handler is not None:
            response: Response = await handler(request, exc)
            return response
    raise exc


async def _validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    # Field locations and error kinds only: never echo the submitted values back.
    errors = [
        {"loc": [str(part) for part in error.get("loc", ())], "type": error.get("type", "")}
        for error in exc.errors()
    ]
    return problem_response(request, "invalid_request", {"errors": errors})


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    code = {404: "not_found", 405: "method_not_allowed", 401: "not_authenticated"}.get(
        exc.status_code, "forbidden" if exc.status_code == 403 else "invalid_request"
    )
    return problem_response(request, code, headers=dict(exc.headers or {}))


# SQLSTATE 22021: PostgreSQL cannot store the text (a NUL character, which SQLite keeps).
_UNSTORABLE_TEXT = "22021"
# SQLSTATEs of a PostgreSQL server that is going down or coming back: shutting down
# (57P01 admin, 57P02 crash), recovering its log after a crash or restart (57P03 "the
# database system is starting up"); class 08 (connection exceptions) is checked beside them.
_RESTARTING = ("57P01", "57P02", "57P03")


async def _database_error(request: Request, exc: Exception) -> Response:
    # Text the database cannot hold is bad input; a lost connection or a server that is
    # restarting is a 503 to retry; every other database error is a crash.
    sqlstate = str(getattr(getattr(exc, "orig", None), "sqlstate", None) or "")
    if sqlstate == _UNSTORABLE_TEXT:
        log.info("refused text the database cannot store on %s", request.url.path)
        return problem_response(request, "invalid_request", {"errors": []})
    restarting = sqlstate in _RESTARTING or sqlstate.startswith("08")
    if restarting or getattr(exc, "connection_invalidated", False):
        return await _unreachable(request, exc)
    raise exc


async def _unreachable(request: Request, exc: Exception) -> Response:
    # Answered, not raised: an exception reaching the server cuts the connection, and a proxy
    # then takes this healthy process for a dead one (issue 10: PostgreSQL restarting).
    # The class name only: the statement and its parameters (personal data) stay out of logs.
    cause = type(getattr(exc, "orig", None) or exc).__name__
    log.warning("unreachable dependency on %s %s (%s)", request.method, request.url.path, cause)
    return _retry_later(request)


async def _pool_exhausted(request: Request, exc: Exception) -> Response:
    # Every pooled connection stayed busy for the pool's whole wait: the process is
    # overloaded; the client retries, as after a restart.
    log.warning("no free database connection for %s %s", request.method, request.url.path)
    return _retry_later(request)


def _retry_later(request: Request) -> Response:
    return problem_response(request, "service_unavailable", headers={"Retry-After": "2"})


async def _unexpected(request: Request, exc: Exception) -> Response:
    # Full detail goes to the server log only; the client gets a stable code.
    log.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return problem_response(request, "internal_error")


# The problem document every refusal is answered with (problem_body), as OpenAPI declares it.
PROBLEM_SCHEMA: dict[str, Any] = {
    "title": "Problem",
    "type": "object",
    "description": "RFC 9457 problem; `code` is a catalogue code, other members its params.",
    "required": ["type", "title", "status", "detail", "code"],
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "code": {"type": "string", "enum": sorted(CATALOGUE)},
        "instance": {"type": "string"},
    },
}
_PROBLEM_RESPONSE = {
    "description": "A refusal: a problem document naming its catalogue code",
    "content": {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}},
}


def document_problems(app: FastAPI) -> None:
    """Declare in the OpenAPI document that every operation may answer a problem: the
    `default` response replaces FastAPI's `422 HTTPValidationError`, which this app never
    sends (validation errors are `invalid_request` problems)."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        schema = build()
        for operations in schema.get("paths", {}).values():
            for operation in operations.values():
                responses = operation.setdefault("responses", {})
                declared = responses.get("422", {}).get("content", {}).get("application/json", {})
                if declared.get("schema", {}).get("$ref", "").endswith("/HTTPValidationError"):
                    del responses["422"]
                responses.setdefault("default", _PROBLEM_RESPONSE)
        schemas = schema.setdefault("components", {}).setdefault("schemas", {})
        schemas.pop("HTTPValidationError", None)
        schemas.pop("ValidationError", None)
        schemas["Problem"] = PROBLEM_SCHEMA
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


def install_problem_handlers(app: FastAPI) -> None:
    """Route every refusal and crash through the catalogue (and document it in OpenAPI)."""
    app.add_exception_handler(VexamError, _vexam_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(DBAPIError, _database_error)
    app.add_exception_handler(PoolTimeout, _pool_exhausted)
    app.add_exception_handler(ConnectionError, _unreachable)  # e.g. the database refusing
    app.add_exception_handler(Exception, _unexpected)
    document_problems(app)
