"""Request and response bodies of support tickets (candidates' apps and the support side)."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field, field_validator

from vexam.support.models import BODY_MAX, SUBJECT_MAX

# What a question is about: the help centre's sections, or something else.
Topic = Literal["account", "identity", "apply", "exam", "upload", "device", "other"]
TicketState = Literal["open", "answered", "closed"]
Side = Literal["candidate", "support"]
# Control characters a person does not type (PostgreSQL also refuses NUL in text).
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def _text(value: str) -> str:
    """`value` trimmed; refused when under 2 characters or holding control characters."""
    value = value.strip()
    if len(value) < 2:
        raise ValueError("too short")
    if _CONTROL.search(value):
        raise ValueError("control characters are not allowed")
    return value


class MessageIn(BaseModel):
    """A message to add to a ticket (2 to 2000 characters)."""

    body: str = Field(min_length=2, max_length=BODY_MAX)

    @field_validator("body", mode="after")
    @classmethod
    def _body(cls, value: str) -> str:
        return _text(value)


class TicketIn(MessageIn):
    """Ask support a question: its topic, a subject line and the first message."""

    topic: Topic = "other"
    subject: str = Field(min_length=2, max_length=SUBJECT_MAX)

    @field_validator("subject", mode="after")
    @classmethod
    def _one_line(cls, value: str) -> str:
        return _text(" ".join(value.split()))


class MessageOut(BaseModel):
    """One message of the thread; `side` says who wrote it (names of agents are not shown)."""

    id: int
    side: Side
    body: str
    created_at: datetime


class TicketOut(BaseModel):
    """A ticket as a list shows it: `due_at` is set while support owes an answer."""

    id: int
    topic: str
    subject: str
    state: TicketState
    created_at: datetime
    updated_at: datetime
    due_at: datetime | None
    overdue: bool = Field(description="support's answer is late")
    user_id: int
    phone: str | None = Field(default=None, description="masked; support's lists only")


class TicketDetail(TicketOut):
    """A ticket with its whole thread, oldest message first."""

    messages: list[MessageOut]
