"""Issue 10 'bad input' for the tus endpoint: malformed and oversized creations and PATCHes
are refused with their catalogue code, never a 5xx, and never change what the server holds.

tests/uploads/test_tus_protocol.py covers the protocol's ordinary refusals (no Tus-Resumable,
a wrong offset or checksum, a body past the length, a missing length or metadata); these are
the hostile spellings of the same headers: signs, fractions, non-ASCII digits, numbers past
64 bits, garbled base64 and checksums, and headers of 64 KiB.
"""

from __future__ import annotations

import base64

import pytest

from tests.exams.test_sittings import device
from tests.uploads.conftest import OFFSET_STREAM, TUS, b64, create_upload, patch, submitted_with
from vexam.exams.schemas import MAX_VIDEO_BYTES

pytestmark = pytest.mark.usefixtures("app")

HUGE = "9" * 40  # past 64 bits
GIANT = "a" * 65536  # a 64 KiB header value
# Spellings of a byte count that are not one. Header bytes are read as Latin-1: b"\xb2" is
# "²", a digit to str.isdigit but not to int; "٣" arrives as its UTF-8 bytes.
NOT_NUMBERS: list[str | bytes] = [
    "-5",
    "+5",
    "abc",
    "",
    " ",
    "1.5",
    "1e3",
    "0x10",
    b"\xb2",
    "٣".encode(),
    HUGE,
    GIANT,
]


def b64bytes(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def refused(response, status: int, code: str) -> str | None:
    """What is wrong with `response` as the refusal `status`/`code`, or None (`code` may
    name alternatives: "a|b")."""
    if response.status_code >= 500:
        return f"server error {response.status_code}: {response.text[:200]}"
    if response.status_code != status:
        return f"status {response.status_code} instead of {status}: {response.text[:200]}"
    if response.headers.get("content-type", "").split(";")[0] != "application/problem+json":
        return f"not a problem document: {response.headers.get('content-type')}"
    if response.json().get("code") not in code.split("|"):
        return f"code {response.json().get('code')} instead of {code}"
    return None


async def test_malformed_creations_are_refused_with_codes(
    app, client, inbox, new_phone, world
) -> None:
    """Every bad Upload-Length, Upload-Metadata, Upload-Checksum and Tus-Resumable spelling
    gets its 4xx code; a length past the server's maximum is 413 `upload_too_large` naming
    the maximum; and after all of them an ordinary creation still works."""
    data = bytes(range(256)) * 4
    sub = await submitted_with(app, client, inbox, new_phone, world, data)
    meta = sub.create_headers()["Upload-Metadata"]
    cases: list[tuple[str, dict[str, str | bytes], int, str]] = [
        (f"Upload-Length {v!r}", {"Upload-Length": v}, 400, "upload_length_required")
        for v in NOT_NUMBERS
    ]
    cases += [
        ("length past the maximum", {"Upload-Length": "9" * 19}, 413, "upload_too_large"),
        ("Tus-Resumable 0.2.2", {"Tus-Resumable": "0.2.2"}, 412, "tus_version_unsupported"),
        ("giant Tus-Resumable", {"Tus-Resumable": GIANT}, 412, "tus_version_unsupported"),
    ]
    bad_ids = ["abc", "-1", "1.5", "²", HUGE, GIANT, ""]
    cases += [
        (
            f"submission_id {v!r}",
            {"Upload-Metadata": f"submission_id {b64(v)}"},
            400,
            "upload_metadata_invalid",
        )
        for v in bad_ids
    ]
    cases += [
        (
            f"Upload-Metadata {label}",
            {"Upload-Metadata": value},
            400,
            "upload_metadata_invalid",
        )
        for label, value in [
            ("not base64", "submission_id ***"),
            ("base64 without padding", "submission_id " + b64("12")[:-1]),
            ("not UTF-8", "submission_id " + b64bytes(b"\xff\xfe\xfd")),
            ("giant", f"submission_id {GIANT}"),
            ("only commas", ",,,"),
        ]
    ]
    cases += [
        (
            "unknown submission",
            {"Upload-Metadata": f"submission_id {b64('987654321')}"},
            404,
            "submission_not_found",
        ),
        ("Upload-Checksum md5", {"Upload-Checksum": "md5 AAAA"}, 400, "upload_checksum_algorithm"),
        ("Upload-Checksum empty", {"Upload-Checksum": ""}, 400, "upload_checksum_algorithm"),
        ("Upload-Checksum giant", {"Upload-Checksum": GIANT}, 400, "upload_checksum_algorithm"),
    ]
    cases += [
        (f"Upload-Checksum {v!r}", {"Upload-Checksum": v}, 400, "upload_checksum_invalid")
        for v in [
            "sha256",
            "sha256 ",
            "sha256 !!",
            "sha256 " + b64bytes(b"x" * 31),
            "sha256 " + GIANT,
        ]
    ]
    problems = []
    for label, headers, status, code in cases:
        response = await client.post("/api/v1/uploads", headers={**sub.create_headers(), **headers})
        if (wrong := refused(response, status, code)) is not None:
            problems.append(f"{label}: {wrong}")
    giant_auth = await client.post(
        "/api/v1/uploads",
        headers={**sub.create_headers(), "Authorization": "Bearer " + GIANT},
    )
    if (wrong := refused(giant_auth, 401, "not_authenticated")) is not None:
        problems.append(f"giant Authorization: {wrong}")
    assert not problems, "\n".join(problems)
    too_large = await create_upload(client, sub, **{"Upload-Length": str(2**40)})
    assert too_large.json()["max_bytes"] == app.state.settings.upload_max_bytes < 2**40
    assert (await create_upload(client, sub, **{"Upload-Metadata": meta})).status_code == 201


async def test_malformed_patches_are_refused_and_keep_the_bytes(
    app, client, inbox, new_phone, world
) -> None:
    """Every bad Upload-Offset, Upload-Checksum, content type and upload address is refused
    with its code, whether the PATCH would have gone the fast lane or the full route, and the
    server still holds exactly the bytes it had; then the upload completes byte-exact."""
    data = bytes(range(256)) * 4
    sub = await submitted_with(app, client, inbox, new_phone, world, data)
    created = await create_upload(client, sub)
    assert created.status_code == 201, created.text
    location = created.headers["location"]
    first = await patch(client, sub, location, 0, data[:100])
    assert first.status_code == 204, first.text
    stream = {**sub.who, **TUS, **OFFSET_STREAM}

    cases: list[tuple[str, str, dict[str, str | bytes], bytes, int, str]] = [
        (f"Upload-Offset {v!r}", location, {"Upload-Offset": v}, b"x", 400, "upload_offset_invalid")
        for v in NOT_NUMBERS
    ]
    cases += [
        (f"Upload-Checksum {v!r}", location, {"Upload-Checksum": v}, data[100:200], 400, code)
        for v, code in [
            ("sha256", "upload_checksum_invalid"),
            ("sha256 !!", "upload_checksum_invalid"),
            ("sha256 " + b64bytes(b"x" * 31), "upload_checksum_invalid"),
            ("sha256 " + GIANT, "upload_checksum_invalid"),
            ("", "upload_checksum_algorithm"),
            ("crc32 AAAA", "upload_checksum_algorithm"),
        ]
    ]
    cases += [
        (
            f"Content-Type {v!r}",
            location,
            {"Content-Type": v},
            data[100:200],
            415,
            "upload_content_type",
        )
        for v in ["application/json", "application/octet-stream", "", GIANT]
    ]
    cases += [
        (
            "Tus-Resumable 2.0.0",
            location,
            {"Tus-Resumable": "2.0.0"},
            data[100:200],
            412,
            "tus_version_unsupported",
        ),
        (
            "past the declared length",
            location,
            {},
            data[100:] + b"more",
            413,
            "upload_exceeds_length",
        ),
        (
            "offset past the length",
            location,
            {"Upload-Offset": "999999"},
            b"x",
            413,
            "upload_exceeds_length",
        ),
    ]
    for label, address in [
        ("unknown id", "/api/v1/uploads/" + "0" * 32),
        ("giant id", "/api/v1/uploads/" + "f" * 4096),
        ("dotted id", "/api/v1/uploads/..%2F..%2Fetc%2Fpasswd"),
        ("non-ASCII id", "/api/v1/uploads/" + "%C3%A9" * 16),
    ]:
        # An address the upload routes do not match at all is the generic not_found.
        cases.append((label, address, {}, data[100:200], 404, "upload_not_found|not_found"))
    problems = []
    for label, address, headers, body, status, code in cases:
        response = await client.patch(
            address, content=body, headers={**stream, "Upload-Offset": "100", **headers}
        )
        if (wrong := refused(response, status, code)) is not None:
            problems.append(f"{label}: {wrong}")
        head = await client.head(location, headers={**sub.who, **TUS})
        if head.headers.get("upload-offset") != "100":
            problems.append(f"{label}: the offset moved to {head.headers.get('upload-offset')}")
    assert not problems, "\n".join(problems)

    rest = await patch(client, sub, location, 100, data[100:])
    assert rest.status_code == 204, rest.text
    await app.state.queue.drain()


async def test_declared_size_past_the_maximum_is_refused(
    app, client, inbox, new_phone, world
) -> None:
    """A submission cannot declare a recording larger than the largest video accepted
    (invalid_request on size_bytes), nor of a size that is not a whole positive number."""
    data = b"v" * 64
    sub = await submitted_with(app, client, inbox, new_phone, world, data)
    # The subject is submitted already: the size check must come first.
    view = await client.get(f"/api/v1/sittings/{sub.sitting_id}", headers=sub.who)
    subject_id = view.json()["subjects"][0]["subject_id"]
    for size in [MAX_VIDEO_BYTES + 1, 0, -1, 10**30, "12abc", 1.5]:
        response = await client.post(
            f"/api/v1/sittings/{sub.sitting_id}/subjects/{subject_id}/submission",
            json={"recording_id": 1, "sha256": "0" * 64, "size_bytes": size},
            headers={**sub.who, **device("a")},
        )
        assert response.status_code == 422, (size, response.text)
        errors = response.json()["errors"]
        assert ["body", "size_bytes"] in [error["loc"] for error in errors], (size, errors)
