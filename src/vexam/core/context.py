"""What a service call knows besides its arguments: session, clock, actor, client."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from sqlalchemy.ext.asyncio import AsyncSession

from vexam.config import Settings
from vexam.core.clock import Clock
from vexam.core.db import after_commit
from vexam.core.i18n import N_

if TYPE_CHECKING:
    from vexam.core.jobs import JobQueue
    from vexam.core.storage import BlobStore


class Role(StrEnum):
    """Who an account is on the platform (SPEC §0)."""

    candidate = "candidate"
    school_admin = "school_admin"
    reviewer = "reviewer"
    support = "support"
    operator = "operator"

    @property
    def label(self) -> str:
        """The role's English name (a msgid: translate it for display)."""
        return ROLE_LABELS[self]


ROLE_LABELS = {
    Role.candidate: N_("Candidate"),
    Role.school_admin: N_("School admin"),
    Role.reviewer: N_("Reviewer"),
    Role.support: N_("Support agent"),
    Role.operator: N_("Platform operator"),
}


@dataclass(frozen=True)
class Principal:
    """The signed-in account behind a request."""

    user_id: int
    role: Role
    school_id: int | None
    locale: str | None
    session_id: int
    masked_phone: str


@dataclass
class Ctx:
    """Everything a service needs from its caller; services flush, never commit."""

    session: AsyncSession
    clock: Clock
    settings: Settings
    jobs: JobQueue
    actor: Principal | None = None
    client_ip: str | None = None
    device_id: str | None = None
    locale: str = "zh_CN"
    extra: dict[str, Any] = field(default_factory=dict)
    store: BlobStore | None = None

    @property
    def blobs(self) -> BlobStore:
        """The blob store (present in requests and jobs; absent only in bare CLI contexts)."""
        if self.store is None:
            raise RuntimeError("no blob store in this context")
        return self.store

    def now(self) -> datetime:
        """The injected clock's current UTC instant."""
        return self.clock.now()

    def enqueue(self, job: str, payload: dict[str, Any]) -> None:
        """Queue `job` once this unit of work commits; it is dropped on rollback."""
        jobs = self.jobs

        async def _enqueue() -> None:
            await jobs.enqueue(job, payload)

        after_commit(self.session, _enqueue)
