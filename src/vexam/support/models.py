"""Support tickets: a candidate's general questions and the thread with support (SPEC §7)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import CheckConstraint, ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from vexam.core.models import Base, BigId, CreatedMixin, IdMixin, UTCDateTime

# Longest subject line and message body a ticket keeps (the schemas refuse longer ones).
SUBJECT_MAX = 120
BODY_MAX = 2000


class SupportTicket(IdMixin, CreatedMixin, Base):
    """One question of a candidate: `open` (support owes an answer by `due_at`), `answered`
    (the candidate's turn; no due time) or `closed` (final)."""

    __tablename__ = "support_tickets"
    __table_args__ = (
        Index("ix_support_tickets_state_due", "state", "due_at"),
        CheckConstraint("state IN ('open', 'answered', 'closed')", name="state"),
    )

    user_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    topic: Mapped[str] = mapped_column(String(16))
    subject: Mapped[str] = mapped_column(String(SUBJECT_MAX))
    state: Mapped[str] = mapped_column(String(16))
    due_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class SupportTicketMessage(IdMixin, CreatedMixin, Base):
    """One message of a ticket's thread, from the candidate's or support's side."""

    __tablename__ = "support_ticket_messages"
    __table_args__ = (CheckConstraint("side IN ('candidate', 'support')", name="side"),)

    ticket_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("support_tickets.id", ondelete="CASCADE"), index=True
    )
    # No foreign key: a message outlives the staff account that wrote it.
    author_user_id: Mapped[int] = mapped_column(BigId)
    side: Mapped[str] = mapped_column(String(16))
    body: Mapped[str] = mapped_column(Text)
