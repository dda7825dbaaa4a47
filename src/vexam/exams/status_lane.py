"""The fast lane of status polls (SPEC §5; issue 10, exam-day load).

Over half the requests of an exam day are candidates' apps polling their sitting,
`GET /api/v1/sittings/{sitting_id}`. When this process confirmed the caller's session
recently (the principal memory, `core.auth`), such a poll needs no routing, no dependency
resolution and no session lookup: this ASGI middleware answers it itself, with what the full
route (`sitting_api.get_sitting`) uses: the same service call in the same unit of work
(reads first), the same response model serialized the same way, and refusals and failures
answered by the app's own exception handlers.

A poll goes down the full route when anything is not plainly so: another path shape (an id
with a sign, leading zeros or beyond 64 bits), a session this process has not confirmed
recently, a caller who is not a candidate. The full route then confirms the session and
remembers it, so the next poll takes the lane.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from pydantic import TypeAdapter
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from vexam.core.auth import PrincipalMemory, get_ctx, remembered_reader
from vexam.core.context import Role
from vexam.core.problems import answer_as_handled
from vexam.core.web import ROW_ID_RANGE, in_unit_of_work, route_of
from vexam.exams import schemas, sitting_api, sitting_status

# Only the id shape the full route reads as the same number: no sign, no leading zero.
_STATUS_PATH = re.compile(r"/api/v1/sittings/([1-9][0-9]{0,18})")
_STATUS_JSON = TypeAdapter(schemas.SittingOut)


@dataclass
class LaneCount:
    """Polls the lane answered in this process (the tests read it)."""

    served: int = 0


class StatusPollLane:
    """ASGI middleware: answer remembered candidates' status polls before routing."""

    def __init__(self, app: ASGIApp, *, memory: PrincipalMemory, count: LaneCount) -> None:
        self.app = app
        self.memory = memory
        self.count = count
        self.route = route_of(sitting_api.router, sitting_api.get_sitting)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "GET":
            found = _STATUS_PATH.fullmatch(scope["path"])
            sitting_id = int(found[1]) if found is not None else None
            if sitting_id is not None and sitting_id in ROW_ID_RANGE:
                request = Request(scope, receive)
                principal = remembered_reader(request, self.memory)
                if principal is not None and principal.role == Role.candidate:
                    scope["route"] = self.route
                    self.count.served += 1
                    response = await self._answer(request, sitting_id)
                    await response(scope, receive, send)
                    return
        await self.app(scope, receive, send)

    async def _answer(self, request: Request, sitting_id: int) -> Response:
        async def poll(request: Request) -> Response:
            ctx = await get_ctx(request)
            sitting = await sitting_status.my_status(ctx, request.state.principal, sitting_id)
            body = _STATUS_JSON.dump_json(sitting, by_alias=True)
            return Response(body, media_type="application/json")

        try:
            return await in_unit_of_work(request, poll, reads_first=True)
        except Exception as exc:  # answered as the full route would answer it
            return await answer_as_handled(request, exc)
