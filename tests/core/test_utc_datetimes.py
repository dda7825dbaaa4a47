"""Timestamps come back as aware UTC datetimes on every backend, through the ORM and Core
alike, whatever zone they were written in; naive datetimes are refused."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import insert, select
from sqlalchemy.exc import StatementError

from vexam.core.audit import AuditEntry

BEIJING = timezone(timedelta(hours=8))


def _entry(at: datetime, subject_id: str) -> dict[str, object]:
    return {
        "at": at,
        "action": "test.utc",
        "subject_type": "test",
        "subject_id": subject_id,
        "detail": {},
    }


async def test_a_timestamp_written_in_any_zone_reads_back_in_utc(app) -> None:
    written = datetime(2026, 6, 7, 9, 30, 15, 250000, tzinfo=BEIJING)
    async with app.state.db.unit_of_work() as session:
        await session.execute(insert(AuditEntry).values(**_entry(written, "zone")))
    async with app.state.db.unit_of_work() as session:
        orm = (
            await session.execute(select(AuditEntry).where(AuditEntry.subject_id == "zone"))
        ).scalar_one()
        core = (
            await session.execute(select(AuditEntry.at).where(AuditEntry.subject_id == "zone"))
        ).scalar_one()
    for value in (orm.at, core):
        assert value == written
        assert value.tzinfo is UTC
        assert (value.hour, value.minute, value.microsecond) == (1, 30, 250000)


async def test_a_naive_timestamp_is_refused(app) -> None:
    with pytest.raises(StatementError, match="naive datetimes are refused"):
        async with app.state.db.unit_of_work() as session:
            naive = datetime(2026, 6, 7, 9, 30)  # naive: the point of the test
            await session.execute(insert(AuditEntry).values(**_entry(naive, "naive")))
