"""Upload fixtures: a candidate with a submission whose declared hash and size are given,
small real videos made with PyAV, and tus request helpers."""

from __future__ import annotations

import base64
import hashlib
import os
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from tests.exams.test_sittings import candidate_for, complete, device, new_exam, ready, record
from tests.exams.test_sittings import world as world
from vexam.config import Settings

TUS = {"Tus-Resumable": "1.0.0"}
OFFSET_STREAM = {"Content-Type": "application/offset+octet-stream"}


def make_video(path: Path, fmt: str = "mp4", codec: str = "libx264", frames: int = 24) -> bytes:
    """A tiny real video (64×48, 24 fps) written by PyAV; returns its bytes."""
    import av

    with av.open(str(path), "w", format=fmt) as container:
        stream = container.add_stream(codec, rate=24)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        stream.codec_context.time_base = Fraction(1, 24)
        for i in range(frames):
            image = np.full((48, 64, 3), (i * 9) % 256, dtype=np.uint8)
            image[:, : (i * 2) % 64, 1] = 200
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path.read_bytes()


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def sha256_header(data: bytes) -> str:
    return "sha256 " + base64.b64encode(hashlib.sha256(data).digest()).decode()


@dataclass
class Submitted:
    """A candidate's submission waiting for its upload."""

    who: dict[str, str]  # the candidate's auth and device headers
    sitting_id: int
    submission_id: int
    data: bytes

    def create_headers(self, length: int | None = None, **extra: str) -> dict[str, str]:
        """The headers of a tus creation for this submission."""
        return {
            **self.who,
            **TUS,
            "Upload-Length": str(len(self.data) if length is None else length),
            "Upload-Metadata": f"submission_id {b64(str(self.submission_id))},filename "
            + b64("take1.mp4"),
            **extra,
        }


def server_env(settings: Settings, **extra: str) -> dict[str, str]:
    """The environment of a `vexam serve` process on `settings` (plus `extra` variables)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("VEXAM_")}
    env.update(
        PYTHONUNBUFFERED="1",
        VEXAM_ENV="test",
        VEXAM_DATA_DIR=str(settings.data_dir),
        VEXAM_DATABASE_URL=settings.effective_database_url,
        VEXAM_QUEUE_URL=settings.effective_queue_url,
        VEXAM_QUEUE_NAME=settings.queue_name,
        VEXAM_SECRET_KEY=settings.secret_key,
        VEXAM_DATA_KEY=settings.data_key,
        VEXAM_SMS_SENDER="console",
        **extra,
    )
    return env


async def submitted_with(
    app,
    client,
    inbox,
    new_phone,
    world,
    data: bytes,
    sha256: str | None = None,
    size: int | None = None,
    **exam: Any,
) -> Submitted:
    """A candidate who recorded and submitted a recording declared as `data` (or as `sha256`
    and `size`, for files too big to hold)."""
    created = await new_exam(client, world, **exam)
    who = await candidate_for(app, client, inbox, new_phone, world, created)
    sitting = await ready(app, client, who, created["id"])
    recording = await record(client, who, sitting)
    assert recording.status_code == 201, recording.text
    done = await complete(client, who, recording.json()["id"], duration_seconds=2)
    assert done.status_code == 200, done.text
    subject_id = sitting["subjects"][0]["subject_id"]
    receipt = await client.post(
        f"/api/v1/sittings/{sitting['id']}/subjects/{subject_id}/submission",
        json={
            "recording_id": recording.json()["id"],
            "sha256": sha256 or hashlib.sha256(data).hexdigest(),
            "size_bytes": len(data) if size is None else size,
        },
        headers={**who, **device("a")},
    )
    assert receipt.status_code == 201, receipt.text
    return Submitted({**who, **device("a")}, sitting["id"], receipt.json()["submission_id"], data)


async def create_upload(client: httpx.AsyncClient, sub: Submitted, **extra: str) -> httpx.Response:
    """POST /api/v1/uploads for the submission."""
    return await client.post("/api/v1/uploads", headers=sub.create_headers(**extra))


async def patch(
    client: httpx.AsyncClient,
    sub: Submitted,
    location: str,
    offset: int,
    body: bytes,
    **extra: str,
) -> httpx.Response:
    """One tus PATCH of `body` at `offset`."""
    headers = {**sub.who, **TUS, **OFFSET_STREAM, "Upload-Offset": str(offset), **extra}
    return await client.patch(location, content=body, headers=headers)


def patches_counted(app: Any, status: str) -> float:
    """PATCHes of uploads the app's metrics counted under the PATCH route, with `status`."""
    labels = {"method": "PATCH", "route": "/api/v1/uploads/{upload_id}", "status": status}
    counted: float | None = app.state.metrics.get_sample_value("vexam_http_requests_total", labels)
    return counted or 0.0


@pytest.fixture(scope="session")
def videos(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    """H.264/MP4 and VP8/WebM recordings, and a damaged (cut short) MP4."""
    folder = tmp_path_factory.mktemp("videos")
    mp4 = make_video(folder / "a.mp4", "mp4", "libx264", frames=48)
    webm = make_video(folder / "a.webm", "webm", "libvpx", frames=48)
    return {"mp4": mp4, "webm": webm, "damaged": mp4[: len(mp4) // 2]}
