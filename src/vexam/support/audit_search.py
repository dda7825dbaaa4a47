"""The audit-log search of support and operators (SPEC §3, §7, §8).

A candidate is found by phone (normalised, searched exactly), by ID number (turned into its
blind index at once: the number itself is neither stored, shown nor logged) or by account
id. Entries are those the candidate made and those about the candidate's account, identities,
manual reviews, appeals and support tickets. What leaves this module is masked: phones and ID
numbers in the details are replaced by their masked forms.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import and_, or_, select

from vexam.accounts import service as accounts
from vexam.core import audit
from vexam.core.audit import AuditEntry
from vexam.core.context import Ctx
from vexam.identity import decisions
from vexam.identity.idnumbers import mask_id_number, normalise_id_number
from vexam.identity.service import index_of
from vexam.support.models import SupportTicket

PAGE_SIZE = 50
_PHONE_IN_TEXT = re.compile(r"(?<!\d)1[3-9]\d{9}(?!\d)")
_ID_IN_TEXT = re.compile(r"(?<![0-9A-Za-z])\d{17}[\dXx](?![0-9A-Za-z])|(?<!\d)\d{15}(?!\d)")
# Keys whose values are identifiers whatever they look like.
_SECRET_KEYS = {"id_number", "document_number", "password", "code", "token"}


@dataclass(frozen=True)
class AuditRow:
    """One entry as support sees it."""

    id: int
    at: datetime
    actor_user_id: int | None
    actor_role: str | None
    action: str
    subject_type: str
    subject_id: str
    client_ip: str | None
    device_id: str | None
    detail: dict[str, Any]


@dataclass
class AuditPage:
    """One page of results, newest first; `found` is False when nobody matched."""

    rows: list[AuditRow] = field(default_factory=list)
    page: int = 1
    has_more: bool = False
    found: bool = False
    phone_masked: str | None = None


def mask_value(key: str, value: Any) -> Any:
    """`value` with every phone and ID number it carries masked (nested values too)."""
    if isinstance(value, dict):
        return {k: mask_value(str(k), v) for k, v in value.items()}
    if isinstance(value, list):
        return [mask_value(key, v) for v in value]
    if not isinstance(value, str):
        return value
    if key in _SECRET_KEYS:
        return mask_id_number(value) if key in {"id_number", "document_number"} else "***"
    text = _ID_IN_TEXT.sub(lambda m: mask_id_number(m.group(0)), value)
    return _PHONE_IN_TEXT.sub(lambda m: accounts.mask_phone(m.group(0)), text)


_INDEX_RE = re.compile(r"^[0-9a-f]{64}$")


def id_index(ctx: Ctx, id_number: str) -> str:
    """The blind index an ID number is searched by (identity's own), never the number."""
    return index_of(ctx, normalise_id_number(id_number))


async def search(
    ctx: Ctx,
    *,
    phone: str = "",
    id_number_index: str = "",
    user_id: int | None = None,
    page: int = 1,
) -> AuditPage:
    """The entries about one candidate, newest first, `PAGE_SIZE` per page.

    `id_number_index` is the `id_index` of an ID number (anything else matches nothing).

    Without any criterion nothing is found; `phone_invalid` for a malformed phone. Several
    criteria widen the search (any of them matches).
    """
    page = max(page, 1)
    result = AuditPage(page=page)
    users: set[int] = set()
    if phone.strip():
        number = accounts.normalise_phone(phone)
        result.phone_masked = accounts.mask_phone(number)
        user = await accounts.user_by_phone(ctx.session, number)
        if user is not None:
            users.add(user.id)
    if user_id is not None:
        users.add(user_id)
    index = id_number_index if _INDEX_RE.match(id_number_index) else None
    users, subjects = await decisions.audit_subjects(ctx, user_ids=users, id_index=index)
    if users:  # and the candidates' support tickets (answers and closings by agents)
        tickets = await ctx.session.execute(
            select(SupportTicket.id).where(SupportTicket.user_id.in_(users))
        )
        subjects.update(("support_ticket", str(ticket_id)) for ticket_id in tickets.scalars())
    if page == 1:
        # Reading someone's trail is itself kept: who looked, for whom, by which criteria.
        await audit.record(
            ctx,
            "audit.searched",
            "audit_log",
            "search",
            phone=result.phone_masked,
            by_id_number=index is not None,
            user_id=user_id,
            found=sorted(users),
        )
    if not users:
        return result
    result.found = True
    by_subject = [
        and_(AuditEntry.subject_type == kind, AuditEntry.subject_id == ident)
        for kind, ident in sorted(subjects)
    ]
    query = (
        select(AuditEntry)
        .where(or_(AuditEntry.actor_user_id.in_(users), *by_subject))
        .order_by(AuditEntry.at.desc(), AuditEntry.id.desc())
        .offset((page - 1) * PAGE_SIZE)
        .limit(PAGE_SIZE + 1)
    )
    entries = list((await ctx.session.execute(query)).scalars())
    result.has_more = len(entries) > PAGE_SIZE
    result.rows = [
        AuditRow(
            id=entry.id,
            at=entry.at,
            actor_user_id=entry.actor_user_id,
            actor_role=entry.actor_role,
            action=entry.action,
            subject_type=entry.subject_type,
            subject_id=mask_value("subject_id", entry.subject_id),
            client_ip=entry.client_ip,
            device_id=entry.device_id,
            detail=mask_value("", entry.detail or {}),
        )
        for entry in entries[:PAGE_SIZE]
    ]
    return result
