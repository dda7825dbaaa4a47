"""SPEC §8: ID numbers encrypted at rest and found by a keyed blind index."""

from __future__ import annotations

import pytest

from vexam.core.crypto import DecryptionError, blind_index, decrypt_text, encrypt_text

KEY = "k" * 40


def test_round_trip_and_fresh_nonce() -> None:
    """Encryption is reversible with the key and never repeats a ciphertext."""
    first = encrypt_text(KEY, "11010119491231002X", context="identity.id_number")
    second = encrypt_text(KEY, "11010119491231002X", context="identity.id_number")
    assert first != second
    assert "11010119491231002X" not in first
    assert decrypt_text(KEY, first, context="identity.id_number") == "11010119491231002X"


def test_wrong_key_context_or_tampering_is_refused() -> None:
    """A ciphertext opens only with its key and column context, and unaltered."""
    sealed = encrypt_text(KEY, "secret", context="a")
    with pytest.raises(DecryptionError):
        decrypt_text("j" * 40, sealed, context="a")
    with pytest.raises(DecryptionError):
        decrypt_text(KEY, sealed, context="b")
    # Flip a character inside the sealed bytes (the last ones may be base64 padding bits).
    tampered = sealed[:20] + ("A" if sealed[20] != "A" else "B") + sealed[21:]
    with pytest.raises(DecryptionError):
        decrypt_text(KEY, tampered, context="a")
    with pytest.raises(DecryptionError):
        decrypt_text(KEY, "not base64 at all!", context="a")


def test_blind_index_is_keyed_and_stable() -> None:
    """The same number gives the same index under one key, another under another key."""
    one = blind_index(KEY, "11010119491231002X", kind="id_number")
    assert one == blind_index(KEY, "11010119491231002X", kind="id_number")
    assert one != blind_index("j" * 40, "11010119491231002X", kind="id_number")
    assert one != blind_index(KEY, "11010119491231002X", kind="other")
    assert len(one) == 64
