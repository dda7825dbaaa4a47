"""Request and response bodies of exam setup (SPEC §4)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from vexam.core import policy

EVENT_KINDS = (
    "phone_call",
    "left_page",
    "screen_locked",
    "screen_recording",
    "screenshot",
    "app_crash",
)
EVENT_ACTIONS = ("void_attempt", "fail_exam", "flag")
DEVICE_CLASSES = ("phone", "tablet", "desktop")
OS_NAMES = ("android", "harmonyos", "ios")
DEFAULT_MIN_OS = dict(policy.DEFAULT_MIN_OS)


class Criterion(BaseModel):
    """One scored criterion of a subject's rubric."""

    name: str = Field(max_length=100)
    max_points: float


class Rubric(BaseModel):
    """How reviewers score a subject (used by review later)."""

    criteria: list[Criterion] = Field(default_factory=list, max_length=30)
    step: float = 0.5


class SubjectIn(BaseModel):
    """A subject's settings; checked by the service with a clear code per broken rule."""

    name: str = Field(max_length=200)
    name_en: str | None = Field(default=None, max_length=200)
    attempts: int = 2
    max_seconds: int = 300
    prompt: str = Field(default="", max_length=5000)
    camera: Literal["front", "back", "either"] = "either"
    orientation: Literal["landscape", "portrait", "choice"] = "choice"
    face_check_seconds: int = Field(default=60, description="0: only at the start")
    mock_face_checks: Literal["real", "walkthrough"] = "walkthrough"
    rubric: Rubric = Field(default_factory=Rubric)


class DevicePolicy(BaseModel):
    """Which devices may take the formal exam, and the oldest OS versions allowed."""

    allowed_classes: list[str] = Field(default_factory=lambda: ["phone"])
    min_os: dict[str, str] = Field(default_factory=lambda: dict(DEFAULT_MIN_OS))


class ExamIn(BaseModel):
    """An exam's settings and its subjects, in order."""

    code: str = Field(max_length=64, examples=["piano-2027"])
    name: str = Field(max_length=200)
    name_en: str | None = Field(default=None, max_length=200)
    season: str = Field(max_length=8, examples=["2027"])
    formal_starts_at: datetime
    formal_ends_at: datetime
    upload_grace_minutes: int = 24 * 60
    mock_enabled: bool = True
    mock_limit: int | None = None
    fee_cents: int = 0
    device_policy: DevicePolicy = Field(default_factory=DevicePolicy)
    anti_cheat: dict[str, str] = Field(
        default_factory=dict, description="event kind → void_attempt | fail_exam | flag"
    )
    published: bool = False
    subjects: list[SubjectIn] = Field(max_length=30)


class SubjectOut(SubjectIn):
    """A stored subject."""

    id: int
    position: int


class ExamOut(BaseModel):
    """A stored exam with its effective policies."""

    id: int
    school_id: int
    code: str
    name: str
    name_en: str | None
    season: str
    formal_starts_at: datetime
    formal_ends_at: datetime
    upload_ends_at: datetime
    upload_grace_minutes: int
    mock_enabled: bool
    mock_limit: int | None
    fee_cents: int
    device_policy: dict[str, Any]
    anti_cheat: dict[str, str]
    published: bool
    subjects: list[SubjectOut]


class CatalogEntry(BaseModel):
    """A published exam a candidate can apply for."""

    exam_id: int
    school_id: int
    school_name: str
    school_name_en: str | None
    exam_name: str
    exam_name_en: str | None
    formal_starts_at: datetime
    formal_ends_at: datetime
    fee_cents: int
    timezone: str


class ApplyIn(BaseModel):
    """Apply for an exam: the province where you sit the gaokao (高考省份)."""

    province: str = Field(max_length=16, examples=["北京", "11"])


class OrderOut(BaseModel):
    """A payment order; `pay_url` while it is unpaid."""

    id: int
    exam_id: int
    amount_cents: int
    currency: str
    status: Literal["pending", "paid", "refunded"]
    provider: str
    pay_url: str | None
    paid_at: datetime | None
    refunded_at: datetime | None


class ApplicationOut(BaseModel):
    """An application: the matched roster data, payment, and whether the mock exam is open."""

    exam_id: int
    exam_name: str
    status: Literal["matched", "enrolled"]
    name: str
    province: str
    candidate_number: str | None
    major: str | None
    enrolled_at: datetime | None
    fee_cents: int
    payment: OrderOut | None
    mock: Literal["open", "not_enrolled", "payment_required", "not_offered"]
    mock_limit: int | None


class RefundIn(BaseModel):
    """Refund a paid order, with the reason for the audit log."""

    reason: str = Field(min_length=2, max_length=2000)


class AccommodationIn(BaseModel):
    """What one candidate is granted beyond the exam's settings, and why (all zero: remove)."""

    extra_attempts: int = Field(0, description="added to every subject's attempts")
    extra_seconds: int = Field(0, description="added to every subject's recording limit")
    window_ends_at: datetime | None = Field(
        None, description="a later end of the formal window for this candidate"
    )
    reason: str = Field(max_length=500, examples=["右手骨折，医院证明已存档"])


class AccommodationOut(BaseModel):
    """An accommodation and whose roster row it is (ID number masked)."""

    roster_row_id: int
    name: str
    id_number_masked: str
    candidate_number: str | None
    extra_attempts: int
    extra_seconds: int
    window_ends_at: datetime | None
    reason: str
    updated_at: datetime


# ------------------------------------------------------------------ taking an exam (SPEC §5)

SittingMode = Literal["formal", "mock"]
FaceResult = Literal["passed", "walkthrough", "no_reference", "face_not_found", "face_mismatch"]
SHA256_PATTERN = r"^[0-9a-fA-F]{64}$"
MAX_VIDEO_BYTES = 20 * 1024**3


class SittingIn(BaseModel):
    """Start (or continue) the formal sitting, or start a new mock sitting."""

    mode: SittingMode = "formal"
    handover: bool = Field(
        False, description="take the exam over from the candidate's other device (it is ended)"
    )


class DeviceCheckIn(BaseModel):
    """What the device reports about itself before the exam (judged by the device policy)."""

    device_class: Literal["phone", "tablet", "desktop"]
    os_name: Literal["android", "harmonyos", "ios", "windows", "macos", "linux", "other"]
    os_version: str = Field(max_length=32, examples=["14", "17.4.1"])
    camera: bool = Field(description="camera permission granted")
    microphone: bool = Field(description="microphone permission granted")
    free_bytes: int = Field(ge=0, description="free storage on the device")
    upload_kbps: int = Field(ge=0, description="measured upload speed")


class DeviceCheckOut(BaseModel):
    """The device check's verdict and what the candidate should know."""

    id: int
    device_id: str
    allowed: bool
    warnings: list[str]


class FaceCheckOut(BaseModel):
    """A face verification (before recording) or check frame (during), as judged."""

    result: FaceResult
    passed: bool
    distance: float | None
    consecutive_failures: int = 0
    recording_state: Literal["recording", "completed", "voided"] | None = None
    face_check_required: bool = False


class RecordingIn(BaseModel):
    """Start a recording of a subject (consumes one attempt)."""

    orientation: Literal["landscape", "portrait"] | None = Field(
        None, description="required where the subject lets the candidate choose"
    )
    handover: bool = False


class CompleteIn(BaseModel):
    """Stop a recording; the client may state the file's length."""

    duration_seconds: float | None = Field(None, ge=0)


class RecordingOut(BaseModel):
    """One recording attempt of a subject."""

    id: int
    subject_id: int
    attempt: int
    state: Literal["recording", "completed", "voided"]
    void_reason: str | None
    orientation: Literal["landscape", "portrait"]
    max_seconds: int
    started_at: datetime
    ends_by: datetime
    finished_at: datetime | None
    duration_seconds: float | None
    flags: list[str]
    device_id: str


class EventIn(BaseModel):
    """An interruption or prohibited action the client observed, with its own clock."""

    kind: Literal[
        "phone_call", "left_page", "screen_locked", "screen_recording", "screenshot", "app_crash"
    ]
    client_at: datetime | None = None
    recording_id: int | None = None
    detail: dict[str, str] = Field(default_factory=dict, max_length=10)


class EventOut(BaseModel):
    """The kept event and what the exam's policy did about it."""

    id: int
    kind: str
    action: Literal["void_attempt", "fail_exam", "flag"]
    server_at: datetime
    voided_recording_ids: list[int]
    sitting_failed: bool


class SubmissionIn(BaseModel):
    """Hand in one completed recording of a subject, declaring its file's SHA-256 and size."""

    recording_id: int
    sha256: str = Field(pattern=SHA256_PATTERN)
    size_bytes: int = Field(gt=0, le=MAX_VIDEO_BYTES)


class SubmissionReceipt(BaseModel):
    """The receipt a candidate keeps: what was submitted, when, on the server's clock."""

    submission_id: int
    sitting_id: int
    subject_id: int
    recording_id: int
    sha256: str
    size_bytes: int
    submitted_at: datetime
    # pending | received | verified | invalid | hash_mismatch
    upload_state: str
    upload_id: str | None = Field(default=None, description="the newest tus upload")
    upload_offset: int = Field(default=0, description="bytes the server holds")
    upload_error: str | None = Field(
        default=None, description="upload_checksum_mismatch or recording_invalid"
    )
    upload_media: dict[str, Any] | None = Field(
        default=None, description="what the media check found (container, codecs, duration)"
    )
    media_state: Literal["pending", "running", "done", "failed"] | None = Field(
        default=None,
        description="the media jobs after verification (poster, face audit, playback copy)",
    )
    media_flags: int | None = Field(
        default=None, description="face audit flags for the reviewers (never a failure)"
    )
    poster_available: bool = Field(default=False, description="a poster frame was extracted")


class SubjectStatus(BaseModel):
    """One subject of a sitting: attempts, recordings, the submission and its state."""

    subject_id: int
    position: int
    name: str
    name_en: str | None
    camera: str
    orientation: Literal["landscape", "portrait", "choice"]
    prompt: str = Field(default="", description="the question text shown while recording")
    max_seconds: int
    face_check_seconds: int
    attempts_allowed: int
    attempts_used: int
    attempts_left: int
    state: Literal[
        "not_started", "recording", "ready_to_submit", "exhausted", "submitted", "absent"
    ]
    recordings: list[RecordingOut]
    submission: SubmissionReceipt | None


class SittingOut(BaseModel):
    """The whole state of one sitting, as the candidate and the school see it."""

    id: int
    exam_id: int
    exam_name: str
    mode: SittingMode
    number: int
    reviewable: bool
    state: Literal["open", "failed"]
    failed_reason: str | None
    window_starts_at: datetime
    window_ends_at: datetime
    upload_ends_at: datetime
    window: Literal["not_open", "open", "closed", "always"]
    device_id: str | None
    face_state: str
    face_verified_on_this_device: bool
    face_check_required: bool
    device_checked_on_this_device: bool
    flags: list[str]
    warnings: list[str]
    subjects: list[SubjectStatus]
    next_step: Literal[
        "verify_face", "check_device", "record", "submit", "done", "failed", "closed", "not_open"
    ]
