"""The S3 blob store: any S3-compatible service (AWS, MinIO, Ceph, OSS, COS)."""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import contextvars
import functools
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, ParamSpec, TypeVar

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

from vexam.core.storage import (
    MIN_PART_SIZE,
    OCTET_STREAM,
    BlobNotFound,
    _check_range,
    _is_valid_key,
    _validate_prefix,
    validate_key,
)

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_s3.type_defs import CompletedPartTypeDef, GetObjectRequestTypeDef

_DEFAULT_PART_SIZE = 8 * 1024 * 1024
_NOT_FOUND_CODES = frozenset({"NoSuchKey", "404", "NotFound"})


def _error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


@contextlib.contextmanager
def _missing_is_not_found(key: str) -> Iterator[None]:
    """Turn S3's "no such object" errors into BlobNotFound(key)."""
    try:
        yield
    except ClientError as exc:
        if _error_code(exc) in _NOT_FOUND_CODES:
            raise BlobNotFound(key) from exc
        raise


_P = ParamSpec("_P")
_T = TypeVar("_T")

# Blocking S3 calls wait on the network, not on the CPU: they run on threads of their own, as
# many as the client keeps connections, so that they neither queue behind nor hold up the CPU
# work of asyncio's default executor (face embeddings, hashing, file I/O), which has only
# cores + 4 threads (6 on 2 cores): under load, S3 calls waiting on the server filled it.
# The pool starts its threads on demand.
S3_THREADS = 32
_S3_POOL = ThreadPoolExecutor(max_workers=S3_THREADS, thread_name_prefix="vexam-s3")


async def in_s3_thread(fn: Callable[_P, _T], *args: _P.args, **kwargs: _P.kwargs) -> _T:
    """Run a blocking boto3 call on the process's S3 threads (as `asyncio.to_thread` does on
    the default executor, context variables included)."""
    call = functools.partial(contextvars.copy_context().run, fn, *args, **kwargs)
    return await asyncio.get_running_loop().run_in_executor(_S3_POOL, call)


class S3BlobStore:
    """Blobs in an S3-compatible bucket (AWS, MinIO, Ceph, OSS, COS) via boto3 in threads."""

    def __init__(
        self,
        bucket: str,
        *,
        endpoint_url: str | None = None,
        region: str | None = None,
        access_key: str | None = None,
        secret_key: str | None = None,
        prefix: str = "",
        part_size: int = _DEFAULT_PART_SIZE,
    ) -> None:
        if not bucket:
            raise ValueError("S3 bucket name must not be empty")
        if part_size < MIN_PART_SIZE:
            raise ValueError(f"part_size must be >= {MIN_PART_SIZE} (the S3 minimum)")
        prefix = prefix.strip("/")
        if prefix and not _is_valid_key(prefix):
            raise ValueError(f"invalid S3 key prefix {prefix!r} (same rules as a blob key)")
        self.bucket = bucket
        self.prefix = prefix
        self.part_size = part_size
        config = Config(
            # Path-style works on every S3 clone; virtual-host style needs wildcard DNS.
            s3={"addressing_style": "path" if endpoint_url else "auto"},
            # Newer botocore adds CRC checksums by default, which several S3 clones reject.
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
            retries={"mode": "standard", "max_attempts": 3},
            connect_timeout=5,
            read_timeout=60,
            max_pool_connections=S3_THREADS,  # one connection per S3 thread
        )
        # A private session: boto3's default session is module-global and not thread-safe.
        self._client: S3Client = boto3.session.Session().client(
            "s3",
            endpoint_url=endpoint_url,
            region_name=region,
            aws_access_key_id=access_key,
            aws_secret_access_key=secret_key,
            config=config,
        )

    def __repr__(self) -> str:
        return f"S3BlobStore(bucket={self.bucket!r}, prefix={self.prefix!r})"

    def _key(self, key: str) -> str:
        validate_key(key)
        return f"{self.prefix}/{key}" if self.prefix else key

    @property
    def client(self) -> S3Client:
        """The boto3 client (blocking; call it in a thread) for work the blob contract lacks,
        such as a multipart upload spread over many requests."""
        return self._client

    def object_key(self, key: str) -> str:
        """The bucket's object key of blob `key` (the store's prefix added; validated)."""
        return self._key(key)

    async def put(self, key: str, data: bytes, *, content_type: str = OCTET_STREAM) -> None:
        """Store `data` under `key` with one PUT, which S3 makes visible all at once."""
        full = self._key(key)
        await in_s3_thread(
            self._client.put_object,
            Bucket=self.bucket,
            Key=full,
            Body=data,
            ContentType=content_type,
        )

    async def put_stream(
        self, key: str, chunks: AsyncIterator[bytes], *, content_type: str = OCTET_STREAM
    ) -> int:
        """Upload chunks as a multipart upload (one PUT if small), aborted on any error."""
        full = self._key(key)
        buf = bytearray()
        total = 0
        upload_id: str | None = None
        parts: list[CompletedPartTypeDef] = []
        try:
            async for chunk in chunks:
                buf += chunk
                total += len(chunk)
                if len(buf) >= self.part_size:
                    if upload_id is None:
                        created = await in_s3_thread(
                            self._client.create_multipart_upload,
                            Bucket=self.bucket,
                            Key=full,
                            ContentType=content_type,
                        )
                        upload_id = created["UploadId"]
                    await self._upload_part(full, upload_id, parts, bytes(buf))
                    buf.clear()
            if upload_id is None:  # small blob: a single PUT is cheaper and just as atomic
                await self.put(key, bytes(buf), content_type=content_type)
                return total
            if buf:
                await self._upload_part(full, upload_id, parts, bytes(buf))
            await in_s3_thread(
                self._client.complete_multipart_upload,
                Bucket=self.bucket,
                Key=full,
                UploadId=upload_id,
                MultipartUpload={"Parts": parts},
            )
        except BaseException:
            if upload_id is not None:
                # Unaborted uploads keep their parts (and their cost) forever. The thread
                # finishes the abort even if this task is cancelled once more.
                with contextlib.suppress(Exception):
                    await in_s3_thread(
                        self._client.abort_multipart_upload,
                        Bucket=self.bucket,
                        Key=full,
                        UploadId=upload_id,
                    )
            raise
        return total

    async def _upload_part(
        self, full: str, upload_id: str, parts: list[CompletedPartTypeDef], body: bytes
    ) -> None:
        number = len(parts) + 1
        resp = await in_s3_thread(
            self._client.upload_part,
            Bucket=self.bucket,
            Key=full,
            UploadId=upload_id,
            PartNumber=number,
            Body=body,
        )
        parts.append({"ETag": resp["ETag"], "PartNumber": number})

    async def get(self, key: str) -> bytes:
        """Return the whole blob; BlobNotFound if absent."""
        full = self._key(key)
        return await in_s3_thread(self._get, full, key)

    def _get(self, full: str, key: str) -> bytes:
        with _missing_is_not_found(key):
            body = self._client.get_object(Bucket=self.bucket, Key=full)["Body"]
        try:
            return body.read()
        finally:
            body.close()

    def iter_range(
        self, key: str, start: int = 0, end: int | None = None, chunk_size: int = 1 << 20
    ) -> AsyncIterator[bytes]:
        """Yield bytes [start, end) of the blob, end clamped to its size; BlobNotFound if absent."""
        full = self._key(key)
        _check_range(start, end, chunk_size)
        return self._iter_range(full, key, start, end, chunk_size)

    async def _iter_range(
        self, full: str, key: str, start: int, end: int | None, chunk_size: int
    ) -> AsyncIterator[bytes]:
        if end is not None and end <= start:
            await self.size(key)  # an empty range still reports a missing blob
            return
        # One ranged GET reads a single object version, even if it is overwritten meanwhile.
        request: GetObjectRequestTypeDef = {"Bucket": self.bucket, "Key": full}
        if start or end is not None:  # (a ranged GET of an empty object is a 416)
            request["Range"] = f"bytes={start}-{'' if end is None else end - 1}"
        try:
            with _missing_is_not_found(key):
                resp = await in_s3_thread(lambda: self._client.get_object(**request))
        except ClientError as exc:
            if _error_code(exc) == "InvalidRange":  # start is at or past the end
                return
            raise
        body = resp["Body"]
        try:
            while True:
                data = await in_s3_thread(body.read, chunk_size)
                if not data:
                    break
                yield data
        finally:
            body.close()

    async def size(self, key: str) -> int:
        """Return the blob's length in bytes; BlobNotFound if absent."""
        full = self._key(key)
        with _missing_is_not_found(key):
            resp = await in_s3_thread(self._client.head_object, Bucket=self.bucket, Key=full)
        return resp["ContentLength"]

    async def exists(self, key: str) -> bool:
        """Return whether a blob is stored under `key`."""
        try:
            await self.size(key)
        except BlobNotFound:
            return False
        return True

    async def delete(self, key: str) -> None:
        """Remove the blob if present; deleting a missing blob is not an error."""
        full = self._key(key)
        await in_s3_thread(self._client.delete_object, Bucket=self.bucket, Key=full)

    async def list(self, prefix: str = "") -> list[str]:
        """Return the sorted keys that start with `prefix` (a plain string prefix)."""
        _validate_prefix(prefix)
        return await in_s3_thread(self._list, prefix)

    def _list(self, prefix: str) -> builtins.list[str]:
        store_prefix = f"{self.prefix}/" if self.prefix else ""
        paginator = self._client.get_paginator("list_objects_v2")
        keys: list[str] = []
        for page in paginator.paginate(Bucket=self.bucket, Prefix=store_prefix + prefix):
            for obj in page.get("Contents", []):
                key = obj["Key"].removeprefix(store_prefix)
                if _is_valid_key(key):  # objects written by other tools may not be
                    keys.append(key)
        keys.sort()
        return keys

    async def ping(self) -> None:
        """Return if the bucket is reachable with these credentials, else raise (HeadBucket)."""
        await in_s3_thread(self._client.head_bucket, Bucket=self.bucket)


# --------------------------------------------------------------------------- factory
