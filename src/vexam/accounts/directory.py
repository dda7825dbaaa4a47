"""Finding accounts by phone for the consoles, and showing phones masked (SPEC §8)."""

from __future__ import annotations

import re
from collections.abc import Collection

from sqlalchemy import ColumnElement, select
from sqlalchemy.ext.asyncio import AsyncSession

from vexam.accounts.models import User
from vexam.accounts.phones import mask_phone

# A whole phone number, or one as the consoles show it masked: 138****1234.
FULL_PHONE = re.compile(r"1[3-9]\d{9}")
MASKED_PHONE = re.compile(r"(1[3-9]\d)\*{4}(\d{4})")


def is_phone_query(text: str) -> bool:
    """Whether `text` is a whole or masked phone number."""
    text = text.strip()
    return bool(FULL_PHONE.fullmatch(text) or MASKED_PHONE.fullmatch(text))


async def user_ids_for_phone(session: AsyncSession, text: str) -> list[int]:
    """Accounts with that phone: the one with a whole number, all matching a masked one."""
    text = text.strip()
    masked = MASKED_PHONE.fullmatch(text)
    condition: ColumnElement[bool]
    if masked:
        # Digits only in the pattern: no LIKE wildcard can come from the user.
        condition = User.phone.like(f"{masked.group(1)}____{masked.group(2)}")
    elif FULL_PHONE.fullmatch(text):
        condition = User.phone == text
    else:
        return []
    return list((await session.scalars(select(User.id).where(condition))).all())


async def masked_phones(session: AsyncSession, user_ids: Collection[int]) -> dict[int, str]:
    """The masked phone of each account, by id (one query)."""
    if not user_ids:
        return {}
    found = await session.execute(select(User.id, User.phone).where(User.id.in_(list(user_ids))))
    return {user_id: mask_phone(phone) for user_id, phone in found}
