"""HTTP plumbing shared by every domain: unit-of-work routes, public marker, templates."""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from pathlib import Path
from typing import Any, TypeVar, get_args

from fastapi import APIRouter, Request, Response
from fastapi.routing import APIRoute
from jinja2 import Environment, FileSystemLoader, select_autoescape

from vexam.core.db import Database, TransactionNeeded
from vexam.core.errors import VexamError
from vexam.core.i18n import DEFAULT_LOCALE, LOCALES, format_datetime, gettext, negotiate

PUBLIC_ATTR = "__vexam_public__"
READS_ATTR = "__vexam_reads__"
SESSION_COOKIE = "vexam_session"
DEVICE_COOKIE = "vexam_device"
LANG_COOKIE = "vexam_lang"
DEVICE_ID_RE = re.compile(r"^[A-Za-z0-9._:-]{8,128}$")

F = TypeVar("F", bound=Callable[..., Any])
T = TypeVar("T")


def public(endpoint: F) -> F:
    """Mark a route as reachable without signing in (routes are authenticated by default)."""
    setattr(endpoint, PUBLIC_ATTR, True)
    return endpoint


def is_public(endpoint: object) -> bool:
    """Whether `endpoint` was opted out of authentication with `@public`."""
    return bool(getattr(endpoint, PUBLIC_ATTR, False))


def reads_first(endpoint: F) -> F:
    """Mark a GET route whose requests usually only read: each runs first in a unit of work for
    reads (`Database.unit_of_work(reads=True)`: no BEGIN or COMMIT on PostgreSQL), and only
    if it turns out to write, again from the start in an ordinary one. For hot GETs whose
    writes are rare (the status poll voids an overdue recording; a session's last-seen time
    is refreshed a few times an hour)."""
    setattr(endpoint, READS_ATTR, True)
    return endpoint


# Row ids are signed 64-bit integers in SQLite and PostgreSQL; the drivers raise on a larger one.
ROW_ID_RANGE = range(-(2**63), 2**63)


def _int_params(route: APIRoute, kind: str) -> tuple[str, ...]:
    """Names of the route's `kind` ("path" or "query") parameters declared as integers."""
    fields = route.dependant.path_params if kind == "path" else route.dependant.query_params
    return tuple(
        field.alias
        for field in fields
        if int in (get_args(field.field_info.annotation) or (field.field_info.annotation,))
    )


def _out_of_range(raw: str) -> bool:
    try:
        return int(raw) not in ROW_ID_RANGE
    except ValueError:
        return False  # not a number: request validation refuses it


class UnitOfWorkRoute(APIRoute):
    """A route whose whole request runs in one unit of work, committed before responding.

    An integer path or query parameter beyond 64 bits names no row: it is refused
    (`not_found`, or `invalid_request` for a query) before the handler runs.
    """

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        """Wrap FastAPI's handler in `Database.unit_of_work()`."""
        original = super().get_route_handler()
        path_ints, query_ints = _int_params(self, "path"), _int_params(self, "query")
        reads = bool(getattr(self.endpoint, READS_ATTR, False))
        if reads and not (self.methods or set()) <= {"GET", "HEAD"}:
            # A request runs twice when it turns out to write: only one without a body can.
            raise TypeError(f"@reads_first on {self.path}: GET routes only")

        async def handler(request: Request) -> Response:
            if any(_out_of_range(request.path_params.get(name, "")) for name in path_ints):
                raise VexamError("not_found")
            for name in query_ints:
                if any(_out_of_range(raw) for raw in request.query_params.getlist(name)):
                    error = {"loc": ["query", name], "type": "less_than_equal"}
                    raise VexamError("invalid_request", errors=[error])
            return await in_unit_of_work(request, original, reads_first=reads)

        return handler


async def in_unit_of_work(
    request: Request, call: Callable[[Request], Awaitable[T]], *, reads_first: bool
) -> T:
    """`call(request)` in a unit of work of the app's database (`request.state.db` is its
    session), committed when it returns. With `reads_first` (see `reads_first`), first in a
    unit for reads, and again from the start in an ordinary one if it turns out to write."""
    db: Database = request.app.state.db
    if reads_first:
        try:
            async with db.unit_of_work(reads=True) as session:
                request.state.db = session
                return await call(request)
        except TransactionNeeded:
            pass  # nothing was written: the request runs again, in a transaction
    async with db.unit_of_work() as session:
        request.state.db = session
        return await call(request)


def make_router(**kwargs: Any) -> APIRouter:
    """An APIRouter whose routes run in a unit of work (use for every domain router)."""
    return APIRouter(route_class=UnitOfWorkRoute, **kwargs)


def client_ip(request: Request) -> str | None:
    """The client address (uvicorn resolves X-Forwarded-For from trusted proxies only)."""
    return request.client.host if request.client else None


def device_id(request: Request) -> str | None:
    """The caller's device id: `X-Device-Id` from apps, the device cookie from browsers."""
    value = request.headers.get("x-device-id") or request.cookies.get(DEVICE_COOKIE)
    if value is None:
        return None
    if not DEVICE_ID_RE.match(value):
        raise VexamError("device_id_invalid")
    return value


def csrf_token_for(secret_key: str, device: str) -> str:
    """The form token of a browser: bound to its device cookie and the server secret."""
    digest = hmac.new(secret_key.encode(), f"csrf:{device}".encode(), hashlib.sha256)
    return digest.hexdigest()[:40]


def request_locale(request: Request) -> str:
    """User setting, else the language cookie, else Accept-Language (Chinese by default)."""
    principal = getattr(request.state, "principal", None)
    if principal is not None and principal.locale in LOCALES:
        return str(principal.locale)
    cookie = request.cookies.get(LANG_COOKIE)
    if cookie in LOCALES:
        return str(cookie)
    return negotiate(request.headers.get("accept-language"))


def wants_html(request: Request) -> bool:
    """Whether to answer with a page rather than a problem document."""
    if request.url.path.startswith("/api/"):
        return False
    return "text/html" in request.headers.get("accept", "")


class Templates:
    """Jinja2 environments, one per locale, with gettext bound to that locale."""

    def __init__(self, directories: Sequence[Path]) -> None:
        self._envs: dict[str, Environment] = {}
        for locale in LOCALES:
            env = Environment(
                loader=FileSystemLoader([str(d) for d in directories]),
                autoescape=select_autoescape(["html"]),
                extensions=["jinja2.ext.i18n"],
                trim_blocks=True,
                lstrip_blocks=True,
            )
            env.install_gettext_callables(  # type: ignore[attr-defined]
                gettext=_bound_gettext(locale),
                ngettext=_bound_ngettext(locale),
                newstyle=True,
            )
            self._envs[locale] = env

    def render(
        self,
        request: Request,
        name: str,
        context: dict[str, Any] | None = None,
        *,
        status_code: int = 200,
    ) -> Response:
        """Render template `name` in the request's language."""
        locale = request_locale(request)
        settings = request.app.state.settings
        device = request.cookies.get(DEVICE_COOKIE, "")
        values: dict[str, Any] = {
            "request": request,
            "locale": locale,
            "html_lang": "zh-CN" if locale == DEFAULT_LOCALE else "en",
            "principal": getattr(request.state, "principal", None),
            "here": request.url.path + (f"?{request.url.query}" if request.url.query else ""),
            "csrf_token": csrf_token_for(settings.secret_key, device) if device else "",
            "show_time": lambda value: format_datetime(value, settings.default_timezone, locale),
        }
        values.update(context or {})
        html = self._envs[locale].get_template(name).render(values)
        return Response(html, status_code=status_code, media_type="text/html; charset=utf-8")


def _bound_gettext(locale: str) -> Callable[[str], str]:
    def _gettext(message: str) -> str:
        return gettext(locale, message)

    return _gettext


def _bound_ngettext(locale: str) -> Callable[[str, str, int], str]:
    def _ngettext(singular: str, plural: str, count: int) -> str:
        return gettext(locale, singular if count == 1 else plural)

    return _ngettext


def iter_api_routes(routes: Sequence[Any]) -> list[APIRoute]:
    """Every APIRoute of an app, including those of included routers (however nested)."""
    found: list[APIRoute] = []
    for route in routes:
        if isinstance(route, APIRoute):
            found.append(route)
        elif hasattr(route, "original_router"):
            # FastAPI keeps an included router as one branch that points at the original.
            found.extend(iter_api_routes(route.original_router.routes))
    return found


def route_of(router: APIRouter, endpoint: Callable[..., Any]) -> APIRoute:
    """The route of `router` that serves `endpoint` (a lane that answers before routing
    sets it in the scope, so metrics count its requests under the route's template)."""
    for route in iter_api_routes(router.routes):
        if route.endpoint is endpoint:
            return route
    raise LookupError(f"{endpoint.__qualname__} has no route")
