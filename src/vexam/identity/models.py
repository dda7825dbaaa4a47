"""Tables of the identity domain: certifications, photos, face attempts, reviews, appeals.

Uniqueness is the database's job. A certification claims its ID number and candidate number
through nullable unique "claim" columns that are filled only while it is certified, so two
accounts certifying one number at the same moment cannot both win, and a revoked or pending
certification claims nothing. Requests that may be open only once per subject (a manual
review, an appeal) use the same device: `open_key` is set while open and cleared when decided.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import JSON, Date, Float, ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from vexam.core.models import Base, BigId, CreatedMixin, IdMixin, UTCDateTime


class Identity(IdMixin, CreatedMixin, Base):
    """One account's identity certification (at most one per account)."""

    __tablename__ = "identities"

    user_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("users.id", ondelete="CASCADE"), unique=True
    )
    # face_pending → certified | review_required → in_review → certified | rejected; revoked.
    status: Mapped[str] = mapped_column(String(24), index=True)
    identity_type: Mapped[str] = mapped_column(String(16))  # gaokao | other
    document_type: Mapped[str] = mapped_column(String(16))  # resident_id | temporary_id | other
    document_kind: Mapped[str | None] = mapped_column(String(32))  # for other documents
    entry_method: Mapped[str] = mapped_column(String(8))  # ocr | manual
    name: Mapped[str] = mapped_column(String(100))
    sex: Mapped[str | None] = mapped_column(String(8))
    ethnicity: Mapped[str | None] = mapped_column(String(16))
    birth_date: Mapped[date | None] = mapped_column(Date)
    address: Mapped[str | None] = mapped_column(String(300))
    id_expires_on: Mapped[date | None] = mapped_column(Date)
    # The number itself only encrypted; found by its keyed hash; shown masked.
    id_number_enc: Mapped[str] = mapped_column(Text)
    id_number_index: Mapped[str] = mapped_column(String(64), index=True)
    id_number_masked: Mapped[str] = mapped_column(String(32))
    certified_index: Mapped[str | None] = mapped_column(String(64), unique=True)
    season: Mapped[str] = mapped_column(String(8))
    candidate_number: Mapped[str | None] = mapped_column(String(32))
    candidate_number_claim: Mapped[str | None] = mapped_column(String(48), unique=True)
    # Fields OCR flagged, and which the candidate changed from what OCR read.
    ocr_flags: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    id_photo_id: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("identity_photos.id", ondelete="SET NULL")
    )
    portrait_source: Mapped[str | None] = mapped_column(String(16))  # id_photo | register
    portrait_embedding: Mapped[list[float] | None] = mapped_column(JSON)
    register_result: Mapped[str | None] = mapped_column(String(16))  # match | mismatch | ...
    register_reason: Mapped[str | None] = mapped_column(String(64))
    face_failures: Mapped[int] = mapped_column(default=0)
    review_reason: Mapped[str | None] = mapped_column(String(48))
    certified_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    certified_via: Mapped[str | None] = mapped_column(String(16))  # face | manual_review
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    revoked_reason: Mapped[str | None] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class IdentityPhoto(IdMixin, CreatedMixin, Base):
    """An ID-card photo, selfie or portrait crop in the blob store (owner and support only)."""

    __tablename__ = "identity_photos"

    user_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    kind: Mapped[str] = mapped_column(String(16))  # id_card | selfie | portrait
    blob_key: Mapped[str] = mapped_column(String(200))
    content_type: Mapped[str] = mapped_column(String(32))
    size: Mapped[int]


class LivenessChallenge(IdMixin, CreatedMixin, Base):
    """A head-turn direction the server chose; used once, before it expires."""

    __tablename__ = "liveness_challenges"

    user_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    token: Mapped[str] = mapped_column(String(32), unique=True)
    direction: Mapped[str] = mapped_column(String(8))
    purpose: Mapped[str] = mapped_column(String(16))  # certification (exams later)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class FaceAttempt(IdMixin, CreatedMixin, Base):
    """One face verification with its machine facts, kept for support and the audit."""

    __tablename__ = "face_attempts"

    identity_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("identities.id", ondelete="CASCADE"), index=True
    )
    direction: Mapped[str] = mapped_column(String(8))
    frames: Mapped[int]
    liveness_passed: Mapped[bool]
    liveness_reason: Mapped[str | None] = mapped_column(String(32))
    yaws: Mapped[list[float]] = mapped_column(JSON, default=list)
    distance: Mapped[float | None] = mapped_column(Float)
    result: Mapped[str] = mapped_column(String(24))  # passed | face_not_found | ...
    selfie_photo_id: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("identity_photos.id", ondelete="SET NULL")
    )


class ManualReview(IdMixin, CreatedMixin, Base):
    """A person's decision on an identity the machine could not certify."""

    __tablename__ = "manual_reviews"
    __table_args__ = (Index("ix_manual_reviews_status_due", "status", "due_at"),)

    identity_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("identities.id", ondelete="CASCADE"), index=True
    )
    open_key: Mapped[int | None] = mapped_column(BigId, unique=True)
    reason: Mapped[str] = mapped_column(String(48))
    status: Mapped[str] = mapped_column(String(16))  # open | approved | rejected
    id_photo_id: Mapped[int] = mapped_column(BigId, ForeignKey("identity_photos.id"))
    selfie_photo_id: Mapped[int] = mapped_column(BigId, ForeignKey("identity_photos.id"))
    distance: Mapped[float | None] = mapped_column(Float)
    due_at: Mapped[datetime] = mapped_column(UTCDateTime())
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    decided_by: Mapped[int | None] = mapped_column(BigId)
    decision_reason: Mapped[str | None] = mapped_column(Text)


class Appeal(IdMixin, CreatedMixin, Base):
    """A candidate's appeal against a conflict or a wrong certification (SPEC §3)."""

    __tablename__ = "identity_appeals"
    __table_args__ = (Index("ix_identity_appeals_status_due", "status", "due_at"),)

    user_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    # "user:kind" while open: one open appeal of each kind per account.
    open_key: Mapped[str | None] = mapped_column(String(64), unique=True)
    kind: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16))  # open | cancelled | upheld | dismissed
    name: Mapped[str | None] = mapped_column(String(100))
    id_number_enc: Mapped[str | None] = mapped_column(Text)
    id_number_masked: Mapped[str | None] = mapped_column(String(32))
    candidate_number: Mapped[str | None] = mapped_column(String(32))
    holder_identity_id: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("identities.id", ondelete="SET NULL")
    )
    message: Mapped[str] = mapped_column(Text)
    due_at: Mapped[datetime] = mapped_column(UTCDateTime())
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    decided_by: Mapped[int | None] = mapped_column(BigId)
    decision_reason: Mapped[str | None] = mapped_column(Text)
