"""What reviewers do (SPEC §6): their blind queue, one item with its timeline and video link,
and scoring by the subject's rubric with aggregation and escalation. Every score is audited.

Blindness: reviewers reach a submission only by its item's opaque code; nothing this module
returns to a reviewer names the candidate, their account, sitting or submission ids. Any
code a reviewer may not see answers `review_item_not_found`, as a code that does not exist.

Concurrency is decided by the database: a score is written while its item row is locked
(`SELECT ... FOR UPDATE`; SQLite serialises writers with BEGIN IMMEDIATE) and the item's
count, aggregate and escalation are recomputed from every stored score under that lock; the
unique (item, reviewer) pair keeps one score per reviewer. Scoring holds a share lock on the
exam's settings row, which publishing updates, so a score either lands before the results
are published or is refused with `scores_locked`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select

from vexam.core import audit
from vexam.core.context import Ctx, Principal, Role
from vexam.core.errors import VexamError
from vexam.exams import media_jobs
from vexam.exams import playback as exam_playback
from vexam.exams.models import Exam, ExamEvent, Recording, Subject, Submission, Upload
from vexam.review import rules, schemas
from vexam.review.models import ReviewAssignment, ReviewItem, ReviewScore, ReviewSettings
from vexam.review.service import item_state, settings_row, sync_items


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
            # Both instants are the server's: the client's clock is never trusted (SPEC §1).
            at_s = max(0.0, round((event.server_at - recording.started_at).total_seconds(), 1))
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
