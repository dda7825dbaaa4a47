"""The PATCH fast lane (exams.upload_lane): mid-upload PATCHes of an upload this process
served are answered without the database, with the same answers as the full route, and
anything it cannot vouch for goes down the full route."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy.exc import TimeoutError as PoolTimeout

from tests.exams.test_sittings import WINDOW_END, candidate_for, new_exam
from tests.helpers import app_ctx
from tests.uploads.conftest import (
    OFFSET_STREAM,
    TUS,
    Submitted,
    create_upload,
    patch,
    patches_counted,
    sha256_header,
    submitted_with,
)
from vexam.exams import uploads
from vexam.exams.models import Upload
from vexam.exams.upload_memory import UploadMemory

pytestmark = pytest.mark.usefixtures("app")


def memory(app) -> UploadMemory:
    held: UploadMemory = app.state.upload_memory
    return held


async def row(app, location: str) -> Upload:
    async with app_ctx(app) as ctx:
        found = await ctx.session.get(Upload, location.rsplit("/", 1)[1])
        assert found is not None
        return found


async def test_mid_upload_and_last_patches_take_the_lane(app, client, inbox, new_phone, world):
    """After the creation, every PATCH of the upload is the lane's, counted by the metrics
    under the PATCH route; the last one settles the upload as the full route would
    (received, hash kept, media check queued)."""
    data = bytes(range(256)) * 30
    sub = await submitted_with(app, client, inbox, new_phone, world, data)
    location = (await create_upload(client, sub)).headers["location"]
    before, counted = memory(app).served, patches_counted(app, "204")
    for offset in range(0, len(data), 2000):
        part = data[offset : offset + 2000]
        answered = await patch(client, sub, location, offset, part)
        assert answered.status_code == 204, answered.text
        assert answered.headers["upload-offset"] == str(offset + len(part))
        assert answered.headers["tus-resumable"] == "1.0.0"
        last = offset + len(part) == len(data)
        assert ("upload-expires" in answered.headers) is not last
    assert memory(app).served - before == 4
    assert patches_counted(app, "204") - counted == 4
    settled = await row(app, location)
    assert settled.state in ("received", "verified") and settled.received == len(data)
    again = await patch(client, sub, location, 0, data[:10])
    assert again.status_code == 409 and again.headers["upload-offset"] == str(len(data))


async def test_lane_refusals_are_the_full_routes(app, client, inbox, new_phone, world):
    """Wrong offset 409 (with the offset held), wrong chunk checksum 460 (nothing kept), a
    body past the end 413, another candidate 404, a cookie without its CSRF token 403."""
    data = b"k" * 900
    sub = await submitted_with(app, client, inbox, new_phone, world, data)
    location = (await create_upload(client, sub)).headers["location"]
    assert (await patch(client, sub, location, 0, data[:300])).status_code == 204
    wrong = await patch(client, sub, location, 100, data[:300])
    assert wrong.status_code == 409 and wrong.headers["upload-offset"] == "300"
    assert wrong.json()["code"] == "upload_offset_mismatch"
    bad = await patch(
        client, sub, location, 300, data[300:600], **{"Upload-Checksum": sha256_header(b"x")}
    )
    assert bad.status_code == 460 and bad.json()["code"] == "upload_chunk_checksum_mismatch"
    good = await patch(
        client,
        sub,
        location,
        300,
        data[300:600],
        **{"Upload-Checksum": sha256_header(data[300:600])},
    )
    assert good.status_code == 204 and good.headers["upload-offset"] == "600"
    past = await patch(client, sub, location, 600, data[600:] + b"extra")
    assert past.status_code == 413 and past.json()["code"] == "upload_exceeds_length"
    exam = await new_exam(client, world)
    other = await candidate_for(app, client, inbox, new_phone, world, exam)
    theirs = Submitted(other, sub.sitting_id, sub.submission_id, data)
    assert (await patch(client, theirs, location, 600, data[600:700])).status_code == 404
    token = sub.who["Authorization"].split(" ", 1)[1]
    cookie_only = await client.patch(
        location,
        content=data[600:700],
        headers={
            **TUS,
            **OFFSET_STREAM,
            "Upload-Offset": "600",
            "Cookie": f"vexam_session={token}; vexam_device=web-0123456789abcdef",
        },
    )
    assert cookie_only.status_code == 403 and cookie_only.json()["code"] == "csrf_failed"
    head = await client.head(location, headers={**sub.who, **TUS})
    assert head.headers["upload-offset"] == "600"


async def test_signed_out_session_leaves_the_lane(app, client, inbox, new_phone, world):
    """The lane trusts a session only for a short time (`ttl_s`); after sign-out and that
    time the full route refuses it (401)."""
    data = b"s" * 500
    sub = await submitted_with(app, client, inbox, new_phone, world, data)
    location = (await create_upload(client, sub)).headers["location"]
    signed_out = await client.post("/api/v1/auth/logout", headers=sub.who)
    assert signed_out.status_code == 204
    memory(app).ttl_s = 0.0
    refused = await patch(client, sub, location, 0, data[:100])
    assert refused.status_code == 401 and refused.json()["code"] == "not_authenticated"
    assert refused.headers["tus-resumable"] == "1.0.0"


async def test_expired_upload_and_wrong_whole_hash(app, client, inbox, new_phone, world, clock):
    """Past its period a known upload gets 410 (the full route decides); a last PATCH whose
    file does not hash to the receipt gets 422 and the upload is kept as hash_mismatch."""
    data = b"e" * 400
    sub = await submitted_with(
        app, client, inbox, new_phone, world, data, sha256="0" * 64, upload_grace_minutes=60
    )
    location = (await create_upload(client, sub)).headers["location"]
    assert (await patch(client, sub, location, 0, data[:200])).status_code == 204
    mismatch = await patch(client, sub, location, 200, data[200:])
    assert mismatch.status_code == 422 and mismatch.json()["code"] == "upload_checksum_mismatch"
    assert (await row(app, location)).state == "hash_mismatch"

    fresh = await submitted_with(
        app, client, inbox, new_phone, world, data, upload_grace_minutes=60
    )
    later = (await create_upload(client, fresh)).headers["location"]
    clock.set(WINDOW_END + timedelta(minutes=60))
    expired = await patch(client, fresh, later, 0, data[:200])
    assert expired.status_code == 410 and expired.json()["code"] == "upload_expired"


async def no_connection(*_: Any, **__: Any) -> None:
    raise PoolTimeout("QueuePool limit reached")


async def last_patch_without_database(
    app: Any, client: Any, monkeypatch: Any, sub: Submitted, location: str, offset: int
) -> None:
    """The last PATCH, from `offset`, taken by the lane while settling the upload finds no
    free database connection: 503 `service_unavailable` with Retry-After; then the retry's
    HEAD finds every byte kept."""
    monkeypatch.setattr(uploads, "complete_or_refuse", no_connection)
    before = memory(app).served
    failed = await patch(client, sub, location, offset, sub.data[offset:])
    assert memory(app).served == before + 1
    assert failed.status_code == 503 and failed.json()["code"] == "service_unavailable"
    assert failed.headers["retry-after"] == "2"
    monkeypatch.undo()
    head = await client.head(location, headers={**sub.who, **TUS})
    assert head.status_code == 200 and head.headers["upload-offset"] == str(len(sub.data))


async def test_a_database_failure_at_completion_is_answered_as_on_the_full_route(
    app, client, inbox, new_phone, world, monkeypatch
) -> None:
    """No free database connection when the last PATCH settles the upload: 503
    `service_unavailable` with Retry-After, as the full route answers it; the bytes are kept,
    and the HEAD of the retry settles the upload."""
    data = b"d" * 600
    sub = await submitted_with(app, client, inbox, new_phone, world, data)
    location = (await create_upload(client, sub)).headers["location"]
    assert (await patch(client, sub, location, 0, data[:300])).status_code == 204
    await last_patch_without_database(app, client, monkeypatch, sub, location, 300)
    assert (await row(app, location)).state in ("received", "verified")
