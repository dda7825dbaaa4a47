"""Roster import and correction (SPEC §4): preview a file, commit it, correct a row.

A file is streamed row by row: each row is validated with the identity domain's ID-number
rules, its ID number encrypted and blind-indexed, and the result written to a staging table
in batches, so memory stays flat however big the file. Duplicates within the file are found
by the database afterwards. Commit is one set-based upsert keyed on (exam, blind index):
re-importing a file updates the rows of the same ID numbers.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import date, timedelta
from typing import IO, Any

from sqlalchemy import func, insert, literal, select, text, update
from sqlalchemy.dialects import postgresql, sqlite

from vexam.core import audit
from vexam.core.context import Ctx, Principal
from vexam.core.crypto import blind_index, encrypt_text
from vexam.core.errors import CountedRefusal, VexamError
from vexam.core.models import UTCDateTime
from vexam.exams import service as exams
from vexam.identity.idnumbers import (
    IdNumberError,
    mask_id_number,
    normalise_province,
    parse_id_number,
)
from vexam.schools import schemas
from vexam.schools.models import RosterImport, RosterRow, RosterStagedRow
from vexam.schools.roster_files import Progress, RawRow, RosterFileError, read_rows

# The same kind and context as certified identities: a roster row and an identity of one
# number share a blind index, which is how an application finds its row.
ID_NUMBER_KIND = "id_number"
ID_NUMBER_CONTEXT = "identity.id_number"
PREVIEW_TTL = timedelta(hours=24)
BATCH_ROWS = 5000
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
Staged = tuple[
    int,
    int,
    str | None,
    str | None,
    str | None,
    str | None,
    str | None,
    str | None,
    str | None,
    str | None,
    str | None,
    int | None,
]


def _candidate_ok(value: str) -> bool:
    return 4 <= len(value) <= 20 and value.isascii() and value.isalnum()


def check_row(import_id: int, row: RawRow, *, today: date, data_key: str) -> Staged:
    """A row as staged: its values, and the first rule it broke (column, reason) if any."""
    cells = row.cells
    error: tuple[str, str] | None = None
    name = " ".join(cells.get("name", "").split())
    if not name:
        error = ("name", "missing")
    elif len(name) > 100:
        error, name = ("name", "too_long"), name[:100]
    number: str | None = None
    raw_number = cells.get("id_number", "")
    if not raw_number.strip():
        error = error or ("id_number", "missing")
    else:
        try:
            number = parse_id_number(raw_number, today=today).number
        except IdNumberError as exc:
            error = error or ("id_number", exc.reason.value)
    raw_province = cells.get("province", "")
    province = normalise_province(raw_province)
    if province is None:
        error = error or ("province", "unknown" if raw_province.strip() else "missing")
    candidate = cells.get("candidate_number", "").strip().upper() or None
    if candidate is not None and not _candidate_ok(candidate):
        error, candidate = error or ("candidate_number", "format"), candidate[:32]
    major = " ".join(cells.get("major", "").split()) or None
    if major is not None and len(major) > 200:
        error, major = error or ("major", "too_long"), major[:200]
    index = blind_index(data_key, number, kind=ID_NUMBER_KIND) if number else None
    # Only rows that can be committed carry the ciphertext (the costly part).
    enc = (
        encrypt_text(data_key, number, context=ID_NUMBER_CONTEXT) if number and not error else None
    )
    return (
        import_id,
        row.number,
        name or None,
        enc,
        index,
        mask_id_number(number) if number else None,
        province,
        candidate,
        major,
        error[0] if error else None,
        error[1] if error else None,
        None,
    )


def invalid_file(reason: str, columns: Sequence[str] = ()) -> VexamError:
    """`roster_invalid` naming why the file (or preview) cannot be imported."""
    return VexamError("roster_invalid", reason=reason, columns=list(columns))


async def _stage(ctx: Ctx, batch: list[Staged]) -> None:
    connection = await ctx.session.connection()
    if connection.dialect.name == "postgresql":
        # COPY into the staging table through the same connection and transaction.
        raw = await connection.get_raw_connection()
        driver: Any = raw.driver_connection
        await driver.copy_records_to_table(
            RosterStagedRow.__tablename__, records=batch, columns=STAGED_COLUMNS
        )
        return
    await connection.execute(
        insert(RosterStagedRow),
        [dict(zip(STAGED_COLUMNS, values, strict=True)) for values in batch],
    )


_DUPLICATES = """
UPDATE roster_staged_rows
SET error_column = :column, error_reason = 'duplicate',
    other_row = (
        SELECT MIN(f.row_number) FROM roster_staged_rows f
        WHERE f.import_id = :import_id AND f.{key} = roster_staged_rows.{key}
    )
WHERE import_id = :import_id AND error_reason IS NULL AND {key} IS NOT NULL
  AND EXISTS (
    SELECT 1 FROM roster_staged_rows e
    WHERE e.import_id = :import_id AND e.{key} = roster_staged_rows.{key}
      AND e.row_number < roster_staged_rows.row_number
  )
"""


async def _mark_duplicates(ctx: Ctx, import_id: int) -> None:
    """Every later row repeating an earlier row's ID number or candidate number is an error
    naming the earlier row (so both row numbers are reported)."""
    for column, key in (("id_number", "id_number_index"), ("candidate_number", "candidate_number")):
        await ctx.session.execute(
            text(_DUPLICATES.format(key=key)), {"column": column, "import_id": import_id}
        )


async def stage_file(
    ctx: Ctx, import_id: int, stream: IO[bytes], progress: Progress | None = None
) -> tuple[int, int]:
    """Validate and stage every row of `stream`; (total rows, bad rows)."""
    today = ctx.now().date()
    key = ctx.settings.data_key
    batch: list[Staged] = []
    try:
        for row in read_rows(stream, progress):
            batch.append(check_row(import_id, row, today=today, data_key=key))
            if len(batch) >= BATCH_ROWS:
                await _stage(ctx, batch)
                batch = []
    except RosterFileError as exc:
        raise invalid_file(exc.reason, exc.columns) from None
    if batch:
        await _stage(ctx, batch)
    await _mark_duplicates(ctx, import_id)
    staged = RosterStagedRow
    counted = await ctx.session.execute(
        select(func.count(), func.count(staged.error_reason)).where(staged.import_id == import_id)
    )
    total, bad = counted.one()
    return int(total), int(bad)


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
    found = await ctx.session.execute(
        select(staged.row_number, staged.error_column, staged.error_reason, staged.other_row)
        .where(staged.import_id == job.id, staged.error_reason.is_not(None))
        .order_by(staged.row_number)
        .limit(page_size)
        .offset((page - 1) * page_size)
    )
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
            for row, column, reason, other in found.all()
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
    dialect = (await ctx.session.connection()).dialect.name
    upsert = postgresql.insert if dialect == "postgresql" else sqlite.insert
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
    statement = upsert(RosterRow).from_select(
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


def _field_invalid(field: str) -> VexamError:
    return VexamError("invalid_request", errors=[{"loc": ["body", field], "type": "value_error"}])


def _corrections(body: schemas.RowCorrectionIn) -> Iterable[tuple[str, str | None]]:
    if body.name is not None:
        name = " ".join(body.name.split())
        if not name:
            raise _field_invalid("name")
        yield "name", name
    if body.province is not None:
        province = normalise_province(body.province)
        if province is None:
            raise _field_invalid("province")
        yield "province", province
    if body.candidate_number is not None:
        candidate = body.candidate_number.strip().upper() or None
        if candidate is not None and not _candidate_ok(candidate):
            raise _field_invalid("candidate_number")
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
