"""Request and response bodies of review (SPEC §6).

Reviewer-facing bodies (`QueueEntry`, `ItemOut`, `ScoreOut`) carry an opaque code and never
a name, ID number, phone, candidate number, user or submission id.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field


class SettingsIn(BaseModel):
    """How an exam's scores are combined and when a submission escalates."""

    aggregate: Literal["mean", "trimmed_mean", "median"] = "mean"
    reviewers_per_submission: int = 2
    escalation_threshold: float = Field(
        default=10.0, description="points of the total; a larger difference escalates"
    )
    max_reviewers: int = 3


class SettingsOut(SettingsIn):
    """An exam's review settings and whether its results are published (scores locked)."""

    exam_id: int
    published_at: datetime | None


class AssignmentIn(BaseModel):
    """Assign a reviewer of the school to a subject of the exam."""

    reviewer_id: int
    subject_id: int
    share_percent: int = Field(default=100, description="1–100: the share of submissions")


class AssignmentOut(BaseModel):
    """A reviewer's assignment (as the school sees it)."""

    id: int
    exam_id: int
    subject_id: int
    subject_name: str
    reviewer_id: int
    reviewer_name: str
    share_percent: int
    scored: int


class CriterionOut(BaseModel):
    """One criterion of the rubric."""

    name: str
    max_points: float


class RubricOut(BaseModel):
    """The rubric a reviewer scores by."""

    criteria: list[CriterionOut]
    step: float
    max_total: float


class QueueEntry(BaseModel):
    """A submission in a reviewer's queue."""

    code: str
    exam_name: str
    exam_name_en: str | None
    subject_name: str
    subject_name_en: str | None
    state: str
    scored_by_me: bool
    my_total: float | None
    locked: bool
    flagged: int


class ScoreIn(BaseModel):
    """A reviewer's points, one per rubric criterion in order, and a comment."""

    points: list[float] = Field(max_length=30)
    comment: str = Field(default="", max_length=2000)


class ScoreOut(BaseModel):
    """The caller's own score of an item."""

    points: list[float]
    total: float
    comment: str
    updated_at: datetime


class EventOut(BaseModel):
    """An anti-cheat event of the sitting; `at_s` is its second in the video (None: it
    happened outside the submitted recording)."""

    kind: str
    action: str
    at_s: float | None


class FlagOut(BaseModel):
    """A face-audit flag over a stretch of the video."""

    kind: str
    from_s: float
    to_s: float


class ItemOut(BaseModel):
    """Everything a reviewer needs to score one submission, and nothing about who made it."""

    code: str
    exam_name: str
    exam_name_en: str | None
    subject_name: str
    subject_name_en: str | None
    prompt: str
    rubric: RubricOut
    duration_s: float | None
    events: list[EventOut]
    face_flags: list[FlagOut]
    state: str
    locked: bool
    my_score: ScoreOut | None


class PlaybackOut(BaseModel):
    """A short-lived relative link to the video (HTTP Range capable)."""

    url: str


class ScoreLine(BaseModel):
    """One reviewer's total of an item, as the school sees it."""

    reviewer_id: int
    reviewer_name: str
    total: float
    comment: str


class ProgressItem(BaseModel):
    """One submission's review, as the school sees it (still by code only)."""

    code: str
    subject_id: int
    state: str
    needed: int
    scores: list[ScoreLine]
    aggregate: float | None
    spread: float | None


class SubjectProgress(BaseModel):
    """How far the review of one subject is."""

    subject_id: int
    subject_name: str
    subject_name_en: str | None = None
    submissions: int
    complete: int
    escalated: int
    disputed: int


class ProgressOut(BaseModel):
    """The review of an exam: settings, per-subject counts and every item."""

    settings: SettingsOut
    subjects: list[SubjectProgress]
    items: list[ProgressItem]
