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


class Application(IdMixin, CreatedMixin, Base):
    """A candidate's application for an exam, with the roster data they confirmed."""

    __tablename__ = "applications"
    __table_args__ = (UniqueConstraint("user_id", "exam_id"),)

    user_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    exam_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("exams.id", ondelete="CASCADE"), index=True
    )
    status: Mapped[str] = mapped_column(String(16))  # matched | enrolled
    roster_row_id: Mapped[int]
    name: Mapped[str] = mapped_column(String(100))
    province: Mapped[str] = mapped_column(String(16))
    candidate_number: Mapped[str | None] = mapped_column(String(32))
    major: Mapped[str | None] = mapped_column(String(200))
    enrolled_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class PaymentOrder(IdMixin, CreatedMixin, Base):
    """The one order of a candidate for an exam's fee; paid at most once."""

    __tablename__ = "payment_orders"
    __table_args__ = (UniqueConstraint("user_id", "exam_id"),)

    user_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    exam_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("exams.id", ondelete="CASCADE"), index=True
    )
    amount_cents: Mapped[int]
    currency: Mapped[str] = mapped_column(String(3), default="CNY")
    status: Mapped[str] = mapped_column(String(16))  # pending | paid | refunded
    provider: Mapped[str] = mapped_column(String(32))
    provider_trade_no: Mapped[str | None] = mapped_column(String(64))
    paid_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    refunded_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    refund_reason: Mapped[str | None] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class PaymentCallback(IdMixin, CreatedMixin, Base):
    """Every callback a provider delivered; one row per provider event, however often sent."""

    __tablename__ = "payment_callbacks"
    __table_args__ = (UniqueConstraint("provider", "event_id"),)

    provider: Mapped[str] = mapped_column(String(32))
    event_id: Mapped[str] = mapped_column(String(64))
    order_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("payment_orders.id", ondelete="CASCADE"), index=True
    )
    payload: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    outcome: Mapped[str] = mapped_column(String(16))  # charged | duplicate | ignored


class Accommodation(IdMixin, CreatedMixin, Base):
    """What a school granted one candidate on its roster beyond the exam's settings.

    Applies to every subject of the exam: extra attempts, extra recording seconds, and a later
    end of the formal window. One row per roster row; the reason is kept here and in the
    audit log with every change.
    """

    __tablename__ = "accommodations"

    exam_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("exams.id", ondelete="CASCADE"), index=True
    )
    # By table name: the exams domain does not import the schools domain's models.
    roster_row_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("roster_rows.id", ondelete="CASCADE"), unique=True
    )
    extra_attempts: Mapped[int] = mapped_column(default=0)
    extra_seconds: Mapped[int] = mapped_column(default=0)
    window_ends_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    reason: Mapped[str] = mapped_column(Text)
    granted_by: Mapped[int | None]
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
