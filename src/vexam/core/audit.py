"""Append-only audit log: every state change, with actor, time, client IP and device id."""

from __future__ import annotations

from datetime import datetime
from typing import Any, cast

from sqlalchemy import JSON, String, Table
from sqlalchemy.orm import Mapped, mapped_column

from vexam.core.context import Ctx
from vexam.core.models import Base, IdMixin, UTCDateTime


class AuditEntry(IdMixin, Base):
    """One state change. The database refuses UPDATE and DELETE on this table (triggers)."""

    __tablename__ = "audit_log"

    at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    # No foreign key: the log must outlive and never block changes to the rows it names.
    actor_user_id: Mapped[int | None] = mapped_column(index=True)
    actor_role: Mapped[str | None] = mapped_column(String(32))
    action: Mapped[str] = mapped_column(String(64), index=True)
    subject_type: Mapped[str] = mapped_column(String(32))
    subject_id: Mapped[str] = mapped_column(String(64))
    client_ip: Mapped[str | None] = mapped_column(String(64))
    device_id: Mapped[str | None] = mapped_column(String(128))
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


_INSERT = cast(Table, AuditEntry.__table__).insert()


async def record(
    ctx: Ctx,
    action: str,
    subject_type: str,
    subject_id: int | str,
    *,
    actor_user_id: int | None = None,
    actor_role: str | None = None,
    **detail: Any,
) -> None:
    """Append one entry; the actor defaults to the signed-in principal of `ctx`.

    The session's pending changes are flushed first, so their errors surface here, before
    the entry is written. `detail` must never carry secrets, codes or unmasked ID numbers.
    """
    actor = ctx.actor
    await ctx.session.flush()
    # A prepared Core INSERT, not an ORM object and its flush: most writes record an entry,
    # and the object's flush was a measurable part of a lean request's CPU.
    await ctx.session.execute(
        _INSERT,
        {
            "at": ctx.now(),
            "actor_user_id": actor_user_id
            if actor_user_id is not None
            else (actor and actor.user_id),
            "actor_role": actor_role or (actor.role.value if actor else None),
            "action": action,
            "subject_type": subject_type,
            "subject_id": str(subject_id),
            "client_ip": ctx.client_ip,
            "device_id": ctx.device_id,
            "detail": detail,
        },
    )
