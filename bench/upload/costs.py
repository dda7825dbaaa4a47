"""Server CPU per request kind of a tus upload, to see where the upload bench's CPU goes.

    python -m bench.upload.costs [--uploads 100] [--database-url URL]

Starts vexam as the upload bench does (uvicorn, httptools, uvloop; SQLite unless a fresh
PostgreSQL database is given), prepares one submission per upload, then measures the server
process's CPU (/proc) across each phase, all uploads concurrently: the creations (POST), the
PATCHes in the middle of the uploads (256 KiB each, the PATCH fast lane), the last PATCHes
(completion: hash check, settlement, media job queued), and, for scale, a trivial
authenticated `GET /api/v1/me`. Prints milliseconds of server CPU per request.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import random
import tempfile
from pathlib import Path

import aiohttp

from bench.upload.__main__ import STREAM, TUS, Server, _cpu_seconds, servers
from bench.upload.vexam_setup import prepare

SIZE = 2 * 1024 * 1024
PATCH = 256 * 1024
ME_ROUNDS = 3


async def _measure(server: Server, files: list[bytes]) -> dict[str, float]:
    assert server.process is not None
    pid = server.process.pid
    count = len(files)
    out: dict[str, float] = {}
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as http:

        async def patch(index: int, offset: int) -> None:
            headers = {**server.auth(index), **TUS, **STREAM, "Upload-Offset": str(offset)}
            body = files[index][offset : offset + PATCH]
            async with http.patch(urls[index], data=body, headers=headers) as response:
                if response.status != 204:
                    raise RuntimeError(f"PATCH {response.status}: {await response.text()}")

        async def me(index: int) -> None:
            url = server.url + "/api/v1/me"
            async with http.get(url, headers=server.auth(index)) as response:
                if response.status != 200:
                    raise RuntimeError(f"GET /api/v1/me {response.status}")

        before = _cpu_seconds(pid)
        urls = await asyncio.gather(*(server.create(http, i, SIZE) for i in range(count)))
        after = _cpu_seconds(pid)
        out["creation (POST)"] = (after - before) / count
        middles = SIZE // PATCH - 1
        before = after
        for k in range(middles):
            await asyncio.gather(*(patch(i, k * PATCH) for i in range(count)))
        after = _cpu_seconds(pid)
        out["PATCH in the middle (256 KiB)"] = (after - before) / (count * middles)
        before = after
        await asyncio.gather(*(patch(i, SIZE - PATCH) for i in range(count)))
        after = _cpu_seconds(pid)
        out["last PATCH (completion)"] = (after - before) / count
        before = after
        for _ in range(ME_ROUNDS):
            await asyncio.gather(*(me(i) for i in range(count)))
        after = _cpu_seconds(pid)
        out["GET /api/v1/me"] = (after - before) / (count * ME_ROUNDS)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--uploads", type=int, default=100, help="concurrent uploads")
    parser.add_argument("--database-url", default="", help="a fresh PostgreSQL database")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="vexam-bench-costs-"))
    database_url = args.database_url or f"sqlite+aiosqlite:///{work / 'vexam.db'}"
    files = [random.Random(i).randbytes(SIZE) for i in range(args.uploads)]
    declared = [(hashlib.sha256(data).hexdigest(), SIZE) for data in files]
    slots = asyncio.run(prepare(work, database_url, declared))
    server = next(s for s in servers(work, database_url, None, False) if s.kind == "vexam")
    server.work, server.slots = work, slots
    server.start(work / "store", work / "vexam.log")
    try:
        costs = asyncio.run(_measure(server, files))
    finally:
        server.stop()
    print(f"server CPU per request, {args.uploads} concurrent uploads of 2 MiB in 256 KiB PATCHes")
    print(f"({database_url.split(':', 1)[0]}):")
    for name, seconds in costs.items():
        print(f"  {name:<32} {seconds * 1000:6.2f} ms")


if __name__ == "__main__":
    main()
