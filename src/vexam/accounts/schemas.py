"""Request and response bodies of the accounts API."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from vexam.accounts.codes import Purpose
from vexam.core.context import Role


class SmsCodeRequest(BaseModel):
    """Ask for an SMS code."""

    phone: str = Field(max_length=32, examples=["13800138000"])
    purpose: Purpose


class SmsCodeSent(BaseModel):
    """A code is on its way."""

    expires_at: datetime
    resend_at: datetime


class RegisterRequest(BaseModel):
    """Register with phone, SMS code and password."""

    phone: str = Field(max_length=32)
    code: str = Field(max_length=16)
    password: str = Field(max_length=256)
    locale: Literal["zh_CN", "en"] | None = None


class PasswordLogin(BaseModel):
    """Sign in with phone and password."""

    phone: str = Field(max_length=32)
    password: str = Field(max_length=256)


class CodeLogin(BaseModel):
    """Sign in with phone and a login SMS code."""

    phone: str = Field(max_length=32)
    code: str = Field(max_length=16)


class PasswordReset(BaseModel):
    """Set a new password with a reset SMS code."""

    phone: str = Field(max_length=32)
    code: str = Field(max_length=16)
    new_password: str = Field(max_length=256)


class UserOut(BaseModel):
    """An account as its owner sees it (the phone is masked even here: it is the login)."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    phone: str
    role: str
    school_id: int | None
    display_name: str | None
    locale: str | None


class TokenOut(BaseModel):
    """A new session token: send it as `Authorization: Bearer <token>`."""

    token: str
    token_type: Literal["bearer"] = "bearer"  # noqa: S105 - a scheme name
    expires_at: datetime
    session_id: int
    device_id: str | None
    user: UserOut


class ProfileUpdate(BaseModel):
    """Change language or display name."""

    locale: Literal["zh_CN", "en"] | None = None
    display_name: str | None = Field(default=None, max_length=100)


class SessionOut(BaseModel):
    """One signed-in device."""

    id: int
    device_id: str | None
    user_agent: str | None
    client_ip: str | None
    created_at: datetime
    last_seen_at: datetime
    expires_at: datetime
    current: bool


class StaffIn(BaseModel):
    """A new staff account: school admin or reviewer of a school, support agent or operator."""

    phone: str = Field(max_length=32, examples=["13900139000"])
    role: Literal[Role.school_admin, Role.reviewer, Role.support, Role.operator]
    school_id: int | None = Field(None, ge=1, le=2**63 - 1)  # a row id: 64 bits
    display_name: str | None = Field(None, max_length=100)
    password: str | None = Field(
        None,
        max_length=256,
        description="initial password; omit it and the staff member sets one by SMS reset",
    )


class StaffOut(BaseModel):
    """A staff account (phone masked)."""

    id: int
    phone: str
    role: Role
    school_id: int | None
    display_name: str | None
    is_active: bool
    created_at: datetime


class StaffActiveIn(BaseModel):
    """Deactivate or reactivate a staff account, with the reason for the audit log."""

    active: bool
    reason: str = Field(min_length=2, max_length=500)
