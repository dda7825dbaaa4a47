"""External identity registers: a pluggable check of name + ID number (SPEC §3).

A real deployment plugs in a class that asks an authoritative register (and may return the
register's portrait for the face comparison). The built-in `FormatOnlyRegister` checks the
number's format only and never has a portrait. A mismatch sends the candidate to manual
review with the register's reason (household moved, name changed and not yet synced, ...).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Literal, Protocol

from vexam.config import Settings
from vexam.identity.idnumbers import IdNumberError, parse_id_number

RegisterStatus = Literal["match", "mismatch", "unavailable"]


@dataclass(frozen=True)
class RegisterCheck:
    """What the register said; `portrait` is a JPEG when the register has one."""

    status: RegisterStatus
    reason: str | None = None
    portrait: bytes | None = None


class IdRegister(Protocol):
    """Checks a name and document number against an authoritative register."""

    async def check(self, name: str, document_type: str, number: str) -> RegisterCheck:
        """Compare; raise only for a fault worth retrying (the candidate then retries)."""
        ...


class FormatOnlyRegister:
    """The default: resident and temporary ID numbers must be well-formed; nothing else."""

    async def check(self, name: str, document_type: str, number: str) -> RegisterCheck:
        """`match` for a well-formed number (other documents are not checked here)."""
        if document_type in ("resident_id", "temporary_id"):
            try:
                parse_id_number(number)
            except IdNumberError as exc:
                return RegisterCheck("mismatch", f"format_{exc.reason.value}")
        return RegisterCheck("match")


def register_from_settings(settings: Settings) -> IdRegister:
    """`format` (default) or `package.module:ClassName` of a register taking the settings."""
    name = settings.id_register
    if name == "format":
        return FormatOnlyRegister()
    module_name, _, attribute = name.partition(":")
    if not attribute:
        raise ValueError(f"VEXAM_ID_REGISTER must be format or module:Class, not {name!r}")
    register: IdRegister = getattr(importlib.import_module(module_name), attribute)(settings)
    return register
