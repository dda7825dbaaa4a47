"""The CPU-heavy engines of the identity domain, built once per process on first use."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from vexam.identity.faces import FaceEngine
    from vexam.identity.ocr import IdCardReader


class IdentityEngines:
    """Lazily built face engine and ID-card reader (models load in a second or two).

    A web process that never certifies anyone never loads them; one that does loads each
    once, whichever thread asks first.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._faces: FaceEngine | None = None
        self._reader: IdCardReader | None = None

    def faces(self) -> FaceEngine:
        """The face engine (dlib detector, 5-point landmarks, ResNet embeddings)."""
        with self._lock:
            if self._faces is None:
                from vexam.identity.faces import FaceEngine

                self._faces = FaceEngine()
            return self._faces

    def reader(self) -> IdCardReader:
        """The ID-card reader (RapidOCR on onnxruntime)."""
        with self._lock:
            if self._reader is None:
                from vexam.identity.ocr import IdCardReader

                self._reader = IdCardReader()
            return self._reader
