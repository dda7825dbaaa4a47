"""What a web process keeps of the S3 uploads it stages (see `upload_s3`): the current part's
staged bytes and where each PATCH's bytes among them begin, so that the PATCH filling the
part need not read them back, nor list S3 to delete them. A cache, not a record: the
database, S3 and the upload's row stay the truth."""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass, field


@dataclass
class Staged:
    """The staged bytes of the current part, from its first byte (`data`), and where each
    PATCH's bytes among them begin (`starts`, ascending): the pieces and S3 objects this
    process staged, which tile them."""

    data: bytearray = field(default_factory=bytearray)
    starts: list[int] = field(default_factory=list)

    def add(self, start: int, data: bytes | bytearray) -> None:
        """Count `data`, staged as one piece or object from `start` (the bytes held so far)."""
        if data:
            self.starts.append(start)
            self.data += data


class StagedMemory:
    """The staged bytes of the current part of uploads this process staged itself, so that
    the PATCH filling the part need not read them back from S3.

    An entry says: after `parts` full parts, these bytes are staged from the part's first byte,
    in pieces or objects starting where it says, and the row counts exactly them. It is kept
    only once the row has recorded that (as the running hash is), and a PATCH takes it out
    while it works, so a failed PATCH leaves none. Bounded by bytes: the oldest entries go
    first; a miss only costs the reads and the listing it would save.
    """

    def __init__(self, budget: int) -> None:
        self.budget = budget
        self._held: OrderedDict[str, tuple[int, Staged]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def _pop(self, upload_id: str) -> tuple[int, Staged] | None:
        with self._lock:
            held = self._held.pop(upload_id, None)
            if held is not None:
                self._bytes -= len(held[1].data)
        return held

    def take(self, upload_id: str, parts: int, count: int) -> Staged | None:
        """What is staged after `parts` parts when the row counts `count` bytes of it, if held
        exactly (removed: the caller owns it, and may add to it). With `count` 0 nothing is
        staged: an empty entry, held or not."""
        held = self._pop(upload_id)
        if count == 0:
            return Staged()
        if held is None or held[0] != parts or len(held[1].data) != count:
            return None
        return held[1]

    def forget(self, upload_id: str) -> None:
        """Drop what is held for `upload_id`."""
        self._pop(upload_id)

    def keep(self, upload_id: str, parts: int, staged: Staged) -> None:
        """Remember that `staged` is what the row counts after `parts` parts."""
        size = len(staged.data)
        if not size or size > self.budget:
            return
        self._pop(upload_id)
        with self._lock:
            while self._held and self._bytes + size > self.budget:
                _, (_, dropped) = self._held.popitem(last=False)
                self._bytes -= len(dropped.data)
            self._held[upload_id] = (parts, staged)
            self._bytes += size


# Per process: 32 MiB holds the staged bytes of hundreds of phone-sized PATCH streams.
STAGED_MEMORY = StagedMemory(32 << 20)
