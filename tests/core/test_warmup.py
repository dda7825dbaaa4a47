"""A web process does its libraries' first-request work at startup (`vexam.core.warmup`).

Each check runs in a fresh interpreter: in the test process the mappers were configured and
the route tables built long ago by other tests.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

_PROBE = """
import asyncio, json, sys
import httpx
from fastapi import routing
from vexam.core.models import Base
from vexam.main import create_app

built = []  # FastAPI builds a router's route table entry by entry, on first use
original = routing._IncludedRouter._build_effective_context

def counting(self, route):
    built.append(route)
    return original(self, route)

routing._IncludedRouter._build_effective_context = counting
app = create_app(warm=sys.argv[1] == "warm")

async def main():
    async with app.router.lifespan_context(app):
        unconfigured = sum(not mapper.configured for mapper in Base.registry.mappers)
        at_start = len(built)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            statuses = [
                (await client.get(path)).status_code
                for path in ("/healthz", "/api/v1/uploads/nothing-here", "/no/such/page")
            ]
    print(json.dumps({
        "unconfigured": unconfigured,
        "built_at_start": at_start,
        "built_by_requests": len(built) - at_start,
        "statuses": statuses,
    }))

asyncio.run(main())
"""


def _probe(tmp_path: Path, mode: str) -> dict[str, object]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VEXAM_")}
    env.update(VEXAM_ENV="test", VEXAM_DATA_DIR=str(tmp_path / mode))
    done = subprocess.run(
        [sys.executable, "-c", _PROBE, mode],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def test_a_warm_app_serves_its_first_requests_without_building_anything(
    tmp_path: Path,
) -> None:
    cold = _probe(tmp_path, "cold")
    if not cold["built_by_requests"]:  # the control: what the warm-up exists for
        pytest.fail(f"this FastAPI builds no route tables on first requests: {cold}")
    assert cold["unconfigured"], cold  # nothing had queried yet
    warm = _probe(tmp_path, "warm")
    assert warm == {
        "unconfigured": 0,
        "built_at_start": warm["built_at_start"],
        "built_by_requests": 0,
        "statuses": [200, 405, 404],  # an upload is never served by GET
    }
    assert warm["built_at_start"] == cold["built_by_requests"]  # every route, at startup
