"""The `vexam` command: serve, worker, demo, db, user and school administration."""

from __future__ import annotations

import asyncio
import getpass
import sys
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated

import typer
import uvicorn
from rich.console import Console

from vexam.config import InsecureSettingsError, Settings
from vexam.core.clock import SystemClock
from vexam.core.context import Ctx, Principal, Role
from vexam.core.db import Database
from vexam.core.errors import VexamError
from vexam.core.jobs import JobQueue, JobRuntime
from vexam.core.logs import log_process_to
from vexam.demo import (
    CERTIFIED_ALREADY,
    CERTIFY_BY_HAND,
    DEMO_ACCOUNTS,
    DEMO_PASSWORD,
    SAMPLE_ROSTER,
    demo_settings,
)
from vexam.demo import seed as seed_demo
from vexam.main import build_queue, build_resources, build_store, create_app
from vexam.schools.schemas import RosterImportOut

app = typer.Typer(help="vexam: remote video admission exams.", no_args_is_help=True)
db_app = typer.Typer(help="Database migrations.", no_args_is_help=True)
user_app = typer.Typer(help="Accounts.", no_args_is_help=True)
school_app = typer.Typer(help="Schools.", no_args_is_help=True)
roster_app = typer.Typer(help="Exam rosters (考生名单).", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(user_app, name="user")
app.add_typer(school_app, name="school")
app.add_typer(roster_app, name="roster")
console = Console()


def _settings() -> Settings:
    try:
        settings = Settings()
        settings.check_safe_to_start()
    except InsecureSettingsError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None
    return settings


@asynccontextmanager
async def _database(settings: Settings) -> AsyncIterator[Database]:
    """The configured database for one command, disposed of when it ends."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    db = Database.configured(settings)
    try:
        yield db
    finally:
        await db.dispose()


@asynccontextmanager
async def _cli_ctx(settings: Settings) -> AsyncIterator[Ctx]:
    """A unit of work for an administrator at the console (audited as the CLI)."""
    queue = build_queue(settings)
    async with _database(settings) as db, db.unit_of_work() as session:
        yield Ctx(
            session=session, clock=SystemClock(), settings=settings, jobs=queue, device_id="cli"
        )


async def _upgrade(settings: Settings) -> None:
    from vexam.migrate import upgrade

    async with _database(settings) as db:
        await upgrade(db)


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Create or upgrade the database schema to the newest migration."""
    settings = _settings()
    asyncio.run(_upgrade(settings))
    console.print("database is at the newest migration")


@db_app.command("check")
def db_check() -> None:
    """Upgrade, then fail if the models and the migrations disagree (CI's drift check)."""
    from vexam.migrate import drift

    settings = _settings()

    async def _check() -> list[object]:
        from vexam.migrate import upgrade

        async with _database(settings) as db:
            await upgrade(db)
            return await drift(db)

    differences = asyncio.run(_check())
    if differences:
        for item in differences:
            console.print(f"[red]drift:[/red] {item}")
        raise typer.Exit(1)
    console.print("models and migrations agree")


@user_app.command("create")
def user_create(
    phone: Annotated[str, typer.Option(help="11-digit mainland mobile number")],
    role: Annotated[Role, typer.Option(help="account role")] = Role.candidate,
    school: Annotated[str | None, typer.Option(help="school slug (staff of a school)")] = None,
    name: Annotated[str | None, typer.Option(help="display name")] = None,
    password: Annotated[str | None, typer.Option(help="password (prompted when omitted)")] = None,
) -> None:
    """Create an account (staff accounts too: school admin, reviewer, support, operator)."""
    from vexam.accounts import service as accounts
    from vexam.schools import service as schools

    settings = _settings()
    secret = password or getpass.getpass("password: ")

    async def _create() -> int:
        async with _cli_ctx(settings) as ctx:
            school_id = None
            if school:
                found = await schools.school_by_slug(ctx, school)
                if found is None:
                    raise VexamError("school_not_found")
                school_id = found.id
            phone_ok = accounts.normalise_phone(phone)
            user = await accounts.create_user(
                ctx, phone_ok, secret, role=role, school_id=school_id, display_name=name
            )
            return user.id

    try:
        user_id = asyncio.run(_create())
    except VexamError as exc:
        console.print(f"[red]{exc.code}[/red]")
        raise typer.Exit(1) from None
    console.print(f"created user {user_id} ({role.value})")


@school_app.command("create")
def school_create(
    slug: Annotated[str, typer.Option(help="short unique name, e.g. central-conservatory")],
    name: Annotated[str, typer.Option(help="school name (Chinese)")],
    name_en: Annotated[str | None, typer.Option(help="school name in English")] = None,
    timezone: Annotated[str, typer.Option(help="IANA time zone")] = "Asia/Shanghai",
) -> None:
    """Create a school."""
    from vexam.schools import service as schools

    settings = _settings()

    async def _create() -> int:
        async with _cli_ctx(settings) as ctx:
            school = await schools.create_school(
                ctx, slug, name, name_en=name_en, timezone=timezone
            )
            return school.id

    try:
        school_id = asyncio.run(_create())
    except VexamError as exc:
        console.print(f"[red]{exc.code}[/red] {exc.params}")
        raise typer.Exit(1) from None
    console.print(f"created school {school_id} ({slug})")


# The console acts with an operator's reach; the audit log records it as the CLI.
CONSOLE = Principal(
    user_id=0, role=Role.operator, school_id=None, locale=None, session_id=0, masked_phone="cli"
)


def _print_preview(preview: RosterImportOut) -> None:
    console.print(
        f"import {preview.id} ({preview.status}): {preview.total_rows} rows, "
        f"{preview.valid_rows} valid, {preview.error_rows} bad"
    )
    if preview.inserted_rows is not None:
        console.print(f"  added {preview.inserted_rows}, updated {preview.updated_rows}")
    for error in preview.errors:
        other = f" (same as row {error.other_row})" if error.other_row else ""
        console.print(f"  [red]row {error.row}[/red] {error.column}: {error.reason}{other}")
    if preview.error_rows > len(preview.errors):
        console.print(f"  ... and {preview.error_rows - len(preview.errors)} more bad rows")


@roster_app.command("import")
def roster_import(
    file: Annotated[Path, typer.Argument(help="CSV (UTF-8 or GBK) or XLSX file", exists=True)],
    school: Annotated[str, typer.Option(help="school slug")],
    exam: Annotated[str, typer.Option(help="exam code")],
    commit: Annotated[bool, typer.Option(help="import the rows after the preview")] = False,
    skip_invalid: Annotated[
        bool, typer.Option(help="with --commit: import the valid rows, leave out the bad")
    ] = False,
) -> None:
    """Check a roster file and print its bad rows; with --commit, import it."""
    from rich.progress import BarColumn, Progress, TaskProgressColumn, TimeRemainingColumn

    from vexam.exams import service as exams
    from vexam.schools import roster
    from vexam.schools import service as schools

    settings = _settings()

    async def _import(bar: Progress) -> RosterImportOut:
        task = bar.add_task("reading", total=None)

        def advance(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total or None)

        async with _cli_ctx(settings) as ctx:
            found = await schools.school_by_slug(ctx, school)
            if found is None:
                raise VexamError("school_not_found")
            exam_id = next(
                (e.id for e in await exams.list_exams(ctx, CONSOLE, found.id) if e.code == exam),
                None,
            )
            if exam_id is None:
                raise VexamError("exam_not_found")
            with file.open("rb") as stream:
                preview = await roster.preview(
                    ctx, CONSOLE, exam_id, stream, file.name, progress=advance
                )
            bar.update(task, description="done")
            if commit and (preview.error_rows == 0 or skip_invalid):
                bar.update(task, description="importing")
                preview = await roster.commit(
                    ctx, CONSOLE, exam_id, preview.id, skip_invalid=skip_invalid
                )
            return preview

    columns = (*Progress.get_default_columns()[:1], BarColumn(), TaskProgressColumn())
    try:
        with Progress(*columns, TimeRemainingColumn(), console=console) as bar:
            preview = asyncio.run(_import(bar))
    except VexamError as exc:
        console.print(f"[red]{exc.code}[/red] {exc.params}")
        raise typer.Exit(1) from None
    _print_preview(preview)
    if commit and preview.status != "committed":
        console.print("[red]not imported:[/red] fix the bad rows, or pass --skip-invalid")
        raise typer.Exit(1)


@app.command()
def demo(
    host: Annotated[str, typer.Option(help="address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="port to listen on")] = 8000,
    data_dir: Annotated[Path, typer.Option(help="where the SQLite files and blobs go")] = Path(
        "vexam-data"
    ),
) -> None:
    """Run the whole platform locally on SQLite with demo data and print where to open it."""
    settings = demo_settings(data_dir, f"http://{host}:{port}")
    asyncio.run(_upgrade(settings))
    asyncio.run(seed_demo(settings))
    base = settings.base_url
    console.print(f"\n[bold]vexam demo[/bold] — data in {data_dir.resolve()}")
    console.print(f"  open          {base}/            (register, sign in)")
    console.print(f"  API docs      {base}/api/docs")
    console.print(f"  health        {base}/readyz")
    console.print(f"  demo logins   password [bold]{DEMO_PASSWORD}[/bold] for every account:")
    for phone, role, label in DEMO_ACCOUNTS:
        console.print(f"    {phone}  {role.value:<13} {label}")
    console.print("  SMS codes are printed here, in this console, as \\[vexam SMS → ...] lines.")
    by_hand, ready = CERTIFY_BY_HAND, CERTIFIED_ALREADY
    console.print(
        "  demo exams    示范艺术学院 · 钢琴演奏（示范）, fee ¥180.00 paid in the sandbox,"
        " formal window next week"
    )
    console.print(
        "                示范艺术学院 · 声乐（示范，正在考试）, free, formal window open now:"
        " the whole exam on a phone, up to the verified upload"
    )
    console.print(
        f"    13900000005 certifies at /identity by typing {by_hand.name} {by_hand.id_number}"
        f" ({by_hand.province}), then sends any ID-card photo and selfie for the manual review;"
        " 13900000004 approves it at /support/reviews"
    )
    console.print(
        f"    13900000006 is certified as {ready.name} ({ready.province}): apply at /exams"
    )
    console.print(
        f"    roster to import as 13900000002 at /school: {(data_dir / SAMPLE_ROSTER).resolve()}\n"
    )
    application = create_app(settings, in_process_worker=True, warm=True)
    log_process_to(sys.stderr)
    uvicorn.run(application, host=host, port=port, log_level="info")


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="port to listen on")] = 8000,
    in_process_worker: Annotated[
        bool, typer.Option(help="also run jobs in this process (small sites)")
    ] = False,
    access_log: Annotated[
        bool,
        typer.Option(help="log every request (off behind a proxy that logs them: saves CPU)"),
    ] = True,
    keep_alive: Annotated[
        int,
        typer.Option(help="seconds an idle connection is kept (above the proxy's own timeout)"),
    ] = 5,
) -> None:
    """Run the web server (stateless: run as many as you need behind a load balancer).

    uvicorn with uvloop and the httptools parser (the pure-Python ones cost more CPU).
    """
    settings = _settings()
    application = create_app(settings, in_process_worker=in_process_worker, warm=True)
    log_process_to(sys.stderr)
    uvicorn.run(
        application,
        host=host,
        port=port,
        loop="uvloop",
        http="httptools",
        proxy_headers=True,
        forwarded_allow_ips=settings.forwarded_allow_ips,
        log_level="info",
        access_log=access_log,
        timeout_keep_alive=keep_alive,
    )


@app.command()
def worker(
    threads: Annotated[int, typer.Option(help="jobs run at once in this process")] = 4,
) -> None:
    """Run background jobs (SMS, media checks, timers) until stopped."""
    settings = _settings()
    queue: JobQueue = build_queue(settings)
    loop = asyncio.new_event_loop()
    threading.Thread(target=loop.run_forever, name="vexam-worker-loop", daemon=True).start()
    queue.runtime = JobRuntime(
        db=Database.configured(settings),
        settings=settings,
        clock=SystemClock(),
        loop=loop,
        resources=build_resources(settings),
        store=build_store(settings),
    )
    console.print(
        f"vexam worker: {threads} threads on {settings.effective_queue_url.split('@')[-1]}"
    )
    log_process_to(sys.stderr, queue_consumer=True)
    consumer = queue.huey.create_consumer(workers=threads, worker_type="thread", periodic=True)
    consumer.run()
