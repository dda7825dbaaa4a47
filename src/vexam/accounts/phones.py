"""Mainland mobile numbers: normalise, validate, mask."""

from __future__ import annotations

import re
import unicodedata

from vexam.core.errors import VexamError

PHONE_RE = re.compile(r"^1[3-9]\d{9}$")
_SEPARATORS = re.compile(r"[\s\-()]")


def normalise_phone(raw: str) -> str:
    """'+86 138-0013-8000' or full-width digits → '13800138000'; `phone_invalid` otherwise."""
    value = _SEPARATORS.sub("", unicodedata.normalize("NFKC", raw or ""))
    for prefix in ("+86", "0086"):
        if value.startswith(prefix):
            value = value[len(prefix) :]
    if not PHONE_RE.match(value):
        raise VexamError("phone_invalid")
    return value


def mask_phone(phone: str) -> str:
    """'13812341234' → '138****1234' (how a phone is shown to anyone but its owner)."""
    return f"{phone[:3]}****{phone[-4:]}" if len(phone) == 11 else "***"
