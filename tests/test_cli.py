"""The `vexam` command: help on every command, administration, and the demo end to end."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from typer.testing import CliRunner

from vexam.cli import DEMO_ACCOUNTS, DEMO_PASSWORD, app

runner = CliRunner()
COMMANDS = [
    [],
    ["serve"],
    ["worker"],
    ["demo"],
    ["db"],
    ["db", "upgrade"],
    ["db", "check"],
    ["user"],
    ["user", "create"],
    ["school"],
    ["school", "create"],
]


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c) or "vexam")
def test_every_command_has_help(command: list[str]) -> None:
    """`--help` works on each command."""
    result = runner.invoke(app, [*command, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage" in result.output


def _env(tmp_path: Path) -> dict[str, str]:
    return {
        "VEXAM_ENV": "development",
        "VEXAM_DATA_DIR": str(tmp_path / "data"),
        "VEXAM_DATABASE_URL": "",
        "VEXAM_QUEUE_URL": "",
        "VEXAM_ARGON2_MEMORY_KIB": "64",
        "VEXAM_ARGON2_TIME_COST": "1",
    }


def test_db_school_and_user_administration(tmp_path: Path) -> None:
    """`db upgrade`, `db check`, `school create`, `user create` on a fresh SQLite database."""
    env = _env(tmp_path)
    assert runner.invoke(app, ["db", "upgrade"], env=env).exit_code == 0
    checked = runner.invoke(app, ["db", "check"], env=env)
    assert checked.exit_code == 0 and "agree" in checked.output
    school = runner.invoke(
        app, ["school", "create", "--slug", "music-school", "--name", "音乐学院"], env=env
    )
    assert school.exit_code == 0, school.output
    admin = runner.invoke(
        app,
        [
            "user",
            "create",
            "--phone",
            "13700000001",
            "--role",
            "school_admin",
            "--school",
            "music-school",
            "--password",
            "admin-pass-1",
        ],
        env=env,
    )
    assert admin.exit_code == 0, admin.output
    assert "school_admin" in admin.output
    duplicate = runner.invoke(
        app, ["user", "create", "--phone", "13700000001", "--password", "admin-pass-1"], env=env
    )
    assert duplicate.exit_code == 1 and "phone_registered" in duplicate.output
    no_school = runner.invoke(
        app,
        [
            "user",
            "create",
            "--phone",
            "13700000002",
            "--school",
            "nowhere",
            "--password",
            "admin-pass-1",
        ],
        env=env,
    )
    assert no_school.exit_code == 1 and "school_not_found" in no_school.output


def test_production_commands_refuse_default_secrets(tmp_path: Path) -> None:
    """A command run in production with default secrets stops and says which."""
    env = {**_env(tmp_path), "VEXAM_ENV": "production"}
    result = runner.invoke(app, ["db", "upgrade"], env=env)
    assert result.exit_code == 2
    assert "VEXAM_SECRET_KEY" in result.output


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _post(url: str, body: dict | None, token: str | None = None) -> tuple[int, dict]:
    headers = {"content-type": "application/json"}
    if token:
        headers["authorization"] = f"Bearer {token}"
    request = urllib.request.Request(url, data=json.dumps(body).encode(), headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def test_demo_runs_and_a_person_can_register_with_the_printed_code(tmp_path: Path) -> None:
    """`vexam demo`: SQLite, demo accounts, the SMS code printed on the console, sign-in works."""
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("VEXAM_")}
    env["PYTHONUNBUFFERED"] = "1"
    log_path = tmp_path / "demo.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "vexam",
                "demo",
                "--port",
                str(port),
                "--data-dir",
                str(tmp_path / "demo-data"),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=tmp_path,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"{base}/readyz", timeout=2) as ready:
                    if ready.status == 200:
                        break
            except OSError:
                time.sleep(0.2)
        else:
            pytest.fail("demo did not become ready:\n" + log_path.read_text())
        banner = log_path.read_text()
        assert f"{base}/" in banner and DEMO_PASSWORD in banner
        # Typing alone is not enough: the page asks for two pictures before the review starts.
        flat = " ".join(banner.split())
        assert "sends any ID-card photo and selfie for the manual review" in flat
        for phone, role, _ in DEMO_ACCOUNTS:
            assert phone in banner
            status, body = _post(
                f"{base}/api/v1/auth/login", {"phone": phone, "password": DEMO_PASSWORD}
            )
            assert status == 200 and body["user"]["role"] == role.value
        # The certified demo candidate applies for the demo exam and pays once in the sandbox.
        token = body["token"]
        status, matched = _post(f"{base}/api/v1/exams/1/application", {"province": "上海"}, token)
        assert status == 200 and matched["name"] == "李明", matched
        status, enrolled = _post(f"{base}/api/v1/exams/1/application/confirm", {}, token)
        assert enrolled["mock"] == "payment_required"
        status, order = _post(f"{base}/api/v1/exams/1/payment-order", {}, token)
        assert _post(f"{base}{order['pay_url']}", {}, token)[1]["status"] == "paid"
        assert _post(f"{base}{order['pay_url']}", {}, token)[1]["code"] == "already_paid"
        phone = "13512345678"
        status, _ = _post(f"{base}/api/v1/auth/sms-codes", {"phone": phone, "purpose": "register"})
        assert status == 202
        code = None
        deadline = time.monotonic() + 20
        while code is None and time.monotonic() < deadline:
            found = re.findall(r"135\*\*\*\*5678\] .*?(\d{6})", log_path.read_text())
            code = found[-1] if found else None
            if code is None:
                time.sleep(0.1)
        assert code, "no SMS code printed:\n" + log_path.read_text()
        status, body = _post(
            f"{base}/api/v1/auth/register",
            {"phone": phone, "code": code, "password": "my-demo-pass-1"},
        )
        assert status == 201, body
        status, body = _post(
            f"{base}/api/v1/auth/login", {"phone": phone, "password": "my-demo-pass-1"}
        )
        assert status == 200
    finally:
        process.terminate()
        process.wait(timeout=20)


def test_worker_process_sends_queued_sms(tmp_path: Path) -> None:
    """`vexam worker` runs jobs a web process queued (here: the SMS with a code)."""
    import asyncio

    import httpx

    from vexam.config import Settings
    from vexam.main import create_app

    env = {**_env(tmp_path), "VEXAM_SMS_SENDER": "console"}
    assert runner.invoke(app, ["db", "upgrade"], env=env).exit_code == 0
    settings = Settings(
        env="development",
        data_dir=tmp_path / "data",
        database_url="",
        queue_url="",
        sms_sender="console",
        _env_file=None,
    )

    async def _request_code() -> int:
        web = create_app(settings)
        async with web.router.lifespan_context(web):
            transport = httpx.ASGITransport(app=web)
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
                response = await client.post(
                    "/api/v1/auth/sms-codes", json={"phone": "13912345678", "purpose": "register"}
                )
            assert response.status_code == 202, response.text
            return web.state.queue.pending_count()

    assert asyncio.run(_request_code()) == 1
    child_env = {k: v for k, v in os.environ.items() if not k.startswith("VEXAM_")}
    child_env.update(env, PYTHONUNBUFFERED="1")
    log_path = tmp_path / "worker.log"
    with log_path.open("wb") as log:
        worker = subprocess.Popen(
            [sys.executable, "-m", "vexam", "worker", "--threads", "1"],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=child_env,
            cwd=tmp_path,
        )
    try:
        deadline = time.monotonic() + 30
        while "[vexam SMS → 139****5678]" not in log_path.read_text():
            assert time.monotonic() < deadline, log_path.read_text()
            assert worker.poll() is None, log_path.read_text()
            time.sleep(0.1)
        assert re.search(r"验证码是 \d{6}", log_path.read_text())
    finally:
        worker.terminate()
        worker.wait(timeout=20)
