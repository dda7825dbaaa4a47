"""SMS codes: issue with resend and daily limits (per phone, client IP and device), verify once
with a bounded number of tries."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError

from vexam.accounts.models import SmsCode, SmsThrottle
from vexam.accounts.phones import mask_phone
from vexam.core import audit
from vexam.core.context import Ctx
from vexam.core.errors import CountedRefusal, VexamError

SEND_SMS_JOB = "accounts.send_sms"
SENT_ACTION = "sms_code.sent"
DAY = timedelta(hours=24)


class Purpose(StrEnum):
    """What a code may be used for; a code for one purpose never works for another."""

    register = "register"
    login = "login"
    reset = "reset"


@dataclass(frozen=True)
class CodeSent:
    """When the code expires and when another may be requested."""

    expires_at: datetime
    resend_at: datetime


def _code_hash(secret_key: str, phone: str, purpose: str, code: str) -> str:
    message = f"{phone}|{purpose}|{code}".encode()
    return hmac.new(secret_key.encode(), message, hashlib.sha256).hexdigest()


def seconds_until(now: datetime, at: datetime) -> int:
    """Whole seconds from `now` to `at`, rounded up and at least 1 (a Retry-After value)."""
    return max(1, int((at - now).total_seconds() + 0.999))


def _rate_limited(now: datetime, retry_at: datetime, **extra: Any) -> VexamError:
    wait = seconds_until(now, retry_at)
    return VexamError("sms_rate_limited", retry_at=retry_at, retry_after_s=wait, **extra)


async def _check_daily_caps(ctx: Ctx, phone: str, now: datetime) -> None:
    settings = ctx.settings
    since = now - DAY
    windows = [("phone", SmsCode.phone == phone, settings.sms_daily_cap_per_phone)]
    if ctx.client_ip:
        windows.append(("ip", SmsCode.client_ip == ctx.client_ip, settings.sms_daily_cap_per_ip))
    counted = [
        (
            scope,
            cap,
            select(func.count(), func.min(SmsCode.created_at)).where(
                condition, SmsCode.created_at > since
            ),
        )
        for scope, condition, cap in windows
    ]
    if ctx.device_id:
        # The device of each send is in its audit entry (sms_codes rows do not carry it).
        sent = audit.AuditEntry
        counted.append(
            (
                "device",
                settings.sms_daily_cap_per_device,
                select(func.count(), func.min(sent.at)).where(
                    sent.action == SENT_ACTION, sent.device_id == ctx.device_id, sent.at > since
                ),
            )
        )
    for scope, cap, query in counted:
        count, oldest = (await ctx.session.execute(query)).one()
        if count >= cap:
            # Rolling 24 hours: the next slot opens when the oldest send leaves the window.
            retry_at = oldest + DAY if oldest else now + DAY
            raise _rate_limited(now, retry_at, limit="daily", scope=scope)


async def _claim_send_slot(ctx: Ctx, phone: str, now: datetime) -> None:
    """Take the phone's resend slot atomically; `sms_rate_limited` if it was taken < 60 s ago."""
    resend = timedelta(seconds=ctx.settings.sms_resend_seconds)
    claimed = await ctx.session.execute(
        update(SmsThrottle)
        .where(SmsThrottle.phone == phone, SmsThrottle.last_sent_at <= now - resend)
        .values(last_sent_at=now)
    )
    if claimed.rowcount == 1:  # type: ignore[attr-defined]
        return
    existing = await ctx.session.get(SmsThrottle, phone, populate_existing=True)
    if existing is None:
        try:
            async with ctx.session.begin_nested():
                ctx.session.add(SmsThrottle(phone=phone, last_sent_at=now))
        except IntegrityError:
            # Another request claimed the first slot at the same moment.
            raise _rate_limited(now, now + resend, limit="resend") from None
        return
    raise _rate_limited(now, existing.last_sent_at + resend, limit="resend")


async def issue_code(ctx: Ctx, phone: str, purpose: Purpose) -> CodeSent:
    """Create a 6-digit code for `phone` and queue the SMS; limits are enforced first."""
    now = ctx.now()
    await _check_daily_caps(ctx, phone, now)
    await _claim_send_slot(ctx, phone, now)
    code = f"{secrets.randbelow(1_000_000):06d}"
    expires_at = now + timedelta(seconds=ctx.settings.sms_code_ttl_seconds)
    row = SmsCode(
        phone=phone,
        purpose=purpose.value,
        code_hash=_code_hash(ctx.settings.secret_key, phone, purpose.value, code),
        created_at=now,
        expires_at=expires_at,
        client_ip=ctx.client_ip,
    )
    ctx.session.add(row)
    await ctx.session.flush()
    await audit.record(ctx, SENT_ACTION, "phone", mask_phone(phone), purpose=purpose.value)
    # The code travels only in the job payload: never in a log line or the audit detail.
    ctx.enqueue(
        SEND_SMS_JOB, {"phone": phone, "code": code, "purpose": purpose.value, "locale": ctx.locale}
    )
    return CodeSent(
        expires_at=expires_at, resend_at=now + timedelta(seconds=ctx.settings.sms_resend_seconds)
    )


async def consume_code(ctx: Ctx, phone: str, purpose: Purpose, code: str) -> None:
    """Accept the latest code for (phone, purpose) once; count wrong entries (5 kill it)."""
    now = ctx.now()
    limit = ctx.settings.sms_max_wrong_attempts
    row = (
        await ctx.session.execute(
            select(SmsCode)
            .where(SmsCode.phone == phone, SmsCode.purpose == purpose.value)
            .order_by(SmsCode.created_at.desc(), SmsCode.id.desc())
            .limit(1)
        )
    ).scalar_one_or_none()
    if row is None or row.consumed_at is not None or row.wrong_attempts >= limit:
        raise VexamError("sms_code_invalid", attempts_left=0)
    if now >= row.expires_at:
        raise VexamError("sms_code_expired")
    expected = _code_hash(ctx.settings.secret_key, phone, purpose.value, code.strip())
    if not hmac.compare_digest(expected, row.code_hash):
        counted = await ctx.session.execute(
            update(SmsCode)
            .where(SmsCode.id == row.id, SmsCode.wrong_attempts < limit)
            .values(wrong_attempts=SmsCode.wrong_attempts + 1)
            .returning(SmsCode.wrong_attempts)
        )
        used = counted.scalar_one_or_none()
        raise CountedRefusal("sms_code_invalid", attempts_left=max(0, limit - (used or limit)))
    # Single use, decided by the database: of two concurrent uses only one matches this row.
    taken = await ctx.session.execute(
        update(SmsCode)
        .where(SmsCode.id == row.id, SmsCode.consumed_at.is_(None), SmsCode.wrong_attempts < limit)
        .values(consumed_at=now)
    )
    if taken.rowcount != 1:  # type: ignore[attr-defined]
        raise VexamError("sms_code_invalid", attempts_left=0)
