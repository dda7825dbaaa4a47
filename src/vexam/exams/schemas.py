"""Request and response bodies of exam setup (SPEC §4)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

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
DEFAULT_MIN_OS = {"android": "7", "harmonyos": "2", "ios": "10"}


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
