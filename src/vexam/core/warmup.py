"""Work a web process does once at startup, before it accepts connections.

Two libraries defer work to the first request that needs it: SQLAlchemy configures its
mappers on the first query, and FastAPI builds each included router's table of routes on
the first request that reaches that router. In a fresh process that is about 0.3 s of CPU
on the event loop (mappers ≈ 40 ms, route tables ≈ 250 ms; `python -m bench.upload`'s
first upload cost a fresh process ≈ 170 ms more server CPU than the next ones), paid by
whichever requests come first, and every request the process is serving waits meanwhile:
after a restart on exam day, that is every candidate whose connection landed there.
`vexam serve` and `vexam demo` pay it in the lifespan instead: uvicorn listens only after
the lifespan has started.
"""

from __future__ import annotations

from fastapi import FastAPI
from sqlalchemy.orm import configure_mappers
from starlette.types import Message, Scope

# No route has this path, so the router tries (and builds) every router's routes.
UNROUTED_PATH = "/.vexam-warm-up"


async def warm_up(app: FastAPI) -> None:
    """Configure the ORM mappers and have the router build all its route tables."""
    configure_mappers()
    scope: Scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": UNROUTED_PATH,
        "raw_path": UNROUTED_PATH.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [],
        "client": None,
        "server": None,
        # No "app" key: the router answers the 404 itself rather than raising it to the
        # app's exception handlers, and the request is not in the request metrics.
    }

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:  # the 404 goes nowhere
        pass

    await app.router(scope, receive, send)
