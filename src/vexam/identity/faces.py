"""Face verification with dlib (SPEC §3): detect, 5-point landmarks, 128-d embedding, compare.

Models: dlib's built-in HOG frontal detector, `shape_predictor_5_face_landmarks.dat` and
`dlib_face_recognition_resnet_model_v1.dat` from the `face-recognition-models` package (both
public domain). The 68-point predictor in that package is never loaded: its training data
forbids commercial use. The CNN detector is not used either (≈2.4 s per image on a CPU).

The embedding model runs on numpy (`vexam.identity.face_net`: the same network and weights,
dlib's embedding to within about 3e-7, ≈4x less CPU than dlib-bin's build); dlib cuts the aligned
150x150 face chip it reads.

Thread safety: one `FaceEngine` per process, shared by worker threads. dlib's object detector
loads each image into its own scanner state, so it may not run twice at once on one
instance: `_locate_lock` guards it and the shape predictor, and two detections wait for each
other. Embeddings only read the network's weights and run in several threads at once.
"""

from __future__ import annotations

import importlib.util
import io
import math
import threading
from dataclasses import dataclass
from pathlib import Path

import dlib
import numpy as np
import numpy.typing as npt
from PIL import Image, ImageOps

from vexam.identity.face_net import CHIP_PADDING, CHIP_SIZE, FaceNet

# Distance at or below which two embeddings are taken as the same person. Measured on 76
# real photos of 19 people (NOTES "Faces"): same person 0.27-0.59 (median 0.38), different
# people 0.51-1.11 (median 0.89); at 0.6 every same-person pair is accepted and 0.19 % of
# different-person pairs are, and tiny (≈64 px) ID portraits already lose a few per cent of
# true accepts there. On the shared photos (bench/identity/faces.py): selfie vs selfie, same
# person 0.30-0.42, different 0.82-0.88; selfie vs a 64 px card portrait, same 0.31-0.44,
# different 0.77-0.87. Same-person pairs reach 0.59, so a lower threshold starts sending
# genuine candidates to manual review; 0.6 is also the point dlib calibrated the model for.
MATCH_THRESHOLD: float = 0.6

EMBEDDING_SIZE = 128

# Refuse before decoding anything larger: a 108 MP phone photo is the largest honest input,
# and a small file claiming more pixels is a decompression bomb.
MAX_PIXELS = 120_000_000

# Margin around the face box kept in the portrait crop, as a fraction of the box size: the
# HOG box stops at the eyebrows and the chin, a reviewer wants hair and jaw line too.
PORTRAIT_MARGIN = 0.45
PORTRAIT_JPEG_QUALITY = 90

# ID-card photos are decoded larger than selfies: the portrait is a third of the card's
# width, so at 640 px its face is only ≈80 px. Measured on card photos 2375 px wide (face
# 300 px): at 1024 the same-person median distance is 0.36 (0.38 at 640) and the crop a
# reviewer sees is 1.6x sharper, for 0.39 s CPU instead of 0.17 s, once per candidate.
ID_PHOTO_MAX_SIDE = 1024

# Selfies and camera frames are decoded at <= 640 px (landmarks and embeddings run there) and
# searched for faces on a copy halved to <= 320 px (`FaceEngine.locate`): a face at arm's
# length is 150-300 px wide at 640, so still >= 80 px (the HOG detector's smallest) at 320,
# for about a third of the detection's CPU. A frame whose face is too small there is
# searched again at full size.
DETECT_MAX_SIDE = 320

FloatArray = npt.NDArray[np.float64]
ImageArray = npt.NDArray[np.uint8]


class FaceNotFound(Exception):
    """No face was found in the image (SPEC code `face_not_found`)."""


class ImageUndecodable(ValueError):
    """The bytes are not an image Pillow can decode, or it is too large to decode."""


@dataclass(frozen=True)
class Face:
    """One detected face: box (left, top, right, bottom; right/bottom exclusive) and landmarks.

    Landmarks are the 5 points of dlib's 5-point model in its order: 0 outer and 1 inner
    corner of the eye on the image's right, 2 outer and 3 inner corner of the eye on the
    image's left, 4 the base of the nose.
    """

    box: tuple[int, int, int, int]
    landmarks: tuple[tuple[float, float], ...]

    @property
    def width(self) -> int:
        """Box width in pixels."""
        return self.box[2] - self.box[0]

    @property
    def height(self) -> int:
        """Box height in pixels."""
        return self.box[3] - self.box[1]

    @property
    def center(self) -> tuple[float, float]:
        """Box centre in pixels."""
        return ((self.box[0] + self.box[2]) / 2, (self.box[1] + self.box[3]) / 2)


@dataclass(frozen=True)
class FaceComparison:
    """Distance of two embeddings and whether it is within MATCH_THRESHOLD."""

    distance: float
    match: bool


def load_image(data: bytes, *, max_side: int = 640) -> ImageArray:
    """Decode image bytes to RGB uint8 (EXIF orientation applied, longer side <= max_side).

    Raises ImageUndecodable for anything Pillow cannot decode, for truncated files and for
    images over MAX_PIXELS.
    """
    if max_side < 1:
        raise ValueError("max_side must be positive")
    try:
        opened = Image.open(io.BytesIO(data))
        width, height = opened.size
        if width * height > MAX_PIXELS:
            raise ImageUndecodable(f"image too large: {width}x{height}")
        # JPEG decodes at 1/2, 1/4 or 1/8 scale for free: a 12 MP photo decodes to ≈1000 px
        # instead of 4000, which is most of the saving. draft() keeps the size >= requested.
        opened.draft("RGB", (max_side, max_side))
        image: Image.Image = ImageOps.exif_transpose(opened)
        if image.mode in ("RGBA", "LA", "PA") or (
            image.mode == "P" and "transparency" in image.info
        ):
            rgba = image.convert("RGBA")
            background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
            image = Image.alpha_composite(background, rgba)
        image = image.convert("RGB")
        image.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
        return np.array(image, dtype=np.uint8)
    except ImageUndecodable:
        raise
    except Exception as exc:
        # Pillow's decoders answer hostile or truncated input with many exception types
        # (OSError, ValueError, SyntaxError, struct.error, DecompressionBombError...): for
        # the caller they all mean the same thing.
        raise ImageUndecodable(f"cannot decode image: {type(exc).__name__}") from exc


def face_distance(a: FloatArray, b: FloatArray) -> float:
    """Euclidean distance of two 128-d embeddings."""
    if a.shape != (EMBEDDING_SIZE,) or b.shape != (EMBEDDING_SIZE,):
        raise ValueError(f"embeddings must have shape ({EMBEDDING_SIZE},)")
    return float(np.linalg.norm(a - b))


def models_dir() -> Path:
    """Folder holding the model files of the installed `face-recognition-models` package."""
    # The package's own loader imports pkg_resources (gone from setuptools >= 82): find the
    # folder without importing the package.
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the face-recognition-models package is not installed")
    return Path(spec.submodule_search_locations[0]) / "models"


def _scaled(box: tuple[int, int, int, int], factor: int) -> tuple[int, int, int, int]:
    left, top, right, bottom = box
    return (left * factor, top * factor, right * factor, bottom * factor)


def _check_image(image: ImageArray) -> ImageArray:
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError("image must be an RGB uint8 array of shape (height, width, 3)")
    return np.ascontiguousarray(image)


class FaceEngine:
    """dlib models loaded once; safe to share between threads (see the module docstring)."""

    def __init__(self) -> None:
        folder = models_dir()
        landmarks = folder / "shape_predictor_5_face_landmarks.dat"
        resnet = folder / "dlib_face_recognition_resnet_model_v1.dat"
        for path in (landmarks, resnet):
            if not path.is_file():
                raise RuntimeError(f"model file missing: {path}")
        self._detector = dlib.get_frontal_face_detector()
        self._predictor = dlib.shape_predictor(str(landmarks))
        self._net = FaceNet.load(resnet)
        self._locate_lock = threading.Lock()

    def detect(self, image: ImageArray, *, upsample: int = 0) -> list[Face]:
        """Faces in an RGB image with their 5 landmarks, largest box first.

        upsample=0 finds faces from ≈80 px wide; each upsample halves that and costs ≈4x.
        """
        image = _check_image(image)
        if upsample < 0:
            raise ValueError("upsample must be >= 0")
        with self._locate_lock:
            rects = self._detector(image, upsample)
            faces = [self._face(image, rect) for rect in rects]
        faces.sort(key=lambda face: face.width * face.height, reverse=True)
        return faces

    def locate(self, image: ImageArray, *, max_side: int = DETECT_MAX_SIDE) -> list[Face]:
        """Faces of a selfie or camera frame, largest first, as `detect` finds them: searched
        on a copy reduced to <= `max_side` (see DETECT_MAX_SIDE), their landmarks at full
        size; searched again at full size when the copy shows none."""
        image = _check_image(image)
        height, width = image.shape[:2]
        factor = max(1, math.ceil(max(height, width) / max_side))
        if factor > 1:
            found = self.detect(np.asarray(Image.fromarray(image).reduce(factor)))
            if found:
                return [self.face_at(image, _scaled(face.box, factor)) for face in found]
        return self.detect(image)

    def face_at(self, image: ImageArray, box: tuple[int, int, int, int]) -> Face:
        """The 5 landmarks of the face inside box (found by detect on a scaled copy, say)."""
        image = _check_image(image)
        left, top, right, bottom = box
        rect = dlib.rectangle(int(left), int(top), int(right) - 1, int(bottom) - 1)
        with self._locate_lock:
            return self._face(image, rect)

    def _face(self, image: ImageArray, rect: dlib.rectangle) -> Face:
        shape = self._predictor(image, rect)
        height, width = image.shape[:2]
        # dlib's boxes may reach past the border for faces at the edge; callers compare
        # and crop boxes, so report them clipped to the image. Landmarks stay unclipped.
        box = (
            max(0, rect.left()),
            max(0, rect.top()),
            min(width, rect.right() + 1),
            min(height, rect.bottom() + 1),
        )
        points = tuple((float(shape.part(i).x), float(shape.part(i).y)) for i in range(5))
        return Face(box=box, landmarks=points)

    def embed(self, image: ImageArray, face: Face) -> FloatArray:
        """128-d float64 embedding of one face, aligned with its 5 landmarks."""
        image = _check_image(image)
        if len(face.landmarks) != 5:
            raise ValueError("a face needs the 5 landmarks of the 5-point model")
        left, top, right, bottom = face.box
        shape = dlib.full_object_detection(
            dlib.rectangle(left, top, right - 1, bottom - 1),
            [dlib.point(round(x), round(y)) for x, y in face.landmarks],
        )
        return self._net.embed(dlib.get_face_chip(image, shape, CHIP_SIZE, CHIP_PADDING))

    def embed_largest(self, image: ImageArray, *, small_faces: bool = False) -> FloatArray:
        """Embedding of the largest face; FaceNotFound if there is none.

        Without small_faces the image is a selfie or camera frame, searched as `locate` does.
        small_faces searches at full size and retries with one upsample (finds ≈40 px faces,
        ≈4x the detection time): use it for ID-card portraits, whose faces are ≈60-120 px.
        """
        return self.embed(image, self._largest(image, small_faces=small_faces))

    def _largest(self, image: ImageArray, *, small_faces: bool) -> Face:
        if not small_faces:
            faces = self.locate(image)
        else:
            faces = self.detect(image) or self.detect(image, upsample=1)
        if not faces:
            raise FaceNotFound("no face found in the image")
        return faces[0]

    def portrait_from_id_photo(self, data: bytes) -> tuple[bytes, FloatArray]:
        """JPEG crop of the largest face (with margin) of an ID card photo, and its embedding.

        Raises ImageUndecodable for bad bytes and FaceNotFound when no face is found.
        """
        image = load_image(data, max_side=ID_PHOTO_MAX_SIDE)
        face = self._largest(image, small_faces=True)
        embedding = self.embed(image, face)
        height, width = image.shape[:2]
        margin_x = face.width * PORTRAIT_MARGIN
        margin_y = face.height * PORTRAIT_MARGIN
        crop = (
            max(0, int(face.box[0] - margin_x)),
            max(0, int(face.box[1] - margin_y * 1.3)),  # more room above: hair
            min(width, int(face.box[2] + margin_x)),
            min(height, int(face.box[3] + margin_y)),
        )
        buffer = io.BytesIO()
        Image.fromarray(image).crop(crop).save(buffer, format="JPEG", quality=PORTRAIT_JPEG_QUALITY)
        return buffer.getvalue(), embedding

    def compare(self, selfie: FloatArray, reference: FloatArray) -> FaceComparison:
        """Compare two embeddings: distance and match (distance <= MATCH_THRESHOLD)."""
        distance = face_distance(selfie, reference)
        return FaceComparison(distance=distance, match=distance <= MATCH_THRESHOLD)
