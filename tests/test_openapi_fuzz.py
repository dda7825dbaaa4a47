"""Bad input over the whole HTTP API (issue 10): schemathesis generates requests for every
operation in /api/openapi.json, both requests that fit the schema and requests that break
it, as an anonymous caller, a signed-in candidate and a school admin. The app must never
answer 5xx, and its answers must match what the schema declares (status, content type,
body).

The test is synchronous: hypothesis calls the example function synchronously, so the app
runs in a private event loop (as in tests/exams/test_sittings_stateful.py) and the requests
reach it in-process through httpx's ASGI transport: no network. Examples are bounded and
derandomized so CI runs the same requests every time, in well under a minute per database.
"""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime
from typing import Any, TypeVar

import httpx
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, reject
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.conftest import Sms
from tests.exams.test_exam_setup import exam_body, new_school
from tests.helpers import PASSWORD, bearer, register, staff
from vexam.core.clock import FrozenClock
from vexam.main import create_app

T = TypeVar("T")
BASE = datetime(2026, 6, 1, 2, 0, tzinfo=UTC)
# Per operation, role and generation mode; VEXAM_FUZZ_EXAMPLES raises it for a local deep run.
EXAMPLES = int(os.environ.get("VEXAM_FUZZ_EXAMPLES", "3"))
# A part of "METHOD /path" to fuzz only the matching operations (local debugging).
ONLY = os.environ.get("VEXAM_FUZZ_ONLY", "")
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
# Operations that end the caller's own session: after one, the role signs in again.
SIGNS_OUT = {("POST", "/api/v1/auth/logout"), ("DELETE", "/api/v1/me/sessions/{session_id}")}
# Who calls; VEXAM_FUZZ_ROLES adds the staff roles (reviewer, support, operator) locally.
ROLES = os.environ.get("VEXAM_FUZZ_ROLES", "anonymous,candidate,school_admin").split(",")


class Fuzzer:
    """One app in a private loop, an in-process client, and who is calling: the role's
    headers and the ids it owns (a path parameter of that name uses them half the time)."""

    def __init__(
        self, app: Any, loop: asyncio.AbstractEventLoop, sms: Any, new_phone: Callable[[], str]
    ) -> None:
        self.app = app
        self.loop = loop
        self.sms = sms
        self.new_phone = new_phone
        # Addresses of this run alone: the rate limits (SMS codes, failed sign-ins) count
        # per address in the database the whole test session shares.
        address = f"10.{secrets.randbelow(250)}.{secrets.randbelow(250)}"
        transport = httpx.ASGITransport(
            app=app, raise_app_exceptions=False, client=(f"{address}.1", 40000)
        )
        self.client = httpx.AsyncClient(transport=transport, base_url="http://testserver")
        # Signing in again comes from another address: the fuzzed failed sign-ins of this
        # one may have reached its limit (login_rate_limited).
        other = httpx.ASGITransport(app=app, client=(f"{address}.2", 40000))
        self.login_client = httpx.AsyncClient(transport=other, base_url="http://testserver")
        self.auth: dict[str, str] = {}
        self.known: dict[str, int] = {}
        self.phone = ""

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return self.loop.run_until_complete(coro)

    async def sign_in(self, role: str) -> None:
        """Give `self.auth` the headers of a fresh `role` account (none when anonymous)."""
        self.auth = {"X-Device-Id": f"fuzz-{secrets.token_hex(6)}"}
        self.phone = self.new_phone()
        if role == "candidate":
            body = await register(self.client, Sms(self.app, self.sms), self.phone)
            self.auth.update(bearer(body["token"]))
        elif role in ("school_admin", "reviewer"):
            school_id = await new_school(self.app)
            admin = bearer(
                await staff(self.app, self.client, self.new_phone(), "school_admin", school_id)
            )
            created = await self.client.post(
                f"/api/v1/schools/{school_id}/exams", json=exam_body(), headers=admin
            )
            assert created.status_code == 201, created.text
            self.known = {"school_id": school_id, "exam_id": created.json()["id"]}
            token = await staff(self.app, self.client, self.phone, role, school_id)
            self.auth.update(bearer(token))
        elif role != "anonymous":
            self.auth.update(bearer(await staff(self.app, self.client, self.phone, role)))

    async def sign_in_again(self) -> None:
        """A new session of the same account (after an operation ended the current one)."""
        response = await self.login_client.post(
            "/api/v1/auth/login", json={"phone": self.phone, "password": PASSWORD}
        )
        assert response.status_code == 200, response.text
        self.auth.update(bearer(response.json()["token"]))

    async def send(self, case: Any) -> httpx.Response:
        """Send a generated case as the current role, the bytes prepared as `requests` would."""
        kwargs = case.as_transport_kwargs(base_url="http://testserver")
        kwargs["headers"] = {**kwargs.get("headers", {}), **self.auth}
        try:
            prepared = requests.Request(**kwargs).prepare()
            # Every header must be sendable on the wire (Latin-1, no line breaks).
            headers = [(k, str(v).encode("latin-1")) for k, v in prepared.headers.items()]
        except (ValueError, UnicodeError, requests.exceptions.RequestException):
            reject()  # no HTTP client could send this request
        body = prepared.body.encode() if isinstance(prepared.body, str) else prepared.body
        self.client.cookies.clear()  # each request stands alone: only the cookies it names
        return await self.client.request(
            str(prepared.method), str(prepared.url), headers=headers, content=body or b""
        )


def _fuzz_operation(
    fuzzer: Fuzzer, role: str, operation: Any, mode: GenerationMode
) -> Callable[[], None]:
    key = (operation.method.upper(), operation.path)

    @hsettings(
        max_examples=EXAMPLES,
        derandomize=True,
        deadline=None,
        database=None,
        phases=[Phase.explicit, Phase.generate, Phase.shrink],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy(generation_mode=mode), use_known=st.booleans())
    def fuzz(case: Any, use_known: bool) -> None:
        if use_known:
            for name in case.path_parameters or {}:
                if name in fuzzer.known:
                    case.path_parameters[name] = fuzzer.known[name]
        response = fuzzer.run(fuzzer.send(case))
        case.validate_response(response, checks=CHECKS)
        if key in SIGNS_OUT and role != "anonymous":
            fuzzer.run(fuzzer.sign_in_again())

    return fuzz


@pytest.mark.parametrize("role", ROLES)
def test_no_server_error_and_schema_conformance(
    settings, resources, sms, new_phone, role: str
) -> None:
    """Issue 10 'bad input': no operation answers 5xx to any generated request, valid or
    not, and every answer is one the schema declares, for each kind of caller."""
    loop = asyncio.new_event_loop()
    app = create_app(settings, clock=FrozenClock(BASE), resources=resources)
    lifespan = app.router.lifespan_context(app)
    fuzzer = Fuzzer(app, loop, sms, new_phone)
    fuzzer.run(lifespan.__aenter__())
    failures: list[str] = []
    try:
        fuzzer.run(fuzzer.sign_in(role))
        served = fuzzer.run(fuzzer.client.get("/api/openapi.json"))
        assert served.status_code == 200
        schema = schemathesis.openapi.from_dict(served.json())
        for result in schema.get_all_operations():
            operation = result.ok()
            if ONLY not in f"{operation.method.upper()} {operation.path}":
                continue
            for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
                try:
                    _fuzz_operation(fuzzer, role, operation, mode)()
                except Unsatisfiable:
                    # Nothing to break: an operation without parameters has no invalid request.
                    assert mode == GenerationMode.NEGATIVE
                # Collected, so one run reports every failing operation (schemathesis raises
                # its findings as an exception group).
                except (Exception, BaseExceptionGroup) as exc:
                    failures.append(f"{operation.method.upper()} {operation.path} [{mode}]: {exc}")
    finally:
        fuzzer.run(fuzzer.client.aclose())
        fuzzer.run(fuzzer.login_client.aclose())
        fuzzer.run(app.state.queue.drain())
        fuzzer.run(lifespan.__aexit__(None, None, None))
        loop.close()
    assert not failures, "\n\n".join(failures)
