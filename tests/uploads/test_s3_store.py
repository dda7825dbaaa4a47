"""SPEC §5 uploads on the S3 store (a moto S3 API server): multipart parts of at least 5 MiB,
smaller PATCHes staged, any app instance continues any upload, 460 keeps nothing, and
termination and expiry abort the multipart upload."""

from __future__ import annotations

import hashlib
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from typing import Any

import boto3
import httpx
import pytest
from moto.server import ThreadedMotoServer
from sqlalchemy import select, update

from tests.exams.test_sittings import WINDOW_END
from tests.helpers import app_ctx
from tests.uploads.conftest import TUS, Submitted, create_upload, patch, sha256_header
from tests.uploads.conftest import submitted_with as submitted_with
from vexam.config import Settings
from vexam.core.errors import VexamError
from vexam.exams import upload_files, uploads
from vexam.exams.models import StagedPiece, Upload
from vexam.exams.upload_s3 import S3UploadStore
from vexam.exams.upload_s3_staging import Staging
from vexam.exams.upload_staged import STAGED_MEMORY
from vexam.main import create_app

KiB = 1 << 10
MiB = 1 << 20
REGION = "us-east-1"
PREFIX = "vx"


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    """An S3 API server (moto) for this module."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@pytest.fixture
def s3(s3_endpoint: str) -> Any:
    """A boto3 client of the test server, to look behind the store's back."""
    return boto3.session.Session().client(
        "s3",
        endpoint_url=s3_endpoint,
        region_name=REGION,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


@pytest.fixture
def bucket(s3: Any) -> str:
    """A fresh bucket per test."""
    name = f"t-{uuid.uuid4().hex[:20]}"
    s3.create_bucket(Bucket=name)
    return name


@pytest.fixture
def settings(settings: Settings, s3_endpoint: str, bucket: str) -> Settings:
    """The test's settings with blobs and uploads on S3 (chosen by storage_url: auto)."""
    return settings.model_copy(
        update={
            "storage_url": f"s3://{bucket}/{PREFIX}",
            "s3_endpoint_url": s3_endpoint,
            "s3_region": REGION,
            "s3_access_key": "testing",
            "s3_secret_key": "testing",
        }
    )


pytestmark = pytest.mark.usefixtures("app")


def upload_id(location: str) -> str:
    return location.rsplit("/", 1)[1]


def leftovers(s3: Any, bucket: str) -> tuple[list[str], list[str]]:
    """(object keys, keys of pending multipart uploads) of uploads in the bucket."""
    objects = s3.list_objects_v2(Bucket=bucket, Prefix=f"{PREFIX}/uploads/").get("Contents", [])
    pending = s3.list_multipart_uploads(Bucket=bucket).get("Uploads", [])
    return sorted(o["Key"] for o in objects), sorted(u["Key"] for u in pending)


def assert_only_the_object_left(s3: Any, bucket: str, key: str) -> None:
    """The upload `key` is an object, with nothing of it staged or pending."""
    objects, pending = leftovers(s3, bucket)
    assert key in objects and sizes(s3, bucket, f"{key}.staged.") == {} and pending == []


def object_sha256(s3: Any, bucket: str, key: str) -> str:
    return hashlib.sha256(s3.get_object(Bucket=bucket, Key=key)["Body"].read()).hexdigest()


async def offset_of(client: httpx.AsyncClient, sub: Submitted, location: str) -> int:
    head = await client.head(location, headers={**sub.who, **TUS})
    assert head.status_code == 200, head.headers
    return int(head.headers["upload-offset"])


async def send(
    client: httpx.AsyncClient, sub: Submitted, location: str, offset: int, size: int, **kw: str
) -> int:
    """PATCH `size` bytes of the submission's data at `offset`; returns the new offset."""
    body = sub.data[offset : offset + size]
    done = await patch(client, sub, location, offset, body, **kw)
    assert done.status_code == 204, done.text
    assert int(done.headers["upload-offset"]) == offset + len(body)
    assert await offset_of(client, sub, location) == offset + len(body)
    return offset + len(body)


async def started(
    app: Any, client: httpx.AsyncClient, inbox: Any, new_phone: Any, world: Any, data: bytes
) -> tuple[Submitted, str, str]:
    """A submission declaring `data`, its upload created: (submission, location, object key)."""
    sub = await submitted_with(app, client, inbox, new_phone, world, data)
    location = (await create_upload(client, sub)).headers["location"]
    return sub, location, f"{PREFIX}/uploads/{upload_id(location)}"


async def pieces_of(app: Any, upload: str) -> dict[tuple[int, int], int]:
    """(parts, start) → size of the upload's bytes staged in the database."""
    async with app_ctx(app) as ctx:
        found = await ctx.session.execute(
            select(StagedPiece.parts, StagedPiece.start, StagedPiece.data).where(
                StagedPiece.upload_id == upload
            )
        )
        return {(parts, start): len(data) for parts, start, data in found}


async def leave_cut_object(app: Any, s3: Any, bucket: str, key: str, body: bytes) -> None:
    """What a PATCH cut before the row counted its bytes leaves: an S3 object at `key`, put
    after the row said that staged objects may exist."""
    upload = key.rsplit("/", 1)[1].split(".")[0]
    async with app_ctx(app) as ctx:
        await ctx.session.execute(update(Upload).where(Upload.id == upload).values(s3_staged=True))
        await ctx.session.commit()
    s3.put_object(Bucket=bucket, Key=key, Body=body)


def sizes(s3: Any, bucket: str, prefix: str) -> dict[str, int]:
    """Object key → size, of the keys under `prefix`."""
    found = s3.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", [])
    return {item["Key"]: item["Size"] for item in found}


@pytest.fixture
def staged_reads(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The byte counts the store read back from staged objects, in order."""
    reads: list[int] = []
    real = Staging.read

    def spy(self: Staging, upload_id: str, parts: int, count: int, pieces: Any) -> Any:
        reads.append(count)  # not called when this process's memory holds them
        return real(self, upload_id, parts, count, pieces)

    monkeypatch.setattr(Staging, "read", spy)
    return reads


async def test_patches_below_and_above_a_part_complete_byte_exact(
    app, client, inbox, new_phone, world, s3, bucket, staged_reads
) -> None:
    """PATCHes of 1, 3, 2.5 and 6 MiB (staged, staged, crossing a part, above a part) then the
    rest: the S3 object is byte-exact, parts were ≥ 5 MiB, nothing staged or pending remains.
    A PATCH below a part stores only its own bytes and reads nothing back; the one that fills
    a part reads the staged bytes once when this process does not hold them (as another
    process would), and nothing when it does."""
    data = os.urandom(14 * MiB + 12345)
    sub = await submitted_with(app, client, inbox, new_phone, world, data)
    created = await create_upload(client, sub)
    assert created.status_code == 201, created.text
    location = created.headers["location"]
    key = f"{PREFIX}/uploads/{upload_id(location)}"
    assert leftovers(s3, bucket) == ([], [key])  # the multipart upload starts at creation
    offset = 0
    for size in (MiB, 3 * MiB):
        offset = await send(client, sub, location, offset, size)
    assert sizes(s3, bucket, f"{key}.staged.") == {
        f"{key}.staged.0.0000000000": MiB,
        f"{key}.staged.0.{MiB:010d}": 3 * MiB,
    }
    assert staged_reads == []
    async with app_ctx(app) as ctx:  # the PATCH's last write counted its bytes and let go
        row = await ctx.session.get(Upload, upload_id(location))
        assert row is not None and (row.received, row.parts_done) == (4 * MiB, 0)
        assert (row.lease_token, row.lease_until) == (None, None)
    STAGED_MEMORY.forget(upload_id(location))  # as if another process had staged them
    offset = await send(client, sub, location, offset, 5 * MiB // 2)
    assert staged_reads == [4 * MiB]
    # 6.5 MiB: one part, 1.5 MiB staged for the next; the first part's staged bytes are gone
    assert sizes(s3, bucket, f"{key}.staged.") == {f"{key}.staged.1.0000000000": 3 * MiB // 2}
    chunk = data[offset : offset + 6 * MiB]
    offset = await send(
        client, sub, location, offset, 6 * MiB, **{"Upload-Checksum": sha256_header(chunk)}
    )
    offset = await send(client, sub, location, offset, len(data) - offset)
    assert offset == len(data)
    assert staged_reads == [4 * MiB]  # the later parts' staged bytes were held in memory
    objects, pending = leftovers(s3, bucket)
    assert objects == [key] and pending == []
    assert object_sha256(s3, bucket, key) == hashlib.sha256(data).hexdigest()
    async with app_ctx(app) as ctx:
        row = await ctx.session.get(Upload, upload_id(location))
        assert row is not None and row.state == "received" and row.parts_done == 3
        assert row.sha256 == hashlib.sha256(data).hexdigest() and row.lease_token is None
    await app.state.queue.drain()  # random bytes: the media check finds no video


async def test_a_patch_below_a_part_runs_its_statements_without_transactions(
    app, client, inbox, new_phone, world, monkeypatch
) -> None:
    """On PostgreSQL a PATCH that only stages bytes reads the upload, takes the lease and
    counts its bytes each in a statement of its own: no BEGIN or COMMIT sent. The last PATCH
    completes the upload in one transaction."""
    if app.state.db.is_sqlite:
        pytest.skip("PostgreSQL only: SQLite keeps its transactions")
    from asyncpg.transaction import Transaction

    data = os.urandom(3 * MiB)
    sub = await submitted_with(app, client, inbox, new_phone, world, data)
    created = await create_upload(client, sub)
    assert created.status_code == 201, created.text
    begun: list[object] = []
    start = Transaction.start

    async def counted(self: Transaction) -> None:
        begun.append(self)
        await start(self)

    monkeypatch.setattr(Transaction, "start", counted)
    done = await patch(client, sub, created.headers["location"], 0, data[:MiB])
    assert done.status_code == 204 and done.headers["upload-offset"] == str(MiB)
    assert begun == []
    last = await patch(client, sub, created.headers["location"], MiB, data[MiB:])
    assert last.status_code == 204 and last.headers["upload-offset"] == str(3 * MiB)
    assert len(begun) == 1  # the completion's statements: one transaction
    async with app_ctx(app) as ctx:
        row = await ctx.session.get(Upload, upload_id(created.headers["location"]))
        assert row is not None and row.state == "received" and row.lease_token is None
    await app.state.queue.drain()


@pytest.fixture
def s3_calls(app: Any) -> list[tuple[str, str]]:
    """The S3 operations the app's store sends from now on: (operation, object key)."""
    calls: list[tuple[str, str]] = []

    def seen(model: Any, params: dict[str, Any], **_: Any) -> None:
        calls.append((model.name, str(params.get("Key", ""))))

    events = app.state.store.client.meta.events
    events.register("before-parameter-build.s3", seen)
    yield calls
    events.unregister("before-parameter-build.s3", seen)


async def test_small_patches_are_staged_in_the_database_and_the_last_puts_the_file(
    app, client, inbox, new_phone, world, s3, bucket, s3_calls
) -> None:
    """A short recording in PATCHes of a few hundred bytes (a phone on a bad network, or a
    client with small chunks): each PATCH's bytes go into the database with the count, with
    no S3 call; the last PATCH takes them from this process's memory or, as another process
    would, from the database, puts the whole file as its one S3 call, lists nothing (no PATCH
    staged an S3 object), and the completion deletes the pieces."""
    for remembered in (True, False):
        data = os.urandom(2795)
        sub, location, key = await started(app, client, inbox, new_phone, world, data)
        s3_calls.clear()
        offset = 0
        for size in (700, 700, 700):
            offset = await send(client, sub, location, offset, size)
        assert s3_calls == []
        assert await pieces_of(app, upload_id(location)) == {
            (0, 0): 700,
            (0, 700): 700,
            (0, 1400): 700,
        }
        if not remembered:
            STAGED_MEMORY.forget(upload_id(location))
            upload_files.forget_running_hash(upload_id(location))
        last = await patch(client, sub, location, offset, data[offset:])
        assert last.status_code == 204, last.text
        assert s3_calls == [("PutObject", key)]
        assert await pieces_of(app, upload_id(location)) == {}
        assert_only_the_object_left(s3, bucket, key)
        assert object_sha256(s3, bucket, key) == hashlib.sha256(data).hexdigest()
        async with app_ctx(app) as ctx:
            row = await ctx.session.get(Upload, upload_id(location))
            assert row is not None and row.state == "received" and not row.s3_staged
    await app.state.queue.drain()


async def test_a_part_staged_in_pieces_and_objects_is_sent_whole(
    app, client, inbox, new_phone, world, s3, bucket, s3_calls, staged_reads
) -> None:
    """A part's staged bytes may be partly in the database (PATCHes of up to 64 KiB while
    the part's staged bytes stay within 256 KiB) and partly S3 objects (larger ones, after
    the row says so): the PATCH that fills the part reads both, once, when this process does
    not hold them; the pieces of the sent part are deleted, and the upload completes
    byte-exact with nothing left."""
    data = os.urandom(7 * MiB + 3)
    sub, location, key = await started(app, client, inbox, new_phone, world, data)
    offset = 0
    for size in (60 * KiB, 60 * KiB, 100 * KiB, 60 * KiB, 200 * KiB):
        offset = await send(client, sub, location, offset, size)
    # 100 KiB is above a piece; the 60 KiB after 220 KiB would pass 256 KiB in the database
    assert await pieces_of(app, upload_id(location)) == {(0, 0): 60 * KiB, (0, 60 * KiB): 60 * KiB}
    assert sizes(s3, bucket, f"{key}.staged.") == {
        f"{key}.staged.0.{120 * KiB:010d}": 100 * KiB,
        f"{key}.staged.0.{220 * KiB:010d}": 60 * KiB,
        f"{key}.staged.0.{280 * KiB:010d}": 200 * KiB,
    }
    STAGED_MEMORY.forget(upload_id(location))  # as if another process had staged them
    offset = await send(client, sub, location, offset, 5 * MiB)  # fills part 1, 480 KiB on
    assert staged_reads == [480 * KiB]
    assert await pieces_of(app, upload_id(location)) == {}
    assert sizes(s3, bucket, f"{key}.staged.") == {f"{key}.staged.1.0000000000": 480 * KiB}
    offset = await send(client, sub, location, offset, len(data) - offset)
    assert_only_the_object_left(s3, bucket, key)
    assert object_sha256(s3, bucket, key) == hashlib.sha256(data).hexdigest()
    await app.state.queue.drain()


async def test_a_piece_is_kept_only_with_its_count(app, client, inbox, new_phone, world) -> None:
    """The count and the piece are written together or not at all: a PATCH whose lease was
    taken over (another token holds the row) writes neither, and is refused with 423."""
    data = os.urandom(3000)
    sub = await submitted_with(app, client, inbox, new_phone, world, data)
    location = (await create_upload(client, sub)).headers["location"]
    await send(client, sub, location, 0, 1000)
    async with app_ctx(app) as ctx:
        store = S3UploadStore.over(ctx.blobs, ctx.settings)
        lease = await store.take_lease(ctx, upload_id(location))
        assert lease is not None and lease.received == 1000
        counted = {"counted": 2000, "parts": 0, "now": ctx.now()}
        with pytest.raises(VexamError) as refused:
            await store.staging.count_with_piece(
                ctx, upload_id(location), "not-the-holder", counted, (0, 1000, data[1000:2000])
            )
        assert refused.value.code == "upload_locked"
        row = await ctx.session.get(Upload, upload_id(location))
        assert row is not None and row.received == 1000
        await store.staging.count_with_piece(
            ctx, upload_id(location), lease.token, counted, (0, 1000, data[1000:2000])
        )
    assert await pieces_of(app, upload_id(location)) == {(0, 0): 1000, (0, 1000): 1000}
    assert await offset_of(client, sub, location) == 2000
    STAGED_MEMORY.forget(upload_id(location))
    await send(client, sub, location, 2000, 1000)
    await app.state.queue.drain()


async def test_a_short_recording_completes_without_reading_or_listing_it_again(
    app, client, inbox, new_phone, world, s3, bucket, s3_calls
) -> None:
    """A recording shorter than a part, sent in three PATCHes: its creation starts no
    multipart upload; the last PATCH takes the staged bytes and their keys from this
    process's memory (or, when it holds none, as in another process, lists and reads them),
    puts the whole file as one object and hashes it as sent (when no running hash was kept),
    so the completion lists no staged objects and reads the object back only to confirm a
    wrong hash before refusing it; the object is byte-exact and nothing is left."""
    for declared, remembered in (("right", True), ("wrong", True), ("right", False)):
        data = os.urandom(3 * MiB + 17)
        sha256 = hashlib.sha256(data).hexdigest() if declared == "right" else "0" * 64
        sub = await submitted_with(app, client, inbox, new_phone, world, data, sha256=sha256)
        s3_calls.clear()
        location = (await create_upload(client, sub)).headers["location"]
        assert s3_calls == []  # no multipart upload
        key = f"{PREFIX}/uploads/{upload_id(location)}"
        offset = await send(client, sub, location, 0, MiB)
        offset = await send(client, sub, location, offset, MiB)
        if not remembered:  # as in another process: no staged bytes, no running hash
            STAGED_MEMORY.forget(upload_id(location))
            upload_files.forget_running_hash(upload_id(location))
        s3_calls.clear()
        last = await patch(client, sub, location, offset, data[offset:])
        read = [] if remembered else [f"{key}.staged.0.0000000000", f"{key}.staged.0.{MiB:010d}"]
        assert s3_calls == [
            *([] if remembered else [("ListObjectsV2", "")]),  # the staged objects
            *[("GetObject", staged) for staged in read],
            ("PutObject", key),  # the whole file
            ("DeleteObjects", ""),  # the staged objects, once the row counts the bytes
            # the object is read back only to confirm a refusal
            *([("GetObject", key)] if declared == "wrong" else []),
        ]
        assert_only_the_object_left(s3, bucket, key)
        assert object_sha256(s3, bucket, key) == hashlib.sha256(data).hexdigest()
        async with app_ctx(app) as ctx:
            row = await ctx.session.get(Upload, upload_id(location))
            assert row is not None and row.sha256 == hashlib.sha256(data).hexdigest()
            if declared == "right":
                assert last.status_code == 204 and row.state == "received"
            else:
                assert last.status_code == 422 and row.state == "hash_mismatch"
                assert last.json()["code"] == "upload_checksum_mismatch"
    await app.state.queue.drain()


async def test_the_last_patch_deletes_what_a_cut_patch_may_have_left(
    app, client, inbox, new_phone, world, s3, bucket, s3_calls
) -> None:
    """Objects staged by a PATCH cut before the row counted them (here put by hand, as a
    process killed mid-PATCH would leave them) do not outlive the upload:

    - a whole recording in one PATCH read no staged bytes, so it does not know what a cut
      PATCH left at byte 0: the completion lists the staged objects and deletes them;
    - a recording shorter than a part whose staged bytes this process holds knows the keys
      that may be left (its own objects, and a cut PATCH's at the offset the row stood at,
      which is where the last PATCH starts): it deletes them and lists nothing;
    - an upload with a multipart upload may have staged objects of a later part (a cut PATCH
      that sent a part the row never counted): its completion lists them, but not the parts,
      whose ETags the last PATCH kept."""
    data = os.urandom(2 * MiB + 3)
    sub, location, key = await started(app, client, inbox, new_phone, world, data)
    await leave_cut_object(app, s3, bucket, f"{key}.staged.0.0000000000", b"cut" * 100)
    s3_calls.clear()
    assert (await patch(client, sub, location, 0, data)).status_code == 204
    assert [name for name, _ in s3_calls] == ["PutObject", "ListObjectsV2", "DeleteObjects"]
    assert_only_the_object_left(s3, bucket, key)
    assert object_sha256(s3, bucket, key) == hashlib.sha256(data).hexdigest()

    data = os.urandom(2 * MiB + 5)
    sub, location, key = await started(app, client, inbox, new_phone, world, data)
    offset = await send(client, sub, location, 0, MiB // 2)
    await leave_cut_object(app, s3, bucket, f"{key}.staged.0.{offset:010d}", b"cut" * 100)
    offset = await send(client, sub, location, offset, MiB // 4)  # overwrites the cut one
    await leave_cut_object(app, s3, bucket, f"{key}.staged.0.{offset:010d}", b"cut" * 100)
    s3_calls.clear()
    assert (await patch(client, sub, location, offset, data[offset:])).status_code == 204
    assert [name for name, _ in s3_calls] == ["PutObject", "DeleteObjects"]
    assert_only_the_object_left(s3, bucket, key)
    assert object_sha256(s3, bucket, key) == hashlib.sha256(data).hexdigest()

    data = os.urandom(6 * MiB + 7)
    sub, location, key = await started(app, client, inbox, new_phone, world, data)
    offset = await send(client, sub, location, 0, MiB)
    await leave_cut_object(app, s3, bucket, f"{key}.staged.1.0000000000", b"cut" * 100)
    s3_calls.clear()
    assert (await patch(client, sub, location, offset, data[offset:])).status_code == 204
    names = [name for name, _ in s3_calls]
    assert names[-2:] == ["ListObjectsV2", "DeleteObjects"] and "ListParts" not in names
    assert names.count("ListObjectsV2") == 1  # the staged bytes were held, not listed
    assert_only_the_object_left(s3, bucket, key)
    assert object_sha256(s3, bucket, key) == hashlib.sha256(data).hexdigest()
    await app.state.queue.drain()


async def test_one_part_or_less_is_one_object_and_more_a_multipart_upload(
    app, client, inbox, new_phone, world, clock, s3, bucket, s3_calls
) -> None:
    """An upload of exactly one part, in two PATCHes (the second fills the part), is put as
    one object; one byte more and the creation starts a multipart upload, as ever. A short
    upload terminated, or swept after its period, leaves nothing in the bucket."""
    part = 5 * MiB
    data = os.urandom(part)
    sub, location, key = await started(app, client, inbox, new_phone, world, data)
    offset = await send(client, sub, location, 0, 2 * MiB)
    s3_calls.clear()
    await send(client, sub, location, offset, part - offset)
    names = [name for name, _ in s3_calls]
    assert "PutObject" in names and "UploadPart" not in names
    assert "CompleteMultipartUpload" not in names
    assert_only_the_object_left(s3, bucket, key)
    assert object_sha256(s3, bucket, key) == hashlib.sha256(data).hexdigest()

    longer = os.urandom(part + 1)
    more = await submitted_with(app, client, inbox, new_phone, world, longer)
    s3_calls.clear()
    more_at = (await create_upload(client, more)).headers["location"]
    more_key = f"{PREFIX}/uploads/{upload_id(more_at)}"
    assert s3_calls == [("CreateMultipartUpload", more_key)]
    await send(client, more, more_at, 0, len(longer))
    assert_only_the_object_left(s3, bucket, more_key)
    assert object_sha256(s3, bucket, more_key) == hashlib.sha256(longer).hexdigest()

    short = os.urandom(MiB)
    ended = await submitted_with(app, client, inbox, new_phone, world, short)
    ended_at = (await create_upload(client, ended)).headers["location"]
    await send(client, ended, ended_at, 0, MiB // 2)
    late = await submitted_with(app, client, inbox, new_phone, world, short)
    late_at = (await create_upload(client, late)).headers["location"]
    await send(client, late, late_at, 0, MiB // 2)
    gone = await client.delete(ended_at, headers={**ended.who, **TUS})
    assert gone.status_code == 204
    clock.set(WINDOW_END + timedelta(days=2))
    await app.state.queue.run(uploads.SWEEP_JOB, {})
    objects, pending = leftovers(s3, bucket)
    assert sorted(objects) == sorted([key, more_key]) and pending == []
    await app.state.queue.drain()


@pytest.fixture
async def second(settings: Settings, clock: Any, resources: Any) -> AsyncIterator[Any]:
    """A second app instance sharing the database, the queue and the bucket."""
    other = create_app(settings, clock=clock, resources=resources)
    async with other.router.lifespan_context(other):
        transport = httpx.ASGITransport(app=other, client=("10.9.9.9", 40000))
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            yield http


async def test_an_upload_started_on_one_instance_continues_on_another(
    app, client, second, inbox, new_phone, world, s3, bucket
) -> None:
    """No process-local state: instance A starts, B continues across a part boundary (with
    checksums), A and B alternate to the end; the object is byte-exact."""
    data = os.urandom(11 * MiB + 7)
    sub = await submitted_with(app, client, inbox, new_phone, world, data)
    location = (await create_upload(client, sub)).headers["location"]
    offset = await send(client, sub, location, 0, 3 * MiB)
    assert await offset_of(second, sub, location) == 3 * MiB
    chunk = data[offset : offset + 4 * MiB]
    offset = await send(
        second, sub, location, offset, 4 * MiB, **{"Upload-Checksum": sha256_header(chunk)}
    )
    offset = await send(client, sub, location, offset, 2 * MiB)
    offset = await send(second, sub, location, offset, len(data) - offset)
    key = f"{PREFIX}/uploads/{upload_id(location)}"
    assert leftovers(s3, bucket) == ([key], [])
    assert object_sha256(s3, bucket, key) == hashlib.sha256(data).hexdigest()
    await app.state.queue.drain()


async def test_a_process_that_wrote_every_byte_hashes_as_it_goes_else_reads_back(
    app, client, inbox, new_phone, world, s3, bucket, s3_calls
) -> None:
    """Parts and staged bytes over several PATCHes: when this process wrote every byte, its
    running hash settles the upload and the object is never read back, unless to confirm a
    refusal (a wrong declared hash); when another process wrote some (this one's hash stops
    short of the offset), the completion reads the object back."""
    for case in ("one process", "wrong hash", "another process"):
        data = os.urandom(11 * MiB + 3)
        sha256 = hashlib.sha256(data).hexdigest() if case != "wrong hash" else "1" * 64
        sub = await submitted_with(app, client, inbox, new_phone, world, data, sha256=sha256)
        location = (await create_upload(client, sub)).headers["location"]
        key = f"{PREFIX}/uploads/{upload_id(location)}"
        s3_calls.clear()
        offset = await send(client, sub, location, 0, 3 * MiB)
        kept = upload_files.take_running_hash(upload_id(location), offset)
        assert kept is not None  # what this process would hold had the next PATCH gone elsewhere
        upload_files.keep_running_hash(upload_id(location), offset, kept.copy())
        offset = await send(client, sub, location, offset, 3 * MiB)
        if case == "another process":
            upload_files.keep_running_hash(upload_id(location), 3 * MiB, kept)
        offset = await send(client, sub, location, offset, 3 * MiB)
        last = await patch(client, sub, location, offset, data[offset:])
        read_back = ("GetObject", key) in s3_calls
        assert read_back == (case != "one process")  # a refusal is confirmed from the object
        assert_only_the_object_left(s3, bucket, key)
        assert object_sha256(s3, bucket, key) == hashlib.sha256(data).hexdigest()
        async with app_ctx(app) as ctx:
            row = await ctx.session.get(Upload, upload_id(location))
            assert row is not None and row.sha256 == hashlib.sha256(data).hexdigest()
            assert row.parts_done == 3
            if case == "wrong hash":
                assert last.status_code == 422 and row.state == "hash_mismatch"
            else:
                assert last.status_code == 204 and row.state == "received"
    await app.state.queue.drain()


async def test_a_running_hash_that_disagrees_is_checked_against_the_object(
    app, client, inbox, new_phone, world, s3, bucket, s3_calls
) -> None:
    """Were a process's running hash ever wrong, the upload is not refused on its word: the
    completion reads the object back, finds the declared hash and accepts it."""
    data = os.urandom(6 * MiB + 1)
    sub, location, key = await started(app, client, inbox, new_phone, world, data)
    offset = await send(client, sub, location, 0, 2 * MiB)
    upload_files.keep_running_hash(upload_id(location), offset, hashlib.sha256(b"not the data"))
    s3_calls.clear()
    last = await patch(client, sub, location, offset, data[offset:])
    assert last.status_code == 204, last.text
    assert ("GetObject", key) in s3_calls
    async with app_ctx(app) as ctx:
        row = await ctx.session.get(Upload, upload_id(location))
        assert row is not None and row.state == "received"
        assert row.sha256 == hashlib.sha256(data).hexdigest()
    await app.state.queue.drain()


async def test_checksum_mismatch_keeps_nothing_and_the_lease_refuses_a_second_patch(
    app, client, inbox, new_phone, world, s3, bucket
) -> None:
    """460 for a wrong Upload-Checksum, below and above a part: the offset stays, the right
    bytes then complete the upload exactly. A PATCH while another holds the lease: 423."""
    data = os.urandom(7 * MiB + 3)
    sub = await submitted_with(app, client, inbox, new_phone, world, data)
    location = (await create_upload(client, sub)).headers["location"]
    offset = await send(client, sub, location, 0, MiB)
    wrong = {"Upload-Checksum": sha256_header(b"not these bytes")}
    for size in (MiB, 6 * MiB):
        bad = await patch(client, sub, location, offset, data[offset : offset + size], **wrong)
        assert bad.status_code == 460 and bad.json()["code"] == "upload_chunk_checksum_mismatch"
        assert await offset_of(client, sub, location) == MiB
    async with app_ctx(app) as ctx:
        await ctx.session.execute(
            update(Upload)
            .where(Upload.id == upload_id(location))
            .values(lease_token="x" * 32, lease_until=ctx.now() + timedelta(seconds=60))
        )
    busy = await patch(client, sub, location, offset, data[offset:])
    assert busy.status_code == 423 and busy.json()["code"] == "upload_locked"
    async with app_ctx(app) as ctx:  # a lapsed lease is taken over
        await ctx.session.execute(
            update(Upload).where(Upload.id == upload_id(location)).values(lease_until=ctx.now())
        )
    rest = data[offset:]
    offset = await send(
        client, sub, location, offset, len(rest), **{"Upload-Checksum": sha256_header(rest)}
    )
    key = f"{PREFIX}/uploads/{upload_id(location)}"
    assert leftovers(s3, bucket) == ([key], [])
    assert object_sha256(s3, bucket, key) == hashlib.sha256(data).hexdigest()
    await app.state.queue.drain()


async def test_termination_and_expiry_abort_the_multipart_upload(
    app, client, inbox, new_phone, world, clock, s3, bucket
) -> None:
    """DELETE, and the sweep after the grace period, abort the multipart upload and delete
    the staged bytes: nothing is left in the bucket."""
    data = os.urandom(7 * MiB + 100)
    ended = await submitted_with(app, client, inbox, new_phone, world, data)
    ended_at = (await create_upload(client, ended)).headers["location"]
    staged = 5 * MiB + 100 * KiB  # one part + 100 KiB staged in S3
    await send(client, ended, ended_at, 0, staged)
    await send(client, ended, ended_at, staged, 10)  # 10 bytes more: in the database
    late = await submitted_with(app, client, inbox, new_phone, world, data)
    late_at = (await create_upload(client, late)).headers["location"]
    await send(client, late, late_at, 0, staged)
    await send(client, late, late_at, staged, 10)
    for sub_at in (ended_at, late_at):
        assert await pieces_of(app, upload_id(sub_at)) == {(1, 100 * KiB): 10}
    objects, pending = leftovers(s3, bucket)
    assert len(pending) == 2 and len(objects) == 2  # two staged objects
    gone = await client.delete(ended_at, headers={**ended.who, **TUS})
    assert gone.status_code == 204
    objects, pending = leftovers(s3, bucket)
    assert pending == [f"{PREFIX}/uploads/{upload_id(late_at)}"]
    assert objects == [f"{PREFIX}/uploads/{upload_id(late_at)}.staged.1.0000000000"]
    assert await pieces_of(app, upload_id(ended_at)) == {}  # with the upload's row
    clock.set(WINDOW_END + timedelta(days=2))
    await app.state.queue.run(uploads.SWEEP_JOB, {})
    assert leftovers(s3, bucket) == ([], [])
    assert await pieces_of(app, upload_id(late_at)) == {}
    head = await client.head(late_at, headers={**late.who, **TUS})
    assert head.status_code == 410


async def test_a_video_on_s3_is_verified(
    app, client, inbox, new_phone, world, videos, s3, bucket
) -> None:
    """The media check reads the assembled object from S3: a PyAV MP4 becomes verified."""
    data = videos["mp4"]
    sub = await submitted_with(app, client, inbox, new_phone, world, data)
    location = (await create_upload(client, sub)).headers["location"]
    await send(client, sub, location, 0, len(data), **{"Upload-Checksum": sha256_header(data)})
    assert await app.state.queue.drain() == 1
    async with app_ctx(app) as ctx:
        row = await ctx.session.get(Upload, upload_id(location))
        assert row is not None and row.state == "verified", row.media if row else None
        assert row.media["video_codec"] == "h264" and row.media["frames"] == 48


def test_the_store_is_chosen_by_configuration(settings: Settings) -> None:
    """storage_url s3://... selects the S3 store unless upload_store says local."""
    assert settings.effective_upload_store == "s3"
    assert settings.model_copy(update={"upload_store": "local"}).effective_upload_store == "local"
    assert settings.model_copy(update={"storage_url": ""}).effective_upload_store == "local"
    assert S3UploadStore.name == "s3"


async def test_head_completes_an_upload_whose_completion_was_lost(
    app, client, inbox, new_phone, world, s3, bucket, monkeypatch
) -> None:
    """Every byte counted but the process failed before completing the multipart upload:
    the next HEAD (on any instance) completes it; completing twice is harmless."""
    data = os.urandom(5 * MiB + 10)
    sub = await submitted_with(app, client, inbox, new_phone, world, data)
    location = (await create_upload(client, sub)).headers["location"]
    real_finish = S3UploadStore.finish

    async def crash(self: S3UploadStore, *args: Any) -> None:
        raise RuntimeError("killed before CompleteMultipartUpload")

    monkeypatch.setattr(S3UploadStore, "finish", crash)
    with pytest.raises(RuntimeError):
        await patch(client, sub, location, 0, data)
    monkeypatch.setattr(S3UploadStore, "finish", real_finish)
    assert await offset_of(client, sub, location) == len(data)
    async with app_ctx(app) as ctx:
        row = await ctx.session.get(Upload, upload_id(location))
        assert row is not None and row.state == "received"
        await S3UploadStore.over(ctx.blobs, ctx.settings).finish(row.id, row.multipart_id, 2)
    key = f"{PREFIX}/uploads/{upload_id(location)}"
    assert leftovers(s3, bucket) == ([key], [])
    assert object_sha256(s3, bucket, key) == hashlib.sha256(data).hexdigest()
    await app.state.queue.drain()


async def test_max_size_on_s3_is_what_its_parts_can_hold(app, client, inbox, new_phone, world):
    """S3 takes at most 10,000 parts: Tus-Max-Size says the smaller of the configured maximum
    and 10,000 × the part size, and a creation above it gets 413 upload_too_large."""
    settings = app.state.settings.model_copy(update={"upload_max_bytes": 100 * 1024**3})
    app.state.settings = settings  # more than 10,000 parts of 5 MiB hold
    limit = uploads.MAX_PARTS * settings.upload_part_bytes
    assert limit < settings.upload_max_bytes
    sub = await submitted_with(app, client, inbox, new_phone, world, b"v" * 10)
    found = await client.options("/api/v1/uploads", headers=sub.who)
    assert found.headers["tus-max-size"] == str(limit)
    too_big = await create_upload(client, sub, **{"Upload-Length": str(limit + 1)})
    assert too_big.status_code == 413 and too_big.json()["code"] == "upload_too_large"


async def test_staged_bytes_the_row_does_not_count_are_overwritten_or_ignored(
    app, client, inbox, new_phone, world, s3, bucket
) -> None:
    """A PATCH that stored its bytes and died before the row counted them leaves a staged
    object at the upload's offset (the retry overwrites it) or past it (ignored); one cut
    after its part counted leaves the part's staged bytes (the completion deletes them): the
    upload still completes byte-exact and nothing is left in the bucket."""
    data = os.urandom(7 * MiB + 5)
    sub, location, key = await started(app, client, inbox, new_phone, world, data)
    offset = await send(client, sub, location, 0, MiB)
    for start in (MiB, 3 * MiB):  # cut PATCHes' bytes: wrong ones, and longer than the retry
        s3.put_object(Bucket=bucket, Key=f"{key}.staged.0.{start:010d}", Body=b"x" * 2 * MiB)
    assert await offset_of(client, sub, location) == MiB
    offset = await send(client, sub, location, offset, MiB // 2)
    assert sizes(s3, bucket, f"{key}.staged.0.{MiB:010d}") == {
        f"{key}.staged.0.{MiB:010d}": MiB // 2
    }
    offset = await send(client, sub, location, offset, 5 * MiB)
    # A PATCH that filled part 1 and was cut before deleting the staged bytes it read:
    s3.put_object(Bucket=bucket, Key=f"{key}.staged.0.0000000000", Body=data[:MiB])
    offset = await send(client, sub, location, offset, len(data) - offset)
    assert leftovers(s3, bucket) == ([key], [])  # the completion deleted it
    assert object_sha256(s3, bucket, key) == hashlib.sha256(data).hexdigest()
    await app.state.queue.drain()


async def test_an_upload_staged_by_the_earlier_layout_completes(
    app, client, inbox, new_phone, world, s3, bucket
) -> None:
    """An upload in progress across an upgrade: its bytes staged by an earlier version in one
    object `.staged.<parts>` (longer than counted, as a cut PATCH left it) count from byte
    0; the PATCHes that follow stage beside it and the upload completes byte-exact."""
    data = os.urandom(6 * MiB + 9)
    sub, location, key = await started(app, client, inbox, new_phone, world, data)
    offset = await send(client, sub, location, 0, MiB)
    s3.delete_object(Bucket=bucket, Key=f"{key}.staged.0.0000000000")
    s3.put_object(Bucket=bucket, Key=f"{key}.staged.0", Body=data[:MiB] + b"cut" * 1000)
    offset = await send(client, sub, location, offset, MiB)
    assert set(sizes(s3, bucket, f"{key}.staged.")) == {
        f"{key}.staged.0",
        f"{key}.staged.0.{MiB:010d}",
    }
    offset = await send(client, sub, location, offset, len(data) - offset)
    assert leftovers(s3, bucket) == ([key], [])
    assert object_sha256(s3, bucket, key) == hashlib.sha256(data).hexdigest()
    await app.state.queue.drain()


def test_staged_memory_gives_back_only_exactly_what_it_holds() -> None:
    """An entry is taken out whole: only for its generation and byte count, once; the oldest
    entries make room for new ones within the budget."""
    from vexam.exams.upload_staged import Staged, StagedMemory

    def staged(*pieces: bytes) -> Staged:
        held = Staged()
        for piece in pieces:
            held.add(len(held.data), piece)
        return held

    memory = StagedMemory(budget=10)
    memory.keep("a", 0, staged(b"ab", b"cd"))
    assert memory.take("a", 1, 4) is None  # another generation: dropped all the same
    assert memory.take("a", 0, 4) is None
    memory.keep("a", 0, staged(b"ab", b"", b"cd"))
    assert memory.take("a", 0, 3) is None  # the row counts other bytes than it holds
    memory.keep("a", 0, staged(b"ab", b"", b"cd"))
    assert memory.take("a", 0, 4) == Staged(bytearray(b"abcd"), [0, 2])  # no empty object
    assert memory.take("a", 0, 4) is None  # taken: the PATCH owns it now
    assert memory.take("b", 0, 0) == Staged()  # nothing staged: nothing to read or delete
    memory.keep("a", 0, staged(b"abcd"))
    memory.keep("b", 2, staged(b"efgh"))
    memory.keep("c", 1, staged(b"ijk"))  # 11 bytes > 10: "a" goes
    assert memory.take("a", 0, 4) is None
    assert memory.take("b", 2, 4) == staged(b"efgh") and memory.take("c", 1, 3) == staged(b"ijk")
    memory.keep("d", 0, staged(b"x" * 11))  # larger than the budget: not kept
    assert memory.take("d", 0, 11) is None
