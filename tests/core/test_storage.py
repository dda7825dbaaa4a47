"""Blob store contract: one suite, run on the local store and on S3 (a moto S3 API server)."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto.server import ThreadedMotoServer

from vexam.core.s3 import S3BlobStore
from vexam.core.storage import (
    BlobNotFound,
    BlobStore,
    InvalidBlobKey,
    LocalBlobStore,
    blob_store_from_url,
    validate_key,
)

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

pytestmark = pytest.mark.asyncio(loop_scope="session")

MiB = 1024 * 1024
REGION = "us-east-1"


@dataclass
class S3Server:
    endpoint_url: str
    client: S3Client

    def new_bucket(self) -> str:
        """Create a fresh bucket, so tests never see each other's objects."""
        name = f"t-{uuid.uuid4().hex[:20]}"
        self.client.create_bucket(Bucket=name)
        return name

    def store(self, bucket: str, prefix: str = "") -> S3BlobStore:
        return S3BlobStore(
            bucket,
            endpoint_url=self.endpoint_url,
            region=REGION,
            prefix=prefix,
            access_key="k",
            secret_key="s",
        )


@pytest.fixture(scope="module")
def s3_server() -> Iterator[S3Server]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        endpoint = f"http://{host}:{port}"
        client = boto3.session.Session().client(
            "s3",
            endpoint_url=endpoint,
            region_name=REGION,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )
        yield S3Server(endpoint, client)
    finally:
        server.stop()


@dataclass
class StoreCase:
    """A store under test plus a look behind its back at what it left in the backend."""

    kind: str
    store: BlobStore
    root: Path | None = None
    s3: S3Server | None = None
    bucket: str = ""

    def leftovers(self) -> list[str]:
        """Every file (local) or object and pending multipart upload (S3) in the backend."""
        if self.root is not None:
            return sorted(
                str(Path(d, f).relative_to(self.root))
                for d, _, files in os.walk(self.root)
                for f in files
            )
        assert self.s3 is not None
        objects = self.s3.client.list_objects_v2(Bucket=self.bucket).get("Contents", [])
        uploads = self.s3.client.list_multipart_uploads(Bucket=self.bucket).get("Uploads", [])
        return sorted([o["Key"] for o in objects] + [f"upload:{u['Key']}" for u in uploads])


@pytest.fixture(params=["local", "s3", "s3-prefixed"])
def case(request: pytest.FixtureRequest, tmp_path: Path) -> StoreCase:
    if request.param == "local":
        root = tmp_path / "blobs"
        return StoreCase("local", LocalBlobStore(root), root=root)
    s3: S3Server = request.getfixturevalue("s3_server")
    bucket = s3.new_bucket()
    prefix = "tenant-1/blobs" if request.param == "s3-prefixed" else ""
    return StoreCase(request.param, s3.store(bucket, prefix), s3=s3, bucket=bucket)


@pytest.fixture
def store(case: StoreCase) -> BlobStore:
    return case.store


def payload(n: int, seed: int = 0) -> bytes:
    """Deterministic, non-repeating-looking bytes so misplaced ranges cannot compare equal."""
    return bytes((i * 31 + seed + (i >> 8)) % 251 for i in range(n))


async def chunked(data: bytes, size: int) -> AsyncIterator[bytes]:
    for i in range(0, len(data), size):
        yield data[i : i + size]


async def collect(it: AsyncIterator[bytes]) -> list[bytes]:
    return [chunk async for chunk in it]


# --------------------------------------------------------------------------- basic contract


async def test_put_get_roundtrip(store: BlobStore) -> None:
    data = payload(1000)
    await store.put("videos/att-1/answer.webm", data, content_type="video/webm")
    assert await store.get("videos/att-1/answer.webm") == data
    assert await store.size("videos/att-1/answer.webm") == 1000
    assert await store.exists("videos/att-1/answer.webm") is True


async def test_empty_blob(store: BlobStore) -> None:
    await store.put("empty.bin", b"")
    assert await store.get("empty.bin") == b""
    assert await store.size("empty.bin") == 0
    assert await store.exists("empty.bin") is True
    assert await collect(store.iter_range("empty.bin")) == []


async def test_put_overwrites(store: BlobStore) -> None:
    await store.put("ids/42.jpg", b"first version, longer")
    await store.put("ids/42.jpg", b"second")
    assert await store.get("ids/42.jpg") == b"second"
    assert await store.size("ids/42.jpg") == 6
    assert await store.list("ids/") == ["ids/42.jpg"]


async def test_missing_blob(store: BlobStore) -> None:
    with pytest.raises(BlobNotFound):
        await store.get("nope/missing.bin")
    with pytest.raises(BlobNotFound):
        await store.size("nope/missing.bin")
    assert await store.exists("nope/missing.bin") is False
    with pytest.raises(BlobNotFound):
        await collect(store.iter_range("nope/missing.bin"))
    with pytest.raises(BlobNotFound):
        await collect(store.iter_range("nope/missing.bin", 5, 5))


async def test_parent_of_a_key_is_not_a_blob(store: BlobStore) -> None:
    await store.put("a/b/c.bin", b"x")
    assert await store.exists("a/b") is False
    with pytest.raises(BlobNotFound):
        await store.get("a/b")
    with pytest.raises(BlobNotFound):
        await store.size("a/b")
    await store.delete("a/b")  # not a blob: nothing to delete, and c.bin survives
    assert await store.get("a/b/c.bin") == b"x"


async def test_delete_is_idempotent(store: BlobStore) -> None:
    await store.put("tmp/x.bin", b"abc")
    await store.put("tmp/y.bin", b"def")
    await store.delete("tmp/x.bin")
    assert await store.exists("tmp/x.bin") is False
    with pytest.raises(BlobNotFound):
        await store.get("tmp/x.bin")
    await store.delete("tmp/x.bin")
    await store.delete("never/existed.bin")
    assert await store.list() == ["tmp/y.bin"]


async def test_list_by_prefix_sorted(store: BlobStore) -> None:
    keys = [
        "videos/b/1.webm",
        "ids/9.jpg",
        "videos/a/2.webm",
        "videos-old/x.webm",
        "videos/a/10.webm",
        "videos/a/1.webm",
        "top.txt",
    ]
    for i, key in enumerate(keys):
        await store.put(key, bytes([i]))
    assert await store.list() == sorted(keys)
    assert await store.list("") == sorted(keys)
    assert await store.list("videos/") == [
        "videos/a/1.webm",
        "videos/a/10.webm",
        "videos/a/2.webm",
        "videos/b/1.webm",
    ]
    # A plain string prefix, as in S3: "videos" also matches "videos-old/...".
    assert await store.list("videos") == sorted(k for k in keys if k.startswith("videos"))
    assert await store.list("videos/a/1") == ["videos/a/1.webm", "videos/a/10.webm"]
    assert await store.list("ids/9.jpg") == ["ids/9.jpg"]
    assert await store.list("nothing/") == []
    assert await store.list("t") == ["top.txt"]


# --------------------------------------------------------------------------- streaming


async def test_put_stream_multipart(case: StoreCase) -> None:
    store = case.store
    data = payload(12 * MiB, seed=7)
    written = await store.put_stream(
        "videos/big.webm", chunked(data, MiB), content_type="video/webm"
    )
    assert written == 12 * MiB
    assert await store.size("videos/big.webm") == 12 * MiB
    assert await store.get("videos/big.webm") == data
    # Across the 8 MiB part boundary of the S3 upload.
    joined = b"".join(
        await collect(store.iter_range("videos/big.webm", 8 * MiB - 10, 8 * MiB + 10))
    )
    assert joined == data[8 * MiB - 10 : 8 * MiB + 10]
    if case.s3 is not None:
        head = case.s3.client.head_object(Bucket=case.bucket, Key=_raw_key(case, "videos/big.webm"))
        assert head["ETag"].strip('"').endswith("-2")  # a real 2-part multipart object
        assert head["ContentType"] == "video/webm"
    assert case.leftovers() == [_raw_key(case, "videos/big.webm")]


async def test_put_stream_small_and_empty(store: BlobStore) -> None:
    assert await store.put_stream("s.bin", chunked(b"hello world", 3)) == 11
    assert await store.get("s.bin") == b"hello world"
    assert await store.put_stream("e.bin", chunked(b"", 3)) == 0
    assert await store.get("e.bin") == b""


async def test_put_stream_failure_leaves_nothing(case: StoreCase) -> None:
    store = case.store
    await store.put("keep/other.bin", b"other")

    async def broken() -> AsyncIterator[bytes]:
        for _ in range(10):  # past one 8 MiB part, so S3 has a multipart upload open
            yield b"\x01" * MiB
        raise RuntimeError("phone went offline")

    with pytest.raises(RuntimeError, match="phone went offline"):
        await store.put_stream("videos/broken.webm", broken())
    assert await store.exists("videos/broken.webm") is False
    assert case.leftovers() == [_raw_key(case, "keep/other.bin")]


async def test_put_stream_failure_keeps_old_version(store: BlobStore) -> None:
    await store.put("videos/v.webm", b"old")

    async def broken() -> AsyncIterator[bytes]:
        yield b"new-but-partial"
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        await store.put_stream("videos/v.webm", broken())
    assert await store.get("videos/v.webm") == b"old"


async def test_put_stream_cancelled_leaves_nothing(case: StoreCase) -> None:
    store = case.store
    reached = asyncio.Event()

    async def stalls() -> AsyncIterator[bytes]:
        for _ in range(9):
            yield b"\x02" * MiB
        reached.set()
        await asyncio.Event().wait()  # a client that stops sending
        yield b""

    task = asyncio.create_task(store.put_stream("videos/stalled.webm", stalls()))
    await reached.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert case.leftovers() == []


async def test_put_stream_is_invisible_until_complete(store: BlobStore) -> None:
    await store.put("videos/swap.webm", b"old")
    seen: list[tuple[bytes, list[str]]] = []

    async def observing() -> AsyncIterator[bytes]:
        yield b"new-1/"
        seen.append((await store.get("videos/swap.webm"), await store.list("videos/")))
        yield b"new-2"

    await store.put_stream("videos/swap.webm", observing())
    assert seen == [(b"old", ["videos/swap.webm"])]
    assert await store.get("videos/swap.webm") == b"new-1/new-2"


# --------------------------------------------------------------------------- ranges


async def test_iter_range(store: BlobStore) -> None:
    data = payload(100, seed=3)
    await store.put("r.bin", data)

    assert b"".join(await collect(store.iter_range("r.bin"))) == data
    assert b"".join(await collect(store.iter_range("r.bin", 0, None))) == data

    middle = await collect(store.iter_range("r.bin", 10, 27, chunk_size=4))
    assert b"".join(middle) == data[10:27]
    assert all(1 <= len(c) <= 4 for c in middle)

    assert b"".join(await collect(store.iter_range("r.bin", 90))) == data[90:]
    assert b"".join(await collect(store.iter_range("r.bin", 95, 500))) == data[95:]
    assert await collect(store.iter_range("r.bin", 100)) == []
    assert await collect(store.iter_range("r.bin", 150, 200)) == []
    assert await collect(store.iter_range("r.bin", 40, 40)) == []
    assert b"".join(await collect(store.iter_range("r.bin", 99, 100))) == data[99:]


async def test_iter_range_rejects_bad_bounds(store: BlobStore) -> None:
    await store.put("r.bin", b"abc")
    with pytest.raises(ValueError, match="start"):
        store.iter_range("r.bin", -1)
    with pytest.raises(ValueError, match="end"):
        store.iter_range("r.bin", 5, 2)
    with pytest.raises(ValueError, match="chunk_size"):
        store.iter_range("r.bin", chunk_size=0)


# --------------------------------------------------------------------------- keys

BAD_KEYS = ["../x", "/abs", "a//b", "a/./b", "", "k" * 513, "a b", "a/", "a/../../etc", "é.jpg"]


@pytest.mark.parametrize("key", BAD_KEYS, ids=repr)
async def test_invalid_keys_rejected_everywhere(case: StoreCase, key: str) -> None:
    store = case.store
    with pytest.raises(InvalidBlobKey):
        validate_key(key)
    with pytest.raises(InvalidBlobKey):
        await store.put(key, b"x")
    with pytest.raises(InvalidBlobKey):
        await store.put_stream(key, chunked(b"x", 1))
    with pytest.raises(InvalidBlobKey):
        await store.get(key)
    with pytest.raises(InvalidBlobKey):
        await collect(store.iter_range(key))
    with pytest.raises(InvalidBlobKey):
        await store.size(key)
    with pytest.raises(InvalidBlobKey):
        await store.exists(key)
    with pytest.raises(InvalidBlobKey):
        await store.delete(key)
    if key not in {"", "a/"}:  # "" lists everything and "a/" is a directory prefix
        with pytest.raises(InvalidBlobKey):
            await store.list(key)
    assert case.leftovers() == []


async def test_valid_keys_pass_unchanged() -> None:
    for key in ["a", "a/b/c.webm", "x" * 512, "A-z_0.9", "...", "v/.hidden", "2026/06/01/a"]:
        assert validate_key(key) == key


async def test_local_list_skips_temp_and_foreign_files(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path)
    await store.put("d/real.bin", b"1")
    (tmp_path / "d" / ".real.bin.abc123.~part").write_bytes(b"half")
    (tmp_path / "d" / "has space.txt").write_bytes(b"?")
    assert await store.list() == ["d/real.bin"]


async def test_local_files_land_under_root(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path / "root")
    await store.put("x/y/z.bin", b"zz")
    assert (tmp_path / "root" / "x" / "y" / "z.bin").read_bytes() == b"zz"
    assert os.listdir(tmp_path) == ["root"]


async def test_s3_prefix_isolates_keys(s3_server: S3Server) -> None:
    bucket = s3_server.new_bucket()
    s3_server.client.put_object(Bucket=bucket, Key="outside.bin", Body=b"o")
    s3_server.client.put_object(Bucket=bucket, Key="pre/fix/odd key.bin", Body=b"o")
    store = s3_server.store(bucket, prefix="/pre/fix/")
    await store.put("in.bin", b"i")
    assert s3_server.client.get_object(Bucket=bucket, Key="pre/fix/in.bin")["Body"].read() == b"i"
    assert await store.list() == ["in.bin"]  # foreign, invalid key skipped
    assert await store.exists("outside.bin") is False


async def test_s3_rejects_tiny_parts_and_empty_bucket() -> None:
    with pytest.raises(ValueError, match="part_size"):
        S3BlobStore("b", endpoint_url=None, region=REGION, part_size=MiB)
    with pytest.raises(ValueError, match="bucket"):
        S3BlobStore("", endpoint_url=None, region=REGION)


# --------------------------------------------------------------------------- ping


async def test_ping_ok(store: BlobStore) -> None:
    await store.ping()


async def test_local_ping_fails_when_root_is_a_file(tmp_path: Path) -> None:
    root = tmp_path / "blobs"
    root.write_bytes(b"not a directory")
    with pytest.raises(OSError):
        await LocalBlobStore(root).ping()


async def test_s3_ping_fails_without_bucket(s3_server: S3Server) -> None:
    store = s3_server.store(f"missing-{uuid.uuid4().hex[:12]}")
    with pytest.raises(ClientError) as info:
        await store.ping()
    assert info.value.response["Error"]["Code"] in {"404", "NoSuchBucket"}


# --------------------------------------------------------------------------- from URL


@pytest.mark.parametrize("url", ["", "local", "  local "])
async def test_from_url_default_local(tmp_path: Path, url: str) -> None:
    store = blob_store_from_url(url, data_dir=tmp_path)
    assert isinstance(store, LocalBlobStore)
    assert store.root == tmp_path / "blobs"


async def test_from_url_file_and_path(tmp_path: Path) -> None:
    a = blob_store_from_url(f"file://{tmp_path}/a%20b", data_dir=Path("/unused"))
    assert isinstance(a, LocalBlobStore)
    assert a.root == tmp_path / "a b"
    b = blob_store_from_url(str(tmp_path / "plain"), data_dir=Path("/unused"))
    assert isinstance(b, LocalBlobStore)
    assert b.root == tmp_path / "plain"
    c = blob_store_from_url("file://localhost/srv/blobs", data_dir=Path("/unused"))
    assert isinstance(c, LocalBlobStore)
    assert c.root == Path("/srv/blobs")


async def test_from_url_s3(s3_server: S3Server, tmp_path: Path) -> None:
    bucket = s3_server.new_bucket()
    opts: dict[str, Any] = {
        "data_dir": tmp_path,
        "s3_endpoint_url": s3_server.endpoint_url,
        "s3_region": REGION,
        "s3_access_key": "testing",
        "s3_secret_key": "testing",
    }
    plain = blob_store_from_url(f"s3://{bucket}", **opts)
    assert isinstance(plain, S3BlobStore)
    assert (plain.bucket, plain.prefix) == (bucket, "")
    prefixed = blob_store_from_url(f"s3://{bucket}/env/prod/", **opts)
    assert isinstance(prefixed, S3BlobStore)
    assert (prefixed.bucket, prefixed.prefix) == (bucket, "env/prod")

    await prefixed.ping()
    await prefixed.put("k.bin", b"v")
    assert await plain.list() == ["env/prod/k.bin"]
    assert await plain.get("env/prod/k.bin") == b"v"


@pytest.mark.parametrize(
    ("url", "match"),
    [
        ("http://example.com/blobs", "unsupported"),
        ("ftp://host/x", "unsupported"),
        ("s3://", "bucket"),
        ("s3:///prefix", "bucket"),
        ("s3://AKIA:secret@bucket", "credentials"),
        ("s3://bucket/../etc", "prefix"),
        ("s3://bucket/a b", "prefix"),
        ("s3://bucket?x=1", "s3://bucket"),
        ("file://otherhost/x", "file:///"),
    ],
)
async def test_from_url_rejects(url: str, match: str, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=match) as info:
        blob_store_from_url(url, data_dir=tmp_path)
    assert "secret" not in str(info.value)


def _raw_key(case: StoreCase, key: str) -> str:
    """Where the store keeps `key` in its backend (relative file path or full object key)."""
    if case.kind == "s3-prefixed":
        return f"tenant-1/blobs/{key}"
    return key


async def test_s3_calls_run_on_threads_of_their_own() -> None:
    """Blocking S3 calls wait on the S3 threads, not in asyncio's default executor (sized for
    CPU work), with the caller's context variables; many can wait at once."""
    import contextvars
    import threading

    from vexam.core.s3 import S3_THREADS, in_s3_thread

    who = contextvars.ContextVar("who", default="nobody")
    who.set("caller")
    seen = await in_s3_thread(lambda: (threading.current_thread().name, who.get()))
    assert seen[0].startswith("vexam-s3") and seen[1] == "caller"

    waiting = threading.Barrier(S3_THREADS, timeout=10)  # all must be waiting at once
    names = await asyncio.gather(
        *(
            in_s3_thread(lambda: (waiting.wait(), threading.current_thread().name)[1])
            for _ in range(S3_THREADS)
        )
    )
    assert len(set(names)) == S3_THREADS
