"""What the machine sees in a verified recording (SPEC §6): poster frame and face audit.

One decoding pass samples a frame every `every_s` seconds of the video's own timeline; when
the file has a key frame at least every two seconds (phone cameras), only key frames are
decoded, which is most of the saving on long recordings. On
each sample the HOG detector counts faces; a single face is compared with the certified
identity's embedding at the identity domain's threshold (`faces.MATCH_THRESHOLD`). The
embedding costs about as much as the detection of a 640 px frame (≈0.02 s each on one
core), so a face that stays where the last compared face was is taken to be the same person
for up to `embed_every_s`; a face that moves, appears or changes count is compared at once,
and so is every face while the last comparison found another person. Samples with the same
finding are merged into runs: `{"kind": "no_face"|"several_faces"|"other_person",
"from_s", "to_s"}`. Flags inform reviewers; they never fail a submission.

Pure functions on a local file, run in a worker thread: no database, no event loop.
"""

from __future__ import annotations

import io
import itertools
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:
    from vexam.identity.faces import Face, FaceEngine

ImageArray = npt.NDArray[np.uint8]

FLAG_KINDS = ("no_face", "several_faces", "other_person")
POSTER_MAX_SIDE = 640
POSTER_JPEG_QUALITY = 82
# Frames are scaled to this longer side before detection: HOG finds faces from ≈80 px wide at
# upsample 0 (a candidate filming themselves), and from ≈40 px with one upsample, tried only
# when none was found (a candidate filmed whole).
DETECT_MAX_SIDE = 640
# A face whose box overlaps the last compared face's box this much is taken to be the same
# person (until `embed_every_s` runs out): a swap of people moves or resizes the box.
SAME_PLACE_IOU = 0.5


@dataclass
class Sample:
    """What one sampled frame showed."""

    at_s: float
    faces: int
    # Only for one face: the distance to the reference when compared, None when not compared
    # (no reference, or carried over from the last comparison).
    distance: float | None = None
    kind: str | None = None  # a flag kind, or None when the frame is fine


@dataclass
class AuditResult:
    """The audit of one video: flags (merged runs), samples, poster and timing."""

    flags: list[dict[str, Any]]
    samples: int
    compared: int
    duration_s: float
    seconds: float
    poster_jpeg: bytes | None
    poster_at_s: float | None
    poster_size: tuple[int, int] | None
    distances: list[float] = field(default_factory=list)
    decoded: str = "all"  # "all" frames, or only "keyframes" (see `keyframes_suffice`)

    def summary(self, *, every_s: float, reference: str, threshold: float) -> dict[str, Any]:
        """The JSON kept in `upload.media["audit"]`."""
        return {
            "flags": self.flags,
            "samples": self.samples,
            "compared": self.compared,
            "every_s": every_s,
            "reference": reference,
            "threshold": threshold,
            "max_distance": round(max(self.distances), 4) if self.distances else None,
            "duration_s": round(self.duration_s, 3),
            "decoded": self.decoded,
            "seconds": round(self.seconds, 3),
        }


def _rotated(image: ImageArray, rotation: int) -> ImageArray:
    # Phones store portrait video as landscape frames plus a display rotation: the detector
    # only finds upright faces, so turn the frame as a player would.
    turns = (-rotation // 90) % 4
    return np.ascontiguousarray(np.rot90(image, turns)) if turns else image


def keyframe_times(path: Path) -> tuple[list[float], float]:
    """(times of the key frames, time of the last frame) in seconds from the first packet,
    read from the container's packets without decoding anything."""
    import av

    keys: list[float] = []
    first: float | None = None
    last = 0.0
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        for packet in container.demux(stream):
            if packet.pts is None or packet.time_base is None:
                continue
            when = float(packet.pts * packet.time_base)
            first = when if first is None else min(first, when)
            last = max(last, when)
            if packet.is_keyframe:
                keys.append(when)
    start = first or 0.0
    return sorted(k - start for k in keys), last - start


def keyframes_suffice(keys: list[float], end: float, every_s: float) -> bool:
    """Whether sampling key frames alone still sees every `max(2 s, 2 × every_s)` stretch of
    the video: phone cameras put one every second or two; browser WebM has few."""
    bound = max(2.0, 2 * every_s)
    if not keys or keys[0] > bound:
        return False
    points = [*keys, end]
    return all(later - earlier <= bound for earlier, later in itertools.pairwise(points))


def sample_frames(
    path: Path, every_s: float, max_side: int, *, keyframes_only: bool = False
) -> Iterator[tuple[float, ImageArray]]:
    """(time in seconds, RGB frame with longer side <= max_side) every `every_s` seconds.

    With `keyframes_only` the decoder skips every other frame (the samples are the key
    frames at least `every_s` apart); else every frame is decoded (browser WebM has no index
    to seek with and few key frames) on one thread, and only the sampled ones are converted.
    """
    import av

    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "SLICE"
        stream.codec_context.thread_count = 1
        if keyframes_only:
            stream.codec_context.skip_frame = "NONKEY"
        start: float | None = None
        next_at = 0.0
        for frame in container.decode(stream):
            when = frame.time
            if when is None:
                continue
            if start is None:
                start = float(when)
            at = float(when) - start
            if at + 1e-6 < next_at:
                continue
            next_at = at + every_s
            width, height = frame.width, frame.height
            scale = min(1.0, max_side / max(width, height))
            out_w = max(2, int(width * scale) // 2 * 2)
            out_h = max(2, int(height * scale) // 2 * 2)
            image: ImageArray = frame.to_ndarray(width=out_w, height=out_h, format="rgb24")  # type: ignore[assignment]
            yield at, _rotated(image, int(getattr(frame, "rotation", 0) or 0))


def _iou(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> float:
    left, top = max(a[0], b[0]), max(a[1], b[1])
    right, bottom = min(a[2], b[2]), min(a[3], b[3])
    inter = max(0, right - left) * max(0, bottom - top)
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def merge_runs(samples: list[Sample], every_s: float, duration_s: float) -> list[dict[str, Any]]:
    """Consecutive samples with the same flag kind as one run [from_s, to_s).

    A run ends where the next sample starts (or at the video's end): each sample stands for
    the `every_s` seconds after it.
    """
    runs: list[dict[str, Any]] = []
    current: dict[str, Any] | None = None
    for index, sample in enumerate(samples):
        if index + 1 < len(samples):
            end = samples[index + 1].at_s
        else:
            end = sample.at_s + every_s
            if duration_s > sample.at_s:
                end = min(end, duration_s)
        if sample.kind is None:
            current = None
            continue
        if current is not None and current["kind"] == sample.kind:
            current["to_s"] = round(end, 2)
            current["samples"] += 1
            continue
        current = {
            "kind": sample.kind,
            "from_s": round(sample.at_s, 2),
            "to_s": round(end, 2),
            "samples": 1,
        }
        runs.append(current)
    return runs


def _jpeg(image: ImageArray) -> tuple[bytes, tuple[int, int]]:
    from PIL import Image

    picture = Image.fromarray(image)
    picture.thumbnail((POSTER_MAX_SIDE, POSTER_MAX_SIDE))
    out = io.BytesIO()
    picture.save(out, "JPEG", quality=POSTER_JPEG_QUALITY)
    return out.getvalue(), picture.size


class _Auditor:
    """Judges samples one by one, remembering the last compared face."""

    def __init__(
        self,
        engine: FaceEngine,
        reference: list[float] | None,
        threshold: float,
        embed_every_s: float,
    ) -> None:
        self.engine = engine
        self.reference = np.asarray(reference, dtype=np.float64) if reference else None
        self.threshold = threshold
        self.embed_every_s = embed_every_s
        self.last_box: tuple[int, int, int, int] | None = None
        self.last_at = -1e9
        self.last_kind: str | None = None
        self.compared = 0
        self.distances: list[float] = []

    def judge(self, at: float, image: ImageArray) -> Sample:
        faces = self.engine.detect(image)
        if not faces:
            # A candidate filmed whole (dance, sport) shows a small face: look again for faces
            # down to ≈40 px (≈4x the time, only on frames where none was found).
            faces = self.engine.detect(image, upsample=1)
        if len(faces) != 1:
            self.last_box = None
            return Sample(at, len(faces), kind="no_face" if not faces else "several_faces")
        face = faces[0]
        if self.reference is None:
            return Sample(at, 1)
        # Carried over only after a match: while another person is seen, every sample is
        # compared, so the flag ends where the candidate comes back.
        if (
            self.last_box is not None
            and self.last_kind is None
            and at - self.last_at < self.embed_every_s
            and _iou(self.last_box, face.box) >= SAME_PLACE_IOU
        ):
            return Sample(at, 1, kind=self.last_kind)
        return self._compare(at, image, face)

    def _compare(self, at: float, image: ImageArray, face: Face) -> Sample:
        assert self.reference is not None
        embedding = self.engine.embed(image, face)
        distance = float(np.linalg.norm(embedding - self.reference))
        self.compared += 1
        self.distances.append(distance)
        self.last_box, self.last_at = face.box, at
        self.last_kind = None if distance <= self.threshold else "other_person"
        return Sample(at, 1, distance=round(distance, 4), kind=self.last_kind)


def audit_video(
    path: Path,
    engine: FaceEngine,
    reference: list[float] | None,
    *,
    threshold: float,
    every_s: float = 1.0,
    embed_every_s: float = 3.0,
    max_side: int = DETECT_MAX_SIDE,
    duration_s: float | None = None,
    keyframes_only: bool | None = None,
) -> AuditResult:
    """Sample the whole video, flag frames without exactly one face or with another person's
    face (when a reference embedding is given), and pick a poster frame.

    The poster is the first sample showing exactly one face, else the first sample at or
    after one second, else the first frame. `keyframes_only` None decides by the file
    (`keyframes_suffice`). Raises PyAV's errors for files it cannot decode.
    """
    began = time.perf_counter()
    if keyframes_only is None:
        keys, end = keyframe_times(path)
        keyframes_only = keyframes_suffice(keys, end, every_s)
    auditor = _Auditor(engine, reference, threshold, embed_every_s)
    samples: list[Sample] = []
    poster: ImageArray | None = None
    poster_at: float | None = None
    poster_has_face = False
    for at, image in sample_frames(path, every_s, max_side, keyframes_only=keyframes_only):
        sample = auditor.judge(at, image)
        samples.append(sample)
        if not poster_has_face and (
            sample.faces == 1 or poster is None or (poster_at == 0.0 and at >= 1.0)
        ):
            poster, poster_at, poster_has_face = image, at, sample.faces == 1
    duration = duration_s or (samples[-1].at_s + every_s if samples else 0.0)
    jpeg, size = _jpeg(poster) if poster is not None else (None, None)
    return AuditResult(
        flags=merge_runs(samples, every_s, duration),
        samples=len(samples),
        compared=auditor.compared,
        duration_s=duration,
        seconds=time.perf_counter() - began,
        poster_jpeg=jpeg,
        poster_at_s=poster_at,
        poster_size=size,
        distances=auditor.distances,
        decoded="keyframes" if keyframes_only else "all",
    )
