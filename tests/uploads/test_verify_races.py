"""Issue 10 faults: a media check queued twice (the sweep re-queues a check that a slow or
retried worker is still running) verifies and audits the upload once."""

from __future__ import annotations

import asyncio
import threading

import pytest
from sqlalchemy import func, select

from tests.helpers import app_ctx
from tests.uploads.conftest import OFFSET_STREAM, submitted_with
from vexam.core.audit import AuditEntry
from vexam.exams import upload_checks, uploads
from vexam.exams.models import Upload

pytestmark = pytest.mark.usefixtures("app")


async def test_two_checks_of_one_upload_at_once_verify_it_once(
    app, client, inbox, new_phone, world, videos, monkeypatch
) -> None:
    """Both checks have probed the file before either records the result: one records it."""
    probed = threading.Barrier(2, timeout=10)

    def probe_together(path):
        found = original(path)
        probed.wait()
        return found

    original = upload_checks.probe_video
    monkeypatch.setattr(upload_checks, "probe_video", probe_together)
    data = videos["mp4"]
    sub = await submitted_with(app, client, inbox, new_phone, world, data)
    created = await client.post(
        "/api/v1/uploads", headers={**sub.create_headers(), **OFFSET_STREAM}, content=data
    )
    assert created.status_code == 201 and created.headers["upload-offset"] == str(len(data))
    upload_id = created.headers["location"].rsplit("/", 1)[-1]
    payload = {"upload_id": upload_id}
    queue = app.state.queue
    await asyncio.gather(*(queue.run(uploads.VERIFY_JOB, payload) for _ in range(2)))
    monkeypatch.setattr(upload_checks, "probe_video", original)
    async with app_ctx(app) as ctx:
        upload = await ctx.session.get(Upload, upload_id)
        assert upload is not None and upload.state == "verified"
        audited = await ctx.session.execute(
            select(AuditEntry.action, func.count())
            .where(AuditEntry.subject_type == "upload", AuditEntry.subject_id == upload_id)
            .group_by(AuditEntry.action)
        )
        counts = dict(audited.all())
    assert counts["upload.verified"] == 1, counts
    await queue.drain()  # the check the upload queued itself finds nothing left to do
    async with app_ctx(app) as ctx:
        again = await ctx.session.execute(
            select(func.count()).where(
                AuditEntry.action == "upload.verified", AuditEntry.subject_id == upload_id
            )
        )
        assert again.scalar_one() == 1
