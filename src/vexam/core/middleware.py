"""ASGI middleware: client version gate, device cookie, request metrics."""

from __future__ import annotations

import json
import re
import secrets
import time
from collections.abc import Awaitable, Callable
from http.cookies import SimpleCookie
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from vexam.core.errors import CATALOGUE
from vexam.core.i18n import negotiate
from vexam.core.policy import PolicyCache
from vexam.core.problems import PROBLEM_JSON, problem_body
from vexam.core.web import DEVICE_COOKIE

_VERSION_RE = re.compile(r"^\d{1,6}(\.\d{1,6}){0,3}$")


def parse_version(value: str) -> tuple[int, ...] | None:
    """'2.3.1' → (2, 3, 1); None when it is not a dotted number."""
    value = value.strip()
    if not _VERSION_RE.match(value):
        return None
    parts = tuple(int(part) for part in value.split("."))
    return parts + (0,) * (4 - len(parts))


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key == name:
            return str(value.decode("latin-1"))
    return None


async def _send_problem(
    send: Send, scope: Scope, code: str, params: dict[str, Any], timezone: str
) -> None:
    locale = negotiate(_header(scope, b"accept-language"))
    body = json.dumps(problem_body(code, locale, params, timezone, scope.get("path"))).encode()
    await send(
        {
            "type": "http.response.start",
            "status": CATALOGUE[code].status,
            "headers": [
                (b"content-type", PROBLEM_JSON.encode()),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


class ClientVersionGate:
    """Refuse API calls from app versions below the minimum (426 client_outdated).

    The minimum is the platform policy's (`vexam.core.policy`): the operator's stored value,
    else `VEXAM_MIN_CLIENT_VERSION`. It is read from the process's `PolicyCache`, never from
    the database per request: `refresh` (when given) reloads the cache at most once per TTL,
    and this process's own policy changes are in the cache as soon as they commit. Every
    HTTP request calls `refresh`, so the snapshot other readers (support deadlines, new
    exams) see in a web process is never older than the TTL either.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        min_version: str,
        download_url: str,
        timezone: str,
        policy: PolicyCache | None = None,
        refresh: Callable[[], Awaitable[object]] | None = None,
    ) -> None:
        self.app = app
        if parse_version(min_version) is None:
            raise ValueError(f"VEXAM_MIN_CLIENT_VERSION is not a version: {min_version!r}")
        self.min_version = min_version
        self.download_url = download_url
        self.timezone = timezone
        self.policy = policy
        self.refresh = refresh

    def minimum(self) -> tuple[str, tuple[int, ...]]:
        """The minimum version in force, as written and parsed."""
        wanted = self.policy.current().min_client_version if self.policy else self.min_version
        parsed = parse_version(wanted)
        if parsed is None:  # stored values are checked on saving; never gate on a bad one
            wanted, parsed = self.min_version, parse_version(self.min_version)
        assert parsed is not None
        return wanted, parsed

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and self.refresh is not None:
            await self.refresh()
        if scope["type"] == "http" and str(scope.get("path", "")).startswith("/api/"):
            sent = _header(scope, b"x-client-version")
            if sent is not None:
                version = parse_version(sent)
                if version is None:
                    await _send_problem(send, scope, "client_version_invalid", {}, self.timezone)
                    return
                wanted, minimum = self.minimum()
                if version < minimum:
                    params = {"min_version": wanted, "download_url": self.download_url}
                    await _send_problem(send, scope, "client_outdated", params, self.timezone)
                    return
        await self.app(scope, receive, send)


class DeviceCookie:
    """Give every browser a device id cookie on its first page view (SPEC §2 devices)."""

    def __init__(self, app: ASGIApp, *, secure: bool) -> None:
        self.app = app
        self.secure = secure

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = str(scope.get("path", ""))
        if scope["type"] != "http" or path.startswith(("/api/", "/static/")):
            await self.app(scope, receive, send)
            return
        cookies = SimpleCookie(_header(scope, b"cookie") or "")
        if DEVICE_COOKIE in cookies:
            await self.app(scope, receive, send)
            return
        device = "web-" + secrets.token_hex(12)
        # Downstream code sees the new id at once, as if the browser had sent it.
        headers = [(k, v) for k, v in scope.get("headers", []) if k != b"cookie"]
        existing = _header(scope, b"cookie")
        joined = (
            f"{existing}; {DEVICE_COOKIE}={device}" if existing else f"{DEVICE_COOKIE}={device}"
        )
        headers.append((b"cookie", joined.encode("latin-1")))
        scope = {**scope, "headers": headers}
        cookie = f"{DEVICE_COOKIE}={device}; Path=/; Max-Age=63072000; HttpOnly; SameSite=Lax"
        if self.secure:
            cookie += "; Secure"

        async def send_with_cookie(message: Message) -> None:
            if message["type"] == "http.response.start":
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (b"set-cookie", cookie.encode())]
            await send(message)

        await self.app(scope, receive, send_with_cookie)


class RequestMetrics:
    """Count requests and time them per route template and status (for /metrics)."""

    def __init__(self, app: ASGIApp, *, registry: CollectorRegistry) -> None:
        self.app = app
        self.requests = Counter(
            "vexam_http_requests", "HTTP requests", ["method", "route", "status"], registry=registry
        )
        self.latency = Histogram(
            "vexam_http_request_seconds",
            "HTTP request latency",
            ["method", "route"],
            registry=registry,
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            method = str(scope.get("method", ""))
            self.requests.labels(method, template, str(status)).inc()
            self.latency.labels(method, template).observe(time.perf_counter() - started)
