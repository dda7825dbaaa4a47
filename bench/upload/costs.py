"""Server CPU per request kind of a tus upload, to see where the upload bench's CPU goes.

    python -m bench.upload.costs [--uploads 100] [--rounds 3] [--before-src DIR]
                                 [--database-url URL]

Starts vexam as the upload bench does (uvicorn, httptools, uvloop; SQLite unless a fresh
PostgreSQL database is given), prepares one submission per upload and round, then measures
the server process's CPU (/proc) across each phase, all uploads of a round concurrently: the
creations (POST), the PATCHes in the middle of the uploads (256 KiB each, the PATCH fast
lane), the last PATCHes (completion: hash check, settlement, media job queued), and, for
scale, a trivial authenticated `GET /api/v1/me`. Each round starts a fresh server. Prints
milliseconds of server CPU per request: the median of the rounds and their range (this
machine's speed moves by a third between minutes; one round decides nothing).

`--before-src DIR` serves another checkout's `vexam` (DIR or DIR/src, e.g. from
`git archive COMMIT src | tar -x -C DIR`) in every round too, alternating with this one on
the same database, and prints the ratio of the medians (this checkout ÷ before).
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import os
import random
import statistics
import tempfile
from collections.abc import Callable
from pathlib import Path

import aiohttp

from bench import vexam_source
from bench.upload.__main__ import REPO, STREAM, TUS, Server, _cpu_seconds, servers
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


def _summary(runs: list[dict[str, float]]) -> dict[str, tuple[float, float, float]]:
    """Per kind: (median, lowest, highest) of the rounds."""
    return {
        kind: (
            statistics.median(run[kind] for run in runs),
            min(run[kind] for run in runs),
            max(run[kind] for run in runs),
        )
        for kind in runs[0]
    }


def _served_from(
    env: Callable[[Path], dict[str, str]], source: str
) -> Callable[[Path], dict[str, str]]:
    """`env`, with the `vexam` package imported from `source` instead of this checkout."""
    return lambda store: {**env(store), "PYTHONPATH": os.pathsep.join((source, str(REPO)))}


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--uploads", type=int, default=100, help="concurrent uploads")
    parser.add_argument("--rounds", type=int, default=3, help="fresh servers per source")
    parser.add_argument("--before-src", default="", help="alternate with vexam from this src")
    parser.add_argument("--database-url", default="", help="a fresh PostgreSQL database")
    args = parser.parse_args()
    sources = {"this checkout": ""}
    if args.before_src:
        sources = {"before": vexam_source(args.before_src, "--before-src"), **sources}
    work = Path(tempfile.mkdtemp(prefix="vexam-bench-costs-"))
    database_url = args.database_url or f"sqlite+aiosqlite:///{work / 'vexam.db'}"
    files = [random.Random(i).randbytes(SIZE) for i in range(args.uploads)]
    count = args.uploads * args.rounds * len(sources)
    declared = [(hashlib.sha256(files[i % args.uploads]).hexdigest(), SIZE) for i in range(count)]
    slots = asyncio.run(prepare(work, database_url, declared))
    runs: dict[str, list[dict[str, float]]] = {name: [] for name in sources}
    for round_ in range(args.rounds):
        for position, (name, source) in enumerate(sources.items()):
            server = next(s for s in servers(work, database_url, None, False) if s.kind == "vexam")
            first = (round_ * len(sources) + position) * args.uploads
            server.work, server.slots = work, slots[first : first + args.uploads]
            if source:
                server.env = _served_from(server.env, source)
            server.start(work / "store", work / "vexam.log")
            try:
                runs[name].append(asyncio.run(_measure(server, files)))
            finally:
                server.stop()
    print(
        f"server CPU per request (ms), {args.uploads} concurrent uploads of 2 MiB in 256 KiB"
        f" PATCHes ({database_url.split(':', 1)[0]}), median [range] of {args.rounds} rounds:"
    )
    summaries = {name: _summary(found) for name, found in runs.items()}
    print(f"  {'':<32} " + " ".join(f"{name:>22}" for name in sources))
    for kind in summaries["this checkout"]:
        cells = []
        for name in sources:
            median, low, high = summaries[name][kind]
            cells.append(f"{median * 1000:6.2f} [{low * 1000:5.2f}–{high * 1000:5.2f}]")
        line = f"  {kind:<32} " + " ".join(f"{cell:>22}" for cell in cells)
        if args.before_src:
            ratio = summaries["this checkout"][kind][0] / summaries["before"][kind][0]
            line += f"  × {ratio:.2f}"
        print(line)


if __name__ == "__main__":
    main()
