"""What a web process remembers of the uploads it served, for the PATCH fast lane.

The full tus routes (`upload_api`) establish, with the database, who a token belongs to and
which upload it may write; they note both here. The fast lane (`upload_lane`) then takes the
PATCHes in the middle of that upload without asking the database again. Nothing here is a
record: entries are bounded in number, a signed-in session is trusted for `PRINCIPAL_TTL`
only (so a sign-out or a blocked account stops the lane within that time), and anything
missing sends the request down the full route.

The same principal memory spares every other request its session lookup (`core.auth`):
remembered at authentication, forgotten as soon as this process commits a change to a
session or an account (`forget_principals`), so only other processes' sign-outs and
blocks take up to `PRINCIPAL_TTL` to reach it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime

from vexam.core.auth import SESSION_TRUST_S
from vexam.core.context import Principal

PRINCIPAL_TTL_S = SESSION_TRUST_S
MAX_ENTRIES = 50_000


@dataclass(frozen=True)
class KnownUpload:
    """The facts of an upload that never change while it is receiving."""

    user_id: int
    length: int
    expires_at: datetime


class UploadMemory:
    """Per-process memory of candidates' sessions and their uploads (see the module)."""

    def __init__(self, ttl_s: float = PRINCIPAL_TTL_S) -> None:
        self.ttl_s = ttl_s
        # token hash → (monotonic time, principal, service-clock time) when confirmed
        self._principals: dict[str, tuple[float, Principal, datetime | None]] = {}
        self._uploads: dict[str, KnownUpload] = {}
        self.served = 0  # PATCHes the fast lane answered (tests and operators read it)

    def remember(
        self, token_hash: str | None, principal: Principal, upload_id: str, upload: KnownUpload
    ) -> None:
        """Note that the session `token_hash` is `principal`, owner of `upload_id`."""
        if len(self._uploads) >= MAX_ENTRIES:
            self._uploads.clear()
        self._uploads[upload_id] = upload
        if token_hash is not None:
            self.remember_principal(token_hash, principal)

    def remember_principal(
        self, token_hash: str, principal: Principal, now: datetime | None = None
    ) -> None:
        """Note that the session `token_hash` is `principal`, confirmed at service time `now`."""
        if len(self._principals) >= MAX_ENTRIES:
            self._principals.clear()
        self._principals[token_hash] = (time.monotonic(), principal, now)

    def principal(self, token_hash: str, now: datetime | None = None) -> Principal | None:
        """The principal of a session confirmed less than `ttl_s` ago, else None.

        Given the service clock's `now`, an entry confirmed at another service time more
        than `ttl_s` away is not trusted either (an injected clock moved past an expiry).
        """
        held = self._principals.get(token_hash)
        if held is None:
            return None
        stale = time.monotonic() - held[0] > self.ttl_s
        if not stale and now is not None and held[2] is not None:
            stale = abs((now - held[2]).total_seconds()) > self.ttl_s
        if stale:
            self._principals.pop(token_hash, None)
            return None
        return held[1]

    def forget_principals(self) -> None:
        """Trust no remembered session any more (a session or an account changed)."""
        self._principals.clear()

    def upload(self, upload_id: str) -> KnownUpload | None:
        """The facts of a receiving upload this process has served, else None."""
        return self._uploads.get(upload_id)

    def forget(self, upload_id: str) -> None:
        """Drop an upload (terminated, finished or expired)."""
        self._uploads.pop(upload_id, None)
