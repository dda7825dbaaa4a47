"""Exam-day load test (issue 10): simulated candidates doing the real mix against vexam,
and a bare FastAPI endpoint doing one indexed read as the peer, in the same run.

    python -m bench.examday [--smoke] [--candidates N] [--seconds S] [--concurrency C]
                            [--web N] [--workdir DIR] [--direct] [--server-src DIR]
                            [--face NAME]

Brings up the cluster (`deploy/local-cluster up`: nginx, N `vexam serve`, 2 `vexam worker`,
PostgreSQL, Redis db 7, moto S3), seeds N certified candidates with paid applications and a
ready formal sitting of one open exam into its database (bench/examday/seed.py), starts N
web processes of the peer (bench/examday/peer_app.py; uvicorn, httptools, uvloop) on the
same database behind an nginx with the cluster's configuration, then runs the load
generator (bench/examday/load.py, a process of its own) four times: peer, vexam mix, vexam
status polls alone, peer. Each run: a warm-up, then S seconds measured.

Prints per run: requests/s, p50/p95/p99, errors, server CPU per request (the web
processes' and nginx's own CPU from /proc; PostgreSQL's is not counted), the client's CPU
per request; where the machine's cores went in each run (web + nginx, PostgreSQL's processes
for the database, the S3 server, the workers, the load client, the rest, idle); the vexam
mix per request kind; the ratio to the peer (mean of its two runs);
PASS/MISS per goal: ≥ 1,000 requests/s, p99 ≤ 100 ms, ≥ 0.5× the peer, zero errors. Exits
1 on errors only (the machine is shared: the figures are reported, not judged).
`--smoke`: 1 process each, 30 candidates, 8 at a time, 1 + 3 s per run, no status-only run.
The face-check frames hold no face (each costs a detection only) unless `--face NAME` names
one of the shared face photos (`../shared/faces/NAME.jpg`, e.g. obama_1): each frame is then
a selfie of it, detected and embedded on every check as a candidate's is (the seeded
candidates have no reference face, so the first frame's face becomes theirs).

`--direct` skips the cluster and nginx: both apps as N uvicorn processes started here (local
store, no workers; the client spreads the candidates over them). `--server-src DIR` serves
vexam from another checkout's `src` (`git archive COMMIT src | tar -x -C DIR`, or a
worktree), in the cluster (its web processes, workers and migrations) or with `--direct`,
for before/after comparisons; the run prints which source it served.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import asyncpg
import httpx

from bench import vexam_source
from bench.examday.seed import seed, settings_for, write_candidates
from vexam.config import Settings

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
PG = "postgresql://postgres@127.0.0.1:5432"
DATABASE = "vexam_examday_bench"
CLUSTER_DATABASE = "vexam_examday_cluster"
CLUSTER = REPO / "deploy" / "local-cluster"
QUEUE_URL = "redis://127.0.0.1:6379/7"
GOAL_RPS = 1000
GOAL_P99_MS = 100
GOAL_PEER_RATIO = 0.5


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def _fresh_database(name: str) -> str:
    connection = await asyncpg.connect(f"{PG}/postgres")
    try:
        await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await connection.execute(f'CREATE DATABASE "{name}"')
    finally:
        await connection.close()
    return f"postgresql+asyncpg://postgres@127.0.0.1:5432/{name}"


def _python_path(server_src: str) -> str:
    """PYTHONPATH serving vexam from `server_src` ("" for this checkout) before this one."""
    return os.pathsep.join(p for p in (server_src, str(REPO)) if p)


def _env(database_url: str, data_dir: Path, server_src: str = "") -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VEXAM_")}
    settings = settings_for(data_dir, database_url, QUEUE_URL)
    env.update(
        PYTHONUNBUFFERED="1",
        PYTHONPATH=_python_path(server_src),
        VEXAM_ENV="test",
        VEXAM_DATA_DIR=str(data_dir),
        VEXAM_DATABASE_URL=database_url,
        VEXAM_QUEUE_URL=QUEUE_URL,
        VEXAM_QUEUE_NAME=settings.queue_name,
        VEXAM_SECRET_KEY=settings.secret_key,
        VEXAM_DATA_KEY=settings.data_key,
        VEXAM_SMS_SENDER="console",
        VEXAM_ARGON2_TIME_COST="1",
        VEXAM_ARGON2_MEMORY_KIB="64",
    )
    return env


def _start(kind: str, count: int, env: dict[str, str], log: Path) -> list[tuple[str, Any]]:
    out: list[tuple[str, Any]] = []
    for _ in range(count):
        port = _free_port()
        with log.open("ab") as sink:
            process = subprocess.Popen(
                [sys.executable, "-m", "bench.examday.serve", kind, str(port)],
                cwd=REPO,
                env=env,
                stdout=sink,
                stderr=subprocess.STDOUT,
            )
        out.append((f"http://127.0.0.1:{port}", process))
    probe = "/healthz" if kind == "vexam" else "/docs"
    deadline = time.monotonic() + 60
    for url, process in out:
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"{kind} exited:\n" + log.read_text()[-3000:])
            try:
                if httpx.get(url + probe, timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"{kind} did not start:\n" + log.read_text()[-3000:])
            time.sleep(0.2)
    return out


def _cluster_module() -> Any:
    sys.path.insert(0, str(REPO / "deploy"))
    import local_cluster

    return local_cluster


def _children(pid: int) -> list[int]:
    found = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return [int(child) for child in found]


class Nginx:
    """An nginx with the cluster's configuration in front of `ports` (for the peer)."""

    def __init__(self, prefix: Path, ports: list[int]) -> None:
        cluster = _cluster_module()
        self.prefix = prefix
        for folder in ("logs", "temp"):
            (prefix / folder).mkdir(parents=True, exist_ok=True)
        self.port = _free_port()
        (prefix / "vexam.conf").write_text(cluster.render_site(f"127.0.0.1:{self.port}", ports))
        (prefix / "nginx.conf").write_text(cluster.render_main(prefix))
        binary = cluster.nginx_binary()
        conf = ["-p", str(prefix), "-c", str(prefix / "nginx.conf"), "-e", "logs/error.log"]
        subprocess.run([binary, *conf], check=True)
        deadline = time.monotonic() + 10
        while not (prefix / "nginx.pid").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        self.pid = int((prefix / "nginx.pid").read_text().split()[0])
        self.url = f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        os.kill(self.pid, 15)


def _cluster_up(
    work: Path, web: int, source: str = ""
) -> tuple[str, dict[str, str], list[int], dict[str, list[int]]]:
    """Start the cluster, serving vexam from `source` ("" for this checkout); (its URL, its
    environment, pids of its web processes and nginx's, pids of its other processes by
    part: the S3 server, the workers)."""
    asyncio.run(_drop_database(CLUSTER_DATABASE))
    directory = work / "cluster"
    command = [str(CLUSTER), "up", "--dir", str(directory), "--web", str(web)]
    command += ["--port", str(_free_port()), "--db-name", CLUSTER_DATABASE]
    command += ["--redis-url", QUEUE_URL]
    # The cluster's processes inherit this environment: the `vexam` commands they run import
    # the package from PYTHONPATH before the installed checkout.
    inherited = {**os.environ, "PYTHONPATH": _python_path(source)}
    subprocess.run(command, cwd=REPO, check=True, stdout=subprocess.DEVNULL, env=inherited)
    state = json.loads((directory / "cluster.json").read_text())
    env = _cluster_module().Cluster(directory).env()
    pids = [pid for name, pid in state["pids"].items() if name.startswith("web")]
    pids += [state["pids"]["nginx"], *_children(state["pids"]["nginx"])]
    others = {
        "S3 server": [state["pids"]["s3"]],
        "workers": [pid for name, pid in state["pids"].items() if name.startswith("worker")],
    }
    return state["url"], env, pids, others


def _cluster_down(work: Path) -> None:
    subprocess.run(
        [str(CLUSTER), "down", "--dir", str(work / "cluster")],
        cwd=REPO,
        check=False,
        stdout=subprocess.DEVNULL,
    )


async def _drop_database(name: str) -> None:
    connection = await asyncpg.connect(f"{PG}/postgres")
    try:
        await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await connection.close()


def _stop(servers: list[tuple[str, Any]]) -> None:
    for _, process in servers:
        process.terminate()
    for _, process in servers:
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()


def _load(
    target: str,
    urls: list[str],
    pids: list[int],
    work: Path,
    args: argparse.Namespace,
    video: Path,
    tag: str,
    others: dict[str, list[int]],
) -> dict[str, Any]:
    out = work / f"load-{tag}.json"
    command = [
        sys.executable,
        "-m",
        "bench.examday.load",
        "--target",
        target,
        "--urls",
        ",".join(urls),
        "--pids",
        ",".join(str(pid) for pid in pids),
        "--candidates",
        str(work / "candidates.json"),
        "--video",
        str(video),
        "--concurrency",
        str(args.concurrency),
        "--warmup",
        str(args.warmup),
        "--seconds",
        str(args.seconds),
        "--out",
        str(out),
    ]
    if args.face:
        command += ["--face", args.face]
    groups = ",".join(f"{name}={'+'.join(map(str, group))}" for name, group in others.items())
    command += ["--others", groups, "--database", args.database]
    subprocess.run(command, cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)}, check=True)
    result: dict[str, Any] = json.loads(out.read_text())
    return result


def _pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


def summary(result: dict[str, Any]) -> dict[str, Any]:
    """Requests, rate, percentiles, errors and CPU per request of one load run."""
    every = [x for values in result["latencies"].values() for x in values]
    errors = sum(result["errors"].values())
    count = len(every) + errors
    elapsed = result["elapsed_s"]
    return {
        "requests": count,
        "rps": count / elapsed if elapsed > 0 else 0.0,
        "p50": _pct(every, 0.50),
        "p95": _pct(every, 0.95),
        "p99": _pct(every, 0.99),
        "errors": errors,
        "cpu_ms": result["server_cpu_s"] * 1000 / max(count, 1),
        "client_cpu_ms": result["client_cpu_s"] * 1000 / max(count, 1),
    }


def _row(name: str, s: dict[str, Any], ratio: str = "") -> str:
    return (
        f"| {name} | {s['requests']} | {s['rps']:.0f} | {s['p50']:.1f} | {s['p95']:.1f} | "
        f"{s['p99']:.1f} | {s['errors']} | {s['cpu_ms']:.2f} | {s['client_cpu_ms']:.2f} | "
        f"{ratio} |"
    )


def _cores(name: str, run: dict[str, Any]) -> tuple[str, str]:
    """Where the machine's cores went in one run's measured window: (its row, the header's
    cells)."""
    machine = run["machine"]
    seconds = run["elapsed_s"] or 1.0
    cores = machine["all_s"] / seconds
    parts = {"web + nginx": run["server_cpu_s"], **machine["parts_s"]}
    parts["load client"] = run["client_cpu_s"]
    parts["the rest"] = max(0.0, machine["busy_s"] - sum(parts.values()))
    parts["idle"] = machine["all_s"] - machine["busy_s"]
    cells = " | ".join(f"{value / seconds:.2f}" for value in parts.values())
    return f"| {name} | {cores:.1f} | {cells} |", " | ".join(parts)


def report(runs: dict[str, dict[str, Any]], args: argparse.Namespace) -> bool:
    """Print the tables and the goals; whether there were errors."""
    vexam = summary(runs["vexam"])
    peers = [summary(runs[k]) for k in ("peer-1", "peer-2")]
    peer_rps = statistics.mean(p["rps"] for p in peers)
    ratio = vexam["rps"] / peer_rps if peer_rps else 0.0
    setup = "uvicorn processes, no nginx" if args.direct else "processes behind nginx"
    faces = f"show {args.face}" if args.face else "hold no face"
    print(
        f"\nExam-day load: {args.web} web {setup} each, {args.concurrency} candidates at a "
        f"time, {args.warmup:.0f} s warm-up + {args.seconds:.0f} s measured per run; "
        f"face-check frames {faces}"
    )
    print(
        "| target | requests | req/s | p50 ms | p95 ms | p99 ms | errors | server CPU ms/req "
        "| client CPU ms/req | × peer |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    print(_row("peer (1st run)", peers[0]))
    print(_row("vexam exam-day mix", vexam, f"{ratio:.2f}"))
    if "status" in runs:
        polls = summary(runs["status"])
        print(_row("vexam status polls alone", polls, f"{polls['rps'] / peer_rps:.2f}"))
    print(_row("peer (2nd run)", peers[1]))
    names = {"peer-1": "peer (1st run)", "vexam": "vexam exam-day mix"}
    names |= {"status": "vexam status polls alone", "peer-2": "peer (2nd run)"}
    rows = [_cores(names[key], runs[key]) for key in names if key in runs]
    print("\nWhere the machine's cores went (cores busy on average over each measured window):")
    print(f"| target | cores | {rows[0][1]} |")
    print("| --- " * (rows[0][1].count("|") + 3) + "|")
    for row, _ in rows:
        print(row)
    print("\nvexam per request kind:")
    print("| kind | share | p50 ms | p95 ms | p99 ms |")
    print("| --- | --- | --- | --- | --- |")
    latencies = runs["vexam"]["latencies"]
    total = sum(len(v) for v in latencies.values()) or 1
    for kind, values in sorted(latencies.items(), key=lambda kv: -len(kv[1])):
        print(
            f"| {kind} | {len(values) / total:.0%} | {_pct(values, 0.5):.1f} | "
            f"{_pct(values, 0.95):.1f} | {_pct(values, 0.99):.1f} |"
        )
    errors = {k: v for name, run in runs.items() for k, v in run["errors"].items()}
    for name, run in runs.items():
        for sample in run["error_samples"]:
            print(f"error ({name}): {sample}")
    if runs["vexam"]["candidates_left"] == 0:
        print("note: every seeded candidate finished; the run may have ended early")
    goals = [
        (f"≥ {GOAL_RPS} requests/s", vexam["rps"] >= GOAL_RPS, f"{vexam['rps']:.0f}"),
        (f"p99 ≤ {GOAL_P99_MS} ms", vexam["p99"] <= GOAL_P99_MS, f"{vexam['p99']:.1f} ms"),
        (f"≥ {GOAL_PEER_RATIO}× the peer", ratio >= GOAL_PEER_RATIO, f"{ratio:.2f}×"),
        ("zero errors", not errors, str(sum(errors.values()))),
    ]
    for name, ok, value in goals:
        print(f"{'PASS' if ok else 'MISS'}  {name}: {value}")
    return bool(errors)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="small and fast (≤ 60 s)")
    parser.add_argument("--candidates", type=int, default=None)
    parser.add_argument("--seconds", type=float, default=None)
    parser.add_argument("--warmup", type=float, default=None)
    parser.add_argument("--concurrency", type=int, default=None)
    parser.add_argument("--web", type=int, default=0, help="web processes of each app (2)")
    parser.add_argument("--workdir", default="")
    parser.add_argument("--direct", action="store_true", help="no cluster, no nginx")
    parser.add_argument("--server-src", default="", help="serve vexam from this src")
    parser.add_argument("--face", default="", help="a shared face photo, e.g. obama_1")
    args = parser.parse_args()
    small = args.smoke
    args.candidates = args.candidates or (30 if small else 800)
    args.seconds = args.seconds or (3.0 if small else 30.0)
    args.warmup = args.warmup if args.warmup is not None else (1.0 if small else 5.0)
    args.concurrency = args.concurrency or (8 if small else 48)
    args.web = args.web or (1 if small else 2)
    began = time.monotonic()
    work = Path(args.workdir or tempfile.mkdtemp(prefix="vexam-examday-"))
    work.mkdir(parents=True, exist_ok=True)
    from tests.uploads.conftest import make_video

    video = work / "take.mp4"
    make_video(video, frames=24)
    started = time.monotonic()
    log = work / "servers.log"
    runs: dict[str, dict[str, Any]] = {}
    source = vexam_source(args.server_src)
    if args.direct:
        data_dir = work / "data"
        shutil.rmtree(data_dir, ignore_errors=True)
        database_url = asyncio.run(_fresh_database(DATABASE))
        settings = settings_for(data_dir, database_url, QUEUE_URL)
        env = _env(database_url, data_dir, source)
        vexam_servers = _start("vexam", args.web, env, log)
        vexam_urls = [url for url, _ in vexam_servers]
        vexam_pids = [process.pid for _, process in vexam_servers]
        others: dict[str, list[int]] = {}
        args.database = DATABASE
    else:
        url, env, vexam_pids, others = _cluster_up(work, args.web, source)
        args.database = CLUSTER_DATABASE
        vexam_urls = [url]
        os.environ.update(env)
        settings = Settings(argon2_time_cost=1, argon2_memory_kib=64, sms_sender="memory")
        env = {**os.environ, "PYTHONPATH": str(REPO), "PYTHONUNBUFFERED": "1"}
    print(f"vexam up in {time.monotonic() - started:.1f} s, from {source or 'this checkout'}")
    peer_servers = _start("peer", args.web, env, log)
    nginx = (
        None
        if args.direct
        else Nginx(work / "peer-nginx", [int(u.rsplit(":", 1)[1]) for u, _ in peer_servers])
    )
    peer_urls = [url for url, _ in peer_servers] if nginx is None else [nginx.url]
    peer_pids = [process.pid for _, process in peer_servers]
    if nginx is not None:
        peer_pids += [nginx.pid, *_children(nginx.pid)]
    try:
        started = time.monotonic()
        write_candidates(work / "candidates.json", asyncio.run(seed(settings, args.candidates)))
        print(f"seeded {args.candidates} candidates in {time.monotonic() - started:.1f} s")
        runs["peer-1"] = _load("peer", peer_urls, peer_pids, work, args, video, "peer-1", others)
        runs["vexam"] = _load("vexam", vexam_urls, vexam_pids, work, args, video, "vexam", others)
        if not args.smoke:
            runs["status"] = _load(
                "status", vexam_urls, vexam_pids, work, args, video, "status", others
            )
        runs["peer-2"] = _load("peer", peer_urls, peer_pids, work, args, video, "peer-2", others)
    finally:
        if nginx is not None:
            nginx.stop()
        _stop(peer_servers)
        if args.direct:
            _stop(vexam_servers)
        else:
            _cluster_down(work)
    failed = report(runs, args)
    print(f"(work folder {work}; {time.monotonic() - began:.0f} s in all)")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
