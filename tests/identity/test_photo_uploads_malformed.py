"""Issue 10 'bad input' for photo uploads: oversized, empty, non-image, truncated and
decompression-bomb pictures and malformed multipart bodies are refused with a catalogue
code, never a 5xx."""

from __future__ import annotations

import struct
import zlib

import pytest

from tests.identity.conftest import jpeg

pytestmark = pytest.mark.usefixtures("app")


def bomb_png(width: int = 20000, height: int = 20000) -> bytes:
    """A valid 1-bit PNG of `width`×`height` zero pixels: about 48 KB on the wire, 400 million
    pixels once decoded (Pillow refuses it with DecompressionBombError)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    row = b"\x00" * (1 + (width + 7) // 8)
    packer = zlib.compressobj(9)
    pixels = b"".join(packer.compress(row) for _ in range(height)) + packer.flush()
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")
    )


async def test_bad_id_photos_are_refused_with_codes(app, client, candidate) -> None:
    """Each bad picture gets its code: 413 `image_too_large` past the limit, 422
    `image_invalid` for empty, non-image and bomb files (a bomb was a 500), 422
    `id_photo_unclear` for a picture that opens but cannot be read."""
    who = await candidate()
    app.state.settings.id_photo_max_bytes = 64 * 1024
    good = jpeg()
    cases = [
        ("too large", b"\xff\xd8" + b"\x00" * (64 * 1024), 413, {"image_too_large"}),
        ("empty", b"", 422, {"image_invalid"}),
        ("text", b"not a picture at all", 422, {"image_invalid"}),
        ("bomb", bomb_png(), 422, {"image_invalid"}),
        ("truncated", good[: len(good) // 3], 422, {"image_invalid", "id_photo_unclear"}),
        ("png magic only", b"\x89PNG\r\n\x1a\n", 422, {"image_invalid"}),
    ]
    for label, data, status, codes in cases:
        response = await client.post(
            "/api/v1/identity/id-photo", files={"file": ("card.jpg", data)}, headers=who
        )
        assert response.status_code == status, (label, response.text)
        assert response.json()["code"] in codes, (label, response.text)


async def test_malformed_multipart_is_invalid_request(client, candidate) -> None:
    """A body that is not the multipart form the route declares: `invalid_request`."""
    who = await candidate()
    for content_type, body in [
        ("multipart/form-data; boundary=xyz", b"--abc\r\nnot a part\r\n--abc--\r\n"),
        ("multipart/form-data", b"--\r\n"),
        ("application/json", b'{"file": "x"}'),
        ("multipart/form-data; boundary=xyz", b"--xyz\r\nContent-Disposition: form-data"),
    ]:
        response = await client.post(
            "/api/v1/identity/id-photo",
            content=body,
            headers={**who, "Content-Type": content_type},
        )
        assert response.status_code == 422, (content_type, body, response.text)
        assert response.json()["code"] == "invalid_request"
    no_file = await client.post(
        "/api/v1/identity/id-photo",
        data={"read": "true"},
        files={"other": ("x", b"1")},
        headers=who,
    )
    assert (no_file.status_code, no_file.json()["code"]) == (422, "invalid_request")
