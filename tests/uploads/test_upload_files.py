"""The local store's append (upload_files.append) on its own: the running SHA-256 that long
bodies fold in worker threads must be exactly the file's, however a PATCH ends."""

from __future__ import annotations

import asyncio
import gc
import hashlib
import itertools
import os
import secrets
import weakref
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from starlette.requests import Request

from vexam.exams import upload_files, uploads

CHUNK = 64 << 10


async def body(
    data: bytes, *, stall_after: int | None = None, stalled: asyncio.Event | None = None
) -> AsyncIterator[bytes]:
    """`data` in 64 KiB chunks, yielding to the loop between them (so folds run meanwhile);
    with `stall_after`, it sets `stalled` after that many bytes and hangs until cancelled."""
    for start in range(0, len(data), CHUNK):
        if stall_after is not None and start >= stall_after:
            if stalled is not None:
                stalled.set()
            await asyncio.Event().wait()
        yield data[start : start + CHUNK]
        await asyncio.sleep(0)


def new_upload(tmp_path: Path) -> tuple[Path, str]:
    upload_id = secrets.token_hex(16)
    path = upload_files.upload_path(tmp_path, upload_id)
    upload_files.create_file(path)
    return path, upload_id


async def test_long_patches_carry_the_whole_files_hash(tmp_path: Path) -> None:
    """PATCHes of several MiB (folded in threads) and a short one between them: the last
    answers the SHA-256 of the whole file, with no second read of it."""
    data = os.urandom(7 * (1 << 20) + 12345)
    path, upload_id = new_upload(tmp_path)
    cuts = [0, 3 * (1 << 20) + 777, 3 * (1 << 20) + 70_000, len(data)]
    stored = upload_files.Stored(0)
    for start, end in itertools.pairwise(cuts):
        stored = await upload_files.append(
            path,
            upload_id,
            len(data),
            start,
            body(data[start:end]),
            content_length=end - start,
            checksum=None,
        )
        assert stored.size == end
    assert stored.digest == hashlib.sha256(data).hexdigest()
    assert path.read_bytes() == data


async def test_a_patch_cut_off_mid_fold_keeps_its_bytes_and_unlocks(tmp_path: Path) -> None:
    """A PATCH cancelled after 2.5 MiB, while a fold may run: its bytes are kept, the lock is
    released, and the upload completes; its hash then comes from the file, not a stale one."""
    data = os.urandom(4 * (1 << 20))
    path, upload_id = new_upload(tmp_path)
    cut = 5 * (1 << 19)
    stalled = asyncio.Event()
    task = asyncio.create_task(
        upload_files.append(
            path,
            upload_id,
            len(data),
            0,
            body(data, stall_after=cut, stalled=stalled),
            content_length=len(data),
            checksum=None,
        )
    )
    await stalled.wait()  # every byte before the cut was handed to the writer
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    held, busy = await asyncio.to_thread(upload_files.durable_size, path)
    assert (held, busy) == (cut, False)
    stored = await upload_files.append(
        path,
        upload_id,
        len(data),
        cut,
        body(data[cut:]),
        content_length=len(data) - cut,
        checksum=None,
    )
    assert stored.size == len(data)
    assert stored.digest is None  # the running hash was not kept across the cut
    assert upload_files.sha256_of(path) == hashlib.sha256(data).hexdigest()


def test_fold_hashes_a_range_read_back_from_the_file(tmp_path: Path) -> None:
    """`fold` adds exactly the bytes [start, end) to the hash, across several reads."""
    data = os.urandom(upload_files.FOLD_READ * 2 + 99)
    path = tmp_path / "f"
    path.write_bytes(data)
    digest = hashlib.sha256(data[:10])
    fd = os.open(path, os.O_RDONLY)
    try:
        upload_files.fold(fd, 10, len(data) - 5, digest)
        with pytest.raises(OSError):
            upload_files.fold(fd, len(data) - 5, len(data) + 10, hashlib.sha256())
    finally:
        os.close(fd)
    assert digest.hexdigest() == hashlib.sha256(data[:-5]).hexdigest()


async def test_side_by_side_patches_hash_as_they_write(tmp_path: Path) -> None:
    """PATCHes running at once in a process hash on the loop as they write (no folds): each
    upload's last PATCH still answers its whole file's SHA-256."""
    files = [os.urandom(3 * (1 << 20) + k) for k in (1, 2, 3)]
    uploads = [new_upload(tmp_path) for _ in files]

    async def send(data: bytes, path: Path, upload_id: str) -> upload_files.Stored:
        middle = len(data) // 2
        await upload_files.append(
            path, upload_id, len(data), 0, body(data[:middle]),
            content_length=middle, checksum=None,
        )  # fmt: skip
        return await upload_files.append(
            path, upload_id, len(data), middle, body(data[middle:]),
            content_length=len(data) - middle, checksum=None,
        )  # fmt: skip

    done = await asyncio.gather(
        *(
            send(data, path, upload_id)
            for data, (path, upload_id) in zip(files, uploads, strict=True)
        )
    )
    assert [stored.digest for stored in done] == [hashlib.sha256(d).hexdigest() for d in files]


class Received(bytearray):
    """A body chunk as the server received it (a bytearray type, so a weak reference can tell
    whether anything still holds it)."""


async def test_a_patch_waiting_for_its_client_holds_no_chunk_it_wrote(tmp_path: Path) -> None:
    """The PATCH path (`request_body`, `body_chunks`, `append`) keeps no reference to a chunk
    once it is written, while the next one is awaited: with hundreds of PATCHes waiting on
    their clients, each would hold up to a read buffer (256 KiB) of memory. A disconnect
    then ends the body and keeps what was written."""
    path, upload_id = new_upload(tmp_path)
    first = Received(os.urandom(CHUNK))
    seen = weakref.ref(first)
    messages: asyncio.Queue[dict[str, object]] = asyncio.Queue()
    messages.put_nowait({"type": "http.request", "body": first, "more_body": True})
    del first
    scope = {"type": "http", "method": "PATCH", "headers": [], "path": "/"}
    request = Request(scope, messages.get)
    chunks = uploads.body_chunks(uploads.request_body(request), idle_seconds=30)
    patch = asyncio.create_task(
        upload_files.append(
            path, upload_id, 4 * CHUNK, 0, chunks, content_length=None, checksum=None
        )
    )
    for _ in range(1000):  # until the chunk is on disk and the next one awaited
        if path.stat().st_size == CHUNK and messages.empty():
            break
        await asyncio.sleep(0)
    await asyncio.sleep(0)
    gc.collect()
    assert path.stat().st_size == CHUNK
    assert seen() is None
    messages.put_nowait({"type": "http.disconnect"})
    stored = await patch
    assert stored.size == CHUNK
