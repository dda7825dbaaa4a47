"""The physical limit: a bare ASGI endpoint that appends each request body to a file
(`PATCH /raw/<name>`, 204), served by the same uvicorn (httptools + uvloop) as the Python
tus servers. No protocol, no database, no fsync."""

from __future__ import annotations

import os
from typing import Any

ROOT = os.environ.get("BENCH_RAW_DIR", "/tmp/bench-raw")


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                os.makedirs(ROOT, exist_ok=True)
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    name = os.path.basename(scope["path"])
    if scope["method"] != "PATCH" or not name:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b""})
        return
    fd = os.open(os.path.join(ROOT, name), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        more = True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            os.write(fd, message.get("body", b""))
            more = message.get("more_body", False)
    finally:
        os.close(fd)
    await send({"type": "http.response.start", "status": 204, "headers": []})
    await send({"type": "http.response.body", "body": b""})
