"""CPU per request kind of the exam-day mix, in one process, one call at a time.

    python -m bench.examday.kinds [--candidates N] [--warmup W] [--face NAME] [--workdir DIR]
                                  [--cprofile OUT --kind KIND] [--show KIND]

Seeds N + W candidates into a fresh PostgreSQL database (local upload store), builds vexam
in this process as `vexam serve` builds it, and runs each candidate's exam-day journey, the
one the load test sends (`bench.examday.load.journey`), through the ASGI interface, one call
at a time; the first W candidates are warm-up (caches, pools, statement caches). After each
journey the peer (`bench.examday.peer_app`, in this process too) answers as many GETs as
the journey polled its status, the same way, so both are measured in the same minutes. The
process CPU (`time.process_time`, every thread: face checks run on worker threads) is read
around each call and summed per kind.

Prints per kind: calls, share of the mix, statements sent per call, S3 API calls per call
(with `--s3`; those of work a call leaves running count where they are made), CPU ms per
call (median and mean, and the mean × the peer's), the kind's part of the mix's CPU, and the
database server's CPU per call (its processes serving this database, from
/proc/PID/schedstat: on one machine it shares the cores); the same for the peer; and the
ratio the mix could reach against the peer if requests/s followed CPU per request. The CPU
figures include the in-process client's own work (httpx through ASGI), measured as an empty
app's cost and taken off both sides in every × peer and ratio. No HTTP server and no
concurrency: what each kind costs the app itself, to see where the mix's CPU goes (the load
test, `python -m bench.examday`, measures the whole under load). Face-check frames hold no
face unless `--face NAME` names a shared face photo, as in the load test. `--cprofile OUT`
writes a cProfile of the measured calls of one kind (`--kind`, e.g. face_check); `--show
KIND` prints the statements one call of that kind sent. `--s3` puts blobs and uploads on an
S3 API server (moto, a process of its own, started here with a fresh bucket), as in the load
test's cluster: the uploads' S3 calls then count in this process's CPU, the server's own do
not.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import os
import statistics
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from sqlalchemy import event
from starlette.types import Receive, Scope, Send

from bench import dbcpu
from bench.examday.__main__ import (
    DATABASE,
    QUEUE_URL,
    _cluster_module,
    _env,
    _free_port,
    _fresh_database,
)
from bench.examday.load import Call, Reply, face_frame, journey, small_jpeg
from bench.examday.seed import Candidate, seed, settings_for

KINDS_DATABASE = f"{DATABASE}_kinds"


@dataclass
class Meter:
    """CPU seconds per call and statements sent, per kind; `on` is False during warm-up."""

    spent: dict[str, list[float]] = field(default_factory=dict)
    statements: dict[str, int] = field(default_factory=dict)
    sent: int = 0
    s3_calls: dict[str, int] = field(default_factory=dict)
    s3_sent: int = 0
    s3_lock: threading.Lock = field(default_factory=threading.Lock)
    on: bool = False
    profile: tuple[str, cProfile.Profile] | None = None
    show: str = ""
    shown: list[str] = field(default_factory=list)
    showing: bool = False
    db_pids: list[int] = field(default_factory=list)
    db_spent: dict[str, float] = field(default_factory=dict)

    def db_cpu(self) -> float:
        """CPU seconds the database's server processes for this database have used."""
        return dbcpu.cpu_seconds(self.db_pids)

    def count(self, _conn: object, _cursor: object, statement: str, *_: object) -> None:
        """SQLAlchemy's before_cursor_execute: one more statement sent to the database."""
        self.sent += 1
        if self.showing:
            self.shown.append(" ".join(statement.split()))

    def count_s3(self, **_: object) -> None:
        """botocore's before-call: one more S3 API call (made on the app's S3 threads, so
        counted under a lock)."""
        with self.s3_lock:
            self.s3_sent += 1


class InProcess:
    """A journey's calls through ASGI, each one's process CPU added to its kind."""

    def __init__(self, http: httpx.AsyncClient, meter: Meter) -> None:
        self.http = http
        self.meter = meter

    async def call(self, c: Call) -> Reply | None:
        meter = self.meter
        profile = meter.profile
        profiler = profile[1] if meter.on and profile and profile[0] == c.kind else None
        sent, s3_sent = meter.sent, meter.s3_sent
        meter.showing = meter.on and c.kind == meter.show and not meter.shown
        db_began = meter.db_cpu()
        began = time.process_time()
        if profiler is not None:
            profiler.enable()
        response = await self.http.request(
            c.method, c.path, headers=c.headers, json=c.json, content=c.data, files=c.files
        )
        if profiler is not None:
            profiler.disable()
        spent = time.process_time() - began
        db_spent = meter.db_cpu() - db_began
        meter.showing = False
        if response.status_code != c.expect:
            raise RuntimeError(f"{c.kind} {c.path}: {response.status_code} {response.text[:300]}")
        if meter.on:
            meter.spent.setdefault(c.kind, []).append(spent)
            meter.statements[c.kind] = meter.statements.get(c.kind, 0) + meter.sent - sent
            meter.s3_calls[c.kind] = meter.s3_calls.get(c.kind, 0) + meter.s3_sent - s3_sent
            meter.db_spent[c.kind] = meter.db_spent.get(c.kind, 0.0) + db_spent
        return Reply(response.status_code, response.headers, response.content)


async def measure(
    candidates: list[Candidate], warmup: int, video: bytes, frame: bytes, meter: Meter
) -> None:
    """Each candidate's journey, then as many peer GETs as it polled its status, so that
    both are measured in the same minutes of this machine, whose speed drifts."""
    from bench.examday.peer_app import app as peer_app
    from vexam.main import create_app

    app = create_app()
    vexam_http = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://b")
    peer_http = httpx.AsyncClient(transport=httpx.ASGITransport(app=peer_app), base_url="http://b")
    async with (
        app.router.lifespan_context(app),
        peer_app.router.lifespan_context(peer_app),
        vexam_http,
        peer_http,
    ):
        event.listen(app.state.db.engine.sync_engine, "before_cursor_execute", meter.count)
        event.listen(peer_app.state.engine.sync_engine, "before_cursor_execute", meter.count)
        s3_client = getattr(app.state.store, "client", None)  # the S3 blob store's boto3 client
        if s3_client is not None:
            s3_client.meta.events.register("before-call.s3", meter.count_s3)
        vexam, peer = InProcess(vexam_http, meter), InProcess(peer_http, meter)
        for index, c in enumerate(candidates):
            meter.on = index >= warmup
            meter.db_pids = list(dbcpu.backends(KINDS_DATABASE))
            polls = len(meter.spent.get("status", []))
            await journey(vexam, c, video, frame)
            headers = {"Authorization": f"Bearer {c.token}"}
            for _ in range(len(meter.spent.get("status", [])) - polls if meter.on else 50):
                await peer.call(Call("peer", "GET", "/peer", 200, headers=headers))
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=_empty), base_url="http://b"
    ) as http:
        floor = InProcess(http, meter)
        for _ in range(len(meter.spent["peer"])):
            await floor.call(Call("floor", "GET", "/", 204, headers={}))


async def _empty(scope: Scope, receive: Receive, send: Send) -> None:
    """An ASGI app that answers 204 and does nothing: the in-process client's own cost."""
    await send({"type": "http.response.start", "status": 204, "headers": []})
    await send({"type": "http.response.body", "body": b""})


def report(meter: Meter) -> None:
    """Print the table of kinds and the peer's figures."""
    spent = dict(meter.spent)
    peer = spent.pop("peer")
    floor_ms = statistics.mean(spent.pop("floor")) * 1000
    db = dict(meter.db_spent)
    peer_db_ms = db.pop("peer") * 1000 / len(peer)
    db.pop("floor")
    total_calls = sum(len(v) for v in spent.values())
    mean_ms = sum(sum(v) for v in spent.values()) * 1000 / total_calls
    db_ms = sum(db.values()) * 1000 / total_calls
    peer_ms = statistics.mean(peer) * 1000
    app_peer = peer_ms - floor_ms  # the apps' own CPU: the client's work taken off

    def times_peer(ms: float) -> float:
        return (ms - floor_ms) / app_peer

    print(
        "| kind | calls | share | statements | S3 calls | CPU ms p50 | CPU ms mean | × peer "
        "| part of the mix | database CPU ms |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for kind, values in sorted(spent.items(), key=lambda kv: -sum(kv[1])):
        mean = statistics.mean(values) * 1000
        print(
            f"| {kind} | {len(values)} | {len(values) / total_calls:.0%} | "
            f"{meter.statements[kind] / len(values):.1f} | "
            f"{meter.s3_calls[kind] / len(values):.1f} | "
            f"{statistics.median(values) * 1000:.2f} | {mean:.2f} | {times_peer(mean):.1f} | "
            f"{sum(values) * 1000 / total_calls / mean_ms:.0%} | "
            f"{db[kind] * 1000 / len(values):.2f} |"
        )
    print(
        f"| **mix** | {total_calls} | 100% | | | | {mean_ms:.2f} | {times_peer(mean_ms):.1f} | "
        f"100% | {db_ms:.2f} |"
    )
    print(
        f"\npeer GET: {peer_ms:.2f} CPU ms per request, {peer_db_ms:.2f} database CPU ms, "
        f"{meter.statements['peer'] / len(peer):.1f} statements ({len(peer)} calls)"
    )
    print(
        f"an empty ASGI app: {floor_ms:.2f} CPU ms per request (the in-process client's own "
        "work, inside every CPU figure above, taken off both sides of every × peer)"
    )
    print(
        "if requests/s followed CPU per request, the mix would run at "
        f"{1 / times_peer(mean_ms):.2f}× the peer; counting the database's CPU too, at "
        f"{(app_peer + peer_db_ms) / (mean_ms - floor_ms + db_ms):.2f}×"
    )


@contextlib.contextmanager
def s3_server(work: Path) -> Iterator[dict[str, str]]:
    """An S3 API server (moto) in a process of its own, with a fresh bucket; yields the
    settings (environment) that put vexam's blobs and uploads in it."""
    cluster = _cluster_module()
    endpoint = f"http://127.0.0.1:{_free_port()}"
    with (work / "s3.log").open("wb") as log:
        server = subprocess.Popen(
            [str(cluster.BIN / "moto_server"), "-H", "127.0.0.1", "-p", endpoint.rsplit(":")[-1]],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        cluster.wait_for(f"{endpoint}/moto-api/", server.pid, "moto", 30)
        cluster.make_bucket(endpoint, "vexam-examday-kinds")
        yield {
            "VEXAM_STORAGE_URL": "s3://vexam-examday-kinds",
            "VEXAM_S3_ENDPOINT_URL": endpoint,
            "VEXAM_S3_REGION": "us-east-1",
            "VEXAM_S3_ACCESS_KEY": "testing",
            "VEXAM_S3_SECRET_KEY": "testing",
        }
    finally:
        server.terminate()
        server.wait(10)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--candidates", type=int, default=60, help="measured candidates")
    parser.add_argument("--warmup", type=int, default=5, help="warm-up candidates")
    parser.add_argument("--face", default="", help="a shared face photo, e.g. obama_1")
    parser.add_argument("--workdir", default="")
    parser.add_argument("--cprofile", default="", help="write a cProfile of --kind's calls")
    parser.add_argument("--kind", default="status", help="the kind --cprofile profiles")
    parser.add_argument("--show", default="", help="print the statements of one KIND call")
    parser.add_argument("--s3", action="store_true", help="blobs and uploads on moto S3")
    args = parser.parse_args()
    work = Path(args.workdir or tempfile.mkdtemp(prefix="vexam-examday-kinds-"))
    work.mkdir(parents=True, exist_ok=True)
    from tests.uploads.conftest import make_video

    make_video(work / "take.mp4", frames=24)
    video = (work / "take.mp4").read_bytes()
    frame = face_frame(args.face) if args.face else small_jpeg()
    database_url = asyncio.run(_fresh_database(KINDS_DATABASE))
    data_dir = work / "data"
    os.environ.update(_env(database_url, data_dir))
    with contextlib.ExitStack() as stack:
        if args.s3:
            os.environ.update(stack.enter_context(s3_server(work)))
        _run(args, work, video, frame, database_url, data_dir)


def _run(
    args: argparse.Namespace,
    work: Path,
    video: bytes,
    frame: bytes,
    database_url: str,
    data_dir: Path,
) -> None:
    started = time.monotonic()
    settings = settings_for(data_dir, database_url, QUEUE_URL)
    candidates = asyncio.run(seed(settings, args.warmup + args.candidates))
    print(f"seeded {len(candidates)} candidates in {time.monotonic() - started:.1f} s")
    meter = Meter(
        profile=(args.kind, cProfile.Profile()) if args.cprofile else None, show=args.show
    )
    asyncio.run(measure(candidates, args.warmup, video, frame, meter))
    if meter.profile is not None:
        meter.profile[1].dump_stats(args.cprofile)
    faces = f"show {args.face}" if args.face else "hold no face"
    store = "S3 (moto)" if args.s3 else "local"
    print(
        f"\nExam-day mix, CPU per call in one process ({args.candidates} candidates after "
        f"{args.warmup} warm-up, one call at a time; face-check frames {faces}; "
        f"{store} store):"
    )
    report(meter)
    if args.show:
        print(f"\nthe statements of one {args.show} call:")
        for statement in meter.shown:
            print(f"- {statement}")
    print(f"(work folder {work})")


if __name__ == "__main__":
    main()
