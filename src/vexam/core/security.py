"""Security headers on every response: CSP, framing, sniffing, referrer, permissions, HSTS.

The pages load scripts and styles only from /static: no inline `<script>`, no `on...=`
handlers and no `style="..."` attributes (positions that depend on data are set from data-*
attributes by a static script, which the CSP allows). Recorded takes are shown from `blob:`
URLs, camera snapshots are canvases turned into blobs, and playback is served from this origin
(/media/...), so `media-src` and `img-src` need only 'self', blob: and data:.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data: blob:",
        "media-src 'self' blob:",
        "connect-src 'self'",
        "font-src 'self'",
        "worker-src 'self' blob:",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)

# The OpenAPI page (/api/docs) is FastAPI's Swagger UI: one inline start-up script and its
# bundle from a CDN. It shows no personal data; it is the only page allowed either.
DOCS_CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net",
        "style-src 'self' https://cdn.jsdelivr.net",
        "img-src 'self' data: https://fastapi.tiangolo.com",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "frame-ancestors 'none'",
    ]
)
DOCS_PATHS = frozenset({"/api/docs", "/docs/oauth2-redirect"})

PERMISSIONS_POLICY = (
    "camera=(self), microphone=(self), fullscreen=(self), display-capture=(), "
    "geolocation=(), payment=(), usb=()"
)


def _static_headers() -> list[tuple[bytes, bytes]]:
    return [
        (b"x-frame-options", b"DENY"),
        (b"x-content-type-options", b"nosniff"),
        (b"referrer-policy", b"same-origin"),
        (b"permissions-policy", PERMISSIONS_POLICY.encode()),
        (b"cross-origin-opener-policy", b"same-origin"),
    ]


class SecurityHeaders:
    """Add the security headers to every HTTP response (a header a route set itself wins).

    HSTS is sent when TLS is configured: the public `base_url` is https://, or the request
    itself arrived over https (uvicorn takes the scheme from a trusted proxy's
    X-Forwarded-Proto). `hsts_seconds=0` never sends it.
    """

    def __init__(self, app: ASGIApp, *, base_url: str, hsts_seconds: int) -> None:
        self.app = app
        self.hsts_everywhere = base_url.strip().lower().startswith("https://")
        self.hsts = f"max-age={hsts_seconds}; includeSubDomains".encode() if hsts_seconds else b""
        self.common = _static_headers()

    def headers_for(self, scope: Scope) -> list[tuple[bytes, bytes]]:
        """The headers a response to `scope` gets (before those the route set itself)."""
        path = str(scope.get("path", ""))
        policy = DOCS_CONTENT_SECURITY_POLICY if path in DOCS_PATHS else CONTENT_SECURITY_POLICY
        headers = [(b"content-security-policy", policy.encode()), *self.common]
        if self.hsts and (self.hsts_everywhere or scope.get("scheme") == "https"):
            headers.append((b"strict-transport-security", self.hsts))
        return headers

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        extra = self.headers_for(scope)

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                present = {key.lower() for key, _ in message.get("headers", [])}
                added = [(key, value) for key, value in extra if key not in present]
                message["headers"] = [*message.get("headers", []), *added]
            await send(message)

        await self.app(scope, receive, send_with_headers)
