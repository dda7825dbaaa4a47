"""Blob storage for videos and ID images: one async contract, a local and an S3 implementation."""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import os
import re
import stat
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import IO, Protocol
from urllib.parse import unquote, urlsplit

MAX_KEY_LENGTH = 512
OCTET_STREAM = "application/octet-stream"  # the default content type
MIN_PART_SIZE = 5 * 1024 * 1024  # S3's floor for every multipart part but the last
_SEGMENT = re.compile(r"[A-Za-z0-9._-]+")
# Temp files carry a "~", which no valid key segment can contain: they can never collide with a
# blob and `list` can recognise (and skip) them by validation alone.
_TEMP_SUFFIX = ".~part"


class BlobNotFound(Exception):
    """The requested blob does not exist."""


class InvalidBlobKey(ValueError):
    """A key breaks the key rules (see `validate_key`)."""


def validate_key(key: str) -> str:
    """Return `key` unchanged if it is a safe blob key, else raise InvalidBlobKey.

    A key is 1-512 characters of "/"-separated segments, each `[A-Za-z0-9._-]+` and neither
    "." nor "..", with no leading, trailing or doubled "/": no key can escape a store's root.
    """
    if not isinstance(key, str) or not key:
        raise InvalidBlobKey("blob key must be a non-empty string")
    if len(key) > MAX_KEY_LENGTH:
        raise InvalidBlobKey(f"blob key longer than {MAX_KEY_LENGTH} characters")
    for segment in key.split("/"):
        if not _SEGMENT.fullmatch(segment) or segment in {".", ".."}:
            raise InvalidBlobKey(f"invalid blob key {key!r}")
    return key


def _is_valid_key(key: str) -> bool:
    try:
        validate_key(key)
    except InvalidBlobKey:
        return False
    return True


def _validate_prefix(prefix: str) -> None:
    # A list prefix is "" or key-like, optionally ending in "/" (a "directory").
    if prefix:
        validate_key(prefix.removesuffix("/"))


def _check_range(start: int, end: int | None, chunk_size: int) -> None:
    if start < 0:
        raise ValueError("range start must be >= 0")
    if end is not None and end < start:
        raise ValueError("range end must be >= start")
    if chunk_size <= 0:
        raise ValueError("chunk_size must be > 0")


class BlobStore(Protocol):
    """Byte blobs addressed by validated keys; writes are atomic, deletes idempotent."""

    async def put(self, key: str, data: bytes, *, content_type: str = OCTET_STREAM) -> None:
        """Store `data` under `key`, replacing any old blob; readers see old or new, never part."""
        ...

    async def put_stream(
        self, key: str, chunks: AsyncIterator[bytes], *, content_type: str = OCTET_STREAM
    ) -> int:
        """Store the concatenated chunks atomically without holding them all; return the size.

        If `chunks` raises, nothing is stored and the error propagates.
        """
        ...

    async def get(self, key: str) -> bytes:
        """Return the whole blob; BlobNotFound if absent."""
        ...

    def iter_range(
        self, key: str, start: int = 0, end: int | None = None, chunk_size: int = 1 << 20
    ) -> AsyncIterator[bytes]:
        """Yield bytes [start, end) of the blob, end clamped to its size; BlobNotFound if absent."""
        ...

    async def size(self, key: str) -> int:
        """Return the blob's length in bytes; BlobNotFound if absent."""
        ...

    async def exists(self, key: str) -> bool:
        """Return whether a blob is stored under `key`."""
        ...

    async def delete(self, key: str) -> None:
        """Remove the blob if present; deleting a missing blob is not an error."""
        ...

    async def list(self, prefix: str = "") -> list[str]:
        """Return the sorted keys that start with `prefix` (a plain string prefix)."""
        ...

    async def ping(self) -> None:
        """Return if the store is usable, raise if it is unreachable or misconfigured."""
        ...


# --------------------------------------------------------------------------- local files


class _TempFile:
    """A temp file beside its destination, published by fsync + os.replace (sync methods)."""

    def __init__(self, dest: Path) -> None:
        self._dest = dest
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=_TEMP_SUFFIX)
        self._tmp = Path(name)
        self._file: IO[bytes] = os.fdopen(fd, "wb")

    def write(self, data: bytes) -> None:
        self._file.write(data)

    def commit(self) -> None:
        try:
            self._file.flush()
            os.fsync(self._file.fileno())
            self._file.close()
            os.replace(self._tmp, self._dest)
        except BaseException:
            self.abort()
            raise
        _fsync_dir(self._dest.parent)

    def abort(self) -> None:
        # Closing waits for any write still running in another thread (the buffered writer's
        # lock), so a cancelled put cannot leave a half-written temp file behind.
        with contextlib.suppress(OSError):
            self._file.close()
        self._tmp.unlink(missing_ok=True)


def _fsync_dir(directory: Path) -> None:
    # The rename itself is only durable once the directory entry is on disk.
    with contextlib.suppress(OSError):  # Windows cannot open directories; the replace is atomic
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _write_atomic(dest: Path, data: bytes) -> None:
    tmp = _TempFile(dest)
    try:
        tmp.write(data)
    except BaseException:
        tmp.abort()
        raise
    tmp.commit()


@contextlib.contextmanager
def _missing_is_not_found(key: str) -> Iterator[None]:
    """Turn "no such file" errors into BlobNotFound(key)."""
    try:
        yield
    # A key whose path runs through or ends at a directory is as absent as a missing file.
    except (FileNotFoundError, NotADirectoryError, IsADirectoryError) as exc:
        raise BlobNotFound(key) from exc


def _file_size(path: Path, key: str) -> int:
    with _missing_is_not_found(key):
        st = path.stat()
    if not stat.S_ISREG(st.st_mode):
        raise BlobNotFound(key)
    return st.st_size


def _open_at(path: Path, key: str, start: int) -> IO[bytes]:
    with _missing_is_not_found(key):
        f = path.open("rb")
    f.seek(start)
    return f


def _unlink_file(path: Path) -> None:
    if path.is_file():  # a directory of longer keys is not a blob: leave it alone
        path.unlink(missing_ok=True)


class LocalBlobStore:
    """Blobs as files under `root`; atomic via temp file + fsync + os.replace, I/O in threads.

    The content type is not recorded. A key cannot be both a blob and the parent of other keys
    ("a" and "a/b"): the filesystem refuses with an OSError.
    """

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def __repr__(self) -> str:
        return f"LocalBlobStore({str(self.root)!r})"

    def _path(self, key: str) -> Path:
        return self.root.joinpath(*validate_key(key).split("/"))

    async def put(self, key: str, data: bytes, *, content_type: str = OCTET_STREAM) -> None:
        """Store `data` under `key`, replacing any old blob; readers see old or new, never part."""
        await asyncio.to_thread(_write_atomic, self._path(key), data)

    async def put_stream(
        self, key: str, chunks: AsyncIterator[bytes], *, content_type: str = OCTET_STREAM
    ) -> int:
        """Stream chunks to a temp file and publish it atomically; return the bytes written."""
        dest = self._path(key)
        tmp = await asyncio.to_thread(_TempFile, dest)
        total = 0
        try:
            async for chunk in chunks:
                if chunk:
                    await asyncio.to_thread(tmp.write, chunk)
                    total += len(chunk)
        except BaseException:
            # The thread runs to completion even if this await is cancelled again.
            await asyncio.to_thread(tmp.abort)
            raise
        await asyncio.to_thread(tmp.commit)
        return total

    async def get(self, key: str) -> bytes:
        """Return the whole blob; BlobNotFound if absent."""
        path = self._path(key)
        with _missing_is_not_found(key):
            return await asyncio.to_thread(path.read_bytes)

    def iter_range(
        self, key: str, start: int = 0, end: int | None = None, chunk_size: int = 1 << 20
    ) -> AsyncIterator[bytes]:
        """Yield bytes [start, end) of the blob, end clamped to its size; BlobNotFound if absent."""
        path = self._path(key)
        _check_range(start, end, chunk_size)
        return self._iter_range(path, key, start, end, chunk_size)

    async def _iter_range(
        self, path: Path, key: str, start: int, end: int | None, chunk_size: int
    ) -> AsyncIterator[bytes]:
        # The open handle pins the file: a concurrent os.replace cannot mix two versions.
        f = await asyncio.to_thread(_open_at, path, key, start)
        try:
            remaining = end - start if end is not None else None
            while remaining is None or remaining > 0:
                want = chunk_size if remaining is None else min(chunk_size, remaining)
                data = await asyncio.to_thread(f.read, want)
                if not data:
                    break
                if remaining is not None:
                    remaining -= len(data)
                yield data
        finally:
            f.close()

    async def size(self, key: str) -> int:
        """Return the blob's length in bytes; BlobNotFound if absent."""
        return await asyncio.to_thread(_file_size, self._path(key), key)

    async def exists(self, key: str) -> bool:
        """Return whether a blob is stored under `key`."""
        return await asyncio.to_thread(self._path(key).is_file)

    async def delete(self, key: str) -> None:
        """Remove the blob if present; deleting a missing blob is not an error."""
        await asyncio.to_thread(_unlink_file, self._path(key))

    async def list(self, prefix: str = "") -> list[str]:
        """Return the sorted keys that start with `prefix` (a plain string prefix)."""
        _validate_prefix(prefix)
        return await asyncio.to_thread(self._list, prefix)

    def _list(self, prefix: str) -> builtins.list[str]:
        # Walk only the deepest directory the prefix names fully, then filter by string prefix.
        base_parts = prefix.split("/")[:-1]
        base = self.root.joinpath(*base_parts)
        keys: list[str] = []
        for dirpath, _dirs, files in os.walk(base):
            rel_dir = Path(dirpath).relative_to(self.root).as_posix()
            for name in files:
                key = name if rel_dir == "." else f"{rel_dir}/{name}"
                # Validation skips temp files and anything else not written by us.
                if key.startswith(prefix) and _is_valid_key(key):
                    keys.append(key)
        keys.sort()
        return keys

    async def ping(self) -> None:
        """Return if the root is (or can be made) a writable directory, else raise OSError."""
        await asyncio.to_thread(self._ping)

    def _ping(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        if not os.access(self.root, os.W_OK | os.X_OK):
            raise PermissionError(f"blob root {self.root} is not writable")


# --------------------------------------------------------------------------- S3


_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*):")


def blob_store_from_url(
    url: str,
    *,
    data_dir: Path,
    s3_endpoint_url: str | None = None,
    s3_region: str | None = None,
    s3_access_key: str | None = None,
    s3_secret_key: str | None = None,
) -> BlobStore:
    """Build the store a settings URL names: "", "local", a path, file:///path or s3://bucket[/p].

    Raises ValueError for any other form.
    """
    url = url.strip()
    if url in {"", "local"}:
        return LocalBlobStore(Path(data_dir) / "blobs")
    match = _SCHEME.match(url)
    # A one-letter "scheme" is a Windows drive ("C:\\blobs"), i.e. a plain path.
    if match is None or len(match.group(1)) == 1:
        return LocalBlobStore(Path(url).expanduser())
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    extras = parts.query or parts.fragment
    if scheme == "file":
        if parts.netloc not in {"", "localhost"} or not parts.path.startswith("/") or extras:
            raise ValueError(f"blob store URL {url!r}: use file:///absolute/path")
        return LocalBlobStore(Path(unquote(parts.path)))
    if scheme == "s3":
        # The URL is not echoed: a mistaken s3://key:secret@bucket would leak the secret.
        if not parts.netloc or "@" in parts.netloc or ":" in parts.netloc or extras:
            raise ValueError(
                "blob store URL must be s3://bucket[/prefix]; credentials and endpoint "
                "go in the s3_* settings"
            )
        from vexam.core.s3 import S3BlobStore  # boto3 is loaded only when S3 is used

        return S3BlobStore(
            parts.netloc,
            endpoint_url=s3_endpoint_url,
            region=s3_region,
            access_key=s3_access_key,
            secret_key=s3_secret_key,
            prefix=parts.path,
        )
    raise ValueError(
        f"unsupported blob store URL scheme {scheme!r}: use 'local', a filesystem path, "
        "file:///path or s3://bucket[/prefix]"
    )
