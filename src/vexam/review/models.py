"""Tables of the review domain (SPEC §6).

Other domains' tables are named by table name in foreign keys: this module imports no other
domain's models.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from vexam.core.models import Base, BigId, CreatedMixin, IdMixin, UTCDateTime


class ReviewSettings(Base):
    """How an exam's scores are combined, when a submission escalates, and whether the school
    has published (which locks every score of the exam)."""

    __tablename__ = "review_settings"

    exam_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("exams.id", ondelete="CASCADE"), primary_key=True
    )
    school_id: Mapped[int] = mapped_column(BigId, index=True)
    aggregate: Mapped[str] = mapped_column(String(16))  # mean | trimmed_mean | median
    reviewers_per_submission: Mapped[int]
    # Two totals further apart than this send the submission to one more reviewer.
    escalation_threshold: Mapped[float]
    max_reviewers: Mapped[int]
    published_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    published_by: Mapped[int | None]
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class ReviewAssignment(IdMixin, CreatedMixin, Base):
    """A reviewer assigned to a subject, for all its submissions or a share of them."""

    __tablename__ = "review_assignments"
    __table_args__ = (UniqueConstraint("subject_id", "reviewer_id"),)

    exam_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("exams.id", ondelete="CASCADE"), index=True
    )
    subject_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("exam_subjects.id", ondelete="CASCADE")
    )
    reviewer_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    share_percent: Mapped[int] = mapped_column(default=100)  # 1..100
    assigned_by: Mapped[int | None]


class ReviewItem(IdMixin, CreatedMixin, Base):
    """One submission under review, known to reviewers only by its opaque `code`.

    `scores_count`, `aggregate`, `spread`, `escalations` and `disputed` are recomputed from the
    scores while the row is locked, so two reviewers scoring at once cannot overwrite each
    other's effect.
    """

    __tablename__ = "review_items"

    submission_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("exam_submissions.id", ondelete="CASCADE"), unique=True
    )
    exam_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("exams.id", ondelete="CASCADE"), index=True
    )
    subject_id: Mapped[int] = mapped_column(BigId, index=True)
    code: Mapped[str] = mapped_column(String(16), unique=True)
    scores_count: Mapped[int] = mapped_column(default=0)
    escalations: Mapped[int] = mapped_column(default=0)
    disputed: Mapped[bool] = mapped_column(default=False)
    aggregate: Mapped[float | None]
    spread: Mapped[float | None]
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class ReviewScore(IdMixin, CreatedMixin, Base):
    """One reviewer's score of one item: points per rubric criterion, total and comment."""

    __tablename__ = "review_scores"
    __table_args__ = (UniqueConstraint("item_id", "reviewer_id"),)

    item_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("review_items.id", ondelete="CASCADE"), index=True
    )
    reviewer_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("users.id", ondelete="RESTRICT"), index=True
    )
    # [{"name", "max_points", "points"}]: the rubric as it was when scored.
    points: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    total: Mapped[float]
    comment: Mapped[str] = mapped_column(Text, default="")
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
