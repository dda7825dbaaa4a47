"""The stored platform policy (SPEC §2, §3, §7): an operator saves it from the console; every
process reads it through its `vexam.core.policy.PolicyCache` (see there for freshness).

`save_policy` checks each value and answers `policy_setting_invalid` naming the setting and
the rule, writes the one row, audits the change (`policy.updated`, before and after) and,
once the transaction commits, puts the new policy in this process's cache. `reset_policy`
deletes the row (`policy.reset`): the settings' defaults are in force again.
"""

from __future__ import annotations

import re
from dataclasses import asdict
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from vexam.accounts.models import PlatformPolicyRow
from vexam.core import audit
from vexam.core.context import Ctx, Principal, Role
from vexam.core.db import after_commit
from vexam.core.errors import VexamError
from vexam.core.i18n import N_
from vexam.core.middleware import parse_version
from vexam.core.policy import PlatformPolicy, current_policy, policy_cache
from vexam.exams.schemas import DEVICE_CLASSES, OS_NAMES

ROW_ID = 1
MAX_SLA_MINUTES = 24 * 60
_CLOCK = re.compile(r"([01]\d|2[0-3]):[0-5]\d|24:00")
_OS_VERSION = re.compile(r"\d{1,3}(\.\d{1,3}){0,2}")
# The rules a refusal names (msgids: the console shows them translated).
REASONS = (
    N_("a version such as 2.3.1"),
    N_("phone, tablet or desktop"),
    N_("a version such as 7 or 10.3"),
    N_("a time such as 08:00 or 24:00"),
    N_("later than the opening time"),
    N_("between 1 and 1440"),
)


def setting_invalid(field: str, reason: str) -> VexamError:
    """`policy_setting_invalid` naming the setting and the rule it broke."""
    return VexamError("policy_setting_invalid", field=field, reason=reason)


def _of_row(row: PlatformPolicyRow) -> PlatformPolicy:
    return PlatformPolicy(
        min_client_version=row.min_client_version,
        device_classes=tuple(row.device_classes),
        min_os=dict(row.min_os),
        support_hours_start=row.support_hours_start,
        support_hours_end=row.support_hours_end,
        support_sla_minutes=row.support_sla_minutes,
        stored=True,
    )


async def stored(session: AsyncSession) -> PlatformPolicy | None:
    """The policy an operator saved, or None (the settings' defaults apply)."""
    row = await session.get(PlatformPolicyRow, ROW_ID)
    return _of_row(row) if row is not None else None


def check_policy(policy: PlatformPolicy) -> None:
    """Refuse values the platform could not run with; each rule has its own answer."""
    if parse_version(policy.min_client_version) is None:
        raise setting_invalid("min_client_version", "a version such as 2.3.1")
    classes = policy.device_classes
    if not classes or any(kind not in DEVICE_CLASSES for kind in classes):
        raise setting_invalid("device_classes", "phone, tablet or desktop")
    for name, version in policy.min_os.items():
        if name not in OS_NAMES or not _OS_VERSION.fullmatch(version):
            raise setting_invalid(f"min_os.{name}", "a version such as 7 or 10.3")
    for field in ("support_hours_start", "support_hours_end"):
        if not _CLOCK.fullmatch(getattr(policy, field)):
            raise setting_invalid(field, "a time such as 08:00 or 24:00")
    # Two-digit "HH:MM" strings compare as times.
    if policy.support_hours_end <= policy.support_hours_start:
        raise setting_invalid("support_hours_end", "later than the opening time")
    if not 1 <= policy.support_sla_minutes <= MAX_SLA_MINUTES:
        raise setting_invalid("support_sla_minutes", f"between 1 and {MAX_SLA_MINUTES}")


def _audited(policy: PlatformPolicy) -> dict[str, Any]:
    values = asdict(policy)
    values.pop("stored")
    values["device_classes"] = list(policy.device_classes)
    values["min_os"] = dict(policy.min_os)
    return values


async def save_policy(ctx: Ctx, principal: Principal, policy: PlatformPolicy) -> PlatformPolicy:
    """Store the platform policy (operators only), audited; this process uses it after the
    commit, the others within their cache's TTL."""
    if principal.role is not Role.operator:
        raise VexamError("forbidden")
    check_policy(policy)
    before = await stored(ctx.session) or current_policy(ctx.settings, ctx.extra)
    row = await ctx.session.get(PlatformPolicyRow, ROW_ID)
    if row is None:
        row = PlatformPolicyRow(id=ROW_ID)
        ctx.session.add(row)
    row.min_client_version = policy.min_client_version
    row.device_classes = list(policy.device_classes)
    row.min_os = {name: policy.min_os[name] for name in OS_NAMES if name in policy.min_os}
    row.support_hours_start = policy.support_hours_start
    row.support_hours_end = policy.support_hours_end
    row.support_sla_minutes = policy.support_sla_minutes
    row.updated_by = principal.user_id
    row.updated_at = ctx.now()
    await ctx.session.flush()
    saved = _of_row(row)
    await audit.record(
        ctx,
        "policy.updated",
        "platform_policy",
        ROW_ID,
        before=_audited(before),
        after=_audited(saved),
    )
    _use_after_commit(ctx, saved)
    return saved


async def reset_policy(ctx: Ctx, principal: Principal) -> PlatformPolicy:
    """Forget the stored policy (operators only), audited: the settings' defaults are in force
    again, in this process after the commit, in the others within their cache's TTL."""
    if principal.role is not Role.operator:
        raise VexamError("forbidden")
    row = await ctx.session.get(PlatformPolicyRow, ROW_ID)
    defaults = PlatformPolicy.defaults(ctx.settings)
    if row is not None:
        before = _of_row(row)
        await ctx.session.delete(row)
        await ctx.session.flush()
        await audit.record(
            ctx,
            "policy.reset",
            "platform_policy",
            ROW_ID,
            before=_audited(before),
            after=_audited(defaults),
        )
    _use_after_commit(ctx, None)
    return defaults


def _use_after_commit(ctx: Ctx, policy: PlatformPolicy | None) -> None:
    """Put `policy` (None: the defaults) in this process's cache once the change commits."""
    cache = policy_cache(ctx.extra)
    if cache is None:
        return

    async def _use_now() -> None:
        cache.put(policy)

    after_commit(ctx.session, _use_now)
