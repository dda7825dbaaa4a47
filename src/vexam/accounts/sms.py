"""SMS senders: one interface; the console sender for local use, a gateway class in production."""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Protocol

from vexam.accounts.phones import mask_phone
from vexam.config import Settings


class SmsSender(Protocol):
    """Delivers one text message to one mainland mobile number."""

    async def send(self, phone: str, text: str) -> None:
        """Send `text` to `phone`; raise to have the job retried."""
        ...


class ConsoleSmsSender:
    """Prints messages to the server console: for local use only (refused in production)."""

    async def send(self, phone: str, text: str) -> None:
        """Print the message with a masked phone number."""
        print(f"[vexam SMS → {mask_phone(phone)}] {text}", flush=True)


@dataclass
class MemorySmsSender:
    """Keeps messages in a list: for tests and development tooling."""

    outbox: list[tuple[str, str]] = field(default_factory=list)

    async def send(self, phone: str, text: str) -> None:
        """Append (phone, text) to the outbox."""
        self.outbox.append((phone, text))


def sender_from_settings(settings: Settings) -> SmsSender:
    """`console`, `memory`, or `package.module:ClassName` of a gateway taking the settings."""
    name = settings.sms_sender
    if name == "console":
        return ConsoleSmsSender()
    if name == "memory":
        return MemorySmsSender()
    module_name, _, attribute = name.partition(":")
    if not attribute:
        raise ValueError(f"VEXAM_SMS_SENDER must be console, memory or module:Class, not {name!r}")
    gateway_class = getattr(importlib.import_module(module_name), attribute)
    sender: SmsSender = gateway_class(settings)
    return sender
