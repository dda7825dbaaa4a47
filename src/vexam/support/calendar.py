"""Service hours: when support works, and when a request made at some instant is due.

Support works every day, holidays included, from `start` to `end` in one time zone (SPEC
§7: 08:00-24:00 in the school's zone). A request is due once `sla` of *service* time has
passed after it was made: one made at 23:30 with a 2-hour SLA is due at 09:30 the next day,
and one made at 03:00 at 10:00.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo


def parse_clock(value: str) -> timedelta:
    """'08:00' → 8 h after midnight; '24:00' → the end of the day."""
    hours, _, minutes = value.partition(":")
    return timedelta(hours=int(hours), minutes=int(minutes))


@dataclass(frozen=True)
class ServiceHours:
    """Daily opening hours in one time zone (`end` may be 24:00, i.e. midnight)."""

    timezone: str
    start: timedelta
    end: timedelta

    @classmethod
    def parse(cls, timezone: str, start: str, end: str) -> ServiceHours:
        """Build from 'HH:MM' strings; `end` must come after `start`."""
        hours = cls(timezone, parse_clock(start), parse_clock(end))
        if not timedelta(0) <= hours.start < hours.end <= timedelta(days=1):
            raise ValueError("service hours must open before they close, within one day")
        return hours

    def _window(self, day: date) -> tuple[datetime, datetime]:
        # Local midnight plus an offset, resolved through the zone: correct across DST days.
        zone = ZoneInfo(self.timezone)
        midnight = datetime.combine(day, time(0), tzinfo=zone).astimezone(UTC)
        return midnight + self.start, midnight + self.end

    def is_open(self, at: datetime) -> bool:
        """Whether support is working at instant `at`."""
        opens, closes = self._window(at.astimezone(ZoneInfo(self.timezone)).date())
        return opens <= at < closes

    def next_opening(self, at: datetime) -> datetime:
        """`at` itself when open, else the next instant support opens."""
        day = at.astimezone(ZoneInfo(self.timezone)).date()
        for offset in range(3):
            opens, closes = self._window(day + timedelta(days=offset))
            if at < closes:
                return max(at, opens)
        raise AssertionError("a daily window always opens within two days")

    def due_at(self, submitted: datetime, sla: timedelta) -> datetime:
        """The instant at which `sla` of service time has elapsed since `submitted`."""
        remaining = sla
        cursor = self.next_opening(submitted)
        while True:
            _, closes = self._window(cursor.astimezone(ZoneInfo(self.timezone)).date())
            if cursor + remaining <= closes:
                return cursor + remaining
            remaining -= closes - cursor
            cursor = self.next_opening(closes)
