"""The SQL statements of taking an exam's hot paths (`attempts`, `sittings`), built once:
constructing and keying an UPDATE costs more CPU than running it from SQLAlchemy's compiled
cache (see `upload_statements`).

Statements, not functions: the services run them with their parameters and own the rules.
"""

from __future__ import annotations

import functools
from typing import Any, cast

from sqlalchemy import Table, bindparam, select
from sqlalchemy.dialects import postgresql, sqlite

from vexam.exams.models import Recording, Sitting, SubjectProgress

RECORDINGS = cast(Table, Recording.__table__)
PROGRESS = cast(Table, SubjectProgress.__table__)


def _use_attempt(insert: Any) -> Any:
    """One attempt used: the subject's first inserts its progress row, a later one raises the
    count only while it is below `allowed` (no row comes back when it is not)."""
    return (
        insert(PROGRESS)
        .values(sitting_id=bindparam("sitting"), subject_id=bindparam("subject"), used=1)
        .on_conflict_do_update(
            index_elements=[PROGRESS.c.sitting_id, PROGRESS.c.subject_id],
            set_={"used": PROGRESS.c.used + 1},
            where=PROGRESS.c.used < bindparam("allowed"),
        )
        .returning(PROGRESS.c.used)
    )


# By dialect name: the two spell ON CONFLICT alike, but each compiles only its own.
USE_ATTEMPT = {"postgresql": _use_attempt(postgresql.insert), "sqlite": _use_attempt(sqlite.insert)}


def _face_check(passed: bool) -> Any:
    """A running recording's face checks failed in a row: reset by a pass, else one more."""
    failures = RECORDINGS.c.face_failures_in_row
    return (
        RECORDINGS.update()
        .where(RECORDINGS.c.id == bindparam("recording_id"), RECORDINGS.c.state == "recording")
        .values(face_failures_in_row=0 if passed else failures + 1, updated_at=bindparam("now"))
        .returning(failures)
    )


FACE_CHECK_PASSED = _face_check(True)
FACE_CHECK_FAILED = _face_check(False)

# A running recording stopped in time (`duration` as the candidate's app measured it, or the
# server's own measure).
COMPLETE = (
    RECORDINGS.update()
    .where(RECORDINGS.c.id == bindparam("recording_id"), RECORDINGS.c.state == "recording")
    .values(
        state="completed",
        finished_at=bindparam("now"),
        duration_seconds=bindparam("duration"),
        updated_at=bindparam("now"),
    )
)


@functools.cache
def void_running(
    *, by_user: bool, by_device: bool, by_sitting: bool, by_recording: bool, overdue_only: bool
) -> Any:
    """Void the running recordings the filters choose (parameters `of_user`, `on_device`,
    `in_sitting`, `recording`; `reason`; `now` for the time, and with `overdue_only` those
    past their `ends_by`), returning their ids. One statement per combination, built once.
    (An UPDATE's parameters may not be named as its table's columns.)"""
    statement = RECORDINGS.update().where(RECORDINGS.c.state == "recording")
    if by_user:
        mine = select(Sitting.id).where(Sitting.user_id == bindparam("of_user"))
        statement = statement.where(RECORDINGS.c.sitting_id.in_(mine))
    if by_device:
        statement = statement.where(RECORDINGS.c.device_id == bindparam("on_device"))
    if by_sitting:
        statement = statement.where(RECORDINGS.c.sitting_id == bindparam("in_sitting"))
    if by_recording:
        statement = statement.where(RECORDINGS.c.id == bindparam("recording"))
    if overdue_only:
        statement = statement.where(RECORDINGS.c.ends_by < bindparam("now"))
    return statement.values(
        state="voided",
        void_reason=bindparam("reason"),
        finished_at=bindparam("now"),
        updated_at=bindparam("now"),
    ).returning(RECORDINGS.c.id)


def _running(*, one: bool) -> Any:
    """The ids of a sitting's running recordings (with `one`: if `recording_id` is one)."""
    statement = select(RECORDINGS.c.id).where(
        RECORDINGS.c.sitting_id == bindparam("sitting_id"), RECORDINGS.c.state == "recording"
    )
    return statement.where(RECORDINGS.c.id == bindparam("recording_id")) if one else statement


RUNNING = _running(one=False)
RUNNING_ONE = _running(one=True)
