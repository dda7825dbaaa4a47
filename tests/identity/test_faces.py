"""SPEC §3 face verification: `face_not_found`, `face_mismatch`, portrait from the ID photo.

Real photos come from the shared folder beside the repository (public-domain White House
photographs, see its README): obama_1..4 are one person, biden_1..2 another. They are
scaled the way a phone selfie (face ≈200 px in a 480x640 frame) and an ID-card portrait
(face 60-100 px, JPEG, on a pale card) would be. Tests that need them skip when the folder
is absent. The helpers here build those images and are shared with test_liveness.py.
"""

from __future__ import annotations

import functools
import io
import itertools
import struct
import threading
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageOps

from vexam.identity.faces import (
    ID_PHOTO_MAX_SIDE,
    MATCH_THRESHOLD,
    MAX_PIXELS,
    Face,
    FaceEngine,
    FaceNotFound,
    ImageUndecodable,
    face_distance,
    load_image,
)

SHARED_FACES = Path(__file__).resolve().parents[2].parent / "shared" / "faces"
needs_photos = pytest.mark.skipif(
    not SHARED_FACES.is_dir(), reason=f"shared face photos not found at {SHARED_FACES}"
)

OBAMA = ("obama_1", "obama_2", "obama_3", "obama_4")
BIDEN = ("biden_1", "biden_2")
FRAME_SIZE = (480, 640)  # a phone's front camera, portrait, as the client sends it
BACKGROUND = (90, 90, 90)
CARD_COLOUR = (232, 238, 240)


@pytest.fixture(scope="module")
def engine() -> FaceEngine:
    return FaceEngine()


@pytest.fixture(scope="module")
def selfie_embeddings(engine: FaceEngine) -> dict[str, np.ndarray]:
    """Embedding of a selfie made from each shared photo (computed once: 0.14 s each)."""
    if not SHARED_FACES.is_dir():
        pytest.skip(f"shared face photos not found at {SHARED_FACES}")
    return {n: engine.embed_largest(load_image(selfie(engine, n))) for n in OBAMA + BIDEN}


# ---- helpers that build test images (also used by test_liveness.py) --------------------


@functools.cache
def original(name: str, mirror: bool = False) -> Image.Image:
    """The full-size shared photo, EXIF orientation applied, optionally mirrored."""
    with Image.open(SHARED_FACES / f"{name}.jpg") as opened:
        image = ImageOps.exif_transpose(opened).convert("RGB")
    return ImageOps.mirror(image) if mirror else image


# Caches keyed by photo, not by engine: every engine finds the same face in a photo, and each
# test module has its own engine.
_BOXES: dict[tuple[str, bool], tuple[float, float, float, float]] = {}
_WORKING: dict[tuple[str, bool], tuple[Image.Image, tuple[float, float, float, float]]] = {}


def face_box(
    engine: FaceEngine, name: str, mirror: bool = False
) -> tuple[float, float, float, float]:
    """Box of the largest face in the full-size photo (found once at 640 px, scaled back)."""
    key = (name, mirror)
    if key not in _BOXES:
        image = original(name, mirror).copy()
        scale = 640 / max(image.size)
        image.thumbnail((640, 640))
        # Full-length portraits (obama_3, biden_1) have ≈75 px faces at 640: upsample them.
        faces = engine.detect(np.asarray(image)) or engine.detect(np.asarray(image), upsample=1)
        assert faces, f"no face in {name} (mirror={mirror})"
        left, top, right, bottom = faces[0].box
        _BOXES[key] = (left / scale, top / scale, right / scale, bottom / scale)
    return _BOXES[key]


def jpeg(image: Image.Image, quality: int = 85) -> bytes:
    """JPEG bytes of an image."""
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


def _solve_perspective(
    src: list[tuple[float, float]], dst: list[tuple[float, float]]
) -> tuple[float, ...]:
    """Pillow PERSPECTIVE coefficients mapping each dst point to its src point."""
    rows, values = [], []
    for (x, y), (u, v) in zip(dst, src, strict=True):
        rows.append([x, y, 1, 0, 0, 0, -u * x, -u * y])
        rows.append([0, 0, 0, x, y, 1, -v * x, -v * y])
        values += [u, v]
    return tuple(float(c) for c in np.linalg.solve(np.array(rows), np.array(values)))


def hand_move(
    image: Image.Image,
    centre: tuple[float, float],
    *,
    shift: tuple[float, float] = (0, 0),
    scale: float = 1.0,
    roll: float = 0.0,
    tilt_vertical_axis: float = 0.0,
    tilt_horizontal_axis: float = 0.0,
    focal: float = 600.0,
) -> Image.Image:
    """The image as a flat print held in a hand in front of a camera (focal in pixels).

    The print turns in 3-D about `centre` (roll in its plane, then tilts about the vertical
    and horizontal axes, in degrees), is scaled and shifted, and is seen through a pinhole.
    """
    yaw, pitch, turn = np.radians([tilt_vertical_axis, tilt_horizontal_axis, roll])
    rot_y = np.array([[np.cos(yaw), 0, np.sin(yaw)], [0, 1, 0], [-np.sin(yaw), 0, np.cos(yaw)]])
    rot_x = np.array(
        [[1, 0, 0], [0, np.cos(pitch), -np.sin(pitch)], [0, np.sin(pitch), np.cos(pitch)]]
    )
    rot_z = np.array([[np.cos(turn), -np.sin(turn), 0], [np.sin(turn), np.cos(turn), 0], [0, 0, 1]])
    rotation = rot_x @ rot_y @ rot_z
    cx, cy = centre

    def project(x: float, y: float) -> tuple[float, float]:
        point = rotation @ np.array([x - cx, y - cy, 0.0]) * scale
        depth = focal + point[2]
        return cx + shift[0] + focal * point[0] / depth, cy + shift[1] + focal * point[1] / depth

    width, height = image.size
    corners = [(0.0, 0.0), (width, 0.0), (width, height), (0.0, height)]
    coefficients = _solve_perspective(corners, [project(x, y) for x, y in corners])
    return image.transform(
        image.size,
        Image.Transform.PERSPECTIVE,
        coefficients,
        Image.Resampling.BICUBIC,
        fillcolor=BACKGROUND,
    )


def _working_copy(
    engine: FaceEngine, name: str, mirror: bool
) -> tuple[Image.Image, tuple[float, float, float, float]]:
    """The photo shrunk (with antialiasing) so its face is ≤ 400 px wide, and that face's box."""
    key = (name, mirror)
    if key not in _WORKING:
        photo = original(name, mirror)
        box = face_box(engine, name, mirror)
        factor = min(1.0, 400 / (box[2] - box[0]))
        size = (round(photo.width * factor), round(photo.height * factor))
        left, top, right, bottom = (v * factor for v in box)
        _WORKING[key] = (photo.resize(size, Image.Resampling.LANCZOS), (left, top, right, bottom))
    return _WORKING[key]


def camera_image(
    engine: FaceEngine,
    name: str,
    *,
    mirror: bool = False,
    face_width: float = 200,
    centre: tuple[float, float] = (240, 280),
    size: tuple[int, int] = FRAME_SIZE,
) -> Image.Image:
    """A camera frame cut from a photo: its face `face_width` px wide, centred on `centre`."""
    photo, (left, top, right, bottom) = _working_copy(engine, name, mirror)
    factor = face_width / (right - left)
    fx, fy = (left + right) / 2, (top + bottom) / 2
    # Pillow's AFFINE maps each output pixel to an input pixel; the working copy is at most
    # ≈3x larger than any frame asks for, so bicubic sampling does not alias much.
    affine = (1 / factor, 0, fx - centre[0] / factor, 0, 1 / factor, fy - centre[1] / factor)
    return photo.transform(
        size, Image.Transform.AFFINE, affine, Image.Resampling.BICUBIC, fillcolor=BACKGROUND
    )


def selfie(engine: FaceEngine, name: str, *, mirror: bool = False) -> bytes:
    """A phone selfie JPEG (480x640, face ≈200 px) of a shared photo."""
    return jpeg(camera_image(engine, name, mirror=mirror))


def id_card_photo(engine: FaceEngine, name: str | None, *, face_width: int = 80) -> bytes:
    """A photo of an ID card's portrait side: pale card, text bars, portrait on the right.

    The portrait's face is `face_width` px wide (a card photographed by a phone); None gives
    the same card with an empty portrait area. JPEG at quality 80 on a darker desk.
    """
    portrait_w, portrait_h = round(face_width * 1.9), round(face_width * 2.35)
    portrait = Image.new("RGB", (portrait_w, portrait_h), (245, 247, 250))
    if name is not None:
        photo = original(name)
        left, top, right, _ = face_box(engine, name)
        width = right - left
        crop_w, crop_h = width * 1.9, width * 2.35
        cx = (left + right) / 2
        box = (cx - crop_w / 2, top - 0.65 * width, cx + crop_w / 2, top - 0.65 * width + crop_h)
        clipped = (
            max(0, box[0]),
            max(0, box[1]),
            min(photo.width, box[2]),
            min(photo.height, box[3]),
        )
        factor = portrait_w / crop_w
        piece = photo.crop(clipped)
        piece = piece.resize(
            (round(piece.width * factor), round(piece.height * factor)), Image.Resampling.LANCZOS
        )
        portrait.paste(
            piece, (round((clipped[0] - box[0]) * factor), round((clipped[1] - box[1]) * factor))
        )
    card_w = round(portrait_w / 0.30)
    card_h = round(card_w * 54 / 85.6)
    card = Image.new("RGB", (card_w, card_h), CARD_COLOUR)
    draw = ImageDraw.Draw(card)
    for row in range(6):
        y = round(card_h * (0.12 + 0.13 * row))
        draw.rectangle(
            (
                round(card_w * 0.06),
                y,
                round(card_w * (0.25 + 0.05 * (row % 3))),
                y + round(card_h * 0.05),
            ),
            fill=(70, 70, 80),
        )
    card.paste(portrait, (round(card_w * 0.64), round(card_h * 0.12)))
    desk = Image.new("RGB", (round(card_w * 1.25), round(card_h * 1.35)), (120, 100, 80))
    desk.paste(card, (round(card_w * 0.12), round(card_h * 0.17)))
    return jpeg(desk, quality=80)


def no_face_image() -> Image.Image:
    """An indoor-like picture with no face: gradient wall, a window, a table, a lamp."""
    ramp = np.linspace(60, 200, 640, dtype=np.uint8)
    wall = np.stack([np.tile(ramp, (480, 1))] * 3, axis=-1)
    image = Image.fromarray(wall)
    draw = ImageDraw.Draw(image)
    draw.rectangle((60, 60, 260, 300), fill=(150, 190, 230), outline=(40, 30, 20), width=8)
    draw.rectangle((0, 380, 640, 480), fill=(110, 70, 40))
    draw.ellipse((420, 120, 520, 220), fill=(250, 240, 180))
    return image


# ---- tests ------------------------------------------------------------------------------


@needs_photos
def test_same_person_matches_at_selfie_size(
    engine: FaceEngine, selfie_embeddings: dict[str, np.ndarray]
) -> None:
    """§3: two different selfies of one person match (no `face_mismatch`)."""
    embeddings = selfie_embeddings
    pairs = [*itertools.combinations(OBAMA, 2), *itertools.combinations(BIDEN, 2)]
    for a, b in pairs:
        result = engine.compare(embeddings[a], embeddings[b])
        assert result.match, (a, b, result.distance)
        assert result.distance <= MATCH_THRESHOLD


@needs_photos
def test_different_people_are_a_face_mismatch(
    engine: FaceEngine, selfie_embeddings: dict[str, np.ndarray]
) -> None:
    """§3 `face_mismatch`: a selfie of one person never matches another person."""
    embeddings = selfie_embeddings
    for a, b in itertools.product(OBAMA, BIDEN):
        result = engine.compare(embeddings[a], embeddings[b])
        assert not result.match, (a, b, result.distance)
        assert result.distance > MATCH_THRESHOLD


@needs_photos
@pytest.mark.parametrize("face_width", [64, 96])
def test_portrait_from_id_photo_matches_owner_only(
    engine: FaceEngine, selfie_embeddings: dict[str, np.ndarray], face_width: int
) -> None:
    """§3: the portrait cut from an ID-card photo matches its owner's selfie, not another's."""
    cases = [("obama_1", "obama_4", "biden_1"), ("biden_2", "biden_1", "obama_2")]
    for card_name, same_selfie, other_selfie in cases:
        crop, reference = engine.portrait_from_id_photo(
            id_card_photo(engine, card_name, face_width=face_width)
        )
        same = engine.compare(selfie_embeddings[same_selfie], reference)
        other = engine.compare(selfie_embeddings[other_selfie], reference)
        assert same.match, (card_name, same_selfie, same.distance)
        assert not other.match, (card_name, other_selfie, other.distance)
        # The crop is a JPEG of the portrait (not the whole card) that still shows the face.
        with Image.open(io.BytesIO(crop)) as cropped:
            assert cropped.format == "JPEG"
            assert face_width < cropped.width < face_width * 3
        assert engine.detect(load_image(crop), upsample=1)


def test_card_without_portrait_is_face_not_found(engine: FaceEngine) -> None:
    """§3 `face_not_found`: an ID photo whose portrait area is empty."""
    with pytest.raises(FaceNotFound):
        engine.portrait_from_id_photo(id_card_photo(engine, None))


def test_image_without_face_is_face_not_found(engine: FaceEngine) -> None:
    """§3 `face_not_found`: a picture of a room, even with the small-face retry."""
    image = load_image(jpeg(no_face_image()))
    assert engine.detect(image, upsample=1) == []
    with pytest.raises(FaceNotFound):
        engine.embed_largest(image)
    with pytest.raises(FaceNotFound):
        engine.embed_largest(image, small_faces=True)


@needs_photos
def test_small_faces_retry_finds_an_id_size_face(
    engine: FaceEngine, selfie_embeddings: dict[str, np.ndarray]
) -> None:
    """§3: a ≈50 px face (an ID portrait) needs the upsampled retry, and still matches."""
    image = camera_image(engine, "obama_1", face_width=50, centre=(160, 120), size=(320, 240))
    small = load_image(jpeg(image))
    with pytest.raises(FaceNotFound):
        engine.embed_largest(small)
    embedding = engine.embed_largest(small, small_faces=True)
    assert engine.compare(embedding, selfie_embeddings["obama_2"]).match
    assert not engine.compare(embedding, selfie_embeddings["biden_2"]).match


@pytest.mark.parametrize(
    "data",
    [b"", b"this is not an image", b"\xff\xd8\xff\xe0" + b"\x00" * 64],
    ids=["empty", "text", "jpeg-header-only"],
)
def test_garbage_bytes_are_undecodable(data: bytes) -> None:
    """Garbage bytes answer ImageUndecodable (a ValueError), never a crash."""
    with pytest.raises(ImageUndecodable):
        load_image(data)
    assert issubclass(ImageUndecodable, ValueError)


def test_truncated_jpeg_is_undecodable() -> None:
    """A JPEG cut in half (an interrupted upload) is refused, not decoded half grey."""
    data = jpeg(no_face_image())
    with pytest.raises(ImageUndecodable):
        load_image(data[: len(data) // 2])


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
def test_huge_declared_size_is_refused_before_decoding() -> None:
    """A tiny file declaring 150 MP (a decompression bomb) is refused from its header."""
    buffer = io.BytesIO()
    Image.new("RGB", (1, 1)).save(buffer, format="PNG")
    data = bytearray(buffer.getvalue())
    # IHDR is the first chunk: length (4), type (4), width (4), height (4), ... then CRC.
    data[16:24] = struct.pack(">II", 15_000, 10_000)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    assert MAX_PIXELS < 15_000 * 10_000
    with pytest.raises(ImageUndecodable, match="too large"):
        load_image(bytes(data))


def test_garbage_id_photo_is_undecodable(engine: FaceEngine) -> None:
    """portrait_from_id_photo refuses bytes that are no image."""
    with pytest.raises(ImageUndecodable):
        engine.portrait_from_id_photo(b"%PDF-1.7 not a photo")


def test_load_image_applies_exif_orientation_and_downscales() -> None:
    """A portrait phone photo stored landscape with EXIF orientation 6 comes out upright."""
    stored = Image.new("RGB", (4000, 3000), (10, 20, 30))
    ImageDraw.Draw(stored).rectangle((0, 0, 400, 3000), fill=(250, 0, 0))  # red stored left
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90° clockwise to display"
    buffer = io.BytesIO()
    stored.save(buffer, format="JPEG", exif=exif)
    image = load_image(buffer.getvalue())
    assert image.shape == (640, 480, 3)
    assert image.dtype == np.uint8
    # Rotating clockwise puts the stored left edge at the top.
    assert image[5, 240, 0] > 200 and image[-5, 240, 0] < 60
    assert load_image(buffer.getvalue(), max_side=100).shape == (100, 75, 3)


def test_load_image_gives_rgb_for_grey_and_transparent_images() -> None:
    """Greyscale and RGBA inputs become 3-channel RGB (transparent areas white)."""
    grey = io.BytesIO()
    Image.new("L", (50, 40), 128).save(grey, format="PNG")
    assert load_image(grey.getvalue()).shape == (40, 50, 3)
    clear = io.BytesIO()
    Image.new("RGBA", (50, 40), (0, 0, 0, 0)).save(clear, format="PNG")
    assert load_image(clear.getvalue())[0, 0].tolist() == [255, 255, 255]


@needs_photos
def test_detect_gives_box_and_five_landmarks_in_model_order(engine: FaceEngine) -> None:
    """Face.box holds the landmarks; points 0-1 are the image-right eye, 4 the nose base."""
    faces = engine.detect(load_image(selfie(engine, "obama_1")))
    assert len(faces) == 1
    face = faces[0]
    left, top, right, bottom = face.box
    assert 150 < right - left < 260
    assert len(face.landmarks) == 5
    for x, y in face.landmarks:
        assert left <= x <= right and top <= y <= bottom
    (rx0, ry0), (rx1, _), (lx0, _), (lx1, _), (nx, ny) = face.landmarks
    assert min(lx0, lx1) < nx < min(rx0, rx1)  # the nose between the eyes...
    assert ny > ry0 + 0.3 * (rx0 - lx0)  # ...and below them
    assert lx0 < lx1 < rx1 < rx0  # outer-left, inner-left, inner-right, outer-right


@needs_photos
def test_detect_lists_the_largest_face_first(engine: FaceEngine) -> None:
    """With two people in a frame, detect sorts by box area, largest first."""
    frame = Image.new("RGB", (640, 480), BACKGROUND)
    frame.paste(camera_image(engine, "obama_1", face_width=120, size=(320, 480)), (0, 0))
    frame.paste(camera_image(engine, "biden_2", face_width=200, size=(320, 480)), (320, 0))
    faces = engine.detect(load_image(jpeg(frame)))
    assert len(faces) == 2
    assert faces[0].width > faces[1].width
    assert faces[0].box[0] >= 320


class _Searches:
    """Records the sizes of the images an engine's HOG detector is given."""

    def __init__(self, engine: FaceEngine, monkeypatch: pytest.MonkeyPatch) -> None:
        self.sizes: list[tuple[int, int]] = []
        detect = engine.detect

        def recorded(image: np.ndarray, *, upsample: int = 0) -> list[Face]:
            self.sizes.append((image.shape[1], image.shape[0]))
            return detect(image, upsample=upsample)

        monkeypatch.setattr(engine, "detect", recorded)


def _overlap(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> float:
    """Intersection over union of two boxes."""
    width = min(a[2], b[2]) - max(a[0], b[0])
    height = min(a[3], b[3]) - max(a[1], b[1])
    inter = max(0, width) * max(0, height)
    area = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1])
    return inter / (area - inter)


@needs_photos
def test_a_selfie_is_searched_on_a_halved_copy_with_landmarks_at_full_size(
    engine: FaceEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A 480x640 selfie is searched at 240x320 only; the face `locate` gives (box and five
    landmarks in the full image) is the one a full-size search gives, and so is its
    embedding's decision."""
    image = load_image(selfie(engine, "obama_1"))
    (full,) = engine.detect(image)
    searches = _Searches(engine, monkeypatch)
    (found,) = engine.locate(image)
    assert searches.sizes == [(240, 320)]
    # Boxes snap to the detector's scales (≈30 px apart here); the landmarks, which the
    # embedding is aligned by, land within a pixel or two.
    assert _overlap(found.box, full.box) > 0.6
    for (x, y), (fx, fy) in zip(found.landmarks, full.landmarks, strict=True):
        assert abs(x - fx) <= 3 and abs(y - fy) <= 3
    searches.sizes.clear()
    live = engine.embed_largest(image)
    assert searches.sizes == [(240, 320)]
    assert engine.compare(live, engine.embed(image, full)).distance < 0.1
    reference = engine.embed_largest(load_image(selfie(engine, "obama_3")))
    assert engine.compare(live, reference).match
    other = engine.embed_largest(load_image(selfie(engine, "biden_2")))
    assert not engine.compare(live, other).match


@needs_photos
def test_a_face_too_small_for_the_halved_copy_is_searched_at_full_size(
    engine: FaceEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A face ≈110 px wide in a 480x640 frame is ≈55 px in the halved copy, below the HOG
    detector's smallest: the frame is searched again at full size and the face is found.
    A frame without a face is searched at both sizes and has none."""
    image = load_image(jpeg(camera_image(engine, "biden_2", face_width=110)))
    searches = _Searches(engine, monkeypatch)
    (found,) = engine.locate(image)
    assert searches.sizes == [(240, 320), (480, 640)]
    assert 90 < found.width < 140
    searches.sizes.clear()
    with pytest.raises(FaceNotFound):
        engine.embed_largest(load_image(jpeg(no_face_image())))
    assert searches.sizes == [(320, 240), (640, 480)]


@needs_photos
def test_an_id_card_photo_is_searched_at_full_size(
    engine: FaceEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """ID-card portraits are small (small_faces): never searched on a reduced copy."""
    card = load_image(id_card_photo(engine, "obama_1"), max_side=ID_PHOTO_MAX_SIDE)
    searches = _Searches(engine, monkeypatch)
    engine.portrait_from_id_photo(id_card_photo(engine, "obama_1"))
    assert searches.sizes and set(searches.sizes) == {(card.shape[1], card.shape[0])}


@needs_photos
def test_engine_is_safe_to_share_between_threads(
    engine: FaceEngine, selfie_embeddings: dict[str, np.ndarray]
) -> None:
    """Worker threads share one engine: concurrent calls give the sequential results."""
    names = ("obama_1", "biden_2")
    images = [load_image(selfie(engine, n)) for n in names]
    expected = [selfie_embeddings[n] for n in names]
    results: dict[int, np.ndarray] = {}
    errors: list[BaseException] = []

    def work(index: int) -> None:
        try:
            results[index] = engine.embed_largest(images[index % 2])
        except BaseException as exc:  # pragma: no cover - reported by the assert below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert len(results) == 4
    for index, embedding in results.items():
        assert np.allclose(embedding, expected[index % 2], atol=1e-6)


def test_compare_accepts_exactly_the_threshold(engine: FaceEngine) -> None:
    """match is distance <= MATCH_THRESHOLD (the measured threshold, no hidden margin)."""
    reference = np.zeros(128)
    at = np.zeros(128)
    at[0] = MATCH_THRESHOLD
    beyond = np.zeros(128)
    beyond[0] = MATCH_THRESHOLD + 1e-6
    assert engine.compare(at, reference).match is True
    assert engine.compare(beyond, reference).match is False
    assert engine.compare(beyond, reference).distance == pytest.approx(MATCH_THRESHOLD + 1e-6)


def test_face_distance_refuses_wrong_shapes() -> None:
    """face_distance takes two 128-d vectors, nothing else."""
    with pytest.raises(ValueError):
        face_distance(np.zeros(128), np.zeros(64))
