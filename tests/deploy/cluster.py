"""Helpers of the cluster tests: a PostgreSQL server of the test's own that can crash and
restart, a TCP proxy that plays a Redis outage, the cluster started by deploy/local-cluster,
its candidates and a tus client that resumes."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import json
import os
import shutil
import socket
import subprocess
import tempfile
import threading
from dataclasses import dataclass, field
from fractions import Fraction
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import httpx
import numpy as np
from sqlalchemy import update

from vexam.config import Settings

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "deploy" / "local-cluster"
TUS = {"Tus-Resumable": "1.0.0"}
PHONE = {"device_class": "phone", "os_name": "android", "os_version": "13", "camera": True}
PHONE |= {"microphone": True, "free_bytes": 8 * 1024**3, "upload_kbps": 20000}
PROVINCES = {"北京": "11", "上海": "31", "广东": "44", "四川": "51"}


def nginx_present() -> bool:
    """nginx is installed (Debian's package; scripts/install adds it)."""
    return bool(shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin"))


class TcpProxy:
    """A TCP forwarder on 127.0.0.1 that the test can cut: `cut()` closes every connection
    and refuses new ones, as a restarting server does; `resume()` accepts again on the same
    port. The shared Redis server other tests use is never touched."""

    def __init__(self, target_port: int) -> None:
        self.target = ("127.0.0.1", target_port)
        self.port = 0
        self._listener: socket.socket | None = None
        self._pairs: set[socket.socket] = set()
        self._lock = threading.Lock()
        self.resume()

    def resume(self) -> None:
        """Listen (again) and forward."""
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(256)
        self.port = listener.getsockname()[1]
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def cut(self) -> None:
        """Stop listening and close every forwarded connection."""
        listener, self._listener = self._listener, None
        if listener is not None:
            with contextlib.suppress(OSError):
                listener.shutdown(socket.SHUT_RDWR)
            listener.close()
        with self._lock:
            pairs, self._pairs = self._pairs, set()
        for sock in pairs:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            try:
                server = socket.create_connection(self.target)
            except OSError:
                client.close()
                continue
            with self._lock:
                if self._listener is not listener:
                    client.close()
                    server.close()
                    return
                self._pairs |= {client, server}
            for a, b in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)


def free_port() -> int:
    """A TCP port of 127.0.0.1 nothing listens on (now)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _postgres_bindir() -> Path | None:
    """Where initdb and pg_ctl are (Debian keeps them out of PATH), or None."""
    found = shutil.which("initdb")
    if found:
        return Path(found).resolve().parent
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: p.parts)
    return versions[-1].parent if versions else None


def postgres_present() -> bool:
    """The PostgreSQL server programs are installed (Debian's postgresql package)."""
    return _postgres_bindir() is not None


class PostgresServer:
    """A PostgreSQL server of the test's own (initdb into a temporary folder, on a free port
    of 127.0.0.1, trust auth for the user `postgres`), so the test can crash and restart it
    without disturbing the shared server other tests use. Run as the `postgres` system user
    when the test runs as root (PostgreSQL refuses to run as root)."""

    def __init__(self, port: int) -> None:
        bindir = _postgres_bindir()
        if bindir is None:
            raise RuntimeError("initdb not found (apt-get install postgresql)")
        self.bindir, self.port = bindir, port
        self.dir = Path(tempfile.mkdtemp(prefix="vexam-pg-"))
        self._as: list[str] = []
        if os.geteuid() == 0:
            self._as = ["runuser", "-u", "postgres", "--"]
            shutil.chown(self.dir, "postgres", "postgres")
        self.data = self.dir / "data"
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8")
        self.start()

    @property
    def url(self) -> str:
        """postgresql:// URL of the server, without a database name."""
        return f"postgresql://postgres@127.0.0.1:{self.port}"

    def _run(self, program: str, *args: str) -> str:
        done = subprocess.run(
            [*self._as, str(self.bindir / program), *args],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        if done.returncode:
            raise RuntimeError(f"{program} {' '.join(args)}: {done.stdout}{done.stderr}")
        return done.stdout

    def start(self) -> None:
        """Start the server and wait until it accepts connections (after crash recovery)."""
        options = f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1"
        options += " -c max_connections=200"
        log = str(self.dir / "server.log")
        self._run("pg_ctl", "-D", str(self.data), "-o", options, "-l", log, "-w", "start")

    def crash(self) -> None:
        """Stop the server the hard way (`pg_ctl stop -m immediate`: every backend quits at
        once, no checkpoint), so its next start replays the write-ahead log, as after a
        power cut: what survives is exactly what was committed."""
        self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")

    def log(self) -> str:
        """The server's log (recovery messages after a crash)."""
        return (self.dir / "server.log").read_text(errors="replace")

    def remove(self) -> None:
        """Stop the server if it runs and delete its folder."""
        with contextlib.suppress(RuntimeError):
            self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")
        shutil.rmtree(self.dir, ignore_errors=True)


@dataclass
class Cluster:
    """A cluster started by deploy/local-cluster on its own PostgreSQL server, Redis behind
    a proxy."""

    dir: Path
    url: str
    env: dict[str, str]  # what the processes see (Redis through the proxy)
    direct: dict[str, str]  # the same, straight to Redis (for the test)
    pg: PostgresServer
    redis: TcpProxy
    state: dict[str, Any] = field(default_factory=dict)

    def run(self, *args: str, timeout: float = 120) -> str:
        """Run a deploy/local-cluster command on this cluster; its output."""
        done = subprocess.run(
            [str(SCRIPT), *args, "--dir", str(self.dir)],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        self.state = json.loads((self.dir / "cluster.json").read_text())
        return done.stdout

    def pid(self, name: str) -> int:
        """The pid of process `name` (web0, worker1, nginx, s3) from its pid file."""
        return int((self.dir / "pids" / f"{name}.pid").read_text())

    def web_url(self, index: int) -> str:
        """Web process `index`, bypassing nginx."""
        return f"http://127.0.0.1:{self.state['web_ports'][index]}"


def start_cluster(directory: Path, queue_url: str, port: int, *env: str) -> Cluster:
    """`up` on a PostgreSQL server of its own (database `vexam_cluster`) and with Redis
    behind a proxy."""
    queue = urlparse(queue_url)
    pg = PostgresServer(free_port())
    redis_proxy = TcpProxy(queue.port or 6379)
    args = [str(SCRIPT), "up", "--dir", str(directory), "--port", str(port)]
    args += ["--pg-url", pg.url]
    args += ["--redis-url", f"redis://127.0.0.1:{redis_proxy.port}{queue.path or '/0'}"]
    for item in env:
        args += ["--env", item]
    done = subprocess.run(args, capture_output=True, text=True, timeout=180, check=False)
    if done.returncode:
        with contextlib.suppress(Exception):
            subprocess.run([str(SCRIPT), "down", "--dir", str(directory)], timeout=60, check=False)
        pg.remove()
        redis_proxy.cut()
        raise AssertionError(f"local-cluster up failed:\n{done.stdout}\n{done.stderr}")
    lines = dict(line.split("=", 1) for line in done.stdout.splitlines() if "=" in line)
    env_vars = {k: v for k, v in lines.items() if k.startswith("VEXAM_") and k != "VEXAM_URL"}
    direct = dict(env_vars)
    direct["VEXAM_QUEUE_URL"] = env_vars["VEXAM_QUEUE_URL"].replace(
        f"127.0.0.1:{redis_proxy.port}", f"127.0.0.1:{queue.port or 6379}"
    )
    cluster = Cluster(directory, lines["VEXAM_URL"], env_vars, direct, pg, redis_proxy)
    cluster.state = json.loads((directory / "cluster.json").read_text())
    return cluster


def stop_cluster(cluster: Cluster) -> None:
    """`down` (Redis's proxy open again), then remove the PostgreSQL server and the proxy."""
    cluster.redis.cut()
    cluster.redis.resume()
    try:
        subprocess.run([str(SCRIPT), "down", "--dir", str(cluster.dir)], timeout=90, check=True)
    finally:
        cluster.pg.remove()
        cluster.redis.cut()


def noise_video(path: Path, seconds: float, size: tuple[int, int] = (320, 240)) -> bytes:
    """A real H.264/MP4 video of random noise (hardly compressible: ≈ size grows with
    seconds), 10 frames per second; returns its bytes."""
    import av

    rng = np.random.default_rng(7)
    with av.open(str(path), "w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=10)
        stream.width, stream.height, stream.pix_fmt = size[0], size[1], "yuv420p"
        stream.codec_context.time_base = Fraction(1, 10)
        stream.options = {"preset": "ultrafast", "qp": "0"}
        for _ in range(round(seconds * 10)):
            image = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path.read_bytes()


@dataclass
class Take:
    """A candidate's submission waiting for its upload."""

    headers: dict[str, str]
    submission_id: int
    data: bytes
    location: str = ""
    sitting_id: int = 0
    subject_id: int = 0
    recording_id: int = 0
    failures: list[str] = field(default_factory=list)  # requests that failed and were retried


def settings_of(env: dict[str, str]) -> Settings:
    """Settings from VEXAM_* variables (the cluster's env file)."""
    values = {key.removeprefix("VEXAM_").lower(): value for key, value in env.items()}
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


async def seed(settings: Settings) -> tuple[int, list[tuple[str, str]]]:
    """The demo's data (its exam open now, free, with a roster), and every demo person of
    the roster certified on an account of their own: (exam id, [(phone, province code)])."""
    import vexam.main as main
    from vexam.accounts import service as accounts
    from vexam.core.clock import SystemClock
    from vexam.core.context import Principal, Role
    from vexam.core.db import Database
    from vexam.demo import (
        DEMO_OPEN_EXAM,
        DEMO_PASSWORD,
        DEMO_PEOPLE,
        DEMO_SCHOOL,
        _ctx,
        certify_by_review,
    )
    from vexam.demo import seed as seed_demo
    from vexam.exams import service as exams
    from vexam.schools import service as schools

    # The demo builds its S3 client and resources per unit of work (0.5 s each for boto3):
    # here once.
    store, resources = main.build_store(settings), main.build_resources(settings)
    originals = main.build_store, main.build_resources
    main.build_store, main.build_resources = (lambda _: store), (lambda _: resources)
    db, clock = Database(settings.effective_database_url), SystemClock()
    people: list[tuple[str, str]] = []
    try:
        await seed_demo(settings)
        async with _ctx(db, settings, clock) as ctx:
            agent = await accounts.user_by_phone(ctx.session, "13900000004")
            school = await schools.school_by_slug(ctx, DEMO_SCHOOL)
            assert agent is not None and school is not None
        console = Principal(0, Role.operator, None, None, 0, "test")
        async with _ctx(db, settings, clock, console) as ctx:
            found = [e for e in await exams.list_exams(ctx, console, school.id)]
            exam_id = next(e.id for e in found if e.code == DEMO_OPEN_EXAM)
        for index, person in enumerate(DEMO_PEOPLE):
            phone = f"1390000010{index}" if index != 1 else "13900000006"  # 6: certified
            people.append((phone, PROVINCES[person.province]))
            if index == 1:
                continue
            async with _ctx(db, settings, clock) as ctx:
                user = await accounts.create_user(ctx, phone, DEMO_PASSWORD, role=Role.candidate)
            me = Principal(user.id, Role.candidate, None, None, 0, phone)
            by = Principal(agent.id, Role.support, None, None, 0, "agent")
            await certify_by_review(
                db, settings, clock, me, by, person, address="北京市东城区示范路1号", reason="test"
            )
    finally:
        main.build_store, main.build_resources = originals
        await db.dispose()
    return exam_id, people


async def pass_face(settings: Settings, sitting_id: int, device_id: str) -> None:
    """Mark the sitting's face verified on the device (these tests are not about faces)."""
    from vexam.core.db import Database
    from vexam.exams.models import Sitting

    db = Database(settings.effective_database_url)
    try:
        async with db.unit_of_work() as session:
            await session.execute(
                update(Sitting)
                .where(Sitting.id == sitting_id)
                .values(face_state="passed", face_device_id=device_id, face_check_required=False)
            )
    finally:
        await db.dispose()


async def submit_takes(
    client: httpx.AsyncClient,
    settings: Settings,
    exam_id: int,
    phone: str,
    province: str,
    videos: list[bytes],
    *,
    hand_in_now: bool = True,
) -> list[Take]:
    """Sign in, apply, start a formal sitting, pass the face and device checks and submit
    one recording per subject, declared as `videos` (one per subject, in order); with
    `hand_in_now=False` the recordings are completed and `hand_in` submits them later."""
    from vexam.demo import DEMO_PASSWORD

    signed = await client.post(
        "/api/v1/auth/login", json={"phone": phone, "password": DEMO_PASSWORD}
    )
    assert signed.status_code == 200, signed.text
    device_id = f"device-{phone}"
    who = {"Authorization": f"Bearer {signed.json()['token']}", "X-Device-Id": device_id}
    applied = await client.post(
        f"/api/v1/exams/{exam_id}/application", json={"province": province}, headers=who
    )
    assert applied.status_code == 200, applied.text
    confirmed = await client.post(f"/api/v1/exams/{exam_id}/application/confirm", headers=who)
    assert confirmed.status_code == 200, confirmed.text
    started = await client.post(
        f"/api/v1/exams/{exam_id}/sittings", json={"mode": "formal"}, headers=who
    )
    assert started.status_code == 200, started.text
    sitting = started.json()
    await pass_face(settings, sitting["id"], device_id)
    checked = await client.post(
        f"/api/v1/sittings/{sitting['id']}/device-check", json=PHONE, headers=who
    )
    assert checked.status_code == 200, checked.text
    takes = []
    for subject, data in zip(sitting["subjects"], videos, strict=False):
        path = f"/api/v1/sittings/{sitting['id']}/subjects/{subject['subject_id']}"
        recording = await client.post(
            f"{path}/recordings", json={"orientation": "portrait"}, headers=who
        )
        assert recording.status_code == 201, recording.text
        recording_id = recording.json()["id"]
        done = await client.post(
            f"/api/v1/recordings/{recording_id}/complete",
            json={"duration_seconds": 2},
            headers=who,
        )
        assert done.status_code == 200, done.text
        take = Take(who, 0, data, sitting_id=sitting["id"], subject_id=subject["subject_id"])
        take.recording_id = recording_id
        if hand_in_now:
            await hand_in(client, take, asyncio.get_running_loop().time() + 30)
        takes.append(take)
    return takes


async def hand_in(
    client: httpx.AsyncClient, take: Take, deadline: float, refused: asyncio.Event | None = None
) -> None:
    """Submit the take's recording, retrying through outages (`refused` is set at the first
    failed try); a retry refused with `already_submitted` (the first try was kept, its answer
    lost) finds the receipt in the sitting's status, as the app does."""
    path = f"/api/v1/sittings/{take.sitting_id}/subjects/{take.subject_id}/submission"
    body = {"recording_id": take.recording_id, "sha256": sha256_hex(take.data)}
    body["size_bytes"] = len(take.data)
    post = partial(client.post, path, json=body, headers=take.headers)
    receipt = await retried(post, deadline, refused)
    if receipt.status_code == 201:
        take.submission_id = receipt.json()["submission_id"]
        return
    assert receipt.json().get("code") == "already_submitted", receipt.text
    status = await retried(
        partial(client.get, f"/api/v1/sittings/{take.sitting_id}", headers=take.headers),
        deadline,
    )
    (kept,) = [
        s["submission"] for s in status.json()["subjects"] if s["subject_id"] == take.subject_id
    ]
    assert kept["recording_id"] == take.recording_id and kept["sha256"] == body["sha256"]
    take.submission_id = kept["submission_id"]


async def create_upload(client: httpx.AsyncClient, take: Take, seconds: float = 30) -> None:
    """POST /api/v1/uploads for the take (retried through outages); keeps its Location."""
    metadata = f"submission_id {base64.b64encode(str(take.submission_id).encode()).decode()}"
    headers = {**take.headers, **TUS, "Upload-Length": str(len(take.data))}
    headers["Upload-Metadata"] = metadata
    deadline = asyncio.get_running_loop().time() + seconds
    created = await retried(partial(client.post, "/api/v1/uploads", headers=headers), deadline)
    assert created.status_code == 201, created.text
    take.location = created.headers["Location"]


def sha256_hex(data: bytes) -> str:
    """Hex SHA-256."""
    return hashlib.sha256(data).hexdigest()


async def resumable_upload(
    urls: list[str],
    take: Take,
    chunk: int,
    deadline: float,
    on_patch: Any = None,
    last_after: asyncio.Event | None = None,
) -> list[str]:
    """Upload `take.data` with tus, PATCH n going to urls[n % len(urls)]; on any failure
    (connection refused or cut, 4xx lock, 5xx) ask the next URL for the offset and go on,
    as tus clients do; the PATCH that completes the upload waits for `last_after`. Returns
    the URL each successful PATCH went to."""
    served: list[str] = []
    loop = asyncio.get_running_loop()
    turn = 0
    async with httpx.AsyncClient(timeout=30) as client:
        while True:
            base = urls[turn % len(urls)]
            turn += 1
            try:
                head = await client.head(base + take.location, headers={**take.headers, **TUS})
                if head.status_code != 200:
                    raise RuntimeError(f"HEAD {head.status_code}")
                offset = int(head.headers["Upload-Offset"])
                if offset == len(take.data):
                    return served
                body = take.data[offset : offset + chunk]
                if last_after is not None and offset + len(body) == len(take.data):
                    await last_after.wait()
                patched = await client.patch(
                    base + take.location,
                    content=body,
                    headers={
                        **take.headers,
                        **TUS,
                        "Content-Type": "application/offset+octet-stream",
                        "Upload-Offset": str(offset),
                    },
                )
                if patched.status_code != 204:
                    raise RuntimeError(f"PATCH {patched.status_code} {patched.text[:200]}")
                served.append(base)
                if on_patch is not None:
                    await on_patch(len(served))
            except (httpx.HTTPError, RuntimeError, KeyError, ValueError) as exc:
                take.failures.append(f"{type(exc).__name__}: {exc}"[:120])
                if loop.time() > deadline:
                    raise
                await asyncio.sleep(0.25)


async def retried(
    call: Any, deadline: float, refused: asyncio.Event | None = None
) -> httpx.Response:
    """`await call()` until it answers below 500, retrying connection errors and 5xx (as a
    browser's user retries) until `deadline` (the event loop's clock); `refused`, if given,
    is set at the first failed try."""
    loop = asyncio.get_running_loop()
    while True:
        try:
            response: httpx.Response = await call()
            if response.status_code < 500:
                return response
        except httpx.HTTPError:
            pass
        if refused is not None:
            refused.set()
        if loop.time() > deadline:
            raise AssertionError("no answer below 500 before the deadline")
        await asyncio.sleep(0.25)


async def score_all(client: httpx.AsyncClient, token: str, deadline: float) -> set[str]:
    """As the reviewer: score every item of the queue not scored yet, full marks; returns the
    codes whose score the server acknowledged (200)."""
    who = {"Authorization": f"Bearer {token}"}
    scored: set[str] = set()
    queue = await retried(partial(client.get, "/api/v1/review/queue", headers=who), deadline)
    assert queue.status_code == 200, queue.text
    for entry in queue.json():
        if entry["scored_by_me"]:
            continue
        url = f"/api/v1/review/items/{entry['code']}"
        item = await retried(partial(client.get, url, headers=who), deadline)
        assert item.status_code == 200, item.text
        points = [c["max_points"] for c in item.json()["rubric"]["criteria"]]
        put = partial(client.put, f"{url}/score", json={"points": points}, headers=who)
        given = await retried(put, deadline)
        assert given.status_code == 200, given.text
        scored.add(entry["code"])
    return scored
