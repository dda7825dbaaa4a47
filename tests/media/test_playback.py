"""SPEC §8: recordings only through short-lived signed links, for the candidate who made them,
the school's reviewers and admins, and support; HTTP ranges for players."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from tests.exams.test_exam_setup import new_school
from tests.helpers import app_ctx, bearer, staff
from tests.media.conftest import Uploaded, upload_video
from tests.uploads.conftest import make_video
from vexam.core.context import Principal, Role
from vexam.core.errors import CATALOGUE, VexamError
from vexam.exams import playback
from vexam.exams.models import Upload

pytestmark = pytest.mark.usefixtures("app")


def code(response: Any) -> str:
    return str(response.json()["code"])


async def links(client: Any, who: dict[str, str], upload_id: str) -> Any:
    return await client.get(f"/api/v1/uploads/{upload_id}/playback", headers=who)


@pytest.fixture
async def uploaded(app, client, inbox, new_phone, world, tmp_path) -> tuple[Uploaded, bytes]:
    """A candidate's verified H.264 MP4 recording (48 frames) with its media checked."""
    data = make_video(tmp_path / "a.mp4", frames=48)
    return await upload_video(app, client, inbox, new_phone, world, data), data


async def test_range_requests_get_exact_bytes(app, client, uploaded) -> None:
    """The candidate's link serves the file: 200 whole, 206 for a range (exact bytes and
    Content-Range), suffix and open ranges, 416 outside it; private caching only."""
    done, data = uploaded
    got = await links(client, done.sub.who, done.upload_id)
    assert got.status_code == 200, got.text
    body = got.json()
    assert body["url"].startswith("/media/") and body["poster_url"].startswith("/media/")
    url = body["url"]
    whole = await client.get(url, headers=done.sub.who)
    assert whole.status_code == 200 and whole.content == data
    assert whole.headers["accept-ranges"] == "bytes"
    assert whole.headers["content-type"] == "video/mp4"
    assert whole.headers["cache-control"].startswith("private")
    part = await client.get(url, headers={**done.sub.who, "Range": "bytes=100-1099"})
    assert part.status_code == 206
    assert part.content == data[100:1100] and len(part.content) == 1000
    assert part.headers["content-range"] == f"bytes 100-1099/{len(data)}"
    assert part.headers["content-length"] == "1000"
    tail = await client.get(url, headers={**done.sub.who, "Range": "bytes=-10"})
    assert tail.status_code == 206 and tail.content == data[-10:]
    rest = await client.get(url, headers={**done.sub.who, "Range": f"bytes={len(data) - 5}-"})
    assert rest.status_code == 206 and rest.content == data[-5:]
    past = await client.get(url, headers={**done.sub.who, "Range": f"bytes={len(data)}-"})
    assert past.status_code == 416 and code(past) == "media_range_invalid"
    assert past.headers["content-range"] == f"bytes */{len(data)}"
    head = await client.head(url, headers=done.sub.who)
    assert head.status_code == 200 and head.headers["content-length"] == str(len(data))
    poster = await client.get(body["poster_url"], headers=done.sub.who)
    assert poster.status_code == 200 and poster.headers["content-type"] == "image/jpeg"
    assert poster.content[:2] == b"\xff\xd8"


async def test_expired_and_forged_links_are_refused(app, client, uploaded, clock) -> None:
    """A link past its lifetime answers 410 `media_link_expired`; a changed one 403
    `media_link_invalid`; without signing in 401."""
    done, _ = uploaded
    url = (await links(client, done.sub.who, done.upload_id)).json()["url"]
    forged = url[:-3] + ("AAA" if not url.endswith("AAA") else "BBB")
    bad = await client.get(forged, headers=done.sub.who)
    assert bad.status_code == 403 and code(bad) == "media_link_invalid"
    other_upload = url.replace(done.upload_id, "0" * 32)
    assert (await client.get(other_upload, headers=done.sub.who)).status_code == 403
    anonymous = await client.get(url)
    assert anonymous.status_code == 401
    clock.advance(seconds=app.state.settings.media_link_seconds + 1)
    late = await client.get(url, headers=done.sub.who)
    assert late.status_code == 410 and code(late) == "media_link_expired"


async def test_other_candidates_and_other_schools_are_refused(
    app, client, inbox, new_phone, world, uploaded, tmp_path
) -> None:
    """Another candidate gets no link (`upload_not_found`) and cannot use the candidate's;
    a reviewer of another school gets none; the school's reviewer and admin and a support
    agent do, each for themselves only."""
    done, data = uploaded
    url = (await links(client, done.sub.who, done.upload_id)).json()["url"]
    other = await upload_video(
        app, client, inbox, new_phone, world, make_video(tmp_path / "b.mp4", frames=24)
    )
    refused = await links(client, other.sub.who, done.upload_id)
    assert refused.status_code == 404 and code(refused) == "upload_not_found"
    borrowed = await client.get(url, headers=other.sub.who)
    assert borrowed.status_code == 403 and code(borrowed) == "media_link_invalid"

    elsewhere = await new_school(app)
    outsider = bearer(await staff(app, client, new_phone(), "reviewer", elsewhere))
    refused = await links(client, outsider, done.upload_id)
    assert refused.status_code == 404 and code(refused) == "upload_not_found"

    reviewer = bearer(await staff(app, client, new_phone(), "reviewer", world["school_id"]))
    for who in (reviewer, world["admin"], world["agent"]):
        got = await links(client, who, done.upload_id)
        assert got.status_code == 200, got.text
        mine = got.json()["url"]
        part = await client.get(mine, headers={**who, "Range": "bytes=0-15"})
        assert part.status_code == 206 and part.content == data[:16]
        assert (await client.get(mine, headers=done.sub.who)).status_code == 403


async def test_playback_link_contract(app, uploaded) -> None:
    """`playback_link(ctx, principal, upload_id, ttl_s=...)` as the reviewer pages call it:
    a relative /media/ URL whose token names the viewer and expires after ttl_s."""
    done, _ = uploaded
    async with app_ctx(app) as ctx:
        row = await ctx.session.get(Upload, done.upload_id)
        assert row is not None
        me = Principal(row.user_id, Role.candidate, None, None, 0, "")
        url = await playback.playback_link(ctx, me, done.upload_id, ttl_s=60)
        grant = playback.read_token(ctx.settings.secret_key, url.removeprefix("/media/"), ctx.now())
        assert grant.viewer_id == row.user_id and grant.kind == "video"
        assert timedelta(seconds=59) <= grant.expires_at - ctx.now() <= timedelta(seconds=60)
        stranger = Principal(row.user_id + 10**6, Role.candidate, None, None, 0, "")
        with pytest.raises(VexamError) as refused:
            await playback.playback_link(ctx, stranger, done.upload_id)
        assert refused.value.code == "upload_not_found"
        with pytest.raises(VexamError):
            await playback.playback_link(ctx, me, "nope")


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, None),
        ("bytes=0-9", (0, 10)),
        ("bytes=90-", (90, 100)),
        ("bytes=95-200", (95, 100)),
        ("bytes=-10", (90, 100)),
        ("bytes=-500", (0, 100)),
        ("bytes=5-1", None),  # malformed: ignored, the whole file
        ("bytes=0-1,5-6", None),  # several ranges: the whole file
        ("items=0-1", None),
        ("bytes=abc", None),
        ("bytes=100-", "416"),
        ("bytes=-0", "416"),
    ],
)
def test_range_header_parsing(header: str | None, expected: Any) -> None:
    """RFC 9110 single ranges; what a server may ignore is ignored."""
    if expected == "416":
        with pytest.raises(playback.RangeNotSatisfiable):
            playback.parse_range(header, 100)
    else:
        assert playback.parse_range(header, 100) == expected


def test_media_codes_are_in_the_catalogue() -> None:
    """The refusals of playback links are catalogue codes with fitting statuses."""
    statuses = {name: CATALOGUE[name].status for name in CATALOGUE if name.startswith("media_")}
    assert statuses == {
        "media_link_invalid": 403,
        "media_link_expired": 410,
        "media_not_ready": 409,
        "media_range_invalid": 416,
    }
