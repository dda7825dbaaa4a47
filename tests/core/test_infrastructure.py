"""The foundation's machinery: unit of work, audit log, job queue, settings, migrations."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import delete, func, select, text, update
from sqlalchemy.exc import DBAPIError

from vexam.config import DEFAULT_SECRET_KEY, Environment, InsecureSettingsError, Settings
from vexam.core import audit
from vexam.core.audit import AuditEntry
from vexam.core.context import Ctx
from vexam.core.db import Database, after_commit, after_rollback
from vexam.core.errors import CountedRefusal, VexamError
from vexam.migrate import downgrade, drift, upgrade
from vexam.schools import service as schools


def _ctx(app, session) -> Ctx:
    state = app.state
    return Ctx(
        session=session,
        clock=state.clock,
        settings=state.settings,
        jobs=state.queue,
        client_ip="203.0.113.5",
        device_id="device-test-1",
    )


async def _school_count(app, slug: str) -> int:
    async with app.state.db.unit_of_work() as session:
        query = select(func.count()).select_from(text("schools")).where(text("slug = :s"))
        return int((await session.execute(query, {"s": slug})).scalar_one())


async def test_unit_of_work_commits_on_success_and_runs_hooks_after(app) -> None:
    """Convention 1 and 2: commit on success; after-commit hooks run once it committed."""
    seen: list[int] = []
    async with app.state.db.unit_of_work() as session:
        await schools.create_school(_ctx(app, session), "uow-commit", "提交学院")

        async def hook() -> None:
            seen.append(await _school_count(app, "uow-commit"))

        after_commit(session, hook)
        assert seen == []
    assert seen == [1]


async def test_unit_of_work_rolls_back_on_error_and_drops_hooks(app) -> None:
    """Convention 1 and 2: roll back on error; after-commit hooks are dropped."""
    seen: list[str] = []
    with pytest.raises(VexamError):
        async with app.state.db.unit_of_work() as session:
            await schools.create_school(_ctx(app, session), "uow-rollback", "回滚学院")

            async def hook() -> None:
                seen.append("ran")

            after_commit(session, hook)
            raise VexamError("forbidden")
    assert seen == []
    assert await _school_count(app, "uow-rollback") == 0


async def test_after_rollback_hooks_undo_side_effects_only_on_rollback(app) -> None:
    """A side effect done before the commit (a stored blob) is undone if the rows roll back."""
    undone: list[str] = []

    async def undo(name: str) -> None:
        undone.append(name)

    async with app.state.db.unit_of_work() as session:
        after_rollback(session, lambda: undo("committed"))
    with pytest.raises(CountedRefusal):
        async with app.state.db.unit_of_work() as session:
            after_rollback(session, lambda: undo("counted"))
            raise CountedRefusal("login_failed")
    with pytest.raises(VexamError):
        async with app.state.db.unit_of_work() as session:
            after_rollback(session, lambda: undo("refused"))
            raise VexamError("forbidden")
    assert undone == ["refused"]


async def test_counted_refusal_keeps_its_writes(app) -> None:
    """A refusal that must count (failed login) commits before it is answered."""
    with pytest.raises(CountedRefusal):
        async with app.state.db.unit_of_work() as session:
            await schools.create_school(_ctx(app, session), "uow-counted", "计数学院")
            raise CountedRefusal("login_failed")
    assert await _school_count(app, "uow-counted") == 1


async def test_audit_entry_records_actor_time_ip_device(app, clock) -> None:
    """§8: an entry keeps actor, time, client IP and device id."""
    async with app.state.db.unit_of_work() as session:
        school = await schools.create_school(_ctx(app, session), "audit-fields", "审计学院")
    async with app.state.db.unit_of_work() as session:
        entry = (
            await session.execute(
                select(AuditEntry).where(
                    AuditEntry.action == "school.created", AuditEntry.subject_id == str(school.id)
                )
            )
        ).scalar_one()
    assert entry.at == clock.now()
    assert entry.client_ip == "203.0.113.5"
    assert entry.device_id == "device-test-1"
    assert entry.detail == {"slug": "audit-fields"}


async def test_audit_log_is_append_only_in_the_database(app) -> None:
    """§8: the database itself refuses UPDATE and DELETE on the audit log."""
    async with app.state.db.unit_of_work() as session:
        await audit.record(_ctx(app, session), "test.appended", "thing", 1)
        found = select(AuditEntry.id).where(AuditEntry.action == "test.appended")
        entry_id = (await session.execute(found)).scalar_one()
    for statement in (
        update(AuditEntry).where(AuditEntry.id == entry_id).values(action="test.rewritten"),
        delete(AuditEntry).where(AuditEntry.id == entry_id),
    ):
        with pytest.raises(DBAPIError, match="append-only"):
            async with app.state.db.unit_of_work() as session:
                await session.execute(statement)
    async with app.state.db.unit_of_work() as session:
        action = (
            await session.execute(select(AuditEntry.action).where(AuditEntry.id == entry_id))
        ).scalar_one()
    assert action == "test.appended"


async def test_queue_runs_jobs_with_a_unit_of_work(app, settings) -> None:
    """Jobs go through the real queue (SQLite file or Redis) and run in their own unit of work."""
    from vexam.core.jobs import JobQueue, JobRuntime

    ran: list[tuple[str, int]] = []

    async def job(ctx: Ctx, payload: dict) -> None:
        school = await schools.create_school(ctx, payload["slug"], "任务学院")
        ran.append((payload["slug"], school.id))

    queue = JobQueue(settings.effective_queue_url, settings.queue_name + "-x", {"test.job": job})
    queue.runtime = JobRuntime(
        db=app.state.db,
        settings=settings,
        clock=app.state.clock,
        loop=app.state.queue.runtime.loop,
        resources={},
    )
    await queue.enqueue("test.job", {"slug": "from-a-job"})
    assert queue.pending_count() == 1
    assert await queue.drain() == 1
    assert ran and ran[0][0] == "from-a-job"
    assert await _school_count(app, "from-a-job") == 1
    with pytest.raises(LookupError):
        await queue.enqueue("no.such.job", {})


async def test_periodic_jobs_come_due_on_their_minutes(app, settings) -> None:
    """A job named with `every_minutes` is due on those minutes and runs like any job;
    the web app's queue runs the upload sweep every 5 minutes."""
    from datetime import datetime

    from vexam.core.jobs import JobQueue, JobRuntime

    ran: list[dict] = []

    async def job(ctx: Ctx, payload: dict) -> None:
        ran.append(payload)

    queue = JobQueue(
        settings.effective_queue_url,
        settings.queue_name + "-every",
        {"test.tick": job},
        every_minutes={"test.tick": 15},
    )
    queue.runtime = JobRuntime(
        db=app.state.db,
        settings=settings,
        clock=app.state.clock,
        loop=app.state.queue.runtime.loop,
        resources={},
    )
    assert queue.huey.read_periodic(datetime(2026, 6, 1, 10, 7)) == []
    due = queue.huey.read_periodic(datetime(2026, 6, 1, 10, 15))
    assert len(due) == 1
    await asyncio.to_thread(queue.huey.execute, due[0])
    assert ran == [{}]
    with pytest.raises(ValueError):
        JobQueue(settings.effective_queue_url, "x", {"test.tick": job}, every_minutes={"no": 5})
    sweeps = app.state.queue.huey.read_periodic(datetime(2026, 6, 1, 10, 5))
    assert [task.name for task in sweeps] == ["vexam.every.uploads.sweep"]


def test_queue_url_forms(tmp_path) -> None:
    """SQLite queue by default, Redis for redis:// URLs; anything else is refused clearly."""
    from huey import RedisHuey, SqliteHuey

    from vexam.core.jobs import build_huey

    assert isinstance(build_huey(f"sqlite:///{tmp_path / 'q.db'}", "t"), SqliteHuey)
    assert isinstance(build_huey("redis://127.0.0.1:6379/0", "t"), RedisHuey)
    with pytest.raises(ValueError, match="VEXAM_QUEUE_URL"):
        build_huey("amqp://x", "t")


def test_production_refuses_default_secrets_and_says_which() -> None:
    """Outside development mode the server refuses to start with default secrets."""
    from vexam.main import create_app

    with pytest.raises(InsecureSettingsError) as refused:
        create_app(Settings(env=Environment.production, _env_file=None))
    message = str(refused.value)
    assert "VEXAM_SECRET_KEY" in message and "VEXAM_DATA_KEY" in message
    assert "VEXAM_SMS_SENDER" in message and "VEXAM_PAYMENT_PROVIDER" in message
    good = Settings(
        env=Environment.production,
        secret_key="s" * 40,
        data_key="d" * 40,
        sms_sender="memory",
        payment_provider="school_gateway.pay:Gateway",
        _env_file=None,
    )
    good.check_safe_to_start()
    Settings(env=Environment.development, secret_key=DEFAULT_SECRET_KEY).check_safe_to_start()


def test_settings_refuse_unknown_database_urls() -> None:
    """A mistyped database URL is refused at start-up with what is accepted."""
    with pytest.raises(ValueError, match="sqlite\\+aiosqlite"):
        Settings(database_url="mysql://x/y")


async def test_models_and_migrations_agree(app) -> None:
    """No drift between the SQLAlchemy models and the shipped migrations."""
    assert await drift(app.state.db) == []


async def test_migrations_go_down_and_up_again(database_url, tmp_path) -> None:
    """Every migration downgrades cleanly and upgrades again (on this run's database kind)."""
    if database_url.startswith("sqlite"):
        db = Database(f"sqlite+aiosqlite:///{tmp_path / 'roundtrip.db'}")
    else:
        from sqlalchemy.ext.asyncio import create_async_engine

        base, _, name = database_url.rpartition("/")
        fresh = f"{name}_rt"
        admin = create_async_engine(f"{base}/postgres", isolation_level="AUTOCOMMIT")
        async with admin.connect() as connection:
            await connection.execute(text(f'DROP DATABASE IF EXISTS "{fresh}" WITH (FORCE)'))
            await connection.execute(text(f'CREATE DATABASE "{fresh}"'))
        db = Database(f"{base}/{fresh}")
    try:
        await upgrade(db)
        await downgrade(db, "base")
        async with db.engine.connect() as connection:
            tables = await connection.run_sync(
                lambda sync: __import__("sqlalchemy").inspect(sync).get_table_names()
            )
        assert set(tables) <= {"alembic_version"}
        await upgrade(db)
        assert await drift(db) == []
    finally:
        await db.dispose()
        if not database_url.startswith("sqlite"):
            async with admin.connect() as connection:
                await connection.execute(text(f'DROP DATABASE IF EXISTS "{fresh}" WITH (FORCE)'))
            await admin.dispose()


async def test_sqlite_runs_in_wal_mode_with_foreign_keys(tmp_path) -> None:
    """SQLite: WAL journal, foreign keys enforced, a busy timeout."""
    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'pragmas.db'}")
    try:
        async with db.engine.connect() as connection:
            mode = (await connection.exec_driver_sql("PRAGMA journal_mode")).scalar_one()
            fks = (await connection.exec_driver_sql("PRAGMA foreign_keys")).scalar_one()
            busy = (await connection.exec_driver_sql("PRAGMA busy_timeout")).scalar_one()
        assert (mode, fks, busy) == ("wal", 1, 30000)
    finally:
        await db.dispose()
