"""The PATCH fast lane on the S3 store (exams.upload_lane): a PATCH of an upload this process
served takes the lease first and sends only the store's own statements; a PATCH whose lease
it cannot take goes down the full route untouched, which answers it as it answers any."""

from __future__ import annotations

import hashlib
import os
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from sqlalchemy import update

from tests.helpers import app_ctx, statements_sent
from tests.uploads.conftest import create_upload, patch, patches_counted, submitted_with
from tests.uploads.test_patch_lane import last_patch_without_database
from tests.uploads.test_s3_store import (
    PREFIX,
    bucket,
    leftovers,
    object_sha256,
    s3,
    s3_endpoint,
    settings,
    upload_id,
)
from vexam.config import Settings
from vexam.exams.models import Upload
from vexam.exams.upload_memory import UploadMemory
from vexam.main import create_app

__all__ = ["bucket", "s3", "s3_endpoint", "settings"]  # the S3 fixtures of the upload tests

pytestmark = pytest.mark.usefixtures("app")
MiB = 1 << 20


def memory(app: Any) -> UploadMemory:
    held: UploadMemory = app.state.upload_memory
    return held


@pytest.fixture
async def twin(
    settings: Settings, clock: Any, resources: Any
) -> AsyncIterator[tuple[Any, httpx.AsyncClient]]:
    """A second app instance sharing the database, the queue and the bucket, and its client."""
    other = create_app(settings, clock=clock, resources=resources)
    async with other.router.lifespan_context(other):
        transport = httpx.ASGITransport(app=other, client=("10.9.9.9", 40000))
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            yield other, http


@pytest.fixture
def statements(app: Any) -> Iterator[list[str]]:
    """The SQL statements the app sends from now on (their first word and table)."""
    with statements_sent(app, 3) as sent:
        yield sent


async def test_patches_take_the_lane_with_the_lease_statements_only(
    app, client, inbox, new_phone, world, s3, bucket, statements
) -> None:
    """After the creation every PATCH is the lane's: a staging one sends the lease's
    statements and nothing else (the full route also reads the upload first): taking it and
    the count that lets it go, with the first S3 object of the upload a statement saying so
    before it is put, and with a piece staged in the database its INSERT (on PostgreSQL in
    the count's statement); metrics count it under the PATCH route, and the last one
    settles the upload byte-exact."""
    data = os.urandom(3 * MiB + 5)
    sub = await submitted_with(app, client, inbox, new_phone, world, data)
    location = (await create_upload(client, sub)).headers["location"]
    served, counted = memory(app).served, patches_counted(app, "204")
    statements.clear()
    first = await patch(client, sub, location, 0, data[:1000])
    assert first.status_code == 204, first.text
    assert first.headers["upload-offset"] == "1000" and "upload-expires" in first.headers
    assert first.headers["tus-resumable"] == "1.0.0"
    assert [" ".join(s.split()[:2]) for s in statements] in (
        ["UPDATE exam_uploads", "WITH counted"],  # PostgreSQL
        ["UPDATE exam_uploads", "UPDATE exam_uploads", "INSERT INTO"],
    ), statements
    for offset, end, sent in ((1000, 2 * MiB, 3), (2 * MiB, 3 * MiB, 2)):
        statements.clear()
        done = await patch(client, sub, location, offset, data[offset:end])
        assert done.status_code == 204 and done.headers["upload-offset"] == str(end)
        assert [s.split()[0] for s in statements] == ["UPDATE"] * sent
        assert all("exam_uploads" in s for s in statements)
    last = await patch(client, sub, location, 3 * MiB, data[3 * MiB :])
    assert last.status_code == 204 and last.headers["upload-offset"] == str(len(data))
    assert "upload-expires" not in last.headers
    assert memory(app).served - served == 4
    assert patches_counted(app, "204") - counted == 4
    key = f"{PREFIX}/uploads/{upload_id(location)}"
    assert leftovers(s3, bucket) == ([key], [])
    assert object_sha256(s3, bucket, key) == hashlib.sha256(data).hexdigest()
    async with app_ctx(app) as ctx:
        row = await ctx.session.get(Upload, upload_id(location))
        assert row is not None and row.state == "received" and row.lease_token is None
    again = await patch(client, sub, location, 0, data[:10])  # forgotten: the full route
    assert again.status_code == 409 and again.headers["upload-offset"] == str(len(data))
    assert memory(app).served - served == 4
    await app.state.queue.drain()  # random bytes: the media check finds no video


async def test_a_lane_refusal_is_the_full_routes(app, client, inbox, new_phone, world) -> None:
    """A wrong offset is refused by the lane as by the full route: 409 with the offset the
    row counts, the tus headers, the lease given back."""
    data = os.urandom(2 * MiB)
    sub = await submitted_with(app, client, inbox, new_phone, world, data)
    location = (await create_upload(client, sub)).headers["location"]
    assert (await patch(client, sub, location, 0, data[:MiB])).status_code == 204
    served = memory(app).served
    wrong = await patch(client, sub, location, 10, data[:MiB])
    assert wrong.status_code == 409 and wrong.json()["code"] == "upload_offset_mismatch"
    assert wrong.headers["upload-offset"] == str(MiB)
    assert wrong.headers["tus-resumable"] == "1.0.0"
    assert memory(app).served == served + 1
    async with app_ctx(app) as ctx:
        row = await ctx.session.get(Upload, upload_id(location))
        assert row is not None and (row.received, row.lease_token) == (MiB, None)
    rest = await patch(client, sub, location, MiB, data[MiB:])
    assert rest.status_code == 204 and rest.headers["upload-offset"] == str(len(data))
    await app.state.queue.drain()


async def test_a_database_failure_at_completion_is_answered_as_on_the_full_route(
    app, client, inbox, new_phone, world, monkeypatch, s3, bucket
) -> None:
    """No free database connection when the last PATCH settles the upload: 503
    `service_unavailable` with Retry-After; the object and the row's count are kept, and the
    HEAD of the retry settles the upload."""
    data = os.urandom(MiB + 9)
    sub = await submitted_with(app, client, inbox, new_phone, world, data)
    location = (await create_upload(client, sub)).headers["location"]
    assert (await patch(client, sub, location, 0, data[:MiB])).status_code == 204
    await last_patch_without_database(app, client, monkeypatch, sub, location, MiB)
    async with app_ctx(app) as ctx:
        row = await ctx.session.get(Upload, upload_id(location))
        assert row is not None and row.state == "received"
    key = f"{PREFIX}/uploads/{upload_id(location)}"
    assert object_sha256(s3, bucket, key) == hashlib.sha256(data).hexdigest()
    await app.state.queue.drain()


async def test_a_patch_the_lane_cannot_lease_goes_down_the_full_route(
    app, client, twin, inbox, new_phone, world, s3, bucket
) -> None:
    """An upload whose lease another PATCH holds: nothing read by the lane, 423 from the full
    route; once the lease is given back, the lane takes the next PATCHes. An upload another
    process terminated: 404 from the full route, and the lane forgets it."""
    data = os.urandom(2 * MiB)
    sub = await submitted_with(app, client, inbox, new_phone, world, data)
    location = (await create_upload(client, sub)).headers["location"]
    held = upload_id(location)
    async with app_ctx(app) as ctx:
        now = ctx.now()
        await ctx.session.execute(
            update(Upload)
            .where(Upload.id == held)
            .values(lease_token="f" * 32, lease_until=now.replace(year=now.year + 1))
        )
    served = memory(app).served
    locked = await patch(client, sub, location, 0, data[:MiB])
    assert locked.status_code == 423 and locked.json()["code"] == "upload_locked"
    assert locked.headers["tus-resumable"] == "1.0.0"
    assert memory(app).served == served
    async with app_ctx(app) as ctx:
        await ctx.session.execute(
            update(Upload).where(Upload.id == held).values(lease_token=None, lease_until=None)
        )
    assert (await patch(client, sub, location, 0, data[:MiB])).status_code == 204
    assert (await patch(client, sub, location, MiB, data[MiB:])).status_code == 204
    assert memory(app).served == served + 2

    other = await submitted_with(app, client, inbox, new_phone, world, data)
    elsewhere = (await create_upload(client, other)).headers["location"]
    assert (await patch(client, other, elsewhere, 0, data[:MiB])).status_code == 204
    gone = await twin[1].delete(elsewhere, headers={**other.who, "Tus-Resumable": "1.0.0"})
    assert gone.status_code == 204
    late = await patch(client, other, elsewhere, MiB, data[MiB:])
    assert late.status_code == 404 and late.json()["code"] == "upload_not_found"
    assert memory(app).upload(upload_id(elsewhere)) is None
    objects, pending = leftovers(s3, bucket)
    assert f"{PREFIX}/uploads/{upload_id(elsewhere)}" not in [*objects, *pending]
    await app.state.queue.drain()


async def test_instances_alternating_both_take_their_lanes(
    app, client, twin, inbox, new_phone, world, s3, bucket
) -> None:
    """PATCHes alternating between two instances (round robin behind a proxy): each instance
    takes the lane once it has served the upload, each lease reads what the other counted,
    and the object is byte-exact."""
    data = os.urandom(6 * MiB + 3)
    sub = await submitted_with(app, client, inbox, new_phone, world, data)
    location = (await create_upload(client, sub)).headers["location"]
    other, second = twin
    served = (memory(app).served, memory(other).served)
    offset = 0
    for turn, size in enumerate((MiB, MiB, 2 * MiB, MiB, MiB, MiB)):
        http = client if turn % 2 == 0 else second
        body = data[offset : offset + size]
        done = await patch(http, sub, location, offset, body)
        assert done.status_code == 204, done.text
        offset += len(body)
        assert done.headers["upload-offset"] == str(offset)
    assert offset == len(data)
    # The first instance served the creation: its 3 PATCHes are the lane's; the second
    # learns the upload from its first PATCH (the full route) and takes its last 2.
    assert (memory(app).served - served[0], memory(other).served - served[1]) == (3, 2)
    key = f"{PREFIX}/uploads/{upload_id(location)}"
    assert leftovers(s3, bucket) == ([key], [])
    assert object_sha256(s3, bucket, key) == hashlib.sha256(data).hexdigest()
    await app.state.queue.drain()
