"""SPEC §6 media jobs after verification: poster frame, face audit flags with times (never a
failure), playback copy of recordings not playable everywhere, bounded retries, status."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from tests.helpers import app_ctx
from tests.media.conftest import (
    embedding_of,
    face_video,
    jpeg_size,
    need_faces,
    receipt_of,
    upload_video,
)
from tests.uploads.conftest import make_video
from vexam.core.audit import AuditEntry
from vexam.exams import media_audit, media_jobs, media_transcode
from vexam.exams.models import Upload
from vexam.exams.upload_checks import probe_video

pytestmark = pytest.mark.usefixtures("app")


async def upload_row(app: Any, upload_id: str) -> Upload:
    async with app_ctx(app) as ctx:
        row = await ctx.session.get(Upload, upload_id)
        assert row is not None
        return row


async def test_right_person_has_no_flags_and_a_poster(
    app, client, inbox, new_phone, world, identity_engines, tmp_path
) -> None:
    """§6: a video of the certified person passes the audit with no flag; a poster JPEG is in
    the blob store; the status call shows done, 0 flags, a poster; H.264 MP4 is not copied."""
    need_faces()
    data = face_video(tmp_path / "right.mp4", [("obama_1.jpg", 3.0), ("obama_4.jpg", 3.0)])
    reference = embedding_of(identity_engines, "obama_2.jpg")
    done = await upload_video(app, client, inbox, new_phone, world, data, reference=reference)
    receipt = await receipt_of(client, done)
    assert receipt["upload_state"] == "verified" and receipt["upload_error"] is None
    assert receipt["media_state"] == "done" and receipt["media_flags"] == 0
    assert receipt["poster_available"] is True
    assert receipt["upload_media"]["video_codec"] == "h264"
    assert "audit" not in receipt["upload_media"]  # the probe only: flags are for reviewers
    row = await upload_row(app, done.upload_id)
    audit = row.media["audit"]
    assert audit["reference"] == "live" and audit["flags"] == []
    assert audit["decoded"] == "all"  # x264's default: one key frame in 250
    assert 5 <= audit["samples"] <= 7 and audit["compared"] >= 2
    assert audit["max_distance"] is not None and audit["max_distance"] <= 0.6
    poster = await app.state.store.get(row.media["poster"]["key"])
    assert max(jpeg_size(poster)) <= 640
    assert "playback" not in row.media  # MP4 with H.264 plays everywhere as it is
    async with app_ctx(app) as ctx:
        kinds = (
            await ctx.session.execute(
                select(AuditEntry.action).where(AuditEntry.subject_id == done.upload_id)
            )
        ).scalars()
        assert "upload.media_checked" in set(kinds)


async def test_another_person_is_flagged_at_the_right_time(
    app, client, inbox, new_phone, world, identity_engines, tmp_path
) -> None:
    """§6: the face changes to another person at 4 s: one `other_person` flag from about 4 s
    to the end; the submission stays verified (flags never fail it)."""
    need_faces()
    data = face_video(tmp_path / "switch.mp4", [("obama_1.jpg", 4.0), ("biden_2.jpg", 4.0)])
    reference = embedding_of(identity_engines, "obama_2.jpg")
    done = await upload_video(app, client, inbox, new_phone, world, data, reference=reference)
    receipt = await receipt_of(client, done)
    assert receipt["upload_state"] == "verified" and receipt["media_state"] == "done"
    assert receipt["media_flags"] == 1
    flags = media_jobs.audit_flags((await upload_row(app, done.upload_id)).media)
    assert [flag["kind"] for flag in flags] == ["other_person"]
    assert 3.0 <= flags[0]["from_s"] <= 5.0
    assert 7.0 <= flags[0]["to_s"] <= 8.5


async def test_phone_key_frames_alone_are_decoded_and_flag_in_time(
    app, client, inbox, new_phone, world, identity_engines, tmp_path
) -> None:
    """A video with a key frame every second, as phone cameras write it: only key frames are
    decoded, and the switch to another person at 4 s is still flagged from about 4 s."""
    need_faces()
    scenes = [("obama_1.jpg", 4.0), ("biden_2.jpg", 4.0)]
    data = face_video(tmp_path / "phone.mp4", scenes, keyframe_every=10)
    reference = embedding_of(identity_engines, "obama_2.jpg")
    done = await upload_video(app, client, inbox, new_phone, world, data, reference=reference)
    audit = (await upload_row(app, done.upload_id)).media["audit"]
    assert audit["decoded"] == "keyframes" and 6 <= audit["samples"] <= 9
    assert [flag["kind"] for flag in audit["flags"]] == ["other_person"]
    assert 3.0 <= audit["flags"][0]["from_s"] <= 5.0 and audit["flags"][0]["to_s"] >= 7.0


def test_key_frames_suffice_when_no_gap_is_longer_than_two_samples() -> None:
    """Key frames every second or two are enough at one sample a second; a long gap, a late
    first key frame or none at all mean decoding every frame."""
    assert media_audit.keyframes_suffice([0.0, 1.0, 2.0, 3.0], 3.9, 1.0)
    assert media_audit.keyframes_suffice([0.0, 2.0, 4.0], 5.5, 1.0)
    assert not media_audit.keyframes_suffice([0.0, 8.3], 20.0, 1.0)  # x264's default GOP
    assert not media_audit.keyframes_suffice([0.0], 10.0, 1.0)  # browser WebM: one at the start
    assert not media_audit.keyframes_suffice([], 10.0, 1.0)
    assert not media_audit.keyframes_suffice([3.0, 4.0], 5.0, 1.0)


async def test_no_face_and_several_faces_are_flagged(
    app, client, inbox, new_phone, world, identity_engines, tmp_path
) -> None:
    """§6: an empty room from 3 to 6 s, then two people from 6 to 8 s, between stretches of
    the candidate: one `no_face` and one `several_faces` run at those times."""
    need_faces()
    scenes = [("obama_1.jpg", 3.0), (None, 3.0), ("obama_4.jpg+biden_2.jpg", 2.0)]
    scenes += [("obama_1.jpg", 2.0)]
    data = face_video(tmp_path / "away.mp4", scenes)
    reference = embedding_of(identity_engines, "obama_2.jpg")
    done = await upload_video(app, client, inbox, new_phone, world, data, reference=reference)
    flags = (await upload_row(app, done.upload_id)).media["audit"]["flags"]
    assert [flag["kind"] for flag in flags] == ["no_face", "several_faces"]
    assert 2.0 <= flags[0]["from_s"] <= 4.0 and 5.0 <= flags[0]["to_s"] <= 7.0
    assert 5.0 <= flags[1]["from_s"] <= 7.0 and 7.0 <= flags[1]["to_s"] <= 9.0
    assert (await receipt_of(client, done))["media_flags"] == 2


async def test_without_a_reference_only_presence_is_checked(
    app, client, inbox, new_phone, world, tmp_path
) -> None:
    """No certified or exam-time face: the audit still flags an empty picture; it cannot say
    who is there, and says so (`reference: none`)."""
    need_faces()
    data = face_video(tmp_path / "empty.mp4", [(None, 3.0)], size=(320, 240))
    done = await upload_video(app, client, inbox, new_phone, world, data)
    audit = (await upload_row(app, done.upload_id)).media["audit"]
    assert audit["reference"] == "none"
    assert [(f["kind"], f["from_s"]) for f in audit["flags"]] == [("no_face", 0.0)]
    assert audit["flags"][0]["to_s"] >= 2.5


async def test_damaged_file_is_recording_invalid_without_media_jobs(
    app, client, inbox, new_phone, world, tmp_path
) -> None:
    """§5: a damaged file is still `recording_invalid`; no media job runs on it."""
    good = make_video(tmp_path / "cut.mp4", frames=48)
    done = await upload_video(app, client, inbox, new_phone, world, good[: len(good) // 2])
    receipt = await receipt_of(client, done)
    assert receipt["upload_state"] == "invalid" and receipt["upload_error"] == "recording_invalid"
    assert receipt["media_state"] is None and receipt["poster_available"] is False


async def test_webm_gets_an_mp4_playback_copy(
    app, client, inbox, new_phone, world, tmp_path
) -> None:
    """§6: a VP8/WebM recording gets an H.264 MP4 copy in the blob store for playback."""
    data = make_video(tmp_path / "a.webm", "webm", "libvpx", frames=48)
    done = await upload_video(app, client, inbox, new_phone, world, data)
    row = await upload_row(app, done.upload_id)
    playback = row.media["playback"]
    assert playback["video"] == "h264" and playback["content_type"] == "video/mp4"
    copy = tmp_path / "copy.mp4"
    copy.write_bytes(await app.state.store.get(playback["key"]))
    probed = probe_video(copy)
    assert probed["ok"] and probed["video_codec"] == "h264" and probed["frames"] == 48


async def test_media_jobs_retry_a_bounded_number_of_times(
    app, client, inbox, new_phone, world, tmp_path, monkeypatch
) -> None:
    """A failing media job is recorded and retried by the queue until `media_max_attempts`
    runs failed; then `failed` for good (the submission stays verified)."""
    runs: list[str] = []

    async def broken(ctx, upload, path, reference):  # type: ignore[no-untyped-def]
        runs.append(upload.id)
        raise RuntimeError("decoder exploded")

    monkeypatch.setattr(media_jobs, "_work", broken)
    data = make_video(tmp_path / "a.mp4", frames=24)
    done = await upload_video(app, client, inbox, new_phone, world, data, run_jobs=False)
    queue = app.state.queue
    with pytest.raises(RuntimeError):
        await queue.drain()  # the verification, then the first media run fails
    receipt = await receipt_of(client, done)
    assert receipt["upload_state"] == "verified" and receipt["media_state"] == "pending"
    with pytest.raises(RuntimeError):
        await queue.run(media_jobs.MEDIA_JOB, {"upload_id": done.upload_id})
    await queue.run(media_jobs.MEDIA_JOB, {"upload_id": done.upload_id})  # the last: no raise
    await queue.run(media_jobs.MEDIA_JOB, {"upload_id": done.upload_id})  # nothing left to do
    assert len(runs) == app.state.settings.media_max_attempts == 3
    receipt = await receipt_of(client, done)
    assert receipt["upload_state"] == "verified" and receipt["media_state"] == "failed"
    jobs = (await upload_row(app, done.upload_id)).media["jobs"]
    assert jobs["attempts"] == 3 and jobs["error"] == "RuntimeError"


async def test_sweep_requeues_lost_media_jobs(
    app, client, inbox, new_phone, world, tmp_path, clock
) -> None:
    """A verified upload whose media jobs were lost (pending too long) is re-queued by the
    sweep and then done; one already done is left alone."""
    data = make_video(tmp_path / "a.mp4", frames=24)
    done = await upload_video(app, client, inbox, new_phone, world, data)
    async with app_ctx(app) as ctx:
        row = await ctx.session.get(Upload, done.upload_id)
        assert row is not None
        row.media = {**row.media, "jobs": media_jobs.pending_state()}
        row.updated_at = ctx.now()
    clock.advance(minutes=11)
    async with app_ctx(app) as ctx:
        assert done.upload_id in await media_jobs.stranded(ctx, ctx.now())
    await app.state.queue.run("uploads.sweep", {})
    assert await app.state.queue.drain() >= 1
    assert (await receipt_of(client, done))["media_state"] == "done"
    async with app_ctx(app) as ctx:
        assert done.upload_id not in await media_jobs.stranded(ctx, ctx.now())


def test_runs_are_merged_with_their_times() -> None:
    """Samples with one finding in a row become one run [first sample, next sample)."""
    kinds = [None, "no_face", "no_face", None, "other_person", "other_person", "several_faces"]
    samples = [media_audit.Sample(float(i), 1, kind=k) for i, k in enumerate(kinds)]
    runs = media_audit.merge_runs(samples, 1.0, 6.5)
    assert [(r["kind"], r["from_s"], r["to_s"], r["samples"]) for r in runs] == [
        ("no_face", 1.0, 3.0, 2),
        ("other_person", 4.0, 6.0, 2),
        ("several_faces", 6.0, 6.5, 1),
    ]
    assert media_audit.merge_runs([], 1.0, 0.0) == []


@pytest.mark.parametrize(
    ("probe", "needed"),
    [
        (
            {"container": "mov,mp4,m4a,3gp,3g2,mj2", "video_codec": "h264", "audio_codec": "aac"},
            False,
        ),
        (
            {"container": "mov,mp4,m4a,3gp,3g2,mj2", "video_codec": "h264", "audio_codec": None},
            False,
        ),
        (
            {"container": "mov,mp4,m4a,3gp,3g2,mj2", "video_codec": "h264", "audio_codec": "opus"},
            True,
        ),
        (
            {"container": "mov,mp4,m4a,3gp,3g2,mj2", "video_codec": "vp9", "audio_codec": "opus"},
            True,
        ),
        ({"container": "matroska,webm", "video_codec": "vp8", "audio_codec": "opus"}, True),
    ],
)
def test_which_recordings_get_a_playback_copy(probe: dict[str, Any], needed: bool) -> None:
    """Only MP4 with H.264 and AAC (or no sound) plays in every browser as it is."""
    assert media_transcode.needs_transcode(probe) is needed
