"""Review rules on the database for the school (SPEC §6, §8): settings, assignments, review
items and their codes, the publish lock and the school's view of progress. Every change is
audited. What reviewers do (queue, item, score) is in `reviewing`.

Blindness: reviewers reach a submission only by its item's opaque code (`new_code`), which
is derived from nothing.

Publishing updates the exam's settings row; scoring holds a share lock on it
(`settings_row(lock="share")`), so a score either lands before the results are published or
is refused with `scores_locked`.
"""

from __future__ import annotations

import secrets

from sqlalchemy import func, select, update

from vexam.accounts import staff as staff_service
from vexam.core import audit
from vexam.core.context import Ctx, Principal, Role
from vexam.core.db import insert_into
from vexam.core.errors import VexamError
from vexam.exams import service as exams
from vexam.exams.models import Exam, Sitting, Submission
from vexam.review import rules, schemas
from vexam.review.models import ReviewAssignment, ReviewItem, ReviewScore, ReviewSettings

CODE_ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"  # no 0/O, 1/I/L: read aloud safely
CODE_LENGTH = 8
DEFAULTS = schemas.SettingsIn()


def new_code() -> str:
    """A fresh opaque item code, e.g. R-7KQ2MX9A (no meaning, not derived from any id)."""
    return "R-" + "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))


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
        insert_into(ctx.session, ReviewSettings)
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


async def _reviewers(
    ctx: Ctx, principal: Principal, school_id: int, *, active_only: bool = True
) -> dict[int, str]:
    """Reviewers of the school (the active ones unless `active_only` is False): id → display
    name, else their masked phone."""
    staff = await staff_service.list_staff(ctx, principal, school_id)
    return {
        member.id: member.display_name or member.phone
        for member in staff
        if member.role is Role.reviewer and (member.is_active or not active_only)
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
    names = await _reviewers(ctx, principal, exam.school_id, active_only=False)
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
        insert_into(ctx.session, ReviewAssignment)
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
        insert_into(ctx.session, ReviewItem)
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


def item_state(item: ReviewItem, settings: ReviewSettings) -> str:
    wanted = rules.needed(
        settings.reviewers_per_submission, item.escalations, settings.max_reviewers
    )
    return rules.state_of(item.scores_count, wanted, item.escalations, item.disputed)


# ------------------------------------------------------------------ the school's view


async def progress(ctx: Ctx, principal: Principal, exam_id: int) -> schemas.ProgressOut:
    """The exam's review: settings, per-subject counts and every item with its scores."""
    exam = await managed_exam(ctx, principal, exam_id)
    await sync_items(ctx, exam.id)
    settings = await settings_row(ctx, exam)
    names = await _reviewers(ctx, principal, exam.school_id, active_only=False)
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
                subject_name_en=subject.name_en,
                submissions=counts[subject.id].get("all", 0),
                complete=counts[subject.id].get("complete", 0),
                escalated=counts[subject.id].get("escalated", 0),
                disputed=counts[subject.id].get("disputed", 0),
            )
            for subject in subjects
        ],
        items=out_items,
    )
