"""What a web process keeps of the S3 uploads it stages (see `upload_s3`): the current part's
staged bytes, so that the PATCH filling the part need not read them back from S3. A cache,
not a record: S3 and the upload's row stay the truth."""

from __future__ import annotations

import threading
from collections import OrderedDict


class StagedMemory:
    """The staged bytes of the current part of uploads this process staged itself, so that
    the PATCH filling the part need not read them back from S3.

    An entry says: after `parts` full parts, these bytes are staged from the part's first byte,
    and the row counts exactly them. It is kept only once the row has recorded that (as the
    running hash is), and a PATCH takes it out while it works, so a failed PATCH leaves none.
    Bounded by bytes: the oldest entries go first; a miss only costs the read it would save.
    """

    def __init__(self, budget: int) -> None:
        self.budget = budget
        self._held: OrderedDict[str, tuple[int, bytearray]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def _pop(self, upload_id: str) -> tuple[int, bytearray] | None:
        with self._lock:
            held = self._held.pop(upload_id, None)
            if held is not None:
                self._bytes -= len(held[1])
        return held

    def take(self, upload_id: str, parts: int, count: int) -> bytearray | None:
        """The `count` bytes staged after `parts` parts, if held exactly (removed: the caller
        owns them, and may append to them)."""
        held = self._pop(upload_id)
        if count == 0:
            return bytearray()
        if held is None or held[0] != parts or len(held[1]) != count:
            return None
        return held[1]

    def forget(self, upload_id: str) -> None:
        """Drop what is held for `upload_id`."""
        self._pop(upload_id)

    def keep(self, upload_id: str, parts: int, staged: bytearray) -> None:
        """Remember that `staged` is what the row counts after `parts` parts."""
        if not staged or len(staged) > self.budget:
            return
        self._pop(upload_id)
        with self._lock:
            while self._held and self._bytes + len(staged) > self.budget:
                _, (_, dropped) = self._held.popitem(last=False)
                self._bytes -= len(dropped)
            self._held[upload_id] = (parts, staged)
            self._bytes += len(staged)


# Per process: 32 MiB holds the staged bytes of hundreds of phone-sized PATCH streams.
STAGED_MEMORY = StagedMemory(32 << 20)
