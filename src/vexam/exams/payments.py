"""Payment providers: one interface; a signed sandbox for local use and tests (SPEC §4).

A real gateway (WeChat Pay, Alipay, UnionPay) is one class with the same methods, named by
`VEXAM_PAYMENT_PROVIDER=package.module:Class` and built with the settings. Callbacks are
authenticated by the provider's signature before anything is read from them.
"""

from __future__ import annotations

import hashlib
import hmac
import importlib
import json
from dataclasses import dataclass
from typing import Any, Protocol

from vexam.config import Settings

SANDBOX = "sandbox"
SIGNATURE_HEADER = "x-sandbox-signature"


class InvalidCallback(ValueError):
    """A callback that is not signed by the provider, or not understood."""


@dataclass(frozen=True)
class Checkout:
    """Where and how the candidate pays an order."""

    provider: str
    pay_url: str


@dataclass(frozen=True)
class PaidEvent:
    """A provider's word that an order was paid (one event id, however often delivered)."""

    event_id: str
    order_id: int
    amount_cents: int
    trade_no: str


class PaymentProvider(Protocol):
    """A payment gateway."""

    name: str

    def checkout(self, order_id: int, amount_cents: int) -> Checkout:
        """How the candidate pays `order_id`."""
        ...

    def parse_callback(self, headers: dict[str, str], body: bytes) -> PaidEvent:
        """Verify and read a callback; `InvalidCallback` unless the provider signed it."""
        ...

    async def refund(self, order_id: int, trade_no: str, amount_cents: int) -> None:
        """Give the money back; raise if the gateway refuses (nothing is changed then)."""
        ...


class SandboxProvider:
    """Pretend gateway: callbacks are HMAC-SHA256 signed with a key derived from the secret."""

    name = SANDBOX

    def __init__(self, secret_key: str) -> None:
        self._key = hashlib.sha256(f"vexam:sandbox-payments:{secret_key}".encode()).digest()

    def checkout(self, order_id: int, amount_cents: int) -> Checkout:
        """The sandbox 'pays' when the candidate confirms on this address."""
        return Checkout(SANDBOX, f"/api/v1/payments/sandbox/orders/{order_id}/pay")

    def sign(self, body: bytes) -> str:
        """The signature the sandbox gateway puts on a callback body."""
        return hmac.new(self._key, body, hashlib.sha256).hexdigest()

    def callback_body(self, event: PaidEvent) -> bytes:
        """The JSON the sandbox gateway sends for `event`."""
        payload: dict[str, Any] = {
            "event_id": event.event_id,
            "order_id": event.order_id,
            "amount_cents": event.amount_cents,
            "trade_no": event.trade_no,
            "status": "paid",
        }
        return json.dumps(payload, sort_keys=True).encode()

    def parse_callback(self, headers: dict[str, str], body: bytes) -> PaidEvent:
        """Check the signature first, then read the event."""
        sent = headers.get(SIGNATURE_HEADER, "")
        if not sent or not hmac.compare_digest(sent, self.sign(body)):
            raise InvalidCallback("bad signature")
        try:
            data = json.loads(body)
            if data.get("status") != "paid":
                raise InvalidCallback("not a payment")
            return PaidEvent(
                event_id=str(data["event_id"])[:64],
                order_id=int(data["order_id"]),
                amount_cents=int(data["amount_cents"]),
                trade_no=str(data["trade_no"])[:64],
            )
        except (ValueError, KeyError, TypeError):
            raise InvalidCallback("malformed") from None

    async def refund(self, order_id: int, trade_no: str, amount_cents: int) -> None:
        """The sandbox always refunds."""


def provider_from_settings(settings: Settings) -> PaymentProvider:
    """`sandbox` (default) or `package.module:Class` of a gateway taking the settings."""
    name = settings.payment_provider
    if name == SANDBOX:
        return SandboxProvider(settings.secret_key)
    module_name, _, attribute = name.partition(":")
    if not attribute:
        raise ValueError(f"VEXAM_PAYMENT_PROVIDER must be sandbox or module:Class, not {name!r}")
    provider: PaymentProvider = getattr(importlib.import_module(module_name), attribute)(settings)
    return provider
