"""The S3 store of tus uploads: one multipart upload per tus upload longer than a part, so
that any web process can continue an upload another one started (DESIGN: no state lives in a
web process). An upload that fits in one part (most short recordings) has no multipart
upload: its bytes are staged as below and the PATCH that ends it puts the whole file as one
object, which spares the creation and the completion an S3 call each (`multipart_id` stays
empty; `part_size` is set, as for every upload of this store).

Everything a PATCH leaves is durable in S3 and the database before it is answered:

- the row holds `multipart_id`, `part_size` and `parts_done`: parts 1..parts_done hold the
  first parts_done × part_size bytes, and `received` = those + the staged bytes (or the
  length, once every part is in);
- bytes that do not fill a part are staged (`upload_s3_staging`), each PATCH's by itself: a
  few KiB (at most `PIECE_BYTES`, within the part's first `PIECES_PER_PART_BYTES`) as a row
  of the database (`StagedPiece`), written in the statement that counts them, so no piece is
  ever left that the row does not count; more as an S3 object of its own,
  `uploads/<id>.staged.<parts_done>.<start>` (`start`: where in the next part they begin, ten
  digits), after the row says that staged objects may exist (`s3_staged`). The pieces and
  staged objects whose start is below `received - parts_done × part_size` tile those bytes,
  each counting up to the next one's start. A PATCH below a part writes only its own bytes
  (nothing is read back); the PATCH that fills a part (or ends the upload) reads the staged
  bytes once, sends the part and, once the row counts it, deletes them (the last part's
  pieces go with the completion). A crash before the row counts a staged object leaves it at
  the row's offset, where the retry overwrites it (the key is the offset) or a piece takes
  its place, or past it, where it is ignored and deleted with the rest; while `s3_staged`
  is false there is none, and nothing is listed in S3. An object
  `uploads/<id>.staged.<parts_done>` without a start (written by an earlier version, which
  rewrote one object per PATCH) counts as staged from byte 0, and so do objects an earlier
  version staged without saying so: S3 is listed when the pieces do not hold every byte.

One PATCH at a time per upload across hosts: a lease on the row (a conditional UPDATE of a
holder token and an expiry), renewed while the body streams; only the holder records
progress. A PATCH's bytes belong to the upload only once the row says so: a checksummed PATCH
that fails (460) leaves parts past `parts_done`, which later PATCHes overwrite and completion
never lists. Completion lists the parts and completes the multipart upload, hashes the object,
and deletes staged objects left behind and the pieces; expiry and termination abort it and
delete the staged objects and the pieces (`uploads`).

Completion reads the object back to hash it only when no hash of the whole file is at hand:
a process that wrote every byte of an upload so far keeps its running hash between PATCHes
(as the local store does, `upload_files`), and a PATCH that ends an upload none of whose parts
was sent before it (a recording shorter than a part, a whole file in one PATCH) hashes the
parts as it sends them. That PATCH also knows every part's ETag, so completion lists no parts,
nor the staged objects when its own listing found none it did not delete.

Likewise the PATCH that fills a part (or ends the upload) reads no staged bytes from S3 when
this process staged them all itself and the row counts exactly them: it keeps the current
part's staged bytes in memory between PATCHes (`upload_staged`, bounded), with the start of
each PATCH's bytes it staged (as a piece or an object). Nor does it list them then: the
objects of the part that may exist are at those starts and its own. A staged object the row
does not count was put by a PATCH cut before the row counted it, so at an offset where the
row stood; the PATCH that the row counted next from there began at it, and either staged its
bytes (one of the starts held) or filled the part or ended the upload (the PATCH at hand: its
own start). Had another process counted a PATCH of the part, what is held would not be what
the row counts. So it deletes those keys (a key that is not there is no error) and lists
nothing; staged objects of other parts, which only an upload with a multipart upload has,
are listed by its completion.
"""

from __future__ import annotations

import contextlib
import hashlib
import secrets
import shutil
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from vexam.config import Settings
from vexam.core.context import Ctx
from vexam.core.db import autocommit_next
from vexam.core.errors import VexamError
from vexam.core.s3 import S3BlobStore, in_s3_thread
from vexam.core.storage import BlobStore
from vexam.exams import upload_statements as sql
from vexam.exams.models import Upload
from vexam.exams.upload_files import Stored, keep_running_hash, take_running_hash
from vexam.exams.upload_s3_staging import Staging, in_database
from vexam.exams.upload_staged import STAGED_MEMORY, Staged

if TYPE_CHECKING:
    from mypy_boto3_s3.type_defs import CompletedPartTypeDef

READ_CHUNK = 4 << 20
_GONE = frozenset({"NoSuchUpload", "NoSuchKey", "404", "NotFound"})


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


@dataclass(frozen=True)
class Lease:
    """A PATCH's hold on an upload's row: its token, and what the row counted when taken."""

    token: str
    received: int
    multipart_id: str | None
    part_size: int | None
    parts_done: int
    s3_staged: bool  # whether a PATCH may have staged bytes as S3 objects


class S3UploadStore:
    """Uploads as S3 multipart uploads in the blob store's bucket (see the module docstring)."""

    name = "s3"

    def __init__(self, blobs: S3BlobStore, *, part_size: int, lease: timedelta) -> None:
        self.blobs = blobs
        self.client = blobs.client
        self.bucket = blobs.bucket
        self.part_size = part_size
        self.lease = lease
        self.staging = Staging(blobs)

    @classmethod
    def over(cls, blobs: BlobStore, settings: Settings) -> S3UploadStore:
        """The store over the app's S3 blob store; RuntimeError when the blobs are not on S3."""
        if not isinstance(blobs, S3BlobStore):
            raise RuntimeError("upload_store s3 needs storage_url s3://bucket[/prefix]")
        return cls(
            blobs,
            part_size=settings.upload_part_bytes,
            lease=timedelta(seconds=settings.upload_lease_seconds),
        )

    def key(self, upload_id: str) -> str:
        """The object key of the assembled upload."""
        return self.blobs.object_key(f"uploads/{upload_id}")

    # ------------------------------------------------------------------ lifecycle

    async def create(self, upload_id: str, length: int) -> str | None:
        """Start the multipart upload of an upload longer than a part; returns its UploadId
        (kept on the row). None for one that fits in a part: its last PATCH puts it whole."""
        if 0 < length <= self.part_size:
            return None
        created = await in_s3_thread(
            self.client.create_multipart_upload, Bucket=self.bucket, Key=self.key(upload_id)
        )
        return created["UploadId"]

    async def remove(self, upload_id: str, ref: str | None) -> None:
        """Abort the multipart upload and delete the staged and assembled objects; idempotent."""
        if ref is not None:
            try:
                await in_s3_thread(
                    self.client.abort_multipart_upload,
                    Bucket=self.bucket,
                    Key=self.key(upload_id),
                    UploadId=ref,
                )
            except ClientError as exc:
                if _code(exc) not in _GONE:
                    raise
        STAGED_MEMORY.forget(upload_id)
        await in_s3_thread(self.staging.drop_objects, upload_id)
        await self.blobs.delete(f"uploads/{upload_id}")

    async def held(self, upload_id: str, recorded: int) -> tuple[int, bool]:
        """The row is the truth: every byte it counts is durable in S3 before it is counted."""
        return recorded, False

    # ------------------------------------------------------------------ the lease

    async def take_lease(self, ctx: Ctx, upload_id: str) -> Lease | None:
        """Take the lease of a receiving upload, with what the row counts, read in the same
        statement (committed at once); None while another PATCH holds it, or when the upload
        is not receiving (finished, expired, terminated)."""
        now = ctx.now()
        token = secrets.token_hex(16)
        await autocommit_next(ctx.session)
        taken = await ctx.session.execute(
            sql.TAKE_LEASE,
            {"upload_id": upload_id, "token": token, "now": now, "until": now + self.lease},
        )
        row = taken.one_or_none()
        await ctx.session.commit()
        return None if row is None else Lease(token, *row)

    async def _record(
        self, ctx: Ctx, statement: Any, upload_id: str, token: str, **params: Any
    ) -> None:
        """Run one of the lease holder's statements (`sql.RENEW_LEASE`, `sql.COUNT_PARTS`,
        `sql.COUNT_AND_RELEASE`: the PATCH's last write), committed at once. Core statements,
        built once: the session's Upload object is not brought up to date."""
        await autocommit_next(ctx.session)
        done = await ctx.session.execute(
            statement,
            {"upload_id": upload_id, "token": token, "until": ctx.now() + self.lease, **params},
        )
        await ctx.session.commit()
        if done.rowcount != 1:  # type: ignore[attr-defined]
            raise VexamError("upload_locked")  # the lease lapsed and another PATCH took it

    async def _release(self, ctx: Ctx, upload_id: str, token: str) -> None:
        await autocommit_next(ctx.session)
        await ctx.session.execute(sql.RELEASE_LEASE, {"upload_id": upload_id, "token": token})
        await ctx.session.commit()

    # ------------------------------------------------------------------ PATCH

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
        """Append a PATCH body at `offset` holding the upload's lease; see `uploads.receive`.

        `upload_locked`, `upload_not_found`, `upload_finished`, `upload_offset_mismatch`,
        `upload_exceeds_length`, `upload_chunk_checksum_mismatch` (nothing kept)."""
        lease = await self.take_lease(ctx, upload.id)
        if lease is None:
            raise VexamError("upload_locked")
        return await self.receive_leased(
            ctx,
            upload.id,
            upload.length,
            lease,
            offset,
            chunks,
            content_length=content_length,
            checksum=checksum,
        )

    async def receive_leased(
        self,
        ctx: Ctx,
        upload_id: str,
        length: int,
        lease: Lease,
        offset: int,
        chunks: AsyncIterator[bytes],
        *,
        content_length: int | None,
        checksum: bytes | None,
    ) -> Stored:
        """`receive` for a PATCH that took the lease of `upload_id` (`length` bytes in all)
        itself (`take_lease`); gives the lease up whether it returns or raises."""
        try:
            return await self._receive(
                ctx, upload_id, length, lease, offset, chunks, content_length, checksum
            )
        except BaseException:
            # Best effort: a lease left behind (process killed) lapses after its period.
            with contextlib.suppress(Exception):
                await self._release(ctx, upload_id, lease.token)
            raise

    async def _receive(
        self,
        ctx: Ctx,
        upload_id: str,
        length: int,
        lease: Lease,
        offset: int,
        chunks: AsyncIterator[bytes],
        content_length: int | None,
        checksum: bytes | None,
    ) -> Stored:
        """The PATCH holding the lease; gives the lease up when it returns (the caller does
        when it raises)."""
        if lease.received != offset:
            raise VexamError("upload_offset_mismatch", offset=lease.received)
        token = lease.token
        ref, part_size, start_parts = lease.multipart_id, lease.part_size, lease.parts_done
        if part_size is None:
            raise RuntimeError(f"upload {upload_id} was not created in the S3 store")
        if offset == length:
            await self._release(ctx, upload_id, token)
            return Stored(offset)
        staged = offset - start_parts * part_size
        unread = staged  # staged bytes at the start of the current part not in `buf` yet
        remembered = STAGED_MEMORY.take(upload_id, start_parts, staged)  # None: read, list
        staged_keys: list[str] = []  # read once a part is filled: deleted once it counts
        # Whether staged objects this PATCH will not delete may be left: none when no PATCH
        # staged an object in S3; else unknown (so yes) until it takes the staged bytes, then
        # whether any of another generation may be.
        others = lease.s3_staged
        buf = bytearray()
        done = start_parts
        hasher = hashlib.sha256() if checksum is not None else None
        # The whole file's hash, so that completion need not read the object back: the running
        # hash this process kept if it wrote every byte before `offset` (a hash of nothing at
        # offset 0; it goes with the PATCH and is kept again only if the PATCH ends well);
        # else, for a PATCH that will end an upload no part of which is in S3 yet, a hash of
        # the parts as it sends them (all of them, the staged bytes included).
        running = take_running_hash(upload_id, offset)
        whole = start_parts == 0 and offset + (content_length or 0) == length
        parts_hash = hashlib.sha256() if running is None and whole else None
        file_hash = running if running is not None else parts_hash
        etags: list[str] = []  # of the parts this PATCH sends: all of them if start_parts == 0
        room = length - offset
        taken = 0
        renew_every = self.lease.total_seconds() / 3
        renew_at = time.monotonic() + renew_every
        async for chunk in chunks:
            taken += len(chunk)
            if taken > room:
                raise VexamError("upload_exceeds_length", length=length)
            if hasher is not None:
                hasher.update(chunk)
            if running is not None:
                running.update(chunk)
            buf += chunk
            if unread and unread + len(buf) >= part_size:
                staged_keys, others = await self._prepend_staged(
                    ctx, upload_id, lease, staged, buf, remembered
                )
                unread = 0
            while ref is not None and len(buf) >= part_size:
                etag = await self._put_part(
                    upload_id, ref, done + 1, bytes(buf[:part_size]), parts_hash
                )
                etags.append(etag)
                del buf[:part_size]
                done += 1
                if hasher is None:  # unverified bytes may count at once; checked ones may not
                    await self._record(
                        ctx, sql.COUNT_PARTS, upload_id, token, counted=done * part_size, parts=done
                    )
                    renew_at = time.monotonic() + renew_every
            if time.monotonic() >= renew_at:
                await self._record(ctx, sql.RENEW_LEASE, upload_id, token)
                renew_at = time.monotonic() + renew_every
        if hasher is not None:
            if content_length is not None and taken != content_length:
                await self._release(ctx, upload_id, token)
                return Stored(offset)  # cut short: unverifiable, nothing kept
            if hasher.digest() != checksum:
                raise VexamError("upload_chunk_checksum_mismatch")
        total = offset + taken
        # What the current part's staged bytes will be once the row counts this PATCH.
        kept: Staged | None = None
        if total < length:
            if done != start_parts:
                kept = Staged()
                kept.add(0, buf)
            elif remembered is not None:
                kept = remembered
                kept.add(staged, buf)
        if total == length:
            if unread:
                staged_keys, others = await self._prepend_staged(
                    ctx, upload_id, lease, staged, buf, remembered
                )
            if ref is None:  # no multipart upload: the whole file in one object
                await in_s3_thread(self._put_whole, upload_id, bytes(buf), parts_hash)
            elif buf:
                etags.append(await self._put_part(upload_id, ref, done + 1, bytes(buf), parts_hash))
                done += 1
        piece: tuple[int, int, bytes] | None = None  # staged in the database: parts, start
        if total < length and buf:
            # No part filled: `buf` is this PATCH's bytes, from `staged`; else the next part's.
            start = staged if done == start_parts else 0
            if in_database(start, len(buf)):
                piece = (done, start, bytes(buf))
            else:
                if not lease.s3_staged:  # said before the object exists: see `others`
                    await self._record(ctx, sql.MARK_S3_STAGED, upload_id, token)
                await self.staging.put(upload_id, done, start, bytes(buf))
        counted = {"counted": total, "parts": done, "now": ctx.now()}
        if piece is None:
            await self._record(ctx, sql.COUNT_AND_RELEASE, upload_id, token, **counted)
        else:
            await self.staging.count_with_piece(ctx, upload_id, token, counted, piece)
        if done != start_parts and total < length and staged:
            # The pieces of the parts sent (the completion deletes the last part's).
            await self.staging.drop_pieces(ctx, upload_id, below=done)
        if staged_keys and (done != start_parts or total == length):
            await in_s3_thread(self.staging.delete, staged_keys)
        if total < length:
            keep_running_hash(upload_id, total, running)
            if kept is not None:
                STAGED_MEMORY.keep(upload_id, done, kept)
            return Stored(total)
        digest = file_hash.hexdigest() if file_hash is not None else None
        if start_parts:
            return Stored(total, digest)
        # Every part was sent here. If staged bytes were taken, every staged object of this
        # generation that may exist was listed or known then and is deleted above; if none of
        # another may be (left by a PATCH cut before the row counted it), none is left.
        return Stored(total, digest, tuple(etags), staged_cleared=not others)

    async def _prepend_staged(
        self,
        ctx: Ctx,
        upload_id: str,
        lease: Lease,
        count: int,
        buf: bytearray,
        remembered: Staged | None,
    ) -> tuple[list[str], bool]:
        """Put the `count` bytes staged after the lease's parts before `buf` (`Staging.take`);
        returns the staged S3 keys that may exist, and whether others of another part may."""
        prefix, keys, others = await self.staging.take(
            ctx,
            upload_id,
            parts=lease.parts_done,
            count=count,
            s3_staged=lease.s3_staged,
            single=lease.multipart_id is None,
            remembered=remembered,
        )
        buf[:0] = prefix
        return keys, others

    async def _put_part(
        self, upload_id: str, ref: str, number: int, data: bytes, digest: Any | None
    ) -> str:
        """Send part `number`; returns its ETag. With `digest`, update it with the part first
        (in the S3 thread: a part is 5 MiB, too long to hash on the event loop)."""
        return await in_s3_thread(self._send_part, upload_id, ref, number, data, digest)

    def _put_whole(self, upload_id: str, data: bytes, digest: Any | None) -> None:
        """Put the whole file of an upload without a multipart upload; with `digest`, update it
        with the bytes first."""
        if digest is not None:
            digest.update(data)
        self.client.put_object(Bucket=self.bucket, Key=self.key(upload_id), Body=data)

    def _send_part(
        self, upload_id: str, ref: str, number: int, data: bytes, digest: Any | None
    ) -> str:
        if digest is not None:
            digest.update(data)
        sent = self.client.upload_part(
            Bucket=self.bucket, Key=self.key(upload_id), UploadId=ref, PartNumber=number, Body=data
        )
        return sent["ETag"]

    # ------------------------------------------------------------------ completion

    async def finish(
        self, upload_id: str, ref: str | None, parts: int, stored: Stored | None = None
    ) -> None:
        """Complete the multipart upload from parts 1..`parts`, then delete any staged object
        left behind (a PATCH cut after its part counted, before it deleted them); idempotent
        (an upload already completed is found as its object). When the PATCH that ended the
        upload sent every part (`stored.parts`), their ETags complete it without listing the
        parts, and if it also deleted every staged object, nothing is listed at all. Without a
        multipart upload (`ref` None) the PATCH that ended the upload put the object before
        the row counted its bytes: only staged objects it may have left are deleted."""
        if ref is not None:
            await in_s3_thread(self._assemble, upload_id, ref, parts, stored)
        elif stored is None or not stored.staged_cleared:  # put whole by its last PATCH
            await in_s3_thread(self.staging.drop_objects, upload_id)

    def _assemble(self, upload_id: str, ref: str, parts: int, stored: Stored | None) -> None:
        sent = stored.parts if stored is not None else None
        if sent is None or len(sent) != parts or not self._complete_sent(upload_id, ref, sent):
            self._finish(upload_id, ref, parts)
        elif stored is not None and stored.staged_cleared:
            return
        self.staging.drop_objects(upload_id)

    def _complete_sent(self, upload_id: str, ref: str, etags: tuple[str, ...]) -> bool:
        """Complete the multipart upload from parts with these ETags; False when S3 refuses
        (e.g. completed meanwhile, or a part is not as sent), for `_finish` to settle."""
        listed: list[CompletedPartTypeDef] = [
            {"PartNumber": number, "ETag": etag} for number, etag in enumerate(etags, 1)
        ]
        try:
            self.client.complete_multipart_upload(
                Bucket=self.bucket,
                Key=self.key(upload_id),
                UploadId=ref,
                MultipartUpload={"Parts": listed},
            )
        except ClientError:
            return False
        return True

    def _finish(self, upload_id: str, ref: str, parts: int) -> None:
        key = self.key(upload_id)
        try:
            if parts == 0:  # an empty file: S3 cannot complete an upload of no parts
                self.client.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=ref)
                self.client.put_object(Bucket=self.bucket, Key=key, Body=b"")
                return
            etags: dict[int, str] = {}
            paginator = self.client.get_paginator("list_parts")
            for page in paginator.paginate(Bucket=self.bucket, Key=key, UploadId=ref):
                for part in page.get("Parts", []):
                    etags[part["PartNumber"]] = part["ETag"]
            listed: list[CompletedPartTypeDef] = [
                {"PartNumber": n, "ETag": etags[n]} for n in range(1, parts + 1)
            ]
            self.client.complete_multipart_upload(
                Bucket=self.bucket, Key=key, UploadId=ref, MultipartUpload={"Parts": listed}
            )
        except ClientError as exc:
            if _code(exc) not in _GONE:
                raise
            # Completed (or aborted) earlier: the object must be there.
            self.client.head_object(Bucket=self.bucket, Key=key)

    async def sha256(self, upload_id: str) -> str:
        """The SHA-256 of the assembled object, read back streamed (a running hash cannot be
        shared between processes)."""
        return await in_s3_thread(self._sha256, upload_id)

    def _sha256(self, upload_id: str) -> str:
        digest = hashlib.sha256()
        body = self.client.get_object(Bucket=self.bucket, Key=self.key(upload_id))["Body"]
        try:
            while data := body.read(READ_CHUNK):
                digest.update(data)
        finally:
            body.close()
        return digest.hexdigest()

    @contextlib.asynccontextmanager
    async def local_copy(self, upload_id: str) -> AsyncIterator[Path]:
        """The assembled object streamed to a temporary file (PyAV reads paths), removed after."""
        folder = Path(tempfile.mkdtemp(prefix="vexam-upload-"))
        try:
            path = folder / "upload"
            await in_s3_thread(self._download, upload_id, path)
            yield path
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    def _download(self, upload_id: str, path: Path) -> None:
        body = self.client.get_object(Bucket=self.bucket, Key=self.key(upload_id))["Body"]
        try:
            with path.open("wb") as out:
                while data := body.read(READ_CHUNK):
                    out.write(data)
        finally:
            body.close()
