"""Issue 10 security: the headers every response carries (CSP with no inline script or style,
framing refused, no sniffing, referrer kept to this site, camera and microphone for this
site only, HSTS when TLS is configured) and templates the CSP does not break."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest
from starlette.types import Receive, Scope, Send

from vexam.core.security import CONTENT_SECURITY_POLICY, SecurityHeaders
from vexam.main import TEMPLATE_DIRS, create_app


def directives(policy: str) -> dict[str, list[str]]:
    """A CSP header as {directive: [sources]}."""
    parsed: dict[str, list[str]] = {}
    for part in policy.split(";"):
        name, *sources = part.split()
        parsed[name] = sources
    return parsed


def test_policy_allows_no_inline_script_or_style_and_no_framing() -> None:
    """Scripts and styles come from this site only; media may be blob: (recorded takes)."""
    policy = directives(CONTENT_SECURITY_POLICY)
    assert policy["script-src"] == ["'self'"]
    assert policy["style-src"] == ["'self'"]
    assert policy["frame-ancestors"] == ["'none'"]
    assert policy["object-src"] == ["'none'"]
    assert "blob:" in policy["media-src"] and "'self'" in policy["media-src"]
    assert not any("unsafe" in source for sources in policy.values() for source in sources)


@pytest.mark.parametrize(
    ("path", "headers"),
    [
        ("/login", {}),  # a page
        ("/api/v1/me", {}),  # a refusal from the API (401 problem)
        ("/api/v1/me", {"X-Client-Version": "x"}),  # answered by the version gate itself
        ("/static/js/api.js", {}),  # a static file
    ],
)
async def test_every_response_carries_the_headers(client, path, headers) -> None:
    """Pages, API answers (refusals included) and static files all get the headers."""
    response = await client.get(path, headers=headers)
    assert response.status_code < 500
    assert response.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    assert response.headers["x-frame-options"] == "DENY"
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"] == "same-origin"
    permissions = response.headers["permissions-policy"]
    assert "camera=(self)" in permissions and "microphone=(self)" in permissions
    assert "geolocation=()" in permissions
    # The test app's base_url is http://...: no HSTS over plain HTTP.
    assert "strict-transport-security" not in response.headers


async def test_only_the_openapi_page_gets_the_docs_policy(client) -> None:
    """/api/docs (Swagger UI: an inline start-up script and a CDN bundle) gets its own
    policy; it may still not be framed."""
    docs = await client.get("/api/docs")
    assert docs.status_code == 200
    policy = directives(docs.headers["content-security-policy"])
    assert "https://cdn.jsdelivr.net" in policy["script-src"]
    assert policy["frame-ancestors"] == ["'none'"]
    assert docs.headers["x-frame-options"] == "DENY"


async def test_the_app_sends_hsts_when_its_base_url_is_https(settings, clock, resources) -> None:
    """create_app wires the settings in: an https:// base_url turns HSTS on."""
    secure = settings.model_copy(update={"base_url": "https://exam.example.edu"})
    app = create_app(secure, clock=clock, resources=resources)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            response = await client.get("/login")
    assert response.status_code == 200
    assert response.headers["strict-transport-security"] == "max-age=31536000; includeSubDomains"


async def _plain(scope: Scope, receive: Receive, send: Send) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


async def _get(app: SecurityHeaders, url: str) -> httpx.Response:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app)) as client:
        return await client.get(url)


@pytest.mark.parametrize(
    ("base_url", "url", "hsts_seconds", "sent"),
    [
        ("http://127.0.0.1:8000", "http://testserver/", 31536000, False),
        ("https://exam.example.edu", "http://testserver/", 31536000, True),  # TLS at the proxy
        ("http://127.0.0.1:8000", "https://testserver/", 31536000, True),  # request over https
        ("https://exam.example.edu", "https://testserver/", 0, False),  # turned off
    ],
)
async def test_hsts_only_when_tls_is_configured(base_url, url, hsts_seconds, sent) -> None:
    """Strict-Transport-Security when base_url is https:// or the request came over https."""
    app = SecurityHeaders(_plain, base_url=base_url, hsts_seconds=hsts_seconds)
    response = await _get(app, url)
    if sent:
        assert response.headers["strict-transport-security"] == (
            f"max-age={hsts_seconds}; includeSubDomains"
        )
    else:
        assert "strict-transport-security" not in response.headers


async def test_a_header_the_route_set_wins() -> None:
    """A route that set its own header keeps it (it is not doubled)."""

    async def framed(scope: Scope, receive: Receive, send: Send) -> None:
        headers = [(b"x-frame-options", b"SAMEORIGIN")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b""})

    response = await _get(SecurityHeaders(framed, base_url="", hsts_seconds=1), "http://t/")
    assert response.headers.get_list("x-frame-options") == ["SAMEORIGIN"]


INLINE = [
    (re.compile(r"<script(?![^>]*\bsrc=)[^>]*>", re.I), "inline <script> block"),
    (re.compile(r"\son[a-z]+\s*=", re.I), "inline event handler (on...=)"),
    (re.compile(r"\sstyle\s*=", re.I), 'style="..." attribute'),
    (re.compile(r"javascript:", re.I), "javascript: URL"),
    (re.compile(r"<style[\s>]", re.I), "inline <style> block"),
]


def test_no_template_has_inline_script_handler_or_style() -> None:
    """The CSP would block them: every script and style must come from /static."""
    found = []
    for folder in TEMPLATE_DIRS:
        for template in sorted(Path(folder).rglob("*.html")):
            text = template.read_text(encoding="utf-8")
            for pattern, what in INLINE:
                for match in pattern.finditer(text):
                    line = text.count("\n", 0, match.start()) + 1
                    found.append(f"{template.name}:{line}: {what}")
    assert found == []


def test_the_inline_checks_catch_what_they_look_for() -> None:
    """The patterns above do find each kind of inline code (the scan cannot pass vacuously)."""
    samples = [
        "<script>alert(1)</script>",
        '<button onclick="go()">',
        '<p style="color: red">',
        '<a href="javascript:go()">',
        "<style>\n  .grid { display: grid; }\n</style>",
    ]
    for (pattern, _), sample in zip(INLINE, samples, strict=True):
        assert pattern.search(sample), sample
    assert not INLINE[0][0].search('<script type="module" src="/static/js/take.js"></script>')
