"""Argon2id password hashing (off the event loop) and the password policy."""

from __future__ import annotations

import asyncio
from functools import cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from vexam.config import Settings
from vexam.core.errors import VexamError

MAX_PASSWORD_LENGTH = 128


@cache
def _hasher(time_cost: int, memory_kib: int) -> PasswordHasher:
    return PasswordHasher(time_cost=time_cost, memory_cost=memory_kib, parallelism=1)


def hasher(settings: Settings) -> PasswordHasher:
    """The Argon2id hasher configured by `settings`."""
    return _hasher(settings.argon2_time_cost, settings.argon2_memory_kib)


@cache
def _dummy_hash(time_cost: int, memory_kib: int) -> str:
    return _hasher(time_cost, memory_kib).hash("vexam-timing-equaliser")


def check_password_policy(password: str, phone: str, settings: Settings) -> None:
    """`password_too_weak` unless long enough, not the phone number, not one repeated symbol."""
    weak = (
        len(password) < settings.password_min_length
        or len(password) > MAX_PASSWORD_LENGTH
        or phone in password
        or len(set(password)) < 3
    )
    if weak:
        raise VexamError("password_too_weak", min_length=settings.password_min_length)


async def hash_password(password: str, settings: Settings) -> str:
    """Argon2id hash of `password`, computed in a worker thread."""
    return await asyncio.to_thread(hasher(settings).hash, password)


async def verify_password(stored: str | None, password: str, settings: Settings) -> bool:
    """Whether `password` matches `stored`; with no stored hash, spend the same time and fail."""
    ph = hasher(settings)
    target = stored or _dummy_hash(settings.argon2_time_cost, settings.argon2_memory_kib)

    def _verify() -> bool:
        try:
            return ph.verify(target, password) and stored is not None
        except (VerificationError, InvalidHashError):
            return False

    return await asyncio.to_thread(_verify)


def needs_rehash(stored: str, settings: Settings) -> bool:
    """Whether a stored hash predates the current cost settings."""
    return hasher(settings).check_needs_rehash(stored)
