"""Personal data at rest: authenticated encryption and keyed blind indexes (SPEC §8).

ID numbers are stored encrypted (AES-256-GCM) and found through an HMAC-SHA256 "blind
index", so an equality lookup or a unique constraint works without the clear number ever
reaching the database. Both keys are derived from `VEXAM_DATA_KEY` with HKDF, each for its
own purpose, so one leaked derived key says nothing about the other.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from functools import cache

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

_VERSION = b"\x01"
_NONCE_BYTES = 12


class DecryptionError(ValueError):
    """A stored value was not made with this data key, or was altered."""


@cache
def _derive(data_key: str, purpose: str) -> bytes:
    return HKDF(
        algorithm=hashes.SHA256(), length=32, salt=None, info=f"vexam:{purpose}:v1".encode()
    ).derive(data_key.encode())


# Built once per data key, not per value: a bulk import encrypts and indexes a million
# numbers, and building the cipher or re-keying the HMAC each time cost as much as the work.
@cache
def _aead(data_key: str) -> AESGCM:
    return AESGCM(_derive(data_key, "pii-encryption"))


@cache
def _index_mac(data_key: str) -> hmac.HMAC:
    return hmac.new(_derive(data_key, "blind-index"), digestmod=hashlib.sha256)


def encrypt_text(data_key: str, plain: str, *, context: str) -> str:
    """AES-256-GCM ciphertext of `plain` as ASCII text; `context` binds it to its column."""
    nonce = secrets.token_bytes(_NONCE_BYTES)
    sealed = _aead(data_key).encrypt(nonce, plain.encode(), context.encode())
    return base64.urlsafe_b64encode(_VERSION + nonce + sealed).decode("ascii")


def decrypt_text(data_key: str, stored: str, *, context: str) -> str:
    """The clear text of `encrypt_text` output; `DecryptionError` if key or context differ."""
    try:
        raw = base64.urlsafe_b64decode(stored.encode("ascii"))
    except (ValueError, UnicodeEncodeError):
        raise DecryptionError("not an encrypted value") from None
    if raw[:1] != _VERSION or len(raw) < 1 + _NONCE_BYTES + 16:
        raise DecryptionError("unknown format")
    try:
        plain = _aead(data_key).decrypt(
            raw[1 : 1 + _NONCE_BYTES], raw[1 + _NONCE_BYTES :], context.encode()
        )
    except InvalidTag:
        raise DecryptionError("wrong key or altered value") from None
    return plain.decode()


def blind_index(data_key: str, value: str, *, kind: str) -> str:
    """The keyed hash (64 hex characters) by which an encrypted `value` of `kind` is found."""
    mac = _index_mac(data_key).copy()  # a copy keyed already; the cached one never changes
    mac.update(f"{kind}:{value}".encode())
    return mac.hexdigest()
