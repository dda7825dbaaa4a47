"""CPU per request of one kind of exam-day call, in one process, one call at a time.

    python -m bench.examday.profile WORKDIR [--target status|peer] [--path PATH] [--calls N]
                                    [--cprofile OUT]

After a `python -m bench.examday --direct --workdir WORKDIR` run (its database and seeded
candidates stay), builds the app in this process (vexam as `vexam serve` builds it, or the
peer) and sends N requests through the ASGI interface, each after the previous one finished:
no HTTP server, no concurrency, so the process CPU per request (time.process_time) is what
the app itself costs, and a cProfile of it (`--cprofile`) is not blurred by interleaving.
`--path` sends GET PATH (as each candidate) to vexam instead of the status call, e.g. `/api/v1/me`
or `/healthz` to see what routing, middleware and dependencies cost alone. Prints the CPU ms
per request. For comparing a change before/after in the same minute.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import os
import time
from pathlib import Path
from typing import Any

import httpx

from bench.examday.__main__ import DATABASE, _env


async def _run(app: Any, calls: list[tuple[str, dict[str, str]]], profile: str) -> float:
    transport = httpx.ASGITransport(app=app)
    client = httpx.AsyncClient(transport=transport, base_url="http://bench")
    async with app.router.lifespan_context(app), client:
        for path, headers in calls[:50]:  # warm-up: caches, pools, statement caches
            (await client.get(path, headers=headers)).raise_for_status()
        profiler = cProfile.Profile() if profile else None
        began = time.process_time()
        if profiler is not None:
            profiler.enable()
        for path, headers in calls:
            response = await client.get(path, headers=headers)
            if response.status_code != 200:
                raise RuntimeError(f"{path}: {response.status_code} {response.text[:300]}")
        if profiler is not None:
            profiler.disable()
            profiler.dump_stats(profile)
        return time.process_time() - began


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("workdir")
    parser.add_argument("--target", choices=["status", "peer"], default="status")
    parser.add_argument("--path", default="", help="GET this vexam path instead")
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--cprofile", default="")
    args = parser.parse_args()
    work = Path(args.workdir)
    database_url = f"postgresql+asyncpg://postgres@127.0.0.1:5432/{DATABASE}"
    os.environ.update(_env(database_url, work / "data"))
    candidates = json.loads((work / "candidates.json").read_text())
    calls = []
    for i in range(args.calls):
        c = candidates[i % len(candidates)]
        who = {"Authorization": f"Bearer {c['token']}", "X-Device-Id": c["device"]}
        path = f"/api/v1/sittings/{c['sitting_id']}" if args.target == "status" else "/peer"
        path = args.path or path
        calls.append((path, who))
    if args.target == "status":
        from vexam.main import create_app

        app = create_app()
    else:
        from bench.examday.peer_app import app
    spent = asyncio.run(_run(app, calls, args.cprofile))
    per = spent * 1000 / len(calls)
    print(f"{args.path or args.target}: {per:.3f} CPU ms per request ({len(calls)} calls)")


if __name__ == "__main__":
    main()
