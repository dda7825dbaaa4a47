"""What a school's exam dashboard counts (SPEC §4–§6): enrolment, payment, mock exams and,
per subject, formal submissions and their uploads; the submissions and upload completions
over time; and which candidates still need something.

Every count is one grouped query over the exam, whatever its size (no query per candidate
or subject). Candidates are named here by their roster row id only: the schools domain
shows the roster's name, masked ID number and candidate number. The caller has already
checked that the principal manages the exam (`service.get_exam`).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import and_, case, exists, func, select

from vexam.core.context import Ctx
from vexam.exams.models import (
    Application,
    Exam,
    PaymentOrder,
    Sitting,
    Subject,
    Submission,
    Upload,
)

# Upload states of a submission (`Submission.upload_state` follows its latest upload).
UPLOADED = ("received", "verified", "invalid")  # the whole file arrived with its hash
REFUSED = ("invalid", "hash_mismatch")  # not a decodable video, or not the declared bytes
# What the lists filter on: the candidates who still need something.
NEEDS = ("unpaid", "no_mock", "not_submitted", "not_verified", "refused")
# Hours as chart buckets up to this long a span (start of the window to the end of the
# upload grace period); days beyond it.
HOURLY_UP_TO = timedelta(hours=96)


@dataclass
class SubjectCounts:
    """One subject's formal submissions and what became of their uploads."""

    id: int
    name: str
    name_en: str | None
    submitted: int = 0
    uploaded: int = 0
    verified: int = 0
    flagged: int = 0
    refused: int = 0


@dataclass
class Overview:
    """The exam's counts: candidates enrolled, paid (when the exam has a fee), who took a
    mock exam, and per subject (in the exam's order)."""

    enrolled: int
    paid: int
    fee_required: bool
    mock_taken: int
    subjects: list[SubjectCounts]


@dataclass
class Series:
    """Counts per bucket: `starts[i]` opens bucket i (UTC), `step` is an hour or a day."""

    starts: list[datetime]
    step: timedelta
    submissions: list[int] = field(default_factory=list)
    uploads: list[int] = field(default_factory=list)


@dataclass(frozen=True)
class Need:
    """A candidate (roster row) who still needs something; for the per-subject needs the
    subject and the upload state."""

    roster_row_id: int
    subject_id: int | None = None
    upload_state: str | None = None


def _enrolled(exam_id: int) -> Any:
    return and_(Application.exam_id == exam_id, Application.status == "enrolled")


def _paid_exists(exam_id: int) -> Any:
    return exists().where(
        PaymentOrder.exam_id == exam_id,
        PaymentOrder.user_id == Application.user_id,
        PaymentOrder.status == "paid",
    )


def _mock_exists(exam_id: int) -> Any:
    return exists().where(
        Sitting.exam_id == exam_id,
        Sitting.user_id == Application.user_id,
        Sitting.mode == "mock",
    )


async def overview(ctx: Ctx, exam: Exam) -> Overview:
    """The exam's counts in five grouped queries."""
    row = (
        await ctx.session.execute(
            select(
                func.count(),
                func.coalesce(func.sum(case((_paid_exists(exam.id), 1), else_=0)), 0),
                func.coalesce(func.sum(case((_mock_exists(exam.id), 1), else_=0)), 0),
            )
            .select_from(Application)
            .where(_enrolled(exam.id))
        )
    ).one()
    subjects = list(
        (
            await ctx.session.scalars(
                select(Subject).where(Subject.exam_id == exam.id).order_by(Subject.position)
            )
        ).all()
    )
    counts = {s.id: SubjectCounts(s.id, s.name, s.name_en) for s in subjects}
    grouped = await ctx.session.execute(
        select(
            Submission.subject_id,
            func.count(),
            func.sum(case((Submission.upload_state.in_(UPLOADED), 1), else_=0)),
            func.sum(case((Submission.upload_state == "verified", 1), else_=0)),
            func.sum(case((Submission.upload_state.in_(REFUSED), 1), else_=0)),
        )
        .join(Sitting, Sitting.id == Submission.sitting_id)
        .where(Sitting.exam_id == exam.id, Sitting.mode == "formal")
        .group_by(Submission.subject_id)
    )
    for subject_id, submitted, uploaded, verified, refused in grouped:
        if subject_id in counts:
            item = counts[subject_id]
            item.submitted, item.uploaded = int(submitted), int(uploaded or 0)
            item.verified, item.refused = int(verified or 0), int(refused or 0)
    # Flags live in the verified upload's media JSON: only the two flag lists are read
    # (JSON paths work alike on PostgreSQL and SQLite), never the whole media document.
    flagged = await ctx.session.execute(
        select(
            Submission.subject_id,
            Submission.id,
            Upload.media["flags"],
            Upload.media[("audit", "flags")],
        )
        .join(Upload, Upload.submission_id == Submission.id)
        .join(Sitting, Sitting.id == Submission.sitting_id)
        .where(Sitting.exam_id == exam.id, Sitting.mode == "formal", Upload.state == "verified")
    )
    seen: set[int] = set()
    for subject_id, submission_id, flags, audit_flags in flagged:
        if subject_id in counts and submission_id not in seen and (flags or audit_flags):
            seen.add(submission_id)
            counts[subject_id].flagged += 1
    return Overview(
        enrolled=int(row[0]),
        paid=int(row[1]),
        fee_required=exam.fee_cents > 0,
        mock_taken=int(row[2]),
        subjects=[counts[s.id] for s in subjects],
    )


def _step(exam: Exam) -> timedelta:
    span = exam.formal_ends_at + timedelta(minutes=exam.upload_grace_minutes)
    return timedelta(hours=1) if span - exam.formal_starts_at <= HOURLY_UP_TO else timedelta(days=1)


def _floor(moment: datetime, step: timedelta, zone: ZoneInfo) -> datetime:
    """The start of the hour or (school's local) day holding `moment`, in UTC."""
    local = moment.astimezone(zone)
    if step >= timedelta(days=1):
        local = local.replace(hour=0, minute=0, second=0, microsecond=0)
    else:
        local = local.replace(minute=0, second=0, microsecond=0)
    return local.astimezone(UTC)


def buckets(exam: Exam, timezone: str) -> tuple[list[datetime], timedelta]:
    """The chart's buckets: from the window's opening to the end of the upload grace
    period, by hour (short windows) or by the school's local day."""
    zone = ZoneInfo(timezone)
    step = _step(exam)
    end = exam.formal_ends_at + timedelta(minutes=exam.upload_grace_minutes)
    starts: list[datetime] = []
    moment = _floor(exam.formal_starts_at, step, zone)
    while moment < end and len(starts) < 400:
        starts.append(moment)
        # Steps are added to the local wall time: a day is a calendar day of the school.
        moment = _floor(moment.astimezone(zone) + step, step, zone)
    return starts, step


def _count_into(starts: Sequence[datetime], moments: Iterable[datetime | None]) -> list[int]:
    counted: Counter[int] = Counter()
    for moment in moments:
        if moment is None or not starts or moment < starts[0]:
            continue
        # The last bucket whose start is not after the moment (buckets are sorted).
        low, high = 0, len(starts)
        while high - low > 1:
            middle = (low + high) // 2
            low, high = (middle, high) if starts[middle] <= moment else (low, middle)
        counted[low] += 1
    return [counted[i] for i in range(len(starts))]


async def series(ctx: Ctx, exam: Exam, timezone: str) -> Series:
    """Formal submissions and upload completions (the whole file arrived) per bucket.

    Only the moments are fetched (one column each) and bucketed here: grouping by an hour or
    a local day in SQL differs between PostgreSQL and SQLite. Moments outside the buckets
    (e.g. an upload after the grace period of an accommodation) count in the last bucket
    or not at all before the first."""
    starts, step = buckets(exam, timezone)
    submitted = await ctx.session.scalars(
        select(Submission.submitted_at)
        .join(Sitting, Sitting.id == Submission.sitting_id)
        .where(Sitting.exam_id == exam.id, Sitting.mode == "formal")
    )
    completed = await ctx.session.scalars(
        select(Upload.completed_at)
        .join(Submission, Submission.id == Upload.submission_id)
        .join(Sitting, Sitting.id == Submission.sitting_id)
        .where(
            Sitting.exam_id == exam.id,
            Sitting.mode == "formal",
            Upload.state.in_(UPLOADED),
            Upload.completed_at.is_not(None),
        )
    )
    return Series(
        starts=starts,
        step=step,
        submissions=_count_into(starts, submitted.all()),
        uploads=_count_into(starts, completed.all()),
    )


async def needs(ctx: Ctx, exam: Exam, need: str, subject_id: int | None = None) -> list[Need]:
    """The enrolled candidates who still need `need` (one of `NEEDS`), in roster order:

    - unpaid: enrolled, the exam has a fee, no paid order;
    - no_mock: enrolled, never started a mock exam;
    - not_submitted: enrolled, no formal submission of a subject (of `subject_id` if given);
    - not_verified: a formal submission whose upload is not verified (yet);
    - refused: a formal submission whose upload was refused (not a video, wrong bytes).
    """
    if need == "unpaid":
        if exam.fee_cents <= 0:
            return []
        rows = await ctx.session.scalars(
            select(Application.roster_row_id)
            .where(_enrolled(exam.id), ~_paid_exists(exam.id))
            .order_by(Application.roster_row_id)
        )
        return [Need(row_id) for row_id in rows]
    if need == "no_mock":
        rows = await ctx.session.scalars(
            select(Application.roster_row_id)
            .where(_enrolled(exam.id), ~_mock_exists(exam.id))
            .order_by(Application.roster_row_id)
        )
        return [Need(row_id) for row_id in rows]
    if need == "not_submitted":
        submitted = exists().where(
            Sitting.exam_id == exam.id,
            Sitting.user_id == Application.user_id,
            Sitting.mode == "formal",
            Submission.sitting_id == Sitting.id,
            Submission.subject_id == Subject.id,
        )
        query = (
            select(Application.roster_row_id, Subject.id)
            .join(Subject, Subject.exam_id == Application.exam_id)
            .where(_enrolled(exam.id), ~submitted)
            .order_by(Application.roster_row_id, Subject.position)
        )
        if subject_id is not None:
            query = query.where(Subject.id == subject_id)
        return [Need(row_id, subject) for row_id, subject in await ctx.session.execute(query)]
    if need in ("not_verified", "refused"):
        states = Submission.upload_state.in_(REFUSED)
        uploads = (
            select(Application.roster_row_id, Submission.subject_id, Submission.upload_state)
            .select_from(Submission)
            .join(Sitting, Sitting.id == Submission.sitting_id)
            .join(
                Application,
                and_(Application.exam_id == exam.id, Application.user_id == Sitting.user_id),
            )
            .where(
                Sitting.exam_id == exam.id,
                Sitting.mode == "formal",
                states if need == "refused" else Submission.upload_state != "verified",
            )
            .order_by(Application.roster_row_id, Submission.subject_id)
        )
        if subject_id is not None:
            uploads = uploads.where(Submission.subject_id == subject_id)
        return [Need(r, s, state) for r, s, state in await ctx.session.execute(uploads)]
    raise ValueError(need)
