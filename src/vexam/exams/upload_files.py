"""The local store of tus uploads: one append-only file per upload, the file is the offset.

Why the file and not a counter: a process killed mid-PATCH (SIGKILL) keeps every byte it had
handed to the kernel and nothing else, so the file's size is exactly the data received, in
order. Each PATCH holds an exclusive `flock` on the file (released by the kernel however the
process ends, so a killed server leaves no stale lock); a second PATCH on the same upload is
refused at once (423). Before a PATCH is acknowledged the file is `fdatasync`ed in a worker
thread. A PATCH that carries `Upload-Checksum` first writes a marker naming its start; if it
never finished (killed, dropped) the next holder of the lock cuts the file back to the marker,
since unverified bytes of a checksummed PATCH must not be kept.

The functions here are blocking (callers run them in threads); `LocalUploadStore` is the
async store `uploads` talks to, one of the two behind `uploads.UploadStore` (S3: `upload_s3`).
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import hashlib
import os
import threading
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vexam.core.context import Ctx
from vexam.core.errors import VexamError
from vexam.exams.models import Upload

# Body bytes gathered before one write. The write itself runs on the event loop: it only
# copies into the page cache (as the raw-write reference does), whereas a thread hop per
# write costs more CPU than the copy, and holding bigger buffers costs memory per
# connection. What may wait for the disk (the lock, fdatasync, truncation) runs in threads.
WRITE_BUFFER = 64 << 10
WRITE_CHUNKS = 512  # and at most this many chunks per gathered write (IOV_MAX is 1024)

_MARKER = ".ckpt"


class UploadBusy(Exception):
    """Another request holds this upload's lock."""


class UploadFileMissing(Exception):
    """The upload's file is gone (terminated, or removed by an operator)."""


def upload_path(root: Path, upload_id: str) -> Path:
    """Where the bytes of `upload_id` live (two-level fan-out keeps folders small)."""
    return root / upload_id[:2] / upload_id


def _marker(path: Path) -> Path:
    return path.with_name(path.name + _MARKER)


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def create_file(path: Path) -> None:
    """Create the empty file of a new upload, durably (its directory entry too)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    os.close(fd)
    _fsync_dir(path.parent)


def remove_file(path: Path) -> None:
    """Delete an upload's file and marker; missing files are fine."""
    path.unlink(missing_ok=True)
    _marker(path).unlink(missing_ok=True)


def _recover(fd: int, path: Path) -> None:
    # Called with the lock held: a marker left behind names an unfinished checksummed PATCH.
    marker = _marker(path)
    try:
        start = int(marker.read_text())
    except (FileNotFoundError, ValueError):
        marker.unlink(missing_ok=True)
        return
    if os.fstat(fd).st_size > start:
        os.ftruncate(fd, start)
        os.fdatasync(fd)
    marker.unlink(missing_ok=True)


def durable_size(path: Path) -> tuple[int, bool]:
    """(bytes held, whether a PATCH is running now). With no PATCH running, an unfinished
    checksummed PATCH's bytes are removed first; while one runs, its start is reported."""
    try:
        fd = os.open(path, os.O_RDWR)
    except FileNotFoundError as exc:
        raise UploadFileMissing(str(path)) from exc
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            marker = _marker(path)
            with contextlib.suppress(FileNotFoundError, ValueError):
                return int(marker.read_text()), True
            return os.fstat(fd).st_size, True
        _recover(fd, path)
        return os.fstat(fd).st_size, False
    finally:
        os.close(fd)  # also releases the lock


def peek_size(path: Path, recorded: int) -> int:
    """The bytes held, for display, without the lock (a PATCH may be running): the start of
    an unfinished checksummed PATCH if one is marked, else the file's size; `recorded` when
    the file is gone."""
    with contextlib.suppress(FileNotFoundError, ValueError):
        return int(_marker(path).read_text())
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return recorded


def sha256_of(path: Path, chunk: int = 4 << 20) -> str:
    """The SHA-256 of the whole file (hex)."""
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while data := f.read(chunk):
            digest.update(data)
    return digest.hexdigest()


# A running hash of each upload this process has written from its first byte, so completion
# need not read the file again. Keyed by upload id: (bytes hashed, hash state).
_HASHES: dict[str, tuple[int, Any]] = {}
_HASHES_LOCK = threading.Lock()


def take_running_hash(upload_id: str, offset: int) -> Any | None:
    """The running hash of `upload_id` if it covers exactly `offset` bytes (removed from the
    cache while a PATCH uses it)."""
    with _HASHES_LOCK:
        held = _HASHES.pop(upload_id, None)
    if offset == 0:
        return hashlib.sha256()
    if held is None or held[0] != offset:
        return None
    return held[1]


def keep_running_hash(upload_id: str, offset: int, digest: Any | None) -> None:
    """Remember the running hash of `upload_id` at `offset` bytes."""
    if digest is None:
        return
    with _HASHES_LOCK:
        if len(_HASHES) > 10_000:  # bounded: a cache, not a record
            _HASHES.clear()
        _HASHES[upload_id] = (offset, digest)


def forget_running_hash(upload_id: str) -> None:
    """Drop the running hash of `upload_id`."""
    with _HASHES_LOCK:
        _HASHES.pop(upload_id, None)


@dataclass
class PatchWriter:
    """One PATCH holding the upload's lock: appends, hashes, and settles durably."""

    path: Path
    start: int
    checksummed: bool
    fd: int = -1
    written: int = 0
    chunk_hash: Any = field(default_factory=hashlib.sha256)
    file_hash: Any | None = None

    @classmethod
    def open(cls, path: Path, offset: int, *, checksummed: bool) -> PatchWriter:
        """Lock the file and check `offset` against its size (blocking: a marker left by an
        unfinished checksummed PATCH is recovered, with a sync).

        Raises UploadBusy (another PATCH holds it), UploadFileMissing, or OffsetMismatch.
        """
        writer = cls._lock(path, offset, checksummed=checksummed, recover=True)
        assert writer is not None
        return writer

    @classmethod
    def open_quick(cls, path: Path, offset: int) -> PatchWriter | None:
        """As `open` for a PATCH without a checksum, but None where `open` would wait for the
        disk (a marker to recover): fit for the event loop (open, a non-blocking lock and
        fstat only wait for cached metadata)."""
        return cls._lock(path, offset, checksummed=False, recover=False)

    @classmethod
    def _lock(
        cls, path: Path, offset: int, *, checksummed: bool, recover: bool
    ) -> PatchWriter | None:
        try:
            fd = os.open(path, os.O_RDWR)
        except FileNotFoundError as exc:
            raise UploadFileMissing(str(path)) from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise UploadBusy(str(path)) from None
        try:
            if recover:
                _recover(fd, path)
            elif os.path.lexists(_marker(path)):
                os.close(fd)
                return None
            size = os.fstat(fd).st_size
            if size != offset:
                raise OffsetMismatch(size)
            if checksummed:
                marker = _marker(path)
                marker.write_text(str(offset))
        except BaseException:
            os.close(fd)
            raise
        return cls(path=path, start=offset, checksummed=checksummed, fd=fd)

    def write(self, chunks: list[bytes]) -> None:
        """Append `chunks` at the current end in one gathered write (no joined copy; pwritev:
        no shared file position)."""
        total = sum(len(chunk) for chunk in chunks)
        position = self.start + self.written
        views = [memoryview(chunk) for chunk in chunks]
        while views:
            n = os.pwritev(self.fd, views, position)
            position += n
            while views and n >= len(views[0]):
                n -= len(views[0])
                views.pop(0)
            if views and n:
                views[0] = views[0][n:]
        self.written += total
        for chunk in chunks:
            if self.checksummed:
                self.chunk_hash.update(chunk)
            if self.file_hash is not None:
                self.file_hash.update(chunk)

    def rollback(self) -> None:
        """Cut the file back to where this PATCH started, durably, and unlock."""
        try:
            os.ftruncate(self.fd, self.start)
            os.fdatasync(self.fd)
            _marker(self.path).unlink(missing_ok=True)
        finally:
            self.close()
        self.written = 0
        self.file_hash = None

    def commit(self) -> int:
        """Make what was written durable, drop the marker, unlock; return the new size."""
        try:
            if self.written:
                os.fdatasync(self.fd)
            if self.checksummed:
                _marker(self.path).unlink(missing_ok=True)
            return os.fstat(self.fd).st_size
        finally:
            self.close()

    def settle(
        self, chunks: list[bytes], checksum: bytes | None, content_length: int | None
    ) -> int | None:
        """Write the last `chunks`, then keep the PATCH (→ the new size, durable) or, when it
        is checksummed, cut it back: None when the body was cut short (not all of
        `content_length` came), `upload_chunk_checksum_mismatch` when the hash differs."""
        if chunks:
            try:
                self.write(chunks)
            except BaseException:
                # A failed write (disk full): the file holds what reached it, and a
                # checksummed PATCH's marker makes the next lock holder cut it back.
                self.close()
                raise
        if checksum is not None:
            if content_length is not None and self.written != content_length:
                self.rollback()
                return None
            if self.chunk_hash.digest() != checksum:
                self.rollback()
                raise VexamError("upload_chunk_checksum_mismatch")
        return self.commit()

    def close(self) -> None:
        """Release the lock (idempotent)."""
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


class OffsetMismatch(Exception):
    """The PATCH's Upload-Offset is not the file's size."""

    def __init__(self, size: int) -> None:
        super().__init__(size)
        self.size = size


@dataclass
class Stored:
    """What one PATCH left in a store: the bytes now held, and the whole file's SHA-256 when
    the store could keep a running hash (else None: completion reads the file again)."""

    size: int
    digest: str | None = None


async def append(
    path: Path,
    upload_id: str,
    length: int,
    offset: int,
    chunks: AsyncIterator[bytes],
    *,
    content_length: int | None,
    checksum: bytes | None,
) -> Stored:
    """Append `chunks` at `offset` to the file of `upload_id` (`length` bytes in all) under
    the file's lock, durably; see `uploads.receive`.

    `upload_locked`, `upload_not_found`, `upload_offset_mismatch`, `upload_exceeds_length`,
    `upload_chunk_checksum_mismatch` (nothing kept). A checksummed body cut short keeps
    nothing and answers the old offset. One thread hop per PATCH, for the last write with
    the sync: the lock is taken on the loop (`PatchWriter.open_quick`; in a thread only when
    a checksum's marker must be written or recovered), and the writes between go to the page
    cache on the loop (see `WRITE_BUFFER`)."""
    try:
        writer = PatchWriter.open_quick(path, offset) if checksum is None else None
        if writer is None:
            writer = await asyncio.to_thread(
                PatchWriter.open, path, offset, checksummed=checksum is not None
            )
    except UploadBusy:
        raise VexamError("upload_locked") from None
    except UploadFileMissing:
        raise VexamError("upload_not_found") from None
    except OffsetMismatch as exc:
        raise VexamError("upload_offset_mismatch", offset=exc.size) from None
    writer.file_hash = take_running_hash(upload_id, offset)
    room = length - offset
    overflow = False
    pending: list[bytes] = []
    try:
        buffered = 0
        taken = 0
        async for chunk in chunks:
            taken += len(chunk)
            if taken > room:
                overflow = True
                break
            pending.append(chunk)
            buffered += len(chunk)
            if buffered >= WRITE_BUFFER or len(pending) >= WRITE_CHUNKS:
                writer.write(pending)
                pending, buffered = [], 0
    except BaseException:
        # Cancelled or failed mid-body: keep what was written unless it is unverifiable.
        await asyncio.to_thread(writer.rollback if checksum is not None else writer.commit)
        raise
    if overflow:
        await asyncio.to_thread(writer.rollback)
        raise VexamError("upload_exceeds_length", length=length)
    file_hash = writer.file_hash
    size = await asyncio.to_thread(writer.settle, pending, checksum, content_length)
    if size is None:  # a checksummed body cut short: nothing kept, the old offset stands
        return Stored(offset)
    keep_running_hash(upload_id, size, file_hash)
    digest = file_hash.hexdigest() if file_hash is not None and size == length else None
    return Stored(size, digest)


class LocalUploadStore:
    """Uploads as append-only files under `root` (see the module docstring)."""

    name = "local"

    def __init__(self, root: Path) -> None:
        self.root = root

    def path(self, upload_id: str) -> Path:
        """The file of one upload."""
        return upload_path(self.root, upload_id)

    async def create(self, upload_id: str) -> str | None:
        """Create the empty file of a new upload (no store reference to keep)."""
        await asyncio.to_thread(create_file, self.path(upload_id))
        return None

    async def remove(self, upload_id: str, ref: str | None) -> None:
        """Delete an upload's bytes; missing ones are fine."""
        forget_running_hash(upload_id)
        await asyncio.to_thread(remove_file, self.path(upload_id))

    async def held(self, upload_id: str, recorded: int) -> tuple[int, bool]:
        """(bytes held, whether a PATCH runs now): the file is the truth."""
        try:
            return await asyncio.to_thread(durable_size, self.path(upload_id))
        except UploadFileMissing:
            raise VexamError("upload_not_found") from None

    async def receive(
        self,
        ctx: Ctx,
        upload: Upload,
        offset: int,
        chunks: AsyncIterator[bytes],
        *,
        content_length: int | None,
        checksum: bytes | None,
    ) -> Stored:
        """Append `chunks` at `offset` under the file's lock, durably (see `append`)."""
        return await append(
            self.path(upload.id),
            upload.id,
            upload.length,
            offset,
            chunks,
            content_length=content_length,
            checksum=checksum,
        )

    async def finish(self, upload_id: str, ref: str | None, parts: int) -> None:
        """Nothing to assemble: the file is whole once its last byte is written."""
        forget_running_hash(upload_id)

    async def sha256(self, upload_id: str) -> str:
        """The SHA-256 of the whole file (hex)."""
        return await asyncio.to_thread(sha256_of, self.path(upload_id))

    @contextlib.asynccontextmanager
    async def local_copy(self, upload_id: str) -> AsyncIterator[Path]:
        """A path to read the upload from (the file itself)."""
        yield self.path(upload_id)
