"""Review rules on the database (SPEC §6, §8): settings, assignments, the blind queue,
scoring with aggregation and escalation, and the publish lock. Every change is audited.

Blindness: reviewers reach a submission only by its item's opaque code; nothing this module
returns to a reviewer names the candidate, their account, sitting or submission ids.

Concurrency is decided by the database: a score is written while its item row is locked
(`SELECT ... FOR UPDATE`; SQLite serialises writers with BEGIN IMMEDIATE) and the item's
count, aggregate and escalation are recomputed from every stored score under that lock; the
unique (item, reviewer) pair keeps one score per reviewer. Scoring holds a share lock on the
exam's settings row, which publishing updates, so a score either lands before the results
are published or is refused with `scores_locked`.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from vexam.accounts import staff as staff_service
from vexam.core import audit
from vexam.core.context import Ctx, Principal, Role
from vexam.core.errors import VexamError
from vexam.exams import media_jobs
from vexam.exams import playback as exam_playback
from vexam.exams import service as exams
from vexam.exams.models import Exam, ExamEvent, Recording, Sitting, Subject, Submission, Upload
from vexam.review import errors as _errors  # noqa: F401 - registers the review codes
from vexam.review import rules, schemas
from vexam.review.models import ReviewAssignment, ReviewItem, ReviewScore, ReviewSettings

CODE_ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"  # no 0/O, 1/I/L: read aloud safely
CODE_LENGTH = 8
DEFAULTS = schemas.SettingsIn()


def new_code() -> str:
    """A fresh opaque item code, e.g. R-7KQ2MX9A (no meaning, not derived from any id)."""
    return "R-" + "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))


def _insert(ctx: Ctx, table: Any) -> Any:
    """An INSERT that skips rows a concurrent writer already inserted (ON CONFLICT DO NOTHING)."""
    dialect = ctx.session.get_bind().dialect.name
    return (pg_insert if dialect == "postgresql" else sqlite_insert)(table)


# ------------------------------------------------------------------ settings


def setting_invalid(field: str, reason: str) -> VexamError:
    """`review_setting_invalid` naming the setting and the rule it broke."""
    return VexamError("review_setting_invalid", field=field, reason=reason)


def check_settings(body: schemas.SettingsIn) -> None:
    """Refuse settings review could not run with, one code per broken rule."""
    if not 1 <= body.reviewers_per_submission <= rules.MAX_REVIEWERS:
        raise setting_invalid("reviewers_per_submission", f"between 1 and {rules.MAX_REVIEWERS}")
    if not body.reviewers_per_submission <= body.max_reviewers <= rules.MAX_REVIEWERS:
        raise setting_invalid(
            "max_reviewers", f"at least the reviewers per submission, at most {rules.MAX_REVIEWERS}"
        )
    if not 0 <= body.escalation_threshold <= rules.MAX_POINTS * rules.MAX_CRITERIA:
        raise setting_invalid("escalation_threshold", "0 or more points")


async def settings_row(ctx: Ctx, exam: Exam, *, lock: str | None = None) -> ReviewSettings:
    """The exam's review settings row, created with the defaults on first use (concurrent
    first uses insert it once).

    `lock`: "share" (scoring: publishing waits) or "update" (publishing, changing settings).
    """
    query = select(ReviewSettings).where(ReviewSettings.exam_id == exam.id)
    if lock == "share":
        query = query.with_for_update(read=True)
    elif lock == "update":
        query = query.with_for_update()
    query = query.execution_options(populate_existing=True)
    row = (await ctx.session.execute(query)).scalar_one_or_none()
    if row is not None:
        return row
    await ctx.session.execute(
        _insert(ctx, ReviewSettings)
        .values(
            exam_id=exam.id,
            school_id=exam.school_id,
            aggregate=DEFAULTS.aggregate,
            reviewers_per_submission=DEFAULTS.reviewers_per_submission,
            escalation_threshold=DEFAULTS.escalation_threshold,
            max_reviewers=DEFAULTS.max_reviewers,
            updated_at=ctx.now(),
        )
        .on_conflict_do_nothing()
    )
    return (await ctx.session.execute(query)).scalar_one()


def settings_out(row: ReviewSettings) -> schemas.SettingsOut:
    """The settings as the API shows them."""
    return schemas.SettingsOut(
        exam_id=row.exam_id,
        aggregate=row.aggregate,
        reviewers_per_submission=row.reviewers_per_submission,
        escalation_threshold=row.escalation_threshold,
        max_reviewers=row.max_reviewers,
        published_at=row.published_at,
    )


async def managed_exam(ctx: Ctx, principal: Principal, exam_id: int) -> Exam:
    """An exam the caller manages (its school's admin, or an operator); `exam_not_found`."""
    return await exams.get_exam(ctx, principal, exam_id)


async def get_settings(ctx: Ctx, principal: Principal, exam_id: int) -> schemas.SettingsOut:
    """The exam's review settings (defaults until the school changes them)."""
    exam = await managed_exam(ctx, principal, exam_id)
    return settings_out(await settings_row(ctx, exam))


async def update_settings(
    ctx: Ctx, principal: Principal, exam_id: int, body: schemas.SettingsIn
) -> schemas.SettingsOut:
    """Change how scores combine and escalate; `scores_locked` once published.

    Applies to scores given from now on; items already scored keep their escalation.
    """
    exam = await managed_exam(ctx, principal, exam_id)
    check_settings(body)
    row = await settings_row(ctx, exam, lock="update")
    if row.published_at is not None:
        raise VexamError("scores_locked")
    before = settings_out(row).model_dump(mode="json", exclude={"exam_id", "published_at"})
    row.aggregate = body.aggregate
    row.reviewers_per_submission = body.reviewers_per_submission
    row.escalation_threshold = body.escalation_threshold
    row.max_reviewers = body.max_reviewers
    row.updated_at = ctx.now()
    await ctx.session.flush()
    await _recompute_aggregates(ctx, exam.id, row.aggregate)
    await audit.record(
        ctx, "review.settings_changed", "exam", exam.id, before=before, after=body.model_dump()
    )
    return settings_out(row)


async def _recompute_aggregates(ctx: Ctx, exam_id: int, method: str) -> None:
    """Re-combine every item's totals after the aggregate method changed."""
    found = await ctx.session.execute(
        select(ReviewScore.item_id, ReviewScore.total)
        .join(ReviewItem, ReviewItem.id == ReviewScore.item_id)
        .where(ReviewItem.exam_id == exam_id)
        .order_by(ReviewScore.item_id, ReviewScore.created_at, ReviewScore.id)
        .with_for_update(of=ReviewItem)
    )
    totals: dict[int, list[float]] = {}
    for item_id, total in found.all():
        totals.setdefault(item_id, []).append(total)
    for item_id, values in totals.items():
        await ctx.session.execute(
            update(ReviewItem)
            .where(ReviewItem.id == item_id)
            .values(aggregate=rules.aggregate(values, method))
        )


async def publish(ctx: Ctx, principal: Principal, exam_id: int) -> schemas.SettingsOut:
    """Publish the exam's results: from now on no score of it can change (idempotent)."""
    exam = await managed_exam(ctx, principal, exam_id)
    await settings_row(ctx, exam)
    now = ctx.now()
    changed = await ctx.session.execute(
        update(ReviewSettings)
        .where(ReviewSettings.exam_id == exam.id, ReviewSettings.published_at.is_(None))
        .values(published_at=now, published_by=principal.user_id, updated_at=now)
    )
    row = await settings_row(ctx, exam)
    if getattr(changed, "rowcount", 0):
        await audit.record(ctx, "review.published", "exam", exam.id)
    return settings_out(row)


# ------------------------------------------------------------------ assignments


async def _reviewers(ctx: Ctx, principal: Principal, school_id: int) -> dict[int, str]:
    """Active reviewers of the school: id → display name (else their masked phone)."""
    staff = await staff_service.list_staff(ctx, principal, school_id)
    return {
        member.id: member.display_name or member.phone
        for member in staff
        if member.role is Role.reviewer and member.is_active
    }


async def reviewers_of(ctx: Ctx, principal: Principal, exam_id: int) -> dict[int, str]:
    """The active reviewers an exam's subjects can be assigned to (id → name)."""
    exam = await managed_exam(ctx, principal, exam_id)
    return await _reviewers(ctx, principal, exam.school_id)


async def list_assignments(
    ctx: Ctx, principal: Principal, exam_id: int
) -> list[schemas.AssignmentOut]:
    """Every reviewer assignment of the exam, with how many items each reviewer scored."""
    exam = await managed_exam(ctx, principal, exam_id)
    return await _assignments_out(ctx, principal, exam)


async def _assignments_out(
    ctx: Ctx, principal: Principal, exam: Exam
) -> list[schemas.AssignmentOut]:
    names = await _reviewers(ctx, principal, exam.school_id)
    subjects = {subject.id: subject for subject in await exams.subjects_of(ctx, exam.id)}
    scored_rows = await ctx.session.execute(
        select(ReviewItem.subject_id, ReviewScore.reviewer_id, func.count())
        .join(ReviewScore, ReviewScore.item_id == ReviewItem.id)
        .where(ReviewItem.exam_id == exam.id)
        .group_by(ReviewItem.subject_id, ReviewScore.reviewer_id)
    )
    scored = {(subject_id, reviewer): count for subject_id, reviewer, count in scored_rows.all()}
    found = await ctx.session.execute(
        select(ReviewAssignment)
        .where(ReviewAssignment.exam_id == exam.id)
        .order_by(ReviewAssignment.subject_id, ReviewAssignment.id)
    )
    out = []
    for row in found.scalars():
        subject = subjects.get(row.subject_id)
        out.append(
            schemas.AssignmentOut(
                id=row.id,
                exam_id=row.exam_id,
                subject_id=row.subject_id,
                subject_name=subject.name if subject else "",
                reviewer_id=row.reviewer_id,
                reviewer_name=names.get(row.reviewer_id, f"#{row.reviewer_id}"),
                share_percent=row.share_percent,
                scored=int(scored.get((row.subject_id, row.reviewer_id), 0)),
            )
        )
    return out


async def assign(
    ctx: Ctx, principal: Principal, exam_id: int, body: schemas.AssignmentIn
) -> schemas.AssignmentOut:
    """Assign an active reviewer of the exam's school to one of its subjects, for a share
    (1–100 %) of the submissions; assigning again changes the share."""
    exam = await managed_exam(ctx, principal, exam_id)
    subjects = {subject.id: subject for subject in await exams.subjects_of(ctx, exam.id)}
    if body.subject_id not in subjects:
        raise setting_invalid("subject_id", "a subject of this exam")
    if not 1 <= body.share_percent <= 100:
        raise setting_invalid("share_percent", "between 1 and 100")
    if body.reviewer_id not in await _reviewers(ctx, principal, exam.school_id):
        raise VexamError("reviewer_not_found")
    await ctx.session.execute(
        _insert(ctx, ReviewAssignment)
        .values(
            exam_id=exam.id,
            subject_id=body.subject_id,
            reviewer_id=body.reviewer_id,
            share_percent=body.share_percent,
            assigned_by=principal.user_id,
            created_at=ctx.now(),
        )
        .on_conflict_do_nothing()
    )
    row = (
        await ctx.session.execute(
            select(ReviewAssignment)
            .where(
                ReviewAssignment.subject_id == body.subject_id,
                ReviewAssignment.reviewer_id == body.reviewer_id,
            )
            .execution_options(populate_existing=True)
        )
    ).scalar_one()
    row.share_percent = body.share_percent
    await ctx.session.flush()
    await audit.record(
        ctx,
        "review.assigned",
        "review_assignment",
        row.id,
        exam_id=exam.id,
        exam_subject_id=body.subject_id,
        reviewer_id=body.reviewer_id,
        share_percent=body.share_percent,
    )
    return next(out for out in await _assignments_out(ctx, principal, exam) if out.id == row.id)


async def unassign(ctx: Ctx, principal: Principal, exam_id: int, assignment_id: int) -> None:
    """Remove an assignment (scores already given stay); `assignment_not_found`."""
    exam = await managed_exam(ctx, principal, exam_id)
    row = await ctx.session.get(ReviewAssignment, assignment_id)
    if row is None or row.exam_id != exam.id:
        raise VexamError("assignment_not_found")
    await ctx.session.delete(row)
    await ctx.session.flush()
    await audit.record(
        ctx,
        "review.unassigned",
        "review_assignment",
        assignment_id,
        exam_id=exam.id,
        exam_subject_id=row.subject_id,
        reviewer_id=row.reviewer_id,
    )


# ------------------------------------------------------------------ items


async def sync_items(ctx: Ctx, exam_id: int) -> None:
    """Give every reviewable submission of the exam (formal, submitted, upload verified) its
    review item with a fresh opaque code; concurrent callers insert each item once."""
    missing = await ctx.session.execute(
        select(Submission.id, Submission.subject_id)
        .join(Sitting, Sitting.id == Submission.sitting_id)
        .outerjoin(ReviewItem, ReviewItem.submission_id == Submission.id)
        .where(
            Sitting.exam_id == exam_id,
            Sitting.mode == "formal",
            Submission.reviewable.is_(True),
            Submission.upload_state == "verified",
            ReviewItem.id.is_(None),
        )
    )
    rows = missing.all()
    if not rows:
        return
    now = ctx.now()
    await ctx.session.execute(
        _insert(ctx, ReviewItem)
        .values(
            [
                {
                    "submission_id": submission_id,
                    "exam_id": exam_id,
                    "subject_id": subject_id,
                    "code": new_code(),
                    "scores_count": 0,
                    "escalations": 0,
                    "disputed": False,
                    "created_at": now,
                    "updated_at": now,
                }
                for submission_id, subject_id in rows
            ]
        )
        .on_conflict_do_nothing()
    )


@dataclass
class Access:
    """A reviewer's way to an item: the item, its exam, subject and the reviewer's share."""

    item: ReviewItem
    exam: Exam
    subject: Subject
    settings: ReviewSettings
    mine: ReviewScore | None


def _require_reviewer(principal: Principal) -> None:
    if principal.role is not Role.reviewer or principal.school_id is None:
        raise VexamError("forbidden")


async def _my_assignments(ctx: Ctx, principal: Principal) -> list[ReviewAssignment]:
    found = await ctx.session.execute(
        select(ReviewAssignment)
        .join(Exam, Exam.id == ReviewAssignment.exam_id)
        .where(
            ReviewAssignment.reviewer_id == principal.user_id,
            Exam.school_id == principal.school_id,
        )
    )
    return list(found.scalars())


async def _my_score(ctx: Ctx, item_id: int, reviewer_id: int) -> ReviewScore | None:
    found = await ctx.session.execute(
        select(ReviewScore).where(
            ReviewScore.item_id == item_id, ReviewScore.reviewer_id == reviewer_id
        )
    )
    return found.scalar_one_or_none()


def _visible(item: ReviewItem, assignment: ReviewAssignment, scored: bool) -> bool:
    """A reviewer sees items in their share, every escalated item of their subjects, and
    whatever they already scored."""
    return (
        scored
        or item.escalations > 0
        or rules.in_share(item.code, assignment.reviewer_id, assignment.share_percent)
    )


async def reviewer_item(ctx: Ctx, principal: Principal, code: str) -> Access:
    """The item with `code` if the caller reviews its subject and it is in their share;
    `review_item_not_found` for anything else (other schools, unassigned subjects, bad codes)
    so that no response tells an item exists."""
    _require_reviewer(principal)
    item = (
        await ctx.session.execute(select(ReviewItem).where(ReviewItem.code == code[:16]))
    ).scalar_one_or_none()
    if item is None:
        raise VexamError("review_item_not_found")
    assignment = (
        await ctx.session.execute(
            select(ReviewAssignment).where(
                ReviewAssignment.subject_id == item.subject_id,
                ReviewAssignment.reviewer_id == principal.user_id,
            )
        )
    ).scalar_one_or_none()
    exam = await ctx.session.get(Exam, item.exam_id)
    subject = await ctx.session.get(Subject, item.subject_id)
    if assignment is None or exam is None or subject is None:
        raise VexamError("review_item_not_found")
    if exam.school_id != principal.school_id:
        raise VexamError("review_item_not_found")
    mine = await _my_score(ctx, item.id, principal.user_id)
    if not _visible(item, assignment, mine is not None):
        raise VexamError("review_item_not_found")
    return Access(item, exam, subject, await settings_row(ctx, exam), mine)


def item_state(item: ReviewItem, settings: ReviewSettings) -> str:
    wanted = rules.needed(
        settings.reviewers_per_submission, item.escalations, settings.max_reviewers
    )
    return rules.state_of(item.scores_count, wanted, item.escalations, item.disputed)


async def queue(ctx: Ctx, principal: Principal) -> list[schemas.QueueEntry]:
    """The caller's queue: items of their subjects still needing a score (in their share, or
    escalated), then the items they scored; by code only."""
    _require_reviewer(principal)
    assignments = await _my_assignments(ctx, principal)
    if not assignments:
        return []
    by_subject = {row.subject_id: row for row in assignments}
    exam_ids = sorted({row.exam_id for row in assignments})
    for exam_id in exam_ids:
        await sync_items(ctx, exam_id)
    found = await ctx.session.execute(
        select(ReviewItem, Exam, Subject, ReviewSettings, Submission.flags)
        .join(Exam, Exam.id == ReviewItem.exam_id)
        .join(Subject, Subject.id == ReviewItem.subject_id)
        .join(Submission, Submission.id == ReviewItem.submission_id)
        .outerjoin(ReviewSettings, ReviewSettings.exam_id == ReviewItem.exam_id)
        .where(ReviewItem.subject_id.in_(list(by_subject)))
        .order_by(ReviewItem.exam_id, Subject.position, ReviewItem.created_at, ReviewItem.id)
    )
    rows = found.all()
    mine_rows = await ctx.session.execute(
        select(ReviewScore.item_id, ReviewScore.total).where(
            ReviewScore.reviewer_id == principal.user_id,
            ReviewScore.item_id.in_([row[0].id for row in rows] or [0]),
        )
    )
    mine = dict(mine_rows.all())
    todo: list[schemas.QueueEntry] = []
    done: list[schemas.QueueEntry] = []
    for item, exam, subject, settings, flags in rows:
        if settings is None:
            settings = await settings_row(ctx, exam)
        scored = item.id in mine
        if not _visible(item, by_subject[item.subject_id], scored):
            continue
        state = item_state(item, settings)
        if not scored and state in ("complete", "disputed"):
            continue
        entry = schemas.QueueEntry(
            code=item.code,
            exam_name=exam.name,
            exam_name_en=exam.name_en,
            subject_name=subject.name,
            subject_name_en=subject.name_en,
            state=state,
            scored_by_me=scored,
            my_total=mine.get(item.id),
            locked=settings.published_at is not None,
            flagged=len(flags or []),
        )
        (done if scored else todo).append(entry)
    return [entry for entry in todo if not entry.locked] + done


def rubric_out(rubric: rules.Rubric) -> schemas.RubricOut:
    """The rubric as reviewers see it."""
    return schemas.RubricOut(
        criteria=[
            schemas.CriterionOut(name=criterion.name, max_points=criterion.max_points)
            for criterion in rubric.criteria
        ],
        step=rubric.step,
        max_total=rubric.max_total,
    )


def score_out(score: ReviewScore) -> schemas.ScoreOut:
    """A reviewer's own score."""
    return schemas.ScoreOut(
        points=[float(entry.get("points", 0)) for entry in score.points],
        total=score.total,
        comment=score.comment,
        updated_at=score.updated_at,
    )


async def newest_verified_upload(ctx: Ctx, submission_id: int) -> Upload | None:
    """The verified upload of a submission (the newest, should there be several)."""
    found = await ctx.session.execute(
        select(Upload)
        .where(Upload.submission_id == submission_id, Upload.state == "verified")
        .order_by(Upload.created_at.desc())
        .limit(1)
    )
    return found.scalar_one_or_none()


def _face_flags(media: dict[str, Any]) -> list[schemas.FlagOut]:
    """The face audit's flags for the timeline (none until the audit ran)."""
    out = []
    for flag in media_jobs.audit_flags(media):
        try:
            start, end = float(flag.get("from_s", 0)), float(flag.get("to_s", 0))
        except (TypeError, ValueError):
            continue
        out.append(schemas.FlagOut(kind=str(flag.get("kind", ""))[:40], from_s=start, to_s=end))
    return out


def _duration(media: dict[str, Any], recording: Recording | None) -> float | None:
    for key in ("duration_s", "duration", "duration_seconds"):
        value = media.get(key)
        if isinstance(value, int | float) and not isinstance(value, bool) and value > 0:
            return float(value)
    return recording.duration_seconds if recording else None


async def _events(ctx: Ctx, submission: Submission) -> list[schemas.EventOut]:
    recording = await ctx.session.get(Recording, submission.recording_id)
    found = await ctx.session.execute(
        select(ExamEvent)
        .where(ExamEvent.sitting_id == submission.sitting_id)
        .order_by(ExamEvent.id)
    )
    out = []
    for event in found.scalars():
        at_s = None
        if recording is not None and event.recording_id == recording.id:
            when = event.client_at or event.server_at
            at_s = max(0.0, round((when - recording.started_at).total_seconds(), 1))
        out.append(schemas.EventOut(kind=event.kind, action=event.action, at_s=at_s))
    return out


async def item_detail(ctx: Ctx, principal: Principal, code: str) -> schemas.ItemOut:
    """What a reviewer sees of one item: the task, rubric, timeline and their own score."""
    access = await reviewer_item(ctx, principal, code)
    submission = await ctx.session.get(Submission, access.item.submission_id)
    assert submission is not None
    upload = await newest_verified_upload(ctx, submission.id)
    media = dict(upload.media) if upload else {}
    recording = await ctx.session.get(Recording, submission.recording_id)
    return schemas.ItemOut(
        code=access.item.code,
        exam_name=access.exam.name,
        exam_name_en=access.exam.name_en,
        subject_name=access.subject.name,
        subject_name_en=access.subject.name_en,
        prompt=access.subject.prompt,
        rubric=rubric_out(rules.rubric_of(access.subject.rubric)),
        duration_s=_duration(media, recording),
        events=await _events(ctx, submission),
        face_flags=_face_flags(media),
        state=item_state(access.item, access.settings),
        locked=access.settings.published_at is not None,
        my_score=score_out(access.mine) if access.mine else None,
    )


async def playback(ctx: Ctx, principal: Principal, code: str) -> str:
    """A short-lived link to the item's video; `playback_unavailable` while there is none."""
    access = await reviewer_item(ctx, principal, code)
    upload = await newest_verified_upload(ctx, access.item.submission_id)
    if upload is None:
        raise VexamError("playback_unavailable")
    try:
        url = await exam_playback.playback_link(ctx, principal, upload.id)
    except VexamError as exc:
        # The media domain's refusals speak to the candidate who uploaded; a reviewer is
        # told the video cannot be played yet.
        raise VexamError("playback_unavailable") from exc
    return url


# ------------------------------------------------------------------ scoring


async def score(
    ctx: Ctx, principal: Principal, code: str, body: schemas.ScoreIn
) -> schemas.ItemOut:
    """Give or revise the caller's score of an item by its subject's rubric.

    `score_invalid` for points outside the rubric, `scores_locked` once published. The item's
    count, aggregate and escalation are recomputed from all its scores under the item's row
    lock (see the module docstring).
    """
    access = await reviewer_item(ctx, principal, code)
    rubric = rules.rubric_of(access.subject.rubric)
    total = rules.check_points(rubric, body.points)
    settings = await settings_row(ctx, access.exam, lock="share")
    if settings.published_at is not None:
        raise VexamError("scores_locked")
    locked = await ctx.session.execute(
        select(ReviewItem)
        .where(ReviewItem.id == access.item.id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    item = locked.scalar_one()
    now = ctx.now()
    points = [
        {"name": criterion.name, "max_points": criterion.max_points, "points": float(value)}
        for criterion, value in zip(rubric.criteria, body.points, strict=True)
    ]
    mine = await _my_score(ctx, item.id, principal.user_id)
    revised = mine is not None
    if mine is None:
        mine = ReviewScore(
            item_id=item.id,
            reviewer_id=principal.user_id,
            points=points,
            total=total,
            comment=body.comment.strip(),
            created_at=now,
            updated_at=now,
        )
        ctx.session.add(mine)
    else:
        mine.points, mine.total, mine.comment = points, total, body.comment.strip()
        mine.updated_at = now
    await ctx.session.flush()
    await _recompute(ctx, item, settings)
    await audit.record(
        ctx,
        "review.score_revised" if revised else "review.scored",
        "review_item",
        item.id,
        total=total,
        escalations=item.escalations,
        disputed=item.disputed,
    )
    access.item, access.mine = item, mine
    return await item_detail(ctx, principal, code)


async def _recompute(ctx: Ctx, item: ReviewItem, settings: ReviewSettings) -> None:
    """Count, combine and judge the item's scores; the caller holds the item's row lock."""
    found = await ctx.session.execute(
        select(ReviewScore.total)
        .where(ReviewScore.item_id == item.id)
        .order_by(ReviewScore.created_at, ReviewScore.id)
    )
    totals: Sequence[float] = list(found.scalars())
    before = item.escalations
    outcome = rules.escalate(
        totals,
        base=settings.reviewers_per_submission,
        escalations=item.escalations,
        threshold=settings.escalation_threshold,
        max_reviewers=settings.max_reviewers,
    )
    item.scores_count = len(totals)
    item.aggregate = rules.aggregate(totals, settings.aggregate)
    item.spread = rules.spread(totals)
    item.escalations = outcome.escalations
    item.disputed = outcome.disputed
    item.updated_at = ctx.now()
    await ctx.session.flush()
    if outcome.escalations > before:
        await audit.record(
            ctx,
            "review.escalated",
            "review_item",
            item.id,
            spread=item.spread,
            threshold=settings.escalation_threshold,
            reviewers_needed=rules.needed(
                settings.reviewers_per_submission, item.escalations, settings.max_reviewers
            ),
        )


# ------------------------------------------------------------------ the school's view


async def progress(ctx: Ctx, principal: Principal, exam_id: int) -> schemas.ProgressOut:
    """The exam's review: settings, per-subject counts and every item with its scores."""
    exam = await managed_exam(ctx, principal, exam_id)
    await sync_items(ctx, exam.id)
    settings = await settings_row(ctx, exam)
    names = await _reviewers(ctx, principal, exam.school_id)
    subjects = await exams.subjects_of(ctx, exam.id)
    items = list(
        (
            await ctx.session.execute(
                select(ReviewItem)
                .where(ReviewItem.exam_id == exam.id)
                .order_by(ReviewItem.subject_id, ReviewItem.created_at, ReviewItem.id)
            )
        ).scalars()
    )
    scores: dict[int, list[ReviewScore]] = {}
    if items:
        found = await ctx.session.execute(
            select(ReviewScore)
            .where(ReviewScore.item_id.in_([item.id for item in items]))
            .order_by(ReviewScore.created_at, ReviewScore.id)
        )
        for row in found.scalars():
            scores.setdefault(row.item_id, []).append(row)
    out_items = []
    counts: dict[int, dict[str, int]] = {subject.id: {} for subject in subjects}
    for item in items:
        state = item_state(item, settings)
        tally = counts.setdefault(item.subject_id, {})
        tally[state] = tally.get(state, 0) + 1
        tally["all"] = tally.get("all", 0) + 1
        out_items.append(
            schemas.ProgressItem(
                code=item.code,
                subject_id=item.subject_id,
                state=state,
                needed=rules.needed(
                    settings.reviewers_per_submission, item.escalations, settings.max_reviewers
                ),
                scores=[
                    schemas.ScoreLine(
                        reviewer_id=row.reviewer_id,
                        reviewer_name=names.get(row.reviewer_id, f"#{row.reviewer_id}"),
                        total=row.total,
                        comment=row.comment,
                    )
                    for row in scores.get(item.id, [])
                ],
                aggregate=item.aggregate,
                spread=item.spread,
            )
        )
    return schemas.ProgressOut(
        settings=settings_out(settings),
        subjects=[
            schemas.SubjectProgress(
                subject_id=subject.id,
                subject_name=subject.name,
                submissions=counts[subject.id].get("all", 0),
                complete=counts[subject.id].get("complete", 0),
                escalated=counts[subject.id].get("escalated", 0),
                disputed=counts[subject.id].get("disputed", 0),
            )
            for subject in subjects
        ],
        items=out_items,
    )
