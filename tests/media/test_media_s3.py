"""SPEC §6/§8 on the S3 store (a moto S3 API server): the media jobs read the assembled
object, put the poster and the playback copy in the bucket, and signed links serve ranges
from the bucket."""

from __future__ import annotations

from typing import Any

import pytest

from tests.media.conftest import upload_video
from tests.uploads.conftest import make_video
from tests.uploads.test_s3_store import PREFIX, bucket, s3, s3_endpoint, settings

__all__ = ["bucket", "s3", "s3_endpoint", "settings"]  # the S3 fixtures of the upload tests

pytestmark = pytest.mark.usefixtures("app")


async def test_media_jobs_and_playback_on_s3(
    app, client, inbox, new_phone, world, tmp_path, s3: Any, bucket: str
) -> None:
    """A VP8/WebM recording on S3: poster and H.264 copy stored in the bucket; the link
    serves the copy with exact 206 ranges, and the poster."""
    data = make_video(tmp_path / "a.webm", "webm", "libvpx", frames=48)
    done = await upload_video(app, client, inbox, new_phone, world, data)
    keys = sorted(
        item["Key"]
        for item in s3.list_objects_v2(Bucket=bucket, Prefix=f"{PREFIX}/media/").get("Contents", [])
    )
    assert keys == [
        f"{PREFIX}/media/{done.upload_id}/playback.mp4",
        f"{PREFIX}/media/{done.upload_id}/poster.jpg",
    ]
    copy = s3.get_object(Bucket=bucket, Key=keys[0])["Body"].read()
    got = await client.get(f"/api/v1/uploads/{done.upload_id}/playback", headers=done.sub.who)
    assert got.status_code == 200, got.text
    url = got.json()["url"]
    part = await client.get(url, headers={**done.sub.who, "Range": "bytes=10-209"})
    assert part.status_code == 206 and part.content == copy[10:210]
    assert part.headers["content-type"] == "video/mp4"
    assert part.headers["content-range"] == f"bytes 10-209/{len(copy)}"
    poster = await client.get(got.json()["poster_url"], headers=done.sub.who)
    assert poster.status_code == 200 and poster.content[:2] == b"\xff\xd8"


async def test_original_served_from_s3_when_no_copy_is_needed(
    app, client, inbox, new_phone, world, tmp_path
) -> None:
    """An H.264 MP4 needs no copy: the link serves the uploaded object itself."""
    data = make_video(tmp_path / "a.mp4", frames=24)
    done = await upload_video(app, client, inbox, new_phone, world, data)
    url = (
        await client.get(f"/api/v1/uploads/{done.upload_id}/playback", headers=done.sub.who)
    ).json()["url"]
    whole = await client.get(url, headers=done.sub.who)
    assert whole.status_code == 200 and whole.content == data
    tail = await client.get(url, headers={**done.sub.who, "Range": "bytes=-7"})
    assert tail.status_code == 206 and tail.content == data[-7:]
