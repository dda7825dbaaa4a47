"""Roster import and correction (SPEC §4): preview a file, commit it, correct a row.

A file is streamed: its rows are read, validated with the identity domain's ID-number rules
and their ID numbers encrypted and blind-indexed off the event loop, in worker processes
(`roster_files.checked_batches`), while this module writes the checked batches to a staging
table in one COPY (PostgreSQL) or batched inserts (SQLite), so memory stays flat however big
the file. Duplicates within the file are found by the database afterwards, with one grouping
per key. Commit is one set-based upsert keyed on (exam, blind index): re-importing a file
updates the rows of the same ID numbers.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from contextlib import aclosing
from datetime import timedelta
from typing import IO, Any

from sqlalchemy import delete, func, literal, select, text, update

from vexam.core import audit
from vexam.core.context import Ctx, Principal
from vexam.core.db import insert_into
from vexam.core.errors import CountedRefusal, VexamError, field_invalid
from vexam.core.models import UTCDateTime
from vexam.exams import service as exams
from vexam.identity.idnumbers import normalise_province
from vexam.schools import schemas
from vexam.schools.models import RosterImport, RosterRow, RosterStagedRow
from vexam.schools.roster_files import (
    ID_NUMBER_CONTEXT,
    ID_NUMBER_KIND,
    CheckedBatch,
    Progress,
    RosterFileError,
    Staged,
    check_row,
    checked_batches,
    default_workers,
)
from vexam.schools.roster_files import candidate_ok as _candidate_ok

__all__ = ["ID_NUMBER_CONTEXT", "ID_NUMBER_KIND", "Staged", "check_row"]

PREVIEW_TTL = timedelta(hours=24)
BATCH_ROWS = 5000
POOL_WORKERS: int | None = None  # processes checking rows; 0: a thread; None: cores - 1
MAX_PAGE_SIZE = 500
STAGED_COLUMNS = (
    "import_id",
    "row_number",
    "name",
    "id_number_enc",
    "id_number_index",
    "id_number_masked",
    "province",
    "candidate_number",
    "major",
    "error_column",
    "error_reason",
    "other_row",
)


def invalid_file(reason: str, columns: Sequence[str] = ()) -> VexamError:
    """`roster_invalid` naming why the file (or preview) cannot be imported."""
    return VexamError("roster_invalid", reason=reason, columns=list(columns))


# What `insert(RosterStagedRow)` renders for SQLite, as driver SQL taking plain tuples.
_SQLITE_STAGE = (
    "INSERT INTO roster_staged_rows (import_id, row_number, name, id_number_enc,"
    " id_number_index, id_number_masked, province, candidate_number, major, error_column,"
    " error_reason, other_row) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)


async def _stage(ctx: Ctx, batches: Callable[[bool], AsyncIterator[CheckedBatch]]) -> None:
    """Write the checked batches to the staging table as they come."""
    connection = await ctx.session.connection()
    if connection.dialect.name == "postgresql":

        async def chunks() -> AsyncIterator[bytes]:
            async for batch in batches(True):
                yield batch.copy_text

        # One COPY through the same connection and transaction, fed while rows are checked;
        # the workers wrote its text, this process only forwards it.
        raw = await connection.get_raw_connection()
        driver: Any = raw.driver_connection
        await driver.copy_to_table(
            RosterStagedRow.__tablename__, source=chunks(), columns=STAGED_COLUMNS, format="text"
        )
        return
    # Plain tuples straight to the driver: no per-row ORM or dict work.
    async for batch in batches(False):
        await connection.exec_driver_sql(_SQLITE_STAGE, batch.staged)


# Every row repeating an earlier row's key, named by the first row of that key. One grouping
# pass finds the repeated keys (a hash aggregate over the import), then only their later rows
# are touched: no per-row subquery.
_DUPLICATES = """
UPDATE roster_staged_rows
SET error_column = :column, error_reason = 'duplicate', other_row = repeated.first_row
FROM (
    SELECT {key} AS key, MIN(row_number) AS first_row FROM roster_staged_rows
    WHERE import_id = :import_id AND {key} IS NOT NULL
    GROUP BY {key} HAVING COUNT(*) > 1
) AS repeated
WHERE roster_staged_rows.import_id = :import_id
  AND roster_staged_rows.{key} = repeated.key
  AND roster_staged_rows.row_number > repeated.first_row
  AND roster_staged_rows.error_reason IS NULL
"""


async def _mark_duplicates(ctx: Ctx, import_id: int) -> int:
    """Every later row repeating an earlier row's ID number or candidate number is an error
    naming the earlier row (so both row numbers are reported); how many rows were marked."""
    marked = 0
    for column, key in (("id_number", "id_number_index"), ("candidate_number", "candidate_number")):
        done = await ctx.session.execute(
            text(_DUPLICATES.format(key=key)), {"column": column, "import_id": import_id}
        )
        marked += int(done.rowcount)  # type: ignore[attr-defined]
    return marked


async def stage_file(
    ctx: Ctx, import_id: int, stream: IO[bytes], progress: Progress | None = None
) -> tuple[int, int]:
    """Validate and stage every row of `stream`; (total rows, bad rows)."""
    total = bad = 0
    failed: RosterFileError | None = None

    async def counted(as_copy_text: bool) -> AsyncIterator[CheckedBatch]:
        nonlocal total, bad, failed
        batches = checked_batches(
            import_id,
            stream,
            progress,
            today=ctx.now().date(),
            data_key=ctx.settings.data_key,
            batch_rows=BATCH_ROWS,
            workers=default_workers() if POOL_WORKERS is None else POOL_WORKERS,
            as_copy_text=as_copy_text,
        )
        async with aclosing(batches):
            try:
                async for batch in batches:
                    total, bad = total + batch.rows, bad + batch.bad
                    yield batch
            except RosterFileError as exc:
                # End the COPY cleanly (no CopyFail, no cancel request racing the rollback);
                # the refusal below rolls the whole preview back.
                failed = exc

    await _stage(ctx, counted)
    if failed is not None:
        raise invalid_file(failed.reason, failed.columns)
    if total:
        bad += await _mark_duplicates(ctx, import_id)
    return total, bad


async def _purge_stale_staging(ctx: Ctx) -> None:
    """Staged rows are kept as long as a preview may be committed (24 h); older ones go, so
    the staging table holds only recent files. Imports keep their counts."""
    stale = select(RosterImport.id).where(RosterImport.created_at <= ctx.now() - PREVIEW_TTL)
    await ctx.session.execute(delete(RosterStagedRow).where(RosterStagedRow.import_id.in_(stale)))


async def preview(
    ctx: Ctx,
    principal: Principal,
    exam_id: int,
    stream: IO[bytes],
    filename: str,
    *,
    progress: Progress | None = None,
) -> schemas.RosterImportOut:
    """Read and check a roster file for an exam the caller manages; nothing is imported yet.

    `roster_invalid` (reason `unreadable`, `encoding`, `empty`, `missing_columns`) when the
    file as a whole cannot be read; bad rows are listed, not refused.
    """
    exam = await exams.get_exam(ctx, principal, exam_id)
    await _purge_stale_staging(ctx)
    job = RosterImport(
        school_id=exam.school_id,
        exam_id=exam.id,
        filename=(filename or "roster")[:255],
        status="previewed",
        created_by=ctx.actor.user_id if ctx.actor else None,
        created_at=ctx.now(),
    )
    ctx.session.add(job)
    await ctx.session.flush()
    total, bad = await stage_file(ctx, job.id, stream, progress)
    if total == 0:
        raise invalid_file("empty")
    job.total_rows, job.error_rows, job.valid_rows = total, bad, total - bad
    await ctx.session.flush()
    await audit.record(
        ctx, "roster.previewed", "roster_import", job.id, exam_id=exam.id, rows=total, bad=bad
    )
    return await import_out(ctx, job)


async def import_out(
    ctx: Ctx, job: RosterImport, page: int = 1, page_size: int = 50
) -> schemas.RosterImportOut:
    """An import with one page of its bad rows, in row order."""
    page, page_size = max(page, 1), min(max(page_size, 1), MAX_PAGE_SIZE)
    staged = RosterStagedRow
    errors: Sequence[Any] = []
    # A clean import has no bad rows to page through (looking would scan all its rows).
    if job.error_rows:
        found = await ctx.session.execute(
            select(staged.row_number, staged.error_column, staged.error_reason, staged.other_row)
            .where(staged.import_id == job.id, staged.error_reason.is_not(None))
            .order_by(staged.row_number)
            .limit(page_size)
            .offset((page - 1) * page_size)
        )
        errors = found.all()
    return schemas.RosterImportOut(
        id=job.id,
        exam_id=job.exam_id,
        filename=job.filename,
        status=job.status,
        total_rows=job.total_rows,
        valid_rows=job.valid_rows,
        error_rows=job.error_rows,
        inserted_rows=job.inserted_rows,
        updated_rows=job.updated_rows,
        created_at=job.created_at,
        committed_at=job.committed_at,
        errors=[
            schemas.RosterErrorOut(
                row=row, column=column or "", reason=reason or "", other_row=other
            )
            for row, column, reason, other in errors
        ],
        page=page,
        page_size=page_size,
    )


async def _import(ctx: Ctx, principal: Principal, exam_id: int, import_id: int) -> RosterImport:
    exam = await exams.get_exam(ctx, principal, exam_id)
    job = await ctx.session.get(RosterImport, import_id)
    if job is None or job.exam_id != exam.id:
        raise VexamError("roster_import_not_found")
    return job


async def get_import(
    ctx: Ctx, principal: Principal, exam_id: int, import_id: int, page: int = 1, page_size: int = 50
) -> schemas.RosterImportOut:
    """A preview (or committed import) of an exam the caller manages, one page of bad rows."""
    return await import_out(ctx, await _import(ctx, principal, exam_id, import_id), page, page_size)


async def commit(
    ctx: Ctx, principal: Principal, exam_id: int, import_id: int, *, skip_invalid: bool = False
) -> schemas.RosterImportOut:
    """Import a preview's valid rows: new ID numbers are added, known ones updated.

    `roster_invalid` when the preview has bad rows (unless `skip_invalid`), was committed
    already, or expired (24 h). Committing twice at once imports once: the state change is a
    conditional update.
    """
    job = await _import(ctx, principal, exam_id, import_id)
    if job.error_rows and not skip_invalid:
        raise invalid_file("preview_has_errors")
    now = ctx.now()
    moved = await ctx.session.execute(
        update(RosterImport)
        .where(
            RosterImport.id == job.id,
            RosterImport.status == "previewed",
            RosterImport.created_at > now - PREVIEW_TTL,
        )
        .values(status="committed", committed_at=now)
        .execution_options(synchronize_session=False)
    )
    if moved.rowcount != 1:  # type: ignore[attr-defined]
        await ctx.session.refresh(job)
        if job.status == "committed":
            raise invalid_file("already_committed")
        job.status = "expired"
        await ctx.session.flush()
        raise CountedRefusal("roster_invalid", reason="preview_expired", columns=[])
    updated = await _upsert(ctx, job, now)
    job.updated_rows, job.inserted_rows = updated, job.valid_rows - updated
    await ctx.session.flush()
    await ctx.session.refresh(job)
    await audit.record(
        ctx,
        "roster.committed",
        "roster_import",
        job.id,
        exam_id=job.exam_id,
        inserted=job.inserted_rows,
        updated=job.updated_rows,
        skipped=job.error_rows,
    )
    return await import_out(ctx, job)


async def _upsert(ctx: Ctx, job: RosterImport, now: Any) -> int:
    """Upsert the valid staged rows; how many of them updated an existing row."""
    staged, rows = RosterStagedRow, RosterRow
    valid = (staged.import_id == job.id, staged.error_reason.is_(None))
    existing = await ctx.session.execute(
        select(func.count())
        .select_from(staged)
        .join(
            rows,
            (rows.exam_id == job.exam_id) & (rows.id_number_index == staged.id_number_index),
        )
        .where(*valid)
    )
    updated = int(existing.scalar_one())
    stamp = literal(now, UTCDateTime())
    source = select(
        literal(job.school_id),
        literal(job.exam_id),
        staged.name,
        staged.id_number_enc,
        staged.id_number_index,
        staged.id_number_masked,
        staged.province,
        staged.candidate_number,
        staged.major,
        stamp,
        stamp,
    ).where(*valid)
    # In file order, so row ids (and the roster listing) follow the file.
    source = source.order_by(staged.row_number)
    statement = insert_into(ctx.session, RosterRow).from_select(
        [
            "school_id",
            "exam_id",
            "name",
            "id_number_enc",
            "id_number_index",
            "id_number_masked",
            "province",
            "candidate_number",
            "major",
            "created_at",
            "updated_at",
        ],
        source,
    )
    changed = ("name", "province", "candidate_number", "major", "updated_at")
    await ctx.session.execute(
        statement.on_conflict_do_update(
            index_elements=["exam_id", "id_number_index"],
            set_={column: statement.excluded[column] for column in changed},
        )
    )
    return updated


# ------------------------------------------------------------------ rows


def row_out(row: RosterRow) -> schemas.RosterRowOut:
    """A roster row with its ID number masked."""
    return schemas.RosterRowOut(
        id=row.id,
        name=row.name,
        id_number_masked=row.id_number_masked,
        province=row.province,
        candidate_number=row.candidate_number,
        major=row.major,
        updated_at=row.updated_at,
    )


async def list_rows(
    ctx: Ctx, principal: Principal, exam_id: int, page: int = 1, page_size: int = 50
) -> schemas.RosterPageOut:
    """One page of an exam's roster, in import order, ID numbers masked."""
    exam = await exams.get_exam(ctx, principal, exam_id)
    page, page_size = max(page, 1), min(max(page_size, 1), MAX_PAGE_SIZE)
    total = await ctx.session.scalar(
        select(func.count()).select_from(RosterRow).where(RosterRow.exam_id == exam.id)
    )
    found = await ctx.session.execute(
        select(RosterRow)
        .where(RosterRow.exam_id == exam.id)
        .order_by(RosterRow.id)
        .limit(page_size)
        .offset((page - 1) * page_size)
    )
    return schemas.RosterPageOut(
        total=int(total or 0),
        page=page,
        page_size=page_size,
        rows=[row_out(row) for row in found.scalars()],
    )


def _corrections(body: schemas.RowCorrectionIn) -> Iterable[tuple[str, str | None]]:
    if body.name is not None:
        name = " ".join(body.name.split())
        if not name:
            raise field_invalid("name")
        yield "name", name
    if body.province is not None:
        province = normalise_province(body.province)
        if province is None:
            raise field_invalid("province")
        yield "province", province
    if body.candidate_number is not None:
        candidate = body.candidate_number.strip().upper() or None
        if candidate is not None and not _candidate_ok(candidate):
            raise field_invalid("candidate_number")
        yield "candidate_number", candidate
    if body.major is not None:
        yield "major", " ".join(body.major.split()) or None


async def correct_row(
    ctx: Ctx, principal: Principal, exam_id: int, row_id: int, body: schemas.RowCorrectionIn
) -> schemas.RosterRowOut:
    """Correct a row's name, province, candidate number or major; audited with old and new."""
    row = await get_row(ctx, principal, exam_id, row_id)
    changes: dict[str, dict[str, str | None]] = {}
    for field, value in _corrections(body):
        before = getattr(row, field)
        if before != value:
            changes[field] = {"from": before, "to": value}
            setattr(row, field, value)
    if changes:
        row.updated_at = ctx.now()
        await ctx.session.flush()
        await audit.record(
            ctx, "roster.row_corrected", "roster_row", row.id, exam_id=exam_id, changes=changes
        )
    return row_out(row)


async def find_row(ctx: Ctx, exam_id: int, id_number_index: str) -> RosterRow | None:
    """The exam's roster row of the ID number with this blind index, if any."""
    found = await ctx.session.execute(
        select(RosterRow).where(
            RosterRow.exam_id == exam_id, RosterRow.id_number_index == id_number_index
        )
    )
    return found.scalar_one_or_none()


async def get_row(ctx: Ctx, principal: Principal, exam_id: int, row_id: int) -> RosterRow:
    """A row of an exam the caller manages; `roster_row_not_found` otherwise."""
    exam = await exams.get_exam(ctx, principal, exam_id)
    row = await ctx.session.get(RosterRow, row_id)
    if row is None or row.exam_id != exam.id:
        raise VexamError("roster_row_not_found")
    return row
