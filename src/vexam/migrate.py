"""Alembic, driven from code: `vexam db upgrade` and the model/migration drift check."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from sqlalchemy.engine import Connection

from vexam.core.db import Database
from vexam.schema import metadata

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"


def alembic_config(connection: Connection | None = None) -> Config:
    """An Alembic config pointing at the migrations shipped in the package."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["connection"] = connection
    return config


async def upgrade(db: Database, revision: str = "head") -> None:
    """Apply migrations up to `revision`."""

    def _run(connection: Connection) -> None:
        command.upgrade(alembic_config(connection), revision)

    async with db.engine.begin() as connection:
        await connection.run_sync(_run)


async def downgrade(db: Database, revision: str) -> None:
    """Revert migrations down to `revision` (e.g. 'base')."""

    def _run(connection: Connection) -> None:
        command.downgrade(alembic_config(connection), revision)

    async with db.engine.begin() as connection:
        await connection.run_sync(_run)


async def drift(db: Database) -> list[Any]:
    """Differences between the models and the migrated database (empty when they agree)."""

    def _compare(connection: Connection) -> list[Any]:
        context = MigrationContext.configure(
            connection, opts={"compare_type": True, "render_as_batch": db.is_sqlite}
        )
        return list(compare_metadata(context, metadata))

    async with db.engine.connect() as connection:
        return await connection.run_sync(_compare)


def make_revision(message: str, url: str) -> None:
    """Autogenerate a new migration from the models against a database at head (developers)."""
    import asyncio

    db = Database(url)

    def _run(connection: Connection) -> None:
        command.revision(alembic_config(connection), message=message, autogenerate=True)

    async def _go() -> None:
        await upgrade(db)
        async with db.engine.begin() as connection:
            await connection.run_sync(_run)
        await db.dispose()

    asyncio.run(_go())
