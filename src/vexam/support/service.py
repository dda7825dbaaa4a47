"""Support rules other domains call: the service-hours clock for what support must decide."""

from __future__ import annotations

from datetime import datetime, timedelta

from vexam.config import Settings
from vexam.core.context import Ctx
from vexam.support.calendar import ServiceHours


def service_hours(settings: Settings, timezone: str | None = None) -> ServiceHours:
    """Support's configured working hours, in `timezone` (default: the platform's zone)."""
    return ServiceHours.parse(
        timezone or settings.default_timezone,
        settings.support_hours_start,
        settings.support_hours_end,
    )


def due_at(ctx: Ctx, submitted: datetime, timezone: str | None = None) -> datetime:
    """When support must have decided a request made at `submitted` (SLA in service time)."""
    hours = service_hours(ctx.settings, timezone)
    return hours.due_at(submitted, timedelta(minutes=ctx.settings.support_sla_minutes))
