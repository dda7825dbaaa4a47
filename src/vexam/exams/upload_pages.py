"""zh/en pages of a candidate's uploads in the phone browser (SPEC §5).

The page itself holds no upload state: the browser keeps the recordings and their tus
addresses in IndexedDB per account (static/js/upload-queue.js) and asks the JSON API for the
server's side (`GET /api/v1/me/sittings`). The page gives the script the signed-in account,
its masked phone (to name it to the next account on this browser) and the texts.
"""

from __future__ import annotations

from fastapi import Request, Response

from vexam.core.auth import Candidate
from vexam.core.web import Templates, make_router

router = make_router(include_in_schema=False)

# The PATCH size the page asks for with `?chunk_kib=` (a slow or flaky link: smaller chunks
# lose less on a cut); without it the client adapts its chunks to the link.
MIN_CHUNK_KIB = 64
MAX_CHUNK_KIB = 8 * 1024


def chunk_bytes(chunk_kib: str | None) -> int | None:
    """The fixed chunk size asked for, clamped to 64 KiB–8 MiB; None: adaptive."""
    if not chunk_kib or not chunk_kib.isdigit():
        return None
    return max(MIN_CHUNK_KIB, min(MAX_CHUNK_KIB, int(chunk_kib))) * 1024


@router.get("/uploads")
async def uploads_page(
    request: Request, principal: Candidate, chunk_kib: str | None = None
) -> Response:
    """This account's recordings on this browser and their uploads: progress, speed, time
    left, the server's verification; other accounts' unfinished recordings are named."""
    templates: Templates = request.app.state.templates
    return templates.render(
        request,
        "exams/uploads.html",
        {
            "account": str(principal.user_id),
            "account_label": principal.masked_phone,
            "chunk_bytes": chunk_bytes(chunk_kib) or "",
        },
    )
