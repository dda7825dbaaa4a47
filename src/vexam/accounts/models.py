"""Tables of the accounts domain."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from vexam.core.models import Base, BigId, CreatedMixin, IdMixin, UTCDateTime


class User(IdMixin, CreatedMixin, Base):
    """An account. The phone number *is* the account (a parent's phone is fine)."""

    __tablename__ = "users"

    phone: Mapped[str] = mapped_column(String(11), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(32), default="candidate")
    # Staff belong to one school; candidates and platform staff to none.
    school_id: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("schools.id", ondelete="RESTRICT"), index=True
    )
    display_name: Mapped[str | None] = mapped_column(String(100))
    locale: Mapped[str | None] = mapped_column(String(8))
    is_active: Mapped[bool] = mapped_column(default=True)
    failed_logins: Mapped[int] = mapped_column(default=0)
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime())
    password_changed_at: Mapped[datetime] = mapped_column(UTCDateTime())


class SmsCode(IdMixin, CreatedMixin, Base):
    """One SMS code sent to a phone for one purpose; stored as a keyed hash only."""

    __tablename__ = "sms_codes"
    __table_args__ = (
        Index("ix_sms_codes_phone_purpose_created", "phone", "purpose", "created_at"),
        Index("ix_sms_codes_client_ip_created", "client_ip", "created_at"),
    )

    phone: Mapped[str] = mapped_column(String(11))
    purpose: Mapped[str] = mapped_column(String(16))
    code_hash: Mapped[str] = mapped_column(String(64))
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    wrong_attempts: Mapped[int] = mapped_column(default=0)
    consumed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    client_ip: Mapped[str | None] = mapped_column(String(64))


class SmsThrottle(Base):
    """Last send per phone: the database decides the 60-second resend rule atomically."""

    __tablename__ = "sms_throttle"

    phone: Mapped[str] = mapped_column(String(11), primary_key=True)
    last_sent_at: Mapped[datetime] = mapped_column(UTCDateTime())


class AuthSession(IdMixin, CreatedMixin, Base):
    """A signed-in device: an opaque token (stored hashed) bound to a device id."""

    __tablename__ = "auth_sessions"
    __table_args__ = (UniqueConstraint("token_hash"),)

    user_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    token_hash: Mapped[str] = mapped_column(String(64))
    device_id: Mapped[str | None] = mapped_column(String(128))
    user_agent: Mapped[str | None] = mapped_column(String(300))
    client_ip: Mapped[str | None] = mapped_column(String(64))
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class PlatformPolicyRow(Base):
    """The platform policy an operator saved (one row, id 1); absent: the settings' defaults.
    Read through `vexam.core.policy.PolicyCache`, never per request."""

    __tablename__ = "platform_policy"

    id: Mapped[int] = mapped_column(primary_key=True)
    min_client_version: Mapped[str] = mapped_column(String(32))
    device_classes: Mapped[list[str]] = mapped_column(JSON)
    min_os: Mapped[dict[str, str]] = mapped_column(JSON)
    support_hours_start: Mapped[str] = mapped_column(String(5))
    support_hours_end: Mapped[str] = mapped_column(String(5))
    support_sla_minutes: Mapped[int]
    updated_by: Mapped[int | None]
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
