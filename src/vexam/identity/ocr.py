"""ID-card OCR: read the portrait side of a resident ID card from a photo (SPEC §3).

`IdCardReader.read` gates the photo before OCR (decodable, large enough, sharp enough), runs
RapidOCR (PP-OCRv4 weights shipped in the `rapidocr_onnxruntime` wheel, no network), and
hands the text boxes to `idcard_fields.parse_card`, which accepts an ID number only when it
passes every GB 11643 rule. Every refusal is `IdPhotoUnclear(reason)`: the API answers
`id_photo_unclear` and the candidate retakes the photo or types the fields in.
"""

from __future__ import annotations

import io
import threading
import warnings
from datetime import date
from typing import Any

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from vexam.identity.idcard_fields import (
    ETHNICITIES,
    IdCardReading,
    IdPhotoUnclear,
    OcrBox,
    OcrField,
    parse_card,
)

__all__ = [
    "ETHNICITIES",
    "MIN_SHARPNESS",
    "MIN_SHORT_SIDE",
    "IdCardReader",
    "IdCardReading",
    "IdPhotoUnclear",
    "OcrField",
    "gate",
    "sharpness",
]

# Shorter side, in pixels, below which a photo is refused before OCR. A card filling the
# frame at this size still reads perfectly (bench/identity/ocr.py, "small" rows); below
# about 250 px the ID number's digits start to merge.
MIN_SHORT_SIDE = 320
# The sharpness measure looks at the photo at this shorter side, after stretching its
# contrast, so neither the camera's resolution nor a washed-out exposure moves the figure.
SHARPNESS_SHORT_SIDE = 540
# Variance of the Laplacian under which a photo is too blurred to trust. Measured on
# generated cards at SHARPNESS_SHORT_SIDE: person-readable variants >= 200 (mild motion
# blur lowest), Gaussian blur 1.5 125-155, 2.0 65-80, 3.0 about 21.
MIN_SHARPNESS = 90.0
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
    measured = sharpness(_normalised_gray(image))
    if measured < MIN_SHARPNESS:
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

    def ocr(self, image: Image.Image) -> list[OcrBox]:
        """Run the engine on an RGB image and return its text boxes (no gate, no checks)."""
        array = _for_ocr(image)
        with self._lock:
            if self._engine is None:
                self._engine = self._build()
            result, _ = self._engine(array, box_thresh=BOX_THRESH, use_cls=False)
        return [OcrBox.of(str(text), float(score), points) for points, text, score in result or []]

    def read(self, image: bytes, *, today: date | None = None) -> IdCardReading:
        """Read the six fields from photo bytes, or raise `IdPhotoUnclear` with its reason."""
        decoded = decode(image)
        measured = gate(decoded)
        return parse_card(self.ocr(decoded), sharpness=measured, today=today)
