"""Issue 10, scale-out and faults: the cluster `deploy/local-cluster` starts (nginx, two web
and two worker processes, PostgreSQL, Redis, an S3 API server) takes a tus upload whose
PATCHes alternate between the web processes, and loses nothing when a web process and the
workers are killed with SIGKILL, PostgreSQL crashes and restarts and Redis is unreachable.

The cluster runs on a PostgreSQL server of this test's own (initdb into a temporary folder,
tests/deploy/cluster.py), so the test can crash it (`pg_ctl stop -m immediate`) and start it
again, which replays its write-ahead log, without disturbing the shared server other tests
use. The Redis outage is played by a TCP proxy in front of the shared Redis server: cutting
it closes every connection and refuses new ones, as an unreachable server does.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import signal
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from tests.deploy.cluster import (
    TUS,
    Cluster,
    Take,
    create_upload,
    free_port,
    hand_in,
    nginx_present,
    noise_video,
    postgres_present,
    resumable_upload,
    score_all,
    seed,
    settings_of,
    start_cluster,
    stop_cluster,
    submit_takes,
)
from vexam.accounts.phones import mask_phone
from vexam.config import Settings
from vexam.core.audit import AuditEntry
from vexam.core.clock import FrozenClock
from vexam.core.db import Database
from vexam.core.jobs import JobQueue, JobRuntime
from vexam.demo import DEMO_PASSWORD
from vexam.exams import uploads
from vexam.exams.models import Sitting, Submission, Upload
from vexam.main import build_resources, build_store, job_handlers
from vexam.review.models import ReviewItem, ReviewScore

DATABASE_URL = os.environ.get("VEXAM_TEST_DATABASE_URL", "")
QUEUE_URL = os.environ.get("VEXAM_TEST_QUEUE_URL", "")

pytestmark = [
    pytest.mark.skipif(
        not DATABASE_URL.startswith("postgresql") or not QUEUE_URL.startswith("redis"),
        reason="the cluster runs on PostgreSQL and Redis: it is tested once, in the run with "
        "VEXAM_TEST_DATABASE_URL=postgresql+asyncpg://... and VEXAM_TEST_QUEUE_URL=redis://... "
        "(the SQLite run skips it)",
    ),
    pytest.mark.skipif(
        not nginx_present(), reason="nginx is missing (apt-get install nginx; scripts/install)"
    ),
    pytest.mark.skipif(
        not postgres_present(),
        reason="the PostgreSQL server programs (initdb, pg_ctl) are missing: the test crashes "
        "and restarts a PostgreSQL server of its own (apt-get install postgresql)",
    ),
]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """One cluster for the module; a web process's lease on an upload lapses after 6 s
    (a PATCH cut by a crash is resumed that much later)."""
    directory = tmp_path_factory.mktemp("cluster")
    started = start_cluster(directory, QUEUE_URL, free_port(), "VEXAM_UPLOAD_LEASE_SECONDS=6")
    try:
        yield started
    finally:
        stop_cluster(started)


@pytest.fixture(scope="module")
async def world(cluster: Cluster) -> dict[str, Any]:
    """The demo's data on the cluster: its open exam and four certified candidates."""
    settings = settings_of({**cluster.direct, "VEXAM_ARGON2_TIME_COST": "1"})
    settings.argon2_memory_kib = 64
    exam_id, people = await seed(settings)
    return {"settings": settings, "exam_id": exam_id, "people": people}


@pytest.fixture(scope="module")
def video(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """A real 3 s H.264 video of noise (≈ 4 MB: the S3 store stages parts under 5 MiB)."""
    return noise_video(tmp_path_factory.mktemp("video") / "noise.mp4", 3)


async def _rows(settings: Settings, upload_ids: list[str]) -> dict[str, Upload]:
    db = Database(settings.effective_database_url)
    try:
        async with db.unit_of_work() as session:
            found = await session.execute(select(Upload).where(Upload.id.in_(upload_ids)))
            return {row.id: row for row in found.scalars()}
    finally:
        await db.dispose()


async def _until(check: Any, seconds: float, what: Any) -> Any:
    """Poll `check()` (async) until it returns something truthy; fail after `seconds`,
    saying `what` (or what awaiting `what()` tells)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while True:
        found = await check()
        if found:
            return found
        if loop.time() > deadline:
            raise AssertionError(
                f"timed out waiting for {what if isinstance(what, str) else await what()}"
            )
        await asyncio.sleep(0.05)


def _upload_id(take: Take) -> str:
    return take.location.rsplit("/", 1)[-1]


async def _states(settings: Settings, takes: list[Take]) -> list[tuple[str, int, Any]]:
    rows = await _rows(settings, [_upload_id(t) for t in takes])
    return [(r.state, r.received, (r.media or {}).get("jobs")) for r in rows.values()]


async def _settled(settings: Settings, takes: list[Take]) -> bool:
    rows = await _rows(settings, [_upload_id(t) for t in takes])
    return len(rows) == len(takes) and all(
        row.state == "verified" and (row.media or {}).get("jobs", {}).get("state") == "done"
        for row in rows.values()
    )


async def _assert_nothing_lost(settings: Settings, takes: list[Take]) -> None:
    """Every take's upload is byte-exact in S3, verified, its media jobs done, its submission
    verified with the declared hash, and each step audited once."""
    store = build_store(settings)
    ids = [_upload_id(t) for t in takes]
    rows = await _rows(settings, ids)
    db = Database(settings.effective_database_url)
    try:
        async with db.unit_of_work() as session:
            for take in takes:
                row = rows[_upload_id(take)]
                assert (row.state, row.received) == ("verified", len(take.data))
                assert row.media["jobs"]["state"] == "done", row.media["jobs"]
                stored = await store.get(f"uploads/{row.id}")
                assert hashlib.sha256(stored).digest() == hashlib.sha256(take.data).digest()
                submission = await session.get(Submission, take.submission_id)
                assert submission is not None and submission.upload_state == "verified"
                assert submission.sha256 == hashlib.sha256(take.data).hexdigest()
            audited = await session.execute(
                select(AuditEntry.action, func.count())
                .where(AuditEntry.subject_type == "upload", AuditEntry.subject_id.in_(ids))
                .group_by(AuditEntry.action)
            )
            counts = dict(audited.all())
    finally:
        await db.dispose()
    for action in ("upload.created", "upload.received", "upload.verified"):
        assert counts.get(action) == len(takes), (action, counts)
    assert counts.get("upload.media_checked", 0) >= len(takes), counts


async def _workers_take_jobs(cluster: Cluster, phone: str) -> None:
    """The worker processes took jobs again once Redis came back: an SMS code asked for now
    is sent (the console sender prints it in a worker's log)."""
    async with httpx.AsyncClient(base_url=cluster.url, timeout=30) as client:
        asked = await client.post(
            "/api/v1/auth/sms-codes", json={"phone": phone, "purpose": "login"}
        )
    assert asked.status_code == 202, asked.text
    line = f"[vexam SMS → {mask_phone(phone)}]"

    async def sent() -> bool:
        logs = [cluster.dir / "logs" / f"worker{i}.log" for i in range(2)]
        return any(line in path.read_text(errors="replace") for path in logs)

    await _until(sent, 20, "a worker sending the SMS after the Redis outage")


async def _assert_scores_kept(settings: Settings, exam_id: int, scored: set[str]) -> None:
    """Every acknowledged score is stored, and every verified submission has its one score."""
    db = Database(settings.effective_database_url)
    try:
        async with db.unit_of_work() as session:
            found = await session.execute(
                select(ReviewItem.code, func.count(ReviewScore.id))
                .outerjoin(ReviewScore, ReviewScore.item_id == ReviewItem.id)
                .where(ReviewItem.exam_id == exam_id)
                .group_by(ReviewItem.code)
            )
            per_item = dict(found.all())
            verified = await session.execute(
                select(func.count())
                .select_from(Submission)
                .join(Sitting, Sitting.id == Submission.sitting_id)
                .where(Sitting.exam_id == exam_id, Submission.upload_state == "verified")
            )
    finally:
        await db.dispose()
    assert scored and scored <= set(per_item)
    assert set(per_item.values()) == {1}
    assert len(per_item) == verified.scalar_one()


async def test_upload_alternates_between_web_processes_and_a_worker_verifies_it(
    cluster: Cluster, world: dict[str, Any], video: bytes
) -> None:
    """A tus upload whose PATCHes go to web process 0, 1, 0, 1 ... completes byte-exact; a
    worker process verifies it and runs its media jobs; nginx spreads requests over both,
    except those of one upload, which it keeps to one process."""
    settings = world["settings"]
    phone, province = world["people"][0]
    async with httpx.AsyncClient(base_url=cluster.url, timeout=30) as client:
        (take,) = await submit_takes(client, settings, world["exam_id"], phone, province, [video])
        await create_upload(client, take)
        answered = {(await client.get("/healthz")).headers["X-Vexam-Upstream"] for _ in range(4)}
        upload_heads = [
            await client.head(take.location, headers={**take.headers, **TUS}) for _ in range(6)
        ]
    ports = {f"127.0.0.1:{port}" for port in cluster.state["web_ports"]}
    assert answered == ports  # nginx uses both web processes
    # ... but keeps an upload's requests to one of them (it hashes the upload's id)
    assert {head.status_code for head in upload_heads} == {200}
    assert len({head.headers["X-Vexam-Upstream"] for head in upload_heads}) == 1

    urls = [cluster.web_url(0), cluster.web_url(1)]
    deadline = asyncio.get_running_loop().time() + 40
    served = await resumable_upload(urls, take, 768 * 1024, deadline)
    assert len(served) == -(-len(video) // (768 * 1024)) >= 5
    assert served == [urls[i % 2] for i in range(len(served))]  # strictly alternating

    await _until(lambda: _settled(settings, [take]), 40, "the worker's verification")
    await _assert_nothing_lost(settings, [take])


def _group_nice(pid: int) -> int | None:
    """The nice of the scheduling group (Linux autogroup) of `pid`; None without autogroups."""
    try:
        return int(Path(f"/proc/{pid}/autogroup").read_text().split()[-1])
    except OSError:
        return None


def test_workers_run_below_the_web_processes(cluster: Cluster) -> None:
    """Workers run at nice 10, their sessions' scheduling groups too where Linux has
    autogroups (each process leads a session of its own); web processes keep priority 0."""
    names = ("web0", "web1", "worker0", "worker1")
    for name in names:
        pid = cluster.pid(name)
        expected = 10 if name.startswith("worker") else 0
        assert os.getpriority(os.PRIO_PROCESS, pid) == expected, name
        # Every thread: the worker's job threads inherit the priority it was started with.
        threads = list(Path(f"/proc/{pid}/task").iterdir())
        assert threads and {os.getpriority(os.PRIO_PROCESS, int(t.name)) for t in threads} == {
            expected
        }, name
        assert _group_nice(pid) in (expected, None), name


REDIS_OUTAGE_SECONDS = 60.0  # "drop Redis for a minute"


async def _through_the_outage(
    client: httpx.AsyncClient, takes: list[Take], reviewer: str, until: float, scored: set[str]
) -> int:
    """Until loop time `until`: every candidate polls their sitting about once a second and
    the reviewer scores what is verified. Every poll must be answered 200 with the upload
    received (its check waits for Redis); returns how many polls were answered."""
    loop = asyncio.get_running_loop()
    polls = 0
    while loop.time() < until:
        for take in takes:
            answer = await client.get(f"/api/v1/sittings/{take.sitting_id}", headers=take.headers)
            assert answer.status_code == 200, answer.text
            (subject,) = [
                s for s in answer.json()["subjects"] if s["subject_id"] == take.subject_id
            ]
            receipt = subject["submission"]
            assert (receipt["upload_state"], receipt["upload_offset"]) == (
                "received",
                len(take.data),
            ), subject
            polls += 1
        scored.update(await score_all(client, reviewer, loop.time() + 30))
        await asyncio.sleep(min(1.0, max(0.0, until - loop.time())))
    return polls


async def _recover(cluster: Cluster, settings: Settings) -> int:
    """What the workers' periodic sweep does once the stranded delays have passed: run it on
    a clock 31 minutes ahead, with the jobs it queues run here (a queue of this test, so the
    real-clock workers, for whom a killed job still looks recent, do not take them)."""
    clock = FrozenClock(datetime.now(UTC) + timedelta(minutes=31))
    queue = JobQueue(
        cluster.direct["VEXAM_QUEUE_URL"], f"{settings.queue_name}-recovery", job_handlers()
    )
    db = Database(settings.effective_database_url)
    queue.runtime = JobRuntime(
        db=db,
        settings=settings,
        clock=clock,
        loop=asyncio.get_running_loop(),
        resources=build_resources(settings),
        store=build_store(settings),
    )
    try:
        await queue.run(uploads.SWEEP_JOB, {})
        return await queue.drain()
    finally:
        await db.dispose()


async def test_faults_lose_no_upload_submission_or_audit_row(
    cluster: Cluster, world: dict[str, Any], video: bytes
) -> None:
    """SIGKILL of both workers during media jobs and of a web process during uploads, a
    PostgreSQL crash and restart and a Redis outage while uploads finish and a reviewer
    scores: every upload completes byte-exact, every submission is verified, every
    acknowledged score is kept, every media job finishes after recovery, each upload step is
    audited once."""
    settings = world["settings"]
    loop = asyncio.get_running_loop()
    takes: list[Take] = []
    async with httpx.AsyncClient(base_url=cluster.url, timeout=30) as client:
        for phone, province in world["people"][1:3]:
            takes += await submit_takes(
                client, settings, world["exam_id"], phone, province, [video, video]
            )
        for take in takes:
            await create_upload(client, take)
        phone, province = world["people"][3]
        late = await submit_takes(
            client, settings, world["exam_id"], phone, province, [video, video], hand_in_now=False
        )
    first, rest = takes[:2], takes[2:]

    # 1. Both workers are killed while the first uploads' checks run, then started again.
    for take in first:
        await resumable_upload([cluster.url], take, 2 << 20, loop.time() + 30)

    async def checking() -> list[tuple[str, Any]]:
        rows = await _rows(settings, [_upload_id(t) for t in first])
        states = [(r.state, (r.media or {}).get("jobs", {}).get("state")) for r in rows.values()]
        busy = any(s == ("verified", "running") or s[0] == "received" for s in states)
        return states if busy else []

    at_kill = await _until(checking, 20, "a media check in progress")
    for index in range(2):
        os.kill(cluster.pid(f"worker{index}"), signal.SIGKILL)
    for index in range(2):
        await asyncio.to_thread(cluster.run, "restart-worker", "--index", str(index))

    # 2. Uploads through nginx while web process 0 is killed, PostgreSQL crashes and restarts
    #    (while the last candidate submits), and Redis is unreachable when they finish (their last
    #    PATCHes wait for the outage).
    patches = 0
    events: dict[str, asyncio.Event] = {n: asyncio.Event() for n in ("kill", "pg", "redis")}

    async def counted(_: int) -> None:
        nonlocal patches
        patches += 1
        for name, after in (("kill", 3), ("pg", 8)):
            if patches >= after:
                events[name].set()

    handed_in = asyncio.Event()
    redis_down = events["redis"]
    redis_cut: list[float] = []  # when the Redis outage began (loop time)

    async def chaos(client: httpx.AsyncClient) -> None:
        await events["kill"].wait()
        os.kill(cluster.pid("web0"), signal.SIGKILL)
        await events["pg"].wait()
        await asyncio.to_thread(cluster.pg.crash)  # every connection drops, nothing is flushed
        refused = asyncio.Event()  # the outage is held until a submission has met it
        submitting = [
            asyncio.create_task(hand_in(client, t, loop.time() + 30, refused)) for t in late
        ]
        await asyncio.wait_for(refused.wait(), 30)
        await asyncio.to_thread(cluster.pg.start)  # replays its write-ahead log
        await asyncio.gather(*submitting)
        handed_in.set()
        await asyncio.to_thread(cluster.run, "restart-web", "--index", "0")
        cluster.redis.cut()
        redis_cut.append(loop.time())
        events["redis"].set()

    scored: set[str] = set()
    uploaded = asyncio.Event()
    async with httpx.AsyncClient(base_url=cluster.url, timeout=30) as client:
        signed = await client.post(
            "/api/v1/auth/login", json={"phone": "13900000003", "password": DEMO_PASSWORD}
        )
        assert signed.status_code == 200, signed.text
        reviewer = signed.json()["token"]

        async def reviewing() -> None:  # a reviewer scores what is verified, all along
            while not uploaded.is_set():
                scored.update(await score_all(client, reviewer, loop.time() + 60))
                await asyncio.sleep(0.2)

        async def upload(take: Take, after: asyncio.Event | None = None) -> None:
            if after is not None:
                await after.wait()
                await create_upload(client, take)
            deadline = loop.time() + 60
            await resumable_upload([cluster.url], take, 512 * 1024, deadline, counted, redis_down)

        async def uploading() -> None:
            await asyncio.gather(*map(upload, rest), *(upload(t, handed_in) for t in late))
            uploaded.set()

        await asyncio.gather(chaos(client), reviewing(), uploading())
        # The outage lasts the full minute: wall-clock time on purpose, during which
        # candidates keep polling their sittings and the reviewer keeps scoring.
        polls = await _through_the_outage(
            client, [*rest, *late], reviewer, redis_cut[0] + REDIS_OUTAGE_SECONDS, scored
        )
    takes += late
    stranded = await _states(settings, [*rest, *late])
    assert [state for state, _, _ in stranded] == ["received"] * 4  # their checks were lost
    assert loop.time() - redis_cut[0] >= REDIS_OUTAGE_SECONDS
    cluster.redis.resume()
    await _workers_take_jobs(cluster, world["people"][1][0])
    for index in range(2):  # the outage is in the workers' logs as lines, not tracebacks
        logged = (cluster.dir / "logs" / f"worker{index}.log").read_text(errors="replace")
        assert "queue unreachable (ConnectionError" in logged
        assert "redis.exceptions.ConnectionError" not in logged

    recovered = await _recover(cluster, settings)
    assert recovered >= len(rest) + len(late)  # the sweep found the lost checks and ran them
    await _until(lambda: _settled(settings, takes), 30, lambda: _states(settings, takes))
    await _assert_nothing_lost(settings, takes)
    async with httpx.AsyncClient(base_url=cluster.url, timeout=30) as client:
        scored.update(await score_all(client, reviewer, loop.time() + 30))
    await _assert_scores_kept(settings, world["exam_id"], scored)
    assert "running" in cluster.run("status")  # every process up, /readyz answers 200
    assert "automatic recovery in progress" in cluster.pg.log()  # a crash, not a clean stop
    every = [f for take in takes for f in take.failures]
    assert not [f for f in every if f.startswith("RuntimeError: HEAD 502")]  # a process was up
    failed = Counter(f.split(" {")[0][:60] for take in takes for f in take.failures)
    print(f"\nworkers killed at {at_kill}; retried during the faults: {dict(failed)}")
    print(f"scores given: {len(scored)}; jobs the recovery sweep ran: {recovered}")
    print(f"status polls answered during the {REDIS_OUTAGE_SECONDS:.0f} s Redis outage: {polls}")
