"""Tables of the exams domain: an exam of a school and its subjects (SPEC §4)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from vexam.core.models import Base, BigId, CreatedMixin, IdMixin, UTCDateTime


class Exam(IdMixin, CreatedMixin, Base):
    """A school's exam (考试/专业) with its window, fee and policies."""

    __tablename__ = "exams"
    __table_args__ = (UniqueConstraint("school_id", "code"),)

    school_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("schools.id", ondelete="RESTRICT"), index=True
    )
    code: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(200))
    name_en: Mapped[str | None] = mapped_column(String(200))
    season: Mapped[str] = mapped_column(String(8))
    formal_starts_at: Mapped[datetime] = mapped_column(UTCDateTime())
    formal_ends_at: Mapped[datetime] = mapped_column(UTCDateTime())
    upload_grace_minutes: Mapped[int] = mapped_column(default=24 * 60)
    mock_enabled: Mapped[bool] = mapped_column(default=True)
    mock_limit: Mapped[int | None]  # None: unlimited
    fee_cents: Mapped[int] = mapped_column(default=0)
    device_policy: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    anti_cheat: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)
    published: Mapped[bool] = mapped_column(default=False)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class Subject(IdMixin, CreatedMixin, Base):
    """One subject (科目) of an exam: what is recorded, how often and how."""

    __tablename__ = "exam_subjects"
    __table_args__ = (UniqueConstraint("exam_id", "position"),)

    exam_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("exams.id", ondelete="CASCADE"), index=True
    )
    position: Mapped[int]
    name: Mapped[str] = mapped_column(String(200))
    name_en: Mapped[str | None] = mapped_column(String(200))
    attempts: Mapped[int]
    max_seconds: Mapped[int]
    prompt: Mapped[str] = mapped_column(Text, default="")
    camera: Mapped[str] = mapped_column(String(8))  # front | back | either
    orientation: Mapped[str] = mapped_column(String(12))  # landscape | portrait | choice
    face_check_seconds: Mapped[int]  # 0: only at the start
    mock_face_checks: Mapped[str] = mapped_column(String(12))  # real | walkthrough
    rubric: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
