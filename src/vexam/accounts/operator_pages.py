"""zh/en pages of the operator console (SPEC §4, §7): schools, staff accounts and refunds, for
the platform's operators only (the platform policy's page is `operator_policy`).

Every action goes through the same services as the JSON API (`schools.service`,
`accounts.staff`, `exams.enrollment`), which authorize and audit it. Forms post back and
redirect (POST-redirect-GET); a refusal shows the page again with the catalogue message, the
offending field marked and what the operator typed kept. Anyone else gets the refusal page
(403 `forbidden`).
"""

from __future__ import annotations

from math import ceil
from typing import Annotated, Any, TypeVar

from fastapi import Depends, Request, Response
from fastapi.responses import RedirectResponse
from pydantic import BaseModel, ValidationError
from starlette.datastructures import FormData

from vexam.accounts import directory, schemas, staff
from vexam.core.auth import ServiceCtx, require_roles
from vexam.core.context import Ctx, Principal, Role
from vexam.core.errors import VexamError
from vexam.core.i18n import N_, render_message
from vexam.core.web import Templates, make_router
from vexam.exams import enrollment, orders
from vexam.exams.schemas import RefundIn
from vexam.schools import console_text
from vexam.schools import service as schools
from vexam.schools.schemas import SchoolIn

router = make_router(include_in_schema=False)
OperatorOnly = Annotated[Principal, Depends(require_roles(Role.operator))]

# The roles an operator may give from the console (operators are made with the CLI).
STAFF_ROLES = list(staff.STAFF_ROLES)
SCHOOL_ROLES = list(staff.SCHOOL_ROLES)
NOTICES = {
    "school_created": N_("The school was created."),
    "staff_created": N_(
        "The account was created. Its holder sets a password with “Forgot password” and an "
        "SMS code, unless you gave one."
    ),
    "activated": N_("The account was activated."),
    "deactivated": N_("The account was deactivated: its sessions stopped at once."),
    "refunded": N_("Order {order} was refunded: {amount} yuan."),
}
M = TypeVar("M", bound=BaseModel)


def _render(request: Request, name: str, status_code: int = 200, **context: Any) -> Response:
    templates: Templates = request.app.state.templates
    context.setdefault("error_fields", set())
    context.setdefault("typed", {})
    return templates.render(request, f"accounts/{name}", context, status_code=status_code)


def _notice(ctx: Ctx, request: Request, **params: Any) -> str | None:
    done = request.query_params.get("done", "")
    if done not in NOTICES:
        return None
    return render_message(ctx.locale, NOTICES[done], params, ctx.settings.default_timezone)


def _text(form: FormData, name: str) -> str:
    value = form.get(name)
    return value.strip() if isinstance(value, str) else ""


def _validated(model: type[M], values: dict[str, Any]) -> M:
    """`values` as `model`, or the `invalid_request` refusal naming the first bad field."""
    try:
        return model.model_validate(values)
    except ValidationError as exc:
        loc = ["body", *exc.errors()[0]["loc"]]
        raise VexamError("invalid_request", errors=[{"loc": loc, "type": "value_error"}]) from None


def _school_id(value: str) -> int | None:
    if not value:
        return None
    if not value.isdigit():
        raise VexamError("invalid_request", errors=[{"loc": ["body", "school_id"]}])
    return int(value)


# ------------------------------------------------------------------ schools


async def _schools_page(
    request: Request, ctx: Ctx, status_code: int = 200, **extra: Any
) -> Response:
    return _render(
        request,
        "operator_schools.html",
        status_code,
        schools=await schools.list_schools(ctx),
        default_timezone=ctx.settings.default_timezone,
        **extra,
    )


@router.get("/operator")
async def schools_page(request: Request, principal: OperatorOnly, ctx: ServiceCtx) -> Response:
    """Every school, and the form of a new one (the console's first page)."""
    return await _schools_page(request, ctx, notice=_notice(ctx, request))


@router.post("/operator/schools")
async def school_create(request: Request, principal: OperatorOnly, ctx: ServiceCtx) -> Response:
    """Create a school (audited by the service), then show it."""
    form = await request.form()
    typed = {name: _text(form, name) for name in ("slug", "name", "name_en", "timezone")}
    try:
        body = _validated(SchoolIn, {**typed, "name_en": typed["name_en"] or None})
        school = await schools.create_school(
            ctx, body.slug, body.name, name_en=body.name_en, timezone=body.timezone
        )
    except VexamError as exc:
        refusal = await console_text.refusal(ctx, exc)
        return await _schools_page(request, ctx, exc.status, typed=typed, **refusal)
    return RedirectResponse(f"/operator/schools/{school.id}?done=school_created", 303)


async def _school_page(
    request: Request, ctx: Ctx, principal: Principal, school_id: int, **extra: Any
) -> Response:
    school = await schools.get_school(ctx, school_id)
    status_code = extra.pop("status_code", 200)
    return _render(
        request,
        "operator_school.html",
        status_code,
        school=school,
        accounts=await staff.list_staff(ctx, principal, school.id),
        roles=SCHOOL_ROLES,
        back=f"/operator/schools/{school.id}",
        **extra,
    )


@router.get("/operator/schools/{school_id}")
async def school_page(
    request: Request, school_id: int, principal: OperatorOnly, ctx: ServiceCtx
) -> Response:
    """A school: its details, its staff and the form adding an admin or reviewer to it."""
    return await _school_page(request, ctx, principal, school_id, notice=_notice(ctx, request))


# ------------------------------------------------------------------ staff


def _role_filter(value: str) -> str:
    return value if value in {role.value for role in STAFF_ROLES} else ""


async def _staff_page(
    request: Request,
    ctx: Ctx,
    principal: Principal,
    role: str = "",
    school: str = "",
    status_code: int = 200,
    **extra: Any,
) -> Response:
    listed = await schools.list_schools(ctx)
    # `school` is a school id, "platform" (support agents, who belong to no school) or "".
    if school.isdigit():
        scopes: list[int | None] = [int(school)]
    elif school == "platform":
        scopes = [None]
    else:
        school, scopes = "", [None, *(s.id for s in listed)]
    accounts: list[schemas.StaffOut] = []
    for scope in scopes:  # one query per school: operators run tens of schools, not thousands
        accounts += await staff.list_staff(ctx, principal, scope)
    if role:
        accounts = [account for account in accounts if account.role.value == role]
    if "typed" not in extra:
        # A new account is most often for the school and role being looked at.
        extra["typed"] = {"role": role, "school_id": school if school.isdigit() else ""}
    return _render(
        request,
        "operator_staff.html",
        status_code,
        accounts=accounts,
        schools=listed,
        school_names={s.id: s for s in listed},
        roles=STAFF_ROLES,
        school_roles=SCHOOL_ROLES,
        role=role,
        school=school,
        back=request.url.path + (f"?{request.url.query}" if request.url.query else ""),
        **extra,
    )


@router.get("/operator/staff")
async def staff_page(
    request: Request, principal: OperatorOnly, ctx: ServiceCtx, role: str = "", school: str = ""
) -> Response:
    """Staff accounts, filtered by role and school; the form of a new one."""
    return await _staff_page(
        request, ctx, principal, _role_filter(role), school, notice=_notice(ctx, request)
    )


def _back(form: FormData) -> str:
    """Where a staff form returns: one of the console's own pages, never elsewhere."""
    back = _text(form, "back")
    return back if back.startswith("/operator") and "//" not in back else "/operator/staff"


async def _refused_on(
    request: Request, ctx: Ctx, principal: Principal, back: str, exc: VexamError, **extra: Any
) -> Response:
    """The page a staff form came from, again, with the refusal."""
    refusal = await console_text.refusal(ctx, exc)
    path, _, query = back.partition("?")
    if path.startswith("/operator/schools/") and path.rsplit("/", 1)[-1].isdigit():
        return await _school_page(
            request,
            ctx,
            principal,
            int(path.rsplit("/", 1)[-1]),
            status_code=exc.status,
            **refusal,
            **extra,
        )
    params = dict(part.partition("=")[::2] for part in query.split("&") if part)
    return await _staff_page(
        request,
        ctx,
        principal,
        _role_filter(params.get("role", "")),
        params.get("school", ""),
        exc.status,
        **refusal,
        **extra,
    )


def _with_done(back: str, done: str) -> str:
    return f"{back}{'&' if '?' in back else '?'}done={done}"


@router.post("/operator/staff")
async def staff_create(request: Request, principal: OperatorOnly, ctx: ServiceCtx) -> Response:
    """Create a school admin, reviewer (of a school) or support agent (audited)."""
    form = await request.form()
    typed = {name: _text(form, name) for name in ("phone", "role", "school_id", "display_name")}
    back = _back(form)
    try:
        body = _validated(
            schemas.StaffIn,
            {
                "phone": typed["phone"],
                "role": typed["role"],
                "school_id": _school_id(typed["school_id"]),
                "display_name": typed["display_name"] or None,
                "password": _text(form, "password") or None,
            },
        )
        await staff.create_staff(ctx, principal, body)
    except VexamError as exc:
        return await _refused_on(request, ctx, principal, back, exc, typed=typed)
    return RedirectResponse(_with_done(back, "staff_created"), 303)


@router.post("/operator/staff/{user_id}/active")
async def staff_active(
    request: Request, user_id: int, principal: OperatorOnly, ctx: ServiceCtx
) -> Response:
    """Deactivate (its sessions stop at once) or reactivate a staff account, with a reason."""
    form = await request.form()
    back = _back(form)
    active = _text(form, "active") == "1"
    try:
        body = _validated(
            schemas.StaffActiveIn, {"active": active, "reason": _text(form, "reason")}
        )
        await staff.set_active(ctx, principal, user_id, body.active, body.reason)
    except VexamError as exc:
        return await _refused_on(request, ctx, principal, back, exc, failed_user=user_id)
    return RedirectResponse(_with_done(back, "activated" if active else "deactivated"), 303)


# ------------------------------------------------------------------ refunds

REFUND_STATES = ("paid", "refunded", "all")
REFUND_PAGE_SIZE = 50


async def _refunds_page(
    request: Request, ctx: Ctx, principal: Principal, status_code: int = 200, **extra: Any
) -> Response:
    """The refund page: paid orders found by order number, phone (whole or masked) or exam /
    school name, 50 a page, each with its refund form; and the form by order number."""
    params = request.query_params
    query = params.get("q", "").strip()[:100]
    state = params.get("status", "paid")
    state = state if state in REFUND_STATES else "paid"
    page = int(params["page"]) if params.get("page", "").isdigit() else 1
    search: dict[str, Any] = {}
    if directory.is_phone_query(query):
        search["user_ids"] = await directory.user_ids_for_phone(ctx.session, query)
    elif query.isdigit():
        search["order_id"] = int(query)
    elif query:
        search["exam_text"] = query
    listed = await orders.list_orders(
        ctx, principal, status=state, page=page, size=REFUND_PAGE_SIZE, **search
    )
    phones = await directory.masked_phones(ctx.session, {row.user_id for row in listed.rows})
    return _render(
        request,
        "operator_refunds.html",
        status_code,
        listing=listed,
        phones=phones,
        query=query,
        state=state,
        pages=max(1, ceil(listed.total / REFUND_PAGE_SIZE)),
        back=request.url.path + (f"?{request.url.query}" if request.url.query else ""),
        **extra,
    )


@router.get("/operator/refunds")
async def refunds_page(
    request: Request, principal: OperatorOnly, ctx: ServiceCtx, order: int = 0, yuan: str = ""
) -> Response:
    """Paid orders to refund (searchable, a page at a time) and the refund form."""
    shown = _notice(ctx, request, order=order, amount=yuan)
    return await _refunds_page(request, ctx, principal, notice=shown)


@router.post("/operator/refunds")
async def refund_submit(request: Request, principal: OperatorOnly, ctx: ServiceCtx) -> Response:
    """Refund a paid order (the service claims it once, calls the gateway and audits it)."""
    form = await request.form()
    typed = {"order_id": _text(form, "order_id"), "reason": _text(form, "reason")}
    try:
        if not typed["order_id"].isdigit():
            raise VexamError("invalid_request", errors=[{"loc": ["body", "order_id"]}])
        body = _validated(RefundIn, {"reason": typed["reason"]})
        order = await enrollment.refund(ctx, principal, int(typed["order_id"]), body.reason)
    except VexamError as exc:
        refusal = await console_text.refusal(ctx, exc)
        return await _refunds_page(
            request,
            ctx,
            principal,
            exc.status,
            typed=typed,
            failed_order=typed["order_id"],
            **refusal,
        )
    yuan = f"{order.amount_cents / 100:.2f}"
    return RedirectResponse(f"/operator/refunds?done=refunded&order={order.id}&yuan={yuan}", 303)
