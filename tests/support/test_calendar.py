"""SPEC §3/§7 service level: due 2 hours of service time after a request (08:00-24:00)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from vexam.support.calendar import ServiceHours

SHANGHAI = ZoneInfo("Asia/Shanghai")
HOURS = ServiceHours.parse("Asia/Shanghai", "08:00", "24:00")
SLA = timedelta(hours=2)


def local(day: int, hour: int, minute: int = 0) -> datetime:
    """An instant in Shanghai on 2026-06-<day>."""
    return datetime(2026, 6, day, hour, minute, tzinfo=SHANGHAI)


@pytest.mark.parametrize(
    ("made", "due"),
    [
        (local(1, 10, 0), local(1, 12, 0)),  # in hours: two hours later
        (local(1, 8, 0), local(1, 10, 0)),  # at opening
        (local(1, 22, 0), local(2, 0, 0)),  # ends exactly at closing (midnight)
        (local(1, 23, 30), local(2, 9, 30)),  # 30 min tonight, 90 min tomorrow
        (local(2, 0, 0), local(2, 10, 0)),  # midnight: closed, due 2 h after 08:00
        (local(2, 3, 0), local(2, 10, 0)),  # night: 2 h after the next opening
        (local(2, 7, 59), local(2, 10, 0)),
    ],
)
def test_due_time_in_service_hours(made: datetime, due: datetime) -> None:
    """§3: in hours due within 2 h; outside, due 2 h after the next opening."""
    assert HOURS.due_at(made.astimezone(UTC), SLA) == due


def test_open_and_next_opening() -> None:
    """Support is open 08:00-24:00 every day, holidays included."""
    assert HOURS.is_open(local(1, 8, 0))
    assert HOURS.is_open(local(1, 23, 59))
    assert not HOURS.is_open(local(2, 0, 0))
    assert not HOURS.is_open(local(2, 7, 59))
    assert HOURS.next_opening(local(2, 3, 0)) == local(2, 8, 0)
    # Chinese New Year's Day is a working day like any other.
    new_year = datetime(2027, 2, 6, 9, 0, tzinfo=SHANGHAI)
    assert HOURS.due_at(new_year, SLA) == new_year + SLA


def test_other_hours_and_zones() -> None:
    """Configurable hours and the school's zone (a day of 09:00-17:00 in Urumqi time)."""
    hours = ServiceHours.parse("Asia/Urumqi", "09:00", "17:00")
    made = datetime(2026, 6, 1, 16, 30, tzinfo=ZoneInfo("Asia/Urumqi"))
    assert hours.due_at(made, SLA) == datetime(2026, 6, 2, 10, 30, tzinfo=ZoneInfo("Asia/Urumqi"))
    with pytest.raises(ValueError):
        ServiceHours.parse("Asia/Shanghai", "18:00", "08:00")
