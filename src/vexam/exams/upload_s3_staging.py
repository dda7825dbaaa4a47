"""Where the S3 store's staged bytes live (`upload_s3`, whose docstring holds the rules): bytes
of a PATCH that do not fill a part, staged until the part is sent, each PATCH's by itself —
a few KiB as a row of the database (`StagedPiece`), written in the statement that counts
them; more as an S3 object of its own, `uploads/<id>.staged.<parts>.<start>`. What a PATCH
takes, counts and deletes of them; the S3 calls run on the S3 threads (`read`, `delete`,
`drop_objects` are blocking: call them there)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from vexam.core.context import Ctx
from vexam.core.db import autocommit_next
from vexam.core.errors import VexamError
from vexam.core.s3 import S3BlobStore, in_s3_thread
from vexam.exams import upload_statements as sql
from vexam.exams.upload_staged import Staged

if TYPE_CHECKING:
    from mypy_boto3_s3.type_defs import ObjectIdentifierTypeDef

# Staged bytes go to the database (a `StagedPiece` row, written with their count) instead of
# an S3 object of their own when a PATCH leaves at most this many, and the part's staged bytes
# up to them stay within the second bound: an S3 PUT costs far more than a row for a few KiB
# (a cut PATCH's fragment, a short recording sent in small PATCHes), and the database holds
# at most that much of a receiving upload.
PIECE_BYTES = 64 << 10
PIECES_PER_PART_BYTES = 256 << 10


def in_database(start: int, size: int) -> bool:
    """Whether `size` staged bytes from byte `start` of a part go to the database."""
    return size <= PIECE_BYTES and start + size <= PIECES_PER_PART_BYTES


def tile(pieces: dict[int, bytes], count: int) -> bytes | None:
    """The `count` bytes the database's pieces stage from byte 0, if they hold them all."""
    data = bytearray()
    for start in sorted(pieces):
        if start != len(data) or start >= count:
            break
        data += pieces[start]
    return bytes(data[:count]) if len(data) >= count else None


class Staging:
    """The staged bytes of the uploads in an S3 blob store's bucket."""

    def __init__(self, blobs: S3BlobStore) -> None:
        self.blobs = blobs
        self.client = blobs.client
        self.bucket = blobs.bucket

    def key(self, upload_id: str, parts: int, start: int | None = None) -> str:
        """The object key of bytes staged after `parts` full parts, from byte `start` of the
        next part (without `start`: the prefix of every such key, and the one object an
        earlier version staged)."""
        key = self.blobs.object_key(f"uploads/{upload_id}.staged.{parts}")
        return key if start is None else f"{key}.{start:010d}"

    async def put(self, upload_id: str, parts: int, start: int, data: bytes) -> None:
        """Stage `data` as the S3 object of bytes from `start` after `parts` parts."""
        await in_s3_thread(
            self.client.put_object,
            Bucket=self.bucket,
            Key=self.key(upload_id, parts, start),
            Body=data,
        )

    async def take(
        self,
        ctx: Ctx,
        upload_id: str,
        *,
        parts: int,
        count: int,
        s3_staged: bool,
        single: bool,
        remembered: Staged | None,
    ) -> tuple[bytes | bytearray, list[str], bool]:
        """The `count` bytes staged after `parts` parts; every staged S3 key of those parts
        that may exist; and whether staged objects of another generation may (see `read`).

        When this process holds them (`remembered`), from memory, with the keys of the pieces'
        starts and of this PATCH's (`count`; `upload_s3`'s docstring says why no other can be
        left): none when no PATCH staged an object in S3 (`s3_staged`), and none of another
        generation when the upload has no multipart upload (`single`: one generation). Else
        the database's pieces, and what S3 holds when a PATCH staged objects there or the
        pieces do not cover the bytes (an earlier version's PATCH staged them)."""
        if remembered is not None:
            if not s3_staged:
                return remembered.data, [], False
            starts = (*remembered.starts, count)
            # The key without a start is an earlier version's: only a cut PATCH of a process
            # of that version, during an upgrade, could have left it. Deleting it costs nothing.
            keys = [self.key(upload_id, parts, start) for start in starts]
            return remembered.data, [*keys, self.key(upload_id, parts)], not single
        await autocommit_next(ctx.session)
        found = await ctx.session.execute(sql.READ_PIECES, {"upload_id": upload_id, "parts": parts})
        pieces = {int(row.start): bytes(row.data) for row in found}
        await ctx.session.commit()
        if not s3_staged:
            tiled = tile(pieces, count)
            if tiled is not None:
                return tiled, [], False
        return await in_s3_thread(self.read, upload_id, parts, count, pieces)

    @staticmethod
    async def count_with_piece(
        ctx: Ctx,
        upload_id: str,
        token: str,
        counted: dict[str, Any],
        piece: tuple[int, int, bytes],
    ) -> None:
        """The PATCH's last write with its bytes staged in the database: the count (as
        `upload_statements.COUNT_AND_RELEASE`, its parameters in `counted`) and the piece
        together, or neither (`upload_locked`)."""
        parts, start, data = piece
        params = {
            "upload_id": upload_id,
            "token": token,
            **counted,
            "piece_parts": parts,
            "piece_start": start,
            "piece_data": data,
        }
        if await autocommit_next(ctx.session):  # PostgreSQL: one statement does both
            done = await ctx.session.execute(sql.COUNT_STAGE_AND_RELEASE, params)
            await ctx.session.commit()
            if done.rowcount != 1:  # type: ignore[attr-defined]
                raise VexamError("upload_locked")
            return
        done = await ctx.session.execute(sql.COUNT_AND_RELEASE, params)
        if done.rowcount != 1:  # type: ignore[attr-defined]
            await ctx.session.rollback()
            raise VexamError("upload_locked")
        await ctx.session.execute(
            sql.STAGE_PIECE, {"upload_id": upload_id, "parts": parts, "start": start, "data": data}
        )
        await ctx.session.commit()

    @staticmethod
    async def drop_pieces(ctx: Ctx, upload_id: str, *, below: int = sql.EVERY_PART) -> None:
        """Delete the upload's pieces staged in the database before part `below` (by default
        all of them), committed at once."""
        await autocommit_next(ctx.session)
        await ctx.session.execute(sql.DROP_PIECES, {"upload_id": upload_id, "parts": below})
        await ctx.session.commit()

    def keys_under(self, prefix: str) -> list[str]:
        """The full keys of the bucket's objects under the full key `prefix`."""
        pages = self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=prefix
        )
        return [item["Key"] for page in pages for item in page.get("Contents", [])]

    def read(
        self, upload_id: str, parts: int, count: int, pieces: dict[int, bytes] | None = None
    ) -> tuple[bytes | bytearray, list[str], bool]:
        """The `count` bytes staged after `parts` parts, in S3 objects and in the database's
        `pieces` (by start; a piece, which the row counts, wins over an object at its start,
        which a cut PATCH left); every staged key of `parts` (those past `count`, left by a
        PATCH cut before the row counted them, included); and whether staged objects of
        another generation exist (left by a cut PATCH). One listing of every generation."""
        pieces = pieces or {}
        base = self.key(upload_id, parts)
        every = self.blobs.object_key(f"uploads/{upload_id}.staged.")
        starts: dict[int, str] = {}
        legacy: str | None = None
        others = False
        for key in self.keys_under(every):
            rest = key[len(base) :] if key.startswith(base) else None
            if key == base:
                legacy = key
            elif rest is not None and rest[:1] == "." and rest[1:].isdigit():
                starts[int(rest[1:])] = key
            else:
                others = True
        if legacy is not None and 0 not in starts:
            starts[0] = legacy
        keys = sorted(starts.values())
        if legacy is not None and legacy not in keys:
            keys.append(legacy)
        starts.update(dict.fromkeys(pieces, ""))
        counted = sorted(start for start in starts if start < count)
        if not counted or counted[0] != 0:
            raise RuntimeError(f"upload {upload_id}: staged bytes lost (none from byte 0)")
        data = bytearray()
        for start, end in zip(counted, [*counted[1:], count], strict=True):
            if start in pieces:
                data += pieces[start][: end - start]
                if len(data) != end:
                    raise RuntimeError(f"upload {upload_id}: staged piece at {start} too short")
                continue
            body = self.client.get_object(
                Bucket=self.bucket, Key=starts[start], Range=f"bytes=0-{end - start - 1}"
            )["Body"]
            try:
                data += body.read()
            finally:
                body.close()
            if len(data) != end:
                raise RuntimeError(
                    f"upload {upload_id}: staged bytes lost ({len(data)} of {end} at {start})"
                )
        return data, keys, others

    def delete(self, keys: list[str]) -> None:
        """Delete these full keys (a key that is not there is no error)."""
        for first in range(0, len(keys), 1000):  # DeleteObjects takes at most 1,000 keys
            batch: list[ObjectIdentifierTypeDef] = [{"Key": k} for k in keys[first : first + 1000]]
            self.client.delete_objects(Bucket=self.bucket, Delete={"Objects": batch})

    def drop_objects(self, upload_id: str) -> None:
        """Delete every staged object of the upload (all generations)."""
        left = self.keys_under(self.blobs.object_key(f"uploads/{upload_id}.staged."))
        if left:
            self.delete(left)
