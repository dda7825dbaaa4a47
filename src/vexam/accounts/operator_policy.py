"""The operator console's platform policy page (SPEC §2, §3, §7): the policy in force, a form
that changes its editable part — minimum app version, a new exam's device rules, support's
service hours and review deadline — and the server settings that stay read-only.

Saving goes through `accounts.policy.save_policy` (checked, audited, in this process's cache
at once, in the other processes within the cache's TTL). A refusal shows the form again with
the catalogue message, the offending field marked and what the operator typed kept.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Request, Response
from fastapi.responses import RedirectResponse
from starlette.datastructures import FormData

from vexam.accounts import policy as policies
from vexam.config import Settings
from vexam.core.auth import ServiceCtx, require_roles
from vexam.core.context import Ctx, Principal, Role
from vexam.core.errors import CATALOGUE, VexamError
from vexam.core.i18n import N_, Msg, gettext, render_message
from vexam.core.policy import PlatformPolicy, policy_now
from vexam.core.web import Templates, make_router
from vexam.exams.schemas import DEVICE_CLASSES, OS_NAMES

router = make_router(include_in_schema=False)
OperatorOnly = Annotated[Principal, Depends(require_roles(Role.operator))]

DEVICE_LABELS = {"phone": N_("Phones"), "tablet": N_("Tablets"), "desktop": N_("Computers")}
OS_LABELS = {"android": "Android", "harmonyos": "HarmonyOS", "ios": "iOS"}
FIELD_LABELS = {
    "min_client_version": N_("Minimum app version"),
    "device_classes": N_("Devices allowed in a new exam"),
    "min_os": N_("Oldest system versions in a new exam"),
    "support_hours_start": N_("Support opens at"),
    "support_hours_end": N_("Support closes at"),
    "support_sla_minutes": N_("A manual review is due within (minutes of service hours)"),
}
NOTICES = {
    "saved": N_("The platform policy was saved. It is in force on every server within a minute."),
    "reset": N_(
        "The saved policy was removed: the server's defaults are in force again on every "
        "server within a minute."
    ),
}
TEXT_FIELDS = (
    "min_client_version",
    "support_hours_start",
    "support_hours_end",
    "support_sla_minutes",
    *(f"min_os_{name}" for name in OS_NAMES),
)


def _size(count: int) -> str:
    for unit, scale in (("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)):
        if count >= scale:
            return f"{count / scale:.4g} {unit}"
    return f"{count} B"


def settings_rows(settings: Settings) -> list[dict[str, Any]]:
    """What the server's settings decide (read-only), with the variable that sets each, and
    the defaults of the editable part (in force until an operator saves a policy)."""
    return [
        {
            "key": "min_client_version",
            "label": N_("Minimum app version (default)"),
            "value": settings.min_client_version,
            "source": "VEXAM_MIN_CLIENT_VERSION",
        },
        {
            "key": "client_download_url",
            "label": N_("App download address"),
            "value": settings.client_download_url,
            "source": "VEXAM_CLIENT_DOWNLOAD_URL",
        },
        {
            "key": "support_hours",
            "label": N_("Support service hours (default)"),
            "value": f"{settings.support_hours_start}–{settings.support_hours_end}"
            f" ({settings.default_timezone})",
            "source": "VEXAM_SUPPORT_HOURS_START, VEXAM_SUPPORT_HOURS_END, VEXAM_DEFAULT_TIMEZONE",
        },
        {
            "key": "support_sla_minutes",
            "label": N_("Manual review deadline in minutes (default)"),
            "value": str(settings.support_sla_minutes),
            "source": "VEXAM_SUPPORT_SLA_MINUTES",
        },
        {
            "key": "upload_max_bytes",
            "label": N_("Largest recording upload"),
            "value": _size(settings.upload_max_bytes),
            "source": "VEXAM_UPLOAD_MAX_BYTES",
        },
        {
            "key": "id_photo_max_bytes",
            "label": N_("Largest ID card photo or selfie"),
            "value": _size(settings.id_photo_max_bytes),
            "source": "VEXAM_ID_PHOTO_MAX_BYTES",
        },
        {
            "key": "payment_provider",
            "label": N_("Payment provider"),
            "value": settings.payment_provider,
            "source": "VEXAM_PAYMENT_PROVIDER",
        },
    ]


def form_of(policy: PlatformPolicy) -> dict[str, Any]:
    """The form as the policy in force fills it."""
    return {
        "min_client_version": policy.min_client_version,
        "device_classes": list(policy.device_classes),
        **{f"min_os_{name}": policy.min_os.get(name, "") for name in OS_NAMES},
        "support_hours_start": policy.support_hours_start,
        "support_hours_end": policy.support_hours_end,
        "support_sla_minutes": str(policy.support_sla_minutes),
    }


def _typed(form: FormData) -> dict[str, Any]:
    typed: dict[str, Any] = {}
    for name in TEXT_FIELDS:
        value = form.get(name)
        typed[name] = value.strip() if isinstance(value, str) else ""
    typed["device_classes"] = [str(kind) for kind in form.getlist("device_class")]
    return typed


def policy_of(typed: dict[str, Any]) -> PlatformPolicy:
    """The policy the form asks for (`policy_setting_invalid` for what is not even a number);
    an empty system version means no minimum for that system."""
    minutes = typed["support_sla_minutes"]
    if not minutes.isdigit():
        raise policies.setting_invalid(
            "support_sla_minutes", f"between 1 and {policies.MAX_SLA_MINUTES}"
        )
    return PlatformPolicy(
        min_client_version=typed["min_client_version"],
        device_classes=tuple(typed["device_classes"]),
        min_os={name: typed[f"min_os_{name}"] for name in OS_NAMES if typed[f"min_os_{name}"]},
        support_hours_start=typed["support_hours_start"],
        support_hours_end=typed["support_hours_end"],
        support_sla_minutes=int(minutes),
        stored=True,
    )


async def _refusal(ctx: Ctx, exc: VexamError) -> dict[str, Any]:
    await ctx.session.rollback()
    params = dict(exc.params)
    fields: set[str] = set()
    if exc.code == "policy_setting_invalid":
        field = str(params.get("field", ""))
        key = field.replace("min_os.", "min_os_")
        fields.add(key)
        params["field"] = gettext(ctx.locale, FIELD_LABELS.get(field.split(".")[0], field))
        if field.startswith("min_os."):
            params["field"] += f" · {OS_LABELS.get(field.split('.', 1)[1], field)}"
        params["reason"] = Msg(str(params.get("reason", "")))
    message = render_message(
        ctx.locale, CATALOGUE[exc.code].message, params, ctx.settings.default_timezone
    )
    return {"error": message, "error_code": exc.code, "error_fields": fields}


async def _page(request: Request, ctx: Ctx, status_code: int = 200, **extra: Any) -> Response:
    policy = await policy_now(ctx)
    templates: Templates = request.app.state.templates
    context = {
        "policy": policy,
        "form": extra.pop("typed", None) or form_of(policy),
        "rows": settings_rows(ctx.settings),
        "device_classes": DEVICE_CLASSES,
        "device_labels": DEVICE_LABELS,
        "os_names": OS_NAMES,
        "os_labels": OS_LABELS,
        "labels": FIELD_LABELS,
        "timezone": ctx.settings.default_timezone,
        "error_fields": set(),
        **extra,
    }
    return templates.render(
        request, "accounts/operator_policy.html", context, status_code=status_code
    )


@router.get("/operator/policy")
async def policy_page(request: Request, principal: OperatorOnly, ctx: ServiceCtx) -> Response:
    """The platform policy in force, its form, and the read-only server settings."""
    done = request.query_params.get("done", "")
    notice = gettext(ctx.locale, NOTICES[done]) if done in NOTICES else None
    return await _page(request, ctx, notice=notice)


@router.post("/operator/policy")
async def policy_submit(request: Request, principal: OperatorOnly, ctx: ServiceCtx) -> Response:
    """Save the platform policy (checked and audited by the service)."""
    typed = _typed(await request.form())
    try:
        await policies.save_policy(ctx, principal, policy_of(typed))
    except VexamError as exc:
        refusal = await _refusal(ctx, exc)
        return await _page(request, ctx, exc.status, typed=typed, **refusal)
    return RedirectResponse("/operator/policy?done=saved", status_code=303)


@router.post("/operator/policy/reset")
async def policy_reset(request: Request, principal: OperatorOnly, ctx: ServiceCtx) -> Response:
    """Remove the saved policy: the server's defaults are in force again (audited)."""
    await policies.reset_policy(ctx, principal)
    return RedirectResponse("/operator/policy?done=reset", status_code=303)
