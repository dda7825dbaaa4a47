"""The platform policy an operator sets (SPEC §2, §3, §7): minimum client version, the device
rules a new exam starts from, support's service hours and review deadline.

Settings give the defaults; a policy the operator stored (table `platform_policy`, read by
`vexam.accounts.policy`) overrides them. No request reads the table: each process keeps a
snapshot in a `PolicyCache` (one per app or worker, in `ctx.extra`), read synchronously by
`current_policy`. The snapshot is refreshed

- at once in the process that saved a change (after its commit), and
- from the database at most every `ttl` seconds (default 30) by any process: web processes
  refresh on their requests (the client version gate asks before it answers), and async
  code reading through `policy_now(ctx)` refreshes a stale snapshot in its own session.

So another web process sees an operator's change within `ttl` seconds of its next request.
A worker process only refreshes when its code calls `policy_now`: a job that needs the
latest policy (none does today) calls it before reading.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from vexam.config import Settings
from vexam.core.context import Ctx

log = logging.getLogger(__name__)

RESOURCE = "platform_policy"
DEFAULT_TTL_SECONDS = 30.0
# SPEC §2: phones only, with these oldest system versions, unless the operator changes them.
DEFAULT_DEVICE_CLASSES = ("phone",)
DEFAULT_MIN_OS = {"android": "7", "harmonyos": "2", "ios": "10"}


@dataclass(frozen=True)
class PlatformPolicy:
    """The policy in force; `stored` says whether an operator saved it (else defaults)."""

    min_client_version: str
    device_classes: tuple[str, ...]
    min_os: Mapping[str, str]
    support_hours_start: str
    support_hours_end: str
    support_sla_minutes: int
    stored: bool = False

    @classmethod
    def defaults(cls, settings: Settings) -> PlatformPolicy:
        """The policy the settings and SPEC give when no operator has saved one."""
        return cls(
            min_client_version=settings.min_client_version,
            device_classes=DEFAULT_DEVICE_CLASSES,
            min_os=dict(DEFAULT_MIN_OS),
            support_hours_start=settings.support_hours_start,
            support_hours_end=settings.support_hours_end,
            support_sla_minutes=settings.support_sla_minutes,
        )


Reader = Callable[[AsyncSession], Awaitable[PlatformPolicy | None]]


class PolicyCache:
    """One process's snapshot of the platform policy (see the module docstring)."""

    def __init__(
        self,
        settings: Settings,
        read: Reader | None = None,
        *,
        ttl: float = DEFAULT_TTL_SECONDS,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.defaults = PlatformPolicy.defaults(settings)
        self.read = read
        self.ttl = ttl
        self.monotonic = monotonic
        self._current = self.defaults
        self._loaded_at: float | None = None
        self._refreshing = False

    def current(self) -> PlatformPolicy:
        """The snapshot (never touches the database)."""
        return self._current

    @property
    def stale(self) -> bool:
        """Whether the snapshot is older than the TTL (or was never loaded)."""
        loaded = self._loaded_at
        return loaded is None or self.monotonic() - loaded >= self.ttl

    def put(self, policy: PlatformPolicy | None) -> None:
        """Replace the snapshot (None: back to the defaults); it is fresh for `ttl` seconds."""
        self._current = policy if policy is not None else self.defaults
        self._loaded_at = self.monotonic()

    async def refresh_in(self, session: AsyncSession) -> PlatformPolicy:
        """The snapshot, first reloaded through `session` if it is stale."""
        if self.read is None or not self.stale or self._refreshing:
            return self._current
        self._refreshing = True  # concurrent requests keep the old snapshot meanwhile
        try:
            self.put(await self.read(session))
        except Exception:  # a failed read keeps the last policy; retried after the TTL
            log.warning("platform policy: reload failed, keeping the last one", exc_info=True)
            self._loaded_at = self.monotonic()
        finally:
            self._refreshing = False
        return self._current

    async def refresh_from(self, sessions: Callable[[], AsyncSession]) -> PlatformPolicy:
        """Like `refresh_in`, opening a short session of its own only when stale."""
        if self.read is None or not self.stale or self._refreshing:
            return self._current
        async with sessions() as session:
            return await self.refresh_in(session)


def policy_cache(extra: Mapping[str, Any]) -> PolicyCache | None:
    """The process's cache among a context's resources (None in bare contexts)."""
    found = extra.get(RESOURCE)
    return found if isinstance(found, PolicyCache) else None


def current_policy(settings: Settings, extra: Mapping[str, Any]) -> PlatformPolicy:
    """The snapshot in force for a context with `settings` and resources `extra` (sync)."""
    cache = policy_cache(extra)
    return cache.current() if cache is not None else PlatformPolicy.defaults(settings)


async def policy_now(ctx: Ctx) -> PlatformPolicy:
    """The policy in force, the snapshot first reloaded through the context's session when
    it is older than the TTL (async code, e.g. a job in a worker, should prefer this)."""
    cache = policy_cache(ctx.extra)
    if cache is None:
        return PlatformPolicy.defaults(ctx.settings)
    return await cache.refresh_in(ctx.session)
