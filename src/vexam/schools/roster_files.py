"""Reading roster files as a stream of checked rows, with no database in sight.

Files: CSV (UTF-8, with or without BOM, or GBK/GB18030 as Excel in China saves it) and XLSX
(openpyxl, read-only). Nothing is loaded whole. A file that cannot be read raises
`RosterFileError` naming why (`unreadable`, `encoding`, `empty`, `missing_columns`); the
caller turns it into `roster_invalid`.

Rows: each is checked with the identity domain's ID-number rules and its number encrypted and
blind-indexed (`check_row`). That is CPU work, so `checked_batches` reads in a thread and
checks batches in worker processes (threads when processes are not available), in file order:
the event loop stays free and both cores work while the database writes. This module imports
no database code, so a worker process starts light.
"""

from __future__ import annotations

import asyncio
import codecs
import csv
import io
import itertools
import multiprocessing
import os
import unicodedata
import zipfile
import zlib
from collections.abc import AsyncGenerator, Callable, Iterator
from concurrent.futures import Executor, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from datetime import date, datetime
from functools import partial
from typing import IO, Any

from vexam.core.crypto import blind_index, encrypt_text
from vexam.identity.idnumbers import (
    IdNumberError,
    mask_id_number,
    normalise_province,
    parse_id_number,
)

COLUMNS = ("name", "id_number", "province", "candidate_number", "major")
REQUIRED = ("name", "id_number", "province")

# Header spellings schools use, compared after `_header_key` (NFKC, no spaces, lower case).
ALIASES: dict[str, str] = {
    "姓名": "name",
    "考生姓名": "name",
    "name": "name",
    "身份证号": "id_number",
    "身份证号码": "id_number",
    "身份证": "id_number",
    "证件号码": "id_number",
    "idnumber": "id_number",
    "idno": "id_number",
    "id": "id_number",
    "高考省份": "province",
    "省份": "province",
    "生源省份": "province",
    "生源地": "province",
    "province": "province",
    "examprovince": "province",
    "考生号": "candidate_number",
    "高考考生号": "candidate_number",
    "candidatenumber": "candidate_number",
    "candidateno": "candidate_number",
    "专业": "major",
    "报考专业": "major",
    "考试": "major",
    "major": "major",
    "exam": "major",
    "exammajor": "major",
}

SAMPLE_BYTES = 64 * 1024
PROGRESS_EVERY = 1000  # rows between progress reports
XLSX_MAGIC = b"PK\x03\x04"

# (bytes or rows done, total or 0 when unknown)
Progress = Callable[[int, int], None]


class RosterFileError(ValueError):
    """The file as a whole cannot be imported; `reason` says why, `columns` what is missing."""

    def __init__(self, reason: str, columns: list[str] | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.columns = columns or []


@dataclass
class RawRow:
    """One data row: its number as the spreadsheet shows it, and its cells by column."""

    number: int
    cells: dict[str, str] = field(default_factory=dict)


def _header_key(text: str) -> str:
    return "".join(unicodedata.normalize("NFKC", text).split()).replace("_", "").lower()


def map_header(header: list[str]) -> dict[str, int]:
    """Column name → position; `missing_columns` when a required column is absent."""
    found: dict[str, int] = {}
    for position, title in enumerate(header):
        column = ALIASES.get(_header_key(title))
        if column is not None and column not in found:
            found[column] = position
    missing = [column for column in REQUIRED if column not in found]
    if missing:
        raise RosterFileError("missing_columns", missing)
    return found


def _cell_text(value: Any) -> str:
    """A cell as text: Excel keeps long digit strings as numbers, so ints print whole."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, datetime | date):
        return value.isoformat()
    text = str(value).strip()
    if "\x00" in text:  # no text column holds one; PostgreSQL could not store it
        raise RosterFileError("unreadable")
    return text


def _rows_of(
    lines: Iterator[list[Any]], progress: Callable[[int], None], *, cells_are_text: bool
) -> Iterator[RawRow]:
    header: dict[str, int] | None = None
    number = 0
    for values in lines:
        number += 1
        # CSV cells are text already; spreadsheet cells need converting.
        texts = (
            [value.strip() for value in values]
            if cells_are_text
            else [_cell_text(value) for value in values]
        )
        if not any(texts):
            continue
        if header is None:
            header = map_header(texts)
            continue
        if number % PROGRESS_EVERY == 0:
            progress(number)
        yield RawRow(
            number,
            {
                column: texts[position] if position < len(texts) else ""
                for column, position in header.items()
            },
        )
    if header is None:
        raise RosterFileError("empty")


class _Counting(io.RawIOBase):
    """A binary stream that counts what was read through it (for the progress bar)."""

    def __init__(self, inner: IO[bytes], already: bytes) -> None:
        self.inner = inner
        self.pending = already
        self.done = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer)
        if self.pending:
            size = min(len(view), len(self.pending))
            view[:size] = self.pending[:size]
            self.pending = self.pending[size:]
        else:
            chunk = self.inner.read(len(view))
            if b"\x00" in chunk:  # as in the sample: a binary file, not CSV text
                raise RosterFileError("unreadable")
            size = len(chunk)
            view[:size] = chunk
        self.done += size
        return size


def _encoding_of(sample: bytes) -> str:
    if sample.startswith(codecs.BOM_UTF8):
        return "utf-8-sig"
    try:
        # A sample may end inside a character: decode incrementally, not final.
        codecs.getincrementaldecoder("utf-8")().decode(sample, final=False)
    except UnicodeDecodeError:
        return "gb18030"  # a superset of GBK: what Excel in China writes as "CSV"
    return "utf-8"


def _size(stream: IO[bytes]) -> int:
    try:
        here = stream.tell()
        end = stream.seek(0, io.SEEK_END)
        stream.seek(here)
    except (OSError, ValueError):
        return 0
    return end - here


def read_rows(stream: IO[bytes], progress: Progress | None = None) -> Iterator[RawRow]:
    """The data rows of a CSV or XLSX roster, streamed; header row located and mapped."""
    total = _size(stream)
    sample = stream.read(SAMPLE_BYTES)
    if not sample:
        raise RosterFileError("empty")
    if sample.startswith(XLSX_MAGIC):
        if stream.seekable():
            stream.seek(stream.tell() - len(sample))
            yield from _xlsx_rows(stream, progress)
        else:
            yield from _xlsx_rows(io.BytesIO(sample + stream.read()), progress)
        return
    if b"\x00" in sample:
        raise RosterFileError("unreadable")
    counting = _Counting(stream, sample)
    encoding = _encoding_of(sample)
    text = io.TextIOWrapper(io.BufferedReader(counting), encoding=encoding, newline="")
    report = (lambda _n: progress(counting.done, total)) if progress else (lambda _n: None)
    try:
        yield from _rows_of(iter(csv.reader(text)), report, cells_are_text=True)
    except UnicodeDecodeError:
        raise RosterFileError("encoding") from None
    except csv.Error:
        raise RosterFileError("unreadable") from None
    if progress:
        progress(total, total)


# What openpyxl raises on a damaged workbook: a bad zip, a missing part, bad XML (a
# SyntaxError from ElementTree or lxml), bad compressed data, values it cannot read, no sheet.
_BROKEN_XLSX = (
    zipfile.BadZipFile,
    KeyError,
    OSError,
    ValueError,
    SyntaxError,
    zlib.error,
    EOFError,
    IndexError,
    TypeError,
)


def _xlsx_rows(data: IO[bytes], progress: Progress | None) -> Iterator[RawRow]:
    from openpyxl import load_workbook

    try:
        book = load_workbook(data, read_only=True, data_only=True)
    except _BROKEN_XLSX:
        raise RosterFileError("unreadable") from None
    try:
        sheet = book.worksheets[0]
        total = sheet.max_row or 0
        report = (lambda n: progress(n, total)) if progress else (lambda _n: None)
        lines = (list(values) for values in sheet.iter_rows(values_only=True))
        yield from _rows_of(lines, report, cells_are_text=False)
        if progress:
            progress(total, total)
    except RosterFileError:
        raise
    except _BROKEN_XLSX:
        # Read-only sheets are parsed while iterating: damaged XML or zip data shows here.
        raise RosterFileError("unreadable") from None
    finally:
        book.close()


# ------------------------------------------------------------------ checking rows

# The same kind and context as certified identities: a roster row and an identity of one
# number share a blind index, which is how an application finds its row.
ID_NUMBER_KIND = "id_number"
ID_NUMBER_CONTEXT = "identity.id_number"
AHEAD = 4  # batches read and being checked ahead of the one being written (memory bound)

# (import_id, row_number, name, id_number_enc, id_number_index, id_number_masked, province,
#  candidate_number, major, error_column, error_reason, other_row): a staging-table row.
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


def candidate_ok(value: str) -> bool:
    """Whether a (normalised) candidate number has the accepted shape."""
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
    if candidate is not None and not candidate_ok(candidate):
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


# A data row as sent to a worker: its number, then its texts in `COLUMNS` order ("" if absent).
# Plain tuples, because pickling them is a fraction of pickling `RawRow`s.
Cells = tuple[int, str, str, str, str, str]

# COPY's text format: backslash escapes for the characters that delimit it.
NULL = "\\N"
_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


@dataclass(frozen=True)
class CheckedBatch:
    """Checked rows in file order: how many, how many broke a rule, and the staged rows, as
    tuples or (for PostgreSQL) as COPY text made in the worker, so this process only
    forwards bytes."""

    rows: int
    bad: int
    staged: list[Staged]
    copy_text: bytes


def _copy_value(value: str | None) -> str:
    return NULL if value is None else value.translate(_COPY_ESCAPES)


def copy_text(staged: list[Staged]) -> bytes:
    """Rows in PostgreSQL COPY text format (tab-separated, `\\N` for NULL), UTF-8."""
    text = _copy_value
    # Only the free-text cells can hold a backslash or a control character; the rest are
    # made here from fixed alphabets (base64, hex, digits, province names, reason codes).
    lines = [
        f"{import_id}\t{number}\t{text(name)}\t{enc or NULL}\t{index or NULL}\t"
        f"{masked or NULL}\t{province or NULL}\t{text(candidate)}\t{text(major)}\t"
        f"{column or NULL}\t{reason or NULL}\t{NULL if other is None else other}\n"
        for (
            import_id,
            number,
            name,
            enc,
            index,
            masked,
            province,
            candidate,
            major,
            column,
            reason,
            other,
        ) in staged
    ]
    return "".join(lines).encode()


def _cells(row: RawRow) -> Cells:
    get = row.cells.get
    return (
        row.number,
        get("name", ""),
        get("id_number", ""),
        get("province", ""),
        get("candidate_number", ""),
        get("major", ""),
    )


def check_batch(
    import_id: int, rows: list[Cells], *, today: date, data_key: str, as_copy_text: bool
) -> CheckedBatch:
    """`check_row` of each row, in order (what a worker process runs)."""
    staged = [
        check_row(
            import_id,
            RawRow(row[0], dict(zip(COLUMNS, row[1:], strict=True))),
            today=today,
            data_key=data_key,
        )
        for row in rows
    ]
    bad = sum(1 for values in staged if values[10] is not None)
    if as_copy_text:
        return CheckedBatch(len(staged), bad, [], copy_text(staged))
    return CheckedBatch(len(staged), bad, staged, b"")


def default_workers() -> int:
    """Worker processes for checking: one per usable core but one, which is left to this
    process (reading, forwarding) and the database it writes to; at least one."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return max(1, cores - 1)


def _start_pool(workers: int) -> Executor | None:
    """A process pool, or None where processes cannot be made (then threads check)."""
    try:
        # forkserver: workers fork from a clean single-threaded server, never from this
        # (threaded) process, and start with only this module loaded, not the web app.
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload([__name__])
        return ProcessPoolExecutor(workers, mp_context=context)
    except (OSError, ValueError, NotImplementedError, ImportError):
        return None


async def checked_batches(
    import_id: int,
    stream: IO[bytes],
    progress: Progress | None = None,
    *,
    today: date,
    data_key: str,
    batch_rows: int,
    workers: int,
    as_copy_text: bool = False,
) -> AsyncGenerator[CheckedBatch]:
    """The rows of `stream` checked, in batches of `batch_rows`, in file order.

    The file is read in a thread; batches are checked in `workers` processes once the file
    proves bigger than one batch (a small file never starts any), else (or with `workers`
    0) in a thread. If the
    pool cannot start or breaks, the batch is checked in a thread instead: same result.
    `RosterFileError` is raised from here when the file cannot be read.
    """
    loop = asyncio.get_running_loop()
    rows = read_rows(stream, progress)
    check = partial(
        check_batch, import_id, today=today, data_key=data_key, as_copy_text=as_copy_text
    )
    # Batches in file order, each with its check under way; or the error that stopped reading.
    queue: asyncio.Queue[tuple[list[Cells], asyncio.Future[CheckedBatch]] | Exception | None]
    queue = asyncio.Queue(AHEAD)
    pool: Executor | None = None

    def submit(batch: list[Cells]) -> asyncio.Future[CheckedBatch]:
        if pool is not None:
            try:
                return asyncio.wrap_future(pool.submit(check, batch))
            except (BrokenProcessPool, RuntimeError, OSError):
                pass  # the pool is gone: check here instead
        return loop.run_in_executor(None, check, batch)

    def read_batch() -> list[Cells]:
        return [_cells(row) for row in itertools.islice(rows, batch_rows)]

    async def produce() -> None:
        nonlocal pool
        try:
            batch = await asyncio.to_thread(read_batch)
            if workers > 0 and len(batch) == batch_rows:
                pool = _start_pool(workers)
            while batch:
                await queue.put((batch, submit(batch)))
                batch = await asyncio.to_thread(read_batch)
        except Exception as exc:  # handed to the consumer, which raises it in its own task
            await queue.put(exc)
        else:
            await queue.put(None)

    producer = asyncio.create_task(produce())
    try:
        while (item := await queue.get()) is not None:
            if isinstance(item, Exception):
                raise item
            batch, checked = item
            try:
                result = await checked
            except (BrokenProcessPool, OSError):
                result = await loop.run_in_executor(None, check, batch)  # the pool died
            yield result
    finally:
        producer.cancel()
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)
