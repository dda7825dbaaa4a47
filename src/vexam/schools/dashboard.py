"""The school console's exam dashboard (SPEC §4–§6): the exam's counts and charts from the
exams domain (`vexam.exams.dashboard`), the candidates who still need something named from
the school's roster (name, masked ID number, candidate number), and the charts' geometry
for the server-drawn SVG (no script, no chart library).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from math import ceil
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from sqlalchemy import select

from vexam.core.context import Ctx
from vexam.core.i18n import N_
from vexam.exams import dashboard as counts
from vexam.exams.labels import UPLOAD_LABELS as UPLOAD_LABELS
from vexam.schools.models import RosterRow

if TYPE_CHECKING:
    from vexam.exams.models import Exam

NEED_LABELS = {
    "unpaid": N_("Enrolled, not paid"),
    "no_mock": N_("No mock exam yet"),
    "not_submitted": N_("Not yet submitted"),
    "not_verified": N_("Submitted, upload not verified"),
    "refused": N_("Upload refused"),
}


@dataclass(frozen=True)
class Person:
    """A roster row as the dashboard shows it (the ID number masked)."""

    id: int
    name: str
    id_number_masked: str
    candidate_number: str | None


@dataclass(frozen=True)
class Listed:
    """One line of a needs list."""

    person: Person | None
    subject_id: int | None
    upload_state: str | None


async def roster_people(ctx: Ctx, exam_id: int, row_ids: Collection[int]) -> dict[int, Person]:
    """The exam's roster rows by id, in one query."""
    if not row_ids:
        return {}
    rows = await ctx.session.execute(
        select(
            RosterRow.id, RosterRow.name, RosterRow.id_number_masked, RosterRow.candidate_number
        ).where(RosterRow.exam_id == exam_id, RosterRow.id.in_(list(row_ids)))
    )
    return {row.id: Person(*row) for row in rows}


async def needs_page(
    ctx: Ctx, exam: Exam, need: str, subject_id: int | None, page: int, size: int
) -> tuple[list[Listed], int]:
    """One page of the candidates who still need `need`, named from the roster, and how
    many lines the whole list has."""
    found = await counts.needs(ctx, exam, need, subject_id)
    shown = found[(page - 1) * size : page * size]
    people = await roster_people(ctx, exam.id, {item.roster_row_id for item in shown})
    listed = [
        Listed(people.get(item.roster_row_id), item.subject_id, item.upload_state) for item in shown
    ]
    return listed, len(found)


# ------------------------------------------------------------------ charts

WIDTH, HEIGHT = 720, 240
LEFT, RIGHT, TOP, BOTTOM = 44, 24, 16, 40


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    value: int
    label: str  # the bucket's start in the school's time, for the bar's title


@dataclass(frozen=True)
class Tick:
    x: float
    text: str


@dataclass(frozen=True)
class Chart:
    """A bar chart in a WIDTH × HEIGHT view box: bars, the x axis labels, the top value."""

    bars: list[Bar]
    ticks: list[Tick]
    top: int
    total: int
    width: int = WIDTH
    height: int = HEIGHT
    left: int = LEFT
    base: int = HEIGHT - BOTTOM
    end: int = WIDTH - RIGHT
    roof: int = TOP
    now_x: float | None = None  # where "now" falls, while it is inside the chart's span


def _label(start: datetime, step: timedelta, zone: ZoneInfo) -> str:
    local = start.astimezone(zone)
    return f"{local:%m-%d}" if step >= timedelta(days=1) else f"{local:%m-%d %H:00}"


def _ticks(starts: Sequence[datetime], step: timedelta, zone: ZoneInfo) -> list[tuple[int, str]]:
    """At most about eight axis labels on round local times: midnights show the date,
    other hours the time (every 1, 2, 3, 6 or 12 hours); days every n-th day."""
    local = [start.astimezone(zone) for start in starts]
    if step >= timedelta(days=1):
        every = max(1, ceil(len(local) / 8))
        return [(i, f"{m:%m-%d}") for i, m in enumerate(local) if i % every == 0]
    hours = next((h for h in (1, 2, 3, 6, 12) if len(local) / h <= 8), 24)
    return [
        (i, f"{m:%m-%d}" if m.hour == 0 else f"{m:%H}:00")
        for i, m in enumerate(local)
        if m.hour % hours == 0
    ]


def chart(
    starts: Sequence[datetime],
    step: timedelta,
    values: Sequence[int],
    timezone: str,
    now: datetime | None = None,
) -> Chart:
    """Bars for `values` over the buckets, scaled to a round top value; the axis labels."""
    zone = ZoneInfo(timezone)
    top = max([*values, 1])
    # A round top of the scale (1, 2, 5 × 10^n) so the axis reads easily.
    scale, factors = 1, (2.0, 2.5, 2.0)
    while scale < top:
        scale = round(scale * factors[0])
        factors = (*factors[1:], factors[0])
    inner = WIDTH - LEFT - RIGHT
    span = HEIGHT - TOP - BOTTOM
    slot = inner / max(len(starts), 1)
    gap = min(2.0, slot * 0.2)
    bars = [
        Bar(
            x=round(LEFT + i * slot + gap / 2, 2),
            y=round(TOP + span - span * value / scale, 2),
            width=round(slot - gap, 2),
            height=round(span * value / scale, 2),
            value=value,
            label=_label(start, step, zone),
        )
        for i, (start, value) in enumerate(zip(starts, values, strict=True))
    ]
    ticks = [
        Tick(round(LEFT + i * slot + slot / 2, 2), text) for i, text in _ticks(starts, step, zone)
    ]
    now_x = None
    if now is not None and starts and starts[0] <= now < starts[-1] + step:
        now_x = round(LEFT + slot * (now - starts[0]) / step, 2)
    return Chart(bars=bars, ticks=ticks, top=scale, total=sum(values), now_x=now_x)
