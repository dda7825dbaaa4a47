"""Bring up vexam's multi-process setup on 127.0.0.1 (run through `deploy/local-cluster`).

    deploy/local-cluster up --dir DIR [--web 2] [--workers 2] [--port 8080] [--db-name NAME]
                            [--pg-url postgresql://postgres@127.0.0.1:5432] [--redis-url URL]
    deploy/local-cluster status --dir DIR
    deploy/local-cluster restart-web --dir DIR --index I      (also restart-worker)
    deploy/local-cluster down --dir DIR

`up` starts an S3 API server (moto), creates a fresh PostgreSQL database and an S3 bucket,
runs `vexam db upgrade`, starts N `vexam serve` and M `vexam worker` processes and nginx in
front of the web processes (nginx runs as this user with its own prefix under DIR/nginx, no
system configuration), waits until nginx answers /healthz and /readyz, then prints
`VEXAM_URL=...` and the environment of the processes (also written to DIR/env, a file
systemd's EnvironmentFile= and `set -a; . DIR/env` both read). Process ids go to DIR/pids/,
logs to DIR/logs/, ports and pids to DIR/cluster.json. `down` stops everything and drops the
database. The processes run in development mode only because SMS codes go to the console
(the worker's log) and payments to the sandbox; the secrets are real random ones.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
TEMPLATE = ROOT / "deploy" / "nginx" / "vexam.conf.template"
# Shown in every response of the local cluster, so tests can see which process answered.
# Not for production: it tells clients the addresses of the web processes.
UPSTREAM_HEADER = "X-Vexam-Upstream"
# Workers run at a lower CPU priority than the web processes: on a shared machine a candidate
# mid-exam waits on a web request, while a media check can wait for the load to pass (the
# systemd unit's CPUWeight= says the same). Each process here leads a session of its own,
# and Linux schedules sessions as groups (autogroup), so the group's nice is set too.
WORKER_NICE = 10


def free_port() -> int:
    """A TCP port on 127.0.0.1 nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def nginx_binary() -> str | None:
    """nginx from PATH or Debian's /usr/sbin."""
    return shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin:/usr/local/sbin")


def render_site(listen: str, web_ports: list[int], extra_server: str = "") -> str:
    """The site configuration (upstream + server) from deploy/nginx/vexam.conf.template."""
    servers = "\n".join(
        f"    server 127.0.0.1:{port} max_fails=3 fail_timeout=2s;" for port in web_ports
    )
    text = TEMPLATE.read_text()
    for key, value in {
        "upstream_servers": servers,
        "listen": listen,
        "extra_server": extra_server,
    }.items():
        text = text.replace("{{" + key + "}}", value)
    return text


def render_main(prefix: Path) -> str:
    """nginx.conf of the local cluster: everything under `prefix`, the site included."""
    user = "user root root;\n" if os.geteuid() == 0 else ""
    temp = "\n".join(
        f"    {name}_temp_path {prefix / 'temp' / name};"
        for name in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    return f"""# Written by deploy/local-cluster; the site is deploy/nginx/vexam.conf.template.
{user}worker_processes 2;
pid {prefix / "nginx.pid"};
error_log {prefix / "logs" / "error.log"} warn;
events {{
    worker_connections 4096;
}}
http {{
    access_log off;
    types {{ text/html html; application/json json; }}
    default_type application/octet-stream;
{temp}
    include {prefix / "vexam.conf"};
}}
"""


class Cluster:
    """The files of one local cluster under `dir`."""

    def __init__(self, directory: Path) -> None:
        self.dir = directory.resolve()
        self.pids = self.dir / "pids"
        self.logs = self.dir / "logs"
        self.state_file = self.dir / "cluster.json"
        self.env_file = self.dir / "env"
        self.nginx_prefix = self.dir / "nginx"

    def load(self) -> dict[str, Any]:
        """The state `up` wrote (ports, pids, database)."""
        if not self.state_file.exists():
            sys.exit(f"no cluster in {self.dir} (run `up` first)")
        state: dict[str, Any] = json.loads(self.state_file.read_text())
        return state

    def save(self, state: dict[str, Any]) -> None:
        """Write the state and one pid file per process."""
        self.pids.mkdir(parents=True, exist_ok=True)
        for name, pid in state["pids"].items():
            (self.pids / f"{name}.pid").write_text(f"{pid}\n")
        self.state_file.write_text(json.dumps(state, indent=2) + "\n")

    def env(self) -> dict[str, str]:
        """The VEXAM_* variables of the processes (from DIR/env)."""
        out = {}
        for line in self.env_file.read_text().splitlines():
            if line and not line.startswith("#") and "=" in line:
                key, _, value = line.partition("=")
                out[key] = value
        return out

    def spawn(self, name: str, args: list[str], env: dict[str, str]) -> int:
        """Start a process in its own session (it outlives this command); log to DIR/logs."""
        self.logs.mkdir(parents=True, exist_ok=True)
        with (self.logs / f"{name}.log").open("ab") as log:
            process = subprocess.Popen(  # noqa: S603 - our own commands
                args,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, **env, "PYTHONUNBUFFERED": "1"},
                cwd=self.dir,
                start_new_session=True,
            )
        return process.pid


def alive(pid: int) -> bool:
    """Whether `pid` runs (a zombie child of ours counts as gone)."""
    try:
        finished, _ = os.waitpid(pid, os.WNOHANG)
        if finished == pid:
            return False
    except ChildProcessError:
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        status = Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1][0]
    except (OSError, IndexError):
        return True
    return status != "Z"


def stop(pid: int, timeout: float = 10.0) -> None:
    """SIGTERM `pid`'s process group, then SIGKILL it if it is still there after `timeout`."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(pid, sig)
        except ProcessLookupError:
            return
        except PermissionError:
            os.kill(pid, sig)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not alive(pid):
                return
            time.sleep(0.05)


def http_status(url: str, timeout: float = 2.0) -> int | None:
    """The status code of GET `url`, None when nothing answers."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 - local
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)
    except (OSError, urllib.error.URLError):
        return None


def wait_for(url: str, pid: int | None, what: str, timeout: float, ok: int = 200) -> None:
    """Wait until GET `url` answers `ok`; fail early when `pid` died."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if http_status(url) == ok:
            return
        if pid is not None and not alive(pid):
            sys.exit(f"{what} exited; see its log")
        time.sleep(0.1)
    sys.exit(f"{what} did not answer {url} within {timeout:.0f} s")


async def _admin(pg_url: str, sql: str) -> None:
    import asyncpg  # type: ignore[import-untyped]

    connection = await asyncpg.connect(f"{pg_url.rstrip('/')}/postgres")
    try:
        await connection.execute(sql)
    finally:
        await connection.close()


def make_bucket(endpoint: str, bucket: str) -> None:
    """Create the S3 bucket on the S3 API server."""
    import boto3

    client = boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",  # noqa: S106 - moto's fixed local credentials
    )
    client.create_bucket(Bucket=bucket)


def web_args(port: int) -> list[str]:
    """The command of one web process."""
    # nginx's upstream keepalive_timeout (60 s) stays below --keep-alive; nginx would log
    # requests in production, the local cluster logs none (uvicorn's access log costs CPU).
    args = ["serve", "--host", "127.0.0.1", "--port", str(port), "--keep-alive", "75"]
    return [str(BIN / "vexam"), *args, "--no-access-log"]


def start_web(cluster: Cluster, state: dict[str, Any], index: int, env: dict[str, str]) -> None:
    """Start web process `index` on its port and wait for its /healthz."""
    port = state["web_ports"][index]
    pid = cluster.spawn(f"web{index}", web_args(port), env)
    state["pids"][f"web{index}"] = pid
    wait_for(f"http://127.0.0.1:{port}/healthz", pid, f"web process {index}", 60)


def start_worker(cluster: Cluster, state: dict[str, Any], index: int, env: dict[str, str]) -> None:
    """Start worker process `index`."""
    args = ["nice", "-n", str(WORKER_NICE), str(BIN / "vexam"), "worker"]
    args += ["--threads", str(state["worker_threads"])]
    pid = cluster.spawn(f"worker{index}", args, env)
    state["pids"][f"worker{index}"] = pid
    lower_group_priority(pid, WORKER_NICE)


def lower_group_priority(pid: int, nice: int) -> None:
    """Give the scheduling group of session leader `pid` the priority `nice` (Linux's
    autogroup); nothing where the kernel has no autogroups."""
    with contextlib.suppress(OSError):
        Path(f"/proc/{pid}/autogroup").write_text(str(nice))


def up(args: argparse.Namespace) -> None:
    """Start everything, print VEXAM_URL and the environment."""
    cluster = Cluster(Path(args.dir))
    if cluster.state_file.exists():
        sys.exit(f"a cluster already lives in {cluster.dir}: run `down --dir {args.dir}` first")
    nginx = nginx_binary()
    if nginx is None:
        sys.exit("nginx is missing (Debian: apt-get install nginx; scripts/install does it)")
    cluster.dir.mkdir(parents=True, exist_ok=True)
    name = args.db_name
    s3_port = free_port()
    web_ports = [free_port() for _ in range(args.web)]
    state: dict[str, Any] = {
        "url": f"http://127.0.0.1:{args.port}",
        "port": args.port,
        "web_ports": web_ports,
        "workers": args.workers,
        "worker_threads": args.worker_threads,
        "s3_port": s3_port,
        "pg_url": args.pg_url,
        "db_name": name,
        "pids": {},
    }
    base = args.pg_url.rstrip("/").replace("postgresql://", "postgresql+asyncpg://", 1)
    bucket = name.replace("_", "-").lower()
    env = {
        "VEXAM_ENV": "development",
        "VEXAM_DATA_DIR": str(cluster.dir / "data"),
        "VEXAM_DATABASE_URL": f"{base}/{name}",
        "VEXAM_QUEUE_URL": args.redis_url,
        "VEXAM_QUEUE_NAME": name,
        "VEXAM_STORAGE_URL": f"s3://{bucket}",
        "VEXAM_S3_ENDPOINT_URL": f"http://127.0.0.1:{s3_port}",
        "VEXAM_S3_REGION": "us-east-1",
        "VEXAM_S3_ACCESS_KEY": "testing",
        "VEXAM_S3_SECRET_KEY": "testing",
        "VEXAM_SECRET_KEY": secrets.token_urlsafe(48),
        "VEXAM_DATA_KEY": secrets.token_urlsafe(48),
        "VEXAM_BASE_URL": state["url"],
        "VEXAM_FORWARDED_ALLOW_IPS": "127.0.0.1",
        "VEXAM_SMS_SENDER": "console",
        "VEXAM_PAYMENT_PROVIDER": "sandbox",
    }
    for item in args.env:
        key, sep, value = item.partition("=")
        if not sep or not key.startswith("VEXAM_"):
            sys.exit(f"--env takes VEXAM_NAME=VALUE, not {item!r}")
        env[key] = value
    cluster.env_file.write_text(
        "# vexam local cluster (deploy/local-cluster); read by `set -a; . env`\n"
        + f"VEXAM_URL={state['url']}\n"  # where clients go (nginx); not a setting
        + "".join(f"{key}={value}\n" for key, value in env.items())
    )
    cluster.env_file.chmod(0o600)
    cluster.save(state)  # from here on `down` can clean up whatever started

    state["pids"]["s3"] = cluster.spawn(
        "s3", [str(BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(s3_port)], {}
    )
    cluster.save(state)
    try:
        asyncio.run(_admin(args.pg_url, f'CREATE DATABASE "{name}"'))
    except Exception as exc:  # any driver error ends `up` with its message
        sys.exit(f"cannot create database {name} on {args.pg_url}: {exc}\n(then run `down`)")
    state["database_created"] = True
    # The web processes import while the schema is made (they touch no table until a request
    # comes, and nginx sends none before they answer); the workers start once it exists.
    for index, port in enumerate(web_ports):
        state["pids"][f"web{index}"] = cluster.spawn(f"web{index}", web_args(port), env)
    cluster.save(state)
    wait_for(f"http://127.0.0.1:{s3_port}/moto-api/", state["pids"]["s3"], "moto", 30)
    make_bucket(env["VEXAM_S3_ENDPOINT_URL"], bucket)
    upgrade = subprocess.run(  # noqa: S603 - our own command
        [str(BIN / "vexam"), "db", "upgrade"],
        env={**os.environ, **env},
        cwd=cluster.dir,
        capture_output=True,
        text=True,
        check=False,
    )
    if upgrade.returncode:
        sys.exit(f"vexam db upgrade failed:\n{upgrade.stdout}{upgrade.stderr}")
    for index in range(args.workers):
        start_worker(cluster, state, index, env)
    cluster.save(state)
    for index, port in enumerate(web_ports):
        pid = state["pids"][f"web{index}"]
        wait_for(f"http://127.0.0.1:{port}/healthz", pid, f"web process {index}", 90)

    prefix = cluster.nginx_prefix
    for folder in ("logs", "temp"):
        (prefix / folder).mkdir(parents=True, exist_ok=True)
    extra = f"    add_header {UPSTREAM_HEADER} $upstream_addr always;\n"
    (prefix / "vexam.conf").write_text(render_site(f"127.0.0.1:{args.port}", web_ports, extra))
    (prefix / "nginx.conf").write_text(render_main(prefix))
    started = subprocess.run(  # noqa: S603 - our own command
        [nginx, "-p", str(prefix), "-c", str(prefix / "nginx.conf"), "-e", "logs/error.log"],
        capture_output=True,
        text=True,
        check=False,
    )
    if started.returncode:
        sys.exit(f"nginx did not start:\n{started.stderr}")
    deadline = time.monotonic() + 10
    while not (prefix / "nginx.pid").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    state["pids"]["nginx"] = int((prefix / "nginx.pid").read_text().split()[0])
    cluster.save(state)
    wait_for(f"{state['url']}/healthz", None, "nginx", 20)
    wait_for(f"{state['url']}/readyz", None, "the cluster (/readyz)", 30)
    print(f"VEXAM_URL={state['url']}")
    for key, value in env.items():
        print(f"{key}={value}")


def down(args: argparse.Namespace) -> None:
    """Stop every process, drop the database, keep the logs."""
    cluster = Cluster(Path(args.dir))
    state = cluster.load()
    pids: dict[str, int] = state["pids"]
    nginx = pids.pop("nginx", None)
    if nginx is not None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(nginx, signal.SIGQUIT)  # graceful: finish open requests
    # SIGTERM to all at once, then wait for each (SIGKILL after 10 s).
    processes = [pid for name, pid in pids.items() if name != "s3"]
    for pid in processes:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGTERM)
    for pid in [*processes, *([nginx] if nginx is not None else [])]:
        stop(pid)
    if "s3" in pids:
        stop(pids["s3"])
    if state.get("database_created"):
        sql = f'DROP DATABASE IF EXISTS "{state["db_name"]}" WITH (FORCE)'
        asyncio.run(_admin(state["pg_url"], sql))
    for pid_file in cluster.pids.glob("*.pid"):
        pid_file.unlink()
    cluster.state_file.unlink()
    dropped = "dropped" if state.get("database_created") else "left alone (not created here)"
    print(f"stopped; database {state['db_name']} {dropped}; logs in {cluster.logs}")


def status(args: argparse.Namespace) -> None:
    """Each process alive or not, and what nginx's /healthz and /readyz answer."""
    cluster = Cluster(Path(args.dir))
    state = cluster.load()
    failed = False
    for name, pid in state["pids"].items():
        running = alive(pid)
        failed |= not running
        print(f"{name:<10} pid {pid:<8} {'running' if running else 'STOPPED'}")
    for path in ("/healthz", "/readyz"):
        code = http_status(state["url"] + path)
        failed |= code != 200
        print(f"{path:<10} {code if code is not None else 'no answer'}")
    print(f"VEXAM_URL={state['url']}")
    sys.exit(1 if failed else 0)


def restart(args: argparse.Namespace, kind: str) -> None:
    """Stop (SIGTERM; SIGKILL with --kill) process `index` of `kind` and start it again."""
    cluster = Cluster(Path(args.dir))
    state = cluster.load()
    name = f"{kind}{args.index}"
    if name not in state["pids"]:
        sys.exit(f"no {name} in this cluster")
    pid = state["pids"][name]
    if args.kill:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)
    stop(pid)
    if kind == "web":
        start_web(cluster, state, args.index, cluster.env())
    else:
        start_worker(cluster, state, args.index, cluster.env())
    cluster.save(state)
    print(f"{name} pid {state['pids'][name]}")


def main(argv: list[str] | None = None) -> None:
    """Parse the command line and run the command."""
    summary = (__doc__ or "").split("\n")[0]
    parser = argparse.ArgumentParser(prog="deploy/local-cluster", description=summary)
    commands = parser.add_subparsers(dest="command", required=True)
    start = commands.add_parser("up", help="start nginx, web and worker processes, S3, database")
    start.add_argument("--dir", required=True, help="folder for env, pids, logs, nginx files")
    start.add_argument("--web", type=int, default=2, help="vexam serve processes (default 2)")
    start.add_argument("--workers", type=int, default=2, help="vexam worker processes")
    start.add_argument("--worker-threads", type=int, default=4, help="jobs at once per worker")
    start.add_argument("--port", type=int, default=8080, help="nginx's port (default 8080)")
    start.add_argument("--db-name", default="vexam_cluster", help="database to create (fresh)")
    start.add_argument(
        "--pg-url",
        default="postgresql://postgres@127.0.0.1:5432",
        help="PostgreSQL server (no database name); the database is created there",
    )
    start.add_argument(
        "--redis-url", default="redis://127.0.0.1:6379/0", help="Redis for the job queue"
    )
    start.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="VEXAM_NAME=VALUE",
        help="another setting for every process (repeatable), e.g. VEXAM_UPLOAD_LEASE_SECONDS=10",
    )
    for command in ("down", "status"):
        commands.add_parser(command).add_argument("--dir", required=True)
    for kind in ("web", "worker"):
        again = commands.add_parser(f"restart-{kind}", help=f"restart one {kind} process")
        again.add_argument("--dir", required=True)
        again.add_argument("--index", type=int, required=True, help="0 for the first")
        again.add_argument("--kill", action="store_true", help="SIGKILL instead of SIGTERM")
    args = parser.parse_args(argv)
    if args.command == "up":
        up(args)
    elif args.command == "down":
        down(args)
    elif args.command == "status":
        status(args)
    else:
        restart(args, args.command.removeprefix("restart-"))


if __name__ == "__main__":
    main()
