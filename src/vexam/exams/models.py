"""Tables of the exams domain: exams, subjects, applications (SPEC §4), sittings (SPEC §5)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    ForeignKey,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
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


# ------------------------------------------------------------------ taking an exam (SPEC §5)


class Sitting(IdMixin, CreatedMixin, Base):
    """A candidate taking one exam once: the formal sitting, or one numbered mock sitting.

    `(user_id, exam_id, mode, number)` is unique: the formal sitting is number 1 and exists
    once; mock sittings are numbered and `Exam.mock_limit` caps the number. Face and device
    checks are bound to the device that passed them (`face_device_id`, `device_ok_id`).
    """

    __tablename__ = "exam_sittings"
    __table_args__ = (UniqueConstraint("user_id", "exam_id", "mode", "number"),)

    user_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    exam_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("exams.id", ondelete="CASCADE"), index=True
    )
    school_id: Mapped[int] = mapped_column(BigId)
    roster_row_id: Mapped[int | None] = mapped_column(BigId, index=True)
    mode: Mapped[str] = mapped_column(String(8))  # formal | mock
    number: Mapped[int]
    reviewable: Mapped[bool]  # formal sittings only: mock ones never go to review
    state: Mapped[str] = mapped_column(String(12))  # open | failed
    failed_reason: Mapped[str | None] = mapped_column(String(48))
    failed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    device_id: Mapped[str | None] = mapped_column(String(128))  # the last device that held it
    face_state: Mapped[str] = mapped_column(String(16))  # none|passed|walkthrough|no_reference|…
    face_device_id: Mapped[str | None] = mapped_column(String(128))
    face_verified_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    face_check_required: Mapped[bool] = mapped_column(default=False)
    # The live face of a `no_reference` verification: later checks compare with it.
    live_embedding: Mapped[list[float] | None] = mapped_column(JSON)
    device_ok_id: Mapped[str | None] = mapped_column(String(128))
    flags: Mapped[list[str]] = mapped_column(JSON, default=list)
    warnings: Mapped[list[str]] = mapped_column(JSON, default=list)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class ExamDeviceLock(Base):
    """The one device that may hold an active exam of a candidate, across all schools."""

    __tablename__ = "exam_device_locks"

    user_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    device_id: Mapped[str] = mapped_column(String(128))
    sitting_id: Mapped[int | None] = mapped_column(BigId)
    acquired_at: Mapped[datetime] = mapped_column(UTCDateTime())


class FaceVerification(IdMixin, CreatedMixin, Base):
    """One exam-time face verification or in-recording face check, with its verdict."""

    __tablename__ = "exam_face_checks"

    sitting_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("exam_sittings.id", ondelete="CASCADE"), index=True
    )
    recording_id: Mapped[int | None] = mapped_column(BigId)
    kind: Mapped[str] = mapped_column(String(12))  # verification | check
    # passed | walkthrough | no_reference | face_not_found | face_mismatch
    result: Mapped[str] = mapped_column(String(16))
    distance: Mapped[float | None]
    device_id: Mapped[str | None] = mapped_column(String(128))


class DeviceCheck(IdMixin, CreatedMixin, Base):
    """What a device reported before an exam, and how the exam's device policy judged it."""

    __tablename__ = "exam_device_checks"

    sitting_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("exam_sittings.id", ondelete="CASCADE"), index=True
    )
    device_id: Mapped[str] = mapped_column(String(128))
    device_class: Mapped[str] = mapped_column(String(8))
    os_name: Mapped[str] = mapped_column(String(16))
    os_version: Mapped[str] = mapped_column(String(32))
    camera: Mapped[bool]
    microphone: Mapped[bool]
    free_bytes: Mapped[int] = mapped_column(BigInteger)
    upload_kbps: Mapped[int]
    allowed: Mapped[bool]
    rule: Mapped[str | None] = mapped_column(String(32))  # the broken rule when refused
    warnings: Mapped[list[str]] = mapped_column(JSON, default=list)


class SubjectProgress(IdMixin, Base):
    """Attempts a sitting used on one subject; raised only by a conditional update."""

    __tablename__ = "exam_subject_progress"
    __table_args__ = (UniqueConstraint("sitting_id", "subject_id"),)

    sitting_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("exam_sittings.id", ondelete="CASCADE"), index=True
    )
    # No foreign key: exam edits replace subject rows, and attempts must never vanish with them.
    subject_id: Mapped[int] = mapped_column(BigId)
    used: Mapped[int] = mapped_column(default=0)


class Recording(IdMixin, CreatedMixin, Base):
    """One recording attempt of a subject: recording → completed | voided."""

    __tablename__ = "exam_recordings"
    __table_args__ = (UniqueConstraint("sitting_id", "subject_id", "attempt"),)

    sitting_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("exam_sittings.id", ondelete="CASCADE"), index=True
    )
    subject_id: Mapped[int] = mapped_column(BigId)
    attempt: Mapped[int]
    state: Mapped[str] = mapped_column(String(12))  # recording | completed | voided
    void_reason: Mapped[str | None] = mapped_column(String(32))
    device_id: Mapped[str] = mapped_column(String(128))
    orientation: Mapped[str] = mapped_column(String(12))  # landscape | portrait
    max_seconds: Mapped[int]
    started_at: Mapped[datetime] = mapped_column(UTCDateTime())
    ends_by: Mapped[datetime] = mapped_column(UTCDateTime())  # max length + grace
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    duration_seconds: Mapped[float | None]
    face_failures_in_row: Mapped[int] = mapped_column(default=0)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class Submission(IdMixin, CreatedMixin, Base):
    """The one recording a sitting hands in for a subject, with the declared hash and size."""

    __tablename__ = "exam_submissions"
    __table_args__ = (UniqueConstraint("sitting_id", "subject_id"),)

    sitting_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("exam_sittings.id", ondelete="CASCADE"), index=True
    )
    subject_id: Mapped[int] = mapped_column(BigId)
    recording_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("exam_recordings.id", ondelete="RESTRICT"), unique=True
    )
    sha256: Mapped[str] = mapped_column(String(64))
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    upload_state: Mapped[str] = mapped_column(String(16))  # pending (uploads: issue 6)
    reviewable: Mapped[bool]
    # The flags of the submitted recording (flagged events), kept for the reviewers.
    flags: Mapped[list[str]] = mapped_column(JSON, default=list)
    device_id: Mapped[str] = mapped_column(String(128))
    submitted_at: Mapped[datetime] = mapped_column(UTCDateTime())


class ExamEvent(IdMixin, Base):
    """An interruption or prohibited action the client reported; every one is kept."""

    __tablename__ = "exam_events"

    sitting_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("exam_sittings.id", ondelete="CASCADE"), index=True
    )
    recording_id: Mapped[int | None] = mapped_column(BigId)
    kind: Mapped[str] = mapped_column(String(20))
    # void_attempt | fail_exam | flag as the policy said; "ignored" from a device that
    # no longer holds the exam.
    action: Mapped[str] = mapped_column(String(16))
    client_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    server_at: Mapped[datetime] = mapped_column(UTCDateTime())
    device_id: Mapped[str | None] = mapped_column(String(128))
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


# ------------------------------------------------------------------ uploads (SPEC §5, issue 6)


class Upload(CreatedMixin, Base):
    """One tus upload of a submission's file: receiving → received → verified | invalid,
    or hash_mismatch (kept for support, never accepted), or expired (bytes deleted).

    `received` follows the bytes durably in the store (on the local store it may lag by up to
    a few seconds or 16 MiB while receiving); the store is the truth and the column is
    repaired from it. At most one upload of a submission is receiving.
    """

    __tablename__ = "exam_uploads"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    submission_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("exam_submissions.id", ondelete="CASCADE"), index=True
    )
    user_id: Mapped[int] = mapped_column(BigId, index=True)
    length: Mapped[int] = mapped_column(BigInteger)
    received: Mapped[int] = mapped_column(BigInteger, default=0)
    # receiving | received | verified | invalid | hash_mismatch | expired
    state: Mapped[str] = mapped_column(String(20))
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    metadata_: Mapped[dict[str, str]] = mapped_column("metadata", JSON, default=dict)
    sha256: Mapped[str | None] = mapped_column(String(64))
    # What the verification found: container, codecs, duration, frames, or the reason.
    media: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    verified_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    # The S3 store (upload_s3): the multipart upload, its part size and the parts recorded
    # (received = parts_done * part_size + staged bytes); a PATCH holds the lease, a token
    # and an expiry, so one PATCH at a time runs per upload across hosts.
    multipart_id: Mapped[str | None] = mapped_column(String(1024))
    part_size: Mapped[int | None] = mapped_column(BigInteger)
    parts_done: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    lease_token: Mapped[str | None] = mapped_column(String(32))
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # Whether a PATCH may have staged bytes as S3 objects (set before it puts one); until
    # then every staged byte is in `StagedPiece` rows and nothing need be listed in S3.
    s3_staged: Mapped[bool] = mapped_column(Boolean, default=False, server_default="0")


class StagedPiece(Base):
    """A few KiB of an S3 upload's current part staged in the database (`upload_s3`): the
    bytes of one PATCH from byte `start` of the part after `parts` full parts, written in the
    statement that counts them, so there is never a piece the row does not count. Deleted
    once the part is sent, and with the upload's completion, expiry or termination."""

    __tablename__ = "exam_upload_staged"

    upload_id: Mapped[str] = mapped_column(
        String(32), ForeignKey("exam_uploads.id", ondelete="CASCADE"), primary_key=True
    )
    parts: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    start: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    data: Mapped[bytes] = mapped_column(LargeBinary)
