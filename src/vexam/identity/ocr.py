"""ID-card OCR: read the portrait side of a resident ID card from a photo (SPEC §3).

`IdCardReader.read` gates the photo before OCR (decodable, large enough, sharp enough), runs
RapidOCR (PP-OCRv4 weights shipped in the `rapidocr_onnxruntime` wheel, no network), and
hands the text boxes to `idcard_fields.parse_card`, which accepts an ID number only when it
passes every GB 11643 rule. Every refusal is `IdPhotoUnclear(reason)`: the API answers
`id_photo_unclear` and the candidate retakes the photo or types the fields in.
"""

from __future__ import annotations

import dataclasses
import io
import math
import threading
import warnings
from datetime import date
from typing import Any

import numpy as np
from PIL import Image, ImageFilter, ImageOps, UnidentifiedImageError

from vexam.identity.idcard_fields import (
    ETHNICITIES,
    IdCardReading,
    IdPhotoUnclear,
    OcrBox,
    OcrField,
    Quad,
    centre,
    inside,
    label_box,
    number_boxes,
    parse_card,
    region_after,
)

__all__ = [
    "ETHNICITIES",
    "MIN_SHARPNESS",
    "MIN_SHORT_SIDE",
    "IdCardReader",
    "IdCardReading",
    "IdPhotoUnclear",
    "OcrField",
    "directional_sharpness",
    "gate",
    "sharpness",
]

# Shorter side, in pixels, below which a photo is refused before OCR. Measured on generated
# cards filling the frame: at 250 and at 200 px every ID number was still read right (11 of
# 12 cards with all six fields), and such photos still pass the sharpness gate. Below this
# nothing was measured, so nothing is promised.
MIN_SHORT_SIDE = 200
# The sharpness measure looks at the photo at this shorter side, after stretching its
# contrast, so neither the camera's resolution nor a washed-out exposure moves the figure.
SHARPNESS_SHORT_SIDE = 540
# Variance of the Laplacian under which a photo is too blurred to trust. Measured on
# generated cards at SHARPNESS_SHORT_SIDE: person-readable variants >= 200 (mild motion
# blur lowest), Gaussian blur 1.5 125-155, 2.0 65-80, 3.0 about 21.
MIN_SHARPNESS = 90.0
# Motion blur (a shaking hand) smears along one direction only and barely moves the
# Laplacian's variance, yet it is what turns a 3 into a 5. The second measure is the fine
# detail left in the *least* sharp direction: the smaller eigenvalue of the gradient
# structure tensor of the high-passed image (see `directional_sharpness`). Measured on
# generated cards: readable variants >= 53 (motion blur 7 px), Gaussian blur 1.5 84-98,
# motion blur 11 px 28-37, 15 px 19-25 (where digits start to be misread), 25 px 11-13,
# Gaussian blur 3 about 10. A readable card only 200 px tall with 7 px motion blur: 38.
MIN_DIRECTIONAL_SHARPNESS = 30.0
HIGH_PASS_SIGMA = 1.5
# Very large photos are shrunk first: OCR costs grow with pixels, not with legibility.
MAX_LONG_SIDE = 1600
# Pillow refuses images above this many pixels (a decompression bomb is not a photo).
MAX_PIXELS = 60_000_000

# RapidOCR settings. box_thresh 0.3: the default 0.5 drops lone one-character boxes (男, 女,
# 回). Recognising one box at a time (batch 1) with a 160 px minimum width avoids padding
# short labels to the width of the ID number, which halves CPU time at equal accuracy.
BOX_THRESH = 0.3
ENGINE_OPTIONS: dict[str, Any] = {"rec_batch_num": 1, "rec_img_shape": [3, 48, 160]}


def sharpness(gray: np.ndarray) -> float:
    """Variance of the (4-neighbour) Laplacian of a 2-D grey image; higher is sharper."""
    a = np.asarray(gray, dtype=np.float32)
    if a.ndim != 2 or a.shape[0] < 3 or a.shape[1] < 3:
        raise ValueError("need a 2-D image of at least 3x3 pixels")
    laplacian = a[1:-1, :-2] + a[1:-1, 2:] + a[:-2, 1:-1] + a[2:, 1:-1] - 4.0 * a[1:-1, 1:-1]
    return float(laplacian.var())


def directional_sharpness(gray: np.ndarray) -> float:
    """Mean squared gradient of the high-passed image along its least sharp direction.

    The smaller eigenvalue of the structure tensor [[gx², gx·gy], [gx·gy, gy²]] (means over
    the image) of `gray` minus its Gaussian blur: low under any blur, including blur along
    one direction only, which the Laplacian's variance misses.
    """
    a = np.asarray(gray, dtype=np.float32)
    if a.ndim != 2 or a.shape[0] < 3 or a.shape[1] < 3:
        raise ValueError("need a 2-D image of at least 3x3 pixels")
    smooth = Image.fromarray(np.clip(a, 0, 255).astype(np.uint8)).filter(
        ImageFilter.GaussianBlur(HIGH_PASS_SIGMA)
    )
    detail = np.clip(a, 0, 255) - np.asarray(smooth, dtype=np.float32)
    gx = detail[1:-1, 2:] - detail[1:-1, :-2]
    gy = detail[2:, 1:-1] - detail[:-2, 1:-1]
    jxx, jyy, jxy = float((gx * gx).mean()), float((gy * gy).mean()), float((gx * gy).mean())
    half_trace = (jxx + jyy) / 2
    spread = float(np.sqrt(max(half_trace * half_trace - (jxx * jyy - jxy * jxy), 0.0)))
    return half_trace - spread


def _normalised_gray(image: Image.Image) -> np.ndarray:
    """Grey image at SHARPNESS_SHORT_SIDE with its 1st-99th percentile stretched to 0-255."""
    gray = image.convert("L")
    scale = SHARPNESS_SHORT_SIDE / min(gray.size)
    size = (max(3, round(gray.width * scale)), max(3, round(gray.height * scale)))
    resample = Image.Resampling.BILINEAR if scale < 1 else Image.Resampling.BICUBIC
    a = np.asarray(gray.resize(size, resample), dtype=np.float32)
    low, high = np.percentile(a, [1.0, 99.0])
    stretched: np.ndarray = (a - low) * (255.0 / max(float(high - low), 1.0))
    return stretched


def decode(data: bytes) -> Image.Image:
    """Decode an uploaded photo upright (EXIF orientation applied) as RGB; else `undecodable`."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
            if image.width * image.height > MAX_PIXELS:
                raise IdPhotoUnclear("undecodable")
            image.load()
            upright = ImageOps.exif_transpose(image)
            return upright.convert("RGB")
    except IdPhotoUnclear:
        raise
    except (
        UnidentifiedImageError,
        OSError,
        ValueError,
        SyntaxError,
        Image.DecompressionBombError,
        Image.DecompressionBombWarning,
        EOFError,
    ):
        raise IdPhotoUnclear("undecodable") from None


def gate(image: Image.Image) -> float:
    """Refuse a photo too small or too blurred to read; return its sharpness."""
    if min(image.size) < MIN_SHORT_SIDE:
        raise IdPhotoUnclear("too_small")
    gray = _normalised_gray(image)
    measured = sharpness(gray)
    if measured < MIN_SHARPNESS or directional_sharpness(gray) < MIN_DIRECTIONAL_SHARPNESS:
        raise IdPhotoUnclear("blurry")
    return measured


def _for_ocr(image: Image.Image) -> np.ndarray:
    """BGR array for the engine, shrunk so its longer side is at most MAX_LONG_SIDE."""
    scale = MAX_LONG_SIDE / max(image.size)
    if scale < 1:
        size = (round(image.width * scale), round(image.height * scale))
        image = image.resize(size, Image.Resampling.LANCZOS)
    rgb = np.asarray(image, dtype=np.uint8)
    return np.ascontiguousarray(rgb[:, :, ::-1])


class IdCardReader:
    """Reads card photos; one engine per reader, built on first use, shared under a lock."""

    def __init__(self, *, threads: int | None = None) -> None:
        """Prepare a reader; `threads` caps onnxruntime's threads per call (None: all cores)."""
        self._threads = threads
        self._engine: Any = None
        self._lock = threading.Lock()

    def _build(self) -> Any:
        # Imported here: the module is heavy (onnxruntime, OpenCV) and importing this file
        # must not build anything.
        from rapidocr_onnxruntime import RapidOCR

        options = dict(ENGINE_OPTIONS)
        if self._threads is not None:
            options["intra_op_num_threads"] = self._threads
            options["inter_op_num_threads"] = 1
        return RapidOCR(**options)

    def _engine_call(self, array: np.ndarray, **options: Any) -> Any:
        with self._lock:
            if self._engine is None:
                self._engine = self._build()
            return self._engine(array, **options)

    def ocr(self, image: Image.Image) -> list[OcrBox]:
        """Run the engine on an RGB image and return its text boxes (no gate, no checks)."""
        result, _ = self._engine_call(_for_ocr(image), box_thresh=BOX_THRESH, use_cls=False)
        return [OcrBox.of(str(text), float(score), points) for points, text, score in result or []]

    def recognise(self, image: Image.Image, quad: Quad, *, squeeze: float = 1.0) -> OcrBox:
        """Recognise the single text line inside `quad` (no detection), as a box on `quad`.

        `squeeze` < 1 narrows the crop first: widely spaced digits then look like ordinary
        text to the recogniser, which otherwise may read one digit twice.
        """
        width = max(8, round(math.dist(quad[0], quad[1]) * squeeze))
        height = max(8, round(math.dist(quad[0], quad[3])))
        # QUAD takes the source corners as upper-left, lower-left, lower-right, upper-right.
        corners = (quad[0], quad[3], quad[2], quad[1])
        crop = image.transform(
            (width, height),
            Image.Transform.QUAD,
            tuple(c for corner in corners for c in corner),
            resample=Image.Resampling.BICUBIC,
        )
        rgb = np.asarray(crop.convert("RGB"), dtype=np.uint8)
        result, _ = self._engine_call(
            np.ascontiguousarray(rgb[:, :, ::-1]), use_det=False, use_cls=False, use_rec=True
        )
        text, score = (str(result[0][0]), float(result[0][1])) if result else ("", 0.0)
        return OcrBox(text=text, score=score, points=tuple(quad))

    def read(self, image: bytes, *, today: date | None = None) -> IdCardReading:
        """Read the six fields from photo bytes, or raise `IdPhotoUnclear` with its reason."""
        decoded = decode(image)
        measured = gate(decoded)
        scale = min(1.0, MAX_LONG_SIDE / max(decoded.size))
        if scale < 1:
            decoded = decoded.resize(
                (round(decoded.width * scale), round(decoded.height * scale)),
                Image.Resampling.LANCZOS,
            )
        boxes = self.ocr(decoded)
        try:
            reading = parse_card(boxes, sharpness=measured, today=today)
        except IdPhotoUnclear as refused:
            if refused.reason != "id_number_unreadable":
                raise
            boxes, reading = self._reread_number(decoded, boxes, measured, today)
        return self._reread_fields(decoded, boxes, reading, today)

    def _reread_number(
        self, image: Image.Image, boxes: list[OcrBox], measured: float, today: date | None
    ) -> tuple[list[OcrBox], IdCardReading]:
        """Second look at a number line that gave no valid number: a tighter crop, squeezed.

        Each new read must pass every rule on its own; reads giving two different valid
        numbers are refused, as is no valid read at all.
        """
        found: list[tuple[list[OcrBox], IdCardReading]] = []
        for line in number_boxes(boxes):
            _, height = _box_size(line)
            quad = _grow(line.points, 0.4 * height, 0.15 * height)
            for squeeze in (1.0, 0.6):
                again = self.recognise(image, quad, squeeze=squeeze)
                trial = [b for b in boxes if b is not line] + [again]
                try:
                    found.append((trial, parse_card(trial, sharpness=measured, today=today)))
                except IdPhotoUnclear:
                    continue
        numbers = {reading.id_number.value for _, reading in found}
        if len(numbers) != 1:
            raise IdPhotoUnclear("id_number_unreadable")
        return found[0]

    def _reread_fields(
        self,
        image: Image.Image,
        boxes: list[OcrBox],
        reading: IdCardReading,
        today: date | None,
    ) -> IdCardReading:
        """Second look at a name or ethnicity the checks doubt: recognise the value's area.

        The detector sometimes frames only part of a value (the inner square of 回) or
        none of it; a crop right of the label, recognised alone, often reads it whole. The
        new read replaces the first only if it passes the checks the first failed.
        """
        fields = reading.fields()
        for key, label_key, length in (("ethnicity", "ethnicity", 5.5), ("name", "name", 7.0)):
            field = fields[key]
            if not field.doubtful or field.note in ("low_confidence",):
                continue
            label = label_box(boxes, label_key)
            if label is None:
                continue
            quad = region_after(label, 2, length)
            again = self.recognise(image, quad)
            trial = [b for b in boxes if not inside(centre(b), quad)] + [again]
            try:
                retry = parse_card(trial, sharpness=reading.sharpness, today=today)
            except IdPhotoUnclear:
                continue
            better = retry.fields()[key]
            if better.value is None or better.doubtful:
                continue
            if key == "ethnicity":
                reading = dataclasses.replace(reading, ethnicity=better)
            else:
                reading = dataclasses.replace(reading, name=better)
        return reading


def _box_size(box: OcrBox) -> tuple[float, float]:
    p = box.points
    return math.dist(p[0], p[1]), math.dist(p[0], p[3])


def _grow(points: Quad, dx: float, dy: float) -> Quad:
    """The quad widened by `dx` at each end and `dy` above and below, along its own axes."""
    p = points
    width, height = math.dist(p[0], p[1]), math.dist(p[0], p[3])
    ux, uy = (p[1][0] - p[0][0]) / max(width, 1.0), (p[1][1] - p[0][1]) / max(width, 1.0)
    vx, vy = (p[3][0] - p[0][0]) / max(height, 1.0), (p[3][1] - p[0][1]) / max(height, 1.0)
    signs = ((-1, -1), (1, -1), (1, 1), (-1, 1))
    return tuple(
        (x + sx * dx * ux + sy * dy * vx, y + sx * dx * uy + sy * dy * vy)
        for (x, y), (sx, sy) in zip(p, signs, strict=True)
    )
