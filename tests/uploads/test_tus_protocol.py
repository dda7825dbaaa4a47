"""SPEC §5 uploads through the tus 1.0 endpoint, in process: every header and status, the
binding to the submission, the SHA-256 and media checks, authorization and expiry."""

from __future__ import annotations

import asyncio
import base64
import hashlib
from datetime import timedelta

import pytest

from tests.exams.test_sittings import WINDOW_END, candidate_for, new_exam, status
from tests.helpers import app_ctx
from tests.uploads.conftest import (
    OFFSET_STREAM,
    TUS,
    Submitted,
    b64,
    create_upload,
    patch,
    sha256_header,
    submitted_with,
)
from vexam.exams import upload_files, uploads
from vexam.exams.models import Upload

pytestmark = pytest.mark.usefixtures("app")


def code(response) -> str:
    return str(response.json().get("code"))


async def upload_state(client, sub: Submitted) -> dict:
    view = await status(client, sub.who, sub.sitting_id)
    return dict(view["subjects"][0]["submission"])


async def test_options_announce_the_server(app, client, inbox, new_phone, world) -> None:
    """OPTIONS: Tus-Version, Tus-Extension, Tus-Max-Size, Tus-Checksum-Algorithm; a CORS
    preflight is answered without credentials, with the headers a browser client needs."""
    sub = await submitted_with(app, client, inbox, new_phone, world, b"x" * 10)
    found = await client.options("/api/v1/uploads", headers=sub.who)
    assert found.status_code == 204
    assert found.headers["tus-resumable"] == "1.0.0" and found.headers["tus-version"] == "1.0.0"
    assert set(found.headers["tus-extension"].split(",")) == {
        "creation",
        "creation-with-upload",
        "termination",
        "checksum",
        "expiration",
    }
    assert found.headers["tus-max-size"] == str(app.state.settings.upload_max_bytes)
    assert found.headers["tus-checksum-algorithm"] == "sha256"
    anonymous = await client.options("/api/v1/uploads")
    assert anonymous.status_code == 401
    origin = app.state.settings.base_url
    preflight = await client.options(
        "/api/v1/uploads/abc",
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": "PATCH",
            "Access-Control-Request-Headers": "upload-offset,tus-resumable,content-type",
        },
    )
    assert preflight.status_code == 204
    assert preflight.headers["access-control-allow-origin"] == origin
    allowed = preflight.headers["access-control-allow-headers"].lower()
    assert {"upload-offset", "upload-checksum", "upload-metadata", "tus-resumable"} <= {
        h.strip() for h in allowed.split(",")
    }
    assert "PATCH" in preflight.headers["access-control-allow-methods"]
    exposed = preflight.headers["access-control-expose-headers"].lower()
    assert "location" in exposed and "upload-offset" in exposed and "upload-expires" in exposed
    elsewhere = await client.options(
        "/api/v1/uploads",
        headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"},
    )
    assert "access-control-allow-origin" not in elsewhere.headers


async def test_upload_in_parts_with_checksums_then_verified(
    app, client, inbox, new_phone, world, videos
) -> None:
    """POST → 201 Location, Upload-Expires; HEAD Upload-Offset/Length, no-store; PATCHes with
    sha256 checksums; the last one completes; the job verifies the MP4; status shows it."""
    data = videos["mp4"]
    sub = await submitted_with(app, client, inbox, new_phone, world, data)
    created = await create_upload(client, sub)
    assert created.status_code == 201, created.text
    location = created.headers["location"]
    assert location.startswith("/api/v1/uploads/") and created.headers["upload-offset"] == "0"
    assert created.headers["upload-expires"].endswith("GMT")
    assert created.headers["tus-resumable"] == "1.0.0"
    head = await client.head(location, headers={**sub.who, **TUS})
    assert head.status_code == 200
    assert head.headers["upload-offset"] == "0"
    assert head.headers["upload-length"] == str(len(data))
    assert head.headers["cache-control"] == "no-store"
    assert "submission_id" in head.headers["upload-metadata"]
    half = len(data) // 2
    first = await patch(
        client, sub, location, 0, data[:half], **{"Upload-Checksum": sha256_header(data[:half])}
    )
    assert first.status_code == 204, first.text
    assert first.headers["upload-offset"] == str(half) and "upload-expires" in first.headers
    progress = await upload_state(client, sub)
    assert progress["upload_offset"] == half and progress["upload_state"] == "pending"
    last = await patch(
        client, sub, location, half, data[half:], **{"Upload-Checksum": sha256_header(data[half:])}
    )
    assert last.status_code == 204, last.text
    assert last.headers["upload-offset"] == str(len(data))
    assert (await upload_state(client, sub))["upload_state"] == "received"
    assert await app.state.queue.drain() == 1
    done = await upload_state(client, sub)
    assert done["upload_state"] == "verified" and done["upload_error"] is None
    assert done["upload_offset"] == len(data)
    assert done["upload_media"]["video_codec"] == "h264" and done["upload_media"]["frames"] == 48
    # A finished upload takes no more data and cannot be deleted; HEAD still answers.
    again = await patch(client, sub, location, len(data), b"x")
    assert again.status_code == 403 and code(again) == "upload_finished"
    wrong = await patch(client, sub, location, 0, b"x")
    assert wrong.status_code == 409 and code(wrong) == "upload_offset_mismatch"
    gone = await client.delete(location, headers={**sub.who, **TUS})
    assert gone.status_code == 403 and code(gone) == "upload_finished"
    head = await client.head(location, headers={**sub.who, **TUS})
    assert head.headers["upload-offset"] == str(len(data))
    second = await create_upload(client, sub)
    assert second.status_code == 409 and code(second) == "upload_already_complete"


async def test_creation_with_upload_and_webm(app, client, inbox, new_phone, world, videos) -> None:
    """creation-with-upload: the POST body is the first bytes; VP8/WebM (no frame count in
    its header) is counted by decoding and verified."""
    data = videos["webm"]
    sub = await submitted_with(app, client, inbox, new_phone, world, data)
    created = await client.post(
        "/api/v1/uploads",
        headers={**sub.create_headers(), **OFFSET_STREAM},
        content=data[:1000],
    )
    assert created.status_code == 201, created.text
    assert created.headers["upload-offset"] == "1000"
    rest = await patch(client, sub, created.headers["location"], 1000, data[1000:])
    assert rest.status_code == 204 and rest.headers["upload-offset"] == str(len(data))
    await app.state.queue.drain()
    done = await upload_state(client, sub)
    assert done["upload_state"] == "verified"
    assert done["upload_media"]["video_codec"] == "vp8" and done["upload_media"]["frames"] == 48
    assert done["upload_media"]["header_frames"] == 0


async def test_damaged_video_is_recording_invalid(
    app, client, inbox, new_phone, world, videos
) -> None:
    """A file whose hash matches but that is not a decodable video: recording_invalid."""
    data = videos["damaged"]
    sub = await submitted_with(app, client, inbox, new_phone, world, data)
    created = await client.post(
        "/api/v1/uploads", headers={**sub.create_headers(), **OFFSET_STREAM}, content=data
    )
    assert created.status_code == 201 and created.headers["upload-offset"] == str(len(data))
    await app.state.queue.drain()
    done = await upload_state(client, sub)
    assert done["upload_state"] == "invalid" and done["upload_error"] == "recording_invalid"


async def test_whole_file_hash_must_match_the_receipt(app, client, inbox, new_phone, world):
    """upload_checksum_mismatch when all bytes are in but hash to another SHA-256; the file is
    kept (support can look) and the upload is not accepted."""
    data = b"not what was declared" * 10
    sub = await submitted_with(
        app, client, inbox, new_phone, world, data, sha256=hashlib.sha256(b"other").hexdigest()
    )
    created = await create_upload(client, sub)
    last = await patch(client, sub, created.headers["location"], 0, data)
    assert last.status_code == 422 and code(last) == "upload_checksum_mismatch"
    assert last.headers["upload-offset"] == str(len(data))
    done = await upload_state(client, sub)
    assert done["upload_state"] == "hash_mismatch"
    assert done["upload_error"] == "upload_checksum_mismatch"
    kept = uploads.path_of_id(app.state.settings, created.headers["location"].rsplit("/", 1)[1])
    assert kept.read_bytes() == data


async def test_a_running_hash_that_disagrees_is_checked_against_the_file(
    app, client, inbox, new_phone, world
) -> None:
    """Were the running hash kept between PATCHes ever wrong, the upload is not refused on its
    word: the completion hashes the file, finds the declared SHA-256 and accepts it."""
    data = b"recorded bytes" * 5000
    sub = await submitted_with(app, client, inbox, new_phone, world, data)
    location = (await create_upload(client, sub)).headers["location"]
    half = len(data) // 2
    assert (await patch(client, sub, location, 0, data[:half])).status_code == 204
    upload_id = location.rsplit("/", 1)[1]
    upload_files.keep_running_hash(upload_id, half, hashlib.sha256(b"not the data"))
    last = await patch(client, sub, location, half, data[half:])
    assert last.status_code == 204, last.text
    async with app_ctx(app) as ctx:
        row = await ctx.session.get(Upload, upload_id)
        assert row is not None and row.state == "received"
        assert row.sha256 == hashlib.sha256(data).hexdigest()
    await app.state.queue.drain()


async def test_protocol_refusals(app, client, inbox, new_phone, world) -> None:
    """412 without Tus-Resumable, 415 wrong content type, 409 wrong offset, 460 wrong
    checksum with nothing appended, 413 past Upload-Length, 400s for bad headers."""
    data = bytes(range(256)) * 8
    sub = await submitted_with(app, client, inbox, new_phone, world, data)
    created = await create_upload(client, sub)
    location = created.headers["location"]

    no_tus = await client.head(location, headers=sub.who)
    assert no_tus.status_code == 412 and no_tus.headers["tus-version"] == "1.0.0"
    plain = await client.patch(
        location,
        content=b"abc",
        headers={**sub.who, **TUS, "Upload-Offset": "0", "Content-Type": "text/plain"},
    )
    assert plain.status_code == 415 and code(plain) == "upload_content_type"
    ok = await patch(client, sub, location, 0, data[:100])
    assert ok.status_code == 204
    behind = await patch(client, sub, location, 50, data[50:150])
    assert behind.status_code == 409 and code(behind) == "upload_offset_mismatch"
    assert behind.headers["upload-offset"] == "100" and behind.json()["offset"] == 100
    bad_sum = await patch(
        client, sub, location, 100, data[100:200], **{"Upload-Checksum": sha256_header(b"no")}
    )
    assert bad_sum.status_code == 460 and code(bad_sum) == "upload_chunk_checksum_mismatch"
    head = await client.head(location, headers={**sub.who, **TUS})
    assert head.headers["upload-offset"] == "100"  # nothing appended
    sha1 = await patch(
        client, sub, location, 100, data[100:200], **{"Upload-Checksum": "sha1 AA=="}
    )
    assert sha1.status_code == 400 and code(sha1) == "upload_checksum_algorithm"
    garbled = await patch(
        client, sub, location, 100, data[100:200], **{"Upload-Checksum": "sha256 !!"}
    )
    assert garbled.status_code == 400 and code(garbled) == "upload_checksum_invalid"
    bad_offset = await patch(client, sub, location, 100, b"x", **{"Upload-Offset": "-1"})
    assert bad_offset.status_code == 400 and code(bad_offset) == "upload_offset_invalid"
    too_long = await patch(client, sub, location, 100, data[100:] + b"extra")
    assert too_long.status_code == 413 and code(too_long) == "upload_exceeds_length"
    head = await client.head(location, headers={**sub.who, **TUS})
    assert head.headers["upload-offset"] == "100"

    # Creation rules: a length, the submission's declared size, metadata naming it, the limit.
    missing = await client.post(
        "/api/v1/uploads", headers={**sub.who, **TUS, "Upload-Metadata": "x " + b64("1")}
    )
    assert missing.status_code == 400 and code(missing) == "upload_length_required"
    deferred = await create_upload(client, sub, **{"Upload-Defer-Length": "1"})
    assert deferred.status_code == 400 and code(deferred) == "upload_length_required"
    other_size = await create_upload(client, sub, **{"Upload-Length": str(len(data) - 1)})
    assert other_size.status_code == 400 and code(other_size) == "upload_length_mismatch"
    assert other_size.json()["declared"] == len(data)
    no_meta = await client.post(
        "/api/v1/uploads", headers={**sub.who, **TUS, "Upload-Length": str(len(data))}
    )
    assert no_meta.status_code == 400 and code(no_meta) == "upload_metadata_invalid"
    bad_meta = await create_upload(client, sub, **{"Upload-Metadata": "submission_id ***"})
    assert bad_meta.status_code == 400 and code(bad_meta) == "upload_metadata_invalid"
    app.state.settings.upload_max_bytes = 1024
    huge = await create_upload(client, sub)
    assert huge.status_code == 413 and code(huge) == "upload_too_large"
    unknown = await client.head("/api/v1/uploads/" + "0" * 32, headers={**sub.who, **TUS})
    assert unknown.status_code == 404


async def test_a_new_creation_replaces_an_unfinished_upload_and_delete_terminates(
    app, client, inbox, new_phone, world
) -> None:
    """A client that lost its address creates again: the unfinished upload is replaced.
    DELETE (termination) removes an unfinished upload and its bytes: 404 afterwards."""
    data = b"0123456789" * 50
    sub = await submitted_with(app, client, inbox, new_phone, world, data)
    first = (await create_upload(client, sub)).headers["location"]
    await patch(client, sub, first, 0, data[:100])
    second = (await create_upload(client, sub)).headers["location"]
    assert second != first
    assert (await client.head(first, headers={**sub.who, **TUS})).status_code == 404
    terminated = await client.delete(second, headers={**sub.who, **TUS})
    assert terminated.status_code == 204
    assert (await client.head(second, headers={**sub.who, **TUS})).status_code == 404
    path = uploads.path_of_id(app.state.settings, second.rsplit("/", 1)[1])
    assert not path.exists()


async def test_concurrent_patch_is_locked(app, client, inbox, new_phone, world) -> None:
    """While one PATCH holds an upload, another gets 423 upload_locked and HEAD reports the
    bytes held; once it is released the next PATCH goes on."""
    data = b"a" * 300
    sub = await submitted_with(app, client, inbox, new_phone, world, data)
    location = (await create_upload(client, sub)).headers["location"]
    path = uploads.path_of_id(app.state.settings, location.rsplit("/", 1)[1])
    holder = await asyncio.to_thread(upload_files.PatchWriter.open, path, 0, checksummed=True)
    await asyncio.to_thread(holder.write, [b"a" * 10])
    locked = await patch(client, sub, location, 0, data[:10])
    assert locked.status_code == 423 and code(locked) == "upload_locked"
    head = await client.head(location, headers={**sub.who, **TUS})
    assert head.headers["upload-offset"] == "0"  # the checksummed PATCH is not verified yet
    holder.close()  # as if its process died: the unverified bytes are cut back
    head = await client.head(location, headers={**sub.who, **TUS})
    assert head.headers["upload-offset"] == "0" and path.stat().st_size == 0
    ok = await patch(client, sub, location, 0, data)
    assert ok.status_code == 204 and ok.headers["upload-offset"] == "300"


async def test_only_the_candidate_may_touch_an_upload(app, client, inbox, new_phone, world):
    """Another candidate cannot create an upload for the submission, nor HEAD, PATCH or
    DELETE it: 404 as if it did not exist."""
    data = b"z" * 64
    sub = await submitted_with(app, client, inbox, new_phone, world, data)
    location = (await create_upload(client, sub)).headers["location"]
    exam = await new_exam(client, world)
    other = await candidate_for(app, client, inbox, new_phone, world, exam)
    theirs = Submitted(other, sub.sitting_id, sub.submission_id, data)
    create = await create_upload(client, theirs)
    assert create.status_code == 404 and code(create) == "submission_not_found"
    anonymous = await client.head(location, headers=TUS)
    assert anonymous.status_code == 401
    for method in ("HEAD", "PATCH", "DELETE"):
        response = await client.request(
            method,
            location,
            content=b"z" if method == "PATCH" else None,
            headers={**other, **TUS, **OFFSET_STREAM, "Upload-Offset": "0"},
        )
        assert response.status_code == 404, (method, response.text)
    assert (await client.head(location, headers={**sub.who, **TUS})).headers["upload-offset"] == "0"


async def test_upload_expires_after_the_grace_period(
    app, client, inbox, new_phone, world, clock
) -> None:
    """The upload may finish after the window, until window end + upload_grace_minutes; then
    upload_expired (410) for creation, HEAD and PATCH. Upload-Expires says when."""
    data = b"q" * 100
    sub = await submitted_with(app, client, inbox, new_phone, world, data, upload_grace_minutes=60)
    created = await create_upload(client, sub)
    location = created.headers["location"]
    assert created.headers["upload-expires"] == "Mon, 01 Jun 2026 13:00:00 GMT"
    clock.set(WINDOW_END + timedelta(minutes=59))
    late = await patch(client, sub, location, 0, data[:50])
    assert late.status_code == 204  # after the window, inside the grace period
    clock.set(WINDOW_END + timedelta(minutes=60))
    for response in (
        await patch(client, sub, location, 50, data[50:]),
        await client.head(location, headers={**sub.who, **TUS}),
        await create_upload(client, sub),
    ):
        assert response.status_code == 410
    expired = await patch(client, sub, location, 50, data[50:])
    assert code(expired) == "upload_expired"


def test_metadata_parsing() -> None:
    """Upload-Metadata: comma-separated keys with optional base64 values."""
    value = base64.b64encode(b"42").decode()
    assert uploads.parse_metadata(f"submission_id {value}, flag,name {b64('a b')}") == {
        "submission_id": "42",
        "flag": "",
        "name": "a b",
    }


async def test_a_later_window_granted_extends_the_upload_period(
    app, client, inbox, new_phone, world, clock
) -> None:
    """The upload period is the candidate's own window end (an accommodation's later end) plus
    the grace, exactly as the sittings compute it; without the grant the upload expired."""
    from sqlalchemy import select

    from vexam.exams import sittings
    from vexam.exams.models import Accommodation, Sitting
    from vexam.identity.models import Identity
    from vexam.schools.models import RosterRow

    data = b"w" * 100
    sub = await submitted_with(app, client, inbox, new_phone, world, data, upload_grace_minutes=60)
    later = WINDOW_END + timedelta(hours=5)
    async with app_ctx(app) as ctx:
        sitting = await ctx.session.get(Sitting, sub.sitting_id)
        assert sitting is not None
        index = await ctx.session.scalar(
            select(Identity.id_number_index).where(Identity.user_id == sitting.user_id)
        )
        row_id = await ctx.session.scalar(
            select(RosterRow.id).where(
                RosterRow.exam_id == sitting.exam_id, RosterRow.id_number_index == index
            )
        )
        assert row_id is not None
        ctx.session.add(
            Accommodation(
                exam_id=sitting.exam_id,
                roster_row_id=row_id,
                extra_attempts=0,
                extra_seconds=0,
                window_ends_at=later,
                reason="test",
                created_at=clock.now(),
                updated_at=clock.now(),
            )
        )
        await ctx.session.flush()
        loaded = await sittings.load(ctx, sitting)
        assert loaded.window_end == later
    clock.set(WINDOW_END + timedelta(hours=2))  # past the exam's window and grace
    created = await create_upload(client, sub)
    assert created.status_code == 201, created.text
    assert created.headers["upload-expires"] == "Mon, 01 Jun 2026 18:00:00 GMT"
    clock.set(later + timedelta(minutes=60))
    assert code(await create_upload(client, sub)) == "upload_expired"


async def test_head_repairs_the_offset_and_completes_from_the_file(
    app, client, inbox, new_phone, world, videos
) -> None:
    """The file is the truth: bytes on disk that the database never recorded (a crash between
    the write and the commit) are reported by HEAD and the stored offset is repaired; a file
    found whole is completed (hash checked, media check queued) as if its last PATCH had."""
    data = videos["mp4"]
    sub = await submitted_with(app, client, inbox, new_phone, world, data)
    location = (await create_upload(client, sub)).headers["location"]
    path = uploads.path_of_id(app.state.settings, location.rsplit("/", 1)[1])
    path.write_bytes(data[:1000])
    head = await client.head(location, headers={**sub.who, **TUS})
    assert head.headers["upload-offset"] == "1000"
    assert (await upload_state(client, sub))["upload_offset"] == 1000
    path.write_bytes(data)
    head = await client.head(location, headers={**sub.who, **TUS})
    assert head.headers["upload-offset"] == str(len(data))
    assert (await upload_state(client, sub))["upload_state"] == "received"
    assert await app.state.queue.drain() == 1
    assert (await upload_state(client, sub))["upload_state"] == "verified"


async def test_sweep_expires_unfinished_uploads_and_requeues_stranded_checks(
    app, client, inbox, new_phone, world, clock, videos
) -> None:
    """The sweep job: an unfinished upload past its period is closed (410 from then on) and
    its bytes deleted; a received upload whose media check was lost is checked again."""
    from sqlalchemy import update

    late = await submitted_with(app, client, inbox, new_phone, world, b"l" * 100)
    late_at = (await create_upload(client, late)).headers["location"]
    await patch(client, late, late_at, 0, b"l" * 10)
    data = videos["mp4"]
    done = await submitted_with(app, client, inbox, new_phone, world, data)
    created = await client.post(
        "/api/v1/uploads", headers={**done.create_headers(), **OFFSET_STREAM}, content=data
    )
    assert created.status_code == 201
    # As if the process died between the commit and the enqueue: the media check is lost.
    done_id = created.headers["location"].rsplit("/", 1)[1]
    async with app_ctx(app) as ctx:
        await ctx.session.execute(
            update(Upload).where(Upload.id == done_id).values(completed_at=clock.now())
        )
    app.state.queue.huey.flush()
    clock.set(WINDOW_END + timedelta(days=2))
    await app.state.queue.run(uploads.SWEEP_JOB, {})
    path = uploads.path_of_id(app.state.settings, late_at.rsplit("/", 1)[1])
    assert not path.exists()
    head = await client.head(late_at, headers={**late.who, **TUS})
    assert head.status_code == 410
    gone = await patch(client, late, late_at, 10, b"l")
    assert gone.status_code == 410 and code(gone) == "upload_expired"
    assert await app.state.queue.drain() >= 1  # the database is shared by the run's tests
    assert (await upload_state(client, done))["upload_state"] == "verified"


async def test_small_patches_spare_the_row_until_completion(
    app, client, inbox, new_phone, world
) -> None:
    """On the local store an intermediate PATCH need not write the row (the file is the
    truth): the status call and HEAD still give the bytes on disk; completion records all."""
    data = bytes(range(256)) * 40
    sub = await submitted_with(app, client, inbox, new_phone, world, data)
    location = (await create_upload(client, sub)).headers["location"]
    first = await patch(client, sub, location, 0, data[:1000])
    assert first.status_code == 204 and first.headers["upload-offset"] == "1000"
    async with app_ctx(app) as ctx:
        row = await ctx.session.get(Upload, location.rsplit("/", 1)[1])
        assert row is not None and row.received == 0  # not written: under the thresholds
    assert (await upload_state(client, sub))["upload_offset"] == 1000
    head = await client.head(location, headers={**sub.who, **TUS})
    assert head.headers["upload-offset"] == "1000"
    last = await patch(client, sub, location, 1000, data[1000:])
    assert last.status_code == 204 and last.headers["upload-offset"] == str(len(data))
    async with app_ctx(app) as ctx:
        row = await ctx.session.get(Upload, location.rsplit("/", 1)[1])
        assert row is not None and row.received == len(data) and row.state == "received"


async def test_a_patch_after_a_quiet_while_mirrors_the_bytes_on_the_row(
    app, client, inbox, new_phone, world, clock
) -> None:
    """Past `PROGRESS_EVERY` since the row last changed, an intermediate PATCH of the full
    route (a process whose fast lane does not know the upload) writes the bytes on disk to
    the row."""
    data = bytes(range(256)) * 40
    sub = await submitted_with(app, client, inbox, new_phone, world, data)
    location = (await create_upload(client, sub)).headers["location"]
    app.state.upload_memory.forget(location.rsplit("/", 1)[1])
    clock.advance(uploads.PROGRESS_EVERY + timedelta(seconds=1))
    first = await patch(client, sub, location, 0, data[:1000])
    assert first.status_code == 204 and first.headers["upload-offset"] == "1000"
    async with app_ctx(app) as ctx:
        row = await ctx.session.get(Upload, location.rsplit("/", 1)[1])
        assert row is not None and (row.received, row.state) == (1000, "receiving")
        assert row.updated_at == clock.now()
