"""Media fixtures: videos made with PyAV from the shared face photos, uploaded through tus
by a candidate whose exam-time face is a photo of the same person."""

from __future__ import annotations

import io
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image
from sqlalchemy import update

from tests.exams.test_sittings import status
from tests.exams.test_sittings import world as world
from tests.helpers import app_ctx
from tests.identity.conftest import SHARED_FACES
from tests.uploads.conftest import Submitted, create_upload, patch, submitted_with
from vexam.exams.models import Sitting

FPS = 10


def need_faces() -> None:
    """Skip the test when the shared face photos are absent (they live beside the repo)."""
    if not (SHARED_FACES / "obama_1.jpg").exists():
        pytest.skip(f"the shared face photos are absent ({SHARED_FACES})")


def canvas(photo: str | None, size: tuple[int, int]) -> np.ndarray:
    """An RGB frame of `size` showing the photo (fitted, centred), two photos side by side
    ("a.jpg+b.jpg"), or an empty grey room (None)."""
    width, height = size
    frame = Image.new("RGB", size, (70, 74, 80))
    names = photo.split("+") if photo else []
    slot = width // max(1, len(names))
    for index, name in enumerate(names):
        with Image.open(SHARED_FACES / name) as image:
            picture = image.convert("RGB")
        picture.thumbnail((slot, height))
        left = index * slot + (slot - picture.width) // 2
        frame.paste(picture, (left, (height - picture.height) // 2))
    return np.array(frame, dtype=np.uint8)


def face_video(
    path: Path,
    scenes: list[tuple[str | None, float]],
    *,
    size: tuple[int, int] = (640, 480),
    fps: int = FPS,
    fmt: str = "mp4",
    codec: str = "libx264",
    keyframe_every: int | None = None,
) -> bytes:
    """A video of `scenes` — (photos as `canvas` takes them, seconds) in order — with a
    slight sway so the encoder sees motion, as a hand-held phone gives; `keyframe_every`
    frames a key frame (libx264), as phone cameras encode. Returns its bytes."""
    import av

    with av.open(str(path), "w", format=fmt) as container:
        stream = container.add_stream(codec, rate=fps)
        stream.width, stream.height, stream.pix_fmt = size[0], size[1], "yuv420p"
        stream.codec_context.time_base = Fraction(1, fps)
        if codec == "libx264":
            # x264 puts a key frame every 250 frames unless told (phones: every second).
            gop = {"g": str(keyframe_every)} if keyframe_every else {}
            stream.options = {"preset": "ultrafast", **gop}
        index = 0
        for photo, seconds in scenes:
            base = canvas(photo, size)
            for _ in range(round(seconds * fps)):
                image = np.roll(base, (index % 6) - 3, axis=1)
                for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                    container.mux(packet)
                index += 1
        for packet in stream.encode():
            container.mux(packet)
    return path.read_bytes()


def embedding_of(engines: Any, photo: str) -> list[float]:
    """The face embedding of a shared photo, as the exam-time verification keeps it."""
    from vexam.identity.faces import load_image

    image = load_image((SHARED_FACES / photo).read_bytes())
    return [float(x) for x in engines.faces().embed_largest(image)]


@dataclass
class Uploaded:
    """A submission whose file was uploaded (and its media checked once the queue ran)."""

    sub: Submitted
    upload_id: str


async def upload_video(
    app: Any,
    client: Any,
    inbox: Any,
    new_phone: Any,
    world: dict[str, Any],
    data: bytes,
    *,
    reference: list[float] | None = None,
    run_jobs: bool = True,
) -> Uploaded:
    """Submit `data` as a candidate's recording, give the sitting `reference` as its
    exam-time face, upload the file through tus, and run the queued jobs."""
    sub = await submitted_with(app, client, inbox, new_phone, world, data)
    if reference is not None:
        async with app_ctx(app) as ctx:
            await ctx.session.execute(
                update(Sitting).where(Sitting.id == sub.sitting_id).values(live_embedding=reference)
            )
    created = await create_upload(client, sub)
    assert created.status_code == 201, created.text
    location = created.headers["location"]
    sent = await patch(client, sub, location, 0, data)
    assert sent.status_code == 204, sent.text
    if run_jobs:
        await app.state.queue.drain()
    return Uploaded(sub, location.rstrip("/").rsplit("/", 1)[-1])


async def receipt_of(client: Any, uploaded: Uploaded) -> dict[str, Any]:
    """The submission part of the candidate's status call."""
    view = await status(client, uploaded.sub.who, uploaded.sub.sitting_id)
    return dict(view["subjects"][0]["submission"])


def jpeg_size(data: bytes) -> tuple[int, int]:
    """Width and height of a JPEG."""
    with Image.open(io.BytesIO(data)) as image:
        assert image.format == "JPEG"
        return image.size
