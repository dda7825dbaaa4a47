"""The load generator, a process of its own (aiohttp with keep-alive on uvloop):

    python -m bench.examday.load --target vexam|peer --urls U1,U2 --candidates FILE
        --video FILE --concurrency C --warmup W --seconds S --pids P1,P2 --out FILE
        [--face NAME] [--others NAME=P1+P2,NAME=P3] [--database NAME]

Closed loop: C simulated candidates at a time, each running the exam-day journey with no
think time; a candidate that finishes hands its slot to the next unused one. Candidate i
talks to URL i mod len(URLs) over kept-alive connections (what nginx would do). The
journey (vexam): status polls between every step; continue the formal sitting; device
check; per subject: start a recording (an attempt), two face-check frames (a small JPEG
without a face; with --face NAME, a 480×640 selfie of that shared photo's face),
a left-page event (flagged), complete, submit, tus creation and PATCHes of small chunks.
The status target: every candidate polls its status only. The peer target: every
candidate repeats one GET of the bare endpoint.

Requests that start in the first W seconds are warm-up and not counted; the measurement
window is the next S seconds (or until the candidates run out). The server processes'
CPU (/proc, given pids) is read at the window's edges, and so is where the machine's CPU
went: the other named processes (--others: e.g. the S3 server, the workers), PostgreSQL's
processes serving --database (`bench.dbcpu`), this client, and the machine's busy and idle
time (/proc/stat). Writes a JSON summary to --out.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import hashlib
import io
import json
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import aiohttp

from bench.dbcpu import DatabaseCPU
from bench.examday.seed import Candidate, load_candidates

PHONE = {
    "device_class": "phone",
    "os_name": "android",
    "os_version": "13",
    "camera": True,
    "microphone": True,
    "free_bytes": 8 * 1024**3,
    "upload_kbps": 20000,
}
TUS = {"Tus-Resumable": "1.0.0"}
PATCHES_PER_UPLOAD = 4
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process and its waited-for children (/proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return sum(int(x) for x in fields[11:15]) / CLOCK_TICKS


def machine_seconds() -> tuple[float, float]:
    """(busy, all) CPU seconds of the whole machine so far, every core (/proc/stat);
    waiting for the disk counts as idle."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    idle = fields[3] + fields[4]
    return (sum(fields) - idle) / CLOCK_TICKS, sum(fields) / CLOCK_TICKS


def _groups(spec: str) -> dict[str, list[int]]:
    """NAME=P1+P2,NAME=P3 → {NAME: [P1, P2], NAME: [P3]}."""
    out: dict[str, list[int]] = {}
    for part in filter(None, spec.split(",")):
        name, _, pids = part.partition("=")
        out[name] = [int(pid) for pid in pids.split("+") if pid]
    return out


def group_cpu_seconds(pids: list[int]) -> float:
    """CPU seconds so far of these processes together, every thread of each counted (the S3
    server answers each connection on a thread of its own, the workers run jobs on threads:
    `bench.dbcpu.cpu_seconds` sees only a main thread); those that ended are left out."""
    total = 0.0
    for pid in pids:
        with contextlib.suppress(FileNotFoundError, ProcessLookupError):
            total += cpu_seconds(pid)
    return total


def small_jpeg() -> bytes:
    """A 160×120 camera-like frame (no face in it: the face check answers quickly)."""
    from PIL import Image, ImageDraw

    image = Image.new("RGB", (160, 120), (180, 160, 140))
    ImageDraw.Draw(image).ellipse((50, 20, 110, 100), fill=(220, 190, 170))
    out = io.BytesIO()
    image.save(out, "JPEG", quality=80)
    return out.getvalue()


def face_frame(name: str) -> bytes:
    """A phone selfie JPEG (480×640, face ≈ 200 px) of the shared photo `name`, as the face
    tests and `bench.identity` make it: the face check detects and embeds its face."""
    from tests.identity.test_faces import selfie

    from vexam.identity.faces import FaceEngine

    return selfie(FaceEngine(), name)


class Stop(Exception):
    """The measurement window is over."""


@dataclass
class Recorder:
    """Latencies and errors per request kind, inside the measurement window only."""

    starts_at: float
    ends_at: float
    latencies: dict[str, list[float]] = field(default_factory=dict)
    errors: dict[str, int] = field(default_factory=dict)
    samples: list[str] = field(default_factory=list)
    last_end: float = 0.0

    def note(self, kind: str, started: float, ok: bool, detail: str) -> None:
        now = time.perf_counter()
        if started < self.starts_at or now > self.ends_at:
            return
        self.last_end = max(self.last_end, now)
        if ok:
            self.latencies.setdefault(kind, []).append(now - started)
        else:
            key = f"{kind}: {detail[:60]}"
            self.errors[key] = self.errors.get(key, 0) + 1
            if len(self.samples) < 10:
                self.samples.append(f"{kind}: {detail[:300]}")


@dataclass(frozen=True)
class Reply:
    """What the journey reads of an answered call."""

    status: int
    headers: Mapping[str, str]
    body: bytes


@dataclass(frozen=True)
class Call:
    """One request of a journey: its kind (for the figures), what to send, what must answer."""

    kind: str
    method: str
    path: str
    expect: int
    headers: dict[str, str]
    json: Any = None
    data: bytes | None = None
    files: dict[str, tuple[str, bytes, str]] | None = None


class Caller(Protocol):
    """Sends one call of a journey; None when it failed (the caller noted why)."""

    async def call(self, c: Call) -> Reply | None: ...


class Client:
    """One candidate's calls over HTTP, timed and checked."""

    def __init__(self, http: aiohttp.ClientSession, url: str, rec: Recorder) -> None:
        self.http = http
        self.url = url
        self.rec = rec

    async def call(self, c: Call) -> Reply | None:
        if time.perf_counter() >= self.rec.ends_at:
            raise Stop
        body: Any = c.data
        if c.files is not None:
            body = aiohttp.FormData()
            for name, (filename, content, content_type) in c.files.items():
                body.add_field(name, content, filename=filename, content_type=content_type)
        started = time.perf_counter()
        try:
            async with self.http.request(
                c.method, self.url + c.path, headers=c.headers, json=c.json, data=body
            ) as response:
                answer = await response.read()
        except aiohttp.ClientError as exc:
            self.rec.note(c.kind, started, False, repr(exc))
            return None
        ok = response.status == c.expect
        self.rec.note(c.kind, started, ok, f"{response.status} {answer[:200]!r}")
        if not ok:
            return None
        return Reply(response.status, response.headers, answer)


async def journey(client: Caller, c: Candidate, video: bytes, frame: bytes) -> None:
    """One candidate's exam day (see the module)."""
    who = {"Authorization": f"Bearer {c.token}", "X-Device-Id": c.device}
    status_path = f"/api/v1/sittings/{c.sitting_id}"

    async def poll(times: int = 1) -> None:
        for _ in range(times):
            await client.call(Call("status", "GET", status_path, 200, headers=who))

    async def face(recording_id: int) -> None:
        await client.call(
            Call(
                "face_check",
                "POST",
                f"/api/v1/recordings/{recording_id}/face-checks",
                200,
                files={"frame": ("frame.jpg", frame, "image/jpeg")},
                headers=who,
            )
        )

    await poll(2)
    await client.call(
        Call(
            "start_sitting",
            "POST",
            f"/api/v1/exams/{c.exam_id}/sittings",
            200,
            json={"mode": "formal"},
            headers=who,
        )
    )
    await poll()
    await client.call(
        Call(
            "device_check",
            "POST",
            f"/api/v1/sittings/{c.sitting_id}/device-check",
            200,
            json=PHONE,
            headers=who,
        )
    )
    sha256 = hashlib.sha256(video).hexdigest()
    chunk = -(-len(video) // PATCHES_PER_UPLOAD)
    for subject_id in c.subject_ids:
        await poll(2)
        started = await client.call(
            Call(
                "start_attempt",
                "POST",
                f"/api/v1/sittings/{c.sitting_id}/subjects/{subject_id}/recordings",
                201,
                json={},
                headers=who,
            )
        )
        if started is None:
            return
        recording_id = json.loads(started.body)["id"]
        await poll(2)
        await face(recording_id)
        await poll(2)
        await client.call(
            Call(
                "event",
                "POST",
                f"/api/v1/sittings/{c.sitting_id}/events",
                201,
                json={"kind": "left_page", "recording_id": recording_id},
                headers=who,
            )
        )
        await poll(2)
        await face(recording_id)
        await poll(2)
        await client.call(
            Call(
                "complete",
                "POST",
                f"/api/v1/recordings/{recording_id}/complete",
                200,
                json={"duration_seconds": 2},
                headers=who,
            )
        )
        await poll()
        submitted = await client.call(
            Call(
                "submit",
                "POST",
                f"/api/v1/sittings/{c.sitting_id}/subjects/{subject_id}/submission",
                201,
                json={"recording_id": recording_id, "sha256": sha256, "size_bytes": len(video)},
                headers=who,
            )
        )
        if submitted is None:
            return
        submission_id = json.loads(submitted.body)["submission_id"]
        meta = base64.b64encode(str(submission_id).encode()).decode()
        created = await client.call(
            Call(
                "upload_create",
                "POST",
                "/api/v1/uploads",
                201,
                headers={
                    **who,
                    **TUS,
                    "Upload-Length": str(len(video)),
                    "Upload-Metadata": f"submission_id {meta},filename "
                    + base64.b64encode(b"take.mp4").decode(),
                },
            )
        )
        if created is None:
            return
        location = created.headers["Location"]
        path = location.split("://", 1)[-1]
        path = path[path.index("/") :] if not location.startswith("/") else location
        for offset in range(0, len(video), chunk):
            await client.call(
                Call(
                    "upload_patch",
                    "PATCH",
                    path,
                    204,
                    data=video[offset : offset + chunk],
                    headers={
                        **who,
                        **TUS,
                        "Upload-Offset": str(offset),
                        "Content-Type": "application/offset+octet-stream",
                    },
                )
            )
        await poll(2)
    await poll(2)


async def run(
    args: argparse.Namespace, candidates: list[Candidate], video: bytes
) -> dict[str, Any]:
    frame = face_frame(args.face) if args.face else small_jpeg()
    urls = args.urls.split(",")
    pids = [int(p) for p in args.pids.split(",") if p]
    begin = time.perf_counter()
    rec = Recorder(begin + args.warmup, begin + args.warmup + args.seconds)
    connector = aiohttp.TCPConnector(limit=0, force_close=False)
    timeout = aiohttp.ClientTimeout(total=60)
    cpu: dict[str, float] = {}
    others = _groups(args.others)
    database = DatabaseCPU(args.database or None)

    async def mark_cpu() -> None:
        await asyncio.sleep(max(0.0, rec.starts_at - time.perf_counter()))
        cpu["start"] = sum(cpu_seconds(p) for p in pids)
        cpu["client_start"] = cpu_seconds(os.getpid())
        cpu["busy_start"], cpu["all_start"] = machine_seconds()
        for name, group in others.items():
            cpu[f"start:{name}"] = group_cpu_seconds(group)
        database.start()
        cpu["t_start"] = time.perf_counter()

    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as http:
        queue: asyncio.Queue[int] = asyncio.Queue()
        for index in range(len(candidates)):
            queue.put_nowait(index)

        async def worker(slot: int) -> None:
            try:
                if args.target == "status":
                    client = Client(http, urls[slot % len(urls)], rec)
                    c = candidates[slot % len(candidates)]
                    who = {"Authorization": f"Bearer {c.token}", "X-Device-Id": c.device}
                    while True:
                        path = f"/api/v1/sittings/{c.sitting_id}"
                        await client.call(Call("status", "GET", path, 200, headers=who))
                if args.target == "peer":
                    client = Client(http, urls[slot % len(urls)], rec)
                    c = candidates[slot % len(candidates)]
                    who = {"Authorization": f"Bearer {c.token}"}
                    while True:
                        await client.call(Call("peer_read", "GET", "/peer", 200, headers=who))
                while not queue.empty():
                    index = queue.get_nowait()
                    client = Client(http, urls[index % len(urls)], rec)
                    await journey(client, candidates[index], video, frame)
            except Stop:
                return

        marker = asyncio.create_task(mark_cpu())
        await asyncio.gather(*(worker(slot) for slot in range(args.concurrency)))
        await marker
    end = min(time.perf_counter(), rec.ends_at)
    server_cpu = sum(cpu_seconds(p) for p in pids) - cpu["start"]
    client_cpu = cpu_seconds(os.getpid()) - cpu["client_start"]
    busy, every = machine_seconds()
    parts = {
        name: group_cpu_seconds(group) - cpu[f"start:{name}"] for name, group in others.items()
    }
    if args.database:
        parts["PostgreSQL"] = database.stop()
    elapsed = end - cpu["t_start"]
    return {
        "target": args.target,
        "elapsed_s": elapsed,
        "server_cpu_s": server_cpu,
        "client_cpu_s": client_cpu,
        "machine": {
            "busy_s": busy - cpu["busy_start"],
            "all_s": every - cpu["all_start"],
            "parts_s": parts,
        },
        "latencies": rec.latencies,
        "errors": rec.errors,
        "error_samples": rec.samples,
        "candidates_left": queue.qsize(),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--target", choices=["vexam", "status", "peer"], required=True)
    parser.add_argument("--urls", required=True)
    parser.add_argument("--candidates", required=True)
    parser.add_argument("--video", default="")
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--warmup", type=float, default=5)
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--pids", default="")
    parser.add_argument("--out", required=True)
    parser.add_argument("--face", default="", help="a shared face photo, e.g. obama_1")
    parser.add_argument("--others", default="", help="NAME=PID+PID,… other processes to account")
    parser.add_argument("--database", default="", help="PostgreSQL database the servers use")
    args = parser.parse_args()
    import uvloop

    candidates = load_candidates(Path(args.candidates))
    video = Path(args.video).read_bytes() if args.video else b""
    result = uvloop.run(run(args, candidates, video))
    Path(args.out).write_text(json.dumps(result))


if __name__ == "__main__":
    main()
