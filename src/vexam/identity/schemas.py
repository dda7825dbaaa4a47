"""Request and response bodies of the identity API (candidate and support sides)."""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, Field


class IdentityType(StrEnum):
    """Gaokao candidate or other: stored, changes nothing (SPEC §3)."""

    gaokao = "gaokao"
    other = "other"


class DocumentType(StrEnum):
    """The identity document the candidate certifies with."""

    resident_id = "resident_id"  # 居民身份证: photo (OCR) or manual entry
    temporary_id = "temporary_id"  # 临时身份证: manual entry only
    other = "other"  # HK/Macao/Taiwan permits, passports: manual entry + manual review


class OtherDocumentKind(StrEnum):
    """Which other document (only with document_type=other)."""

    hk_macao_permit = "hk_macao_permit"
    taiwan_permit = "taiwan_permit"
    residence_permit = "residence_permit"
    passport = "passport"
    foreign_permanent_residence = "foreign_permanent_residence"


class Status(StrEnum):
    """Where a certification stands."""

    not_started = "not_started"
    face_pending = "face_pending"
    review_required = "review_required"
    in_review = "in_review"
    certified = "certified"
    rejected = "rejected"
    revoked = "revoked"


class OcrFieldOut(BaseModel):
    """One field read from the card: the UI highlights doubtful ones for the candidate."""

    value: str | None
    confidence: float
    doubtful: bool
    note: str | None


class IdPhotoOut(BaseModel):
    """A stored ID-card photo and, when it was read, what OCR found (to confirm, not trust)."""

    photo_id: int
    fields: dict[str, OcrFieldOut] | None = None


class CertificationIn(BaseModel):
    """The identity the candidate states: typed by hand, or OCR's prefill they confirmed."""

    identity_type: IdentityType
    document_type: DocumentType
    document_kind: OtherDocumentKind | None = None
    name: str = Field(min_length=1, max_length=60)
    id_number: str = Field(min_length=1, max_length=40)
    sex: Literal["male", "female"] | None = None
    ethnicity: str | None = Field(default=None, max_length=16)
    birth_date: date | None = None
    address: str | None = Field(default=None, max_length=200)
    id_expires_on: date | None = None
    candidate_number: str | None = Field(default=None, max_length=32)
    id_photo_id: int | None = Field(
        default=None, description="an ID-card photo uploaded first; its portrait is compared"
    )


class ChallengeOut(BaseModel):
    """A liveness challenge: turn the head to `direction` while sending frames."""

    challenge_id: str
    direction: Literal["left", "right"]
    expires_at: datetime
    min_frames: int
    max_frames: int


class ReviewOut(BaseModel):
    """A manual review as the candidate sees it."""

    id: int
    status: str
    reason: str
    created_at: datetime
    due_at: datetime
    decided_at: datetime | None
    decision_reason: str | None


class AppealIn(BaseModel):
    """Open an appeal against a conflict or a wrong certification."""

    kind: Literal["identity_conflict", "candidate_number_taken", "wrong_certification"]
    message: str = Field(min_length=1, max_length=2000)
    name: str | None = Field(default=None, max_length=60)
    id_number: str | None = Field(default=None, max_length=40)
    candidate_number: str | None = Field(default=None, max_length=32)


class AppealOut(BaseModel):
    """An appeal as its author sees it."""

    id: int
    kind: str
    status: str
    id_number: str | None = Field(description="masked")
    candidate_number: str | None
    message: str
    created_at: datetime
    due_at: datetime
    decided_at: datetime | None
    decision_reason: str | None


class IdentityOut(BaseModel):
    """The candidate's whole certification state and what to do next."""

    status: Status
    next_step: Literal[
        "submit_identity", "verify_face", "request_review", "wait_for_review", "none"
    ]
    identity_type: str | None = None
    document_type: str | None = None
    name: str | None = None
    id_number: str | None = Field(default=None, description="masked")
    candidate_number: str | None = None
    season: str | None = None
    review_reason: str | None = None
    face_attempts_left: int | None = None
    certified_at: datetime | None = None
    review: ReviewOut | None = None
    appeals: list[AppealOut] = Field(default_factory=list)


class FaceResultOut(BaseModel):
    """A passed face verification: the identity is certified."""

    status: Status
    distance: float


class DecisionIn(BaseModel):
    """A support agent's decision, always with a written reason."""

    decision: Literal["approve", "reject"]
    reason: str = Field(min_length=2, max_length=2000)


class AppealDecisionIn(BaseModel):
    """Uphold or dismiss an appeal; upholding may revoke the holder's certification."""

    decision: Literal["uphold", "dismiss"]
    reason: str = Field(min_length=2, max_length=2000)
    revoke_holder: bool = False


class RevokeIn(BaseModel):
    """Revoke a wrong certification, with the reason kept in the audit log."""

    reason: str = Field(min_length=2, max_length=2000)


class FaceAttemptOut(BaseModel):
    """One face verification's machine facts."""

    at: datetime
    result: str
    liveness_reason: str | None
    distance: float | None
    selfie_photo_id: int | None


class IdentityFacts(BaseModel):
    """What support sees of an identity to decide on it (the full number: a decision)."""

    identity_id: int
    user_id: int
    phone: str = Field(description="masked")
    status: str
    identity_type: str
    document_type: str
    document_kind: str | None
    entry_method: str
    name: str
    sex: str | None
    ethnicity: str | None
    birth_date: date | None
    address: str | None
    id_number: str
    id_expires_on: date | None
    candidate_number: str | None
    ocr_flags: dict[str, object]
    register_result: str | None
    register_reason: str | None
    review_reason: str | None
    face_failures: int
    id_photo_id: int | None
    attempts: list[FaceAttemptOut]


class SupportReviewOut(BaseModel):
    """A manual review in the support queue."""

    id: int
    status: str
    reason: str
    created_at: datetime
    due_at: datetime
    overdue: bool
    name: str
    id_number: str = Field(description="masked in the queue")
    distance: float | None
    decided_at: datetime | None
    decision_reason: str | None


class SupportReviewDetail(SupportReviewOut):
    """A manual review with everything needed to decide it."""

    id_photo_id: int
    selfie_photo_id: int
    identity: IdentityFacts


class SupportAppealOut(BaseModel):
    """An appeal in the support queue, with the facts both sides gave."""

    id: int
    kind: str
    status: str
    created_at: datetime
    due_at: datetime
    overdue: bool
    appellant_phone: str
    name: str | None
    id_number: str | None
    candidate_number: str | None
    message: str
    holder: IdentityFacts | None
    decided_at: datetime | None
    decision_reason: str | None
