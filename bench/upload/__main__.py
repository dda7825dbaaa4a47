"""Upload bench (issue 6): vexam's tus endpoint against @tus/server, tuspyserver and a raw
write, side by side in one run, with the same Python aiohttp client on loopback.

    python -m bench.upload [--smoke] [--rounds N] [--database-url URL] [--workdir DIR]

Scenarios: 1 × 200 MiB in 5 MiB PATCHes; 32 concurrent × 20 MiB in 1 MiB PATCHes; 200
concurrent × 2 MiB in 256 KiB PATCHes (`--smoke`: 1 × 10 MiB, 4 × 2 MiB, 16 × 512 KiB).
Every server is started fresh for each scenario (uvicorn with httptools + uvloop for the
Python ones, Node for @tus/server). `--rounds N` runs each scenario N times, every server
once per round, the servers' order rotated from round to round, vexam on fresh submissions;
a server's row is then its median over the rounds, and its ratios the median of the ratios
taken within each round (this machine's speed drifts between minutes; a ratio within a round
compares servers under the same conditions). Per server: MB/s (MB = 10^6 B), ratio to the
best tus peer and to the raw write, MB per server CPU-second (/proc), errors, files whose SHA-256
matches, peak RSS, and the server's CPU milliseconds per MiB split into user (its own code),
system (the kernel's work for it: socket reads, page-cache copies, syncs) and, with
PostgreSQL, the database server's processes for vexam's connections (`bench.dbcpu`; SQLite runs
inside the process, so its work is in user and system). Server CPU counts all three. Then
the silent-connection check (a PATCH that goes silent, a resume on a new connection) on every
tus server, and PASS/MISS per goal of vexam; exit 1 on a missed goal (`--smoke`: only on
errors).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import os
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urljoin

import aiohttp
from tests.uploads.conftest import server_env

from bench.dbcpu import DatabaseCPU, database_name
from bench.upload.vexam_setup import Slot, prepare, settings_for
from vexam.exams import uploads

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
NODE_DIR = HERE / "node"
MIB = 1024 * 1024
TUS = {"Tus-Resumable": "1.0.0"}
STREAM = {"Content-Type": "application/offset+octet-stream"}
START_TIMEOUT_S = 60.0
SILENT_GOAL_S = 5.0  # "a few seconds"
SILENT_LIMIT_S = 45.0  # the check gives up after this long


@dataclass(frozen=True)
class Scenario:
    label: str
    count: int
    size: int
    patch: int
    raw_goal: float  # vexam ≥ this × raw write
    cpu_goal: float  # vexam MB per server CPU-second


FULL = [
    Scenario("1 × 200 MiB, 5 MiB PATCHes", 1, 200 * MIB, 5 * MIB, 0.8, 500),
    Scenario("32 × 20 MiB, 1 MiB PATCHes", 32, 20 * MIB, 1 * MIB, 0.6, 500),
    Scenario("200 × 2 MiB, 256 KiB PATCHes", 200, 2 * MIB, 256 * 1024, 0.5, 300),
]
SMOKE = [
    Scenario("1 × 10 MiB, 5 MiB PATCHes", 1, 10 * MIB, 5 * MIB, 0.8, 500),
    Scenario("4 × 2 MiB, 1 MiB PATCHes", 4, 2 * MIB, 1 * MIB, 0.6, 500),
    Scenario("16 × 512 KiB, 256 KiB PATCHes", 16, 512 * 1024, 256 * 1024, 0.5, 300),
]
BIG_CONCURRENCY = 200  # the RSS goal applies to the scenario with this many uploads
RSS_GOAL_MIB = 150


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _cpu_split(pid: int) -> tuple[float, float]:
    """The process's user and system CPU seconds so far (/proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    tick = os.sysconf("SC_CLK_TCK")
    return int(fields[11]) / tick, int(fields[12]) / tick


def _cpu_seconds(pid: int) -> float:
    return sum(_cpu_split(pid))


def _peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


@dataclass
class Server:
    """One server under test: how to start it, create an upload, and find its file."""

    name: str
    command: Callable[[int, Path], list[str]]
    env: Callable[[Path], dict[str, str]] = field(default=lambda _: dict(os.environ))
    create_path: str = "/files"
    kind: str = "tus"  # "tus", "vexam" or "raw"
    slots: list[Slot] = field(default_factory=list)
    process: subprocess.Popen[bytes] | None = None
    port: int = 0
    store: Path = Path()
    work: Path = Path()

    @property
    def slug(self) -> str:
        return "".join(c if c.isalnum() else "-" for c in self.name)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, store: Path, log: Path) -> None:
        self.store = store
        store.mkdir(parents=True, exist_ok=True)
        self.port = _free_port()
        with log.open("ab") as out:
            self.process = subprocess.Popen(
                self.command(self.port, store),
                cwd=REPO,
                env=self.env(store),
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited:\n" + log.read_text()[-2000:])
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"{self.name} did not start:\n" + log.read_text()[-2000:])

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)

    def auth(self, index: int) -> dict[str, str]:
        return self.slots[index].headers if self.kind == "vexam" else {}

    async def create(self, http: aiohttp.ClientSession, index: int, size: int) -> str:
        """The upload's URL (POST creation; the raw endpoint needs none)."""
        if self.kind == "raw":
            return f"{self.url}/raw/upload-{index}"
        metadata = f"filename {_b64(f'take{index}.mp4')}"
        if self.kind == "vexam":
            metadata += f",submission_id {_b64(str(self.slots[index].submission_id))}"
        headers = {**self.auth(index), **TUS, "Upload-Length": str(size)}
        headers["Upload-Metadata"] = metadata
        async with http.post(self.url + self.create_path, headers=headers) as response:
            if response.status != 201:
                raise RuntimeError(f"POST {response.status}: {(await response.text())[:200]}")
            return urljoin(self.url + self.create_path + "/", response.headers["Location"])

    def stored(self, url: str) -> Path:
        """Where the server keeps the bytes of the upload at `url`."""
        name = url.rstrip("/").rsplit("/", 1)[1]
        if self.kind == "vexam":
            return uploads.path_of_id(settings_for(self.work, ""), name)
        return self.store / name


@dataclass
class Result:
    seconds: float = 0.0
    user: float = 0.0  # server CPU seconds in the process's own code
    system: float = 0.0  # and in the kernel on its behalf
    database: float = 0.0  # PostgreSQL's processes serving its connections
    errors: int = 0
    verified: int = 0
    rss_mib: float = 0.0
    first_error: str = ""
    ran: bool = True
    mb: float = 0.0

    @property
    def mb_s(self) -> float:
        return self.mb / self.seconds if self.seconds else 0.0

    @property
    def cpu(self) -> float:
        return self.user + self.system + self.database

    @property
    def mb_cpu(self) -> float:
        return self.mb / self.cpu if self.cpu else 0.0

    def ms_per_mib(self, seconds: float) -> float:
        """CPU milliseconds per MiB received."""
        return seconds * 1000 / (self.mb * 1e6 / MIB) if self.mb else 0.0


async def _one(
    http: aiohttp.ClientSession, server: Server, index: int, data: bytes, patch: int
) -> str:
    url = await server.create(http, index, len(data))
    offset = 0
    view = memoryview(data)
    while offset < len(data):
        body = view[offset : offset + patch]
        headers = {**server.auth(index), **TUS, **STREAM, "Upload-Offset": str(offset)}
        async with http.patch(url, data=bytes(body), headers=headers) as response:
            if response.status != 204:
                raise RuntimeError(f"PATCH {response.status}: {(await response.text())[:200]}")
            offset = int(response.headers.get("Upload-Offset", offset + len(body)))
    return url


async def _drive(
    server: Server, files: list[bytes], patch: int
) -> tuple[list[str | BaseException], float]:
    connector = aiohttp.TCPConnector(limit=0, force_close=False)
    timeout = aiohttp.ClientTimeout(total=None, sock_read=120)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as http:
        started = time.perf_counter()
        outcomes = await asyncio.gather(
            *(_one(http, server, i, data, patch) for i, data in enumerate(files)),
            return_exceptions=True,
        )
        return list(outcomes), time.perf_counter() - started


def run_one(
    server: Server,
    scenario: Scenario,
    files: list[bytes],
    digests: list[str],
    work: Path,
    database: str | None,
) -> Result:
    store = work / f"store-{server.slug}"
    server.start(store, work / f"{server.slug}.log")
    assert server.process is not None
    pid = server.process.pid
    result = Result(mb=scenario.count * scenario.size / 1e6)
    try:
        user0, system0 = _cpu_split(pid)
        with DatabaseCPU(database if server.kind == "vexam" else None) as meter:
            outcomes, result.seconds = asyncio.run(_drive(server, files, scenario.patch))
        user1, system1 = _cpu_split(pid)
        result.user, result.system = user1 - user0, system1 - system0
        result.database = meter.seconds
        result.rss_mib = _peak_rss_mib(pid)
    finally:
        server.stop()
    for outcome, digest in zip(outcomes, digests, strict=True):
        if isinstance(outcome, BaseException):
            result.errors += 1
            result.first_error = result.first_error or f"{type(outcome).__name__}: {outcome}"
            continue
        path = server.stored(outcome)
        if path.is_file() and _sha256_file(path) == digest:
            result.verified += 1
        else:
            result.errors += 1
            result.first_error = result.first_error or f"SHA-256 mismatch: {path}"
        path.unlink(missing_ok=True)
    shutil.rmtree(store, ignore_errors=True)
    return result


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(4 * MIB):
            digest.update(chunk)
    return digest.hexdigest()


def _files(scenario: Scenario, seed: int) -> list[bytes]:
    rng = random.Random(seed)
    return [rng.randbytes(scenario.size) for _ in range(scenario.count)]


def servers(work: Path, database_url: str, node: str | None, tuspy: bool) -> list[Server]:
    python = sys.executable
    uvicorn = [python, "-m", "uvicorn", "--loop", "uvloop", "--http", "httptools"]
    quiet = ["--no-access-log", "--log-level", "warning", "--host", "127.0.0.1"]
    out = [
        Server(
            "raw write",
            lambda port, _store: [
                *uvicorn,
                *quiet,
                "--port",
                str(port),
                "bench.upload.raw_app:app",
            ],
            env=lambda store: {**os.environ, "BENCH_RAW_DIR": str(store)},
            kind="raw",
        )
    ]
    if node:
        out.append(
            Server(
                "@tus/server",
                lambda port, store: [node, str(NODE_DIR / "server.mjs"), str(port), str(store)],
            )
        )
    if tuspy:
        out.append(
            Server(
                "tuspyserver",
                lambda port, _store: [
                    *uvicorn,
                    *quiet,
                    "--port",
                    str(port),
                    "bench.upload.tuspyserver_app:app",
                ],
                env=lambda store: {**os.environ, "BENCH_TUSPY_DIR": str(store)},
            )
        )
    out.append(
        Server(
            "vexam",
            lambda port, _store: [python, str(HERE / "serve_vexam.py"), str(port)],
            env=lambda _store: server_env(settings_for(work, database_url)),
            create_path="/api/v1/uploads",
            kind="vexam",
        )
    )
    return out


@dataclass
class Silent:
    answered_ms: float = 0.0  # an OPTIONS on another connection while the PATCH is silent
    resumed_s: float = 0.0  # silence start → the resume on a new connection accepted
    refusals: int = 0  # resume PATCHes refused meanwhile (423: the upload is busy)
    sha_ok: bool = False
    error: str = ""


async def _silent(server: Server, data: bytes, digest: str) -> Silent:
    """A PATCH goes silent after 3 MiB of its body; another request is answered meanwhile,
    and the client resumes on a new connection (HEAD, PATCH the rest) until accepted."""
    out = Silent()
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=120)) as http:
        url = await server.create(http, 0, len(data))
        path = url.removeprefix(server.url)
        _reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        head = "".join(f"{k}: {v}\r\n" for k, v in server.auth(0).items())
        writer.write(
            (
                f"PATCH {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{head}Tus-Resumable: 1.0.0\r\n"
                "Content-Type: application/offset+octet-stream\r\nUpload-Offset: 0\r\n"
                f"Content-Length: {len(data)}\r\n\r\n"
            ).encode()
            + data[: 3 * MIB]
        )
        await writer.drain()
        await asyncio.sleep(0.3)  # let the server take in what was sent
        silent_from = time.perf_counter()
        try:
            async with asyncio.timeout(SILENT_LIMIT_S):
                async with http.options(server.url + server.create_path, headers=TUS) as answer:
                    await answer.read()
                out.answered_ms = (time.perf_counter() - silent_from) * 1000
                auth = {**server.auth(0), **TUS}
                while True:
                    async with http.head(url, headers=auth) as probe:
                        offset = int(probe.headers.get("Upload-Offset", "0"))
                    headers = {**auth, **STREAM, "Upload-Offset": str(offset)}
                    async with http.patch(url, data=data[offset:], headers=headers) as response:
                        await response.read()
                        if response.status == 204:
                            out.resumed_s = time.perf_counter() - silent_from
                            break
                        out.refusals += 1
                    await asyncio.sleep(0.2)
        except TimeoutError:
            out.error = f"no answer or no accepted resume within {SILENT_LIMIT_S:.0f} s"
        writer.close()
    out.sha_ok = _sha256_file(server.stored(url)) == digest
    return out


def silent_check(server: Server, data: bytes, work: Path) -> Silent:
    server.start(work / f"store-{server.slug}-silent", work / f"{server.slug}.log")
    try:
        return asyncio.run(_silent(server, data, hashlib.sha256(data).hexdigest()))
    except Exception as error:
        return Silent(error=f"{type(error).__name__}: {error}")
    finally:
        server.stop()


@dataclass
class Row:
    """One server's line of a scenario: medians over the rounds (ratios taken per round),
    errors and verified files summed, the peak RSS the highest."""

    mb_s: float
    vs_peer: float | None  # None without a tus peer
    vs_raw: float
    mb_cpu: float
    errors: int
    verified: int
    rss_mib: float
    user_ms: float  # CPU ms per MiB
    system_ms: float
    database_ms: float
    first_error: str


def _best_peer(results: dict[str, Result]) -> float:
    """The best tus peer's MB/s in one round (0 without one)."""
    peers = [r.mb_s for name, r in results.items() if name not in ("raw write", "vexam")]
    return max(peers, default=0.0)


def summarize(rounds: list[dict[str, Result]]) -> dict[str, Row]:
    """Each server's row over the rounds of one scenario (every round ran every server)."""
    rows: dict[str, Row] = {}
    best = [_best_peer(r) for r in rounds]
    raw = [r["raw write"].mb_s for r in rounds]
    for name in rounds[0]:
        mine = [r[name] for r in rounds]
        rows[name] = Row(
            mb_s=statistics.median(r.mb_s for r in mine),
            vs_peer=(
                statistics.median(r.mb_s / b for r, b in zip(mine, best, strict=True))
                if all(best)
                else None
            ),
            vs_raw=statistics.median(r.mb_s / w for r, w in zip(mine, raw, strict=True)),
            mb_cpu=statistics.median(r.mb_cpu for r in mine),
            errors=sum(r.errors for r in mine),
            verified=sum(r.verified for r in mine),
            rss_mib=max(r.rss_mib for r in mine),
            user_ms=statistics.median(r.ms_per_mib(r.user) for r in mine),
            system_ms=statistics.median(r.ms_per_mib(r.system) for r in mine),
            database_ms=statistics.median(r.ms_per_mib(r.database) for r in mine),
            first_error=next((r.first_error for r in mine if r.first_error), ""),
        )
    return rows


def _verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="small files; fail only on errors")
    parser.add_argument(
        "--database-url", default="", help="a fresh PostgreSQL database (default: SQLite)"
    )
    parser.add_argument("--workdir", default="", help="where servers store (default: a temp dir)")
    parser.add_argument(
        "--rounds", type=int, default=1, help="runs of each scenario; rows are medians"
    )
    args = parser.parse_args()
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    scenarios = SMOKE if args.smoke else FULL
    work = Path(args.workdir or tempfile.mkdtemp(prefix="vexam-bench-upload-"))
    work.mkdir(parents=True, exist_ok=True)
    database_url = args.database_url or f"sqlite+aiosqlite:///{work / 'vexam.db'}"

    node = shutil.which("node")
    if node is None or not (NODE_DIR / "node_modules" / "@tus" / "server").is_dir():
        print(f"@tus/server skipped: node or its node_modules are missing (npm ci in {NODE_DIR})")
        node = None
    try:
        import tuspyserver  # noqa: F401
    except ImportError:
        print("tuspyserver skipped: not installed (pip install tuspyserver into the venv)")
        tuspy = False
    else:
        tuspy = True

    # The files first, then one vexam submission per file (and one for the silent check).
    silent_data = random.Random(99).randbytes(8 * MIB if not args.smoke else 4 * MIB)
    plan: list[tuple[Scenario, list[bytes], list[str]]] = []
    declared: list[tuple[str, int]] = []
    for number, scenario in enumerate(scenarios):
        files = _files(scenario, seed=number)
        digests = [hashlib.sha256(data).hexdigest() for data in files]
        declared += [(digest, scenario.size) for digest in digests] * args.rounds
        plan.append((scenario, files, digests))
    declared.append((hashlib.sha256(silent_data).hexdigest(), len(silent_data)))
    started = time.perf_counter()
    slots = asyncio.run(prepare(work, database_url, declared))
    print(
        f"prepared {len(slots)} submissions through the services in "
        f"{time.perf_counter() - started:.0f} s ({database_url.split(':', 1)[0]}); work {work}"
    )

    lineup = servers(work, database_url, node, tuspy)
    for server in lineup:
        server.work = work
    vexam = lineup[-1]
    goals: list[tuple[str, bool]] = []
    errors = 0
    used = 0
    database = database_name(database_url)
    for scenario, files, digests in plan:
        rounds: list[dict[str, Result]] = []
        for number in range(args.rounds):
            vexam.slots = slots[used : used + scenario.count]
            used += scenario.count
            turn = number % len(lineup)
            order = lineup[turn:] + lineup[:turn]
            ran = {s.name: run_one(s, scenario, files, digests, work, database) for s in order}
            rounds.append({s.name: ran[s.name] for s in lineup})
        del files
        rows = summarize(rounds)
        uploads_run = scenario.count * len(rounds)
        print(
            f"\n{scenario.label} ({scenario.count * scenario.size / 1e6:.0f} MB)"
            + (f", median of {len(rounds)} rounds" if len(rounds) > 1 else "")
        )
        print(
            f"  {'server':<12} {'MB/s':>7} {'×best peer':>10} {'×raw':>6} {'MB/CPU-s':>9} "
            f"{'errors':>6} {'SHA ok':>9} {'peak RSS':>9} {'CPU ms/MiB user+sys':>19}"
            + ("+db" if database else "")
        )
        for name, row in rows.items():
            vs_peer = f"{row.vs_peer:.2f}" if row.vs_peer is not None else "-"
            print(
                f"  {name:<12} {row.mb_s:>7.0f} {vs_peer:>10} {row.vs_raw:>6.2f} "
                f"{row.mb_cpu:>9.0f} {row.errors:>6} {row.verified:>4}/{uploads_run:<4} "
                f"{row.rss_mib:>6.0f} MiB {row.user_ms:>10.2f}+{row.system_ms:.2f}"
                + (f"+{row.database_ms:.2f}" if database else "")
            )
            if row.first_error:
                print(f"    first error: {row.first_error[:160]}")
        if len(rounds) > 1:
            per_round = ", ".join(
                f"{r['vexam'].mb_s / best:.2f}" if (best := _best_peer(r)) else "-" for r in rounds
            )
            print(f"  vexam × best peer in each round: {per_round}")
        v = rows["vexam"]
        errors += v.errors
        short = scenario.label.split(",")[0]
        if v.vs_peer is not None:
            goals.append((f"{short}: ≥ 1.2× best peer ({v.vs_peer:.2f}×)", v.vs_peer >= 1.2))
        goals.append(
            (
                f"{short}: ≥ {scenario.raw_goal}× raw write ({v.vs_raw:.2f}×)",
                v.vs_raw >= scenario.raw_goal,
            )
        )
        goals.append(
            (
                f"{short}: ≥ {scenario.cpu_goal:.0f} MB per server CPU-s ({v.mb_cpu:.0f})",
                v.mb_cpu >= scenario.cpu_goal,
            )
        )
        goals.append(
            (
                f"{short}: zero errors, every SHA-256 verified ({v.errors} errors, "
                f"{v.verified}/{uploads_run})",
                v.errors == 0 and v.verified == uploads_run,
            )
        )
        if scenario.count == BIG_CONCURRENCY:
            goals.append(
                (
                    f"{short}: peak RSS ≤ {RSS_GOAL_MIB} MiB ({v.rss_mib:.0f} MiB)",
                    v.rss_mib <= RSS_GOAL_MIB,
                )
            )

    vexam.slots = slots[used:]
    print()
    silent = Silent()
    for server in lineup[1:]:  # every tus server; the goal is vexam's
        checked = silent_check(server, silent_data, work)
        if checked.error:
            outcome = checked.error
        else:
            outcome = (
                f"the resume on a new connection accepted after {checked.resumed_s:.1f} s "
                f"({checked.refusals} refusals meanwhile); SHA-256 "
                + ("ok" if checked.sha_ok else "WRONG")
            )
        print(
            f"silent connection ({server.name}): another request answered in "
            f"{checked.answered_ms:.0f} ms while a PATCH was silent; {outcome}"
        )
        if server is vexam:
            silent = checked
    silent_ok = (
        not silent.error
        and silent.sha_ok
        and silent.answered_ms < 1000
        and silent.resumed_s <= SILENT_GOAL_S
    )
    goals.append(
        (
            f"silent connection: resume within {SILENT_GOAL_S:.0f} s ({silent.resumed_s:.1f} s), "
            f"another request answered within 1 s ({silent.answered_ms:.0f} ms)",
            silent_ok,
        )
    )

    print()
    for text, ok in goals:
        print(f"{_verdict(ok)}  {text}")
    met = all(ok for _, ok in goals)
    if not args.workdir:
        shutil.rmtree(work, ignore_errors=True)
    if errors or (not met and not args.smoke):
        sys.exit(1)


if __name__ == "__main__":
    main()
