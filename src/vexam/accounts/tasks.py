"""Jobs of the accounts domain."""

from __future__ import annotations

from typing import Any

from vexam.accounts.codes import SEND_SMS_JOB
from vexam.accounts.sms import SmsSender
from vexam.core.context import Ctx
from vexam.core.i18n import LOCALES, N_, gettext
from vexam.core.jobs import JobHandler

SMS_TEXT = N_(
    "[vexam] Your verification code is {code}. It is valid for {minutes} minutes. Never share it."
)


async def send_sms(ctx: Ctx, payload: dict[str, Any]) -> None:
    """Deliver a code by SMS in the requester's language (at least once: a retry may resend)."""
    sender: SmsSender = ctx.extra["sms_sender"]
    locale = payload.get("locale") if payload.get("locale") in LOCALES else "zh_CN"
    minutes = max(1, ctx.settings.sms_code_ttl_seconds // 60)
    text = gettext(str(locale), SMS_TEXT).format(code=payload["code"], minutes=minutes)
    await sender.send(payload["phone"], text)


JOBS: dict[str, JobHandler] = {SEND_SMS_JOB: send_sms}
